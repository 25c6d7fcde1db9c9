"""``--target tract``: Sonos tract's ONNX loader (``tract.onnx().load(...).into_model()``), CPU float32.

tract loads ONNX directly (``onnx/src/ops/resize.rs``: the ONNX Resize attributes mapped one to one onto its
own Resize op, computed in float32). Where the rules come from (measured with ``tests/runtimes`` on the
593-model grid, tract 0.23):
- Upsample (any version) is rejected ("Unimplemented(Upsample)");
- tract follows the ONNX spec where ORT does not: for ``align_corners`` and ``tf_crop_and_resize`` the spec's
  ``length_resized`` is ``n * scale`` when the node gives ``scales`` (resize.rs uses it, unfloored), ORT uses
  the integer output length; with a fractional ``n * scale`` the grids differ (``spec_coordinates``);
- Resize-10 nearest rounds to the nearest input (round_prefer_floor) where ORT's legacy kernel floors
  (x1.5, x3, H x2 / W x1.5 differ);
- coordinates are correctly rounded float32 (the nearest ``round_prefer_*`` ties of
  ``openvino.float32_weights``: asymmetric + round_prefer_ceil 7 -> 4 as ``sizes`` differs);
- nearest ``half_pixel_symmetric``: rounding-boundary coordinates differ from ORT's mixed float/double ones
  (floor at x0.6 given as ``sizes``; every rounding but ceil at x0.6 given as ``scales``): accepted only where
  the scale is the size ratio, there modelled by correctly rounded float32 coordinates;
- measured differences without a model, refused: cubic ``pytorch_half_pixel`` / antialiased linear with an
  output length of 1, ``tf_crop_and_resize`` with antialias, cubic ``tf_crop_and_resize`` on axes other than
  the last two;
- every lowering (MatMul, Gather, Pad/Slice + ConvTranspose) is exact.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from rewriter.resize import ResizeSemantics
from rewriter.sampling import F32, AxisWeights, lerp_weights, ort_round, pick_weights
from rewriter.targets.openvino import float32_weights
from rewriter.targets.runtime import RuntimeTarget, spatial_nchw, weights_as

SPEC_LENGTH_TRANSFORMS = ("align_corners", "tf_crop_and_resize")


def fractional_axes(sem: ResizeSemantics) -> list[int]:
    """Resized axes whose ``n * scale`` (given as ``scales``) is not the output length."""
    if sem.size_source == "sizes":
        return []
    out = []
    for axis in sem.resized_axes:
        info = sem.axes_info[axis]
        if float(F32(info.scale)) * int(info.n) != int(info.m):  # type: ignore[arg-type]
            out.append(axis)
    return out


def scale_is_size_ratio(sem: ResizeSemantics) -> bool:
    """Every resized axis samples with scale m / n (float32), as a node given by ``sizes`` does."""
    infos = [sem.axes_info[a] for a in sem.resized_axes]
    return all(F32(a.scale) == F32(a.m) / F32(a.n) for a in infos)  # type: ignore[arg-type]


def spec_coordinates(sem: ResizeSemantics, axis: int) -> np.ndarray:
    """The spec's source coordinates on ``axis`` with ``length_resized = n * scale`` (float32)."""
    info = sem.axes_info[axis]
    (n, m), s = sem.lengths(axis), F32(info.scale)  # type: ignore[arg-type]
    i = np.arange(m, dtype=F32)
    span = F32(n) * s - F32(1)
    if sem.transform == "align_corners":
        return i * (F32(n) - F32(1)) / span
    start, end = (F32(v) for v in sem.axis_rule(axis).roi)
    return start * (F32(n) - F32(1)) + i * (end - start) * (F32(n) - F32(1)) / span


def spec_weights(sem: ResizeSemantics, axis: int) -> AxisWeights:
    """tract's nearest / linear weights on ``axis`` at the spec's coordinates (crop: outside rows extrapolate)."""
    info = sem.axes_info[axis]
    n = int(info.n)  # type: ignore[arg-type]
    x = spec_coordinates(sem, axis)
    outside = (x < 0) | (x > F32(n - 1)) if sem.transform == "tf_crop_and_resize" else np.zeros(len(x), dtype=bool)
    if sem.mode == "nearest":
        matrix = pick_weights(ort_round(x, sem.nearest_mode or "round_prefer_floor", bool(F32(info.scale) < 1)), n)
    else:
        matrix = lerp_weights(x.astype(np.float64), n)
    matrix[outside] = 0.0
    return AxisWeights(matrix, outside)


class TractTarget(RuntimeTarget):
    name: ClassVar[str] = "tract"
    summary: ClassVar[str] = "tract (Sonos, ONNX loader, CPU float32)"
    converter: ClassVar[str] = "tract"

    def computes(self, sem: ResizeSemantics) -> dict[int, AxisWeights] | str:
        if sem.op_type == "Upsample":
            return "tract has no Upsample operator"
        if sem.opset < 11 and sem.mode == "nearest":
            return weights_as(sem, nearest_mode="round_prefer_floor")
        to_one = any(sem.axes_info[a].m == 1 for a in sem.resized_axes)
        if sem.transform == "pytorch_half_pixel" and to_one and (sem.mode == "cubic" or sem.antialias):
            return "tract computes cubic / antialiased pytorch_half_pixel to a length of 1 differently from ORT"
        if sem.transform == "tf_crop_and_resize" and (sem.antialias or (sem.mode == "cubic" and not spatial_nchw(sem))):
            return "tract computes antialiased, or cubic non-NCHW, tf_crop_and_resize differently from ORT"
        if sem.transform == "half_pixel_symmetric" and sem.mode == "nearest":
            if not scale_is_size_ratio(sem):
                return "tract's nearest half_pixel_symmetric rounds differently from ORT when scales are not m / n"
            return float32_weights(sem, transform="half_pixel")
        computed = float32_weights(sem)
        if sem.transform in SPEC_LENGTH_TRANSFORMS and (axes := fractional_axes(sem)):
            if sem.mode == "cubic":
                return f"tract follows the spec for {sem.transform} with a fractional n * scale (ORT: the output length)"
            computed.update({axis: spec_weights(sem, axis) for axis in axes})
        return computed
