"""Lower to MatMul: any resize with static shapes is separable, Y = A_h . X . A_w^T.

The constant matrices are the semantics core's per-axis weights for the node (exactly ORT's), so this
works for cubic, antialias, fractional ratios, per-axis modes and tf_crop_and_resize (its extrapolation
is a constant mask: Y * keep + fill). It is the exact fallback when the target has no matching op; a
node whose matrices would exceed the size limit is refused instead.
"""

from __future__ import annotations

from rewriter.analysis import FLOAT_TYPES, resized_axes
from rewriter.emit import matmul_lowering
from rewriter.pipeline import NodeContext
from rewriter.spelling import chain_weights


class LowerToMatMul:
    name = "lower-matmul"

    def check(self, ctx: NodeContext) -> str | None:
        sem = ctx.original
        if ctx.lowered is not None:
            return "already lowered"
        if not sem.resolved:
            return "shapes unresolved: pass --input-shape"
        if ctx.options.lower == "none":
            return "--lower none"
        if ctx.options.lower == "auto" and ctx.unaccepted_reason() is None:
            return "the target runs the node as it is"
        if sem.elem_type not in FLOAT_TYPES:
            return "integer data: a MatMul would change the rounding"
        size = sum(int(sem.axes_info[a].n) * int(sem.axes_info[a].m) for a in resized_axes(sem)) * 4  # type: ignore[arg-type]
        if size > ctx.options.max_matrix_bytes:
            return f"the interpolation matrices would take {size / 2**20:.0f} MiB (limit {ctx.options.max_matrix_bytes / 2**20:.0f} MiB)"
        return None

    def rewrite(self, ctx: NodeContext) -> None:
        sem = ctx.original
        sems = ctx.chain_semantics()
        weights = {a: chain_weights(sems, a) for a in resized_axes(sem)}
        sub = matmul_lowering(ctx.node.input[0], ctx.node.output[0], ctx.node.name or "resize", sem.rank, weights, sem.extrapolation_value, sem.elem_type)
        ctx.set_lowered(sub, self.name)
