"""Lower nearest resizes to Gather: one Gather of constant indices per resized axis.

A nearest resize's weights are one-hot rows, so they are exactly an index table, read off the matrix the
semantics core gives for the node. This is exact for every data type (int8/uint8 QDQ models included),
any ratio and any rounding, with no arithmetic at all; the pipeline proves it by rebuilding the per-axis
selection from the emitted index constants. Only for targets that have a Gather layer.
"""

from __future__ import annotations

from passes._lowering_common import lowering_blocked
from rewriter.emit import gather_lowering, is_one_hot
from rewriter.pipeline import LOWER, Lowering, NodeContext, NodeState, Pass
from rewriter.targets.base import GATHER


class LowerToGather(Pass):
    name = "lower-gather"
    kind = LOWER
    runs_after = ("canonicalize", "lower-conv-transpose")

    def check(self, ctx: NodeContext) -> str | None:
        if (reason := lowering_blocked(ctx, GATHER)) is not None:
            return reason
        if not all(is_one_hot(ctx.current_weights(a)) for a in ctx.original.resized_axes):
            return "not a pure index selection (interpolating or extrapolating)"
        return None

    def rewrite(self, ctx: NodeContext) -> NodeState:
        weights = {a: ctx.current_weights(a) for a in ctx.original.resized_axes}
        sub = gather_lowering(ctx.node.input[0], ctx.node.output[0], ctx.node.name or "resize", weights)
        indices = {a: [int(i) for i in w.matrix.argmax(axis=1)] for a, w in weights.items()}
        return NodeState(lowering=Lowering(GATHER, indices, sub))  # type: ignore[arg-type]
