"""Proof of the semantics core: its per-axis weights, applied to random data, equal ONNX Runtime.

Generated single-node models sweep every mode x coordinate transform x nearest_mode, scales and sizes,
integer and fractional ratios, downsampling, output length 1, axes, antialias, cubic a / exclude_outside,
tf_crop_and_resize roi with extrapolation, Resize-10/11/13/18/19 and Upsample-7/9. Where onnx's reference
evaluator is documented to agree with ORT, it is checked too.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx.reference import ReferenceEvaluator

from rewriter.graph import ModelView
from rewriter.resize import ResizeSemantics, describe_model
from tests.conftest import record_stats
from tests.resize_cases import generate_cases

CASES_PER_CHUNK = 100
CHUNKS = 6  # 600 generated combinations
RTOL = 1e-6


def _relative_error(expected: np.ndarray, actual: np.ndarray) -> float:
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    return float(np.abs(expected.astype(np.float64) - actual).max(initial=0.0)) / scale


def reference_should_agree(sem: ResizeSemantics) -> bool:
    """False for the documented ORT/reference deviations (facts sheet §1.2, §1.5, §2)."""
    if sem.opset <= 10 or sem.transform == "tf_half_pixel_for_nn":
        return False  # reference: no legacy linear Upsample, tf_half_pixel_for_nn rejected at opset >= 13
    resized = [a for a in sem.axes_info if a.n != a.m or not a.unchanged]
    if sem.size_source == "scales" and any(float(np.float64(a.scale) * a.n) != a.m for a in resized):
        return False  # float64 output size / float output_width in the reference
    if sem.transform == "pytorch_half_pixel" and any(a.m == 1 for a in resized):
        return False  # reference x = -0.5, ORT x = 0
    if sem.transform == "tf_crop_and_resize" and any(a.unchanged for a in sem.axes_info):
        return False  # ORT ignores roi on scale-1 axes
    return True


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_weights_match_onnxruntime(chunk: int) -> None:
    cases = generate_cases(CASES_PER_CHUNK * CHUNKS)[chunk * CASES_PER_CHUNK : (chunk + 1) * CASES_PER_CHUNK]
    worst = 0.0
    reference_checked = 0
    failures = []
    for case in cases:
        x = case.random_input(seed=len(case.label))
        session = ort.InferenceSession(case.model.SerializeToString(), providers=["CPUExecutionProvider"])
        expected = session.run(None, {"x": x})[0]
        (sem,) = describe_model(ModelView.build(case.model))
        assert sem.output_shape == expected.shape, f"{case.label}: output shape {sem.output_shape} vs ORT {expected.shape}"
        actual = sem.apply(x)
        err = _relative_error(expected, actual)
        worst = max(worst, err)
        if err > RTOL:
            failures.append(f"{case.label} {case.params}: {err:.3g}")
        if reference_should_agree(sem):
            reference = ReferenceEvaluator(case.model).run(None, {"x": x})[0]
            assert reference.shape == expected.shape, case.label
            assert _relative_error(reference, actual) <= 1e-5, f"{case.label}: reference disagrees"
            reference_checked += 1
    record_stats(f"semantics-core@{chunk}", {"cases": len(cases), "worst": worst, "reference_checked": reference_checked})
    assert not failures, "\n".join(failures)
