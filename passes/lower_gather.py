"""Lower nearest resizes to Gather: one Gather of constant indices per resized axis.

A nearest resize's weights are one-hot rows, so they are exactly an index table, read off the matrix the
semantics core gives for the node. This is exact for every data type (int8/uint8 QDQ models included),
any ratio and any rounding, with no arithmetic at all. Not for Caffe (no Gather layer).
"""

from __future__ import annotations

from rewriter.analysis import FLOAT_TYPES, resized_axes
from rewriter.emit import gather_lowering, is_one_hot
from rewriter.pipeline import NodeContext
from rewriter.spelling import chain_weights


class LowerToGather:
    name = "lower-gather"

    def check(self, ctx: NodeContext) -> str | None:
        if ctx.lowered is not None:
            return "already lowered"
        if not ctx.original.resolved:
            return "shapes unresolved: pass --input-shape"
        if ctx.options.target == "caffe":
            return "Caffe has no Gather layer"
        if ctx.options.lower == "none":
            return "--lower none"
        if ctx.options.lower == "auto" and ctx.unaccepted_reason() is None:
            return "the target runs the node as it is"
        if ctx.options.lower == "matmul" and ctx.original.elem_type in FLOAT_TYPES:
            return "--lower matmul"
        sems = ctx.chain_semantics()
        if not all(is_one_hot(chain_weights(sems, a)) for a in resized_axes(ctx.original)):
            return "not a pure index selection (interpolating or extrapolating)"
        return None

    def rewrite(self, ctx: NodeContext) -> None:
        sems = ctx.chain_semantics()
        weights = {a: chain_weights(sems, a) for a in resized_axes(ctx.original)}
        ctx.set_lowered(gather_lowering(ctx.node.input[0], ctx.node.output[0], ctx.node.name or "resize", weights), self.name)
