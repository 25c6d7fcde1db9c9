"""``--target coreml``: every Resize left must equal a Core ML op's documented grid; the rest is lowered.

Where the rules come from:
- the ops and their grids: coremltools MIL op docstrings (``converters/mil/mil/ops/defs/iOS15/
  image_resizing.py``: ``upsample_nearest_neighbor``, ``upsample_bilinear``, ``resize_bilinear`` sampling
  modes) and the NeuralNetwork.proto comments of the layers the NeuralNetwork backend lowers them to;
- availability: ``upsample_bilinear`` / ``resize_bilinear`` half-pixel modes need iOS 14; mlprogram starts at
  iOS 15; the NeuralNetwork backend raises NotImplementedError for ``UNALIGN_CORNERS`` (mlprogram only) and
  its Upsample layer is documented for scaling up only;
- the ops act on the last two axes of a rank-3/4 tensor (the exporter's translator and reference evaluator
  support exactly that);
- the naive mapping is onnx-coreml's (coremltools <= 5.2): Upsample BILINEAR with its default (asymmetric)
  grid, nearest as integer repetition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from rewriter.errors import UsageError
from rewriter.resize import ResizeSemantics
from rewriter.sampling import AxisWeights, lerp_weights
from rewriter.targets.base import (
    GridFn,
    Option,
    Primitive,
    Target,
    integer_repeat,
    lerp_at,
    strict_align_corners,
    upsampling_only,
)
from rewriter.targets.onnx import PortableFallback

IOS_VERSIONS = ("iOS13", "iOS14", "iOS15", "iOS16", "iOS17", "iOS18")
FORMATS = ("mlprogram", "neuralnetwork")


def _offset_corners(n: int, m: int) -> AxisWeights:
    delta = max(1, n - 1) / m
    return AxisWeights(lerp_weights(0.5 * delta + np.arange(m) * delta, n))


@dataclass(frozen=True)
class _CoreMLOp:
    primitive: Primitive
    min_ios: int
    formats: tuple[str, ...] = FORMATS
    upsampling_only_in_nn: bool = False  # the NeuralNetwork layer it becomes is documented for scaling up only


def _op(name: str, op: str, grid: GridFn, attrs: tuple = (), **kw) -> _CoreMLOp:
    return _CoreMLOp(Primitive(name, op, grid, attrs), **kw)


_OPS: tuple[_CoreMLOp, ...] = (
    _op("upsample_nearest_neighbor(integer scale)", "upsample_nearest_neighbor", integer_repeat, min_ios=13),
    _op("upsample_bilinear(align_corners=False)", "upsample_bilinear", lerp_at("half_pixel"), (("align_corners", False),), min_ios=14, upsampling_only_in_nn=True),
    _op("upsample_bilinear(align_corners=True)", "upsample_bilinear", lerp_at("align_corners"), (("align_corners", True),), min_ios=14, upsampling_only_in_nn=True),
    _op("resize_bilinear(sampling_mode=STRICT_ALIGN_CORNERS)", "resize_bilinear", strict_align_corners, (("sampling_mode", "STRICT_ALIGN_CORNERS"),), min_ios=13),
    _op("resize_bilinear(sampling_mode=ALIGN_CORNERS)", "resize_bilinear", lerp_at("align_corners", single=0.5), (("sampling_mode", "ALIGN_CORNERS"),), min_ios=13),
    _op("resize_bilinear(sampling_mode=DEFAULT)", "resize_bilinear", lerp_at("asymmetric"), (("sampling_mode", "DEFAULT"),), min_ios=13),
    _op("resize_bilinear(sampling_mode=OFFSET_CORNERS)", "resize_bilinear", _offset_corners, (("sampling_mode", "OFFSET_CORNERS"),), min_ios=13),
    _op("resize_bilinear(sampling_mode=UNALIGN_CORNERS)", "resize_bilinear", lerp_at("half_pixel"), (("sampling_mode", "UNALIGN_CORNERS"),), min_ios=15, formats=("mlprogram",)),
)


def ios_number(deployment_target: str) -> int:
    return int(deployment_target.removeprefix("iOS"))


class CoreMLTarget(PortableFallback, Target):
    name: ClassVar[str] = "coreml"
    summary: ClassVar[str] = "Core ML (MIL upsample_* / resize_bilinear ops, mlprogram or neuralnetwork)"
    options: ClassVar[dict[str, Option]] = {
        "deployment_target": Option("--deployment-target", IOS_VERSIONS, "iOS15"),
        "model_format": Option("--model-format", FORMATS, None),  # None: mlprogram from iOS15, else neuralnetwork
    }

    @property
    def deployment_target(self) -> str:
        return str(self.settings["deployment_target"])

    @property
    def model_format(self) -> str:
        chosen = self.settings.get("model_format")
        return chosen or ("mlprogram" if ios_number(self.deployment_target) >= 15 else "neuralnetwork")

    @property
    def label(self) -> str:
        return f"Core ML {self.deployment_target} {self.model_format}"

    def validate(self) -> None:
        ios = ios_number(self.deployment_target)
        if self.model_format == "mlprogram" and ios < 15:
            raise UsageError(f"--model-format mlprogram needs --deployment-target iOS15 or later (got {self.deployment_target}); use --model-format neuralnetwork for iOS13/iOS14")
        if self.model_format == "neuralnetwork" and ios > 14:
            raise UsageError(f"--model-format neuralnetwork is the iOS13/iOS14 format (got {self.deployment_target}); NeuralNetwork models built for iOS14 also run on later systems, or use --model-format mlprogram")

    def primitives(self) -> tuple[Primitive, ...]:
        ios, fmt = ios_number(self.deployment_target), self.model_format
        prims = []
        for op in _OPS:
            if op.min_ios > ios or fmt not in op.formats:
                continue
            prim = op.primitive
            if fmt == "neuralnetwork" and op.upsampling_only_in_nn:
                prim = Primitive(prim.name, prim.op, upsampling_only(prim.grid), prim.attrs)
            prims.append(prim)
        return tuple(prims)

    def accepts(self, sem: ResizeSemantics) -> str | None:
        if (reason := self.common_refusal(sem)) is not None:
            return reason
        if sem.rank not in (3, 4):
            return f"Core ML resize ops take rank-3/4 tensors (this one has rank {sem.rank})"
        if self.runs_as(sem) is None:
            return f"no {self.label} op samples like {sem.mode}/{sem.transform} here"
        return None

    def naive_weights(self, sem: ResizeSemantics, axis: int) -> AxisWeights | None:
        n, m = sem.lengths(axis)
        if sem.mode == "nearest":
            return integer_repeat(n, m)
        if sem.mode == "linear":
            return AxisWeights(lerp_weights(np.arange(m) * n / m, n))
        return None
