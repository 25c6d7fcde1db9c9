"""Normalized description of a Resize / Upsample node, and the weights ONNX Runtime applies for it.

``describe_node`` turns any Resize (opsets 10, 11, 13, 18, 19) or Upsample (7, 9) node into a
``ResizeSemantics``: the effective attributes (legacy ops are asymmetric with ORT's "simple" nearest
rounding), and per axis the input length, output length and the float32 scale ORT uses in the
coordinate transform. ``axis_weights`` then gives the exact per-axis matrices via ``rewriter.sampling``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx

from rewriter.graph import Dim, ModelView, Scope, SymVector
from rewriter.sampling import F32, AxisRule, AxisWeights, grid_conditioning, ort_axis_weights, scaled_lengths

RESIZE_OPS = ("Resize", "Upsample")
# Data types the float lowerings (ConvTranspose, MatMul) may carry: integer data would change its rounding.
FLOAT_TYPES = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16, onnx.TensorProto.DOUBLE)
# Dense per-axis matrices beyond this many entries (128 MiB in float64) are not built: such a node is
# refused with a clear message instead of exhausting memory.
MAX_AXIS_ENTRIES = 1 << 24
# The versions of each op that exist: a node runs the newest one not above the model's opset.
_OP_VERSIONS = {"Resize": (10, 11, 13, 18, 19), "Upsample": (1, 7, 9)}


def op_version(op_type: str, opset: int) -> int | None:
    versions = [v for v in _OP_VERSIONS[op_type] if v <= opset]
    return versions[-1] if versions else None


def is_resize(node: onnx.NodeProto) -> bool:
    return node.op_type in RESIZE_OPS and node.domain in ("", "ai.onnx")


@dataclass(frozen=True)
class AxisResize:
    """One axis: input length n, output length m, and the float32 scale ORT uses in the transform."""

    axis: int
    n: Dim
    m: Dim
    scale: float | None

    @property
    def resolved(self) -> bool:
        return isinstance(self.n, int) and isinstance(self.m, int) and self.scale is not None

    @property
    def unchanged(self) -> bool:
        """True when this axis is provably the identity (scale exactly 1)."""
        return self.scale is not None and F32(self.scale) == F32(1)


@dataclass(frozen=True)
class ResizeSemantics:
    """Everything that decides what a Resize/Upsample node computes."""

    name: str
    op_type: str
    opset: int  # the op version the node runs (Resize-10/11/13/18/19, Upsample-7/9)
    mode: str
    transform: str  # effective coordinate_transformation_mode
    nearest_mode: str | None  # effective; "simple" = ORT's legacy rounding (trunc up, ceil down)
    cubic_coeff_a: float
    exclude_outside: bool
    extrapolation_value: float
    antialias: bool
    axes: tuple[int, ...] | None
    keep_aspect_ratio_policy: str
    roi: tuple[float, ...] | None  # full rank: starts then ends (only meaningful for tf_crop_and_resize)
    size_source: str  # "scales", "sizes" or "attribute"
    axes_info: tuple[AxisResize, ...]
    elem_type: int = onnx.TensorProto.FLOAT
    graph_path: str = ""
    problems: tuple[str, ...] = field(default=())  # why the node cannot be fully determined
    invalid: str | None = None  # the node is malformed (bad scales/sizes, empty axis): the model is bad input
    # Why the input shape is not static (where it was lost), when it is not: kept apart from ``problems``
    # because portable ONNX does not need static shapes.
    shape_lost: str | None = None
    # Per-axis matrices once computed: every decision compares them again (targets, passes, proofs).
    _weights: dict[int, AxisWeights] = field(default_factory=dict, compare=False, repr=False)

    @property
    def rank(self) -> int:
        return len(self.axes_info)

    @property
    def input_shape(self) -> tuple[Dim, ...]:
        return tuple(a.n for a in self.axes_info)

    @property
    def output_shape(self) -> tuple[Dim, ...]:
        return tuple(a.m for a in self.axes_info)

    @property
    def scales(self) -> tuple[float | None, ...]:
        return tuple(a.scale for a in self.axes_info)

    @property
    def resized_axes(self) -> tuple[int, ...]:
        """Axes whose weights are not the identity (ORT skips scale-1 axes and whole no-op resizes)."""
        if self.is_noop:
            return ()
        return tuple(a.axis for a in self.axes_info if not a.unchanged)

    @property
    def is_float(self) -> bool:
        return self.elem_type in FLOAT_TYPES

    @property
    def label(self) -> str:
        return f"{self.op_type}-{self.opset}({self.mode}, {self.transform}" + (f", {self.nearest_mode}" if self.nearest_mode else "") + ")"

    @property
    def qualified_name(self) -> str:
        """The node's name with its subgraph path, as messages print it."""
        return f"{self.graph_path}/{self.name}" if self.graph_path else (self.name or "(unnamed)")

    @property
    def resolved(self) -> bool:
        """Every axis that is not provably the identity has known lengths and scale."""
        return not self.problems and all(a.resolved or a.unchanged for a in self.axes_info)

    def effective_nearest_mode(self, axis: int) -> str | None:
        """The rounding actually used on an axis ("simple" resolved: trunc = floor up, ceil down)."""
        if self.mode != "nearest":
            return None
        if self.nearest_mode != "simple":
            return self.nearest_mode
        scale = self.axes_info[axis].scale
        return "ceil" if scale is not None and F32(scale) < F32(1) else "floor"

    def axis_rule(self, axis: int) -> AxisRule:
        roi = (0.0, 1.0)
        if self.roi is not None and self.transform == "tf_crop_and_resize":
            roi = (float(self.roi[axis]), float(self.roi[self.rank + axis]))
        return AxisRule(
            mode=self.mode,
            transform=self.transform,
            nearest_mode=self.nearest_mode or "round_prefer_floor",
            cubic_coeff_a=self.cubic_coeff_a,
            exclude_outside=self.exclude_outside,
            antialias=self.antialias,
            roi=roi,
        )

    def axis_weights(self, axis: int) -> AxisWeights:
        """The matrix ORT applies along ``axis`` (identity for unchanged axes and no-op resizes)."""
        if axis not in self._weights:
            self._weights[axis] = self._compute_axis_weights(axis)
        return self._weights[axis]

    def _compute_axis_weights(self, axis: int) -> AxisWeights:
        info = self.axes_info[axis]
        if info.unchanged or self.is_noop:
            if not isinstance(info.n, int):
                raise ValueError(f"axis {axis} has unknown length")
            return AxisWeights(np.eye(info.n))
        if not info.resolved:
            raise ValueError(f"axis {axis} of {self.name} is not resolved")
        # ORT's rank-1 nearest kernel is the only one without the scale==1 shortcut (handled above anyway).
        return ort_axis_weights(self.axis_rule(axis), info.n, info.m, info.scale, identity_when_unscaled=self.rank > 1 or self.mode != "nearest")  # type: ignore[arg-type]

    def lengths(self, axis: int) -> tuple[int, int]:
        """Input and output length of a resolved axis."""
        info = self.axes_info[axis]
        if not (isinstance(info.n, int) and isinstance(info.m, int)):
            raise ValueError(f"axis {axis} of {self.name} is not resolved")
        return info.n, info.m

    def grid_slack(self, axis: int) -> float:
        """ORT's own float32 rounding of this axis's grid (``sampling.grid_conditioning``; 0 if not resized)."""
        info = self.axes_info[axis]
        if axis not in self.resized_axes or not info.resolved:
            return 0.0
        return grid_conditioning(self.axis_rule(axis), *self.lengths(axis), float(info.scale))  # type: ignore[arg-type]

    def oversized_axis(self) -> str | None:
        """A description of the first resized axis too large to analyse, if any."""
        if self.is_noop:
            return None
        for a in self.axes_info:
            if a.resolved and not a.unchanged and int(a.n) * int(a.m) > MAX_AXIS_ENTRIES:  # type: ignore[arg-type]
                mib = int(a.n) * int(a.m) * 8 / 2**20  # type: ignore[arg-type]
                return f"axis {a.axis} ({a.n} -> {a.m}) needs a {a.m}x{a.n} interpolation matrix ({mib:.0f} MiB), over the {MAX_AXIS_ENTRIES * 8 >> 20} MiB analysis limit"
        return None

    @property
    def is_noop(self) -> bool:
        """ORT copies the input when every output length equals the input length (whatever the scales)."""
        return all(isinstance(a.n, int) and a.n == a.m for a in self.axes_info)

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Reference evaluation with the per-axis matrices (float64 accumulation)."""
        y = np.asarray(x, dtype=np.float64)
        outside = np.zeros(self.output_shape, dtype=bool) if self.transform == "tf_crop_and_resize" else None
        for axis in range(self.rank):
            w = self.axis_weights(axis)
            y = np.moveaxis(np.tensordot(w.matrix, np.moveaxis(y, axis, 0), axes=1), 0, axis)
            if outside is not None and w.outside.any():
                shape = [1] * self.rank
                shape[axis] = -1
                outside |= w.outside.reshape(shape)
        if outside is not None:
            y = np.where(outside, self.extrapolation_value, y)
        return y


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _decode(v):
    return v.decode() if isinstance(v, bytes) else v


def describe_node(view: ModelView, scope: Scope, node: onnx.NodeProto) -> ResizeSemantics:
    """The normalized semantics of one Resize/Upsample node, with static shapes where they are known."""
    opset = op_version(node.op_type, view.opset) or 0
    attrs = {k: _decode(v) for k, v in _attrs(node).items()}
    problems: list[str] = []
    legacy = node.op_type == "Upsample" or opset == 10

    mode = attrs.get("mode", "nearest")
    if mode == "bilinear":  # Upsample-1 spelling
        mode = "linear"
    if legacy:
        transform = "asymmetric"
        nearest_mode: str | None = "simple" if mode == "nearest" else None
    else:
        transform = attrs.get("coordinate_transformation_mode", "half_pixel")
        nearest_mode = attrs.get("nearest_mode", "round_prefer_floor") if mode == "nearest" else None
    antialias = bool(attrs.get("antialias", 0)) if opset >= 18 else False
    axes_attr = tuple(int(a) for a in attrs["axes"]) if opset >= 18 and "axes" in attrs else None
    policy = attrs.get("keep_aspect_ratio_policy", "stretch") if opset >= 18 else "stretch"

    in_shape = scope.lookup_shape(node.input[0])
    out_shape = scope.lookup_shape(node.output[0])
    rank = len(in_shape) if in_shape is not None else (len(out_shape) if out_shape is not None else None)
    elem_type = scope.lookup_elem_type(node.input[0]) or onnx.TensorProto.FLOAT

    def dynamic(what: str, name: str, item: int | None = None) -> str:
        """Why input ``name`` (or its element ``item``) has no static value: where it was lost, or the run-time input it needs."""
        lost = view.lost(scope, name, item=item)
        if lost is not None and lost.runtime_input == name:
            return f"{what} input {name!r} is a value supplied at run time (graph input {name!r}), not a constant"
        if lost is not None and lost.runtime_input is not None and lost.node is None:
            return f"{what} input {name!r} is computed from graph input {lost.runtime_input!r}, a value supplied at run time"
        return f"{what} input {name!r} is not static: {lost or 'its value is not known'}"

    def value(k: int):
        if len(node.input) <= k or not node.input[k]:
            return None, False
        return view.value(scope, node.input[k]), True

    scales: list[float] | None = None
    sizes: list[Dim] | None = None
    roi: tuple[float, ...] | None = None
    size_source = "scales"

    if node.op_type == "Upsample" and opset < 9:
        if "scales" in attrs:
            scales = [float(s) for s in attrs["scales"]]
        elif "height_scale" in attrs:
            scales = [1.0, 1.0, float(attrs["height_scale"]), float(attrs["width_scale"])]
        size_source = "attribute"
    else:
        scales_index = 1 if legacy else 2
        v, present = value(scales_index)
        if isinstance(v, np.ndarray) and v.size > 0:
            scales = [float(s) for s in v.astype(np.float32).ravel()]
        elif present and v is None and not _is_empty_input(scope, node, scales_index):
            problems.append(dynamic("scales", node.input[scales_index]))
        if not legacy and scales is None:
            sv, s_present = value(3)
            if isinstance(sv, np.ndarray) and sv.size > 0:
                sizes = [int(s) for s in sv.ravel()]
                size_source = "sizes"
            elif isinstance(sv, SymVector):
                sizes = list(sv.items)
                size_source = "sizes"
            elif s_present:
                problems.append(dynamic("sizes", node.input[3]))
                size_source = "sizes"
            elif not problems:
                problems.append("neither scales nor sizes is given")
        if not legacy and transform == "tf_crop_and_resize":
            rv, _ = value(1)
            if isinstance(rv, np.ndarray) and rv.size > 0:
                roi = tuple(float(r) for r in rv.astype(np.float32).ravel())
            else:
                problems.append(f"roi input {node.input[1] if len(node.input) > 1 else ''!r} is computed at run time (e.g. crop boxes)")

    if rank is None:
        known = scales if scales is not None else sizes
        rank = len(known) if known is not None and axes_attr is None else None
    if rank is None:
        lost = view.lost(scope, node.input[0], "shape")
        problems.append(f"input rank is unknown: {lost}" if lost is not None else "input rank is unknown")
        return ResizeSemantics(node.name, node.op_type, opset, mode, transform, nearest_mode,
                               float(attrs.get("cubic_coeff_a", -0.75)), bool(attrs.get("exclude_outside", 0)),
                               float(attrs.get("extrapolation_value", 0.0)), antialias, axes_attr, policy, roi,
                               size_source, (), elem_type, scope.path, tuple(problems))

    in_dims: list[Dim] = list(in_shape) if in_shape is not None else [None] * rank
    axes = [a % rank for a in axes_attr] if axes_attr is not None else list(range(rank))

    # Expand axes-relative inputs (opset 18) to full rank.
    full_scales: list[float] | None = None
    full_sizes: list[Dim] | None = None
    if scales is not None:
        if len(scales) == len(axes):
            full_scales = [1.0] * rank
            for a, s in zip(axes, scales):
                full_scales[a] = s
        else:
            problems.append(f"scales has {len(scales)} values for {len(axes)} axes")
    if sizes is not None:
        if len(sizes) == len(axes):
            full_sizes = list(in_dims)
            for a, s in zip(axes, sizes):
                full_sizes[a] = s
        else:
            problems.append(f"sizes has {len(sizes)} values for {len(axes)} axes")
    if roi is not None and axes_attr is not None and len(roi) == 2 * len(axes):
        full_roi = [0.0] * rank + [1.0] * rank
        for k, a in enumerate(axes):
            full_roi[a], full_roi[rank + a] = roi[k], roi[len(axes) + k]
        roi = tuple(full_roi)

    if (antialias or mode == "cubic") and transform == "tf_crop_and_resize" and rank == 4 and any(a == 1 for a in axes if full_scales is None or full_scales[a] != 1):
        # With axis 1 of a 4-D tensor resized (N x H x W x C), ORT's antialias and bicubic kernels apply the
        # tf_crop_and_resize extrapolation to other axes than the resized ones.
        kernel = "antialias" if antialias else "cubic"
        problems.append(f"ONNX Runtime's {kernel} + tf_crop_and_resize with axis 1 of a 4-D tensor resized is not modelled")
    invalid = None
    if any(not (s > 0 and np.isfinite(s)) for s in (full_scales or [])):
        invalid = f"scales {[float(s) for s in full_scales or []]} must be finite and > 0"
        full_scales = [1.0] * rank
    elif any(isinstance(s, int) and s < 0 for s in (full_sizes or [])):
        invalid = f"sizes {full_sizes} must not be negative"
        full_sizes = list(in_dims)
    infos = _axis_lengths(in_dims, full_scales, full_sizes, axes, policy)
    loose = [a.axis for a in infos if not (a.resolved or a.unchanged) and not isinstance(a.m, int) and a.axis in axes]
    if size_source == "sizes" and sizes is not None and not problems and loose:
        # Symbolic or partly unknown sizes: say where the first unresolved one was lost.
        problems.append(dynamic("sizes", node.input[3], axes.index(loose[0])))
    if invalid is None:
        empty = [a.axis for a in infos if a.n == 0 or a.m == 0]
        if empty:
            invalid = f"axis {empty[0]} has length 0 (input {in_dims[empty[0]]}, output {infos[empty[0]].m})"
    if invalid is not None:
        problems.append(invalid)
    return ResizeSemantics(
        name=node.name,
        op_type=node.op_type,
        opset=opset,
        mode=mode,
        transform=transform,
        nearest_mode=nearest_mode,
        cubic_coeff_a=float(attrs.get("cubic_coeff_a", -0.75)),
        exclude_outside=bool(attrs.get("exclude_outside", 0)),
        extrapolation_value=float(attrs.get("extrapolation_value", 0.0)),
        antialias=antialias,
        axes=axes_attr,
        keep_aspect_ratio_policy=policy,
        roi=roi,
        size_source=size_source,
        axes_info=tuple(infos),
        elem_type=elem_type,
        graph_path=scope.path,
        problems=tuple(problems),
        invalid=invalid,
        shape_lost=_shape_lost(view, scope, node, in_dims),
    )


def _shape_lost(view: ModelView, scope: Scope, node: onnx.NodeProto, in_dims: list[Dim]) -> str | None:
    if all(isinstance(d, int) for d in in_dims):
        return None
    lost = view.lost(scope, node.input[0], "shape")
    return f"the shape of its input {node.input[0]!r} is not static: {lost}" if lost is not None else None


def _is_empty_input(scope: Scope, node: onnx.NodeProto, k: int) -> bool:
    shape = scope.lookup_shape(node.input[k])
    return shape is not None and any(d == 0 for d in shape)


def _axis_lengths(in_dims: list[Dim], scales: list[float] | None, sizes: list[Dim] | None, axes: list[int], policy: str) -> list[AxisResize]:
    """Output lengths and transform scales exactly as ORT derives them (float32 arithmetic)."""
    rank = len(in_dims)
    out: list[AxisResize] = []
    if scales is not None:
        for k, (n, s) in enumerate(zip(in_dims, scales)):
            if isinstance(n, int):
                m: Dim = scaled_lengths(n, s)[0] if np.isfinite(s) else None
            else:
                m = n if F32(s) == F32(1) else None
            out.append(AxisResize(k, n, m, float(F32(s))))
        return out
    if sizes is None:
        return [AxisResize(k, n, None, None) for k, n in enumerate(in_dims)]
    ratio: list[float | None] = []
    for n, m in zip(in_dims, sizes):
        if isinstance(n, int) and isinstance(m, int):
            ratio.append(1.0 if n == 0 else float(F32(m) / F32(n)))
        elif n is not None and n == m:
            ratio.append(1.0)
        else:
            ratio.append(None)
    lengths = list(sizes)
    if policy in ("not_larger", "not_smaller"):
        # ORT: one common scale over the policy axes (all axes when `axes` is absent), m = round(scale * n).
        chosen = [ratio[a] for a in axes]
        if any(r is None for r in chosen):
            ratio = [None] * rank
        else:
            common = min(chosen) if policy == "not_larger" else max(chosen)  # type: ignore[type-var]
            for a in range(rank):
                if a in axes:
                    ratio[a] = common
                    n = in_dims[a]
                    lengths[a] = int(np.floor(np.float64(F32(common) * F32(n)) + 0.5)) if isinstance(n, int) else None  # std::round
                else:
                    ratio[a] = 1.0
                    lengths[a] = in_dims[a]
    return [AxisResize(k, n, m, r) for k, (n, m, r) in enumerate(zip(in_dims, lengths, ratio))]


def find_resizes(view: ModelView) -> list[tuple[Scope, onnx.NodeProto]]:
    return [(scope, node) for scope, node in view.nodes() if is_resize(node)]


def describe_model(view: ModelView) -> list[ResizeSemantics]:
    return [describe_node(view, scope, node) for scope, node in find_resizes(view)]


