"""ONNX node readers that hide opset differences, shared by the Core ML and Caffe exporters.

Several ops moved attributes to inputs over the opsets (Slice at 10, Pad and Clip at 11), changed a
default (Softmax's axis at 13) or have implicit forms (auto_pad). The readers return one normalised
description whatever the opset. A value that became an input is read through ``const(k, what)``, which
the exporter supplies: it returns the constant value of ``node.input[k]`` or refuses the node in its own
words (``what`` names the input for the message).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

ConstInput = Callable[[int, str], np.ndarray]


def attributes(node: onnx.NodeProto) -> dict[str, Any]:
    """The node's attributes by name, with string attributes decoded."""
    out = {}
    for a in node.attribute:
        v = onnx.helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def attribute(node: onnx.NodeProto, name: str, default: Any = None) -> Any:
    """One attribute of the node (decoded like ``attributes``), or ``default``."""
    return attributes(node).get(name, default)


def has_input(node: onnx.NodeProto, k: int) -> bool:
    """Whether optional input ``k`` is given (present and not the empty name)."""
    return len(node.input) > k and bool(node.input[k])


def _ints(values: np.ndarray) -> list[int]:
    return [int(v) for v in np.asarray(values).ravel()]


# --------------------------------------------------------------------------------------- Slice


@dataclass(frozen=True)
class SliceAxis:
    """One sliced axis as written in the node (axis made non-negative; start/end/step as given)."""

    axis: int
    start: int
    end: int
    step: int

    def bounds(self, length: int) -> tuple[int, int, int]:
        """(start, stop, step) clamped to an axis of ``length`` the way ONNX (and Python slicing) does."""
        return slice(self.start, self.end, self.step).indices(length)


def slice_axes(node: onnx.NodeProto, opset: int, rank: int, const: ConstInput) -> list[SliceAxis]:
    """Slice's axes: attributes before opset 10, inputs (optional axes and steps) from 10 on."""
    a = attributes(node)
    if opset < 10 or "starts" in a:
        starts, ends = list(a["starts"]), list(a["ends"])
        axes = list(a.get("axes", range(len(starts))))
        steps = [1] * len(starts)
    else:
        starts, ends = _ints(const(1, "starts")), _ints(const(2, "ends"))
        axes = _ints(const(3, "axes")) if has_input(node, 3) else list(range(len(starts)))
        steps = _ints(const(4, "steps")) if has_input(node, 4) else [1] * len(starts)
    return [
        SliceAxis(int(axis) % rank, int(start), int(end), int(step))
        for axis, start, end, step in zip(axes, starts, ends, steps)
    ]


# --------------------------------------------------------------------------------------- Pad


@dataclass(frozen=True)
class Padding:
    """A Pad node: mode, pads for every axis (all begins, then all ends) and the constant value."""

    mode: str
    pads: list[int]
    value: float


def padding(node: onnx.NodeProto, opset: int, rank: int, const: ConstInput) -> Padding:
    """Pad: attributes before opset 11 (``paddings`` in opset 1), inputs from 11 on (optional axes at 18)."""
    a = attributes(node)
    mode = a.get("mode", "constant")
    if opset < 11:
        return Padding(mode, list(a.get("pads", a.get("paddings", []))), float(a.get("value", 0.0)))
    pads = _ints(const(1, "pads"))
    value = float(np.asarray(const(2, "constant_value")).reshape(-1)[0]) if has_input(node, 2) else 0.0
    if has_input(node, 3):
        axes = [int(x) % rank for x in _ints(const(3, "axes"))]
        full = [0] * (2 * rank)
        for i, axis in enumerate(axes):
            full[axis], full[rank + axis] = pads[i], pads[len(axes) + i]
        pads = full
    return Padding(mode, pads, value)


# --------------------------------------------------------------------------------------- Clip


def clip_bounds(node: onnx.NodeProto, opset: int, const: ConstInput) -> tuple[float | None, float | None]:
    """(min, max) of a Clip, None where absent: attributes before opset 11, optional inputs from 11 on."""
    if opset < 11:
        a = attributes(node)
        lo, hi = a.get("min"), a.get("max")
        return (None if lo is None else float(lo)), (None if hi is None else float(hi))
    lo = float(const(1, "bounds")) if has_input(node, 1) else None
    hi = float(const(2, "bounds")) if has_input(node, 2) else None
    return lo, hi


# --------------------------------------------------------------------------------------- Reduce*


def reduce_axes(node: onnx.NodeProto, opset: int, const: ConstInput) -> list[int] | None:
    """The axes of a Reduce* node as given (None when absent): an attribute until opset 18 (13 for
    ReduceSum), an optional input from then on."""
    if opset >= 18 or (node.op_type == "ReduceSum" and opset >= 13):
        return _ints(const(1, "axes")) if has_input(node, 1) else None
    axes = attributes(node).get("axes")
    return None if axes is None else [int(a) for a in axes]


# --------------------------------------------------------------------------------------- Conv / pooling pads


@dataclass(frozen=True)
class ConvPadding:
    """Conv / ConvTranspose / pooling padding: ``auto_pad`` and the explicit pads (begins, then ends;
    zeros unless auto_pad is NOTSET)."""

    auto_pad: str
    pads: list[int]

    def explicit(self, spatial, kernel, strides, dilations) -> list[int]:
        """Begin and end pads of a convolution or pooling, with SAME_UPPER / SAME_LOWER worked out as ONNX
        Runtime does (output = ceil(input / stride); the odd pad goes to the end, or to the begin for LOWER)."""
        if self.auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
            return list(self.pads)
        begins, ends = [], []
        for i in range(len(spatial)):
            out = -(-spatial[i] // strides[i])
            extent = dilations[i] * (kernel[i] - 1) + 1
            total = max((out - 1) * strides[i] + extent - spatial[i], 0)
            small, big = total // 2, total - total // 2
            begins.append(small if self.auto_pad == "SAME_UPPER" else big)
            ends.append(big if self.auto_pad == "SAME_UPPER" else small)
        return begins + ends


def conv_padding(node: onnx.NodeProto, spatial_rank: int) -> ConvPadding:
    """The padding attributes of a node with ``spatial_rank`` spatial axes (an empty auto_pad is NOTSET)."""
    a = attributes(node)
    auto = a.get("auto_pad", "NOTSET") or "NOTSET"
    if auto == "NOTSET":
        return ConvPadding(auto, list(a.get("pads", [0] * (2 * spatial_rank))))
    return ConvPadding(auto, [0] * (2 * spatial_rank))


# --------------------------------------------------------------------------------------- Softmax


def softmax_axis(node: onnx.NodeProto, opset: int, shape: tuple[int, ...]) -> tuple[int, bool]:
    """(axis, flattened): Softmax-1/11 (default axis 1) normalises over the flattened block [axis:], which
    differs from a softmax along ``axis`` unless the axes after it are all 1; from opset 13 (default -1)
    it is a softmax along ``axis``."""
    rank = len(shape)
    axis = int(attributes(node).get("axis", -1 if opset >= 13 else 1)) % rank
    flattened = opset < 13 and int(np.prod(shape[axis + 1 :], dtype=np.int64)) != 1
    return axis, flattened


__all__ = [
    "ConstInput",
    "ConvPadding",
    "Padding",
    "SliceAxis",
    "attribute",
    "attributes",
    "clip_bounds",
    "conv_padding",
    "has_input",
    "padding",
    "reduce_axes",
    "slice_axes",
    "softmax_axis",
]
