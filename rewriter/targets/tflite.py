"""``--target tflite``: TensorFlow Lite reached through onnx2tf (float32 .tflite, LiteRT interpreter).

Where the rules come from (``onnx2tf/ops/Resize.py``, checked against the real runtime with ``tests/runtimes``):
- the Resize becomes a TF resize op on N x H x W x C with the output size only (``new_size``): the given scales
  and ``nearest_mode`` are not used, TF samples with m / n (``size_ratio``);
- flags: ``align_corners`` and ``asymmetric`` at opset <= 17 give ``align_corners=True`` / both flags False;
  every other transform (and every transform at opset >= 18, and the legacy ops, whose default is half_pixel)
  gives half-pixel centers;
- nearest follows TF's rounding for the flag pair: half-pixel centers floor((i + 0.5) n / m) = half_pixel +
  round_prefer_ceil; align-corners round half up = align_corners + round_prefer_ceil; else floor(i n / m);
- the layout is assumed N x C x H x W (the axis after batch becomes channels): only the H, W axes of a rank-4
  tensor convert right; antialias and ``tf_crop_and_resize`` do not convert; TF's bicubic is another kernel
  (measured different on almost every grid model) and is not modelled;
- lowerings: the ConvTranspose and Gather forms are exact; the usual MatMul pair (a constant on the left for
  H, on the right for W) is miscompiled when dimension sizes coincide (onnx2tf guesses the layout from the
  sizes: measured wrong whenever C = H', H = W or W = H'), so the MatMul form here moves each resized axis last
  and multiplies from the right only (``matmul_right_only``): measured exact on every grid model that needs it;
- a lowered form under a dynamic (symbolic) batch is not emitted: onnx2tf infers layouts from static sizes, and
  on the architecture corpus such a model converted silently 0.021 off (an align_corners network exported with a
  dynamic batch; the same network with a static batch is exact), or was refused by the converter.
"""

from __future__ import annotations

from typing import ClassVar

from rewriter.resize import ResizeSemantics
from rewriter.sampling import AxisWeights
from rewriter.targets.base import LOWERINGS
from rewriter.targets.runtime import RuntimeTarget, spatial_nchw, weights_as

_FLAGGED = ("align_corners", "asymmetric")  # transforms onnx2tf maps onto TF1-style flags (opset <= 17)
_NEAREST = {"align_corners": "round_prefer_ceil", "asymmetric": "floor", "half_pixel": "round_prefer_ceil"}


class TfliteTarget(RuntimeTarget):
    name: ClassVar[str] = "tflite"
    summary: ClassVar[str] = "TensorFlow Lite through onnx2tf (TF resize ops: output size, align_corners / half_pixel_centers)"
    converter: ClassVar[str] = "onnx2tf -> TF resize"
    lowerings: ClassVar[tuple[str, ...]] = LOWERINGS
    matmul_below: ClassVar[int | None] = None  # prefer ConvTranspose / Gather: the MatMul form is fragile here

    def computes(self, sem: ResizeSemantics) -> dict[int, AxisWeights] | str:
        if not spatial_nchw(sem):
            return "onnx2tf takes the axis after batch for channels: only H, W of N x C x H x W convert right"
        if sem.antialias:
            return "onnx2tf: antialias does not convert"
        if sem.transform == "tf_crop_and_resize":
            return "onnx2tf: tf_crop_and_resize does not convert"
        if sem.mode == "cubic":
            return "TF's bicubic kernel differs from ONNX's cubic"
        flagged = sem.op_type == "Resize" and sem.opset >= 11 and sem.opset <= 17 and sem.transform in _FLAGGED
        transform = sem.transform if flagged else "half_pixel"
        if sem.mode == "nearest":
            return weights_as(sem, size_ratio=True, transform=transform, nearest_mode=_NEAREST[transform])
        return weights_as(sem, size_ratio=True, transform=transform)

    matmul_right_only: ClassVar[bool] = True  # onnx2tf misreads a constant on the left of a MatMul

    def excluded_lowerings(self, sem: ResizeSemantics, lower: str) -> dict[str, str]:
        excluded = super().excluded_lowerings(sem, lower)
        if _symbolic(sem):
            why = "onnx2tf infers layouts from static sizes: a lowered form under a dynamic batch converts wrong (measured)"
            excluded.update({form: why for form in LOWERINGS if form not in excluded})
        return excluded

    def suggestion(self, sem: ResizeSemantics) -> str | None:
        if _symbolic(sem):
            return "pin the input shapes with --input-shape (the lowered form converts right with static shapes)"
        return super().suggestion(sem)


def _symbolic(sem: ResizeSemantics) -> bool:
    """The node's input has a dimension that is not a number (a dynamic batch)."""
    return not all(isinstance(d, int) for d in sem.input_shape or ())
