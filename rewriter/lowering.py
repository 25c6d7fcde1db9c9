"""Exact lowerings derived from the semantics core's matrices (ConvTranspose form, separable matrices).

With an integer factor ``f = m / n`` a resize's weights are periodic in the output index away from the
borders: output ``o`` takes input ``i`` with weight ``k[o - f*i + c]`` for one kernel ``k``. We read
``k`` and ``c`` off the matrix, then look for the edge replication that makes the borders come out
right too, and accept the form only if the rebuilt matrix equals the original. This covers half_pixel,
align_corners, asymmetric, pytorch_half_pixel, tf_half_pixel_for_nn and every nearest rounding without
a special case per mode, and it proves each form it returns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rewriter.sampling import (
    F32,
    WEIGHT_ATOL,
    AxisRule,
    AxisWeights,
    bilinear_filler_kernel,
    conv_transpose_matrix,
    edge_pad_matrix,
    ort_axis_weights,
)


@dataclass(frozen=True)
class ConvTransposeForm:
    """``y = ConvTranspose(EdgePad(x, pad_before, pad_after), kernel, stride, pads=(crop_begin, crop_end))``."""

    kernel: tuple[float, ...]
    stride: int
    pad_before: int  # edge replication before the deconvolution
    pad_after: int
    crop_begin: int  # ConvTranspose pads: outputs dropped at each end
    crop_end: int

    def matrix(self, n: int) -> np.ndarray:
        padded = n + self.pad_before + self.pad_after
        deconv = conv_transpose_matrix(np.array(self.kernel), self.stride, self.crop_begin, self.crop_end, padded)
        return deconv @ edge_pad_matrix(n, self.pad_before, self.pad_after)


def derive_conv_transpose(weights: AxisWeights, stride: int, probe: AxisWeights | None = None, max_edge: int = 3) -> ConvTransposeForm | None:
    """The exact ConvTranspose form (given stride) of one axis resize, or None if there is none.

    ``probe`` is the same rule evaluated on a longer axis with the same stride, so that the kernel can be
    read off rows far from both borders even when the real axis is too short to have such rows.
    """
    m, n = weights.shape
    if weights.outside.any() or stride < 1 or n < 1:
        return None
    source = probe if probe is not None else weights
    pm, pn = source.shape
    w = source.matrix
    # Read the kernel off one period of rows whose taps are farthest from both borders.
    centre = (pn // 2) * stride
    taps: dict[int, float] = {}
    for o in range(min(centre, pm - 1), min(centre + stride, pm)):
        for i in np.nonzero(np.abs(w[o]) > WEIGHT_ATOL)[0]:
            taps[o - stride * int(i)] = float(w[o, i])
    if not taps:
        return None
    c = -min(taps)
    kernel = np.zeros(max(taps) + c + 1)
    for t, v in taps.items():
        kernel[t + c] = v
    for edge in range(0, max_edge + 1):
        crop_begin = c + edge * stride
        full = stride * (n + 2 * edge - 1) + len(kernel)
        crop_end = full - crop_begin - m
        if crop_end < 0:
            continue
        form = ConvTransposeForm(tuple(kernel), stride, edge, edge, crop_begin, crop_end)
        if np.allclose(form.matrix(n), weights.matrix, atol=WEIGHT_ATOL, rtol=0):
            return _trim(form, n, weights.matrix)
    return None


def stride_candidates(n: int, m: int) -> list[int]:
    """Integer strides a transposed convolution could upsample n -> m with (x f, or align-corners f(n-1)+1)."""
    out = []
    if m % n == 0 and m > n:
        out.append(m // n)
    if n > 1 and (m - 1) % (n - 1) == 0 and m > n:
        out.append((m - 1) // (n - 1))
    if m == n:
        out.append(1)
    return out


_PROBE = 16  # a longer axis on which the kernel is read off, far from both borders


def axis_conv_transpose_form(weights: AxisWeights, rule: AxisRule | None) -> ConvTransposeForm | None:
    """The exact ConvTranspose form of one axis for any integer stride, or None.

    ``rule`` (when the axis is one Resize's) gives a longer probe axis with the same grid to read the
    kernel off; the final check is always against ``weights`` themselves.
    """
    m, n = weights.shape
    for stride in stride_candidates(n, m):
        probe = None
        if rule is not None:
            probe_m = stride * _PROBE if m == stride * n else stride * (_PROBE - 1) + 1
            probe = ort_axis_weights(rule, _PROBE, probe_m, float(F32(probe_m) / F32(_PROBE)))
        form = derive_conv_transpose(weights, stride, probe)
        if form is not None:
            return form
    return None


def _trim(form: ConvTransposeForm, n: int, w: np.ndarray) -> ConvTransposeForm:
    """Drop edge replication a side does not need (cheaper graph, same matrix)."""
    for before, after in ((0, 0), (0, form.pad_after), (form.pad_before, 0)):
        if (before, after) == (form.pad_before, form.pad_after):
            continue
        shift = (form.pad_before - before) * form.stride
        full = form.stride * (n + before + after - 1) + len(form.kernel)
        crop_begin = form.crop_begin - shift
        crop_end = full - crop_begin - w.shape[0]
        if crop_begin < 0 or crop_end < 0:
            continue
        candidate = ConvTransposeForm(form.kernel, form.stride, before, after, crop_begin, crop_end)
        if np.allclose(candidate.matrix(n), w, atol=WEIGHT_ATOL, rtol=0):
            return candidate
    return form


def caffe_classic_deconv(n: int, f: int) -> AxisWeights:
    """The classic Caffe recipe (zero borders): kernel 2f - f%2, stride f, pad ceil((f-1)/2), bilinear filler."""
    k = 2 * f - f % 2
    pad = int(np.ceil((f - 1) / 2))
    return AxisWeights(conv_transpose_matrix(bilinear_filler_kernel(k), f, pad, pad, n))
