"""Property test: random valid single-Resize models (every opset, mode, transform, nearest mode, scales or
sizes, axes, antialias, lengths including 1) through fix-resize for every target. Each run is exact in
ONNX Runtime (whole model before vs after) or refused cleanly; never a crash or a silent mismatch.

Each run also keeps the promises that make the gate usable: inspect predicts the passes fix-resize applies
and check passes on fix-resize's output.

Fast profile in CI; the long one:  REWRITER_FUZZ_CASES=10000 REWRITER_FUZZ_SEED=1 python -m pytest tests/test_fuzz.py -n 2
"""

from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort
import pytest

from rewriter import check, inspect
from rewriter.errors import NotExactError
from rewriter.fix import fix_resize
from tests.conftest import record_stats
from tests.resize_cases import generate_cases

CASES = int(os.environ.get("REWRITER_FUZZ_CASES", "320"))
SEED = int(os.environ.get("REWRITER_FUZZ_SEED", "424242"))
CHUNK = 40
TARGETS = ("onnx", "coreml", "caffe")


def _run(model, x: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


@pytest.mark.parametrize("chunk", range((CASES + CHUNK - 1) // CHUNK))
def test_fix_resize_is_exact_or_refuses(chunk: int) -> None:
    cases = generate_cases(CASES, seed=SEED)[chunk * CHUNK : (chunk + 1) * CHUNK]
    counts = {t: {"exact": 0, "refused": 0} for t in TARGETS}
    worst = 0.0
    failures = []
    for case in cases:
        x = case.random_input(seed=11)
        expected = _run(case.model, x)
        if expected.size == 0:  # a policy/scale that rounds an axis to length 0: rejected as bad input
            continue
        predicted = inspect(case.model, targets=TARGETS).nodes
        for target in TARGETS:
            try:
                result = fix_resize(case.model, target)
            except NotExactError as e:
                assert "\n" not in str(e)
                assert predicted[0].plans[target].verdict in ("inexact", "unresolved"), f"{case.label} -> {target}: inspect predicted a fix"
                counts[target]["refused"] += 1
                continue
            if predicted[0].plans[target].passes != result.nodes[0].passes:
                failures.append(f"{case.label} -> {target}: inspect predicted {predicted[0].plans[target].passes}, fix-resize applied {result.nodes[0].passes}")
            if not check(result.model, target).ok:
                failures.append(f"{case.label} -> {target}: check fails on fix-resize's output")
            actual = _run(result.model, x)
            if actual.shape != expected.shape:
                failures.append(f"{case.label} -> {target}: shape {actual.shape} vs {expected.shape}")
                continue
            err = float(np.abs(actual.astype(np.float64) - expected).max(initial=0.0)) / max(1.0, float(np.abs(expected).max(initial=0.0)))
            worst = max(worst, err)
            if err > 1e-5:
                failures.append(f"{case.label} {case.params} -> {target}: {err:.3g}")
            counts[target]["exact"] += 1
    record_stats(f"fuzz@{chunk}", {"cases": len(cases) * len(TARGETS), "worst": worst, "counts": counts})
    assert not failures, "\n".join(failures)
