"""The pieces both exporters share: the op registry and the opset-normalised ONNX readers."""

from __future__ import annotations

import numpy as np
import onnx.helper as oh
import pytest

from rewriter.exporting.onnx_readers import clip_bounds, conv_padding, padding, reduce_axes, slice_axes, softmax_axis
from rewriter.exporting.registry import OpRegistry


def _consts(values: dict[int, list]):
    return lambda k, what: np.array(values[k])


def test_registry_lookup_precondition_and_table() -> None:
    ops = OpRegistry("Test")

    @ops.register("Relu", "Sigmoid", becomes="act", precondition=lambda node, ctx: ctx.get(node.op_type))
    def act(t, node):
        return node.op_type

    assert "Relu" in ops and "Tanh" not in ops
    assert ops.lookup(oh.make_node("Relu", ["x"], ["y"])).handler is act
    assert ops.lookup(oh.make_node("Relu", ["x"], ["y"], domain="com.example")) is None
    assert ops.refusal(oh.make_node("Sigmoid", ["x"], ["y"]), {"Sigmoid": "no"}) == "no"
    assert ops.refusal(oh.make_node("Relu", ["x"], ["y"]), {"Sigmoid": "no"}) is None
    assert ops.markdown("Target") == "| ONNX op | Target |\n|---|---|\n| Relu | act |\n| Sigmoid | act |"
    with pytest.raises(ValueError, match="registered twice"):
        ops.register("Relu", becomes="again")(act)


def test_slice_attributes_before_opset_10_and_inputs_after() -> None:
    old = oh.make_node("Slice", ["x"], ["y"], starts=[1, -3], ends=[100, -1], axes=[0, -1])
    assert [(a.axis, a.bounds(10)) for a in slice_axes(old, 9, 3, _consts({}))] == [(0, (1, 10, 1)), (2, (7, 9, 1))]
    new = oh.make_node("Slice", ["x", "s", "e", "a", "st"], ["y"])
    axes = slice_axes(new, 13, 2, _consts({1: [-1], 2: [-(2**63)], 3: [1], 4: [-1]}))
    assert [(a.axis, a.step, a.bounds(5)) for a in axes] == [(1, -1, (4, -1, -1))]


def test_pad_attributes_before_opset_11_and_inputs_with_axes_after() -> None:
    old = oh.make_node("Pad", ["x"], ["y"], mode="edge", pads=[0, 1, 0, 2])
    spec = padding(old, 2, 2, _consts({}))
    assert (spec.mode, spec.pads, spec.value) == ("edge", [0, 1, 0, 2], 0.0)
    new = oh.make_node("Pad", ["x", "p", "v", "a"], ["y"])
    spec = padding(new, 18, 3, _consts({1: [1, 2], 2: [0.5], 3: [-1]}))
    assert (spec.mode, spec.pads, spec.value) == ("constant", [0, 0, 1, 0, 0, 2], 0.5)


def test_clip_softmax_reduce_and_auto_pad() -> None:
    assert clip_bounds(oh.make_node("Clip", ["x"], ["y"], min=0.0), 6, _consts({})) == (0.0, None)
    assert clip_bounds(oh.make_node("Clip", ["x", "", "hi"], ["y"]), 13, _consts({2: 6.0})) == (None, 6.0)
    node = oh.make_node("Softmax", ["x"], ["y"])
    assert softmax_axis(node, 11, (2, 3, 4)) == (1, True)
    assert softmax_axis(node, 11, (2, 3, 1)) == (1, False)
    assert softmax_axis(node, 13, (2, 3, 4)) == (2, False)
    assert reduce_axes(oh.make_node("ReduceSum", ["x", "a"], ["y"]), 13, _consts({1: [2, 3]})) == [2, 3]
    assert reduce_axes(oh.make_node("ReduceMean", ["x"], ["y"], axes=[-1]), 13, _consts({})) == [-1]
    same = conv_padding(oh.make_node("Conv", ["x", "w"], ["y"], auto_pad="SAME_LOWER"), 1)
    assert same.explicit([5], [4], [1], [1]) == [2, 1]
    assert conv_padding(oh.make_node("Conv", ["x", "w"], ["y"], pads=[1, 2]), 1).explicit([5], [3], [1], [1]) == [1, 2]
