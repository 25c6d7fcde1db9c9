"""What a deployment target is: its native resize primitives (as weights), and every decision about it.

A ``Target`` owns all of its decisions, so that nothing outside ``rewriter/targets/`` branches on a
target's name:

- ``primitives()``: the resize ops it runs, each described by the per-axis matrix it applies for given
  lengths (``rewriter.sampling``); "runs identically" is a weight comparison (``Primitive.runs``);
- ``accepts(semantics)``: the only place that decides whether a Resize node runs on the target as it is
  (``None``) or why not (a one-line reason);
- which exact lowerings it allows and how they are spelled (Gather or not, Pad or Slice + Concat edge
  replication, separable or 2-D deconvolution, the MatMul cut-over for ``--lower auto``);
- its options and their validation (``from_options``);
- the naive mapping a name-based converter would make (``naive_weights``), to tell a user what goes wrong
  without rewriter.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from rewriter.errors import UsageError
from rewriter.resize import ResizeSemantics
from rewriter.sampling import (
    F32,
    WEIGHT_ATOL,
    AxisWeights,
    ideal_coordinates,
    lerp_weights,
    pick_weights,
    scaled_lengths,
)

GridFn = Callable[[int, int], "AxisWeights | None"]

# The exact lowered forms (passes/lower_*.py), in the order the pass schedule tries them.
CONV_TRANSPOSE, GATHER, MATMUL = "conv_transpose", "gather", "matmul"
LOWERINGS = (CONV_TRANSPOSE, GATHER, MATMUL)
# --lower values naming one form; "auto" lets the target choose, "none" forbids lowering.
LOWER_CHOICES = ("auto", "none", "deconv", "gather", "matmul")
FORCED_LOWERINGS = {"deconv": CONV_TRANSPOSE, "gather": GATHER, "matmul": MATMUL}
_FORM_OPS = {CONV_TRANSPOSE: "ConvTranspose", GATHER: "Gather", MATMUL: "MatMul"}


@dataclass(frozen=True)
class Primitive:
    """One resize op of a target, described by how it samples one axis.

    ``op`` and ``attrs`` say what the target's exporter emits (a MIL op, a Caffe layer type, ONNX Resize
    attributes); ``name`` is for people.
    """

    name: str
    op: str
    grid: GridFn
    attrs: tuple[tuple[str, object], ...] = ()
    spatial_only: bool = True  # acts on the trailing two axes of N x C x H x W (batch, channels untouched)
    # The grid is a documented formula in exact arithmetic, implemented in float32 by the runtime: it matches
    # ORT up to ORT's own float32 rounding of the grid (False: it is ORT's exact weights, compared exactly).
    documented_grid: bool = True

    def weights(self, n: int, m: int) -> AxisWeights | None:
        if n < 1 or m < 1:
            return None
        return self.grid(n, m)

    def attr(self, key: str) -> object:
        return dict(self.attrs)[key]

    def runs(self, sem: ResizeSemantics) -> bool:
        """True when this op applies the node's weights on every axis the node resizes, and the identity on
        the spatial axes it leaves alone."""
        axes = sem.resized_axes
        if self.spatial_only and (sem.rank < 2 or any(a < sem.rank - 2 for a in axes)):
            return False
        if self.spatial_only:
            for a in range(sem.rank - 2, sem.rank):
                n = sem.axes_info[a].n
                if a not in axes and not (isinstance(n, int) and (w := self.weights(n, n)) is not None and w.is_identity()):
                    return False
        return all(self.runs_axis(sem, a) for a in axes)

    def runs_axis(self, sem: ResizeSemantics, axis: int) -> bool:
        """True when this op's matrix equals the node's on ``axis`` (for the node's lengths), to within ORT's own
        float32 rounding of the grid for a documented grid (``native_tolerance``)."""
        info = sem.axes_info[axis]
        theirs = self.weights(info.n, info.m)  # type: ignore[arg-type]
        tolerance = native_tolerance(sem, axis) if self.documented_grid else WEIGHT_ATOL
        return theirs is not None and theirs.difference(sem.axis_weights(axis)) <= tolerance


@dataclass(frozen=True)
class Option:
    """A target option as the CLI and the API spell it."""

    flag: str
    choices: tuple[str, ...]
    default: str | None

    @property
    def spelled_choices(self) -> str:
        if len(self.choices) == 2:
            return " or ".join(self.choices)
        return "one of " + ", ".join(self.choices)


@dataclass(frozen=True)
class Target:
    """Base class: subclasses set the class variables and implement ``primitives`` and ``accepts``."""

    name: ClassVar[str]
    summary: ClassVar[str]
    options: ClassVar[dict[str, Option]] = {}
    # Exact lowerings the target runs, and how they are spelled.
    lowerings: ClassVar[tuple[str, ...]] = LOWERINGS
    edge_replication: ClassVar[str] = "pad"  # "pad" (Pad mode=edge) or "slices" (Slice + Concat)
    separable_deconv: ClassVar[bool] = True  # one 1-D ConvTranspose per axis instead of one 2-D kernel
    matmul_below: ClassVar[int | None] = 64  # --lower auto: maps this small (per axis) take the MatMul form
    matmul_right_only: ClassVar[bool] = False  # MatMul form: every axis moved last and multiplied from the right
    listed_by_default: ClassVar[bool] = True  # inspect / report show it without --target

    settings: Mapping[str, str | None] = field(default_factory=dict)

    @classmethod
    def from_options(cls, options: Mapping[str, str | None] | None = None) -> Target:
        """The target with its own options taken from ``options`` (others are ignored), validated."""
        settings: dict[str, str | None] = {}
        for key, option in cls.options.items():
            value = (options or {}).get(key)
            if value is None:
                value = option.default
            elif value not in option.choices:
                raise UsageError(f"{option.flag} {value!r}: expected {option.spelled_choices}")
            settings[key] = value
        target = cls(settings)
        target.validate()
        return target

    def validate(self) -> None:
        """Reject option combinations the target does not have (UsageError)."""

    @property
    def label(self) -> str:
        return self.name

    @property
    def keeps_resize(self) -> bool:
        """Accepted nodes stay ONNX Resize nodes (so the model needs opset >= 11)."""
        return True

    def primitives(self) -> tuple[Primitive, ...]:
        return ()

    def runs_as(self, sem: ResizeSemantics) -> Primitive | None:
        """The first native primitive (most preferred) that runs the node exactly."""
        return next((p for p in self.primitives() if p.runs(sem)), None)

    def accepts(self, sem: ResizeSemantics) -> str | None:
        raise NotImplementedError

    def common_refusal(self, sem: ResizeSemantics) -> str | None:
        """The reasons every target shares: legacy semantics, unresolved shapes, a no-op resize."""
        if self.keeps_resize and (sem.op_type != "Resize" or sem.opset < 11):
            return f"{sem.op_type}-{sem.opset} has implicit legacy semantics"
        if not sem.resolved:
            return unresolved_reason(sem)
        if not sem.resized_axes:
            return "no-op resize (output shape equals input shape): remove it"
        if scales_size_trap(sem):  # converters and onnx shape inference would size the output differently
            return "float32 scales give a different output size in float64 implementations"
        return None

    def excluded_lowerings(self, sem: ResizeSemantics, lower: str) -> dict[str, str]:
        """The lowered forms fix-resize must not emit for this node, each with the reason.

        ``lower`` is the user's --lower: a named form is that form or nothing; ``auto`` is the target's
        preference (measured in bench/bench_lowering.py: on small maps the MatMul form beats the
        ConvTranspose form in ONNX Runtime).
        """
        excluded = {form: f"{self.label} has no {_FORM_OPS[form]} layer" for form in LOWERINGS if form not in self.lowerings}
        for form in LOWERINGS:
            if lower == "none" or (lower in FORCED_LOWERINGS and FORCED_LOWERINGS[lower] != form):
                excluded.setdefault(form, f"--lower {lower}")
        if lower == "auto" and self.matmul_below is not None:
            lengths = [sem.axes_info[a].n for a in sem.resized_axes]
            if lengths and all(isinstance(n, int) and n <= self.matmul_below for n in lengths):
                excluded.setdefault(CONV_TRANSPOSE, f"input lengths <= {self.matmul_below}: the MatMul form is faster here")
        return excluded

    def suggestion(self, sem: ResizeSemantics) -> str | None:
        """What else would keep a node this target refuses exact (advice that works when followed)."""
        return None

    def naive_weights(self, sem: ResizeSemantics, axis: int) -> AxisWeights | None:
        """What a converter that maps by attribute names computes on one axis (None: it would refuse)."""
        return None


def native_tolerance(sem: ResizeSemantics, axis: int) -> float:
    """How far a documented grid may be from ORT's weights on ``axis`` and still compute what ORT computes:
    ORT's own float32 deviation from the exact grid, plus weight rounding."""
    return WEIGHT_ATOL + sem.grid_slack(axis)


def unresolved_reason(sem: ResizeSemantics) -> str:
    return "cannot be analysed statically: " + ("; ".join(sem.problems) or sem.shape_lost or "its input shape is unknown: pass --input-shape NAME=DIMS")


# ---------------------------------------------------------------------------------------------------
# Grids shared by several targets (documented formulas, float64).


def integer_repeat(n: int, m: int) -> AxisWeights | None:
    return AxisWeights(pick_weights(np.arange(m) // (m // n), n)) if m % n == 0 else None


def lerp_at(transform: str, *, single: float | None = None) -> GridFn:
    """Linear sampling on an ONNX-style grid with s = m / n; ``single`` is x for a one-sample output."""

    def grid(n: int, m: int) -> AxisWeights | None:
        if m == 1 and single is not None:
            return AxisWeights(lerp_weights(np.array([single * (n - 1)]), n))
        if m == 1 and transform == "align_corners":
            return None  # spacing (n-1)/(m-1) is undefined; the op's behaviour there is not documented
        return AxisWeights(lerp_weights(ideal_coordinates(transform, n, m), n))

    return grid


def strict_align_corners(n: int, m: int) -> AxisWeights:
    x = np.arange(m) * (n - 1) / (m - 1) if m > 1 else np.zeros(1)
    return AxisWeights(lerp_weights(x, n))


def upsampling_only(grid: GridFn) -> GridFn:
    def wrapped(n: int, m: int) -> AxisWeights | None:
        return grid(n, m) if m >= n else None

    return wrapped


def scales_size_trap(sem: ResizeSemantics) -> bool:
    """Output size from float32 scales differs between ORT (float32) and the spec/shape inference (float64).

    With an unknown input length the trap is ruled out only for dyadic scales (k / 2**j, j <= 10), whose
    products with any realistic length are exact in float32 and float64 alike.
    """
    if sem.size_source == "sizes":
        return False
    for a in sem.axes_info:
        if a.scale is None:
            continue
        if isinstance(a.n, int):
            if scaled_lengths(a.n, a.scale)[1] != a.m:
                return True
        elif not float(np.float64(F32(a.scale)) * 1024).is_integer():
            return True
    return False
