"""Lower to MatMul: any resize with static shapes is separable, Y = A_h . X . A_w^T.

The constant matrices are the semantics core's per-axis weights for the node (exactly ORT's), so this
works for cubic, antialias, fractional ratios, per-axis modes and tf_crop_and_resize (its extrapolation
is a constant mask: Y * keep + fill). It is the exact fallback when the target has no matching op; the
pipeline proves it by rebuilding the matrices from the emitted constants. A node whose matrices would
exceed the size limit is refused instead.
"""

from __future__ import annotations

from passes._lowering_common import lowering_blocked
from rewriter.emit import matmul_lowering
from rewriter.pipeline import LOWER, Lowering, NodeContext, NodeState, Pass
from rewriter.targets.base import MATMUL


class LowerToMatMul(Pass):
    name = "lower-matmul"
    kind = LOWER
    runs_after = ("canonicalize", "lower-conv-transpose", "lower-gather")

    def check(self, ctx: NodeContext) -> str | None:
        if (reason := lowering_blocked(ctx, MATMUL)) is not None:
            return reason
        sem = ctx.original
        if not sem.is_float:
            return "integer data: a MatMul would change the rounding"
        size = sum(int(sem.axes_info[a].n) * int(sem.axes_info[a].m) for a in sem.resized_axes) * 4  # type: ignore[arg-type]
        if size > ctx.options.max_matrix_bytes:
            return f"the interpolation matrices would take {size / 2**20:.0f} MiB (limit {ctx.options.max_matrix_bytes / 2**20:.0f} MiB)"
        return None

    def rewrite(self, ctx: NodeContext) -> NodeState:
        sem = ctx.original
        weights = {a: ctx.current_weights(a) for a in sem.resized_axes}
        sub = matmul_lowering(ctx.node.input[0], ctx.node.output[0], ctx.node.name or "resize", sem.rank, weights, sem.extrapolation_value, sem.elem_type,
                              right_only=ctx.target.matmul_right_only)
        return NodeState(lowering=Lowering(MATMUL, {a: w.shape for a, w in weights.items()}, sub))
