"""The spatial layers of the Caffe reference evaluator: Convolution / Deconvolution, Pooling and Interp.

Their geometry is read like the layers' LayerSetUp / Reshape (``base_conv_layer.cpp``,
``pooling_layer.cpp``, ``interp_layer.cpp``) and their forward passes follow the CPU kernels.
"""

from __future__ import annotations

import math

import numpy as np

from rewriter.caffe.reference.blobs import F32, canonical_axis, check

# Convolution axis, kernel, stride, pad, dilation and group, as ``conv_shapes`` reads them.
ConvGeometry = tuple[int, list[int], list[int], list[int], list[int], int]
Pair = tuple[int, int]


# ------------------------------------------------------------------------------------------------
# Geometry


def conv_geometry(p, num_spatial: int) -> tuple[list[int], list[int], list[int], list[int]]:
    """kernel, stride, pad, dilation per spatial axis, read like BaseConvolutionLayer::LayerSetUp."""
    if p.HasField("kernel_h") or p.HasField("kernel_w"):
        check(num_spatial == 2, "kernel_h & kernel_w can only be used for 2D convolution")
        check(len(p.kernel_size) == 0, "Either kernel_size or kernel_h/w should be specified; not both")
        kernel = [p.kernel_h, p.kernel_w]
    else:
        check(
            len(p.kernel_size) in (1, num_spatial), "kernel_size must be specified once, or once per spatial dimension"
        )
        kernel = [p.kernel_size[i if len(p.kernel_size) > 1 else 0] for i in range(num_spatial)]
    if p.HasField("stride_h") or p.HasField("stride_w"):
        check(num_spatial == 2 and len(p.stride) == 0, "stride_h & stride_w: 2D only, not with stride")
        stride = [p.stride_h, p.stride_w]
    else:
        check(len(p.stride) in (0, 1, num_spatial), "stride must be specified once, or once per spatial dimension")
        stride = [1 if not p.stride else p.stride[i if len(p.stride) > 1 else 0] for i in range(num_spatial)]
    if p.HasField("pad_h") or p.HasField("pad_w"):
        check(num_spatial == 2 and len(p.pad) == 0, "pad_h & pad_w: 2D only, not with pad")
        pad = [p.pad_h, p.pad_w]
    else:
        check(len(p.pad) in (0, 1, num_spatial), "pad must be specified once, or once per spatial dimension")
        pad = [0 if not p.pad else p.pad[i if len(p.pad) > 1 else 0] for i in range(num_spatial)]
    check(len(p.dilation) in (0, 1, num_spatial), "dilation must be specified once, or once per spatial dimension")
    dilation = [1 if not p.dilation else p.dilation[i if len(p.dilation) > 1 else 0] for i in range(num_spatial)]
    check(all(k > 0 for k in kernel) and all(s > 0 for s in stride), "Filter dimensions and strides must be positive")
    return [int(k) for k in kernel], [int(s) for s in stride], [int(x) for x in pad], [int(d) for d in dilation]


def conv_shapes(
    layer, bottom: tuple[int, ...], deconv: bool
) -> tuple[tuple[int, ...], list[tuple[int, ...]], ConvGeometry]:
    """Top shape, parameter blob shapes and geometry of a Convolution (or Deconvolution) layer."""
    p = layer.convolution_param
    axis = canonical_axis(p.axis, len(bottom))
    spatial_in = bottom[axis + 1 :]
    kernel, stride, pad, dil = conv_geometry(p, len(spatial_in))
    channels = bottom[axis]
    group = p.group
    check(
        channels % group == 0 and p.num_output % group == 0,
        f"{layer.name}: channels and num_output must be divisible by group",
    )
    if deconv:
        weight = (channels, p.num_output // group, *kernel)
        out = [s * (i - 1) + d * (k - 1) + 1 - 2 * q for i, k, s, q, d in zip(spatial_in, kernel, stride, pad, dil)]
    else:
        weight = (p.num_output, channels // group, *kernel)
        out = [(i + 2 * q - (d * (k - 1) + 1)) // s + 1 for i, k, s, q, d in zip(spatial_in, kernel, stride, pad, dil)]
    check(all(o > 0 for o in out), f"{layer.name}: output size {out} is not positive")
    blobs = [weight] + ([(p.num_output,)] if p.bias_term else [])
    return (*bottom[:axis], p.num_output, *out), blobs, (axis, kernel, stride, pad, dil, group)


def pool_geometry(layer, bottom: tuple[int, ...]) -> tuple[Pair, Pair, Pair, Pair]:
    """Kernel, stride, pad and pooled size (height, width) of a Pooling layer, checked like LayerSetUp."""
    p = layer.pooling_param
    check(len(bottom) == 4, f"{layer.name}: Input must have 4 axes, corresponding to (num, channels, height, width)")
    height, width = bottom[2], bottom[3]
    if p.global_pooling:
        check(
            not (p.HasField("kernel_size") or p.HasField("kernel_h") or p.HasField("kernel_w")),
            "With Global_pooling: true Filter size cannot specified",
        )
        kh, kw = height, width
    else:
        check(
            p.HasField("kernel_size") != (p.HasField("kernel_h") and p.HasField("kernel_w")),
            "Filter size is kernel_size OR kernel_h and kernel_w; not both",
        )
        kh, kw = (p.kernel_size, p.kernel_size) if p.HasField("kernel_size") else (p.kernel_h, p.kernel_w)
    check(kh > 0 and kw > 0, "Filter dimensions cannot be zero.")
    check(
        (not p.HasField("pad") and p.HasField("pad_h") and p.HasField("pad_w"))
        or (not p.HasField("pad_h") and not p.HasField("pad_w")),
        "pad is pad OR pad_h and pad_w are required.",
    )
    ph, pw = (p.pad_h, p.pad_w) if p.HasField("pad_h") else (p.pad, p.pad)
    check(
        (not p.HasField("stride") and p.HasField("stride_h") and p.HasField("stride_w"))
        or (not p.HasField("stride_h") and not p.HasField("stride_w")),
        "Stride is stride OR stride_h and stride_w are required.",
    )
    sh, sw = (p.stride_h, p.stride_w) if p.HasField("stride_h") else (p.stride, p.stride)
    if p.global_pooling:
        check(ph == 0 and pw == 0 and sh == 1 and sw == 1, "With Global_pooling: true; only pad = 0 and stride = 1")
    if ph or pw:
        check(ph < kh and pw < kw, f"{layer.name}: pad must be smaller than the kernel")
    out_h = math.ceil(float(F32(height + 2 * ph - kh) / F32(sh))) + 1
    out_w = math.ceil(float(F32(width + 2 * pw - kw) / F32(sw))) + 1
    if ph or pw:
        if (out_h - 1) * sh >= height + ph:
            out_h -= 1
        if (out_w - 1) * sw >= width + pw:
            out_w -= 1
        check(
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


def interp_sizes(layer, bottom: tuple[int, ...]) -> tuple[tuple[int, int, int, int], Pair]:
    """Top shape of an Interp layer and the (height, width) of its bottom after the pad_beg / pad_end crop."""
    p = layer.interp_param
    check(len(bottom) == 4, f"{layer.name}: Interp needs a 4-D bottom")
    specs = (
        int(p.HasField("zoom_factor"))
        + int(p.HasField("shrink_factor"))
        + int(p.HasField("height") and p.HasField("width"))
    )
    check(specs == 1, f"{layer.name}: Output dimension specified either by zoom factor or shrink factor or explicitly")
    check(p.pad_beg <= 0 and p.pad_end <= 0, "Only supports non-pos padding (cropping) for now")
    h_eff = bottom[2] + p.pad_beg + p.pad_end
    w_eff = bottom[3] + p.pad_beg + p.pad_end
    if p.HasField("zoom_factor"):
        h_out, w_out = h_eff + (h_eff - 1) * (p.zoom_factor - 1), w_eff + (w_eff - 1) * (p.zoom_factor - 1)
    elif p.HasField("shrink_factor"):
        h_out, w_out = (h_eff - 1) // p.shrink_factor + 1, (w_eff - 1) // p.shrink_factor + 1
    else:
        h_out, w_out = p.height, p.width
    check(h_eff > 0 and w_eff > 0 and h_out > 0 and w_out > 0, f"{layer.name}: Interp sizes must be positive")
    return (bottom[0], bottom[1], h_out, w_out), (h_eff, w_eff)


# ------------------------------------------------------------------------------------------------
# Forward


def deconv_forward(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None, geom: ConvGeometry) -> np.ndarray:
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


def conv_forward(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None, geom: ConvGeometry) -> np.ndarray:
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


def pool_forward(layer, x: np.ndarray) -> np.ndarray:
    (kh, kw), (sh, sw), (ph, pw), (oh, ow) = pool_geometry(layer, x.shape)
    n, c, height, width = x.shape
    out = np.empty((n, c, oh, ow), dtype=F32)
    method = layer.pooling_param.pool
    check(method in (0, 1), f"{layer.name}: only MAX and AVE pooling are implemented")
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


def interp_forward(layer, x: np.ndarray) -> np.ndarray:
    """caffe_cpu_interp2 (bilinear, not packed) in float32, with the pad_beg crop."""
    (_, _, h2, w2), (h1, w1) = interp_sizes(layer, x.shape)
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
