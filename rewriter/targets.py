"""What each deployment target can express, as data.

A target is a table of resize primitives. Each primitive says how it samples one axis for given input and
output lengths (an ``AxisWeights`` built with ``rewriter.sampling``), and under which conditions it exists
(Core ML deployment target, model format, Caffe flavor). Whether a node "runs identically" on a primitive
is decided by comparing weights; nothing here branches on ONNX attribute names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from rewriter.sampling import (
    F32,
    AxisRule,
    AxisWeights,
    ideal_coordinates,
    lerp_weights,
    ort_axis_weights,
    pick_weights,
)

GridFn = Callable[[int, int], "AxisWeights | None"]

TARGETS = ("onnx", "coreml", "caffe")
IOS_VERSIONS = ("iOS13", "iOS14", "iOS15", "iOS16", "iOS17", "iOS18")
CANONICAL_TRANSFORMS = ("half_pixel", "align_corners", "asymmetric")
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")
# Preferred spellings of nearest resizes, most portable first: asymmetric + floor is PyTorch `nearest`,
# TF's legacy nearest and Core ML's upsample_nearest_neighbor; half_pixel + round_prefer_ceil is PyTorch
# `nearest-exact` and TF half-pixel nearest; align_corners + round_prefer_ceil is TF align_corners.
NEAREST_PREFERENCE: tuple[tuple[str, str], ...] = (
    ("asymmetric", "floor"),
    ("half_pixel", "round_prefer_ceil"),
    ("half_pixel", "round_prefer_floor"),
    ("align_corners", "round_prefer_ceil"),
    *((t, r) for t in CANONICAL_TRANSFORMS for r in NEAREST_MODES
      if (t, r) not in {("asymmetric", "floor"), ("half_pixel", "round_prefer_ceil"), ("half_pixel", "round_prefer_floor"), ("align_corners", "round_prefer_ceil")}),
)


@dataclass(frozen=True)
class Primitive:
    """One resize op of a target, described by its per-axis sampling."""

    name: str
    grid: GridFn
    min_ios: int = 0  # Core ML: first iOS version that has it (0 = not a Core ML op)
    formats: tuple[str, ...] = ()  # Core ML model formats that accept it
    flavor: str = ""  # Caffe: fork flavor that provides the layer ("" = BVLC)
    spatial_only: bool = True  # resizes only the trailing two axes of NCHW (batch and channels untouched)
    nn_upsample_only: bool = False  # the NeuralNetwork layer it becomes is documented for scaling up only

    def weights(self, n: int, m: int) -> AxisWeights | None:
        if n < 1 or m < 1:
            return None
        return self.grid(n, m)


def _integer_repeat(n: int, m: int) -> AxisWeights | None:
    return AxisWeights(pick_weights(np.arange(m) // (m // n), n)) if m % n == 0 else None


def _lerp_at(transform: str, *, single: float | None = None) -> GridFn:
    """Linear sampling on an ONNX-style grid with s = m / n; ``single`` is x for a one-sample output."""

    def grid(n: int, m: int) -> AxisWeights | None:
        if m == 1 and single is not None:
            return AxisWeights(lerp_weights(np.array([single * (n - 1)]), n))
        if m == 1 and transform == "align_corners":
            return None  # spacing (n-1)/(m-1) is undefined; the op's behaviour there is not documented
        return AxisWeights(lerp_weights(ideal_coordinates(transform, n, m), n))

    return grid


def _offset_corners(n: int, m: int) -> AxisWeights:
    delta = max(1, n - 1) / m
    return AxisWeights(lerp_weights(0.5 * delta + np.arange(m) * delta, n))


def _strict_align(n: int, m: int) -> AxisWeights:
    x = np.arange(m) * (n - 1) / (m - 1) if m > 1 else np.zeros(1)
    return AxisWeights(lerp_weights(x, n))


# Core ML: MIL ops (mlprogram) and the NeuralNetwork layers the MIL NN backend lowers them to.
# Grids from coremltools op docstrings (ops/defs/iOS15/image_resizing.py) and NeuralNetwork.proto comments.
COREML_PRIMITIVES: tuple[Primitive, ...] = (
    Primitive("upsample_nearest_neighbor(integer scale)", _integer_repeat, 13, ("mlprogram", "neuralnetwork")),
    Primitive("upsample_bilinear(align_corners=False)", _lerp_at("half_pixel"), 14, ("mlprogram", "neuralnetwork"), nn_upsample_only=True),
    Primitive("upsample_bilinear(align_corners=True)", _lerp_at("align_corners"), 14, ("mlprogram", "neuralnetwork"), nn_upsample_only=True),
    Primitive("resize_bilinear(sampling_mode=STRICT_ALIGN_CORNERS)", _strict_align, 13, ("mlprogram", "neuralnetwork")),
    Primitive("resize_bilinear(sampling_mode=ALIGN_CORNERS)", _lerp_at("align_corners", single=0.5), 13, ("mlprogram", "neuralnetwork")),
    Primitive("resize_bilinear(sampling_mode=DEFAULT)", _lerp_at("asymmetric"), 13, ("mlprogram", "neuralnetwork")),
    Primitive("resize_bilinear(sampling_mode=OFFSET_CORNERS)", _offset_corners, 13, ("mlprogram", "neuralnetwork")),
    # The NN backend raises NotImplementedError for UNALIGN_CORNERS: mlprogram only.
    Primitive("resize_bilinear(sampling_mode=UNALIGN_CORNERS)", _lerp_at("half_pixel"), 15, ("mlprogram",)),
)


def _caffe_interp(n: int, m: int) -> AxisWeights:
    # interp.cpp: r = m > 1 ? (n-1)/(m-1) : 0, x = r*i, taps int(x) and int(x)+1 (clamped), plain lerp.
    return _strict_align(n, m)


CAFFE_PRIMITIVES: tuple[Primitive, ...] = (
    Primitive("Interp (align-corners bilinear)", _caffe_interp, flavor="interp"),
    Primitive("Upsample (integer nearest)", _integer_repeat, flavor="upsample"),
)


def onnx_canonical_primitives() -> tuple[Primitive, ...]:
    """Resize at opset >= 11 with a canonical transform and `sizes`, as ONNX Runtime runs it, most preferred first."""
    rules = [AxisRule("nearest", t, r) for t, r in NEAREST_PREFERENCE]
    rules += [AxisRule(mode, t) for mode in ("linear", "cubic") for t in CANONICAL_TRANSFORMS]
    prims: list[Primitive] = []
    for rule in rules:
        label = f"Resize(mode={rule.mode}, coordinate_transformation_mode={rule.transform}" + (f", nearest_mode={rule.nearest_mode})" if rule.mode == "nearest" else ")")

        def grid(n: int, m: int, rule: AxisRule = rule) -> AxisWeights:
            return ort_axis_weights(rule, n, m, float(F32(m) / F32(n)))

        prims.append(Primitive(label, grid, spatial_only=False))
    return tuple(prims)


def ios_number(deployment_target: str) -> int:
    return int(deployment_target.removeprefix("iOS"))


def coreml_primitives(deployment_target: str = "iOS15", model_format: str = "mlprogram") -> tuple[Primitive, ...]:
    """The Core ML resize ops available for a deployment target and model format."""
    ios = ios_number(deployment_target)
    if model_format == "mlprogram" and ios < 15:
        return ()
    prims = [p for p in COREML_PRIMITIVES if p.min_ios <= ios and model_format in p.formats]
    if model_format == "neuralnetwork":
        prims = [replace(p, grid=_upsampling_only(p.grid)) if p.nn_upsample_only else p for p in prims]
    return tuple(prims)


def _upsampling_only(grid: GridFn) -> GridFn:
    def wrapped(n: int, m: int) -> AxisWeights | None:
        return grid(n, m) if m >= n else None

    return wrapped


def caffe_primitives(flavor: str = "bvlc") -> tuple[Primitive, ...]:
    """BVLC Caffe has no resize layer at all; forks add Interp or Upsample."""
    return tuple(p for p in CAFFE_PRIMITIVES if p.flavor == flavor)
