"""Targets: one module each behind the registry, owning every decision about the target."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rewriter.errors import UsageError
from rewriter.graph import ModelView
from rewriter.resize import describe_node, find_resizes
from rewriter.targets import TARGET_NAMES, make_target, target_class
from tests.resize_cases import build_resize_model

ROOT = Path(__file__).resolve().parent.parent


def _sem(model):
    view = ModelView.build(model)
    scope, node = find_resizes(view)[0]
    return describe_node(view, scope, node)


def test_no_target_branches_outside_the_target_modules() -> None:
    """A target's decisions live in its module: nothing else compares a target or flavor name."""
    names = "|".join(TARGET_NAMES + ("bvlc", "interp", "upsample"))
    pattern = re.compile(rf"""(target|flavor|name)\w*\s*[!=]=\s*["']({names})["']""")
    offenders = []
    for path in [*ROOT.glob("rewriter/**/*.py"), *ROOT.glob("passes/*.py")]:
        if "targets" in path.relative_to(ROOT).parts or path.name == "cli.py":
            continue
        for k, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{k}: {line.strip()}")
    assert not offenders, offenders


@pytest.mark.parametrize("name", TARGET_NAMES)
def test_every_target_says_where_its_rules_come_from(name: str) -> None:
    module = __import__(target_class(name).__module__, fromlist=["_"])
    assert module.__doc__ and "come from" in module.__doc__


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("coreml", {"deployment_target": "iOS12"}, "--deployment-target"),
        ("coreml", {"deployment_target": "iOS14", "model_format": "mlprogram"}, "iOS15 or later"),
        ("coreml", {"deployment_target": "iOS16", "model_format": "neuralnetwork"}, "iOS13/iOS14"),
        ("caffe", {"flavor": "nnie"}, "--flavor"),
        ("tflite-nope", {}, "--target"),
    ],
)
def test_options_are_validated_by_the_target(name: str, options: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        make_target(name, options)


def test_coreml_format_follows_the_deployment_target() -> None:
    assert make_target("coreml", {"deployment_target": "iOS14"}).model_format == "neuralnetwork"
    assert make_target("coreml", {"deployment_target": "iOS17"}).model_format == "mlprogram"


def test_native_op_is_chosen_by_weights() -> None:
    align = _sem(build_resize_model((1, 2, 5, 7), 13, {"mode": "linear", "coordinate_transformation_mode": "align_corners"}, sizes=[1, 2, 9, 13]))
    coreml = make_target("coreml")
    assert coreml.accepts(align) is None
    assert coreml.runs_as(align).attr("align_corners") is True
    interp = make_target("caffe", {"flavor": "interp"})
    assert interp.accepts(align) is None and interp.runs_as(align).op == "Interp"
    assert make_target("caffe").accepts(align) == "BVLC Caffe has no Resize layer"


def test_lowering_preferences_are_the_targets() -> None:
    sem = _sem(build_resize_model((1, 2, 4, 5), 13, {"mode": "nearest"}, sizes=[1, 2, 8, 10]))
    assert make_target("caffe").excluded_lowerings(sem, "auto") == {"gather": "BVLC Caffe has no Gather layer"}
    assert "conv_transpose" in make_target("onnx").excluded_lowerings(sem, "auto")  # small maps: MatMul is faster
    assert set(make_target("onnx").excluded_lowerings(sem, "matmul")) == {"conv_transpose", "gather"}
    assert make_target("caffe").edge_replication == "slices" and not make_target("caffe").separable_deconv


def test_tflite_lowers_nothing_under_a_dynamic_batch(tmp_path: Path) -> None:
    """onnx2tf converted a lowered align_corners network with a dynamic batch 0.021 off (architecture corpus on the
    real runtime): the tflite target refuses to lower under a symbolic batch, and its advice (pin the shapes) works."""
    import numpy as np
    import onnxruntime as ort

    from rewriter import fix_resize
    from rewriter.errors import NotExactError
    from tests.conftest import MODELS

    path = MODELS / "architectures" / "hand_align_corners_dynamo_dynbatch.onnx"
    with pytest.raises(NotExactError, match="dynamic batch.*--input-shape"):
        fix_resize(path, "tflite", tmp_path / "dyn.onnx")
    result = fix_resize(path, "tflite", tmp_path / "static.onnx", input_shapes={"image": (1, 3, 48, 64)})
    assert any(n.state.kind == "lowered" for n in result.nodes)
    x = np.random.default_rng(0).standard_normal((1, 3, 48, 64)).astype(np.float32)
    want = ort.InferenceSession(str(path)).run(None, {"image": x})[0]
    got = ort.InferenceSession(str(tmp_path / "static.onnx")).run(None, {"image": x})[0]
    assert np.abs(got - want).max() <= 1e-5 * max(1.0, np.abs(want).max())
