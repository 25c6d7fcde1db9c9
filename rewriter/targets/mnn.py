"""``--target mnn``: Alibaba MNN through its ONNX converter (``MNNConvert -f ONNX``), CPU, precision high.

The converter maps Resize onto MNN's ``Interp`` op (``tools/converter/source/onnx/ResizeOnnx.cpp``).
Where the rules come from:
- ResizeOnnx.cpp maps nearest ``ceil`` and ``round_prefer_ceil`` onto round_prefer_floor ("use
  round_prefer_floor instead"); measured: every such node, ties included, computes round_prefer_floor;
- ResizeOnnx.cpp has no ``half_pixel_symmetric`` (measured: it computes another grid);
  measured: ``tf_crop_and_resize`` differs (the crop box is not applied like ORT);
- measured (``tests/runtimes``, MNN 3.6): cubic ``half_pixel`` / ``pytorch_half_pixel`` upsampling is wrong at
  the border (MNN's cubic kernel clamps taps differently); antialias is ignored (the non-antialiased weights:
  downsampling differs); Resize-10 / Upsample-9 linear differ;
- linear samples at MNN's own float32 coordinates (``GeometryImageOp.cpp`` ``_ConverterInterp``, ``CPUInterp.cpp``
  ``onResize``): ``x * s + o`` with ``s = n / m`` (``sizes``), ``1 / scale`` (``scales``) or ``(n - 1) / (m - 1)``
  (``align_corners``) and ``o = 0.5 s - 0.5`` for the half-pixel transforms, then ``floor`` and its fraction;
  ORT computes ``(x + 0.5) / scale - 0.5``. At real resolutions the two roundings part by more than 1e-5:
  measured on the architecture corpus (torchvision Faster R-CNN's 80 -> 96 half_pixel image resize, 1.08e-5 on
  MNN's own input) and on single nodes (80 -> 96, 80 -> 120, 96 -> 80 ... up to 1.2e-5 on inputs in [-1, 1],
  while this formula reproduces MNN to 6e-8; 13 -> 97 tells ``n / m`` from ``1 / (m / n)`` for ``sizes``);
- the converted graph only computes N x C x H x W resizes of the last two axes without ``axes``: NHWC layouts
  and the ``axes`` attribute fail ("Compute Shape Error" or an abort);
- every lowering (MatMul, Gather, Pad/Slice + ConvTranspose) is exact (584 of 590; the rest differ on ORT's
  side too).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from rewriter.resize import ResizeSemantics
from rewriter.sampling import F32, AxisWeights, lerp_weights
from rewriter.targets.runtime import RuntimeTarget, spatial_nchw, weights_as


class MNNTarget(RuntimeTarget):
    name: ClassVar[str] = "mnn"
    summary: ClassVar[str] = "MNN (MNNConvert -f ONNX, Interp, CPU)"
    converter: ClassVar[str] = "MNN"

    def computes(self, sem: ResizeSemantics) -> dict[int, AxisWeights] | str:
        if not spatial_nchw(sem) or sem.axes is not None:
            return "MNN's Interp resizes the last two axes of N x C x H x W only, without axes (Compute Shape Error)"
        if sem.transform == "half_pixel_symmetric":
            return "MNN's converter has no half_pixel_symmetric (ResizeOnnx.cpp)"
        if sem.transform == "tf_crop_and_resize":
            return "MNN does not apply the tf_crop_and_resize box like ORT (measured)"
        if sem.opset < 11 and sem.mode == "linear":
            return f"MNN computes {sem.op_type}-{sem.opset} linear differently from ORT (measured)"
        upsampling = all(sem.axes_info[a].m >= sem.axes_info[a].n for a in sem.resized_axes)  # type: ignore[operator]
        if sem.mode == "cubic" and sem.transform in ("half_pixel", "pytorch_half_pixel") and upsampling:
            return f"MNN's cubic {sem.transform} upsampling differs from ORT at the border (measured)"
        if sem.mode == "linear":
            return {axis: interp_linear_weights(sem, axis) for axis in sem.resized_axes}
        changes: dict[str, object] = {"antialias": False}
        if sem.mode == "nearest" and sem.nearest_mode in ("ceil", "round_prefer_ceil"):
            changes["nearest_mode"] = "round_prefer_floor"
        return weights_as(sem, **changes)


def interp_linear_weights(sem: ResizeSemantics, axis: int) -> AxisWeights:
    """The weights MNN's Interp (linear) applies along one axis: source coordinate ``x * s + o`` in float32, its
    floor and fraction, both taps clamped to the input (antialias ignored). MNN takes 1 - fraction in float32,
    within an ulp of the float64 weight lerp_weights gives."""
    n, m = sem.lengths(axis)
    transform = sem.transform
    if transform == "align_corners" or (transform == "pytorch_half_pixel" and m == 1):
        s = F32(0) if m == 1 else F32(n - 1) / F32(m - 1)
        o = F32(0)
    else:
        s = F32(n) / F32(m) if sem.size_source == "sizes" else F32(1) / F32(sem.axes_info[axis].scale)
        o = {"half_pixel": F32(F32(0.5) * s) - F32(0.5), "pytorch_half_pixel": F32(F32(0.5) * s) - F32(0.5),
             "tf_half_pixel_for_nn": F32(F32(0.5) * s)}.get(transform, F32(0))
    src = (np.arange(m, dtype=F32) * s).astype(F32) + o
    return AxisWeights(lerp_weights(src, n))  # MNN clamps both taps to the input: the same as clamping src
