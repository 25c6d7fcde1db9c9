"""numpy kernels for the reference evaluator, written from Apple's documented semantics.

Used only by ``rewriter.coreml.reference`` (never by the exporter). Every resize grid here is transcribed
from the coremltools MIL op docstrings (``ops/defs/iOS15/image_resizing.py``) and the NeuralNetwork.proto
comments (UpsampleLayerParams, SamplingMode); the generic 1-D interpolation math (two-tap lerp with edge
clamping, one-hot picks) comes from ``rewriter.sampling``.
"""

from __future__ import annotations

import itertools

import numpy as np

from rewriter.sampling import AxisWeights, lerp_weights, pick_weights


class UndocumentedError(ValueError):
    """The saved model asks for behaviour Apple does not document (so no exact claim can be made)."""


# ---------------------------------------------------------------------------------------------------
# Resize grids (1-D source coordinates on [0, Xin-1] before clamping), per documented formula.


def _spacing(num: float, den: float) -> float:
    return num / den if den else 0.0  # i * spacing with i = 0 only when den == 0 (Xout == 1)


def grid_align_corners(n: int, m: int) -> np.ndarray:
    """upsample_bilinear(align_corners=True), resize_bilinear STRICT_ALIGN_CORNERS, NN ALIGN_CORNERS_TRUE /
    STRICT_ALIGN_ENDPOINTS_MODE: spacing = (Xin-1)/(Xout-1), g = i*spacing."""
    return np.arange(m) * _spacing(n - 1, m - 1)


def grid_align_endpoints(n: int, m: int) -> np.ndarray:
    """resize_bilinear ALIGN_CORNERS / NN ALIGN_ENDPOINTS_MODE: as STRICT except Xout == 1 -> (Xin-1)/2."""
    if m == 1:
        return np.array([(n - 1) / 2.0])
    return grid_align_corners(n, m)


def grid_half_pixel(n: int, m: int) -> np.ndarray:
    """upsample_bilinear(align_corners=False), resize_bilinear UNALIGN_CORNERS, NN ALIGN_CORNERS_FALSE:
    spacing = Xin/Xout, g = i*spacing + 0.5*spacing - 0.5."""
    sp = n / m
    return np.arange(m) * sp + 0.5 * sp - 0.5


def grid_default(n: int, m: int) -> np.ndarray:
    """resize_bilinear DEFAULT / NN UPSAMPLE_MODE: spacing = (Xin - Xin/Xout)/(Xout-1), g = i*spacing
    (NN: numpy.linspace(0, X - X/N, N), so a single output samples 0)."""
    return np.arange(m) * _spacing(n - n / m, m - 1)


def grid_asymmetric(n: int, m: int) -> np.ndarray:
    """NN Upsample BILINEAR DEFAULT: spacing = (Xin - Xin/Xout)/(Xout-1) (the same formula as UPSAMPLE_MODE)."""
    return grid_default(n, m)


def grid_offset_corners(n: int, m: int) -> np.ndarray:
    """resize_bilinear OFFSET_CORNERS / NN ROI_ALIGN_MODE: delta = max(1, Xin-1)/Xout, g = 0.5*delta + i*delta."""
    delta = max(1, n - 1) / m
    return 0.5 * delta + np.arange(m) * delta


def bilinear_weights(grid: np.ndarray, n: int) -> AxisWeights:
    """Clamp to [0, Xin-1] (every documented grid is min(Xin-1, max(0, .))) and interpolate linearly."""
    return AxisWeights(lerp_weights(np.clip(grid, 0.0, n - 1), n))


def integer_nearest_weights(n: int, factor: int) -> AxisWeights:
    """Nearest-neighbour upsampling by an integer factor: every input repeated ``factor`` times."""
    if factor < 1 or int(factor) != factor:
        raise UndocumentedError(f"nearest-neighbour factor {factor} is not a positive integer")
    return AxisWeights(pick_weights(np.arange(n * int(factor)) // int(factor), n))


def output_length(n: int, scale) -> int:
    """floor(Xin * scale) as documented; refuse a scale whose product is ambiguous between fp32 and fp64."""
    s32 = np.float32(scale)
    a = int(np.floor(float(s32) * n))
    b = int(np.floor(np.float32(s32) * np.float32(n)))
    if a != b:
        raise UndocumentedError(f"output length of {n} x {float(s32)!r} differs between float32 ({b}) and float64 ({a})")
    return a


def apply_axis(x: np.ndarray, w: AxisWeights, axis: int) -> np.ndarray:
    y = np.tensordot(w.matrix, np.moveaxis(x.astype(np.float64), axis, 0), axes=1)
    return np.moveaxis(y, 0, axis)


def resize_last2(x: np.ndarray, wh: AxisWeights, ww: AxisWeights) -> np.ndarray:
    return apply_axis(apply_axis(x, wh, x.ndim - 2), ww, x.ndim - 1)


# ---------------------------------------------------------------------------------------------------
# Convolution, transposed convolution and pooling (NC + spatial layout).


def _same_pads(size: int, kernel: int, stride: int, dilation: int, lower: bool) -> tuple[int, int]:
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    small = total // 2
    return (total - small, small) if lower else (small, total - small)


def resolve_pads(pad_type: str, pad, spatial, kernel, strides, dilations) -> list[tuple[int, int]]:
    k = len(spatial)
    if pad_type == "valid":
        return [(0, 0)] * k
    if pad_type == "custom":
        pad = list(pad) if pad is not None else [0] * 2 * k
        return [(int(pad[2 * i]), int(pad[2 * i + 1])) for i in range(k)]
    if pad_type in ("same", "same_lower"):
        return [_same_pads(spatial[i], kernel[i], strides[i], dilations[i], pad_type == "same_lower") for i in range(k)]
    raise UndocumentedError(f"pad_type {pad_type!r}")


def conv(x: np.ndarray, w: np.ndarray, bias, strides, pads, dilations, groups: int) -> np.ndarray:
    """y[n, o, p] = sum_{c, k} xpad[n, g*Cg + c, p*s + k*d] * w[o, c, k] (+ bias[o]); o in group g."""
    x = x.astype(np.float64)
    w = w.astype(np.float64)
    n, cin = x.shape[:2]
    k = w.ndim - 2
    xp = np.pad(x, [(0, 0), (0, 0)] + list(pads))
    kernel = w.shape[2:]
    out = [(xp.shape[2 + i] - ((kernel[i] - 1) * dilations[i] + 1)) // strides[i] + 1 for i in range(k)]
    cout = w.shape[0]
    cg, og = cin // groups, cout // groups
    xg = xp.reshape(n, groups, cg, *xp.shape[2:])
    wg = w.reshape(groups, og, cg, *kernel)
    y = np.zeros((n, groups, og, *out))
    for taps in itertools.product(*[range(kk) for kk in kernel]):
        sl = tuple(slice(t * dilations[i], t * dilations[i] + strides[i] * (out[i] - 1) + 1, strides[i]) for i, t in enumerate(taps))
        patch = xg[(slice(None), slice(None), slice(None)) + sl]
        y += np.einsum("ngc...,goc->ngo...", patch, wg[(slice(None), slice(None), slice(None)) + taps])
    y = y.reshape(n, cout, *out)
    if bias is not None:
        y += np.asarray(bias, dtype=np.float64).reshape([1, -1] + [1] * k)
    return y


def conv_transpose(x: np.ndarray, w: np.ndarray, bias, strides, pads, dilations, groups: int, out_spatial=None) -> np.ndarray:
    """Scatter form: yfull[n, g*Og + o, i*s + k*d] += x[n, g*Cg + c, i] * w[g*Cg + c, o, k]; then crop pads."""
    x = x.astype(np.float64)
    w = w.astype(np.float64)
    n, cin = x.shape[:2]
    k = w.ndim - 2
    kernel = w.shape[2:]
    spatial = x.shape[2:]
    og = w.shape[1]
    cg = cin // groups
    full = [(spatial[i] - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 for i in range(k)]
    xg = x.reshape(n, groups, cg, *spatial)
    wg = w.reshape(groups, cg, og, *kernel)
    y = np.zeros((n, groups, og, *full))
    for taps in itertools.product(*[range(kk) for kk in kernel]):
        sl = tuple(slice(t * dilations[i], t * dilations[i] + strides[i] * (spatial[i] - 1) + 1, strides[i]) for i, t in enumerate(taps))
        y[(slice(None), slice(None), slice(None)) + sl] += np.einsum("ngc...,gco->ngo...", xg, wg[(slice(None), slice(None), slice(None)) + taps])
    y = y.reshape(n, groups * og, *full)
    begin = [p[0] for p in pads]
    if out_spatial is None:
        out_spatial = [full[i] - pads[i][0] - pads[i][1] for i in range(k)]
    sl = tuple(slice(begin[i], begin[i] + out_spatial[i]) for i in range(k))
    y = y[(slice(None), slice(None)) + sl]
    if any(y.shape[2 + i] != out_spatial[i] for i in range(k)):
        raise UndocumentedError(f"conv_transpose output {out_spatial} does not fit the computed region {full}")
    if bias is not None:
        y = y + np.asarray(bias, dtype=np.float64).reshape([1, -1] + [1] * k)
    return y


def pool(x: np.ndarray, kind: str, kernel, strides, pads, exclude_padding: bool = False) -> np.ndarray:
    """max / avg pooling with floor output size: out = floor((D + pb + pe - K)/s) + 1."""
    x = x.astype(np.float64)
    k = len(kernel)
    spatial = x.shape[2:]
    out = [(spatial[i] + pads[i][0] + pads[i][1] - kernel[i]) // strides[i] + 1 for i in range(k)]
    fill = -np.inf if kind == "max" else 0.0
    xp = np.pad(x, [(0, 0), (0, 0)] + list(pads), constant_values=fill)
    ones = np.pad(np.ones(spatial), list(pads))
    acc = np.full(x.shape[:2] + tuple(out), -np.inf if kind == "max" else 0.0)
    count = np.zeros(out)
    for taps in itertools.product(*[range(kk) for kk in kernel]):
        sl = tuple(slice(t, t + strides[i] * (out[i] - 1) + 1, strides[i]) for i, t in enumerate(taps))
        patch = xp[(slice(None), slice(None)) + sl]
        if kind == "max":
            acc = np.maximum(acc, patch)
        else:
            acc = acc + patch
            count = count + ones[sl]
    if kind == "max":
        return acc
    denom = count if exclude_padding else float(np.prod(kernel))
    return acc / denom


# ---------------------------------------------------------------------------------------------------
# Elementwise helpers.


def erf(x: np.ndarray) -> np.ndarray:
    import math

    return np.vectorize(math.erf, otypes=[np.float64])(np.asarray(x, dtype=np.float64))


def gelu(x: np.ndarray, mode: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if mode == "EXACT":
        return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))
    if mode == "TANH_APPROXIMATION":
        return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))
    if mode == "SIGMOID_APPROXIMATION":
        return x / (1.0 + np.exp(-1.702 * x))
    raise UndocumentedError(f"gelu mode {mode!r}")


def sigmoid(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def softmax(x: np.ndarray, axis: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)
