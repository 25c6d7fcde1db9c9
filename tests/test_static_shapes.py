"""Static shapes and values through exporter shape arithmetic that onnx's data propagation gives up on.

Each model mimics what TorchScript emits for a pattern that lost its shape on real models (timm "same"
padding, YOLO C2f chunk, GroupNorm at opset 11, a Segformer decoder reshape), followed by a Resize whose
sizes come from Shape, which ``describe_node`` must resolve to what ONNX Runtime computes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, numpy_helper
from onnx import helper as oh

from rewriter.errors import NotExactError, UsageError
from rewriter.fix import fix_resize
from rewriter.graph import ModelView, SymVector
from rewriter.model_io import load_model
from rewriter.resize import describe_model, describe_node, find_resizes

RNG = np.random.default_rng(0)


def const(name: str, value, dtype=np.int64) -> onnx.NodeProto:
    return oh.make_node("Constant", [], [name], name=name, value=numpy_helper.from_array(np.array(value, dtype=dtype)))


def resize_by_shape(t: str, factor: int = 2, opset: int = 17) -> list[onnx.NodeProto]:
    """TorchScript interpolate(size=(h*f, w*f)): Shape -> Gather -> Mul -> Unsqueeze -> Concat -> Resize."""
    nodes = [const("r_i2", 2), const("r_i3", 3), const("r_f", factor), const("r_ax", [0]), const("r_0", [0]), const("r_2", [2]),
             const("r_empty", [], np.float32)]  # Resize-11 needs roi and scales: empty tensors, as TorchScript exports them

    def unsqueeze(x: str, y: str, name: str) -> onnx.NodeProto:
        return oh.make_node("Unsqueeze", [x, "r_ax"], [y], name=name) if opset >= 13 else oh.make_node("Unsqueeze", [x], [y], name=name, axes=[0])
    nodes += [
        oh.make_node("Shape", [t], ["r_s"], name="r_shape"),
        oh.make_node("Gather", ["r_s", "r_i2"], ["r_h"], name="r_gather_h", axis=0),
        oh.make_node("Gather", ["r_s", "r_i3"], ["r_w"], name="r_gather_w", axis=0),
        oh.make_node("Mul", ["r_h", "r_f"], ["r_h2"], name="r_mul_h"),
        oh.make_node("Mul", ["r_w", "r_f"], ["r_w2"], name="r_mul_w"),
        unsqueeze("r_h2", "r_h2v", "r_unsq_h"),
        unsqueeze("r_w2", "r_w2v", "r_unsq_w"),
        oh.make_node("Concat", ["r_h2v", "r_w2v"], ["r_hw"], name="r_concat_hw", axis=0),
        oh.make_node("Slice", ["r_s", "r_0", "r_2", "r_0"], ["r_nc"], name="r_slice_nc"),
        oh.make_node("Concat", ["r_nc", "r_hw"], ["r_sizes"], name="r_concat", axis=0),
        oh.make_node("Resize", [t, *(["", ""] if opset >= 13 else ["r_empty", "r_empty"]), "r_sizes"], ["y"], name="resize", mode="linear", coordinate_transformation_mode="half_pixel"),
    ]
    return nodes


def make(nodes, inits=(), x_shape=(1, 3, 15, 17), opset=17, inputs=None) -> onnx.ModelProto:
    graph = oh.make_graph(
        nodes, "g", inputs or [oh.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
        [oh.make_tensor_value_info("y", TensorProto.FLOAT, None)], list(inits))
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)], ir_version=8)


def weight(name: str, *shape: int) -> onnx.TensorProto:
    return numpy_helper.from_array((RNG.standard_normal(shape) * 0.1).astype(np.float32), name)


def ort_output_shape(model: onnx.ModelProto, x_shape: tuple[int, ...]) -> tuple[int, ...]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": RNG.standard_normal(x_shape).astype(np.float32)})[0].shape


def onnx_loses(model: onnx.ModelProto, name: str) -> bool:
    """onnx's own shape inference (data propagation on) does not give the 4-D tensor ``name`` a static shape."""
    inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    for vi in inferred.graph.value_info:
        if vi.name == name and vi.type.tensor_type.HasField("shape"):
            dims = vi.type.tensor_type.shape.dim
            return len(dims) != 4 or not all(d.HasField("dim_value") for d in dims)
    return True


def the_resize(view: ModelView):
    ((scope, node),) = find_resizes(view)
    return scope, node, describe_node(view, scope, node)


def assert_resolved_like_ort(model: onnx.ModelProto, lost_at: str, x_shape=(1, 3, 15, 17)) -> None:
    assert onnx_loses(model, lost_at), "the model no longer reproduces the lost shape"
    _, _, sem = the_resize(ModelView.build(model))
    assert sem.resolved, sem.problems
    assert sem.output_shape == ort_output_shape(model, x_shape)


# --- the patterns -------------------------------------------------------------------------------


def same_pad_nodes(x: str = "x", k: int = 3, s: int = 2) -> list[onnx.NodeProto]:
    """timm pad_same: pad = max((ceil(i / s) - 1) * s + (k - 1) + 1 - i, 0) per axis, split in halves, Pad."""
    nodes = [const("c_s_f", float(s), np.float32), const("c_s", s), const("c_1", 1), const("c_k", k), const("c_0", 0),
             const("c_2", 2), const("c_ax", [0]), const("c_z2", [0, 0])]
    nodes.append(oh.make_node("Shape", [x], ["p_shape"], name="p_shape"))
    parts: dict[str, tuple[str, str]] = {}
    for axis, tag in ((2, "h"), (3, "w")):
        nodes += [
            const(f"c_i{tag}", axis),
            oh.make_node("Gather", ["p_shape", f"c_i{tag}"], [f"{tag}_i"], name=f"gather_{tag}", axis=0),
            oh.make_node("Cast", [f"{tag}_i"], [f"{tag}_f"], name=f"cast_{tag}", to=TensorProto.FLOAT),
            oh.make_node("Div", [f"{tag}_f", "c_s_f"], [f"{tag}_q"], name=f"div_{tag}"),
            oh.make_node("Ceil", [f"{tag}_q"], [f"{tag}_c"], name=f"ceil_{tag}"),
            oh.make_node("Cast", [f"{tag}_c"], [f"{tag}_ci"], name=f"cast_back_{tag}", to=TensorProto.INT64),
            oh.make_node("Sub", [f"{tag}_ci", "c_1"], [f"{tag}_a"], name=f"sub1_{tag}"),
            oh.make_node("Mul", [f"{tag}_a", "c_s"], [f"{tag}_b"], name=f"mul_{tag}"),
            oh.make_node("Add", [f"{tag}_b", "c_k"], [f"{tag}_c2"], name=f"add_{tag}"),
            oh.make_node("Sub", [f"{tag}_c2", f"{tag}_i"], [f"{tag}_d"], name=f"sub_{tag}"),
            oh.make_node("Max", [f"{tag}_d", "c_0"], [f"{tag}_pad"], name=f"max_{tag}"),
            oh.make_node("Div", [f"{tag}_pad", "c_2"], [f"{tag}_lo"], name=f"half_{tag}"),
            oh.make_node("Sub", [f"{tag}_pad", f"{tag}_lo"], [f"{tag}_hi"], name=f"rest_{tag}"),
            oh.make_node("Unsqueeze", [f"{tag}_lo", "c_ax"], [f"{tag}_lov"], name=f"unsq_lo_{tag}"),
            oh.make_node("Unsqueeze", [f"{tag}_hi", "c_ax"], [f"{tag}_hiv"], name=f"unsq_hi_{tag}"),
        ]
        parts[tag] = (f"{tag}_lov", f"{tag}_hiv")
    nodes += [
        oh.make_node("Concat", ["c_z2", parts["h"][0], parts["w"][0], "c_z2", parts["h"][1], parts["w"][1]], ["pads"], name="pads", axis=0),
        oh.make_node("Cast", ["pads"], ["pads_i"], name="pads_cast", to=TensorProto.INT64),
        oh.make_node("Pad", [x, "pads_i"], ["padded"], name="pad_3"),
    ]
    return nodes


def test_timm_same_pad() -> None:
    nodes = same_pad_nodes() + [oh.make_node("Conv", ["padded", "w"], ["conv"], name="conv", strides=[2, 2], kernel_shape=[3, 3])]
    model = make(nodes + resize_by_shape("conv"), [weight("w", 4, 3, 3, 3)])
    assert_resolved_like_ort(model, "padded")
    view = ModelView.build(model)
    scope = view.scopes[0]
    assert scope.lookup_shape("padded") == (1, 3, 17, 19)
    assert view.value(scope, "pads_i").tolist() == [0, 0, 1, 1, 0, 0, 1, 1]


def test_yolo_chunk_slice_and_split() -> None:
    c1 = [const("k_ax1", [1]), const("k_0", [0]), const("k_1", [1]), const("k_2", [2]), const("k_2f", 2.0, np.float32)]
    nodes = c1 + [
        oh.make_node("Conv", ["x", "w"], ["cv1"], name="cv1"),
        oh.make_node("Shape", ["cv1"], ["s"], name="shape"),
        oh.make_node("Gather", ["s", "k_ax1"], ["c"], name="gather_c", axis=0),
        oh.make_node("Add", ["c", "k_1"], ["c1"], name="add"),
        oh.make_node("Div", ["c1", "k_2"], ["half"], name="div"),
        oh.make_node("Mul", ["half", "k_1"], ["end0"], name="mul0"),
        oh.make_node("Mul", ["half", "k_2"], ["end1"], name="mul1"),
        oh.make_node("Slice", ["cv1", "k_0", "end0", "k_ax1"], ["y0"], name="slice0"),
        oh.make_node("Slice", ["cv1", "end0", "end1", "k_ax1"], ["y1"], name="slice1"),
        oh.make_node("Concat", ["end0", "half"], ["split"], name="split_sizes", axis=0),
        oh.make_node("Split", ["cv1", "split"], ["z0", "z1"], name="split", axis=1),
        oh.make_node("Mul", ["y1", "k_2f"], ["y2"], name="mul_y"),
        oh.make_node("Concat", ["y0", "y1", "y2", "z1"], ["cat"], name="cat", axis=1),
    ]
    model = make(nodes + resize_by_shape("cat"), [weight("w", 8, 3, 1, 1)])
    assert_resolved_like_ort(model, "y0")
    scope = ModelView.build(model).scopes[0]
    assert scope.lookup_shape("z1") == (1, 4, 15, 17) and scope.lookup_shape("cat") == (1, 16, 15, 17)


def groupnorm_nodes(x: str, channels: int, groups: int) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """GroupNorm as TorchScript exports it at opset 11: Reshape [0, G, -1] -> InstanceNormalization -> Reshape(Shape(x))."""
    nodes = [
        const("g_target", [0, groups, -1]),
        const("g_ones", np.ones(groups), np.float32),
        const("g_zeros", np.zeros(groups), np.float32),
        oh.make_node("Reshape", [x, "g_target"], ["g_flat"], name="gn_reshape"),
        oh.make_node("InstanceNormalization", ["g_flat", "g_ones", "g_zeros"], ["g_norm"], name="gn_instnorm"),
        oh.make_node("Shape", [x], ["g_shape"], name="gn_shape"),
        oh.make_node("Reshape", ["g_norm", "g_shape"], ["g_back"], name="gn_reshape_back"),
        oh.make_node("Mul", ["g_back", "gamma"], ["g_mul"], name="gn_mul"),
        oh.make_node("Add", ["g_mul", "beta"], ["gn"], name="gn_add"),
    ]
    return nodes, [weight("gamma", channels, 1, 1), weight("beta", channels, 1, 1)]


def test_groupnorm_opset11() -> None:
    nodes, inits = groupnorm_nodes("conv", 8, 2)
    model = make([oh.make_node("Conv", ["x", "w"], ["conv"], name="conv")] + nodes + resize_by_shape("gn", opset=11), [weight("w", 8, 3, 1, 1), *inits], opset=11)
    assert_resolved_like_ort(model, "gn")


def test_segformer_reshape() -> None:
    """Segformer decoder: tokens back to a map of side int(sqrt(tokens)) via flatten/transpose/reshape."""
    nodes = [
        const("s_i0", [0]), const("s_i1", [1]), const("s_m1", [-1]), const("s_c", [8]),
        oh.make_node("Conv", ["x", "w"], ["feat"], name="conv"),
        oh.make_node("Shape", ["feat"], ["s"], name="shape"),
        oh.make_node("Gather", ["s", "s_i0"], ["n"], name="gather_n", axis=0),
        oh.make_node("Concat", ["n", "s_c", "s_m1"], ["flat_shape"], name="flat_shape", axis=0),
        oh.make_node("Reshape", ["feat", "flat_shape"], ["flat"], name="flatten"),
        oh.make_node("Transpose", ["flat"], ["tokens"], name="to_tokens", perm=[0, 2, 1]),
        oh.make_node("MatMul", ["tokens", "proj"], ["mlp"], name="proj"),
        oh.make_node("Shape", ["mlp"], ["ts"], name="token_shape"),
        oh.make_node("Gather", ["ts", "s_i1"], ["count"], name="count", axis=0),
        oh.make_node("Cast", ["count"], ["count_f"], name="count_f", to=TensorProto.FLOAT),
        oh.make_node("Sqrt", ["count_f"], ["side_f"], name="sqrt"),
        oh.make_node("Floor", ["side_f"], ["side_floor"], name="floor"),
        oh.make_node("Cast", ["side_floor"], ["side"], name="side", to=TensorProto.INT64),
        oh.make_node("Transpose", ["mlp"], ["chw"], name="to_chw", perm=[0, 2, 1]),
        oh.make_node("Concat", ["n", "s_m1", "side", "side"], ["map_shape"], name="map_shape", axis=0),
        oh.make_node("Reshape", ["chw", "map_shape"], ["decoded"], name="unflatten"),
    ]
    model = make(nodes + resize_by_shape("decoded", 4), [weight("w", 8, 3, 1, 1), weight("proj", 8, 8)], x_shape=(1, 3, 16, 16))
    assert_resolved_like_ort(model, "decoded", (1, 3, 16, 16))
    assert ModelView.build(model).scopes[0].lookup_shape("decoded") == (1, 8, 16, 16)


def test_generic_shape_arithmetic_folds() -> None:
    """Not a list of idioms: sizes computed through Size, ReduceProd/Sum, Range, ConstantOfShape, Expand, Tile,
    Where/Equal/Less/Not, Mod, Neg, Abs, Min, Pow, Squeeze, Identity reach the Resize and its shape is right."""
    f32 = np.float32
    nodes = [
        const("g_zero", [0]), const("g_one", [1]), const("g_two", [2]), const("g_four", 4), const("g_step", 1), const("g_start", 0),
        const("g_pow", 2.0, f32), const("g_ax", [0]),
        oh.make_node("Shape", ["x"], ["s"], name="shape"),                              # [1, 3, 15, 17]
        oh.make_node("Size", ["x"], ["numel"], name="size"),                            # 765
        oh.make_node("ReduceProd", ["s"], ["prod"], name="prod", keepdims=0),           # 765
        oh.make_node("Equal", ["numel", "prod"], ["same"], name="equal"),               # True
        oh.make_node("ConstantOfShape", ["g_two"], ["zeros2"], name="zeros2"),         # [0, 0]
        oh.make_node("Range", ["g_start", "g_four", "g_step"], ["iota"], name="range"),  # [0, 1, 2, 3]
        oh.make_node("Less", ["iota", "g_two"], ["lead"], name="less"),                  # [T, T, F, F]
        oh.make_node("Not", ["lead"], ["spatial"], name="not"),
        oh.make_node("Cast", ["spatial"], ["spatial_i"], name="cast_mask", to=TensorProto.INT64),
        oh.make_node("Add", ["spatial_i", "g_one"], ["factor"], name="factor"),        # [1, 1, 2, 2]
        oh.make_node("Cast", ["factor"], ["factor_f"], name="factor_f", to=TensorProto.FLOAT),
        oh.make_node("Pow", ["factor_f", "g_pow"], ["factor_sq"], name="pow"),         # [1, 1, 4, 4]
        oh.make_node("Cast", ["factor_sq"], ["factor_sq_i"], name="factor_sq_i", to=TensorProto.INT64),
        oh.make_node("Min", ["factor_sq_i", "factor"], ["factor_min"], name="min"),     # [1, 1, 2, 2]
        oh.make_node("Mul", ["s", "factor_min"], ["doubled"], name="mul"),             # [1, 3, 30, 34]
        oh.make_node("Mod", ["doubled", "g_four"], ["rem"], name="mod"),               # [1, 3, 2, 2]
        oh.make_node("Neg", ["rem"], ["neg"], name="neg"),
        oh.make_node("Abs", ["neg"], ["rem_again"], name="abs"),
        oh.make_node("Sub", ["doubled", "rem_again"], ["aligned"], name="align"),       # [0, 0, 28, 32]
        oh.make_node("Where", ["spatial", "aligned", "s"], ["mixed"], name="where"),   # [1, 3, 28, 32]
        oh.make_node("Expand", ["same", "g_two"], ["same2"], name="expand"),            # [T, T]
        oh.make_node("Tile", ["g_one", "g_two"], ["ones2"], name="tile"),               # [1, 1]
        oh.make_node("ReduceSum", ["ones2", "g_zero"], ["two"], name="sum", keepdims=1),  # [2]
        oh.make_node("Squeeze", ["two", "g_ax"], ["two_s"], name="squeeze"),
        oh.make_node("Identity", ["mixed"], ["sizes"], name="identity"),
        oh.make_node("Resize", ["x", "", "", "sizes"], ["y"], name="resize", mode="nearest"),
    ]
    model = make(nodes)
    view = ModelView.build(model)
    scope, _, sem = the_resize(view)
    assert view.value(scope, "sizes").tolist() == [1, 3, 28, 32]
    assert view.value(scope, "same2").tolist() == [True, True] and int(view.value(scope, "two_s")) == 2
    assert view.value(scope, "zeros2").tolist() == [0, 0]
    assert sem.resolved and sem.output_shape == ort_output_shape(model, (1, 3, 15, 17)) == (1, 3, 28, 32)


# --- symbolic dims, lost shapes and values --------------------------------------------------------


def test_symbolic_batch_still_folds() -> None:
    nodes, inits = groupnorm_nodes("conv", 8, 2)
    model = make([oh.make_node("Conv", ["x", "w"], ["conv"], name="conv")] + nodes + resize_by_shape("gn", opset=11), [weight("w", 8, 3, 1, 1), *inits],
                 x_shape=("N", 3, 15, 17), opset=11)
    view = ModelView.build(model)
    scope, node, sem = the_resize(view)
    assert scope.lookup_shape("g_flat") == ("N", 2, 4 * 15 * 17)  # Reshape [0, G, -1] with N cancelled
    assert view.value(scope, node.input[3]) == SymVector(("N", 8, 30, 34))
    assert sem.resolved and sem.scales == (1.0, 1.0, 2.0, 2.0) and sem.output_shape == ("N", 8, 30, 34)


def test_resize_output_shape_from_symbolic_sizes() -> None:
    """A Resize whose sizes keep the batch symbolic ([N, 8, 30, 34] from Shape arithmetic) gives that output shape, so a
    second Resize after it is analysed too (a Segformer decoder with a dynamic batch lost it there)."""
    nodes, inits = groupnorm_nodes("conv", 8, 2)
    first = resize_by_shape("gn", opset=11)
    first[-1].output[0] = "big"
    second = [oh.make_node("Relu", ["big"], ["relu"], name="relu"),
              oh.make_node("Resize", ["relu", "r_empty", "half"], ["y"], name="half_resize", mode="linear")]
    model = make([oh.make_node("Conv", ["x", "w"], ["conv"], name="conv")] + nodes + first + second,
                 [weight("w", 8, 3, 1, 1), *inits, numpy_helper.from_array(np.array([1, 1, 0.5, 0.5], np.float32), "half")],
                 x_shape=("N", 3, 15, 17), opset=11)
    view = ModelView.build(model)
    scope = view.scopes[0]
    assert scope.lookup_shape("big") == ("N", 8, 30, 34)
    sem = describe_node(view, scope, next(n for n in model.graph.node if n.name == "half_resize"))
    assert sem.resolved and sem.output_shape == ("N", 8, 15, 17)


def test_symbolic_spatial_dims_name_the_pad_and_ask_for_input_shape() -> None:
    nodes = same_pad_nodes()
    model = make(nodes + resize_by_shape("padded"), x_shape=(1, 3, "H", "W"))
    view = ModelView.build(model)
    scope, _, sem = the_resize(view)
    assert not sem.resolved
    (problem,) = sem.problems
    assert "'pad_3'" in problem and "its input 'pads_i' depends on input 'x' dimension 'H', which is symbolic" in problem and "--input-shape x=1x3x1x1" in problem
    lost = view.lost(scope, "padded", "shape")
    assert (lost.node, lost.op) == ("pad_3", "Pad") and lost.fix == "pass --input-shape x=1x3x1x1"
    # With the input shape, everything resolves.
    _, _, sem = the_resize(ModelView.build(model, None, {"x": (1, 3, 15, 17)}))
    assert sem.resolved and sem.output_shape == (1, 3, 34, 38)


def test_symbolic_shapes_blame_the_input_not_the_reshape() -> None:
    nodes, inits = groupnorm_nodes("x", 8, 2)
    view = ModelView.build(make(nodes, inits, x_shape=("N", 8, "H", "W"), opset=11))
    scope = view.scopes[0]
    assert scope.lookup_shape("g_back") == ("N", 8, "H", "W")  # Reshape(., Shape(x)) keeps the symbols
    lost = view.lost(scope, "g_back", "shape")
    assert lost.node is None and lost.fix == "pass --input-shape x=1x8x1x1" and "'N', 'H', 'W', which are symbolic" in lost.reason


def test_data_dependent_shape_names_the_first_lost_node() -> None:
    nodes = [
        const("zero", 0.0, np.float32), const("i1", [1]), const("minus1", [-1]),
        oh.make_node("Greater", ["x", "zero"], ["positive"], name="greater"),
        oh.make_node("NonZero", ["positive"], ["where"], name="NonZero_12"),
        oh.make_node("Shape", ["where"], ["ws"], name="where_shape"),
        oh.make_node("Gather", ["ws", "i1"], ["count"], name="count"),
        oh.make_node("Concat", ["count", "minus1"], ["target"], name="target", axis=0),
        oh.make_node("Reshape", ["x", "target"], ["flat"], name="reshape"),
        oh.make_node("Unsqueeze", ["flat", "i1"], ["u"], name="u1"),
        oh.make_node("Unsqueeze", ["u", "i1"], ["t"], name="u2"),
    ]
    model = make(nodes + resize_by_shape("t"), x_shape=(1, 3, 4, 5))
    view = ModelView.build(model)
    scope, _, sem = the_resize(view)
    assert not sem.resolved
    (problem,) = sem.problems
    assert "NonZero node 'NonZero_12'" in problem and "--input-shape" not in problem
    lost = view.lost(scope, "t", "shape")
    assert (lost.node, lost.op) == ("NonZero_12", "NonZero") and "depends on the data" in lost.reason
    assert view.lost(scope, "count") == lost  # the value of Gather(Shape(NonZero)) is lost at the same node
    assert view.lost(scope, "x", "shape") is None


def test_unknown_rank_names_the_op_without_inference() -> None:
    nodes = [oh.make_node("Blur", ["x"], ["blurred"], name="blur", domain="com.example"),
             oh.make_node("Resize", ["blurred", "", "scales"], ["y"], name="resize", mode="nearest")]
    model = make(nodes, inputs=[oh.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 5]),
                                oh.make_tensor_value_info("scales", TensorProto.FLOAT, None)])
    model.opset_import.append(oh.make_opsetid("com.example", 1))
    _, _, sem = the_resize(ModelView.build(model))
    assert sem.problems[-1] == "input rank is unknown: lost at Blur node 'blur': no shape inference for com.example::Blur"


def runtime_model(which: str, x_dims=(1, 3, 4, 5)) -> onnx.ModelProto:
    x = oh.make_tensor_value_info("x", TensorProto.FLOAT, list(x_dims))
    if which == "scales":
        nodes = [oh.make_node("Resize", ["x", "", "scales"], ["y"], name="resize", mode="nearest")]
        return make(nodes, inputs=[x, oh.make_tensor_value_info("scales", TensorProto.FLOAT, [4])])
    nodes = [
        const("nc", [1, 3]),
        oh.make_node("Cast", ["hw"], ["hw64"], name="cast", to=TensorProto.INT64),
        oh.make_node("Concat", ["nc", "hw64"], ["sizes"], name="concat", axis=0),
        oh.make_node("Resize", ["x", "", "", "sizes"], ["y"], name="resize", mode="nearest"),
    ]
    return make(nodes, inputs=[x, oh.make_tensor_value_info("hw", TensorProto.INT32, [2])])


@pytest.mark.parametrize("which", ["scales", "sizes"])
def test_runtime_values_are_named_not_input_shape(which: str, tmp_path: Path) -> None:
    model = runtime_model(which)
    view = ModelView.build(model)
    _, _, sem = the_resize(view)
    (problem,) = sem.problems
    assert "--input-shape" not in problem and "value supplied at run time" in problem
    assert ("graph input 'scales'" if which == "scales" else "computed from graph input 'hw'") in problem
    assert view.lost(view.scopes[0], which).runtime_input == ("scales" if which == "scales" else "hw")
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    with pytest.raises(NotExactError) as info:
        fix_resize(path, "caffe", tmp_path / "out.onnx")
    assert "value supplied at run time" in str(info.value) and "--input-shape" not in str(info.value)


def test_input_values_pin_runtime_inputs() -> None:
    scales = np.array([1, 1, 2, 3], dtype=np.float32)
    view = ModelView.build(runtime_model("scales"), input_values={"scales": scales})
    scope, _, sem = the_resize(view)
    assert sem.resolved and sem.output_shape == (1, 3, 8, 15)
    assert view.input_values["scales"] is scales and np.array_equal(view.value(scope, "scales"), scales)
    assert view.lost(scope, "scales") is None
    view = ModelView.build(runtime_model("sizes"), input_values={"hw": np.array([7, 9], dtype=np.int32)})
    scope, _, sem = the_resize(view)
    assert sem.resolved and sem.output_shape == (1, 3, 7, 9)
    assert view.value(scope, "sizes").tolist() == [1, 3, 7, 9]


@pytest.mark.parametrize(("values", "shapes", "message"), [
    ({"nope": np.zeros(4, np.float32)}, None, "no graph input named 'nope'"),
    ({"scales": np.zeros(4, np.float64)}, None, "dtype float64 but the model declares float32"),
    ({"scales": np.zeros(3, np.float32)}, None, "dimension 0 is 4 in the model"),
    ({"scales": np.zeros((2, 2), np.float32)}, None, "rank 2 contradicts the model's rank 1"),
    ({"x": np.zeros((1, 3, 4, 5), np.float32)}, {"x": (1, 3, 4, 6)}, "contradicts --input-shape x=1x3x4x6"),
    ({"scales": ["one", "two"]}, None, "is not a list of numbers"),  # a plain list of numbers is taken (cast)
])
def test_input_values_are_validated(values, shapes, message) -> None:
    with pytest.raises(UsageError, match=message) as info:
        ModelView.build(runtime_model("scales", (1, 3, "H", "W")), input_shapes=shapes, input_values=values)
    assert "\n" not in str(info.value)


def test_big_results_are_shaped_not_computed(monkeypatch) -> None:
    from rewriter import static_values

    evaluated: list[str] = []
    real = static_values.evaluate_node
    monkeypatch.setattr(static_values, "evaluate_node", lambda node, *a: (evaluated.append(node.op_type), real(node, *a))[1])
    nodes = [
        const("times", [1, 1, 64, 64]),
        oh.make_node("Shape", ["x"], ["s"], name="shape"),
        oh.make_node("Mul", ["s", "times"], ["big_shape"], name="mul"),
        oh.make_node("ConstantOfShape", ["big_shape"], ["mask"], name="mask", value=numpy_helper.from_array(np.ones(1, np.float32))),
        oh.make_node("Mul", ["mask", "mask"], ["y"], name="square"),
    ]
    view = ModelView.build(make(nodes, x_shape=(1, 3, 64, 64)))
    scope = view.scopes[0]
    assert scope.lookup_shape("mask") == scope.lookup_shape("y") == (1, 3, 4096, 4096)
    assert view.value(scope, "mask") is None and evaluated == ["Mul"]  # the shape product only, never the 50M-element mask
    assert "more than the 65536 kept statically" in str(view.lost(scope, "mask"))


# --- weights stay unread -------------------------------------------------------------------------


def big_weight_model() -> onnx.ModelProto:
    """A 1x1 Conv with a 320x320 weight (102,400 elements) in front of the same-pad arithmetic and a Resize."""
    nodes = [oh.make_node("Conv", ["x", "big_w", "bias"], ["conv"], name="conv")] + same_pad_nodes("conv") + resize_by_shape("padded")
    inits = [weight("big_w", 320, 320, 1, 1), weight("bias", 320)]
    return make(nodes, inits, x_shape=(1, 320, 15, 17))


def test_no_big_initializer_is_read(monkeypatch) -> None:
    read: list[str] = []
    real = numpy_helper.to_array
    monkeypatch.setattr(numpy_helper, "to_array", lambda t, *a, **k: (read.append(t.name), real(t, *a, **k))[1])
    (sem,) = describe_model(ModelView.build(big_weight_model()))
    assert sem.resolved and sem.output_shape == (1, 320, 34, 38)
    assert "big_w" not in read and "bias" not in read  # the Conv's inputs are never needed


def test_external_weights_stay_unread(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(big_weight_model(), path, save_as_external_data=True, all_tensors_to_one_file=True, location="m.data", size_threshold=0)
    model = load_model(path)
    from rewriter import model_io

    read: list[str] = []
    real = model_io.read_tensor
    monkeypatch.setattr(model_io, "read_tensor", lambda m, t, d: (read.append(t.name), real(m, t, d))[1])
    (sem,) = describe_model(ModelView.build(model, str(tmp_path)))
    assert sem.resolved and sem.output_shape == (1, 320, 34, 38)
    assert read == []


def test_external_constants_are_read_on_request_only(tmp_path: Path, monkeypatch) -> None:
    """Scales stored externally behind a node: the pass reads no external data, the Resize's request does."""
    nodes = [oh.make_node("Identity", ["scales_raw"], ["scales_id"], name="identity"),
             oh.make_node("Cast", ["scales_id"], ["scales"], name="cast", to=TensorProto.FLOAT),
             oh.make_node("Conv", ["x", "w", "bias"], ["conv"], name="conv"),
             oh.make_node("Resize", ["conv", "", "scales"], ["y"], name="resize", mode="nearest")]
    model = make(nodes, [numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales_raw"), weight("w", 4, 3, 1, 1), weight("bias", 4)])
    path = tmp_path / "m.onnx"
    onnx.save(model, path, save_as_external_data=True, all_tensors_to_one_file=True, location="m.data", size_threshold=0)
    from rewriter import model_io

    read: list[str] = []
    real = model_io.read_tensor
    monkeypatch.setattr(model_io, "read_tensor", lambda m, t, d: (read.append(t.name), real(m, t, d))[1])
    view = ModelView.build(load_model(path), str(tmp_path))
    assert read == []
    (sem,) = describe_model(view)
    assert sem.resolved and sem.output_shape == (1, 4, 30, 34) and read == ["scales_raw"]
