"""The pass contract: every step is proved by weights (a wrong rewrite is rejected, respelling or lowering),
the schedule is validated, failures name the pass and the node, --lower means the form asked for or a
refusal, and fix-resize, check and inspect are one code path."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto
from onnx import helper as oh

from passes.canonicalize import Canonicalize
from passes.fold_sizes import FoldSizes
from passes.legacy_upgrade import LegacyUpgrade
from passes.lower_matmul import LowerToMatMul
from rewriter import check, inspect
from rewriter.emit import conv_transpose_lowering, matmul_lowering
from rewriter.errors import NotExactError, PassError
from rewriter.fix import fix_resize
from rewriter.graph import ModelView
from rewriter.lowering import ConvTransposeForm
from rewriter.pipeline import LOWER, RESPELL, Lowering, NodeContext, NodeState, Pass, PassManager, ScheduleError
from rewriter.plan import AS_IS
from rewriter.resize import describe_node, find_resizes
from rewriter.sampling import AxisWeights
from rewriter.spelling import Spelling
from rewriter.splice import RULE_KEY, SOURCE_KEY
from tests.resize_cases import build_resize_model
from tests.test_passes import assert_same, context


def _half_pixel_x2(shape=(1, 2, 4, 5)) -> onnx.ModelProto:
    return build_resize_model(shape, 13, {"mode": "linear"}, scales=[1, 1, 2, 2])


class WrongTransform(Pass):
    """Respells half_pixel as asymmetric: same sizes, different weights."""

    name = "wrong-transform"
    kind = RESPELL

    def check(self, ctx: NodeContext) -> str | None:
        return None

    def rewrite(self, ctx: NodeContext) -> NodeState:
        return NodeState((Spelling(mode="linear", transform="asymmetric", sizes=tuple(int(d) for d in ctx.original.output_shape)),))


class ShiftedMatMul(Pass):
    """Lowers with the node's matrices, except one row moved by one input sample."""

    name = "shifted-matmul"
    kind = LOWER

    def check(self, ctx: NodeContext) -> str | None:
        return None

    def rewrite(self, ctx: NodeContext) -> NodeState:
        sem = ctx.original
        weights = {a: sem.axis_weights(a) for a in sem.resized_axes}
        w = weights[3].matrix.copy()
        w[1] = np.roll(w[1], 1)
        weights[3] = AxisWeights(w)
        sub = matmul_lowering(ctx.node.input[0], ctx.node.output[0], "bad", sem.rank, weights, 0.0, sem.elem_type)
        return NodeState(lowering=Lowering("matmul", {}, sub))


class WrongCrop(Pass):
    """The half_pixel x2 ConvTranspose form with its crop off by one (the classic off-by-one at the border)."""

    name = "wrong-crop"
    kind = LOWER

    def check(self, ctx: NodeContext) -> str | None:
        return None

    def rewrite(self, ctx: NodeContext) -> NodeState:
        sem = ctx.original
        form = ConvTransposeForm((0.25, 0.75, 0.75, 0.25), 2, 1, 1, 2, 4)  # right: crop 3/3
        forms = {2: form, 3: form}
        sub = conv_transpose_lowering(ctx.node.input[0], ctx.node.output[0], "bad", sem.rank, 2, forms, sem.elem_type, 13, use_slices=False)
        return NodeState(lowering=Lowering("conv_transpose", forms, sub))  # type: ignore[arg-type]


@pytest.mark.parametrize("bad_pass", [WrongTransform(), ShiftedMatMul(), WrongCrop()], ids=lambda p: p.name)
def test_a_wrong_rewrite_is_rejected(bad_pass: Pass) -> None:
    ctx = context(_half_pixel_x2())
    PassManager([bad_pass]).run(ctx)
    assert ctx.state.kind == "original" and not ctx.steps
    assert ctx.skipped[bad_pass.name].startswith("rejected: ")


def test_the_right_crop_is_accepted() -> None:
    """The proof is not a blanket refusal: the same lowering with the right crop is taken."""

    class RightCrop(WrongCrop):
        name = "right-crop"

        def rewrite(self, ctx: NodeContext) -> NodeState:
            form = ConvTransposeForm((0.25, 0.75, 0.75, 0.25), 2, 1, 1, 3, 3)
            sub = conv_transpose_lowering(ctx.node.input[0], ctx.node.output[0], "ok", 4, 2, {2: form, 3: form}, TensorProto.FLOAT, 13, use_slices=True)
            return NodeState(lowering=Lowering("conv_transpose", {2: form, 3: form}, sub))

    ctx = context(_half_pixel_x2())
    PassManager([RightCrop()]).run(ctx)
    assert ctx.state.kind == "lowered", ctx.skipped


def test_schedule_validation() -> None:
    with pytest.raises(ScheduleError, match="must run after 'fold-sizes'"):
        PassManager([LegacyUpgrade(), Canonicalize(), FoldSizes()])
    with pytest.raises(ScheduleError, match="respelling pass"):
        PassManager([LowerToMatMul(), LegacyUpgrade()])
    with pytest.raises(ScheduleError, match="twice"):
        PassManager([Canonicalize(), Canonicalize()])


def test_an_unexpected_exception_names_the_pass_the_node_and_the_passes_before() -> None:
    class Broken(Pass):
        name = "broken"
        kind = LOWER

        def check(self, ctx: NodeContext) -> str | None:
            return None

        def rewrite(self, ctx: NodeContext) -> NodeState:
            raise ZeroDivisionError("division by zero")

    model = build_resize_model((1, 1, 4, 4), 10, {"mode": "linear"}, scales=[1, 1, 2, 2])
    ctx = context(model)
    with pytest.raises(PassError) as e:
        PassManager([LegacyUpgrade(), Broken()]).run(ctx)
    message = str(e.value)
    assert "'broken'" in message and "legacy-upgrade" in message and "ZeroDivisionError" in message
    assert ctx.original.qualified_name in message


@pytest.mark.parametrize(("lower", "op"), [("deconv", "ConvTranspose"), ("matmul", "MatMul"), ("gather", "Gather")])
def test_lower_gives_the_form_asked_for(lower: str, op: str) -> None:
    model = build_resize_model((1, 2, 4, 5), 13, {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}, scales=[1, 1, 2, 3])
    fixed = fix_resize(model, "onnx", lower=lower).model
    lowering_ops = {"ConvTranspose", "MatMul", "Gather"}
    assert {n.op_type for n in fixed.graph.node} & lowering_ops == {op}
    assert_same(model, fixed, (1, 2, 4, 5))


@pytest.mark.parametrize(
    ("attrs", "sizes", "lower", "target", "why"),
    [
        ({"mode": "linear"}, [1, 2, 7, 9], "deconv", "onnx", "not periodic"),  # fractional ratio
        ({"mode": "nearest"}, [1, 2, 8, 10], "gather", "caffe", "no Gather layer"),
        ({"mode": "linear"}, [1, 2, 8, 10], "gather", "onnx", "not a pure index selection"),
    ],
)
def test_lower_refuses_where_the_form_is_not_exact(attrs: dict, sizes: list[int], lower: str, target: str, why: str) -> None:
    model = build_resize_model((1, 2, 4, 5), 13, attrs, sizes=sizes)
    with pytest.raises(NotExactError, match=why) as e:
        fix_resize(model, target, lower=lower)
    assert "\n" not in str(e.value) and "--lower auto" in str(e.value)


def test_lower_deconv_refuses_integer_data() -> None:
    model = build_resize_model((1, 2, 4, 5), 13, {"mode": "nearest"}, sizes=[1, 2, 8, 10], elem_type=TensorProto.INT8)
    with pytest.raises(NotExactError, match="integer data"):
        fix_resize(model, "onnx", lower="deconv")


def _rank5_nearest() -> onnx.ModelProto:
    return build_resize_model((1, 2, 3, 4, 5), 13, {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}, scales=[1, 1, 1, 2, 2])


@pytest.mark.parametrize(
    "model",
    [
        build_resize_model((1, 2, 4, 5), 18, {"mode": "linear", "antialias": 1}, scales=[1, 1, 2, 2]),
        _rank5_nearest(),
        build_resize_model((1, 2, 4, 5), 18, {"mode": "cubic", "antialias": 1}, sizes=[1, 2, 3, 3]),
    ],
    ids=["antialias-x2", "rank5-nearest", "antialias-cubic-down"],
)
@pytest.mark.parametrize("target", ["onnx", "coreml", "caffe"])
def test_check_passes_on_fix_resize_output(model: onnx.ModelProto, target: str) -> None:
    """Measured before: check --target coreml failed on fix-resize's own output for these two nodes."""
    fixed = fix_resize(model, target).model
    result = check(fixed, target)
    assert result.ok, [n.plans[target].how for n in result.failing]


def _runtime_input_model(which: str) -> onnx.ModelProto:
    inputs = ["x", "", "scales"] if which == "scales" else ["x", "", "", "sizes"]
    runtime = oh.make_tensor_value_info(which, TensorProto.FLOAT if which == "scales" else TensorProto.INT64, [4])
    graph = oh.make_graph(
        [oh.make_node("Resize", inputs, ["y"], name="up", mode="linear")],
        "g",
        [oh.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 5]), runtime],
        [oh.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("which", ["scales", "sizes"])
@pytest.mark.parametrize("target", ["onnx", "coreml", "caffe"])
def test_fix_resize_and_check_agree_on_runtime_inputs(which: str, target: str) -> None:
    """scales/sizes given as graph inputs (as ONNX's conformance tests do): both accept or both refuse."""
    model = _runtime_input_model(which)
    accepted = check(model, target).ok
    try:
        result = fix_resize(model, target)
    except NotExactError as e:
        assert not accepted and "up" in str(e)
        return
    assert accepted and all(n.exact for n in result.nodes) and not result.changed
    assert (which, target) == ("sizes", "onnx")  # portable ONNX takes any run-time sizes


def test_emitted_nodes_carry_their_rule_and_source() -> None:
    model = build_resize_model((1, 2, 4, 5), 10, {"mode": "linear"}, scales=[1, 1, 2, 2])
    result = fix_resize(model, "caffe")
    (node,) = result.nodes
    emitted = [n for n in result.model.graph.node if n.name in node.emitted_nodes]
    assert emitted and len(emitted) == len(result.model.graph.node)
    for n in emitted:
        props = {e.key: e.value for e in n.metadata_props}
        assert props[RULE_KEY] == ",".join(node.passes) and props[SOURCE_KEY] == model.graph.node[0].name
    assert node.state.kind == "lowered" and node.state.lowering.form == "conv_transpose"
    assert set(node.state.lowering.parameters) == {2, 3}


def test_provenance_of_a_split_respelling() -> None:
    """pytorch_half_pixel to length 1 on H and x2 on W: two Resize nodes, each with its semantics."""
    model = build_resize_model((1, 1, 4, 5), 13, {"mode": "linear", "coordinate_transformation_mode": "pytorch_half_pixel"}, sizes=[1, 1, 1, 10])
    result = fix_resize(model, "onnx")
    (node,) = result.nodes
    assert node.state.kind == "respelled" and len(node.resize_nodes) == 2
    assert [sem.resized_axes for _, sem in node.resize_nodes] == [(2,), (3,)]
    assert [output for output, _ in node.resize_nodes] == [n.output[0] for n in result.model.graph.node]


@pytest.mark.parametrize("target", ["onnx", "coreml", "caffe"])
def test_inspect_predicts_the_passes_fix_resize_applies(target: str) -> None:
    models = [_half_pixel_x2(), _rank5_nearest(), build_resize_model((1, 2, 4, 5), 10, {"mode": "nearest"}, scales=[1, 1, 1.5, 0.6])]
    for model in models:
        predicted = inspect(model, targets=(target,)).nodes
        applied = fix_resize(model, target).nodes
        assert [n.plans[target].passes for n in predicted] == [n.passes for n in applied]
        assert all((n.plans[target].verdict == AS_IS) == (not a.passes) for n, a in zip(predicted, applied))


def test_every_step_is_proved_without_verify() -> None:
    """--verify none turns ONNX Runtime off, not the weight proofs: the fixed model is still exact."""
    model = build_resize_model((1, 2, 6, 7), 18, {"mode": "cubic", "antialias": 1}, sizes=[1, 2, 4, 11])
    result = fix_resize(model, "caffe", verify="none")
    assert result.nodes[0].max_error is None
    assert_same(model, result.model, (1, 2, 6, 7))


def test_semantics_of_the_kept_node_is_the_original() -> None:
    model = _half_pixel_x2()
    (node,) = fix_resize(model, "coreml").nodes
    view = ModelView.build(model)
    scope, resize = find_resizes(view)[0]
    assert node.state.kind == "original" and node.resize_nodes == [(resize.output[0], describe_node(view, scope, resize))]


def test_cubic_crop_on_nhwc_is_refused_not_miscomputed() -> None:
    """ORT's bicubic kernel extrapolates a tf_crop_and_resize on other axes when H of N x H x W x C is resized:
    not modelled, so never lowered (a lowering of the modelled weights would differ from ORT)."""
    model = build_resize_model((1, 5, 7, 2), 13, {"mode": "cubic", "coordinate_transformation_mode": "tf_crop_and_resize", "extrapolation_value": -1.0},
                               sizes=[1, 8, 11, 2], roi=[0, -0.2, 0.1, 0, 1, 1.2, 0.8, 1])
    with pytest.raises(NotExactError, match="not modelled"):
        fix_resize(model, "caffe", verify="none")
    assert not fix_resize(model, "onnx").changed  # portable ONNX keeps it as it is
