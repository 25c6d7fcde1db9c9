"""``--target torch``: PyTorch reached through onnx2torch, Resize mapped onto ``torch.nn.functional.interpolate``.

Where the rules come from (``onnx2torch/node_converters/resize.py``, checked against the real runtime with
``tests/runtimes``: onnx2torch.convert, torch CPU float32):
- converters exist for Resize-10, 11 and 13 only (Resize-18/19 and Upsample: "Converter is not implemented");
  a model at opset >= 18 cannot keep a Resize: fix-resize lowers it (or re-export the model at opset 13);
- ``interpolate`` resizes the trailing spatial axes only ("cannot scale channel or batch dimensions");
  ``tf_crop_and_resize``: "roi logic is not implemented";
- nearest is always PyTorch ``nearest`` (asymmetric + floor) whatever the transform and rounding;
- linear / cubic: ``align_corners`` is ``align_corners=True``, every other transform ``align_corners=False``
  (half-pixel: exact for half_pixel and pytorch_half_pixel with output length > 1, wrong for asymmetric and
  tf_half_pixel_for_nn); bicubic is PyTorch's fixed a = -0.75 without exclude_outside;
- lowerings: Gather and MatMul are exact; ConvTranspose only converts with symmetric pads and without Pad-18
  (the edge-replicating forms are rejected), so it is not used.
"""

from __future__ import annotations

from typing import ClassVar

from rewriter.resize import ResizeSemantics
from rewriter.sampling import AxisWeights
from rewriter.targets.base import GATHER, MATMUL
from rewriter.targets.onnx import portable_fallback
from rewriter.targets.runtime import RuntimeTarget, spatial_nchw, weights_as

CONVERTED_OPSETS = (10, 11, 13)  # onnx2torch's Resize converters


class TorchTarget(RuntimeTarget):
    name: ClassVar[str] = "torch"
    summary: ClassVar[str] = "PyTorch through onnx2torch (F.interpolate: nearest, bilinear / bicubic with align_corners)"
    converter: ClassVar[str] = "onnx2torch -> F.interpolate"
    lowerings: ClassVar[tuple[str, ...]] = (GATHER, MATMUL)

    def computes(self, sem: ResizeSemantics) -> dict[int, AxisWeights] | str:
        if sem.op_type != "Resize" or sem.opset not in CONVERTED_OPSETS:
            return f"onnx2torch has no {sem.op_type}-{sem.opset} converter (Resize-10/11/13 only)"
        if not spatial_nchw(sem):
            return "PyTorch's interpolate cannot scale channel or batch dimensions (N x C x H x W only)"
        if sem.transform == "tf_crop_and_resize":
            return "onnx2torch: roi logic is not implemented (tf_crop_and_resize)"
        if sem.mode == "nearest":
            return weights_as(sem, transform="asymmetric", nearest_mode="floor")
        transform = "align_corners" if sem.transform == "align_corners" else "half_pixel"
        return weights_as(sem, transform=transform, cubic_coeff_a=-0.75, exclude_outside=False)

    def suggestion(self, sem: ResizeSemantics) -> str | None:
        if sem.op_type == "Resize" and sem.opset > max(CONVERTED_OPSETS):
            return "re-export the model at opset 13 to keep the Resize, or let fix-resize lower it"
        return portable_fallback(sem)
