"""fix-resize on every real fixture x every target: exact (whole model, ORT before == after on the fixture's
recorded input, checker passes, `check` then says as-is) or refused with a clear reason."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from rewriter import check, inspect
from rewriter.errors import NotExactError
from rewriter.fix import fix_resize
from tests.conftest import MODELS, record_stats

MANIFEST = {e["file"]: e for e in json.loads((MODELS / "manifest.json").read_text())}
FIXTURES = sorted(f for f in MANIFEST if f.endswith(".onnx"))
TARGETS = ("onnx", "coreml", "caffe")


def _run(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]).run(None, feeds)


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    a64, b64 = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a64.shape == b64.shape
    return float(np.abs(a64 - b64).max(initial=0.0)) / max(1.0, float(np.abs(a64).max(initial=0.0)))


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("fixture", FIXTURES)
def test_fixture_is_exact_or_refused(fixture: str, target: str, tmp_path: Path) -> None:
    entry = MANIFEST[fixture]
    io = np.load(MODELS / entry["io"])
    feeds = {name: io[name] for name in entry["inputs"]}
    out = tmp_path / fixture.replace(".onnx", ".fixed.onnx")
    shapes = None
    try:
        result = fix_resize(MODELS / fixture, target, out)
    except NotExactError as e:
        assert "\n" not in str(e) and "cannot be analysed statically" in str(e), str(e)
        if "computed at run time" in str(e):  # a crop_and_resize roi from data: no static form exists
            assert target != "onnx"
            record_stats(f"fix-resize-{target}-refused@{fixture}", {"cases": 1})
            return
        # Otherwise only dynamic shapes may stop a fixture; with the real input shape it must go through.
        assert "--input-shape" in str(e), str(e)
        shapes = {k: v.shape for k, v in feeds.items()}
        result = fix_resize(MODELS / fixture, target, out, input_shapes=shapes)
    assert all(n.exact for n in result.nodes)
    predicted = [n.plans[target].passes for n in inspect(MODELS / fixture, input_shapes=shapes, targets=(target,)).nodes]
    assert predicted == [n.passes for n in result.nodes], "inspect predicts the passes fix-resize applies"
    onnx.checker.check_model(str(out), full_check=True)
    before, after = _run(MODELS / fixture, feeds), _run(out, feeds)
    worst = max((_relative(a, b) for a, b in zip(before, after)), default=0.0)
    assert worst <= 1e-5, f"{fixture} -> {target}: whole-model relative error {worst:.3g}"
    record_stats(f"fix-resize-{target}@{fixture}", {"cases": 1, "worst": worst})
    assert check(out, target).ok, [n.verdicts[target].how for n in check(out, target).failing]
    if target == "caffe":
        assert not [n for n in onnx.load(str(out), load_external_data=False).graph.node if n.op_type in ("Resize", "Upsample")]
