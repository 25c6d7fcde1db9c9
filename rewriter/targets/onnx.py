"""``--target onnx``: canonical portable ONNX, which any runtime implementing the ONNX spec computes like ORT.

Rules and where they come from:
- Resize at opset >= 11 (Upsample-7/9 and Resize-10 have no coordinate transform attribute: ONNX Runtime
  runs them asymmetric with its legacy "simple" rounding, onnx's version converter makes them half_pixel,
  onnx/onnx#8480);
- a coordinate transform from {half_pixel, align_corners, asymmetric}: ``pytorch_half_pixel`` and
  ``tf_half_pixel_for_nn`` were deprecated in the Resize-13 spec text and are implemented unevenly
  (``../docs`` survey: OpenVINO, ncnn, onnx2torch); ``tf_crop_and_resize`` / ``half_pixel_symmetric`` only
  where no canonical spelling has the same weights;
- no float32 ``scales`` whose output size differs between float32 (ORT) and float64 (the spec, onnx shape
  inference) arithmetic (``scales_size_trap``);
- the preferred spellings are ordered most portable first (``NEAREST_PREFERENCE``).
Portable ONNX needs no static shapes: a node whose sizes or crop box are computed at run time is accepted
when its spelling is canonical for every input length.
"""

from __future__ import annotations

from typing import ClassVar

from rewriter.resize import ResizeSemantics
from rewriter.sampling import F32, AxisRule, AxisWeights, ort_axis_weights
from rewriter.targets.base import Primitive, Target, scales_size_trap

CANONICAL_TRANSFORMS = ("half_pixel", "align_corners", "asymmetric")
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")
# Preferred spellings of nearest resizes, most portable first: asymmetric + floor is PyTorch `nearest`,
# TF's legacy nearest and Core ML's upsample_nearest_neighbor; half_pixel + round_prefer_ceil is PyTorch
# `nearest-exact` and TF half-pixel nearest; align_corners + round_prefer_ceil is TF align_corners.
_FAVOURITES = (("asymmetric", "floor"), ("half_pixel", "round_prefer_ceil"), ("half_pixel", "round_prefer_floor"), ("align_corners", "round_prefer_ceil"))
NEAREST_PREFERENCE: tuple[tuple[str, str], ...] = _FAVOURITES + tuple(
    (t, r) for t in CANONICAL_TRANSFORMS for r in NEAREST_MODES if (t, r) not in _FAVOURITES
)
# Kept as they are when nothing simpler can be proved exact.
_RARE_TRANSFORMS = ("tf_crop_and_resize", "half_pixel_symmetric")
# What keeps a node from being analysed but not from being portable: inputs computed at run time (a crop
# box, output sizes), and the one ORT behaviour not modelled (the node is kept exactly as it is).
_PORTABLE_DESPITE = ("roi input", "sizes input", "ONNX Runtime's antialias", "ONNX Runtime's cubic")


def canonical_rules(mode: str, *, cubic_coeff_a: float = -0.75, exclude_outside: bool = False, antialias: bool = False) -> list[AxisRule]:
    """Canonical ways to spell a resize of ``mode``, most preferred first."""
    if mode == "nearest":
        return [AxisRule("nearest", t, r) for t, r in NEAREST_PREFERENCE]
    return [AxisRule(mode, t, cubic_coeff_a=cubic_coeff_a, exclude_outside=exclude_outside, antialias=antialias) for t in CANONICAL_TRANSFORMS]


def canonical_primitive(rule: AxisRule) -> Primitive:
    label = f"Resize(mode={rule.mode}, coordinate_transformation_mode={rule.transform}" + (f", nearest_mode={rule.nearest_mode})" if rule.mode == "nearest" else ")")

    def grid(n: int, m: int) -> AxisWeights:
        return ort_axis_weights(rule, n, m, float(F32(m) / F32(n)))

    attrs = (("mode", rule.mode), ("coordinate_transformation_mode", rule.transform), ("nearest_mode", rule.nearest_mode))
    return Primitive(label, "Resize", grid, attrs, spatial_only=False, documented_grid=False)


class OnnxTarget(Target):
    name: ClassVar[str] = "onnx"
    summary: ClassVar[str] = "canonical portable ONNX (Resize-11+, half_pixel / align_corners / asymmetric)"

    @property
    def label(self) -> str:
        return "portable ONNX"

    def primitives(self) -> tuple[Primitive, ...]:
        return tuple(canonical_primitive(r) for mode in ("nearest", "linear", "cubic") for r in canonical_rules(mode))

    def accepts(self, sem: ResizeSemantics) -> str | None:
        if not sem.resolved and sem.op_type == "Resize" and sem.opset >= 11 and not scales_size_trap(sem):
            portable = bool(sem.problems) and all(p.startswith(_PORTABLE_DESPITE) for p in sem.problems)
            unknown_scales = sem.size_source == "scales" and any(a.scale is None for a in sem.axes_info)
            if sem.transform in CANONICAL_TRANSFORMS + _RARE_TRANSFORMS and (portable or not sem.problems) and not unknown_scales:
                return None  # canonical for every input length
        if (reason := self.common_refusal(sem)) is not None:
            return reason
        if sem.transform in CANONICAL_TRANSFORMS:
            return None
        if sem.transform in _RARE_TRANSFORMS:
            if all(any(p.runs_axis(sem, a) for p in self.primitives()) for a in sem.resized_axes):
                return f"{sem.transform} equals a canonical spelling here"
            return None  # nothing simpler is exact
        return f"{sem.transform} is not a canonical coordinate transform"

    def naive_weights(self, sem: ResizeSemantics, axis: int) -> AxisWeights | None:
        if sem.opset > 10:
            return None
        # onnx's version converter (Resize 10 -> 11) leaves the opset-11 defaults: half_pixel, round_prefer_floor.
        info = sem.axes_info[axis]
        rule = AxisRule(sem.mode, "half_pixel", "round_prefer_floor")
        return ort_axis_weights(rule, *sem.lengths(axis), float(F32(info.scale)))  # type: ignore[arg-type]


def portable_fallback(sem: ResizeSemantics) -> str | None:
    """The advice other targets give for a node they refuse: portable ONNX keeps every resolved node exact."""
    if sem.resolved or OnnxTarget().accepts(sem) is None:
        return "--target onnx keeps it as exact portable ONNX"
    return None


class PortableFallback:
    """Mixed into targets that can refuse a node: their advice is portable ONNX, where it keeps the node exact."""

    def suggestion(self, sem: ResizeSemantics) -> str | None:
        return portable_fallback(sem)
