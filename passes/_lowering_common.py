"""What the three lowering passes check alike before looking at the weights."""

from __future__ import annotations

from rewriter.pipeline import NodeContext


def lowering_blocked(ctx: NodeContext, form: str) -> str | None:
    """Why ``form`` must not be emitted for this node (None: the pass may look at the weights)."""
    if ctx.state.lowering is not None:
        return "already lowered"
    if not ctx.original.resolved:
        return "shapes unresolved: pass --input-shape"
    if ctx.options.lower == "auto" and ctx.unaccepted_reason() is None:
        return "the target runs the node as it is"
    if not ctx.original.resized_axes:
        return "nothing to resize"
    return ctx.target.excluded_lowerings(ctx.original, ctx.options.lower).get(form)
