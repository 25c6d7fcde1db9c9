"""The ncnn, torch and tflite targets: their decisions on single-node models, and their predictions against the
measured classes of the real-runtime grid (tests/runtimes/measured_b.json, from tests/runtimes/measure.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import onnx
import pytest

import rewriter
from rewriter.graph import ModelView
from rewriter.resize import describe_node, find_resizes
from rewriter.targets import make_target
from tests.resize_cases import build_resize_model

ROOT = Path(__file__).resolve().parent.parent
MEASURED = ROOT / "tests" / "runtimes" / "measured_b.json"


def _sem(model: onnx.ModelProto):
    view = ModelView.build(model)
    scope, node = find_resizes(view)[0]
    return describe_node(view, scope, node)


ROI = [0, 0, 0.2, 0.1, 1, 1, 0.9, 1.2]


def _node(opset: int = 13, *, shape=(1, 2, 5, 7), sizes=(1, 2, 10, 14), scales=None, roi=None, **attrs):
    kw = {"scales": list(scales)} if scales is not None else {"sizes": list(sizes)}
    return _sem(build_resize_model(shape, opset, attrs, roi=roi, **kw))


def _ops(model: object) -> set[str]:
    return {n.op_type for n in getattr(model, "model", model).graph.node}


# ---------------------------------------------------------------------------------------------- ncnn


def test_ncnn_runs_half_pixel_and_align_corners_linear_as_they_are() -> None:
    ncnn = make_target("ncnn")
    assert ncnn.accepts(_node(mode="linear", coordinate_transformation_mode="half_pixel")) is None
    assert ncnn.accepts(_node(mode="cubic", coordinate_transformation_mode="align_corners", sizes=(1, 2, 9, 13))) is None
    assert ncnn.accepts(_node(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")) is None


def test_ncnn_maps_asymmetric_linear_onto_half_pixel_and_says_how_far_off() -> None:
    sem = _node(mode="linear", coordinate_transformation_mode="asymmetric", sizes=(1, 2, 7, 10))
    ncnn = make_target("ncnn")
    assert "computes axis" in ncnn.accepts(sem)
    assert ncnn.naive_weights(sem, 2).difference(sem.axis_weights(2)) > 0.1


@pytest.mark.parametrize(
    ("attrs", "shape", "sizes", "reason"),
    [
        ({"mode": "nearest", "nearest_mode": "round_prefer_floor"}, (1, 2, 5, 7), (1, 2, 10, 14), "nearest_mode floor"),
        ({"mode": "linear", "coordinate_transformation_mode": "tf_crop_and_resize"}, (1, 2, 5, 7), (1, 2, 10, 14), "tf_crop_and_resize"),
        ({"mode": "linear"}, (1, 5, 7, 2), (1, 10, 14, 2), "N x C x H x W"),
    ],
)
def test_ncnn_rejections_are_reasons(attrs: dict, shape: tuple, sizes: tuple, reason: str) -> None:
    roi = ROI if attrs.get("coordinate_transformation_mode") == "tf_crop_and_resize" else None
    assert reason in make_target("ncnn").accepts(_sem(build_resize_model(shape, 13, attrs, sizes=list(sizes), roi=roi)))


def test_ncnn_lowers_to_matmul_only() -> None:
    sem = _node(mode="linear", coordinate_transformation_mode="asymmetric")
    assert set(make_target("ncnn").excluded_lowerings(sem, "auto")) == {"conv_transpose", "gather"}
    model = build_resize_model((1, 2, 5, 7), 13, {"mode": "linear", "coordinate_transformation_mode": "asymmetric"}, sizes=[1, 2, 10, 14])
    assert "MatMul" in _ops(rewriter.fix_resize(model, "ncnn"))


# ---------------------------------------------------------------------------------------------- torch


def test_torch_nearest_is_pytorch_nearest() -> None:
    torch = make_target("torch")
    assert torch.accepts(_node(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")) is None
    sem = _node(mode="nearest", coordinate_transformation_mode="half_pixel", nearest_mode="round_prefer_ceil", sizes=(1, 2, 7, 10))
    assert "computes axis" in torch.accepts(sem)


def test_torch_has_no_resize_18_converter_and_lowers_there() -> None:
    attrs = {"mode": "linear", "coordinate_transformation_mode": "half_pixel"}
    torch = make_target("torch")
    sem = _node(18, **attrs)
    assert "no Resize-18 converter" in torch.accepts(sem)
    assert "opset 13" in torch.suggestion(sem)
    assert torch.accepts(_node(13, **attrs)) is None
    fixed = rewriter.fix_resize(build_resize_model((1, 2, 5, 7), 18, attrs, sizes=[1, 2, 10, 14]), "torch")
    assert "Resize" not in _ops(fixed)


def test_torch_lowerings_leave_out_conv_transpose() -> None:
    sem = _node(mode="linear", coordinate_transformation_mode="asymmetric")
    assert set(make_target("torch").excluded_lowerings(sem, "auto")) == {"conv_transpose"}
    assert "channel or batch" in make_target("torch").accepts(_sem(build_resize_model((1, 5, 7, 2), 13, {"mode": "linear"}, sizes=[1, 10, 14, 2])))


# ---------------------------------------------------------------------------------------------- tflite


def test_tflite_samples_with_the_size_ratio() -> None:
    tflite = make_target("tflite")
    attrs = {"mode": "linear", "coordinate_transformation_mode": "half_pixel"}
    assert tflite.accepts(_node(scales=(1, 1, 0.6, 0.6), **attrs)) is not None  # 7 -> 4: TF uses 4/7, ORT 0.6
    assert tflite.accepts(_node(sizes=(1, 2, 3, 4), **attrs)) is None


def test_tflite_nearest_follows_the_flag_pair() -> None:
    tflite = make_target("tflite")
    assert tflite.accepts(_node(mode="nearest", coordinate_transformation_mode="half_pixel", nearest_mode="round_prefer_ceil", sizes=(1, 2, 7, 10))) is None
    assert tflite.accepts(_node(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor", sizes=(1, 2, 7, 10))) is None
    assert tflite.accepts(_node(mode="nearest", coordinate_transformation_mode="align_corners", nearest_mode="round_prefer_ceil", sizes=(1, 2, 7, 10))) is None
    assert tflite.accepts(_node(18, mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor", sizes=(1, 2, 7, 10))) is not None


@pytest.mark.parametrize(("attrs", "reason"), [({"mode": "cubic"}, "bicubic"), ({"mode": "linear", "coordinate_transformation_mode": "tf_crop_and_resize"}, "tf_crop_and_resize")])
def test_tflite_rejections_are_reasons(attrs: dict, reason: str) -> None:
    roi = ROI if attrs.get("coordinate_transformation_mode") == "tf_crop_and_resize" else None
    assert reason in make_target("tflite").accepts(_node(roi=roi, **attrs))


def test_tflite_matmul_form_multiplies_from_the_right_only() -> None:
    """onnx2tf misreads a constant on the left of a MatMul when sizes coincide; the right-only form (each axis moved
    last) was measured exact on the whole grid, and is exact in ONNX Runtime like any lowering."""
    model = build_resize_model((1, 2, 16, 16), 13, {"mode": "cubic", "coordinate_transformation_mode": "asymmetric"}, sizes=[1, 2, 24, 24])
    fixed = rewriter.fix_resize(model, "tflite").model
    inits = {t.name for t in fixed.graph.initializer}
    matmuls = [n for n in fixed.graph.node if n.op_type == "MatMul"]
    assert len(matmuls) == 2 and all(n.input[1] in inits and n.input[0] not in inits for n in matmuls)


# ---------------------------------------------------------------------------------------------- measurements


def _grid():
    sys.path.insert(0, str(ROOT / "tests" / "runtimes"))
    import grid

    return grid


@pytest.mark.parametrize("target", ["ncnn", "torch", "tflite"])
def test_every_grid_model_accepted_as_is_was_measured_exact(target: str) -> None:
    """accepts() is never optimistic: each grid model the target keeps as it is ran exactly on the real runtime.
    (It is conservative where it refuses a model measured exact: the legacy ops, TF bicubic on a few sizes.)"""
    grid = _grid()
    measured = json.loads(MEASURED.read_text())["native"]
    tgt = make_target(target)
    accepted = conservative = 0
    for config in grid.grid():
        classes = measured.get(config.id)
        if classes is None:  # ORT itself rejects it
            continue
        if tgt.accepts(_sem(grid.build_model(config))) is None:
            accepted += 1
            assert classes[target] == "exact", config.id
        else:
            conservative += classes[target] == "exact"
    assert accepted > 50 and conservative < 25


def test_runtime_targets_are_inspected_when_asked_for() -> None:
    from rewriter.config import DEFAULT_TARGETS, TARGET_NAMES
    from rewriter.inspection import inspect

    assert set(DEFAULT_TARGETS) <= set(TARGET_NAMES) and not {"ncnn", "torch", "tflite"} & set(DEFAULT_TARGETS)
    model = build_resize_model((1, 2, 5, 7), 13, {"mode": "linear", "coordinate_transformation_mode": "asymmetric"}, sizes=[1, 2, 10, 14])
    verdicts = inspect(model, targets=("ncnn", "torch", "tflite")).to_json()["nodes"][0]["targets"]
    assert verdicts["tflite"]["verdict"] == "as-is"  # TF's asymmetric flags, and 10 / 5 = the given scale
    assert verdicts["ncnn"]["verdict"] == verdicts["torch"]["verdict"] == "rewrite"
    assert verdicts["ncnn"]["naive_max_error"] == pytest.approx(0.5)  # half-pixel instead of asymmetric
