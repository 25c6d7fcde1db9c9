"""Core ML translations of ONNX normalizations and reductions: BatchNormalization (inference form), Softmax,
ReduceMean / ReduceSum / ReduceMax."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import onnx

from rewriter.coreml.ops import COREML_OPS, NodeContext
from rewriter.coreml.translator import Translator
from rewriter.exporting.onnx_readers import attribute, reduce_axes, softmax_axis


def _batch_norm_refusal(node: onnx.NodeProto, ctx: NodeContext) -> str | None:
    if attribute(node, "training_mode", 0):
        return "training_mode=1"
    if not all(ctx.is_static(n) for n in node.input[1:5]):
        return "statistics computed at run time"
    return None


@COREML_OPS.register(
    "BatchNormalization",
    becomes="batch_norm (inference form, constant statistics)",
    precondition=_batch_norm_refusal,
)
def batch_norm(t: Translator, node: onnx.NodeProto):
    x = t.var(node.input[0])
    dt = t.np_dtype(x)
    gamma, beta, mean, var = (t.need_const(node, k, "statistics").astype(dt) for k in (1, 2, 3, 4))
    rank = len(t.shape(node.input[0]))
    eps = attribute(node, "epsilon", 1e-5)
    if rank not in (3, 4, 5):  # batch_norm takes rank 3..5: spell out y = x * scale + shift
        scale = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + float(eps))
        shift = beta.astype(np.float64) - mean.astype(np.float64) * scale
        shape = [-1] + [1] * (rank - 2) if rank >= 2 else [-1]
        y = t.mb.mul(x=x, y=scale.reshape(shape).astype(dt), name=t.tmp_name(node, "scale"))
        return t.mb.add(x=y, y=shift.reshape(shape).astype(dt), name=t.out_name(node))
    return t.mb.batch_norm(
        x=x, mean=mean, variance=var, gamma=gamma, beta=beta, epsilon=np.float32(eps), name=t.out_name(node)
    )


@COREML_OPS.register("Softmax", becomes="softmax (opset < 13: 2-D coercion through reshape)")
def softmax(t: Translator, node: onnx.NodeProto):
    xs = t.shape(node.input[0])
    axis, flattened = softmax_axis(node, t.opset, xs)
    x = t.var(node.input[0])
    if not flattened:
        return t.mb.softmax(x=x, axis=axis, name=t.out_name(node))
    flat_shape = np.array([int(np.prod(xs[:axis])), int(np.prod(xs[axis:]))], dtype=np.int32)
    flat = t.mb.reshape(x=x, shape=flat_shape, name=t.tmp_name(node, "2d"))
    y = t.mb.softmax(x=flat, axis=1, name=t.tmp_name(node, "softmax"))
    return t.mb.reshape(x=y, shape=np.array(xs, dtype=np.int32), name=t.out_name(node))


def _reduction(op: str) -> Callable[[Translator, onnx.NodeProto], Any]:
    def handler(t: Translator, node: onnx.NodeProto):
        xs = t.shape(node.input[0])
        keep = bool(attribute(node, "keepdims", 1))
        axes = reduce_axes(node, t.opset, t.const_input(node))
        if not axes:
            if attribute(node, "noop_with_empty_axes", 0):
                return t.mb.identity(x=t.var(node.input[0]), name=t.out_name(node))
            axes = list(range(len(xs)))
        axes = sorted({a % len(xs) for a in axes})
        return getattr(t.mb, op)(x=t.var(node.input[0]), axes=axes, keep_dims=keep, name=t.out_name(node))

    return handler


for _onnx_op, _mil_op in (("ReduceMean", "reduce_mean"), ("ReduceSum", "reduce_sum"), ("ReduceMax", "reduce_max")):
    COREML_OPS.register(_onnx_op, becomes=_mil_op)(_reduction(_mil_op))
