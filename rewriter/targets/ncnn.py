"""``--target ncnn``: ncnn reached through pnnx (ONNX -> .param/.bin, ``fp16=0``), Resize mapped onto ``Interp``.

Where the rules come from (pnnx's ONNX Resize pass onto ncnn's ``Interp`` layer, checked against the real
runtime with ``tests/runtimes``: pnnx and the ncnn Python binding, fp16 storage and arithmetic off):
- only N x C x H x W with the spatial axes resized, and no ``axes`` attribute (anything else does not load:
  ``layer Resize not exists``); Resize-10 does not convert;
- nearest converts only with ``nearest_mode=floor`` and then samples asymmetric + floor whatever the coordinate
  transform (Interp ``resize_type=1``); ``tf_crop_and_resize`` never converts;
- linear / cubic: ``align_corners`` is Interp's align-corners grid; every other transform becomes Interp's
  half-pixel grid (exact for half_pixel and pytorch_half_pixel with output length > 1, silently wrong for
  asymmetric, tf_half_pixel_for_nn and half_pixel_symmetric at fractional sizes); the cubic kernel is Interp's
  fixed a = -0.75 without exclude_outside; antialias is dropped;
- Upsample-9 nearest is exact, linear is Interp's half-pixel grid (measured different);
- lowerings: only the MatMul form loads and is exact (the Gather form becomes ``Tensor.slice`` and the
  ConvTranspose forms need a ``Pad`` / asymmetric crop ncnn does not load; Slice + Concat edge replication
  differs).
"""

from __future__ import annotations

from typing import ClassVar

from rewriter.resize import ResizeSemantics
from rewriter.sampling import AxisWeights
from rewriter.targets.base import MATMUL
from rewriter.targets.runtime import RuntimeTarget, spatial_nchw, weights_as


class NcnnTarget(RuntimeTarget):
    name: ClassVar[str] = "ncnn"
    summary: ClassVar[str] = "ncnn through pnnx (Interp: nearest floor, bilinear / bicubic half-pixel or align-corners)"
    converter: ClassVar[str] = "pnnx -> ncnn Interp"
    lowerings: ClassVar[tuple[str, ...]] = (MATMUL,)
    matmul_below: ClassVar[int | None] = None

    def computes(self, sem: ResizeSemantics) -> dict[int, AxisWeights] | str:
        if sem.op_type == "Resize" and sem.opset < 11:
            return "pnnx does not convert Resize-10"
        if not spatial_nchw(sem):
            return "ncnn's Interp resizes the H, W axes of N x C x H x W only"
        if sem.axes is not None:
            return "pnnx does not convert a Resize with the axes attribute"
        if sem.transform == "tf_crop_and_resize":
            return "pnnx does not convert tf_crop_and_resize"
        if sem.mode == "nearest":
            if sem.op_type == "Upsample":
                return weights_as(sem)
            if sem.nearest_mode != "floor":
                return f"pnnx converts nearest only with nearest_mode floor (not {sem.nearest_mode})"
            return weights_as(sem, transform="asymmetric", nearest_mode="floor")
        transform = "align_corners" if sem.transform == "align_corners" and sem.op_type == "Resize" else "half_pixel"
        return weights_as(sem, transform=transform, cubic_coeff_a=-0.75, exclude_outside=False, antialias=False)

