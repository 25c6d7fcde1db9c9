"""Lower to grouped ConvTranspose: the Caffe "Deconvolution with bilinear filler" idea, done exactly.

With an integer stride the node's weights are periodic in the output index away from the borders.
``rewriter.lowering.derive_conv_transpose`` reads the kernel off the matrix, finds the edge replication
that makes the borders right (Pad(edge), or Slice + Concat where the target has no Pad) and the crop
(ConvTranspose pads). For half_pixel linear x f that is edge-replicate 1, kernel 2f - f%2 (Caffe's
bilinear filler), crop f + ceil((f-1)/2); for align_corners with m = f(n-1)+1 kernel 2f-1, pad f-1, no
replication; nearest gives a ones kernel; cubic and shifted nearest phases come out the same way. Exact
because the pipeline rebuilds the matrices from the emitted kernel, pads and crops and compares them with
the node's. ``--border zero`` instead emits the classic zero-border recipe, never called exact; its
measured border error is reported.
"""

from __future__ import annotations

from passes._lowering_common import lowering_blocked
from rewriter.emit import conv_transpose_lowering
from rewriter.lowering import ConvTransposeForm, axis_conv_transpose_form
from rewriter.pipeline import LOWER, Lowering, NodeContext, NodeState, Pass
from rewriter.sampling import F32, AxisRule, bilinear_filler_kernel, ort_axis_weights
from rewriter.targets.base import CONV_TRANSPOSE

_NOT_PERIODIC = "the weights are not periodic with an integer stride (fractional ratio, antialias, extrapolation...)"


def conv_transpose_forms(ctx: NodeContext) -> dict[int, ConvTransposeForm] | None:
    sems = ctx.chain_semantics()
    forms: dict[int, ConvTransposeForm] = {}
    for axis in ctx.original.resized_axes:
        form = axis_conv_transpose_form(ctx.current_weights(axis), sems[0].axis_rule(axis) if len(sems) == 1 else None)
        if form is None:
            return None
        forms[axis] = form
    return forms


def classic_forms(ctx: NodeContext) -> dict[int, ConvTransposeForm] | None:
    """The classic recipe's forms, for nodes it approximates only at the borders: half_pixel linear x f."""
    sem = ctx.original
    forms: dict[int, ConvTransposeForm] = {}
    half_pixel = AxisRule("linear", "half_pixel")
    for a in sem.resized_axes:
        n, m = sem.lengths(a)
        if m % n or not ort_axis_weights(half_pixel, n, m, float(F32(m) / F32(n))).same_as(sem.axis_weights(a)):
            return None
        f = m // n
        pad = f // 2  # = ceil((f - 1) / 2)
        forms[a] = ConvTransposeForm(tuple(bilinear_filler_kernel(2 * f - f % 2)), f, 0, 0, pad, pad)
    return forms


class LowerToConvTranspose(Pass):
    name = "lower-conv-transpose"
    kind = LOWER
    runs_after = ("canonicalize",)

    def check(self, ctx: NodeContext) -> str | None:
        if (reason := lowering_blocked(ctx, CONV_TRANSPOSE)) is not None:
            return reason
        sem = ctx.original
        if not sem.is_float:
            return "integer data: a ConvTranspose would change the rounding"
        if sem.rank < 3 or any(a < 2 for a in sem.resized_axes):
            return "only the spatial axes of an N x C x ... tensor can be deconvolved"
        if not isinstance(sem.input_shape[1], int):
            return "the channel count is not static (the grouped kernel needs it)"
        classic = classic_forms(ctx) if ctx.options.border == "zero" else None
        forms = classic or conv_transpose_forms(ctx)
        if forms is None:
            return _NOT_PERIODIC
        ctx.memo[self.name] = (forms, classic is not None)
        return None

    def rewrite(self, ctx: NodeContext) -> NodeState:
        if self.name not in ctx.memo and (reason := self.check(ctx)) is not None:
            raise ValueError(f"rewrite called where check says: {reason}")
        forms, is_classic = ctx.memo.pop(self.name)  # type: ignore[misc]
        sem = ctx.original
        sub = conv_transpose_lowering(
            ctx.node.input[0], ctx.node.output[0], ctx.node.name or "resize", sem.rank, int(sem.input_shape[1]), forms,  # type: ignore[arg-type]
            sem.elem_type, ctx.opset, use_slices=ctx.target.edge_replication == "slices", separable=ctx.options.separable and not is_classic,
        )
        if is_classic:
            sub.description = "classic zero-border " + sub.description
        return NodeState(lowering=Lowering(CONV_TRANSPOSE, dict(forms), sub, exact=not is_classic))
