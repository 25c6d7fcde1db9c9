"""Per-node, per-target verdicts: does a Resize already run identically on a target, can it be made to, or not.

Every verdict is a weight comparison through ``rewriter.sampling``: a node runs identically on a
primitive when, for each axis it resizes, the primitive's matrix equals the node's ORT matrix.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx

from rewriter.graph import Dim
from rewriter.lowering import axis_conv_transpose_form, caffe_classic_deconv
from rewriter.resize import ResizeSemantics
from rewriter.sampling import F32, AxisRule, AxisWeights, lerp_weights, ort_axis_weights, pick_weights, scaled_lengths
from rewriter.targets import (
    CANONICAL_TRANSFORMS,
    Primitive,
    caffe_primitives,
    coreml_primitives,
    onnx_canonical_primitives,
)

AS_IS, REWRITE, INEXACT, UNRESOLVED = "as-is", "rewrite", "inexact", "unresolved"
FLOAT_TYPES = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16, onnx.TensorProto.DOUBLE)


@dataclass(frozen=True)
class TargetOptions:
    deployment_target: str = "iOS15"
    coreml_format: str = "mlprogram"
    caffe_flavor: str = "bvlc"


@dataclass
class Verdict:
    verdict: str
    how: str
    naive_max_error: float | None = None  # worst-case error of a name-based mapping, inputs in [-1, 1]
    details: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        out = {"verdict": self.verdict, "how": self.how}
        if self.naive_max_error is not None:
            out["naive_max_error"] = round(self.naive_max_error, 6)
        out.update(self.details)
        return out


def resized_axes(sem: ResizeSemantics) -> list[int]:
    """Axes whose weights are not the identity (ORT skips scale-1 axes and whole no-op resizes)."""
    if sem.is_noop:
        return []
    return [a.axis for a in sem.axes_info if not a.unchanged]


def matching_primitives(sem: ResizeSemantics, primitives: tuple[Primitive, ...]) -> list[Primitive]:
    """Primitives whose sampling equals the node's on every resized axis (for its actual lengths)."""
    axes = resized_axes(sem)
    found = []
    for prim in primitives:
        if prim.spatial_only and any(a < sem.rank - 2 for a in axes):
            continue
        # A spatial op also samples the spatial axes the node leaves alone: it must be the identity there.
        untouched = [a for a in range(max(sem.rank - 2, 0), sem.rank) if prim.spatial_only and a not in axes]
        if any(not _identity_on(prim, sem.axes_info[a].n) for a in untouched):
            continue
        ok = True
        for a in axes:
            info = sem.axes_info[a]
            theirs = prim.weights(info.n, info.m)  # type: ignore[arg-type]
            if theirs is None or not theirs.same_as(sem.axis_weights(a)):
                ok = False
                break
        if ok:
            found.append(prim)
    return found


def _identity_on(prim: Primitive, n: Dim) -> bool:
    if not isinstance(n, int):
        return False
    w = prim.weights(n, n)
    return w is not None and w.is_identity()


def canonical_forms_per_axis(sem: ResizeSemantics) -> dict[int, list[str]]:
    """For each resized axis, the canonical ONNX Resize spellings with identical weights."""
    prims = onnx_canonical_primitives()
    out: dict[int, list[str]] = {}
    for a in resized_axes(sem):
        info = sem.axes_info[a]
        mine = sem.axis_weights(a)
        out[a] = [p.name for p in prims if (w := p.weights(info.n, info.m)) is not None and w.same_as(mine)]  # type: ignore[arg-type]
    return out


def conv_transpose_axes(sem: ResizeSemantics) -> dict[int, int] | None:
    """Stride per resized axis if every resized axis has an exact ConvTranspose form, else None."""
    strides: dict[int, int] = {}
    for a in resized_axes(sem):
        form = axis_conv_transpose_form(sem.axis_weights(a), sem.axis_rule(a))
        if form is None:
            return None
        strides[a] = form.stride
    return strides


def naive_error(sem: ResizeSemantics, target: str) -> float | None:
    """Worst-case error (inputs in [-1, 1]) of the mapping a name-based converter would make."""
    worst = 0.0
    for a in resized_axes(sem):
        info = sem.axes_info[a]
        n, m = info.n, info.m
        assert isinstance(n, int) and isinstance(m, int)
        naive = _naive_weights(sem, a, n, m, target)
        if naive is None:
            return None
        worst = max(worst, naive.difference(sem.axis_weights(a)))
    return worst


def _naive_weights(sem: ResizeSemantics, axis: int, n: int, m: int, target: str) -> AxisWeights | None:
    if target == "onnx":
        if sem.opset > 10:
            return None
        # onnx's version converter (Resize 10 -> 11) leaves the opset-11 defaults: half_pixel, round_prefer_floor.
        rule = AxisRule(sem.mode, "half_pixel", "round_prefer_floor")
        return ort_axis_weights(rule, n, m, float(F32(sem.axes_info[axis].scale)))
    f = m // n if m % n == 0 else None
    if sem.mode == "nearest":
        return AxisWeights(pick_weights(np.arange(m) // f, n)) if f else None
    if sem.mode != "linear":
        return None
    if target == "coreml":
        # onnx-coreml / coremltools <= 5.2: Upsample BILINEAR with the default (asymmetric) grid.
        return AxisWeights(lerp_weights(np.arange(m) * n / m, n))
    return caffe_classic_deconv(n, f) if f else None


def verdict_for(sem: ResizeSemantics, target: str, options: TargetOptions = TargetOptions()) -> Verdict:
    # Portable ONNX does not need static shapes: sizes (or a crop roi) computed at run time are fine.
    runtime_only = all(p.startswith(("roi input", "sizes input")) for p in sem.problems)
    if target == "onnx" and not sem.resolved and runtime_only and onnx_canonical_problem(sem) is None:
        return Verdict(AS_IS, f"Resize-{sem.opset} {sem.mode}/{sem.transform} is canonical for any input shape")
    if not sem.resolved:
        return Verdict(UNRESOLVED, "; ".join(sem.problems) or "input shape not static: pass --input-shape NAME=DIMS")
    if not resized_axes(sem):
        return Verdict(REWRITE if target != "onnx" or sem.opset <= 10 else AS_IS, "no-op resize (output shape equals input shape): remove it")
    if (too_large := sem.oversized_axis()) is not None:
        return Verdict(INEXACT, too_large)
    naive = naive_error(sem, target)
    if target == "onnx":
        return _onnx_verdict(sem, naive)
    if target == "coreml":
        return _coreml_verdict(sem, naive, options)
    return _caffe_verdict(sem, naive, options)


def _lowering(sem: ResizeSemantics, target: str) -> Verdict | None:
    if sem.elem_type not in FLOAT_TYPES:
        return None
    strides = conv_transpose_axes(sem)
    if strides is not None:
        return Verdict(REWRITE, "lower to grouped ConvTranspose (stride " + ", ".join(f"axis {a}: {s}" for a, s in strides.items()) + "), exact at the borders")
    return Verdict(REWRITE, "lower to constant interpolation matrices (MatMul" + (" / 1x1 Convolution" if target == "caffe" else "") + ")")


def onnx_canonical_problem(sem: ResizeSemantics) -> str | None:
    """Why a node is not canonical portable ONNX as it is (None: it is). Shared by `check` and fix-resize."""
    if sem.op_type != "Resize" or sem.opset < 11:
        return f"{sem.op_type}-{sem.opset} has implicit legacy semantics"
    if _scales_size_trap(sem):
        return "float32 scales give a different output size in float64 implementations"
    if sem.transform in CANONICAL_TRANSFORMS:
        return None
    if sem.transform in ("tf_crop_and_resize", "half_pixel_symmetric"):
        if not sem.resolved:
            return None  # nothing simpler can be proved exact without static shapes
        forms = canonical_forms_per_axis(sem)
        if not all(forms.values()):
            return None  # nothing simpler is exact
        return f"{sem.transform} equals a canonical spelling here"
    return f"{sem.transform} is not a canonical coordinate transform"


def _onnx_verdict(sem: ResizeSemantics, naive: float | None) -> Verdict:
    problem = onnx_canonical_problem(sem)
    if problem is None:
        return Verdict(AS_IS, f"Resize-{sem.opset} {sem.mode}/{sem.transform} is canonical")
    forms = canonical_forms_per_axis(sem)
    common = [f for f in next(iter(forms.values()), []) if all(f in v for v in forms.values())]
    if common:
        how = f"rewrite as {common[0]} with sizes"
    elif all(forms.values()):
        how = "split per axis: " + "; ".join(f"axis {a}: {v[0]}" for a, v in forms.items())
    else:
        low = _lowering(sem, "onnx")
        if low is None:
            return Verdict(INEXACT, f"no canonical Resize is exact and {onnx.TensorProto.DataType.Name(sem.elem_type)} data cannot be lowered", naive)
        low.naive_max_error = naive
        return low
    if _scales_size_trap(sem):
        how += " (float32 scales give a different output size in float64 implementations)"
    return Verdict(REWRITE, how, naive)


def _scales_size_trap(sem: ResizeSemantics) -> bool:
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


def _coreml_verdict(sem: ResizeSemantics, naive: float | None, options: TargetOptions) -> Verdict:
    if sem.rank in (3, 4) and not sem.antialias:
        matches = matching_primitives(sem, coreml_primitives(options.deployment_target, options.coreml_format))
        if matches:
            return Verdict(AS_IS, f"Core ML {matches[0].name}", naive, {"op": matches[0].name})
    low = _lowering(sem, "coreml")
    if low is None:
        return Verdict(INEXACT, f"no Core ML op samples like this node and {onnx.TensorProto.DataType.Name(sem.elem_type)} data cannot be lowered", naive)
    low.naive_max_error = naive
    return low


def _caffe_verdict(sem: ResizeSemantics, naive: float | None, options: TargetOptions) -> Verdict:
    if sem.rank == 4 and options.caffe_flavor != "bvlc":
        matches = matching_primitives(sem, caffe_primitives(options.caffe_flavor))
        if matches:
            return Verdict(REWRITE, f"map to Caffe {matches[0].name}", naive, {"op": matches[0].name})
    low = _lowering(sem, "caffe")
    if low is None:
        return Verdict(INEXACT, f"BVLC Caffe has no layer for {onnx.TensorProto.DataType.Name(sem.elem_type)} resizing", naive)
    low.naive_max_error = naive
    return low
