"""Fold sizes/scales: a Resize whose scales or sizes come from a subgraph (Shape -> Gather/Slice -> Cast ->
Mul -> Floor -> Concat and the like) gets them as constants.

The values are those the partial evaluator derived from static input shapes (or --input-shape); a
symbolic batch dimension passes through Shape/Gather/Concat by name and ends up on an unchanged axis, so
such a node still folds (sizes [N, C, 2H, 2W] with static H, W become scales [1, 1, 2, 2]). Which of
`sizes` and `scales` is emitted is decided by the canonicalize pass; here the node's own form is kept.
Exact because the pipeline proves the folded spelling has the node's weights on every axis.
"""

from __future__ import annotations

from rewriter.pipeline import RESPELL, NodeContext, NodeState, Pass
from rewriter.spelling import spelling_of


def _is_constant(ctx: NodeContext, name: str) -> bool:
    if not name or ctx.scope.lookup_initializer(name) is not None:
        return True
    producer = ctx.scope.lookup_producer(name)
    return producer is not None and producer.op_type == "Constant"


class FoldSizes(Pass):
    name = "fold-sizes"
    kind = RESPELL
    runs_after = ("legacy-upgrade",)

    def check(self, ctx: NodeContext) -> str | None:
        if ctx.state.kind != "original":
            return "already rewritten with constant inputs"
        if all(_is_constant(ctx, name) for name in ctx.node.input[1:]):
            return "scales/sizes are already constants"
        if not ctx.original.resolved:
            return "the size subgraph depends on dimensions that are not static: pass --input-shape"
        return None

    def rewrite(self, ctx: NodeContext) -> NodeState:
        return NodeState((spelling_of(ctx.original),))
