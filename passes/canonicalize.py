"""Canonicalize: rewrite a node to the simplest Resize spelling the target runs exactly.

Candidates are the canonical spellings (coordinate transform half_pixel / align_corners / asymmetric,
each nearest rounding) in a fixed order of preference; a candidate is taken only when its ORT weights,
for the node's actual lengths, equal the node's weights on every resized axis. That covers
pytorch_half_pixel -> half_pixel (output lengths > 1) or -> align_corners (length 1), tf_half_pixel_for_nn
-> half_pixel + round_prefer_ceil, half_pixel_symmetric -> half_pixel when the scaled size is integral,
integer-factor nearest in any spelling -> asymmetric + floor, and anything else the weights allow. When no
single spelling fits every axis, the node is split into one Resize per axis. A resize that changes nothing
is removed. Output sizes are written as `sizes` when the input shape is static, else as the float32
scales that give the same grid, and only if float32 and float64 implementations agree on the size.
"""

from __future__ import annotations

from rewriter.analysis import resized_axes
from rewriter.pipeline import NodeContext
from rewriter.resize import ResizeSemantics
from rewriter.sampling import F32, AxisRule, AxisWeights, ort_axis_weights, scaled_lengths
from rewriter.spelling import Spelling, chain_weights, describe_spelling
from rewriter.targets import CANONICAL_TRANSFORMS, NEAREST_PREFERENCE


def _candidates(sem: ResizeSemantics) -> list[Spelling]:
    base = dict(cubic_coeff_a=sem.cubic_coeff_a, exclude_outside=sem.exclude_outside, antialias=sem.antialias)
    if sem.mode == "nearest":
        return [Spelling(mode="nearest", transform=t, nearest_mode=r) for t, r in NEAREST_PREFERENCE]
    return [Spelling(mode=sem.mode, transform=t, **base) for t in CANONICAL_TRANSFORMS]


def _fits(spelling: Spelling, n: int, m: int, target: AxisWeights) -> bool:
    rule = AxisRule(spelling.mode, spelling.transform, spelling.nearest_mode, spelling.cubic_coeff_a, spelling.exclude_outside, spelling.antialias)
    return ort_axis_weights(rule, n, m, float(F32(m) / F32(n))).same_as(target)


class Canonicalize:
    name = "canonicalize"

    def check(self, ctx: NodeContext) -> str | None:
        if ctx.lowered is not None:
            return "already lowered"
        if not ctx.original.resolved:
            return "shapes unresolved: pass --input-shape"
        if ctx.options.target == "onnx" and ctx.unaccepted_reason() is None and ctx.chain is None and not _is_noop(ctx):
            return "already canonical"
        return None

    def rewrite(self, ctx: NodeContext) -> None:
        sems = ctx.chain_semantics()
        axes = resized_axes(ctx.original)
        if not axes:
            ctx.set_chain([], self.name)
            return
        total = {a: chain_weights(sems, a) for a in axes}
        lengths = {a: (int(ctx.original.axes_info[a].n), int(ctx.original.axes_info[a].m)) for a in axes}  # type: ignore[arg-type]
        candidates = _candidates(ctx.original)
        for spelling in candidates:
            if all(_fits(spelling, *lengths[a], total[a]) for a in axes):
                self._adopt(ctx, [(spelling, axes)])
                return
        per_axis = []
        for a in axes:
            fit = next((s for s in candidates if _fits(s, *lengths[a], total[a])), None)
            if fit is None:
                return  # no canonical spelling: leave it to the lowering passes
            per_axis.append((fit, [a]))
        self._adopt(ctx, per_axis)

    def _adopt(self, ctx: NodeContext, parts: list[tuple[Spelling, list[int]]]) -> None:
        shape = list(ctx.original.input_shape)
        chain = []
        for spelling, axes in parts:
            out = list(shape)
            for a in axes:
                out[a] = ctx.original.axes_info[a].m
            chain.append(_with_sizes(spelling, shape, out, axes))
            shape = out
        if any(s is None for s in chain):
            return  # no portable way to write the sizes here: leave it to the lowering passes
        if ctx.chain is None and len(chain) == 1 and _same_node(ctx, chain[0]):  # type: ignore[arg-type]
            return  # already spelled this way: rewriting would change nothing (keeps fix-resize idempotent)
        ctx.set_chain(chain, self.name)  # type: ignore[arg-type]


def _with_sizes(spelling: Spelling, shape: list, out: list, axes: list[int]) -> Spelling | None:
    """`sizes` when every dim is static; else float32 scales giving the same grid and a portable size."""
    if all(isinstance(d, int) for d in out):
        return spelling.replace(sizes=tuple(int(d) for d in out))
    scales = []
    for k, (n, m) in enumerate(zip(shape, out)):
        if k not in axes:
            scales.append(1.0)
            continue
        s = F32(m) / F32(n)
        if scaled_lengths(n, s) != (m, m):
            return None
        scales.append(float(s))
    return spelling.replace(scales=tuple(scales))


def _same_node(ctx: NodeContext, spelling: Spelling) -> bool:
    sem = ctx.original
    if sem.op_type != "Resize" or sem.opset < 11 or (sem.mode, sem.transform) != (spelling.mode, spelling.transform):
        return False
    if sem.mode == "nearest" and sem.nearest_mode != spelling.nearest_mode:
        return False
    if (sem.size_source == "sizes") != (spelling.sizes is not None):
        return False
    return sem.output_shape == describe_spelling(spelling, sem.input_shape, ctx.opset, sem.elem_type).output_shape


def _is_noop(ctx: NodeContext) -> bool:
    return not resized_axes(ctx.original)
