"""One-dimensional sampling: the single source of truth for what a resize computes along one axis.

Every resize rewriter reasons about (an ONNX node as ONNX Runtime runs it, a Core ML op, a Caffe layer,
a ConvTranspose lowering) is reduced here to the same object: an ``m x n`` weight matrix ``W`` per axis,
plus a mask of output positions that take a constant (``tf_crop_and_resize`` extrapolation). Two ops
compute the same function along an axis exactly when their matrices and masks agree; every equivalence
decision in rewriter is such a comparison.

ONNX Runtime evaluates coordinates and weights in float32 with a specific operation order; the
``ort_*`` functions reproduce that order (numpy float32 arithmetic rounds like C++ float arithmetic),
so nearest-neighbour tie breaking and border handling match ORT bit for bit. Target ops are described
by ideal float64 grids (their documented formulas).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

F32 = np.float32

# Weights are compared with this absolute tolerance: float32 weights computed two ways differ by a few ulp.
WEIGHT_ATOL = 2e-6


@dataclass(frozen=True)
class AxisRule:
    """The attributes that decide how one axis samples its input (no lengths)."""

    mode: str
    transform: str
    nearest_mode: str = "round_prefer_floor"
    cubic_coeff_a: float = -0.75
    exclude_outside: bool = False
    antialias: bool = False
    roi: tuple[float, float] = (0.0, 1.0)

    @property
    def extrapolates(self) -> bool:
        return self.transform == "tf_crop_and_resize"


@dataclass(frozen=True)
class AxisWeights:
    """Output index -> weighted input taps for one axis: ``y[i] = sum_j matrix[i, j] * x[j]``.

    ``outside[i]`` marks outputs replaced by the extrapolation value (their matrix row is zero).
    """

    matrix: np.ndarray
    outside: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.outside is None:
            object.__setattr__(self, "outside", np.zeros(self.matrix.shape[0], dtype=bool))

    @property
    def shape(self) -> tuple[int, int]:
        return self.matrix.shape  # type: ignore[return-value]

    def difference(self, other: AxisWeights) -> float:
        """Worst-case output error for inputs in [-1, 1] (infinity norm of the difference); inf if shapes differ.

        Rows where both sides extrapolate are equal; a row extrapolated on one side only counts as 1.
        """
        if self.shape != other.shape:
            return float("inf")
        both = self.outside & other.outside
        one = self.outside ^ other.outside
        diff = np.abs(self.matrix - other.matrix).sum(axis=1)
        diff[both] = 0.0
        diff[one] = np.maximum(diff[one], 1.0)
        return float(diff.max(initial=0.0))

    def same_as(self, other: AxisWeights, atol: float = WEIGHT_ATOL) -> bool:
        return self.difference(other) <= atol

    def is_identity(self) -> bool:
        m, n = self.shape
        return m == n and not self.outside.any() and np.allclose(self.matrix, np.eye(n), atol=WEIGHT_ATOL, rtol=0)


# ---------------------------------------------------------------------------------------------------
# Small weight builders shared by every description (ORT, targets, lowerings).


def pick_weights(index: np.ndarray, n: int) -> np.ndarray:
    """One-hot rows: output i copies input index[i] (indices clamped to [0, n-1])."""
    index = np.clip(np.asarray(index, dtype=np.int64), 0, n - 1)
    w = np.zeros((len(index), n))
    w[np.arange(len(index)), index] = 1.0
    return w


def lerp_weights(x: np.ndarray, n: int) -> np.ndarray:
    """Two-tap linear interpolation at coordinates x with edge clamping (float64, ideal)."""
    x = np.clip(np.asarray(x, dtype=np.float64), 0.0, n - 1)
    lo = np.minimum(np.floor(x).astype(np.int64), n - 1)
    hi = np.minimum(lo + 1, n - 1)
    frac = x - lo
    w = np.zeros((len(x), n))
    rows = np.arange(len(x))
    np.add.at(w, (rows, lo), 1.0 - frac)
    np.add.at(w, (rows, hi), frac)
    return w


def conv_transpose_matrix(kernel: np.ndarray, stride: int, pad_begin: int, pad_end: int, n: int) -> np.ndarray:
    """1-D transposed convolution as a matrix: ``y[o] = sum_i x[i] * kernel[o + pad_begin - i*stride]``.

    Output length ``stride*(n-1) + K - pad_begin - pad_end`` (ONNX ConvTranspose / Caffe Deconvolution).
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    k = len(kernel)
    out = stride * (n - 1) + k - pad_begin - pad_end
    w = np.zeros((max(out, 0), n))
    for i in range(n):
        for t in range(k):
            o = i * stride + t - pad_begin
            if 0 <= o < out:
                w[o, i] += kernel[t]
    return w


def edge_pad_matrix(n: int, before: int, after: int) -> np.ndarray:
    """Replicate padding: ``n + before + after`` rows, each copying the clamped source index."""
    return pick_weights(np.arange(-before, n + after), n)


def bilinear_filler_kernel(size: int) -> np.ndarray:
    """Caffe's BilinearFiller along one axis (filler.hpp): ``f = ceil(K/2)``, ``c = (K-1)/(2f)``."""
    f = int(np.ceil(size / 2))
    c = (size - 1) / (2.0 * f)
    x = np.arange(size)
    return 1.0 - np.abs(x / f - c)


# ---------------------------------------------------------------------------------------------------
# ONNX Runtime (CPU) emulation: upsamplebase.h, upsample.cc, upsample_antialias.h.


def scaled_lengths(n: int, scale: float) -> tuple[int, int]:
    """Output length for a given scale: as ORT computes it (float32 product, truncated) and as the spec,
    onnx shape inference and the reference do (float64 floor). They differ for many float32 scales."""
    s = F32(scale)
    return int(s * F32(n)), int(np.floor(np.float64(s) * n))


def ort_coordinates(rule: AxisRule, n: int, m: int, scale: float) -> np.ndarray:
    """Source coordinate of each output index, float32, in ORT's operation order."""
    i = np.arange(m, dtype=F32)
    s = F32(scale)
    half = F32(0.5)
    t = rule.transform
    if t == "half_pixel":
        return ((i + half) / s) - half
    if t == "asymmetric":
        return i / s
    if t == "pytorch_half_pixel":
        return (i + half) / s - half if m > 1 else np.zeros(m, dtype=F32)
    if t == "tf_half_pixel_for_nn":
        return (i + half) / s
    if t == "align_corners":
        if m == 1:
            return np.zeros(m, dtype=F32)
        return i * (F32(n) - F32(1)) / (F32(m) - F32(1))
    if t == "tf_crop_and_resize":
        start, end = F32(rule.roi[0]), F32(rule.roi[1])
        if m > 1:
            return start * (F32(n) - F32(1)) + (i * (end - start) * (F32(n) - F32(1))) / (F32(m) - F32(1))
        centre = 0.5 * (float(start) + float(end)) * (float(F32(n)) - 1.0)
        return np.full(m, F32(centre), dtype=F32)
    if t == "half_pixel_symmetric":
        output_width = s * F32(n)
        adjustment = F32(m) / output_width
        center = F32(n) / F32(2)
        offset = center * (F32(1) - adjustment)
        # ORT mixes in double literals here: the tail is evaluated in double, then rounded once.
        x = float(offset) + (i.astype(np.float64) + 0.5) / float(s) - 0.5
        return x.astype(F32)
    raise ValueError(f"unknown coordinate transformation mode {t!r}")


def ort_round(x: np.ndarray, nearest_mode: str, downsampling: bool) -> np.ndarray:
    """ORT's GetNearestPixelFromOriginal on float32 coordinates."""
    x = np.asarray(x, dtype=F32)
    # std::round: half away from zero, on the exact value (in float64 |x| + 0.5 is exact for float32 x).
    away = np.sign(x.astype(np.float64)) * np.floor(np.abs(x.astype(np.float64)) + 0.5)
    if nearest_mode == "round_prefer_ceil":
        r = away
    elif nearest_mode == "round_prefer_floor":
        trunc = np.trunc(x)
        tie = x == (trunc + F32(0.5)).astype(F32)
        r = np.where(tie, np.floor(x), away)
    elif nearest_mode == "floor":
        r = np.floor(x)
    elif nearest_mode == "ceil":
        r = np.ceil(x)
    elif nearest_mode == "simple":
        r = np.ceil(x) if downsampling else np.trunc(x)
    else:
        raise ValueError(f"unknown nearest_mode {nearest_mode!r}")
    return r.astype(np.int64)


def _near_rounding_boundary(x: np.ndarray, nearest_mode: str, ulps: int = 4) -> np.ndarray:
    """Rows whose float32 coordinate is within a few ulp of where the nearest index changes."""
    x = np.asarray(x, dtype=F32).astype(np.float64)
    boundary = np.floor(x) + 0.5 if nearest_mode.startswith("round") else np.round(x)
    near = np.abs(x - boundary) <= ulps * np.spacing(np.abs(x.astype(F32)) + F32(1)).astype(np.float64)
    return near & (x != 0)  # 0 is computed exactly whatever the arithmetic


@functools.lru_cache(maxsize=4096)
def _ort_nearest_indices(transform: str, nearest_mode: str, roi: tuple[float, float], n: int, m: int, scale: float) -> np.ndarray | None:
    """Source index of each output as ONNX Runtime computes it (-1: extrapolated), from a 1 x n probe.

    None when no probe reproduces this (n, m, scale): e.g. a keep_aspect_ratio_policy scale whose output
    length was rounded rather than floored.
    """
    import onnxruntime as ort
    from onnx import TensorProto
    from onnx import helper as oh

    s = F32(scale)
    by_scales = scaled_lengths(n, s)[0] == m
    if not by_scales and F32(m) / F32(n) != s:
        return None
    if nearest_mode == "simple":  # only Resize-10 rounds this way
        opset, inputs = 10, ["x", "scales"]
        attrs: dict = {"mode": "nearest"}
    else:
        opset, inputs = 11, ["x", "roi", "scales"] + ([] if by_scales else ["sizes"])
        attrs = {"mode": "nearest", "coordinate_transformation_mode": transform, "nearest_mode": nearest_mode, "extrapolation_value": -1.0}
    # The probe also doubles a dummy leading axis: with every length unchanged ORT would just copy the input.
    tensors = [
        oh.make_tensor("roi", TensorProto.FLOAT, [4], [0.0, roi[0], 1.0, roi[1]]),
        oh.make_tensor("scales", TensorProto.FLOAT, [2] if by_scales else [0], [2.0, float(s)] if by_scales else []),
        oh.make_tensor("sizes", TensorProto.INT64, [2], [2, m]),
    ]
    graph = oh.make_graph(
        [oh.make_node("Resize", inputs, ["y"], **attrs)],
        "probe",
        [oh.make_tensor_value_info("x", TensorProto.FLOAT, [1, n])],
        [oh.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [t for t in tensors if t.name in inputs],
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)])
    model.ir_version = 7
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    y = session.run(None, {"x": np.arange(n, dtype=np.float32).reshape(1, n)})[0][0]
    return y.astype(np.int64)


def _ort_cubic_coeffs(s: np.ndarray, a: float) -> np.ndarray:
    """GetCubicCoeffs in float32; returns (len(s), 4) coefficients for taps floor(x)-1 .. floor(x)+2."""
    a = F32(a)
    t = np.abs(np.asarray(s, dtype=F32))
    one, two = F32(1), F32(2)
    c0 = ((a * (t + one) - F32(5) * a) * (t + one) + F32(8) * a) * (t + one) - F32(4) * a
    c1 = ((a + two) * t - (a + F32(3))) * t * t + one
    c2 = ((a + two) * (one - t) - (a + F32(3))) * (one - t) * (one - t) + one
    c3 = ((a * (two - t) - F32(5) * a) * (two - t) + F32(8) * a) * (two - t) - F32(4) * a
    return np.stack([c0, c1, c2, c3], axis=1).astype(F32)


def _ort_filter(rule: AxisRule, x: F32) -> F32:
    """Antialias filters (upsample_antialias.h): triangle for linear, Keys cubic for cubic."""
    x = abs(F32(x))
    if rule.mode == "linear":
        return F32(1) - x if x < F32(1) else F32(0)
    a = F32(rule.cubic_coeff_a)
    if x < F32(1):
        return ((a + F32(2)) * x - (a + F32(3))) * x * x + F32(1)
    if x < F32(2):
        return (((x - F32(5)) * x + F32(8)) * x - F32(4)) * a
    return F32(0)


def _ort_antialias_weights(rule: AxisRule, n: int, m: int, rscale: float) -> AxisWeights:
    """SetupUpsampleFilterAntiAlias for one axis, loop for loop (the fold of outside taps is order-sensitive)."""
    rscale = F32(rscale)
    scale = F32(1) / rscale
    support_size = F32(2) if rule.mode == "linear" else F32(4)
    support = (support_size * F32(0.5)) * scale if scale >= F32(1) else support_size * F32(0.5)
    inv_scale = F32(1) / scale if scale >= F32(1) else F32(1)
    coords = ort_coordinates(rule, n, m, rscale) if scale != F32(1) else np.arange(m, dtype=F32)
    w = np.zeros((m, n))
    outside = np.zeros(m, dtype=bool)
    for i in range(m):
        center = F32(0.5) + coords[i]
        outside[i] = (center - F32(0.5)) < 0 or (center - F32(0.5)) > F32(n - 1)
        xmin_real = int(np.floor(center - support + F32(0.5)))
        xmax_real = int(np.floor(center + support + F32(0.5)))
        xmin_cut, xmax_cut = max(xmin_real, 0), min(xmax_real, n)
        xmin = xmin_cut if rule.exclude_outside else xmin_real
        length = (xmax_cut if rule.exclude_outside else xmax_real) - xmin
        # ORT's buffer holds window_size entries per row; the fold below may touch past `length`.
        buf = [F32(0)] * max(length, -xmin + 1, 1)
        total = F32(0)
        for x in range(length):
            buf[x] = _ort_filter(rule, (F32(x + xmin) - center + F32(0.5)) * inv_scale)
            total = F32(total + buf[x])
        neg = -xmin if xmin < 0 else 0
        bound = length + xmin - n if length + xmin > n else 0
        # A window entirely outside the input only happens on tf_crop_and_resize rows that extrapolate.
        if not rule.exclude_outside and neg < length and length - bound - 1 >= 0:
            for x in range(neg):
                buf[neg] = F32(buf[neg] + buf[x])
            for x in range(length - bound, length):
                buf[length - bound - 1] = F32(buf[length - bound - 1] + buf[x])
            if neg or bound:
                for x in range(xmax_cut - xmin_cut):
                    buf[x] = buf[x + neg]
        inv_total = F32(1) if total == F32(0) else F32(1) / total
        for x in range(xmax_cut - xmin_cut):
            w[i, xmin_cut + x] = F32(buf[x] * inv_total)
    if rule.extrapolates:
        w[outside] = 0.0
    else:
        outside[:] = False
    return AxisWeights(w, outside)


def ort_axis_weights(rule: AxisRule, n: int, m: int, scale: float, *, identity_when_unscaled: bool = True) -> AxisWeights:
    """The weights ONNX Runtime's CPU kernel applies along one axis.

    ``scale`` is the float32 scale ORT uses for this axis (given scale, or ``float32(m)/float32(n)``).
    ``identity_when_unscaled``: ORT skips the coordinate transform on an axis whose scale is exactly 1
    (every kernel except rank-1 nearest), even for tf_crop_and_resize with a cropping roi.
    """
    s = F32(scale)
    if rule.antialias and rule.mode in ("linear", "cubic"):
        if m == n:  # the antialias kernels copy an axis whose length does not change, whatever the scale
            return AxisWeights(np.eye(n))
        return _ort_antialias_weights(rule, n, m, s)

    unscaled = identity_when_unscaled and s == F32(1)
    x = np.arange(m, dtype=F32) if unscaled else ort_coordinates(rule, n, m, s)
    outside = (x < 0) | (x > F32(n - 1)) if rule.extrapolates else np.zeros(m, dtype=bool)

    if rule.mode == "nearest":
        idx = np.clip(ort_round(x, rule.nearest_mode, bool(s < F32(1))), 0, n - 1)
        if not unscaled and rule.nearest_mode.startswith("round") and _near_rounding_boundary(x, rule.nearest_mode).any():
            # ORT's compiled coordinate arithmetic is not always correctly rounded (it can land one ulp
            # on the other side of a .5 tie); there the only reliable answer is ORT's own.
            probed = _ort_nearest_indices(rule.transform, rule.nearest_mode, rule.roi, n, m, float(s))
            if probed is not None:
                outside = probed < 0
                idx = np.where(outside, 0, probed)
        w = pick_weights(idx, n)
    elif rule.mode == "linear":
        xc = np.clip(x, F32(0), F32(n - 1)).astype(F32)
        lo = np.minimum(xc.astype(np.int64), n - 1)
        hi = np.minimum(lo + 1, n - 1)
        d_lo = np.abs(xc - lo.astype(F32))
        d_hi = np.abs(xc - hi.astype(F32))
        same = lo == hi
        d_lo[same] = F32(0.5)
        d_hi[same] = F32(0.5)
        w = np.zeros((m, n))
        rows = np.arange(m)
        np.add.at(w, (rows, lo), d_hi.astype(np.float64))
        np.add.at(w, (rows, hi), d_lo.astype(np.float64))
    elif rule.mode == "cubic":
        base = np.floor(x).astype(np.int64)
        frac = (x - base.astype(F32)).astype(F32)
        coeffs = _ort_cubic_coeffs(frac, rule.cubic_coeff_a)
        taps = base[:, None] + np.arange(-1, 3)[None, :]
        if rule.exclude_outside:
            coeffs = np.where((taps < 0) | (taps >= n), F32(0), coeffs).astype(F32)
            total = coeffs.sum(axis=1, dtype=F32)
            total[total == 0] = F32(1)  # every tap outside: only possible on extrapolated rows
            coeffs = (coeffs / total[:, None]).astype(F32)
        w = np.zeros((m, n))
        rows = np.repeat(np.arange(m), 4)
        np.add.at(w, (rows, np.clip(taps, 0, n - 1).ravel()), coeffs.astype(np.float64).ravel())
    else:
        raise ValueError(f"unknown mode {rule.mode!r}")
    w[outside] = 0.0
    return AxisWeights(w, outside)


@functools.lru_cache(maxsize=4096)
def grid_conditioning(rule: AxisRule, n: int, m: int, scale: float) -> float:
    """How far ORT's float32 linear grid is from the same grid in exact arithmetic (worst row, inputs in [-1, 1]).

    Two correct float32 implementations of one grid differ by about this much (coordinates ~n with a
    relative error of a few eps): a documented op whose exact grid is this close to ORT's weights computes
    what ORT computes, up to ORT's own rounding. Nearest (an index matches or not), cubic and antialias get
    no such slack.
    """
    if rule.mode != "linear" or rule.antialias or rule.extrapolates or n < 2:
        return 0.0
    ideal = AxisWeights(lerp_weights(ideal_coordinates(rule.transform, n, m, scale), n))
    return ort_axis_weights(rule, n, m, scale).difference(ideal)


# ---------------------------------------------------------------------------------------------------
# Ideal (float64) grids: how documented target ops sample, and exact references for lowerings.


def ideal_coordinates(transform: str, n: int, m: int, scale: float | None = None, roi: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """The ONNX coordinate transforms in exact arithmetic with ``scale`` defaulting to ``m / n``."""
    i = np.arange(m, dtype=np.float64)
    s = m / n if scale is None else float(scale)
    if transform == "half_pixel":
        return (i + 0.5) / s - 0.5
    if transform == "asymmetric":
        return i / s
    if transform == "pytorch_half_pixel":
        return (i + 0.5) / s - 0.5 if m > 1 else np.zeros(m)
    if transform == "tf_half_pixel_for_nn":
        return (i + 0.5) / s
    if transform == "align_corners":
        return i * (n - 1) / (m - 1) if m > 1 else np.zeros(m)
    if transform == "tf_crop_and_resize":
        a, b = roi
        if m > 1:
            return a * (n - 1) + i * (b - a) * (n - 1) / (m - 1)
        return np.full(m, 0.5 * (a + b) * (n - 1))
    if transform == "half_pixel_symmetric":
        adjustment = m / (s * n)
        offset = n / 2 * (1 - adjustment)
        return offset + (i + 0.5) / s - 0.5
    raise ValueError(f"unknown coordinate transformation mode {transform!r}")
