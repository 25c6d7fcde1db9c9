"""Upsampling spelled without Resize is recognised, proved and rewritten as the canonical Resize; look-alikes
are left alone.

Each positive case is a small onnx.helper graph with one idiom between a Relu and a Sigmoid (so the rewrite
must touch the region only); fix-resize for every target must be exact on the whole model in ONNX Runtime,
and inspect must report the recognised upsampling with the passes fix-resize applies.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper as oh
from onnx import numpy_helper as nh

from passes.recognize_upsampling import RECOGNIZE, _prove, recognize_region, recognize_upsampling
from rewriter import check, inspect
from rewriter.fix import fix_resize
from rewriter.graph import ModelView
from rewriter.ort_runtime import session
from rewriter.regions import find_regions
from rewriter.spelling import Spelling

TARGETS = ("onnx", "coreml", "caffe")


def _i64(name: str, values) -> onnx.TensorProto:
    return nh.from_array(np.asarray(values, dtype=np.int64), name)


def _model(region: list[onnx.NodeProto], inits: list[onnx.TensorProto], x_shape, y_shape, opset: int = 17,
           extra_outputs: tuple[str, ...] = ()) -> onnx.ModelProto:
    """input -> Relu -> [region: r_in -> r_out] -> Sigmoid -> output."""
    nodes = [oh.make_node("Relu", ["input"], ["r_in"], name="relu"), *region, oh.make_node("Sigmoid", ["r_out"], ["output"], name="sigmoid")]
    outputs = [oh.make_tensor_value_info("output", TP.FLOAT, list(y_shape))]
    outputs += [oh.make_tensor_value_info(name, TP.FLOAT, None) for name in extra_outputs]
    graph = oh.make_graph(nodes, "g", [oh.make_tensor_value_info("input", TP.FLOAT, list(x_shape))], outputs, inits)
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def nhwc_tile(batch="1") -> onnx.ModelProto:
    """Keras UpSampling2D(nearest) through tf2onnx: Unsqueeze/Tile/Reshape per axis, NHWC."""
    n = -1 if batch != "1" else 1
    region = [
        oh.make_node("Unsqueeze", ["r_in", "ax2"], ["u0"]), oh.make_node("Tile", ["u0", "rep0"], ["t0"]),
        oh.make_node("Reshape", ["t0", "shape0"], ["h2"]), oh.make_node("Unsqueeze", ["h2", "ax3"], ["u1"]),
        oh.make_node("Tile", ["u1", "rep1"], ["t1"]), oh.make_node("Reshape", ["t1", "shape1"], ["r_out"]),
    ]
    inits = [_i64("ax2", [2]), _i64("rep0", [1, 1, 2, 1, 1]), _i64("shape0", [n, 10, 7, 2]), _i64("ax3", [3]),
             _i64("rep1", [1, 1, 1, 2, 1]), _i64("shape1", [n, 10, 14, 2])]
    b = 1 if batch == "1" else batch
    return _model(region, inits, (b, 5, 7, 2), (b, 10, 14, 2))


def expand_reshape() -> onnx.ModelProto:
    region = [oh.make_node("Reshape", ["r_in", "s6"], ["r6"]), oh.make_node("Expand", ["r6", "e6"], ["x6"]),
              oh.make_node("Reshape", ["x6", "s4"], ["r_out"])]
    inits = [_i64("s6", [1, 3, 4, 1, 5, 1]), _i64("e6", [1, 3, 4, 2, 5, 3]), _i64("s4", [1, 3, 8, 15])]
    return _model(region, inits, (1, 3, 4, 5), (1, 3, 8, 15))


def gathernd_computed(out_h: int = 8, out_w: int = 12) -> onnx.ModelProto:
    """The dynamo exporter's nearest-exact: source index floor((i + 0.5) * n / m) from Range arithmetic, GatherND."""
    region, inits, axes = [], [], []
    for name, n, m in (("h", 5, out_h), ("w", 7, out_w)):
        inits += [nh.from_array(np.array(0.0, np.float32), f"{name}_start"), nh.from_array(np.array(float(m), np.float32), f"{name}_limit"),
                  nh.from_array(np.array(1.0, np.float32), f"{name}_delta"), nh.from_array(np.array(0.5, np.float32), f"{name}_half"),
                  nh.from_array(np.array(n / m, np.float32), f"{name}_scale")]
        region += [oh.make_node("Range", [f"{name}_start", f"{name}_limit", f"{name}_delta"], [f"{name}_i"]),
                   oh.make_node("Add", [f"{name}_i", f"{name}_half"], [f"{name}_c"]),
                   oh.make_node("Mul", [f"{name}_c", f"{name}_scale"], [f"{name}_s"]),
                   oh.make_node("Floor", [f"{name}_s"], [f"{name}_f"]),
                   oh.make_node("Cast", [f"{name}_f"], [f"{name}_idx"], to=TP.INT64)]
        axes.append(f"{name}_idx")
    inits += [_i64("ax1", [1]), _i64("ax0", [0]), _i64("axl", [-1]), _i64("grid", [out_h, out_w])]
    region += [oh.make_node("Unsqueeze", ["h_idx", "ax1"], ["h_col"]), oh.make_node("Expand", ["h_col", "grid"], ["h_grid"]),
               oh.make_node("Unsqueeze", ["w_idx", "ax0"], ["w_row"]), oh.make_node("Expand", ["w_row", "grid"], ["w_grid"]),
               oh.make_node("Unsqueeze", ["h_grid", "axl"], ["h_e"]), oh.make_node("Unsqueeze", ["w_grid", "axl"], ["w_e"]),
               oh.make_node("Concat", ["h_e", "w_e"], ["indices"], axis=-1),
               oh.make_node("Transpose", ["r_in"], ["hwnc"], perm=[2, 3, 0, 1]),
               oh.make_node("GatherND", ["hwnc", "indices"], ["g"]),
               oh.make_node("Transpose", ["g"], ["r_out"], perm=[2, 3, 0, 1])]
    return _model(region, inits, (1, 2, 5, 7), (1, 2, out_h, out_w), opset=20)


def gather_constant(h_idx=(0, 0, 1, 1, 2, 2, 3, 3, 4, 4)) -> onnx.ModelProto:
    """x[:, :, idx][:, :, :, idx]: Gather of constant indices on two axes."""
    region = [oh.make_node("Gather", ["r_in", "ih"], ["gh"], axis=2), oh.make_node("Gather", ["gh", "iw"], ["r_out"], axis=3)]
    inits = [_i64("ih", list(h_idx)), _i64("iw", [k // 2 for k in range(14)])]
    return _model(region, inits, (1, 2, 5, 7), (1, 2, len(h_idx), 14))


def depth_to_space() -> onnx.ModelProto:
    """Channels tiled 4 times, then DepthToSpace (DCR): every 2x2 block holds the same channel's pixel."""
    region = [oh.make_node("Tile", ["r_in", "rep"], ["tiled"]), oh.make_node("DepthToSpace", ["tiled"], ["r_out"], blocksize=2, mode="DCR")]
    return _model(region, [_i64("rep", [1, 4, 1, 1])], (1, 3, 4, 5), (1, 3, 8, 10))


POSITIVE = {
    "nhwc_unsqueeze_tile_reshape": (nhwc_tile, ["Unsqueeze", "Tile", "Reshape", "Unsqueeze", "Tile", "Reshape"], "asymmetric"),
    "expand_reshape_x2_x3": (expand_reshape, ["Reshape", "Expand", "Reshape"], "asymmetric"),
    "gathernd_computed_nearest_exact": (gathernd_computed, ["Transpose", "GatherND", "Transpose"], "half_pixel"),
    "gather_constant_indices": (gather_constant, ["Gather", "Gather"], "asymmetric"),
    "depth_to_space_of_tiled_channels": (depth_to_space, ["Tile", "DepthToSpace"], "asymmetric"),
}


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    return session(model, optimize=False).run(None, {"input": x})[0]


@pytest.mark.parametrize("case", sorted(POSITIVE))
def test_recognised_and_exact_for_every_target(case: str) -> None:
    make, ops, transform = POSITIVE[case]
    model = make()
    shape = tuple(d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    for target in TARGETS:
        result = fix_resize(model, target)
        (node,) = result.nodes
        assert node.passes[0] == RECOGNIZE and node.was == "recognised upsampling: " + " -> ".join(ops), node.was
        assert node.exact and node.max_error == 0.0
        onnx.checker.check_model(result.model, full_check=True)
        assert np.array_equal(_run(model, x), _run(result.model, x)), f"{case} -> {target}"
        ops_after = [n.op_type for n in result.model.graph.node]
        assert ops_after[0] == "Relu" and ops_after[-1] == "Sigmoid"  # nothing outside the region touched
        if target == "onnx":
            (resize,) = [n for n in result.model.graph.node if n.op_type == "Resize"]
            assert onnx.helper.get_attribute_value(next(a for a in resize.attribute if a.name == "coordinate_transformation_mode")).decode() == transform
            assert ops_after == ["Relu", "Resize", "Sigmoid"]  # the region and what fed only it are gone
            assert check(result.model, "onnx").ok  # fix-resize's output is canonical: recognised once, then as-is


def test_inspect_reports_the_recognised_upsampling() -> None:
    model = nhwc_tile()
    report = inspect(model)
    (node,) = report.nodes
    data = report.to_json()["nodes"][0]
    assert data["recognized"]["ops"] == POSITIVE["nhwc_unsqueeze_tile_reshape"][1]
    assert data["op_type"] == "Resize" and data["input_shape"] == [1, 5, 7, 2] and data["output_shape"] == [1, 10, 14, 2]
    for target in TARGETS:
        plan = node.plans[target]
        assert plan.verdict == "rewrite" and plan.passes == [n.passes for n in fix_resize(model, target).nodes][0]
        assert plan.how.startswith(f"{RECOGNIZE}: Resize(nearest, asymmetric, floor, sizes=1x10x14x2)")
    assert not check(model, "onnx").ok
    assert [n.op_type for n in model.graph.node][1:3] == ["Unsqueeze", "Tile"]  # inspect works on a copy


def test_symbolic_batch_is_kept() -> None:
    model = nhwc_tile(batch="N")  # Reshape to -1 on the batch axis: its length is only known when the model runs
    result = fix_resize(model, "onnx")
    (node,) = result.nodes
    assert node.passes == [RECOGNIZE] and node.semantics.scales == (1.0, 2.0, 2.0, 1.0)
    assert result.model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    for batch in (1, 3):
        x = np.random.default_rng(batch).standard_normal((batch, 5, 7, 2)).astype(np.float32)
        assert np.array_equal(_run(model, x), _run(result.model, x))


def _tile_whole() -> onnx.ModelProto:
    return _model([oh.make_node("Tile", ["r_in", "rep"], ["r_out"])], [_i64("rep", [1, 1, 2, 2])], (1, 2, 5, 7), (1, 2, 10, 14))


def _gather_permutation() -> onnx.ModelProto:
    return _model([oh.make_node("Gather", ["r_in", "perm"], ["r_out"], axis=2)], [_i64("perm", [4, 3, 2, 1, 0])], (1, 2, 5, 7), (1, 2, 5, 7))


def _intermediate_used_elsewhere() -> onnx.ModelProto:
    model = nhwc_tile()
    model.graph.output.append(oh.make_tensor_value_info("t0", TP.FLOAT, None))  # the first Tile's output
    return model


NEAR_MISSES = {
    "tile_repeats_whole_tensor": _tile_whole,
    "gather_permutation": _gather_permutation,
    "gather_out_of_order_repeat": lambda: _model([oh.make_node("Gather", ["r_in", "idx"], ["r_out"], axis=2)],
                                                 [_i64("idx", [0, 0, 2, 2, 1, 1, 3, 3, 4, 4])], (1, 2, 5, 7), (1, 2, 10, 7)),
    "pixel_shuffle_of_repeated_tensor_mixes_channels": lambda: _model(
        [oh.make_node("Tile", ["r_in", "rep"], ["tiled"]), oh.make_node("DepthToSpace", ["tiled"], ["r_out"], blocksize=2, mode="CRD")],
        [_i64("rep", [1, 4, 1, 1])], (1, 3, 4, 5), (1, 3, 8, 10)),
}


@pytest.mark.parametrize("case", sorted(NEAR_MISSES))
def test_near_misses_are_left_alone(case: str) -> None:
    model = NEAR_MISSES[case]()
    view = ModelView.build(model)
    same, found = recognize_upsampling(view)
    assert not found and same is view
    result = fix_resize(model, "onnx")
    assert result.nodes == [] and [n.op_type for n in result.model.graph.node] == [n.op_type for n in model.graph.node]


def test_a_region_whose_intermediate_is_used_elsewhere_is_not_removed() -> None:
    model = _intermediate_used_elsewhere()
    view = ModelView.build(model)
    assert all("t0" not in [o for n in r.nodes[:-1] for o in n.output] for r in find_regions(view))
    result = fix_resize(model, "onnx")
    produced = {o for n in result.model.graph.node for o in n.output}
    assert "t0" in produced  # still computed for the graph output that reads it
    x = np.random.default_rng(0).standard_normal((1, 5, 7, 2)).astype(np.float32)
    before = session(model).run(None, {"input": x})
    after = session(result.model).run(None, {"input": x})
    assert all(np.array_equal(a, b) for a, b in zip(before, after))


def test_the_weight_proof_rejects_a_wrong_spelling() -> None:
    view = ModelView.build(gather_constant())
    (region, *_) = find_regions(view)
    spelling, error = recognize_region(view, region)  # type: ignore[misc]
    assert error == 0.0 and _prove(view, region, spelling, [np.arange(1), np.arange(2), np.arange(10) // 2, np.arange(14) // 2]) is None
    wrong = Spelling("nearest", "align_corners", "floor", sizes=(1, 2, 10, 14))
    assert "weights differ" in _prove(view, region, wrong, [np.arange(1), np.arange(2), np.arange(10) // 2, np.arange(14) // 2])  # type: ignore[operator]


def test_models_below_opset_11_are_left_alone() -> None:
    model = gather_constant()
    model.opset_import[0].version = 10
    assert recognize_upsampling(ModelView.build(model))[1] == {}
