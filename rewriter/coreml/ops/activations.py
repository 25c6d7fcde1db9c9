"""Core ML translations of ONNX activations and elementwise functions of one tensor.

Most are one MIL op of the same name; HardSwish, Neg and a PRelu whose slope is not one per channel are
spelled with a few elementwise ops, and Clip picks relu / relu6 / clip / maximum / minimum by its bounds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import onnx

from rewriter.coreml.ops import COREML_OPS
from rewriter.coreml.translator import Translator
from rewriter.exporting.onnx_readers import attribute, clip_bounds


def unary(t: Translator, op: str, node: onnx.NodeProto, **kw: Any):
    """One MIL op ``op`` on the node's input, named for its output."""
    return getattr(t.mb, op)(x=t.var(node.input[0]), name=t.out_name(node), **kw)


def _same_name(op: str) -> Callable[[Translator, onnx.NodeProto], Any]:
    return lambda t, node: unary(t, op, node)


for _onnx_op, _mil_op in (
    ("Relu", "relu"),
    ("Sigmoid", "sigmoid"),
    ("Tanh", "tanh"),
    ("Sqrt", "sqrt"),
    ("Exp", "exp"),
    ("Log", "log"),
    ("Abs", "abs"),
    ("Erf", "erf"),
    ("Softplus", "softplus"),
):
    COREML_OPS.register(_onnx_op, becomes=_mil_op)(_same_name(_mil_op))


@COREML_OPS.register("Neg", becomes="mul(x, -1)")
def neg(t: Translator, node: onnx.NodeProto):
    x = t.var(node.input[0])
    return t.mb.mul(x=x, y=t.np_dtype(x).type(-1), name=t.out_name(node))


@COREML_OPS.register("LeakyRelu", becomes="leaky_relu")
def leaky_relu(t: Translator, node: onnx.NodeProto):
    return unary(t, "leaky_relu", node, alpha=np.float32(attribute(node, "alpha", 0.01)))


@COREML_OPS.register("Elu", becomes="elu")
def elu(t: Translator, node: onnx.NodeProto):
    return unary(t, "elu", node, alpha=np.float32(attribute(node, "alpha", 1.0)))


@COREML_OPS.register("HardSigmoid", becomes="sigmoid_hard")
def hard_sigmoid(t: Translator, node: onnx.NodeProto):
    alpha, beta = np.float32(attribute(node, "alpha", 0.2)), np.float32(attribute(node, "beta", 0.5))
    return unary(t, "sigmoid_hard", node, alpha=alpha, beta=beta)


@COREML_OPS.register("HardSwish", becomes="mul(x, sigmoid_hard(x, 1/6, 1/2))")
def hard_swish(t: Translator, node: onnx.NodeProto):
    x = t.var(node.input[0])
    gate = t.mb.sigmoid_hard(x=x, alpha=np.float32(1 / 6), beta=np.float32(0.5), name=t.tmp_name(node, "gate"))
    return t.mb.mul(x=x, y=gate, name=t.out_name(node))


@COREML_OPS.register("Gelu", becomes="gelu (EXACT or TANH_APPROXIMATION)")
def gelu(t: Translator, node: onnx.NodeProto):
    mode = "TANH_APPROXIMATION" if attribute(node, "approximate", "none") == "tanh" else "EXACT"
    return unary(t, "gelu", node, mode=mode)


@COREML_OPS.register("PRelu", becomes="prelu (one slope per channel) or relu + minimum + mul")
def prelu(t: Translator, node: onnx.NodeProto):
    x = t.var(node.input[0])
    slope = t.const(node.input[1])
    xs = t.shape(node.input[0])
    per_channel = slope is not None and len(xs) >= 3 and xs[1] > 1 and slope.size == xs[1]
    if per_channel and (slope.ndim == 1 or slope.shape[0] == xs[1]):
        return t.mb.prelu(x=x, alpha=slope.reshape(-1).astype(np.float32), name=t.out_name(node))
    if slope is not None and slope.size == 1:
        return t.mb.leaky_relu(x=x, alpha=np.float32(slope.reshape(-1)[0]), name=t.out_name(node))
    pos = t.mb.relu(x=x, name=t.tmp_name(node, "pos"))
    neg = t.mb.minimum(x=x, y=t.np_dtype(x).type(0), name=t.tmp_name(node, "neg"))
    scaled = t.mb.mul(x=neg, y=t.var(node.input[1], x), name=t.tmp_name(node, "scaled"))
    return t.mb.add(x=pos, y=scaled, name=t.out_name(node))


@COREML_OPS.register("Clip", becomes="clip / relu / relu6 / maximum / minimum")
def clip(t: Translator, node: onnx.NodeProto):
    x = t.var(node.input[0])
    lo, hi = clip_bounds(node, t.opset, t.const_input(node))
    dt = t.np_dtype(x)
    name = t.out_name(node)
    if lo is not None and hi is not None:
        if lo == 0 and hi == 6:
            return t.mb.relu6(x=x, name=name)
        return t.mb.clip(x=x, alpha=np.float32(lo), beta=np.float32(hi), name=name)
    if lo is not None:
        if lo == 0:
            return t.mb.relu(x=x, name=name)
        return t.mb.maximum(x=x, y=dt.type(lo), name=name)
    if hi is not None:
        return t.mb.minimum(x=x, y=dt.type(hi), name=name)
    return t.mb.identity(x=x, name=name)
