"""Canonicalize: rewrite a node to the simplest Resize spelling with identical weights.

Candidates are the canonical spellings (coordinate transform half_pixel / align_corners / asymmetric,
each nearest rounding) in the onnx target's order of preference; a candidate is taken only when its ORT
weights, for the node's actual lengths, equal the node's weights on every resized axis. That covers
pytorch_half_pixel -> half_pixel (output lengths > 1) or -> align_corners (length 1), tf_half_pixel_for_nn
-> half_pixel + round_prefer_ceil, half_pixel_symmetric -> half_pixel when the scaled size is integral,
integer-factor nearest in any spelling -> asymmetric + floor, and anything else the weights allow. When no
single spelling fits every axis, the node is split into one Resize per axis. A resize that changes nothing
is removed. Output sizes are written as `sizes` when the input shape is static, else as the float32
scales that give the same grid, and only if float32 and float64 implementations agree on the size.
Exact because the candidates are chosen by weight comparison, and the pipeline proves the chain again.
"""

from __future__ import annotations

from rewriter.pipeline import RESPELL, NodeContext, NodeState, Pass
from rewriter.sampling import F32, AxisRule, AxisWeights, ort_axis_weights, scaled_lengths
from rewriter.spelling import Spelling, describe_spelling
from rewriter.targets.onnx import canonical_rules


def _fits(rule: AxisRule, n: int, m: int, target: AxisWeights) -> bool:
    return ort_axis_weights(rule, n, m, float(F32(m) / F32(n))).same_as(target)


def _spelling(rule: AxisRule) -> Spelling:
    return Spelling(mode=rule.mode, transform=rule.transform, nearest_mode=rule.nearest_mode, cubic_coeff_a=rule.cubic_coeff_a,
                    exclude_outside=rule.exclude_outside, antialias=rule.antialias)


class Canonicalize(Pass):
    name = "canonicalize"
    kind = RESPELL
    runs_after = ("legacy-upgrade", "fold-sizes")

    def check(self, ctx: NodeContext) -> str | None:
        if ctx.state.lowering is not None:
            return "already lowered"
        if not ctx.original.resolved:
            return "shapes unresolved: pass --input-shape"
        if ctx.state.kind == "original" and ctx.unaccepted_reason() is None:
            return "the target runs the node as it is"
        chain, reason = self._search(ctx)
        ctx.memo[self.name] = chain
        return reason

    def rewrite(self, ctx: NodeContext) -> NodeState:
        chain = ctx.memo.pop(self.name) if self.name in ctx.memo else self._search(ctx)[0]
        return NodeState(chain)  # type: ignore[arg-type]

    def _search(self, ctx: NodeContext) -> tuple[tuple[Spelling, ...] | None, str | None]:
        axes = ctx.original.resized_axes
        if not axes:
            return (), None
        total = {a: ctx.current_weights(a) for a in axes}
        lengths = {a: ctx.original.lengths(a) for a in axes}
        sem = ctx.original
        rules = canonical_rules(sem.mode, cubic_coeff_a=sem.cubic_coeff_a, exclude_outside=sem.exclude_outside, antialias=sem.antialias)
        common = [r for r in rules if all(_fits(r, *lengths[a], total[a]) for a in axes)]
        if common:
            # Every fitting spelling has the node's weights; prefer one the target runs as it is (a runtime may
            # compute some roundings or ties differently), else the most portable.
            chains = [c for r in common if (c := self._with_sizes(ctx, [(r, list(axes))])) is not None]
            chain = next((c for c in chains if all(ctx.target.accepts(sem) is None for sem in ctx.chain_semantics(c))), chains[0] if chains else None)
        else:
            parts: list[tuple[AxisRule, list[int]]] = []
            for a in axes:
                fit = next((r for r in rules if _fits(r, *lengths[a], total[a])), None)
                if fit is None:
                    return None, f"no canonical spelling has the node's weights on axis {a}"
                parts.append((fit, [a]))
            chain = self._with_sizes(ctx, parts)
        if chain is None:
            return None, "no portable way to write the output sizes (float32 and float64 sizes differ)"
        if ctx.state.kind == "original" and len(chain) == 1 and _same_node(ctx, chain[0]):
            return None, "already spelled canonically"  # keeps fix-resize idempotent
        return chain, None

    @staticmethod
    def _with_sizes(ctx: NodeContext, parts: list[tuple[AxisRule, list[int]]]) -> tuple[Spelling, ...] | None:
        shape = list(ctx.original.input_shape)
        chain = []
        for rule, axes in parts:
            out = list(shape)
            for a in axes:
                out[a] = ctx.original.axes_info[a].m
            spelling = _with_sizes(_spelling(rule), shape, out, axes)
            if spelling is None:
                return None
            chain.append(spelling)
            shape = out
        return tuple(chain)


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
