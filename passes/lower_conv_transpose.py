"""Lower to grouped ConvTranspose: the Caffe "Deconvolution with bilinear filler" idea, done exactly.

With an integer stride the node's weights are periodic in the output index away from the borders.
``rewriter.lowering.derive_conv_transpose`` reads the kernel off the matrix, finds the edge replication
that makes the borders right (Pad(edge), or Slice + Concat for Caffe, which has no Pad) and the crop
(ConvTranspose pads), and accepts the form only if the rebuilt matrix equals the node's. For half_pixel
linear x f that is edge-replicate 1, kernel 2f - f%2 (Caffe's bilinear filler), crop f + ceil((f-1)/2);
for align_corners with m = f(n-1)+1 kernel 2f-1, pad f-1, no replication; nearest gives a ones kernel;
cubic and shifted nearest phases come out the same way. ``--border zero`` instead emits the classic
zero-border recipe (never called exact; its measured border error is reported).
"""

from __future__ import annotations

from rewriter.analysis import FLOAT_TYPES, resized_axes
from rewriter.emit import conv_transpose_lowering
from rewriter.lowering import ConvTransposeForm, axis_conv_transpose_form, caffe_classic_deconv
from rewriter.pipeline import NodeContext
from rewriter.sampling import F32, AxisRule, bilinear_filler_kernel, ort_axis_weights
from rewriter.spelling import chain_weights


def conv_transpose_forms(ctx: NodeContext) -> dict[int, ConvTransposeForm] | None:
    sems = ctx.chain_semantics()
    forms: dict[int, ConvTransposeForm] = {}
    for axis in resized_axes(ctx.original):
        form = axis_conv_transpose_form(chain_weights(sems, axis), sems[0].axis_rule(axis) if len(sems) == 1 else None)
        if form is None:
            return None
        forms[axis] = form
    return forms


def _why_not(ctx: NodeContext) -> str | None:
    sem = ctx.original
    if ctx.lowered is not None:
        return "already lowered"
    if not sem.resolved:
        return "shapes unresolved: pass --input-shape"
    if sem.elem_type not in FLOAT_TYPES:
        return "integer data: a ConvTranspose would change the rounding"
    if ctx.options.lower in ("none", "matmul"):
        return f"--lower {ctx.options.lower}"
    if ctx.options.lower == "auto" and ctx.unaccepted_reason() is None:
        return "the target runs the node as it is"
    axes = resized_axes(sem)
    if not axes:
        return "nothing to resize"
    if sem.rank < 3 or any(a < 2 for a in axes):
        return "only the spatial axes of an N x C x ... tensor can be deconvolved"
    if not isinstance(sem.input_shape[1], int):
        return "the channel count is not static (the grouped kernel needs it)"
    small = all(int(sem.axes_info[a].n) <= ctx.options.matmul_below for a in axes)  # type: ignore[arg-type]
    if ctx.options.lower == "auto" and ctx.options.target != "caffe" and small:
        return f"input lengths <= {ctx.options.matmul_below}: the MatMul form is faster here"
    return None


class LowerToConvTranspose:
    name = "lower-conv-transpose"

    def check(self, ctx: NodeContext) -> str | None:
        reason = _why_not(ctx)
        if reason is None and ctx.options.border == "exact" and conv_transpose_forms(ctx) is None:
            return "the weights are not periodic with an integer stride (fractional ratio, antialias, extrapolation...)"
        if reason is None and ctx.options.border == "zero" and self._classic(ctx) is None and conv_transpose_forms(ctx) is None:
            return "the weights are not periodic with an integer stride (fractional ratio, antialias, extrapolation...)"
        return reason

    def rewrite(self, ctx: NodeContext) -> None:
        sem = ctx.original
        use_slices = ctx.options.target == "caffe"
        prefix = ctx.node.name or "resize"
        classic = self._classic(ctx) if ctx.options.border == "zero" else None
        if classic is not None:
            forms = classic
            error = max(
                caffe_classic_deconv(int(sem.axes_info[a].n), f.stride).difference(sem.axis_weights(a)) for a, f in forms.items()  # type: ignore[arg-type]
            )
            sub = conv_transpose_lowering(ctx.node.input[0], ctx.node.output[0], prefix, sem.rank, int(sem.input_shape[1]), forms, sem.elem_type, ctx.opset, use_slices)  # type: ignore[arg-type]
            sub.description = "classic zero-border " + sub.description
            ctx.border_error = error
            ctx.set_lowered(sub, self.name, exact=error <= 1e-6)
            return
        forms = conv_transpose_forms(ctx)
        assert forms is not None
        sub = conv_transpose_lowering(
            ctx.node.input[0], ctx.node.output[0], prefix, sem.rank, int(sem.input_shape[1]), forms, sem.elem_type, ctx.opset, use_slices, ctx.options.separable_deconv  # type: ignore[arg-type]
        )
        ctx.set_lowered(sub, self.name)

    @staticmethod
    def _classic(ctx: NodeContext) -> dict[int, ConvTransposeForm] | None:
        """The classic recipe's forms, for nodes it approximates only at the borders: half_pixel linear x f."""
        sem = ctx.original
        forms: dict[int, ConvTransposeForm] = {}
        half_pixel = AxisRule("linear", "half_pixel")
        for a in resized_axes(sem):
            n, m = int(sem.axes_info[a].n), int(sem.axes_info[a].m)  # type: ignore[arg-type]
            if m % n or not ort_axis_weights(half_pixel, n, m, float(F32(m) / F32(n))).same_as(sem.axis_weights(a)):
                return None
            f = m // n
            pad = f // 2  # = ceil((f - 1) / 2)
            forms[a] = ConvTransposeForm(tuple(bilinear_filler_kernel(2 * f - f % 2)), f, 0, 0, pad, pad)
        return forms
