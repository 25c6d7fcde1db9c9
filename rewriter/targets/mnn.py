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
- the converted graph only computes N x C x H x W resizes of the last two axes without ``axes``: NHWC layouts
  and the ``axes`` attribute fail ("Compute Shape Error" or an abort);
- every lowering (MatMul, Gather, Pad/Slice + ConvTranspose) is exact (584 of 590; the rest differ on ORT's
  side too).
"""

from __future__ import annotations

from typing import ClassVar

from rewriter.resize import ResizeSemantics
from rewriter.sampling import AxisWeights
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
        changes: dict[str, object] = {"antialias": False}
        if sem.mode == "nearest" and sem.nearest_mode in ("ceil", "round_prefer_ceil"):
            changes["nearest_mode"] = "round_prefer_floor"
        return weights_as(sem, **changes)
