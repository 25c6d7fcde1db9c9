"""Core ML translations of ONNX normalizations and reductions: BatchNormalization (inference form), Softmax,
InstanceNormalization, LayerNormalization, ReduceMean / ReduceSum / ReduceMax."""

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


def _affine_refusal(node: onnx.NodeProto, ctx: NodeContext) -> str | None:
    if any(o for o in node.output[1:]):
        return "its Mean / InvStdDev outputs are used"
    if not all(ctx.is_static(n) for n in node.input[1:] if n):
        return "scale or bias computed at run time"
    return None


@COREML_OPS.register(
    "InstanceNormalization",
    becomes="instance_norm (mlprogram, rank 3 and 4); else mean, x - mean, mean square, rsqrt(var, eps) * gamma, mul, add",
    precondition=_affine_refusal,
)
def instance_norm(t: Translator, node: onnx.NodeProto):
    x = t.var(node.input[0])
    dt = t.np_dtype(x)
    rank = len(t.shape(node.input[0]))
    gamma, beta = (t.need_const(node, k, "scale and bias").astype(dt).reshape(-1) for k in (1, 2))
    eps = dt.type(attribute(node, "epsilon", 1e-5))
    if rank in (3, 4) and t.model_format == "mlprogram":
        return t.mb.instance_norm(x=x, gamma=gamma, beta=beta, epsilon=eps, name=t.out_name(node))
    # gamma joins the (N, C, 1, ...) inverse deviation before it meets x: a mul + add by per-channel constants
    # would be fused by coremltools into a batchnorm that divides by sqrt(1 + 1e-5)
    shape = [-1] + [1] * (rank - 2)
    y = _normalized(t, node, x, list(range(2, rank)), eps, gamma.reshape(shape))
    return t.mb.add(x=y, y=beta.reshape(shape), name=t.out_name(node))


@COREML_OPS.register(
    "LayerNormalization",
    becomes="layer_norm over the axes from `axis` on (neuralnetwork: spelled out as InstanceNormalization)",
    precondition=_affine_refusal,
)
def layer_norm(t: Translator, node: onnx.NodeProto):
    x = t.var(node.input[0])
    dt = t.np_dtype(x)
    xs = t.shape(node.input[0])
    axis = int(attribute(node, "axis", -1)) % len(xs)
    block = tuple(xs[axis:])
    gamma = np.ascontiguousarray(np.broadcast_to(t.need_const(node, 1, "scale").astype(dt), block))
    kw = {"gamma": gamma}
    if len(node.input) > 2 and node.input[2]:
        kw["beta"] = np.ascontiguousarray(np.broadcast_to(t.need_const(node, 2, "bias").astype(dt), block))
    eps = dt.type(attribute(node, "epsilon", 1e-5))
    axes = list(range(axis, len(xs)))
    if t.model_format == "mlprogram":
        return t.mb.layer_norm(x=x, axes=axes, epsilon=eps, name=t.out_name(node), **kw)
    y = t.mb.mul(x=_normalized(t, node, x, axes, eps), y=kw["gamma"], name=t.tmp_name(node, "scale"))
    if "beta" not in kw:
        return t.mb.identity(x=y, name=t.out_name(node))
    return t.mb.add(x=y, y=kw["beta"], name=t.out_name(node))


def _normalized(t: Translator, node: onnx.NodeProto, x, axes: list[int], eps, gamma: np.ndarray | None = None):
    """(x - mean) / sqrt(var + eps) over ``axes`` from documented elementwise ops and reductions: the
    NeuralNetwork layers coremltools would use for instance_norm / layer_norm (mvn, batchnorm computing its
    own statistics) do not document where epsilon goes. ``gamma`` (shaped like the statistics) scales the
    inverse deviation."""
    mean = t.mb.reduce_mean(x=x, axes=axes, keep_dims=True, name=t.tmp_name(node, "mean"))
    centered = t.mb.sub(x=x, y=mean, name=t.tmp_name(node, "centered"))
    square = t.mb.mul(x=centered, y=centered, name=t.tmp_name(node, "square"))
    var = t.mb.reduce_mean(x=square, axes=axes, keep_dims=True, name=t.tmp_name(node, "var"))
    inv = t.mb.rsqrt(x=var, epsilon=eps, name=t.tmp_name(node, "inv_std"))
    if gamma is not None:
        inv = t.mb.mul(x=inv, y=gamma, name=t.tmp_name(node, "gain"))
    return t.mb.mul(x=centered, y=inv, name=t.tmp_name(node, "normed"))
