"""``--target rknn``: Rockchip rknn-toolkit2 (``load_onnx``, ``build(do_quantization=False)``), RK3588 fp16.

rknn-toolkit2 maps an ONNX Resize onto its own resize op with the same attributes; a non-quantized model runs in
float16 on the NPU and in its x86 simulator, so the tolerance is 2e-3 relative: float16 has an 11-bit
significand (one rounding of a value near 1 is up to 4.9e-4) and a resized value goes through a few roundings
(the input, the weights, the products and sum of each of two axes); measured: the native spellings it computes
right are within 4.6e-4 of ORT, lowered forms within 1.09e-3 (a 16-tap antialiased cubic MatMul, reproduced to
1.087e-3 by the same MatMuls in numpy float16), and every spelling it computes wrong is off by more than 0.9, so
the bound separates rounding from a wrong grid by almost three orders of magnitude.
Where the rules come from (measured with ``tests/runtimes`` on the 593-model grid, rknn-toolkit2 2.5, simulator):
- cubic with ``align_corners`` / ``asymmetric`` / ``half_pixel`` / ``pytorch_half_pixel`` crashes ``build()``
  (segfault); cubic ``tf_crop_and_resize`` and ``half_pixel_symmetric`` run exactly;
- ``tf_half_pixel_for_nn`` is rejected ("Not support 'tf_half_pixel_for_nn' in 'Resize'");
- cubic on axes other than the last two of N x C x H x W is rejected (the exported check model fails);
- nearest coordinates are correctly rounded float32 (the ties of ``openvino.float32_weights``), and nearest
  ``half_pixel_symmetric`` with a scale that is not m / n differs at rounding boundaries as in tract;
- everything else runs exactly, including ``tf_crop_and_resize``, antialias, NHWC and ``axes``;
- the lowerings run exactly, except the crop-mask MatMul form (MatMul + Mul + Add): its broadcast Mul is
  rejected ("operands could not be broadcast") for most shapes, so MatMul is not used for an extrapolating
  crop (the native Resize runs it).
"""

from __future__ import annotations

from typing import ClassVar

from rewriter.resize import ResizeSemantics
from rewriter.sampling import AxisWeights
from rewriter.targets.base import MATMUL
from rewriter.targets.openvino import float32_weights
from rewriter.targets.runtime import RuntimeTarget, spatial_nchw
from rewriter.targets.tract import scale_is_size_ratio

CRASHING_CUBIC = ("align_corners", "asymmetric", "half_pixel", "pytorch_half_pixel")


class RKNNTarget(RuntimeTarget):
    name: ClassVar[str] = "rknn"
    summary: ClassVar[str] = "Rockchip RKNN (rknn-toolkit2, RK3588, fp16)"
    converter: ClassVar[str] = "rknn-toolkit2"
    tolerance: ClassVar[float] = 2e-3

    def computes(self, sem: ResizeSemantics) -> dict[int, AxisWeights] | str:
        if sem.mode == "cubic" and sem.transform in CRASHING_CUBIC:
            return f"rknn-toolkit2's build() crashes on cubic {sem.transform}"
        if sem.transform == "tf_half_pixel_for_nn":
            return "rknn-toolkit2 rejects tf_half_pixel_for_nn"
        if sem.mode == "cubic" and not spatial_nchw(sem):
            return "rknn-toolkit2 rejects cubic on axes other than the last two"
        if sem.mode == "nearest" and sem.transform == "half_pixel_symmetric" and not scale_is_size_ratio(sem):
            return "rknn-toolkit2's nearest half_pixel_symmetric rounds differently from ORT when scales are not m / n"
        return float32_weights(sem)

    def excluded_lowerings(self, sem: ResizeSemantics, lower: str) -> dict[str, str]:
        excluded = super().excluded_lowerings(sem, lower)
        if sem.resolved and any(sem.axis_weights(a).outside.any() for a in sem.resized_axes):
            excluded.setdefault(MATMUL, "rknn-toolkit2 rejects the crop mask's broadcast Mul")
        return excluded
