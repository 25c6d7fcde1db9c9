"""Each pass on tiny models: what it rewrites, why it does not apply elsewhere, and ORT before == after."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto
from onnx import helper as oh

from passes.canonicalize import Canonicalize
from passes.fold_sizes import FoldSizes
from passes.legacy_upgrade import LegacyUpgrade
from passes.lower_conv_transpose import LowerToConvTranspose
from passes.lower_gather import LowerToGather
from passes.lower_matmul import LowerToMatMul
from rewriter.errors import NotExactError
from rewriter.fix import fix_resize
from rewriter.graph import ModelView
from rewriter.pipeline import FixOptions, NodeContext
from rewriter.resize import describe_node, find_resizes
from tests.resize_cases import build_resize_model


def _ort(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def assert_same(before: onnx.ModelProto, after: onnx.ModelProto, shape: tuple[int, ...], atol: float = 1e-6) -> float:
    x = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    a, b = _ort(before, x), _ort(after, x)
    assert a.shape == b.shape
    err = float(np.abs(a - b).max(initial=0.0))
    assert err <= atol * max(1.0, float(np.abs(a).max(initial=0.0))), err
    return err


def context(model: onnx.ModelProto, target: str = "onnx", **options) -> NodeContext:
    view = ModelView.build(model)
    scope, node = find_resizes(view)[0]
    sem = describe_node(view, scope, node)
    return NodeContext(view, scope, node, sem, FixOptions(target=target, **options), max(view.opset, 11))


def ops(model: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in model.graph.node]


# ------------------------------------------------------------------ legacy upgrade


@pytest.mark.parametrize(("op_type", "opset", "mode", "scales"), [
    ("Upsample", 7, "linear", [1, 1, 2, 3]),
    ("Upsample", 9, "nearest", [1, 1, 2, 1.5]),
    ("Resize", 10, "linear", [1, 1, 1.5, 0.6]),
    ("Resize", 10, "nearest", [1, 1, 1.5, 0.6]),  # upsampling truncates, downsampling rounds up: split
])
def test_legacy_upgrade_keeps_asymmetric_semantics(op_type: str, opset: int, mode: str, scales: list[float]) -> None:
    model = build_resize_model((1, 2, 5, 8), opset, {"mode": mode}, scales=scales, op_type=op_type)
    ctx = context(model)
    assert LegacyUpgrade().check(ctx) is None
    state = LegacyUpgrade().rewrite(ctx)
    assert all(s.transform == "asymmetric" for s in state.spellings)
    if mode == "nearest" and opset == 10:
        assert [s.nearest_mode for s in state.spellings] == ["floor", "ceil"]
    fixed = fix_resize(model, "onnx").model
    assert ops(fixed).count("Resize") >= 1 and "Upsample" not in ops(fixed)
    assert fixed.opset_import[0].version >= 11
    assert_same(model, fixed, (1, 2, 5, 8))


def test_legacy_upgrade_beats_onnx_version_converter() -> None:
    """onnx's Resize 10->11 adapter makes it half_pixel; the upgrade here keeps ORT's numbers."""
    from onnx import version_converter

    model = build_resize_model((1, 1, 4, 4), 10, {"mode": "linear"}, scales=[1, 1, 2, 2])
    converted = version_converter.convert_version(model, 11)
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    assert np.abs(_ort(model, x) - _ort(converted, x)).max() > 0.2  # the known converter bug
    assert_same(model, fix_resize(model, "onnx").model, (1, 1, 4, 4))


def test_legacy_upgrade_does_not_apply_to_modern_resize() -> None:
    ctx = context(build_resize_model((1, 1, 4, 4), 13, {"mode": "linear"}, scales=[1, 1, 2, 2]))
    assert LegacyUpgrade().check(ctx) == "already Resize-13"


# ------------------------------------------------------------------ fold sizes


def _shape_sizes_model(batch: str | int = "N") -> onnx.ModelProto:
    """Resize whose sizes are Concat(Shape(x)[0:2], Shape(x)[2:4] * 2), the TorchScript `size=` pattern."""
    nodes = [
        oh.make_node("Shape", ["x"], ["shape"]),
        oh.make_node("Slice", ["shape", "zero", "two"], ["nc"]),
        oh.make_node("Slice", ["shape", "two", "four"], ["hw"]),
        oh.make_node("Mul", ["hw", "two_factor"], ["hw2"]),
        oh.make_node("Concat", ["nc", "hw2"], ["sizes"], axis=0),
        oh.make_node("Resize", ["x", "", "", "sizes"], ["y"], name="up", mode="linear"),
    ]
    inits = [
        oh.make_tensor("zero", TensorProto.INT64, [1], [0]),
        oh.make_tensor("two", TensorProto.INT64, [1], [2]),
        oh.make_tensor("four", TensorProto.INT64, [1], [4]),
        oh.make_tensor("two_factor", TensorProto.INT64, [2], [2, 2]),
    ]
    graph = oh.make_graph(nodes, "g", [oh.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 5, 7])], [oh.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def test_fold_sizes_with_symbolic_batch_becomes_scales() -> None:
    model = _shape_sizes_model()
    ctx = context(model)
    assert FoldSizes().check(ctx) is None
    fixed = fix_resize(model, "onnx").model
    assert ops(fixed) == ["Resize"], "the Shape subgraph is folded away"
    resize = fixed.graph.node[0]
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in fixed.graph.initializer}
    assert list(inits[resize.input[2]]) == [1, 1, 2, 2]  # scales, exact, batch stays dynamic
    assert fixed.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    assert_same(model, fixed, (2, 3, 5, 7))


def test_fold_sizes_static_shape_becomes_sizes() -> None:
    model = _shape_sizes_model(batch=1)
    fixed = fix_resize(model, "onnx").model
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in fixed.graph.initializer}
    assert list(inits[fixed.graph.node[0].input[3]]) == [1, 3, 10, 14]
    assert_same(model, fixed, (1, 3, 5, 7))


def test_fold_sizes_does_not_apply_to_constants() -> None:
    ctx = context(build_resize_model((1, 1, 4, 4), 13, {"mode": "linear"}, sizes=[1, 1, 8, 8]))
    assert FoldSizes().check(ctx) == "scales/sizes are already constants"


def test_scales_that_round_differently_in_float64_become_sizes() -> None:
    """n=3, scales float32(5/3): ORT gives 5, float64 implementations 4 (the scales->size trap)."""
    model = build_resize_model((1, 1, 3, 3), 13, {"mode": "linear"}, scales=[1, 1, float(np.float32(5 / 3)), 1])
    fixed = fix_resize(model, "onnx").model
    resize = fixed.graph.node[0]
    assert len(resize.input) == 4 and resize.input[3], "written with sizes"
    assert_same(model, fixed, (1, 1, 3, 3))


# ------------------------------------------------------------------ canonicalize


@pytest.mark.parametrize(("attrs", "sizes", "expected"), [
    ({"mode": "linear", "coordinate_transformation_mode": "pytorch_half_pixel"}, [1, 1, 8, 10], "half_pixel"),
    ({"mode": "linear", "coordinate_transformation_mode": "pytorch_half_pixel"}, [1, 1, 1, 1], "align_corners"),  # x = 0
    ({"mode": "nearest", "coordinate_transformation_mode": "tf_half_pixel_for_nn", "nearest_mode": "floor"}, [1, 1, 7, 9], "half_pixel"),
])
def test_canonicalize_spellings(attrs: dict, sizes: list[int], expected: str) -> None:
    model = build_resize_model((1, 1, 4, 5), 11, attrs, sizes=sizes)
    ctx = context(model)
    assert Canonicalize().check(ctx) is None
    state = Canonicalize().rewrite(ctx)
    assert [s.transform for s in state.spellings] == [expected]
    fixed = fix_resize(model, "onnx").model
    assert_same(model, fixed, (1, 1, 4, 5))


def test_canonicalize_integer_nearest_to_the_coreml_spelling() -> None:
    """Integer-factor nearest is plain repetition in many spellings; Core ML's is asymmetric + floor."""
    model = build_resize_model((1, 1, 4, 5), 13, {"mode": "nearest", "coordinate_transformation_mode": "half_pixel", "nearest_mode": "round_prefer_floor"}, sizes=[1, 1, 8, 15])
    ctx = context(model, target="coreml")
    state = Canonicalize().rewrite(ctx)
    assert [(s.transform, s.nearest_mode) for s in state.spellings] == [("asymmetric", "floor")]


def test_canonicalize_tf_half_pixel_for_nn_is_round_prefer_ceil() -> None:
    model = build_resize_model((1, 1, 4, 5), 13, {"mode": "nearest", "coordinate_transformation_mode": "tf_half_pixel_for_nn", "nearest_mode": "floor"}, sizes=[1, 1, 7, 9])
    ctx = context(model)
    state = Canonicalize().rewrite(ctx)
    assert (state.spellings[0].transform, state.spellings[0].nearest_mode) == ("half_pixel", "round_prefer_ceil")


def test_canonicalize_splits_axes_needing_different_transforms() -> None:
    """pytorch_half_pixel to length 1 on H (x = 0) and 2x on W (half_pixel): no single spelling."""
    model = build_resize_model((1, 1, 4, 5), 13, {"mode": "linear", "coordinate_transformation_mode": "pytorch_half_pixel"}, sizes=[1, 1, 1, 10])
    fixed = fix_resize(model, "onnx").model
    assert ops(fixed) == ["Resize", "Resize"]
    assert_same(model, fixed, (1, 1, 4, 5))


def test_canonicalize_removes_identity() -> None:
    model = build_resize_model((1, 2, 4, 5), 13, {"mode": "cubic"}, scales=[1, 1, 1, 1])
    fixed = fix_resize(model, "onnx").model
    assert ops(fixed) == ["Identity"]


def test_canonicalize_keeps_canonical_nodes() -> None:
    ctx = context(build_resize_model((1, 1, 4, 4), 13, {"mode": "linear"}, sizes=[1, 1, 8, 8]))
    assert Canonicalize().check(ctx) == "the target runs the node as it is"


# ------------------------------------------------------------------ ConvTranspose lowering


@pytest.mark.parametrize("factor", [2, 3, 4, 5, 8])
def test_conv_transpose_exact_for_half_pixel_and_classic_recipe_is_not(factor: int) -> None:
    shape = (2, 3, 6, 7)
    model = build_resize_model(shape, 13, {"mode": "linear"}, scales=[1, 1, factor, factor])
    exact = fix_resize(model, "caffe").model
    assert "ConvTranspose" in ops(exact) and "Resize" not in ops(exact) and "Pad" not in ops(exact)
    assert_same(model, exact, shape, atol=2e-6)
    classic = fix_resize(model, "caffe", border="zero", verify="none")
    assert not classic.nodes[0].exact and classic.nodes[0].border_error > 0.2
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    border = float(np.abs(_ort(model, x) - _ort(classic.model, x)).max())
    assert border > 0.5, "the classic zero-border recipe is off at the borders on unit-variance data"


@pytest.mark.parametrize(("attrs", "shape", "sizes"), [
    ({"mode": "linear", "coordinate_transformation_mode": "align_corners"}, (1, 2, 4, 5), [1, 2, 10, 13]),  # m = f(n-1)+1
    ({"mode": "linear", "coordinate_transformation_mode": "asymmetric"}, (1, 2, 4, 5), [1, 2, 12, 15]),
    ({"mode": "cubic"}, (1, 2, 4, 5), [1, 2, 8, 10]),
    ({"mode": "nearest", "coordinate_transformation_mode": "tf_half_pixel_for_nn", "nearest_mode": "round_prefer_ceil"}, (1, 2, 4, 5), [1, 2, 8, 10]),
])
def test_conv_transpose_derived_for_other_modes(attrs: dict, shape: tuple, sizes: list[int]) -> None:
    model = build_resize_model(shape, 13, attrs, sizes=sizes)
    fixed = fix_resize(model, "caffe").model
    assert "ConvTranspose" in ops(fixed)
    assert_same(model, fixed, shape, atol=2e-6)


def test_conv_transpose_not_for_fractional_ratio() -> None:
    ctx = context(build_resize_model((1, 2, 4, 5), 13, {"mode": "linear"}, sizes=[1, 2, 7, 9]), target="caffe")
    assert "not periodic" in LowerToConvTranspose().check(ctx)


def test_conv_transpose_uses_slices_for_caffe_and_pad_for_onnx() -> None:
    model = build_resize_model((1, 2, 4, 5), 13, {"mode": "linear"}, scales=[1, 1, 2, 2])
    assert "Pad" not in ops(fix_resize(model, "caffe").model)
    assert "Pad" in ops(fix_resize(model, "onnx", lower="deconv").model)


# ------------------------------------------------------------------ Gather and MatMul lowerings


def test_gather_lowering_int8_nearest() -> None:
    model = build_resize_model((1, 2, 5, 6), 13, {"mode": "nearest", "coordinate_transformation_mode": "half_pixel"}, sizes=[1, 2, 7, 9], elem_type=TensorProto.INT8)
    fixed = fix_resize(model, "coreml").model
    assert ops(fixed) == ["Gather", "Gather"]
    x = np.random.default_rng(0).integers(-128, 128, size=(1, 2, 5, 6), dtype=np.int8)
    assert np.array_equal(_ort(model, x), _ort(fixed, x))


def test_int8_linear_cannot_be_lowered_for_caffe() -> None:
    model = build_resize_model((1, 2, 5, 6), 13, {"mode": "linear"}, sizes=[1, 2, 7, 9], elem_type=TensorProto.UINT8)
    with pytest.raises(NotExactError, match="cannot be made exact for caffe"):
        fix_resize(model, "caffe")


@pytest.mark.parametrize(("attrs", "roi"), [
    ({"mode": "cubic", "cubic_coeff_a": -0.5, "exclude_outside": 1}, None),
    ({"mode": "linear", "antialias": 1}, None),
    ({"mode": "linear", "coordinate_transformation_mode": "tf_crop_and_resize", "extrapolation_value": -1.0}, [0, 0, -0.2, 0.1, 1, 1, 1.2, 0.8]),
])
def test_matmul_lowering_exact_for_anything_static(attrs: dict, roi) -> None:
    model = build_resize_model((1, 2, 6, 7), 18, attrs, sizes=[1, 2, 4, 11], roi=roi)
    fixed = fix_resize(model, "caffe").model
    assert "MatMul" in ops(fixed) and "Resize" not in ops(fixed)
    assert_same(model, fixed, (1, 2, 6, 7))


def test_matmul_refuses_huge_matrices() -> None:
    model = build_resize_model((1, 1, 3000, 8), 13, {"mode": "linear"}, sizes=[1, 1, 6001, 8])
    ctx = context(model, target="caffe")
    assert "MiB" in LowerToMatMul().check(ctx)
    with pytest.raises(NotExactError, match="MiB"):
        fix_resize(model, "caffe")


def test_lower_none_refuses_for_caffe() -> None:
    model = build_resize_model((1, 2, 4, 5), 13, {"mode": "linear"}, scales=[1, 1, 2, 2])
    with pytest.raises(NotExactError, match="--lower auto"):
        fix_resize(model, "caffe", lower="none")


def test_gather_skipped_when_target_runs_node() -> None:
    ctx = context(build_resize_model((1, 2, 4, 5), 13, {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}, scales=[1, 1, 2, 2]))
    assert LowerToGather().check(ctx) == "the target runs the node as it is"
