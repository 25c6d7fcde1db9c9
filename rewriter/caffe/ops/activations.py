"""Caffe translations of ONNX activations and elementwise functions of one tensor.

Each becomes one layer in the tensor's current layout (no layout change is needed for a pointwise op):
ReLU / PReLU / Sigmoid / TanH / ELU / AbsVal / Exp / Log, or a Power layer ((shift + scale * x) ^ power)
for Sqrt, Reciprocal, Neg and Pow by a constant.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx

from rewriter.caffe.net import F32
from rewriter.caffe.ops import CAFFE_OPS
from rewriter.caffe.translator import Problem, Translator
from rewriter.exporting.onnx_readers import attributes, clip_bounds

Handler = Callable[[Translator, onnx.NodeProto], None]


def unary(type_: str, params: dict | None = None) -> Handler:
    """A handler emitting one ``type_`` layer on the input blob, in its layout."""

    def handler(t: Translator, node: onnx.NodeProto) -> None:
        v = t.val(node.input[0])
        (top,) = t.net.add(type_, [v.blob], [node.output[0]], t.lname(), params)
        t.set(node.output[0], top, v.perm, v.via)

    return handler


def power(power: float = 1.0, scale: float = 1.0, shift: float = 0.0) -> Handler:
    return unary("Power", {"power": power, "scale": scale, "shift": shift})


CAFFE_OPS.register("Relu", becomes="ReLU")(unary("ReLU"))
CAFFE_OPS.register("Sigmoid", becomes="Sigmoid")(unary("Sigmoid"))
CAFFE_OPS.register("Tanh", becomes="TanH")(unary("TanH"))
CAFFE_OPS.register("Abs", becomes="AbsVal")(unary("AbsVal"))
CAFFE_OPS.register("Exp", becomes="Exp")(unary("Exp"))
CAFFE_OPS.register("Log", becomes="Log")(unary("Log"))
CAFFE_OPS.register("Sqrt", becomes="Power (power 0.5)")(power(power=0.5))
CAFFE_OPS.register("Reciprocal", becomes="Power (power -1)")(power(power=-1.0))
CAFFE_OPS.register("Neg", becomes="Power (scale -1)")(power(scale=-1.0))


@CAFFE_OPS.register("LeakyRelu", becomes="ReLU (negative_slope)")
def leaky_relu(t: Translator, node: onnx.NodeProto) -> None:
    unary("ReLU", {"negative_slope": float(attributes(node).get("alpha", 0.01))})(t, node)


@CAFFE_OPS.register("Elu", becomes="ELU")
def elu(t: Translator, node: onnx.NodeProto) -> None:
    unary("ELU", {"alpha": float(attributes(node).get("alpha", 1.0))})(t, node)


@CAFFE_OPS.register("Clip", becomes="ReLU (Clip(0, inf) only)")
def clip(t: Translator, node: onnx.NodeProto) -> None:
    lo, hi = clip_bounds(node, t.g.opset, lambda k, what: t.const(node.input[k]))
    if lo == 0 and (hi is None or np.isinf(hi)):
        unary("ReLU")(t, node)
        return
    raise Problem(f"Clip({lo}, {hi}): BVLC Caffe has only ReLU (min 0, no max)")


@CAFFE_OPS.register("Pow", becomes="Power (a constant scalar exponent)")
def pow_(t: Translator, node: onnx.NodeProto) -> None:
    e = t.const(node.input[1])
    if e.size != 1:
        raise Problem("the exponent must be one constant")
    power(power=float(e.ravel()[0]))(t, node)


@CAFFE_OPS.register("PRelu", becomes="PReLU (one slope, or one per channel)")
def prelu(t: Translator, node: onnx.NodeProto) -> None:
    x = t.data(node.input[0])
    shape = t.shape(node.input[0])
    slope = np.asarray(t.const(node.input[1]), dtype=F32)
    try:
        full = np.broadcast_to(slope, shape)
    except ValueError:
        raise Problem(f"slope {slope.shape} does not broadcast to {shape}") from None
    if len(shape) > 4 or len(shape) < 2:
        raise Problem("Caffe's PReLU takes 2-D to 4-D blobs")
    if np.all(full == full.ravel()[0]):
        (top,) = t.net.add(
            "PReLU", [x], [node.output[0]], t.lname(), {"channel_shared": True}, [np.array(full.ravel()[0], dtype=F32)]
        )
    else:
        per_channel = full[0].reshape(shape[1], -1) if len(shape) >= 2 else None
        if per_channel is None or not np.all(per_channel == per_channel[:, :1]) or not np.all(full == full[:1]):
            raise Problem("the slope varies along more than the channel axis (Caffe's PReLU is per channel)")
        (top,) = t.net.add("PReLU", [x], [node.output[0]], t.lname(), None, [per_channel[:, 0].copy()])
    t.set(node.output[0], top)
