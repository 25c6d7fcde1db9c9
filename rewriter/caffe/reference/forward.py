"""Per-layer forward pass of the Caffe reference evaluator: Caffe's Forward_cpu in the TEST phase
(``forward_layer``), float32 blobs with float64 accumulation where Caffe sums."""

from __future__ import annotations

import math

import numpy as np

from rewriter.caffe.reference.blobs import F32, CaffeReferenceError, canonical_axis, check, element_count
from rewriter.caffe.reference.shapes import layer_shapes
from rewriter.caffe.reference.spatial import conv_forward, conv_shapes, deconv_forward, interp_forward, pool_forward


def _scale_broadcast(b0: tuple[int, ...], axis: int, operand: np.ndarray) -> np.ndarray:
    shape = [1] * len(b0)
    for k, d in enumerate(operand.shape):
        shape[axis + k] = d
    return operand.reshape(shape)


def _reduction(layer, x: np.ndarray) -> np.ndarray:
    """reduction_layer.cpp: per leading index, a float32 sum (SUM, ASUM, SUMSQ, MEAN) times coeff, where MEAN
    multiplies by coeff / dim (the reciprocal, not a division)."""
    p = layer.reduction_param
    axis = canonical_axis(p.axis, x.ndim)
    rows = x.reshape(element_count(x.shape, 0, axis), -1).astype(np.float64)
    op = p.operation
    check(op in (1, 2, 3, 4), f"{layer.name}: unknown reduction operation {op}")
    values = np.abs(rows) if op == 2 else rows * rows if op == 3 else rows
    sums = values.sum(axis=1).astype(F32)
    coeff = F32(p.coeff)
    if op == 4:
        coeff = F32(coeff / F32(max(rows.shape[1], 1)))
    if coeff != 1:
        sums = (sums * coeff).astype(F32)
    return sums.reshape(x.shape[:axis])


def forward_layer(layer, bottoms: list[np.ndarray], blobs: list[np.ndarray]) -> list[np.ndarray]:
    """Caffe's Forward_cpu for one layer (TEST phase)."""
    t = layer.type
    x = bottoms[0] if bottoms else None
    if t in ("Convolution", "Deconvolution"):
        _, _, geom = conv_shapes(layer, x.shape, t == "Deconvolution")
        bias = blobs[1] if layer.convolution_param.bias_term else None
        return [(deconv_forward if t == "Deconvolution" else conv_forward)(x, blobs[0], bias, geom)]
    if t == "InnerProduct":
        p = layer.inner_product_param
        axis = canonical_axis(p.axis, x.ndim)
        x2 = x.reshape(element_count(x.shape, 0, axis), -1).astype(np.float64)
        w = blobs[0].astype(np.float64)
        y = x2 @ (w if p.transpose else w.T)
        if p.bias_term:
            y = y + blobs[1].astype(np.float64)
        return [y.reshape(*x.shape[:axis], p.num_output).astype(F32)]
    if t == "Pooling":
        return [pool_forward(layer, x)]
    if t == "BatchNorm":
        p = layer.batch_norm_param
        check(
            not p.HasField("use_global_stats") or p.use_global_stats,
            f"{layer.name}: only global statistics (TEST phase) are evaluated",
        )
        factor = F32(0) if blobs[2].ravel()[0] == 0 else F32(1) / blobs[2].ravel()[0]
        mean = (blobs[0] * factor).astype(F32)
        var = (blobs[1] * factor).astype(F32)
        std = np.sqrt((var + F32(p.eps)).astype(F32)).astype(F32)
        shape = [1] * x.ndim
        if x.ndim > 1:
            shape[1] = -1
        return [((x - mean.reshape(shape)).astype(F32) / std.reshape(shape)).astype(F32)]
    if t in ("Scale", "Bias"):
        p = layer.scale_param if t == "Scale" else layer.bias_param
        if len(bottoms) == 2:
            operand = bottoms[1]
            axis = 0 if operand.ndim == 0 else canonical_axis(p.axis, x.ndim)
            extra = blobs
        else:
            operand = blobs[0]
            axis = canonical_axis(p.axis, x.ndim) if x.ndim else 0
            extra = blobs[1:]
        op = _scale_broadcast(x.shape, axis, operand)
        if t == "Bias":
            return [(x + op).astype(F32)]
        y = (x * op).astype(F32)
        if p.bias_term:
            y = (y + _scale_broadcast(x.shape, axis, extra[0])).astype(F32)
        return [y]
    if t == "ReLU":
        slope = F32(layer.relu_param.negative_slope)
        return [np.where(x > 0, x, (x * slope).astype(F32)).astype(F32) if slope else np.maximum(x, F32(0))]
    if t == "PReLU":
        slope = blobs[0].ravel()
        shape = [1] * x.ndim
        if not layer.prelu_param.channel_shared:
            shape[1] = -1
        s = slope.reshape(shape) if not layer.prelu_param.channel_shared else slope[0]
        return [(np.maximum(x, F32(0)) + s * np.minimum(x, F32(0))).astype(F32)]
    if t == "Sigmoid":
        return [(1.0 / (1.0 + np.exp(-x.astype(np.float64)))).astype(F32)]
    if t == "TanH":
        return [np.tanh(x.astype(np.float64)).astype(F32)]
    if t == "ELU":
        alpha = layer.elu_param.alpha
        x64 = x.astype(np.float64)
        return [np.where(x64 > 0, x64, alpha * (np.exp(np.minimum(x64, 0)) - 1)).astype(F32)]
    if t == "AbsVal":
        return [np.abs(x)]
    if t == "Power":
        p = layer.power_param
        if p.power * p.scale == 0:
            value = 1.0 if p.power == 0 else float(F32(p.shift) ** F32(p.power))
            return [np.full(x.shape, value, dtype=F32)]
        y = x.astype(F32)
        if p.scale != 1:
            y = (y * F32(p.scale)).astype(F32)
        if p.shift != 0:
            y = (y + F32(p.shift)).astype(F32)
        if p.power != 1:
            with np.errstate(invalid="ignore", divide="ignore"):
                y = np.power(y.astype(np.float64), float(F32(p.power))).astype(F32)
        return [y]
    if t in ("Exp", "Log"):
        p = layer.exp_param if t == "Exp" else layer.log_param
        log_base = 1.0 if p.base == -1 else math.log(p.base)
        check(p.base == -1 or p.base > 0, f"{layer.name}: base must be strictly positive")
        x64 = x.astype(np.float64)
        if t == "Exp":
            return [(np.exp(log_base * (p.shift + p.scale * x64))).astype(F32)]
        with np.errstate(invalid="ignore", divide="ignore"):
            return [(np.log(p.shift + p.scale * x64) / log_base).astype(F32)]
    if t == "Dropout":
        return [x.copy()]
    if t == "Eltwise":
        p = layer.eltwise_param
        if p.operation == 0:
            y = bottoms[0].astype(F32)
            for b in bottoms[1:]:
                y = (y * b).astype(F32)
            return [y]
        if p.operation == 1:
            coeff = list(p.coeff) or [1.0] * len(bottoms)
            y = np.zeros(x.shape)
            for c, b in zip(coeff, bottoms):
                y = y + float(F32(c)) * b.astype(np.float64)
            return [y.astype(F32)]
        y = bottoms[0]
        for b in bottoms[1:]:
            y = np.maximum(y, b)
        return [y.astype(F32)]
    if t == "Concat":
        return [np.concatenate(bottoms, axis=canonical_axis(layer.concat_param.axis, x.ndim)).astype(F32)]
    if t == "Slice":
        tops, _ = layer_shapes(layer, [x.shape])
        axis = canonical_axis(layer.slice_param.axis, x.ndim)
        out, start = [], 0
        for s in tops:
            out.append(np.take(x, np.arange(start, start + s[axis]), axis=axis))
            start += s[axis]
        return out
    if t == "Split":
        return [x.copy() for _ in layer.top]
    if t == "Silence":
        return []
    if t == "Crop":
        p = layer.crop_param
        axis = canonical_axis(p.axis, x.ndim)
        index = [slice(None)] * x.ndim
        for i in range(axis, x.ndim):
            off = 0 if not p.offset else p.offset[0 if len(p.offset) == 1 else i - axis]
            index[i] = slice(off, off + bottoms[1].shape[i])
        return [x[tuple(index)].copy()]
    if t in ("Reshape", "Flatten"):
        (top,), _ = layer_shapes(layer, [x.shape])
        return [x.reshape(top)]
    if t == "Softmax":
        axis = canonical_axis(layer.softmax_param.axis, x.ndim)
        x64 = x.astype(np.float64)
        e = np.exp(x64 - x64.max(axis=axis, keepdims=True))
        return [(e / e.sum(axis=axis, keepdims=True)).astype(F32)]
    if t == "Tile":
        p = layer.tile_param
        axis = canonical_axis(p.axis, x.ndim)
        reps = [1] * x.ndim
        reps[axis] = p.tiles
        return [np.tile(x, reps)]
    if t == "Reduction":
        return [_reduction(layer, x)]
    if t == "DummyData":
        tops, _ = layer_shapes(layer, [])
        fillers = list(layer.dummy_data_param.data_filler)
        out = []
        for k, s in enumerate(tops):
            f = fillers[k if len(fillers) > 1 else 0] if fillers else None
            check(f is None or f.type == "constant", f"{layer.name}: only constant fillers are evaluated")
            out.append(np.full(s, 0.0 if f is None else f.value, dtype=F32))
        return out
    if t == "Parameter":
        return [blobs[0].copy()]
    if t == "Interp":
        return [interp_forward(layer, x)]
    if t == "Upsample":
        s = layer.upsample_param.scale
        return [np.repeat(np.repeat(x, s, axis=-2), s, axis=-1)]
    raise CaffeReferenceError(f"{layer.name}: layer type {t!r} is not implemented by the reference evaluator")
