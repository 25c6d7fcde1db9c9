"""Caffe translations of ONNX activations and elementwise functions of one tensor.

Each becomes one layer in the tensor's current layout (no layout change is needed for a pointwise op):
ReLU / PReLU / Sigmoid / TanH / ELU / AbsVal / Exp / Log, or a Power layer ((shift + scale * x) ^ power)
for Sqrt, Reciprocal, Neg and Pow by a constant. Clip, HardSigmoid and HardSwish are compositions whose every
step is exact in float32 (a clamp is a max with a constant and a negation).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx

from rewriter.caffe.net import F32, shape_msg
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


def clamp(t: Translator, blob: str, lo: float | None, hi: float | None, top: str) -> str:
    """min(max(blob, lo), hi) with exact BVLC layers: ReLU (lo 0) or Eltwise MAX with a constant DummyData,
    and min(v, hi) = -max(-v, -hi) (negation is exact). An absent or infinite bound is skipped (one must be
    given)."""
    lo = None if lo is None or np.isinf(lo) and lo < 0 else float(lo)
    hi = None if hi is None or np.isinf(hi) and hi > 0 else float(hi)
    steps = [s for s, b in (("lo", lo), ("hi", hi)) if b is not None]

    def constant(value: float, hint: str) -> str:
        spec = {"shape": [shape_msg(t.net.shapes[blob])], "data_filler": [{"type": "constant", "value": value}]}
        (c,) = t.net.add("DummyData", [], 1, t.lname(hint), spec)
        return c

    if lo is not None:
        last = steps == ["lo"]
        name = [top] if last else 1
        if lo == 0:
            (blob,) = t.net.add("ReLU", [blob], name, t.lname() if last else t.lname("lower"))
        else:
            (blob,) = t.net.add("Eltwise", [blob, constant(lo, "lo")], name, t.lname() if last else t.lname("lower"),
                                {"operation": "MAX"})
    if hi is not None:
        (neg,) = t.net.add("Power", [blob], 1, t.lname("neg"), {"scale": -1.0})
        (mx,) = t.net.add("Eltwise", [neg, constant(-hi, "neg_hi")], 1, t.lname("max_neg"), {"operation": "MAX"})
        (blob,) = t.net.add("Power", [mx], [top], t.lname(), {"scale": -1.0})
    return blob


@CAFFE_OPS.register("Clip", becomes="ReLU / Eltwise MAX with a constant, min as -max(-x, -hi) (constant bounds)")
def clip(t: Translator, node: onnx.NodeProto) -> None:
    lo, hi = clip_bounds(node, t.g.opset, lambda k, what: t.const(node.input[k]))
    if (lo is None or np.isneginf(lo)) and (hi is None or np.isposinf(hi)):
        t.alias(node.output[0], node.input[0])
        return
    v = t.val(node.input[0])
    t.set(node.output[0], clamp(t, v.blob, lo, hi, node.output[0]), v.perm, v.via)


def _hard_sigmoid(t: Translator, blob: str, alpha: float, beta: float, top: str) -> str:
    (lin,) = t.net.add("Power", [blob], 1, t.lname("linear"), {"scale": alpha, "shift": beta})
    return clamp(t, lin, 0.0, 1.0, top)


@CAFFE_OPS.register("HardSigmoid", becomes="Power (alpha x + beta), then Clip(0, 1) as above")
def hard_sigmoid(t: Translator, node: onnx.NodeProto) -> None:
    a = attributes(node)
    v = t.val(node.input[0])
    top = _hard_sigmoid(t, v.blob, float(a.get("alpha", 0.2)), float(a.get("beta", 0.5)), node.output[0])
    t.set(node.output[0], top, v.perm, v.via)


@CAFFE_OPS.register("HardSwish", becomes="Eltwise PROD of x and HardSigmoid(x, 1/6, 1/2)")
def hard_swish(t: Translator, node: onnx.NodeProto) -> None:
    v = t.val(node.input[0])
    gate = _hard_sigmoid(t, v.blob, 1.0 / 6.0, 0.5, t.net.blob_name(t.lname("gate")))
    (top,) = t.net.add("Eltwise", [v.blob, gate], [node.output[0]], t.lname(), {"operation": "PROD"})
    t.set(node.output[0], top, v.perm, v.via)


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
