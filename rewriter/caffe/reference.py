"""A numpy evaluator of the Caffe layers the exporter emits, written from Caffe's own definitions.

It reads a NetParameter (the parsed prototxt) plus the weights of a second NetParameter (the parsed
caffemodel, matched by layer name and checked blob by blob like ``Net::CopyTrainedLayersFrom``) and runs
the TEST-phase forward pass. Shapes follow the layer sources, not ONNX:

- Convolution / Deconvolution (``base_conv_layer.cpp``, ``conv_layer.cpp``, ``deconv_layer.cpp``): ``axis``
  is the channel axis, the axes after it are spatial (N-D); output ``(in + 2p - ext) / s + 1`` (integer
  division) and ``s (in - 1) + ext - 2p`` with ``ext = d (k - 1) + 1``; weights ``[out, in/g, k...]`` and
  ``[in, out/g, k...]``; symmetric padding only.
- Pooling (``pooling_layer.cpp``): 4-D only; pooled size ``ceil((in + 2p - k) / s) + 1``, minus one when the
  last window would start in the padding; MAX windows are clipped to the image, AVE windows to
  ``[start, min(start + k, in + p))`` for the divisor and to the image for the sum; global pooling.
- BatchNorm (``batch_norm_layer.cpp``): three blobs (mean, variance, scale factor s); with global stats
  ``y = (x - mean/s) / sqrt(var/s + eps)`` (s == 0 gives factor 0).
- Scale / Bias (``scale_layer.cpp``, ``bias_layer.cpp``): the second operand (bottom[1] or a blob) spans
  ``shape[axis : axis + num_axes]`` and broadcasts over the other axes.
- InnerProduct: ``axis`` and the ``transpose`` flag; Slice / Concat / Crop / Reshape (0 = copy, -1 = infer,
  axis / num_axes) / Flatten / Tile / Softmax / Eltwise (SUM with coeff, PROD, MAX) / Power / Exp / Log /
  ReLU (negative_slope) / PReLU / ELU / Sigmoid / TanH / AbsVal / Dropout / Silence / Split / DummyData
  (constant filler) / Parameter / Input.
- Interp (DeepLab / PSPNet ``interp_layer.cpp`` + ``util/interp.cpp``): align-corners grid in float32,
  ``r = (n - 1) / (m - 1)`` (0 for m == 1), ``x = r * i``, taps ``int(x)`` and the next one unless at the
  end, plain copy when both sizes are unchanged.
- Upsample (eric612/MobileNet-YOLO ``upsample_layer.cpp``): ``scale`` on the last two axes, ``src = dst / scale``.

Arithmetic: blobs are float32 like Caffe's; convolutions, inner products and sums accumulate in float64
and round once (Caffe's BLAS summation order cannot be reproduced anyway, so the tests use a relative
tolerance).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from itertools import pairwise

import numpy as np

from rewriter.caffe import proto

F32 = np.float32


class CaffeReferenceError(Exception):
    """The net is not valid for Caffe (what Caffe's CHECKs would abort on)."""


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise CaffeReferenceError(msg)


def _canon(axis: int, rank: int) -> int:
    _check(-rank <= axis < rank, f"axis {axis} out of range for rank {rank}")
    return axis + rank if axis < 0 else axis


def _count(shape, start: int = 0, end: int | None = None) -> int:
    return int(np.prod(shape[start:end], dtype=np.int64)) if shape[start:end] else 1


def blob_to_array(blob) -> np.ndarray:
    """BlobProto -> ndarray (shape field, or the legacy 4-D num/channels/height/width)."""
    if blob.HasField("shape"):
        shape = tuple(int(d) for d in blob.shape.dim)
    elif blob.num or blob.channels or blob.height or blob.width:
        shape = (blob.num, blob.channels, blob.height, blob.width)
    else:
        shape = ()
    data = np.asarray(blob.double_data if len(blob.double_data) else blob.data, dtype=np.float64)
    _check(data.size == _count(shape), f"blob has {data.size} values for shape {shape}")
    return data.astype(F32).reshape(shape)


def array_to_blob(array: np.ndarray, blob=None):
    blob = proto.BlobProto() if blob is None else blob
    array = np.array(array, dtype=F32, order="C")
    blob.shape.dim.extend(int(d) for d in array.shape)
    blob.data.extend(array.ravel().tolist())
    return blob


# ------------------------------------------------------------------------------------------------
# Convolution geometry (base_conv_layer.cpp LayerSetUp)


def conv_geometry(p, num_spatial: int) -> tuple[list[int], list[int], list[int], list[int]]:
    """kernel, stride, pad, dilation per spatial axis, read like BaseConvolutionLayer::LayerSetUp."""
    if p.HasField("kernel_h") or p.HasField("kernel_w"):
        _check(num_spatial == 2, "kernel_h & kernel_w can only be used for 2D convolution")
        _check(len(p.kernel_size) == 0, "Either kernel_size or kernel_h/w should be specified; not both")
        kernel = [p.kernel_h, p.kernel_w]
    else:
        _check(
            len(p.kernel_size) in (1, num_spatial), "kernel_size must be specified once, or once per spatial dimension"
        )
        kernel = [p.kernel_size[i if len(p.kernel_size) > 1 else 0] for i in range(num_spatial)]
    if p.HasField("stride_h") or p.HasField("stride_w"):
        _check(num_spatial == 2 and len(p.stride) == 0, "stride_h & stride_w: 2D only, not with stride")
        stride = [p.stride_h, p.stride_w]
    else:
        _check(len(p.stride) in (0, 1, num_spatial), "stride must be specified once, or once per spatial dimension")
        stride = [1 if not p.stride else p.stride[i if len(p.stride) > 1 else 0] for i in range(num_spatial)]
    if p.HasField("pad_h") or p.HasField("pad_w"):
        _check(num_spatial == 2 and len(p.pad) == 0, "pad_h & pad_w: 2D only, not with pad")
        pad = [p.pad_h, p.pad_w]
    else:
        _check(len(p.pad) in (0, 1, num_spatial), "pad must be specified once, or once per spatial dimension")
        pad = [0 if not p.pad else p.pad[i if len(p.pad) > 1 else 0] for i in range(num_spatial)]
    _check(len(p.dilation) in (0, 1, num_spatial), "dilation must be specified once, or once per spatial dimension")
    dilation = [1 if not p.dilation else p.dilation[i if len(p.dilation) > 1 else 0] for i in range(num_spatial)]
    _check(all(k > 0 for k in kernel) and all(s > 0 for s in stride), "Filter dimensions and strides must be positive")
    return [int(k) for k in kernel], [int(s) for s in stride], [int(x) for x in pad], [int(d) for d in dilation]


def _conv_shapes(layer, bottom: tuple[int, ...], deconv: bool):
    p = layer.convolution_param
    axis = _canon(p.axis, len(bottom))
    spatial_in = bottom[axis + 1 :]
    kernel, stride, pad, dil = conv_geometry(p, len(spatial_in))
    channels = bottom[axis]
    group = p.group
    _check(
        channels % group == 0 and p.num_output % group == 0,
        f"{layer.name}: channels and num_output must be divisible by group",
    )
    if deconv:
        weight = (channels, p.num_output // group, *kernel)
        out = [s * (i - 1) + d * (k - 1) + 1 - 2 * q for i, k, s, q, d in zip(spatial_in, kernel, stride, pad, dil)]
    else:
        weight = (p.num_output, channels // group, *kernel)
        out = [(i + 2 * q - (d * (k - 1) + 1)) // s + 1 for i, k, s, q, d in zip(spatial_in, kernel, stride, pad, dil)]
    _check(all(o > 0 for o in out), f"{layer.name}: output size {out} is not positive")
    blobs = [weight] + ([(p.num_output,)] if p.bias_term else [])
    return (*bottom[:axis], p.num_output, *out), blobs, (axis, kernel, stride, pad, dil, group)


def _pool_geometry(layer, bottom: tuple[int, ...]):
    p = layer.pooling_param
    _check(len(bottom) == 4, f"{layer.name}: Input must have 4 axes, corresponding to (num, channels, height, width)")
    height, width = bottom[2], bottom[3]
    if p.global_pooling:
        _check(
            not (p.HasField("kernel_size") or p.HasField("kernel_h") or p.HasField("kernel_w")),
            "With Global_pooling: true Filter size cannot specified",
        )
        kh, kw = height, width
    else:
        _check(
            p.HasField("kernel_size") != (p.HasField("kernel_h") and p.HasField("kernel_w")),
            "Filter size is kernel_size OR kernel_h and kernel_w; not both",
        )
        kh, kw = (p.kernel_size, p.kernel_size) if p.HasField("kernel_size") else (p.kernel_h, p.kernel_w)
    _check(kh > 0 and kw > 0, "Filter dimensions cannot be zero.")
    _check(
        (not p.HasField("pad") and p.HasField("pad_h") and p.HasField("pad_w"))
        or (not p.HasField("pad_h") and not p.HasField("pad_w")),
        "pad is pad OR pad_h and pad_w are required.",
    )
    ph, pw = (p.pad_h, p.pad_w) if p.HasField("pad_h") else (p.pad, p.pad)
    _check(
        (not p.HasField("stride") and p.HasField("stride_h") and p.HasField("stride_w"))
        or (not p.HasField("stride_h") and not p.HasField("stride_w")),
        "Stride is stride OR stride_h and stride_w are required.",
    )
    sh, sw = (p.stride_h, p.stride_w) if p.HasField("stride_h") else (p.stride, p.stride)
    if p.global_pooling:
        _check(ph == 0 and pw == 0 and sh == 1 and sw == 1, "With Global_pooling: true; only pad = 0 and stride = 1")
    if ph or pw:
        _check(ph < kh and pw < kw, f"{layer.name}: pad must be smaller than the kernel")
    out_h = math.ceil(float(F32(height + 2 * ph - kh) / F32(sh))) + 1
    out_w = math.ceil(float(F32(width + 2 * pw - kw) / F32(sw))) + 1
    if ph or pw:
        if (out_h - 1) * sh >= height + ph:
            out_h -= 1
        if (out_w - 1) * sw >= width + pw:
            out_w -= 1
        _check(
            (out_h - 1) * sh < height + ph and (out_w - 1) * sw < width + pw,
            f"{layer.name}: last pooling window starts in the padding",
        )
    return (kh, kw), (sh, sw), (ph, pw), (out_h, out_w)


def pooled_size(n: int, kernel: int, stride: int, pad: int) -> int:
    """Caffe's pooled length along one axis (ceil rounding, last window clipped to start inside)."""
    out = math.ceil(float(F32(n + 2 * pad - kernel) / F32(stride))) + 1
    if pad and (out - 1) * stride >= n + pad:
        out -= 1
    return out


def _interp_out(layer, bottom):
    p = layer.interp_param
    _check(len(bottom) == 4, f"{layer.name}: Interp needs a 4-D bottom")
    specs = (
        int(p.HasField("zoom_factor"))
        + int(p.HasField("shrink_factor"))
        + int(p.HasField("height") and p.HasField("width"))
    )
    _check(specs == 1, f"{layer.name}: Output dimension specified either by zoom factor or shrink factor or explicitly")
    _check(p.pad_beg <= 0 and p.pad_end <= 0, "Only supports non-pos padding (cropping) for now")
    h_eff = bottom[2] + p.pad_beg + p.pad_end
    w_eff = bottom[3] + p.pad_beg + p.pad_end
    if p.HasField("zoom_factor"):
        h_out, w_out = h_eff + (h_eff - 1) * (p.zoom_factor - 1), w_eff + (w_eff - 1) * (p.zoom_factor - 1)
    elif p.HasField("shrink_factor"):
        h_out, w_out = (h_eff - 1) // p.shrink_factor + 1, (w_eff - 1) // p.shrink_factor + 1
    else:
        h_out, w_out = p.height, p.width
    _check(h_eff > 0 and w_eff > 0 and h_out > 0 and w_out > 0, f"{layer.name}: Interp sizes must be positive")
    return (bottom[0], bottom[1], h_out, w_out), (h_eff, w_eff)


def _reshape_shape(layer, bottom: tuple[int, ...]) -> tuple[int, ...]:
    p = layer.reshape_param
    rank = len(bottom)
    start = p.axis if p.axis >= 0 else rank + p.axis + 1
    _check(0 <= start <= rank, f"{layer.name}: axis out of range")
    end = rank if p.num_axes == -1 else start + p.num_axes
    _check(p.num_axes >= -1 and end <= rank, f"{layer.name}: num_axes out of range")
    dims = [int(d) for d in p.shape.dim]
    top = list(bottom[:start]) + dims + list(bottom[end:])
    infer = [i for i, d in enumerate(dims) if d == -1]
    _check(len(infer) <= 1, f"{layer.name}: new shape contains multiple -1 dims")
    for i, d in enumerate(dims):
        if d == 0:
            _check(
                start + i < rank,
                f"{layer.name}: new shape contains a 0, but there was no corresponding bottom axis to copy",
            )
            top[start + i] = bottom[start + i]
    if infer:
        known = _count([d for k, d in enumerate(top) if k != start + infer[0]])
        _check(known > 0 and _count(bottom) % known == 0, f"{layer.name}: cannot infer the -1 dimension")
        top[start + infer[0]] = _count(bottom) // known
    _check(
        _count(top) == _count(bottom),
        f"{layer.name}: output count {_count(top)} must match input count {_count(bottom)}",
    )
    return tuple(top)


# ------------------------------------------------------------------------------------------------
# Shapes: what Caffe's Reshape() computes, and the parameter blob shapes LayerSetUp creates.


def layer_shapes(layer, bottoms: list[tuple[int, ...]]) -> tuple[list[tuple[int, ...]], list[tuple[int, ...]]]:
    """(top shapes, parameter blob shapes) of ``layer`` for the given bottom shapes."""
    t = layer.type
    b0 = bottoms[0] if bottoms else None
    ntop = len(layer.top)
    if t == "Input":
        shapes = [tuple(int(d) for d in s.dim) for s in layer.input_param.shape]
        _check(len(shapes) in (1, ntop), f"{layer.name}: Input needs 1 or one shape per top")
        return [shapes[i if len(shapes) > 1 else 0] for i in range(ntop)], []
    if t in ("Convolution", "Deconvolution"):
        top, blobs, _ = _conv_shapes(layer, b0, t == "Deconvolution")
        return [top], blobs
    if t == "InnerProduct":
        p = layer.inner_product_param
        axis = _canon(p.axis, len(b0))
        k = _count(b0, axis)
        w = (k, p.num_output) if p.transpose else (p.num_output, k)
        return [(*b0[:axis], p.num_output)], [w] + ([(p.num_output,)] if p.bias_term else [])
    if t == "Pooling":
        _, _, _, (oh, ow) = _pool_geometry(layer, b0)
        return [(b0[0], b0[1], oh, ow)], []
    if t == "BatchNorm":
        c = 1 if len(b0) == 1 else b0[1]
        return [b0], [(c,), (c,), (1,)]
    if t in ("Scale", "Bias"):
        p = layer.scale_param if t == "Scale" else layer.bias_param
        if len(bottoms) == 2:
            other = bottoms[1]
            axis = 0 if len(other) == 0 else _canon(p.axis, len(b0))
            _check(
                tuple(b0[axis : axis + len(other)]) == tuple(other),
                f"{layer.name}: bottom[1] shape {other} does not match bottom[0] {b0} at axis {axis}",
            )
            blobs = (
                [(other[0],)]
                if (t == "Scale" and p.bias_term and other)
                else ([()] if (t == "Scale" and p.bias_term) else [])
            )
            return [b0], blobs
        axis = _canon(p.axis, len(b0)) if len(b0) else 0
        _check(p.num_axes >= -1, f"{layer.name}: num_axes must be non-negative, or -1")
        end = len(b0) if p.num_axes == -1 else axis + p.num_axes
        _check(end <= len(b0), f"{layer.name}: scale blob's shape extends past bottom[0]'s shape")
        shape = tuple(b0[axis:end])
        return [b0], [shape] + ([shape] if (t == "Scale" and p.bias_term) else [])
    if t == "PReLU":  # prelu_layer.cpp: channels() is a legacy (<= 4-D) accessor; a shared slope is a 0-axis blob
        _check(2 <= len(b0) <= 4, f"{layer.name}: PReLU needs 2 to 4 axes (legacy channels() accessor)")
        return [b0], [() if layer.prelu_param.channel_shared else (b0[1],)]
    if t in ("ReLU", "Sigmoid", "TanH", "ELU", "AbsVal", "Power", "Exp", "Log", "Dropout"):
        return [b0], []
    if t == "Eltwise":
        _check(
            all(tuple(b) == tuple(b0) for b in bottoms), f"{layer.name}: bottoms must have the same shape ({bottoms})"
        )
        p = layer.eltwise_param
        _check(len(p.coeff) in (0, len(bottoms)), f"{layer.name}: Eltwise needs one coeff per bottom")
        _check(len(p.coeff) == 0 or p.operation == 1, f"{layer.name}: coeff is for SUM only")
        return [b0], []
    if t == "Concat":
        axis = _canon(layer.concat_param.axis, len(b0))
        for b in bottoms:
            _check(
                len(b) == len(b0) and all(b[i] == b0[i] for i in range(len(b0)) if i != axis),
                f"{layer.name}: concat bottoms differ off the axis: {bottoms}",
            )
        top = list(b0)
        top[axis] = sum(b[axis] for b in bottoms)
        return [tuple(top)], []
    if t == "Slice":
        p = layer.slice_param
        axis = _canon(p.axis, len(b0))
        length = b0[axis]
        if p.slice_point:
            _check(len(p.slice_point) == ntop - 1, f"{layer.name}: need one slice point per top minus one")
            points = [0, *[int(s) for s in p.slice_point], length]
            _check(
                all(a < b for a, b in pairwise(points)),
                f"{layer.name}: slice points must be increasing and inside the axis",
            )
        else:
            _check(
                length % ntop == 0,
                f"{layer.name}: Number of top blobs ({ntop}) should evenly divide input slice axis ({length})",
            )
            points = [length // ntop * i for i in range(ntop + 1)]
        tops = []
        for a, b in pairwise(points):
            s = list(b0)
            s[axis] = b - a
            tops.append(tuple(s))
        return tops, []
    if t == "Split":
        return [b0] * ntop, []
    if t == "Silence":
        return [], []
    if t == "Crop":
        p = layer.crop_param
        ref = bottoms[1]
        axis = _canon(p.axis, len(b0))
        _check(
            len(p.offset) in (0, 1, len(b0) - axis),
            f"{layer.name}: number of offset values specified must be equal to the number of dimensions following axis",
        )
        top = list(b0)
        for i in range(axis, len(b0)):
            off = 0 if not p.offset else p.offset[0 if len(p.offset) == 1 else i - axis]
            _check(b0[i] - off >= ref[i], f"{layer.name}: invalid crop")
            top[i] = ref[i]
        return [tuple(top)], []
    if t == "Reshape":
        return [_reshape_shape(layer, b0)], []
    if t == "Flatten":
        p = layer.flatten_param
        start, end = _canon(p.axis, len(b0)), _canon(p.end_axis, len(b0))
        return [(*b0[:start], _count(b0, start, end + 1), *b0[end + 1 :])], []
    if t == "Softmax":
        _canon(layer.softmax_param.axis, len(b0))
        return [b0], []
    if t == "Tile":
        p = layer.tile_param
        axis = _canon(p.axis, len(b0))
        _check(p.tiles > 0, f"{layer.name}: Number of tiles must be positive.")
        top = list(b0)
        top[axis] *= p.tiles
        return [tuple(top)], []
    if t == "DummyData":
        shapes = [tuple(int(d) for d in s.dim) for s in layer.dummy_data_param.shape]
        _check(len(shapes) in (1, ntop), f"{layer.name}: DummyData needs 1 or one shape per top")
        return [shapes[i if len(shapes) > 1 else 0] for i in range(ntop)], []
    if t == "Parameter":
        shape = tuple(int(d) for d in layer.parameter_param.shape.dim)
        return [shape], [shape]
    if t == "Interp":
        top, _ = _interp_out(layer, b0)
        return [top], []
    if t == "Upsample":
        s = layer.upsample_param.scale
        top = list(b0)
        top[-1] *= s
        top[-2] *= s
        return [tuple(top)], []
    raise CaffeReferenceError(f"{layer.name}: layer type {t!r} is not implemented by the reference evaluator")


# ------------------------------------------------------------------------------------------------
# Forward


def _deconv_forward(x: np.ndarray, w: np.ndarray, bias, geom) -> np.ndarray:
    axis, kernel, stride, pad, dil, group = geom
    outer = x.shape[:axis]
    cin = x.shape[axis]
    spatial = x.shape[axis + 1 :]
    xs = x.reshape(-1, group, cin // group, *spatial).astype(np.float64)
    wg = w.astype(np.float64).reshape(group, cin // group, w.shape[1], *kernel)
    cout_g = w.shape[1]
    full = [s * (i - 1) + d * (k - 1) + 1 for i, k, s, d in zip(spatial, kernel, stride, dil)]
    out = np.zeros((xs.shape[0], group, cout_g, *full))
    nsp = len(spatial)
    letters = "hwdefg"[:nsp]
    for kk in np.ndindex(*kernel):
        contrib = np.einsum(f"ngc{letters},gco->ngo{letters}", xs, wg[(slice(None), slice(None), slice(None), *kk)])
        index = tuple(slice(k * d, k * d + s * (i - 1) + 1, s) for k, d, s, i in zip(kk, dil, stride, spatial))
        out[(slice(None), slice(None), slice(None), *index)] += contrib
    crop = tuple(slice(p, f - p) for p, f in zip(pad, full))
    out = out[(slice(None), slice(None), slice(None), *crop)]
    out = out.reshape(*outer, group * cout_g, *out.shape[3:])
    if bias is not None:
        out = out + bias.astype(np.float64).reshape(-1, *([1] * nsp))
    return out.astype(F32)


def _conv_forward(x: np.ndarray, w: np.ndarray, bias, geom) -> np.ndarray:
    axis, kernel, stride, pad, dil, group = geom
    outer = x.shape[:axis]
    cin = x.shape[axis]
    spatial = x.shape[axis + 1 :]
    nsp = len(spatial)
    xs = x.reshape(-1, group, cin // group, *spatial).astype(np.float64)
    xs = np.pad(xs, [(0, 0)] * 3 + [(p, p) for p in pad])
    cout = w.shape[0]
    wg = w.astype(np.float64).reshape(group, cout // group, cin // group, *kernel)
    out_sp = [(i + 2 * p - (d * (k - 1) + 1)) // s + 1 for i, k, s, p, d in zip(spatial, kernel, stride, pad, dil)]
    out = np.zeros((xs.shape[0], group, cout // group, *out_sp))
    letters = "hwdefg"[:nsp]
    for kk in np.ndindex(*kernel):
        index = tuple(slice(k * d, k * d + s * (o - 1) + 1, s) for k, d, s, o in zip(kk, dil, stride, out_sp))
        patch = xs[(slice(None), slice(None), slice(None), *index)]
        out += np.einsum(f"ngc{letters},goc->ngo{letters}", patch, wg[(slice(None), slice(None), slice(None), *kk)])
    out = out.reshape(*outer, cout, *out_sp)
    if bias is not None:
        out = out + bias.astype(np.float64).reshape(-1, *([1] * nsp))
    return out.astype(F32)


def _pool_forward(layer, x: np.ndarray) -> np.ndarray:
    (kh, kw), (sh, sw), (ph, pw), (oh, ow) = _pool_geometry(layer, x.shape)
    n, c, height, width = x.shape
    out = np.empty((n, c, oh, ow), dtype=F32)
    method = layer.pooling_param.pool
    _check(method in (0, 1), f"{layer.name}: only MAX and AVE pooling are implemented")
    for i in range(oh):
        hstart = i * sh - ph
        for j in range(ow):
            wstart = j * sw - pw
            if method == 0:  # MAX: window clipped to the image, -FLT_MAX when empty
                h0, h1 = max(hstart, 0), min(hstart + kh, height)
                w0, w1 = max(wstart, 0), min(wstart + kw, width)
                if h1 <= h0 or w1 <= w0:
                    out[:, :, i, j] = -np.finfo(F32).max
                else:
                    out[:, :, i, j] = x[:, :, h0:h1, w0:w1].max(axis=(2, 3))
            else:  # AVE: divisor counts the padded window clipped at size + pad
                hend, wend = min(hstart + kh, height + ph), min(wstart + kw, width + pw)
                pool_size = (hend - hstart) * (wend - wstart)
                h0, h1 = max(hstart, 0), min(hend, height)
                w0, w1 = max(wstart, 0), min(wend, width)
                total = x[:, :, h0:h1, w0:w1].astype(np.float64).sum(axis=(2, 3))
                out[:, :, i, j] = (total / pool_size).astype(F32)
    return out


def _interp_forward(layer, x: np.ndarray) -> np.ndarray:
    """caffe_cpu_interp2 (bilinear, not packed) in float32, with the pad_beg crop."""
    (_, _, h2, w2), (h1, w1) = _interp_out(layer, x.shape)
    p = layer.interp_param
    x = x[:, :, -p.pad_beg : -p.pad_beg + h1, -p.pad_beg : -p.pad_beg + w1]
    if h1 == h2 and w1 == w2:
        return x.astype(F32).copy()

    def grid(n_in: int, n_out: int):
        r = F32(F32(n_in - 1) / F32(n_out - 1)) if n_out > 1 else F32(0)
        xr = (r * np.arange(n_out, dtype=F32)).astype(F32)
        lo = xr.astype(np.int64)  # static_cast<int> truncation (xr >= 0)
        step = (lo < n_in - 1).astype(np.int64)
        lam1 = (xr - lo.astype(F32)).astype(F32)
        lam0 = (F32(1) - lam1).astype(F32)
        return lo, step, lam0, lam1

    hl, hs, h0l, h1l = grid(h1, h2)
    wl, ws, w0l, w1l = grid(w1, w2)
    x = x.astype(F32)
    p00 = x[:, :, hl][:, :, :, wl]
    p01 = x[:, :, hl][:, :, :, wl + ws]
    p10 = x[:, :, hl + hs][:, :, :, wl]
    p11 = x[:, :, hl + hs][:, :, :, wl + ws]
    h0l, h1l = h0l[:, None], h1l[:, None]
    top = (w0l * p00).astype(F32) + (w1l * p01).astype(F32)
    bottom = (w0l * p10).astype(F32) + (w1l * p11).astype(F32)
    return ((h0l * top).astype(F32) + (h1l * bottom).astype(F32)).astype(F32)


def _scale_broadcast(b0: tuple[int, ...], axis: int, operand: np.ndarray) -> np.ndarray:
    shape = [1] * len(b0)
    for k, d in enumerate(operand.shape):
        shape[axis + k] = d
    return operand.reshape(shape)


def forward_layer(layer, bottoms: list[np.ndarray], blobs: list[np.ndarray]) -> list[np.ndarray]:
    """Caffe's Forward_cpu for one layer (TEST phase)."""
    t = layer.type
    x = bottoms[0] if bottoms else None
    if t in ("Convolution", "Deconvolution"):
        _, _, geom = _conv_shapes(layer, x.shape, t == "Deconvolution")
        bias = blobs[1] if layer.convolution_param.bias_term else None
        return [(_deconv_forward if t == "Deconvolution" else _conv_forward)(x, blobs[0], bias, geom)]
    if t == "InnerProduct":
        p = layer.inner_product_param
        axis = _canon(p.axis, x.ndim)
        x2 = x.reshape(_count(x.shape, 0, axis), -1).astype(np.float64)
        w = blobs[0].astype(np.float64)
        y = x2 @ (w if p.transpose else w.T)
        if p.bias_term:
            y = y + blobs[1].astype(np.float64)
        return [y.reshape(*x.shape[:axis], p.num_output).astype(F32)]
    if t == "Pooling":
        return [_pool_forward(layer, x)]
    if t == "BatchNorm":
        p = layer.batch_norm_param
        _check(
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
            axis = 0 if operand.ndim == 0 else _canon(p.axis, x.ndim)
            extra = blobs
        else:
            operand = blobs[0]
            axis = _canon(p.axis, x.ndim) if x.ndim else 0
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
        _check(p.base == -1 or p.base > 0, f"{layer.name}: base must be strictly positive")
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
        return [np.concatenate(bottoms, axis=_canon(layer.concat_param.axis, x.ndim)).astype(F32)]
    if t == "Slice":
        tops, _ = layer_shapes(layer, [x.shape])
        axis = _canon(layer.slice_param.axis, x.ndim)
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
        axis = _canon(p.axis, x.ndim)
        index = [slice(None)] * x.ndim
        for i in range(axis, x.ndim):
            off = 0 if not p.offset else p.offset[0 if len(p.offset) == 1 else i - axis]
            index[i] = slice(off, off + bottoms[1].shape[i])
        return [x[tuple(index)].copy()]
    if t in ("Reshape", "Flatten"):
        (top,), _ = layer_shapes(layer, [x.shape])
        return [x.reshape(top)]
    if t == "Softmax":
        axis = _canon(layer.softmax_param.axis, x.ndim)
        x64 = x.astype(np.float64)
        e = np.exp(x64 - x64.max(axis=axis, keepdims=True))
        return [(e / e.sum(axis=axis, keepdims=True)).astype(F32)]
    if t == "Tile":
        p = layer.tile_param
        axis = _canon(p.axis, x.ndim)
        reps = [1] * x.ndim
        reps[axis] = p.tiles
        return [np.tile(x, reps)]
    if t == "DummyData":
        tops, _ = layer_shapes(layer, [])
        fillers = list(layer.dummy_data_param.data_filler)
        out = []
        for k, s in enumerate(tops):
            f = fillers[k if len(fillers) > 1 else 0] if fillers else None
            _check(f is None or f.type == "constant", f"{layer.name}: only constant fillers are evaluated")
            out.append(np.full(s, 0.0 if f is None else f.value, dtype=F32))
        return out
    if t == "Parameter":
        return [blobs[0].copy()]
    if t == "Interp":
        return [_interp_forward(layer, x)]
    if t == "Upsample":
        s = layer.upsample_param.scale
        return [np.repeat(np.repeat(x, s, axis=-2), s, axis=-1)]
    raise CaffeReferenceError(f"{layer.name}: layer type {t!r} is not implemented by the reference evaluator")


class CaffeNet:
    """A TEST-phase Caffe net: layers from ``net`` (a NetParameter), weights copied from ``weights``."""

    def __init__(self, net, weights=None) -> None:
        self.net = net
        self.layers = [layer for layer in net.layer if _included(layer)]
        self.params: dict[str, list[np.ndarray]] = {}
        trained = {layer.name: layer for layer in (weights.layer if weights is not None else [])}
        self.shapes: dict[str, tuple[int, ...]] = {}
        consumed: set[str] = set()
        produced: list[str] = []
        names = set()
        for layer in self.layers:
            _check(layer.name not in names, f"duplicate layer name {layer.name!r}")
            names.add(layer.name)
            for b in layer.bottom:
                _check(
                    b in self.shapes,
                    f"Unknown bottom blob '{b}' (layer '{layer.name}', bottom index {list(layer.bottom).index(b)})",
                )
                consumed.add(b)
            tops, blob_shapes = layer_shapes(layer, [self.shapes[b] for b in layer.bottom])
            _check(len(tops) == len(layer.top), f"{layer.name}: {len(layer.top)} tops for {len(tops)} outputs")
            for name, shape in zip(layer.top, tops):
                self.shapes[name] = tuple(int(d) for d in shape)
                produced.append(name)
            source = trained.get(layer.name)
            if blob_shapes:
                _check(
                    source is not None and len(source.blobs) == len(blob_shapes),
                    f"Incompatible number of blobs for layer {layer.name}",
                )
                arrays = [blob_to_array(b) for b in source.blobs]
                for k, (a, s) in enumerate(zip(arrays, blob_shapes)):
                    _check(
                        tuple(a.shape) == tuple(s),
                        f"Cannot copy param {k} weights from layer '{layer.name}'; shape mismatch. Source param shape is {a.shape}; target param shape is {tuple(s)}",
                    )
                self.params[layer.name] = arrays
            elif source is not None:
                _check(len(source.blobs) == 0, f"Incompatible number of blobs for layer {layer.name}")
        self.outputs = [n for n in dict.fromkeys(produced) if n not in consumed]
        self.inputs = [t for layer in self.layers if layer.type == "Input" for t in layer.top]

    def forward(self, inputs: Mapping[str, np.ndarray], keep_all: bool = False) -> dict[str, np.ndarray]:
        blobs: dict[str, np.ndarray] = {}
        for layer in self.layers:
            if layer.type == "Input":
                for name in layer.top:
                    _check(name in inputs, f"missing input {name!r}")
                    value = np.asarray(inputs[name], dtype=F32)
                    _check(
                        value.shape == self.shapes[name],
                        f"input {name!r} has shape {value.shape}, the net expects {self.shapes[name]}",
                    )
                    blobs[name] = value
                continue
            tops = forward_layer(layer, [blobs[b] for b in layer.bottom], self.params.get(layer.name, []))
            for name, value in zip(layer.top, tops):
                _check(
                    tuple(value.shape) == self.shapes[name],
                    f"{layer.name}: computed {value.shape}, expected {self.shapes[name]}",
                )
                blobs[name] = value
        return blobs if keep_all else {n: blobs[n] for n in self.outputs}


def _included(layer) -> bool:
    """NetStateRule filtering for phase TEST (the only state the exporter targets)."""
    if layer.HasField("phase") and layer.phase != 1:
        return False
    if layer.include:
        return any(not r.HasField("phase") or r.phase == 1 for r in layer.include)
    if layer.exclude:
        return not any(not r.HasField("phase") or r.phase == 1 for r in layer.exclude)
    return True


def load(prototxt: str | os.PathLike, caffemodel: str | os.PathLike | None) -> CaffeNet:
    """Parse the written files with the schema and build the evaluator (what ``caffe.Net(..., TEST)`` does)."""
    with open(prototxt, encoding="utf-8") as f:
        net = proto.parse_prototxt(f.read())
    weights = None
    if caffemodel is not None:
        with open(caffemodel, "rb") as f:
            weights = proto.parse_caffemodel(f.read())
    return CaffeNet(net, weights)


def run(
    prototxt: str | os.PathLike, caffemodel: str | os.PathLike | None, inputs: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    return load(prototxt, caffemodel).forward(inputs)


__all__ = [
    "CaffeNet",
    "CaffeReferenceError",
    "array_to_blob",
    "blob_to_array",
    "conv_geometry",
    "forward_layer",
    "layer_shapes",
    "load",
    "pooled_size",
    "run",
]
