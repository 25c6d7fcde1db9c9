"""What runtimes reached through a converter have in common: a model of what the converter makes of a Resize.

A converter maps an ONNX Resize by its attributes onto the runtime's own resize op (pnnx onto ncnn's Interp,
onnx2torch onto ``F.interpolate``, onnx2tf onto TF's resize ops...), sometimes faithfully, sometimes onto
another grid, sometimes not at all. A ``RuntimeTarget`` describes that mapping per axis as the weights the
runtime applies (``computes``: the same semantics core, fed with the rule the runtime really uses, or a
documented grid), or the reason the converter/runtime rejects the node. Then:

- ``accepts(node)``: the runtime's weights equal ORT's on every resized axis (the only "runs as-is" rule);
- ``naive_weights``: the same model, so ``inspect``/``check`` say before any conversion how far off the
  runtime would be;
- lowerings: only the forms measured to survive the converter (``lowerings``), with the runtime's tolerance
  (``tolerance``: the real-runtime tests' bound; reduced-precision simulators state theirs).

Each runtime module states, per rule, where it comes from (converter source file or a measurement of the
real runtime with ``tests/runtimes``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

from rewriter.resize import ResizeSemantics
from rewriter.sampling import F32, AxisRule, AxisWeights, ort_axis_weights
from rewriter.targets.base import Target
from rewriter.targets.onnx import PortableFallback


class RuntimeTarget(PortableFallback, Target):
    converter: ClassVar[str]  # how an ONNX model reaches the runtime, for messages and docs
    tolerance: ClassVar[float] = 1e-5  # relative output error the real-runtime tests allow
    listed_by_default: ClassVar[bool] = False  # named with --target (one column per runtime would not fit)

    def computes(self, sem: ResizeSemantics) -> dict[int, AxisWeights] | str:
        """Per resized axis, the weights the runtime applies to this node as spelled, or why it rejects it."""
        raise NotImplementedError

    def accepts(self, sem: ResizeSemantics) -> str | None:
        if (reason := self.common_refusal(sem)) is not None:
            return reason
        computed = self.computes(sem)
        if isinstance(computed, str):
            return computed
        for axis in sem.resized_axes:
            error = computed[axis].difference(sem.axis_weights(axis))
            if error > 2e-6:
                return f"{self.converter} computes axis {axis} differently (worst-case error {error:.3g})"
        return None

    def naive_weights(self, sem: ResizeSemantics, axis: int) -> AxisWeights | None:
        computed = self.computes(sem)
        return None if isinstance(computed, str) else computed[axis]


def weights_as(sem: ResizeSemantics, *, size_ratio: bool = False, **changes: object) -> dict[int, AxisWeights]:
    """The weights ORT would apply to this node with some attributes changed (``AxisRule`` fields), i.e. what a
    runtime computes when its converter maps the node onto that rule. ``size_ratio``: the runtime samples with
    m / n instead of the given scale (converters that only keep the output size)."""
    out = {}
    for axis in sem.resized_axes:
        info = sem.axes_info[axis]
        n, m = sem.lengths(axis)
        rule: AxisRule = replace(sem.axis_rule(axis), **changes)  # type: ignore[arg-type]
        scale = float(F32(m) / F32(n)) if size_ratio else float(info.scale)  # type: ignore[arg-type]
        out[axis] = ort_axis_weights(rule, n, m, scale)
    return out


def spatial_nchw(sem: ResizeSemantics) -> bool:
    """Only the trailing two axes of a rank-4 tensor are resized (the layout converters map onto image ops)."""
    return sem.rank == 4 and all(a >= 2 for a in sem.resized_axes)
