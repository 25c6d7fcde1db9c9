"""Per-layer shapes of the Caffe reference evaluator: the top shapes Caffe's Reshape() computes and the
parameter blob shapes LayerSetUp creates (``layer_shapes``)."""

from __future__ import annotations

from itertools import pairwise

from rewriter.caffe.reference.blobs import CaffeReferenceError, canonical_axis, check, element_count
from rewriter.caffe.reference.spatial import conv_shapes, interp_sizes, pool_geometry


def layer_shapes(layer, bottoms: list[tuple[int, ...]]) -> tuple[list[tuple[int, ...]], list[tuple[int, ...]]]:
    """(top shapes, parameter blob shapes) of ``layer`` for the given bottom shapes."""
    t = layer.type
    b0 = bottoms[0] if bottoms else None
    ntop = len(layer.top)
    if t == "Input":
        shapes = [tuple(int(d) for d in s.dim) for s in layer.input_param.shape]
        check(len(shapes) in (1, ntop), f"{layer.name}: Input needs 1 or one shape per top")
        return [shapes[i if len(shapes) > 1 else 0] for i in range(ntop)], []
    if t in ("Convolution", "Deconvolution"):
        top, blobs, _ = conv_shapes(layer, b0, t == "Deconvolution")
        return [top], blobs
    if t == "InnerProduct":
        p = layer.inner_product_param
        axis = canonical_axis(p.axis, len(b0))
        k = element_count(b0, axis)
        w = (k, p.num_output) if p.transpose else (p.num_output, k)
        return [(*b0[:axis], p.num_output)], [w] + ([(p.num_output,)] if p.bias_term else [])
    if t == "Pooling":
        _, _, _, (oh, ow) = pool_geometry(layer, b0)
        return [(b0[0], b0[1], oh, ow)], []
    if t == "BatchNorm":
        c = 1 if len(b0) == 1 else b0[1]
        return [b0], [(c,), (c,), (1,)]
    if t in ("Scale", "Bias"):
        p = layer.scale_param if t == "Scale" else layer.bias_param
        if len(bottoms) == 2:
            other = bottoms[1]
            axis = 0 if len(other) == 0 else canonical_axis(p.axis, len(b0))
            check(
                tuple(b0[axis : axis + len(other)]) == tuple(other),
                f"{layer.name}: bottom[1] shape {other} does not match bottom[0] {b0} at axis {axis}",
            )
            blobs = (
                [(other[0],)]
                if (t == "Scale" and p.bias_term and other)
                else ([()] if (t == "Scale" and p.bias_term) else [])
            )
            return [b0], blobs
        axis = canonical_axis(p.axis, len(b0)) if len(b0) else 0
        check(p.num_axes >= -1, f"{layer.name}: num_axes must be non-negative, or -1")
        end = len(b0) if p.num_axes == -1 else axis + p.num_axes
        check(end <= len(b0), f"{layer.name}: scale blob's shape extends past bottom[0]'s shape")
        shape = tuple(b0[axis:end])
        return [b0], [shape] + ([shape] if (t == "Scale" and p.bias_term) else [])
    if t == "PReLU":  # prelu_layer.cpp: channels() is a legacy (<= 4-D) accessor; a shared slope is a 0-axis blob
        check(2 <= len(b0) <= 4, f"{layer.name}: PReLU needs 2 to 4 axes (legacy channels() accessor)")
        return [b0], [() if layer.prelu_param.channel_shared else (b0[1],)]
    if t in ("ReLU", "Sigmoid", "TanH", "ELU", "AbsVal", "Power", "Exp", "Log", "Dropout"):
        return [b0], []
    if t == "Eltwise":
        check(
            all(tuple(b) == tuple(b0) for b in bottoms), f"{layer.name}: bottoms must have the same shape ({bottoms})"
        )
        p = layer.eltwise_param
        check(len(p.coeff) in (0, len(bottoms)), f"{layer.name}: Eltwise needs one coeff per bottom")
        check(len(p.coeff) == 0 or p.operation == 1, f"{layer.name}: coeff is for SUM only")
        return [b0], []
    if t == "Concat":
        axis = canonical_axis(layer.concat_param.axis, len(b0))
        for b in bottoms:
            check(
                len(b) == len(b0) and all(b[i] == b0[i] for i in range(len(b0)) if i != axis),
                f"{layer.name}: concat bottoms differ off the axis: {bottoms}",
            )
        top = list(b0)
        top[axis] = sum(b[axis] for b in bottoms)
        return [tuple(top)], []
    if t == "Slice":
        p = layer.slice_param
        axis = canonical_axis(p.axis, len(b0))
        length = b0[axis]
        if p.slice_point:
            check(len(p.slice_point) == ntop - 1, f"{layer.name}: need one slice point per top minus one")
            points = [0, *[int(s) for s in p.slice_point], length]
            check(
                all(a < b for a, b in pairwise(points)),
                f"{layer.name}: slice points must be increasing and inside the axis",
            )
        else:
            check(
                length % ntop == 0,
                f"{layer.name}: Number of top blobs ({ntop}) should evenly divide input slice axis ({length})",
            )
            points = [length // ntop * i for i in range(ntop + 1)]
        tops = []
        for a, b in pairwise(points):
            s = list(b0)
            s[axis] = b - a
            tops.append(tuple(s))
        return tops, []
    if t == "Split":
        return [b0] * ntop, []
    if t == "Silence":
        return [], []
    if t == "Crop":
        p = layer.crop_param
        ref = bottoms[1]
        axis = canonical_axis(p.axis, len(b0))
        check(
            len(p.offset) in (0, 1, len(b0) - axis),
            f"{layer.name}: number of offset values specified must be equal to the number of dimensions following axis",
        )
        top = list(b0)
        for i in range(axis, len(b0)):
            off = 0 if not p.offset else p.offset[0 if len(p.offset) == 1 else i - axis]
            check(b0[i] - off >= ref[i], f"{layer.name}: invalid crop")
            top[i] = ref[i]
        return [tuple(top)], []
    if t == "Reshape":
        return [_reshape_shape(layer, b0)], []
    if t == "Flatten":
        p = layer.flatten_param
        start, end = canonical_axis(p.axis, len(b0)), canonical_axis(p.end_axis, len(b0))
        return [(*b0[:start], element_count(b0, start, end + 1), *b0[end + 1 :])], []
    if t == "Softmax":
        canonical_axis(layer.softmax_param.axis, len(b0))
        return [b0], []
    if t == "Tile":
        p = layer.tile_param
        axis = canonical_axis(p.axis, len(b0))
        check(p.tiles > 0, f"{layer.name}: Number of tiles must be positive.")
        top = list(b0)
        top[axis] *= p.tiles
        return [tuple(top)], []
    if t == "Reduction":  # reduction_layer.cpp: every axis from `axis` on is reduced
        axis = canonical_axis(layer.reduction_param.axis, len(b0))
        return [tuple(b0[:axis])], []
    if t == "DummyData":
        shapes = [tuple(int(d) for d in s.dim) for s in layer.dummy_data_param.shape]
        check(len(shapes) in (1, ntop), f"{layer.name}: DummyData needs 1 or one shape per top")
        return [shapes[i if len(shapes) > 1 else 0] for i in range(ntop)], []
    if t == "Parameter":
        shape = tuple(int(d) for d in layer.parameter_param.shape.dim)
        return [shape], [shape]
    if t == "Interp":
        top, _ = interp_sizes(layer, b0)
        return [top], []
    if t == "Upsample":
        s = layer.upsample_param.scale
        top = list(b0)
        top[-1] *= s
        top[-2] *= s
        return [tuple(top)], []
    raise CaffeReferenceError(f"{layer.name}: layer type {t!r} is not implemented by the reference evaluator")


def _reshape_shape(layer, bottom: tuple[int, ...]) -> tuple[int, ...]:
    """Top shape of a Reshape layer (``reshape_layer.cpp``): 0 copies the bottom axis, -1 is inferred."""
    p = layer.reshape_param
    rank = len(bottom)
    start = p.axis if p.axis >= 0 else rank + p.axis + 1
    check(0 <= start <= rank, f"{layer.name}: axis out of range")
    end = rank if p.num_axes == -1 else start + p.num_axes
    check(p.num_axes >= -1 and end <= rank, f"{layer.name}: num_axes out of range")
    dims = [int(d) for d in p.shape.dim]
    top = list(bottom[:start]) + dims + list(bottom[end:])
    infer = [i for i, d in enumerate(dims) if d == -1]
    check(len(infer) <= 1, f"{layer.name}: new shape contains multiple -1 dims")
    for i, d in enumerate(dims):
        if d == 0:
            check(
                start + i < rank,
                f"{layer.name}: new shape contains a 0, but there was no corresponding bottom axis to copy",
            )
            top[start + i] = bottom[start + i]
    if infer:
        known = element_count([d for k, d in enumerate(top) if k != start + infer[0]])
        check(known > 0 and element_count(bottom) % known == 0, f"{layer.name}: cannot infer the -1 dimension")
        top[start + infer[0]] = element_count(bottom) // known
    check(
        element_count(top) == element_count(bottom),
        f"{layer.name}: output count {element_count(top)} must match input count {element_count(bottom)}",
    )
    return tuple(top)
