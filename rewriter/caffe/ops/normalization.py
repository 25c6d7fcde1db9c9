"""Caffe translations of ONNX normalizations: BatchNormalization (inference form), Softmax, and the
normalizations over trailing axes (InstanceNormalization, LayerNormalization) and ReduceSum.

BVLC's MVN divides by sqrt(var) + eps where ONNX divides by sqrt(var + eps), so the normalizations are
spelled out with Reduction layers (which reduce every axis from ``axis`` on): mean, x - mean, the mean of
its squares, (var + eps) ^ -0.5 in one Power layer, and a Scale by it.
"""

from __future__ import annotations

import numpy as np
import onnx

from rewriter.caffe.net import F32, shape_msg
from rewriter.caffe.ops import CAFFE_OPS
from rewriter.caffe.translator import Problem, Translator
from rewriter.exporting.onnx_readers import attributes, reduce_axes, softmax_axis


def _training_mode(node: onnx.NodeProto, t: Translator) -> str | None:
    if attributes(node).get("training_mode", 0) or any(o for o in node.output[1:]):
        return "training mode"
    return None


@CAFFE_OPS.register(
    "BatchNormalization",
    becomes="BatchNorm (use_global_stats, scale factor 1) + Scale (gamma, beta)",
    precondition=_training_mode,
)
def batchnorm(t: Translator, node: onnx.NodeProto) -> None:
    a = attributes(node)
    x = t.data(node.input[0])
    gamma, beta, mean, var = (np.asarray(t.const(n), dtype=F32).reshape(-1) for n in node.input[1:5])
    eps = float(a.get("epsilon", 1e-5))
    (normed,) = t.net.add(
        "BatchNorm", [x], 1, t.lname("bn"), {"use_global_stats": True, "eps": eps}, [mean, var, np.ones(1, dtype=F32)]
    )
    (top,) = t.net.add("Scale", [normed], [node.output[0]], t.lname(), {"bias_term": True}, [gamma, beta])
    t.set(node.output[0], top)


@CAFFE_OPS.register("Softmax", becomes="Softmax (opset < 13: Reshape to 2-D, Softmax, Reshape back)")
def softmax(t: Translator, node: onnx.NodeProto) -> None:
    shape = t.shape(node.input[0])
    axis, flattened = softmax_axis(node, t.g.opset, shape)
    if not flattened:
        v = t.val(node.input[0])
        (top,) = t.net.add("Softmax", [v.blob], [node.output[0]], t.lname(), {"axis": v.perm.index(axis)})
        t.set(node.output[0], top, v.perm, v.via)
        return
    # Softmax-1/11 normalizes over the flattened block [axis:].
    x = t.data(node.input[0])
    outer, inner = int(np.prod(shape[:axis], dtype=np.int64)), int(np.prod(shape[axis:], dtype=np.int64))
    (flat,) = t.net.add("Reshape", [x], 1, t.lname("flatten"), {"shape": shape_msg((outer, inner))})
    (sm,) = t.net.add("Softmax", [flat], 1, t.lname("softmax"), {"axis": 1})
    (top,) = t.net.add("Reshape", [sm], [node.output[0]], t.lname(), {"shape": shape_msg(shape)})
    t.set(node.output[0], top)


def _normalize(t: Translator, x: str, axis: int, eps: float) -> str:
    """(x - mean) / sqrt(var + eps) over the axes from ``axis`` on (biased variance, like ONNX)."""
    count = int(np.prod(t.net.shapes[x][axis:], dtype=np.int64))
    (mean,) = t.net.add("Reduction", [x], 1, t.lname("mean"), {"operation": "MEAN", "axis": axis})
    (neg,) = t.net.add("Power", [mean], 1, t.lname("neg_mean"), {"scale": -1.0})
    (centered,) = t.net.add("Bias", [x, neg], 1, t.lname("centered"), {"axis": 0})
    (var,) = t.net.add(
        "Reduction", [centered], 1, t.lname("var"), {"operation": "SUMSQ", "axis": axis, "coeff": 1.0 / count}
    )
    (inv,) = t.net.add("Power", [var], 1, t.lname("inv_std"), {"power": -0.5, "shift": eps})
    (normed,) = t.net.add("Scale", [centered, inv], 1, t.lname("normed"), {"axis": 0})
    return normed


def _affine(t: Translator, node: onnx.NodeProto, normed: str, axis: int, gamma, beta, perm=None, via=()) -> None:
    """y = normed * gamma + beta, the constants covering the axes from ``axis`` on (blob layout ``perm``)."""
    shape = t.net.shapes[normed]
    block = shape[axis:]
    blobs = [np.ascontiguousarray(np.broadcast_to(np.asarray(gamma, dtype=F32), block))]
    if beta is not None:
        blobs.append(np.ascontiguousarray(np.broadcast_to(np.asarray(beta, dtype=F32), block)))
    params = {"axis": axis, "num_axes": len(block), "bias_term": beta is not None}
    (top,) = t.net.add("Scale", [normed], [node.output[0]], t.lname(), params, blobs)
    t.set(node.output[0], top, perm, via)


@CAFFE_OPS.register(
    "InstanceNormalization",
    becomes="Reduction MEAN, Power, Bias, Reduction SUMSQ, Power ((var + eps) ^ -0.5), Scale, Scale (gamma, beta)",
)
def instance_norm(t: Translator, node: onnx.NodeProto) -> None:
    x = t.data(node.input[0])
    if len(t.net.shapes[x]) < 3:
        raise Problem("needs N x C x spatial axes")
    normed = _normalize(t, x, 2, float(attributes(node).get("epsilon", 1e-5)))
    channels = t.net.shapes[x][1]
    gamma = np.asarray(t.const(node.input[1]), dtype=F32).reshape(channels)
    beta = np.asarray(t.const(node.input[2]), dtype=F32).reshape(channels)
    extra = len(t.net.shapes[x]) - 2
    _affine(t, node, normed, 1, gamma.reshape((channels,) + (1,) * extra), beta.reshape((channels,) + (1,) * extra))


def _layer_norm_refusal(node: onnx.NodeProto, t: Translator) -> str | None:
    if any(o for o in node.output[1:]):
        return "its Mean / InvStdDev outputs are used"
    return None


@CAFFE_OPS.register(
    "LayerNormalization",
    becomes="as InstanceNormalization, over the axes from `axis` on; channels-last (a middle block of the blob):"
    " 1x1 Convolutions of 1/n for the means, Tile, Eltwise",
    precondition=_layer_norm_refusal,
)
def layer_norm(t: Translator, node: onnx.NodeProto) -> None:
    v = t.val(node.input[0])
    rank = len(v.perm)
    a = attributes(node)
    axis = int(a.get("axis", -1))
    axis = axis + rank if axis < 0 else axis
    eps = float(a.get("epsilon", 1e-5))
    gamma, beta = t.const(node.input[1]), t.opt_const(node, 2)
    # The normalized axes as they lie in the blob (a channels-last LayerNorm between two Transposes
    # normalizes the blob's channel axis): the constants follow them into the blob's order.
    blob_axes = sorted(v.perm.index(d) for d in range(axis, rank))
    first, stop = blob_axes[0], blob_axes[-1] + 1
    if blob_axes != list(range(first, stop)):
        raise Problem(f"the normalized axes are not contiguous in the Caffe blob (blob = transpose(x, {list(v.perm)}))")
    if first < 1:
        raise Problem("a normalization over every axis (axis 0): Caffe's Scale needs a leading axis to broadcast over")
    block = tuple(t.shape(node.input[0])[axis:])
    order = [v.perm[j] - axis for j in range(first, stop)]
    gamma = np.transpose(np.broadcast_to(np.asarray(gamma, dtype=F32), block), order)
    beta = None if beta is None else np.transpose(np.broadcast_to(np.asarray(beta, dtype=F32), block), order)
    if stop == rank:
        _affine(t, node, _normalize(t, v.blob, first, eps), first, gamma, beta, v.perm, v.via)
        return
    _normalize_middle(t, node, v, first, stop, eps, gamma, beta)


def _split_sizes(shape, first: int, stop: int) -> tuple[int, int, int]:
    """Element counts before, inside and after the axes [first, stop)."""
    outer, block, inner = (int(np.prod(shape[a:b], dtype=np.int64)) for a, b in ((0, first), (first, stop), (stop, len(shape))))
    return outer, block, inner


def _normalize_middle(t: Translator, node: onnx.NodeProto, v, first: int, stop: int, eps: float, gamma, beta) -> None:
    """LayerNormalization over a middle block of the blob's axes: (outer, block, inner, 1), means by a 1x1
    Convolution of 1 / block, Tile to broadcast them back, Eltwise for x - mean and the products."""
    shape = t.net.shapes[v.blob]
    outer, block, inner = _split_sizes(shape, first, stop)
    conv = {"num_output": 1, "kernel_size": [1], "bias_term": False}
    average = [np.full((1, block, 1, 1), 1.0 / block, dtype=F32)]

    def spread(blob: str, hint: str) -> str:  # (outer, 1, inner, 1) -> (outer, block, inner, 1)
        (top,) = t.net.add("Tile", [blob], 1, t.lname(hint), {"axis": 1, "tiles": block})
        return top

    (x,) = t.net.add("Reshape", [v.blob], 1, t.lname("blocks"), {"shape": shape_msg((outer, block, inner, 1))})
    (mean,) = t.net.add("Convolution", [x], 1, t.lname("mean"), conv, average)
    (centered,) = t.net.add("Eltwise", [x, spread(mean, "mean_tiled")], 1, t.lname("centered"),
                            {"operation": "SUM", "coeff": [1.0, -1.0]})
    (square,) = t.net.add("Eltwise", [centered, centered], 1, t.lname("square"), {"operation": "PROD"})
    (var,) = t.net.add("Convolution", [square], 1, t.lname("var"), conv, average)
    (inv,) = t.net.add("Power", [var], 1, t.lname("inv_std"), {"power": -0.5, "shift": eps})
    (normed,) = t.net.add("Eltwise", [centered, spread(inv, "inv_std_tiled")], 1, t.lname("normed"),
                          {"operation": "PROD"})
    blobs = [gamma.reshape(block)] + ([] if beta is None else [beta.reshape(block)])
    params = {"axis": 1, "num_axes": 1, "bias_term": beta is not None}
    (y,) = t.net.add("Scale", [normed], 1, t.lname("affine"), params, blobs)
    (top,) = t.net.add("Reshape", [y], [node.output[0]], t.lname(), {"shape": shape_msg(shape)})
    t.set(node.output[0], top, v.perm, v.via)


@CAFFE_OPS.register(
    "ReduceSum",
    becomes="Reduction SUM (trailing axes) or a ones 1x1 Convolution (a middle block of axes), then Reshape",
)
def reduce_sum(t: Translator, node: onnx.NodeProto) -> None:
    reduce_block(t, node, mean=False)


def reduce_block(t: Translator, node: onnx.NodeProto, mean: bool) -> None:
    """Sum or mean over a contiguous block of axes: Reduction (SUM / MEAN) when the block is trailing, else
    (outer, block, inner, 1) through a 1x1 Convolution of ones (1 / block for a mean); Reshape to the output."""
    shape = t.shape(node.input[0])
    rank = len(shape)
    out = node.output[0]
    axes = reduce_axes(node, t.g.opset, t.const_input(node))
    if not axes:
        if attributes(node).get("noop_with_empty_axes", 0):
            t.alias(out, node.input[0])
            return
        axes = list(range(rank))
    axes = sorted({ax % rank for ax in axes})
    first, stop = axes[0], axes[-1] + 1
    if axes != list(range(first, stop)):
        raise Problem(f"axes {axes} are not contiguous (Caffe reduces a block of axes)")
    x = t.data(node.input[0])
    if stop == rank:
        plain = tuple(shape[:first]) == tuple(t.shape(out))
        (top,) = t.net.add("Reduction", [x], [out] if plain else 1, t.lname() if plain else t.lname("reduce"),
                           {"operation": "MEAN" if mean else "SUM", "axis": first})
        if plain:
            t.set(out, top)
            return
    else:
        outer, block, inner = _split_sizes(shape, first, stop)
        (flat,) = t.net.add("Reshape", [x], 1, t.lname("blocks"), {"shape": shape_msg((outer, block, inner, 1))})
        params = {"num_output": 1, "kernel_size": [1], "bias_term": False}
        weight = np.full((1, block, 1, 1), 1.0 / block if mean else 1.0, dtype=F32)
        (top,) = t.net.add("Convolution", [flat], 1, t.lname("reduce"), params, [weight])
    (top,) = t.net.add("Reshape", [top], [out], t.lname(), {"shape": shape_msg(t.shape(out))})
    t.set(out, top)
