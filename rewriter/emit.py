"""ONNX node builders for the exact lowerings (opset-aware). Each returns nodes + constant tensors that
read tensor ``x`` and write tensor ``y``; the weights come from the semantics core."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper as oh
from onnx import numpy_helper

from rewriter.lowering import ConvTransposeForm
from rewriter.sampling import AxisWeights


@dataclass
class Subgraph:
    """Nodes and constants replacing one Resize: reads ``x``, writes ``y``."""

    x: str
    y: str
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    tensors: list[onnx.TensorProto] = field(default_factory=list)
    description: str = ""

    def const(self, name: str, value: np.ndarray) -> str:
        self.tensors.append(numpy_helper.from_array(np.asarray(value), name))
        return name


def _np_dtype(elem_type: int) -> np.dtype:
    return onnx.helper.tensor_dtype_to_np_dtype(elem_type)


def edge_pad(sub: Subgraph, x: str, out: str, prefix: str, rank: int, before: dict[int, int], after: dict[int, int], opset: int, use_slices: bool) -> str:
    """Replicate borders. ``use_slices`` builds it from Slice + Concat (BVLC Caffe has no Pad layer)."""
    if not any(before.values()) and not any(after.values()):
        return x
    if not use_slices:
        pads = [before.get(a, 0) for a in range(rank)] + [after.get(a, 0) for a in range(rank)]
        if opset >= 11:
            sub.nodes.append(oh.make_node("Pad", [x, sub.const(f"{prefix}_pads", np.array(pads, dtype=np.int64))], [out], name=f"{prefix}/pad", mode="edge"))
        else:
            sub.nodes.append(oh.make_node("Pad", [x], [out], name=f"{prefix}/pad", mode="edge", pads=pads))
        return out
    current = x
    for axis in sorted(set(before) | set(after)):
        b, a = before.get(axis, 0), after.get(axis, 0)
        if not b and not a:
            continue
        parts = []
        if b:
            first = _slice(sub, current, f"{prefix}_first{axis}", prefix, axis, 0, 1, opset)
            parts += [first] * b
        parts.append(current)
        if a:
            last = _slice(sub, current, f"{prefix}_last{axis}", prefix, axis, -1, np.iinfo(np.int64).max, opset)
            parts += [last] * a
        nxt = out if axis == max(set(before) | set(after)) else f"{prefix}_edge{axis}"
        sub.nodes.append(oh.make_node("Concat", parts, [nxt], name=f"{prefix}/concat{axis}", axis=axis))
        current = nxt
    return current


def _slice(sub: Subgraph, x: str, out: str, prefix: str, axis: int, start: int, end: int, opset: int) -> str:
    if opset >= 10:
        names = [
            sub.const(f"{out}_starts", np.array([start], dtype=np.int64)),
            sub.const(f"{out}_ends", np.array([end], dtype=np.int64)),
            sub.const(f"{out}_axes", np.array([axis], dtype=np.int64)),
        ]
        sub.nodes.append(oh.make_node("Slice", [x, *names], [out], name=f"{prefix}/{out.rsplit('_', 1)[-1]}"))
    else:
        sub.nodes.append(oh.make_node("Slice", [x], [out], name=f"{prefix}/{out.rsplit('_', 1)[-1]}", starts=[start], ends=[end], axes=[axis]))
    return out


def conv_transpose_lowering(
    x: str,
    y: str,
    prefix: str,
    rank: int,
    channels: int,
    forms: dict[int, ConvTransposeForm],
    elem_type: int,
    opset: int,
    use_slices: bool,
    separable: bool = False,
) -> Subgraph:
    """Edge replication + grouped ConvTranspose (group = channels) over the trailing spatial axes.

    ``separable``: one 1-D ConvTranspose per resized axis instead of one N-D kernel (the weights are an
    outer product, so both are the same function; which is faster depends on the runtime and shapes).
    """
    sub = Subgraph(x, y)
    spatial = list(range(2, rank))
    before = {a: forms[a].pad_before for a in forms}
    after = {a: forms[a].pad_after for a in forms}
    current = edge_pad(sub, x, f"{prefix}_padded", prefix, rank, before, after, opset, use_slices)
    groups = [{a: forms[a]} for a in sorted(forms)] if separable and len(forms) > 1 else [forms]
    for k, group in enumerate(groups):
        out = y if k == len(groups) - 1 else f"{prefix}_deconv{k}"
        _grouped_conv_transpose(sub, current, out, f"{prefix}/deconv" + (str(k) if len(groups) > 1 else ""), spatial, channels, group, elem_type)
        current = out
    sub.description = ("separable " if len(groups) > 1 else "") + "ConvTranspose(" + ", ".join(
        f"axis {a}: K={len(f.kernel)} stride={f.stride} edge={f.pad_before}/{f.pad_after} crop={f.crop_begin}/{f.crop_end}" for a, f in forms.items()
    ) + f", group={channels})"
    return sub


def _grouped_conv_transpose(sub: Subgraph, x: str, y: str, name: str, spatial: list[int], channels: int, forms: dict[int, ConvTransposeForm], elem_type: int) -> None:
    kernels = [np.array(forms[a].kernel) if a in forms else np.ones(1) for a in spatial]
    weight = kernels[0]
    for k in kernels[1:]:
        weight = np.multiply.outer(weight, k)
    weight = np.broadcast_to(weight, (channels, 1, *weight.shape)).astype(_np_dtype(elem_type))
    strides = [forms[a].stride if a in forms else 1 for a in spatial]
    pads = [forms[a].crop_begin if a in forms else 0 for a in spatial] + [forms[a].crop_end if a in forms else 0 for a in spatial]
    w = sub.const(f"{name.replace('/', '_')}_kernel", weight)
    sub.nodes.append(oh.make_node("ConvTranspose", [x, w], [y], name=name, group=channels, strides=strides, pads=pads, kernel_shape=list(weight.shape[2:])))


def matmul_lowering(x: str, y: str, prefix: str, rank: int, weights: dict[int, AxisWeights], extrapolation_value: float, elem_type: int,
                    right_only: bool = False) -> Subgraph:
    """Y = X x_a W_a for each resized axis a, as MatMul (with Transposes for axes not among the last two).

    ``right_only``: every axis but the last is moved last and multiplied from the right (one MatMul pattern,
    for converters that misread a constant on the left).
    """
    sub = Subgraph(x, y)
    dtype = _np_dtype(elem_type)
    current = x
    for k, (axis, w) in enumerate(sorted(weights.items())):
        out = y if k == len(weights) - 1 and not any(ww.outside.any() for ww in weights.values()) else f"{prefix}_mm{axis}"
        matrix = w.matrix.astype(dtype)
        if axis == rank - 1:
            sub.nodes.append(oh.make_node("MatMul", [current, sub.const(f"{prefix}_A{axis}T", np.ascontiguousarray(matrix.T))], [out], name=f"{prefix}/matmul{axis}"))
        elif axis == rank - 2 and not right_only:
            sub.nodes.append(oh.make_node("MatMul", [sub.const(f"{prefix}_A{axis}", matrix), current], [out], name=f"{prefix}/matmul{axis}"))
        else:
            perm = list(range(rank))
            perm[axis], perm[rank - 1] = perm[rank - 1], perm[axis]
            t_in, t_mm = f"{prefix}_t{axis}", f"{prefix}_tm{axis}"
            sub.nodes.append(oh.make_node("Transpose", [current], [t_in], name=f"{prefix}/transpose{axis}", perm=perm))
            sub.nodes.append(oh.make_node("MatMul", [t_in, sub.const(f"{prefix}_A{axis}T", np.ascontiguousarray(matrix.T))], [t_mm], name=f"{prefix}/matmul{axis}"))
            sub.nodes.append(oh.make_node("Transpose", [t_mm], [out], name=f"{prefix}/untranspose{axis}", perm=perm))
        current = out
    if any(w.outside.any() for w in weights.values()):
        # tf_crop_and_resize extrapolation: a constant mask over the resized axes, broadcast over the others.
        shape = [1] * rank
        keep = np.ones([1] * rank, dtype=bool)
        for axis, w in weights.items():
            shape[axis] = w.shape[0]
            keep = keep & (~w.outside).reshape([-1 if a == axis else 1 for a in range(rank)])
        keep = np.broadcast_to(keep, shape)
        fill = np.where(keep, 0.0, extrapolation_value).astype(dtype)
        masked = f"{prefix}_masked"
        sub.nodes.append(oh.make_node("Mul", [current, sub.const(f"{prefix}_keep", keep.astype(dtype))], [masked], name=f"{prefix}/mask"))
        sub.nodes.append(oh.make_node("Add", [masked, sub.const(f"{prefix}_fill", fill)], [y], name=f"{prefix}/fill"))
    sub.description = "MatMul(" + ", ".join(f"axis {a}: {w.shape[0]}x{w.shape[1]}" for a, w in sorted(weights.items())) + ")"
    return sub


def gather_lowering(x: str, y: str, prefix: str, weights: dict[int, AxisWeights]) -> Subgraph:
    """Nearest neighbour on any data type: one Gather of constant indices per resized axis."""
    sub = Subgraph(x, y)
    current = x
    items = sorted(weights.items())
    for k, (axis, w) in enumerate(items):
        out = y if k == len(items) - 1 else f"{prefix}_g{axis}"
        idx = np.argmax(w.matrix, axis=1).astype(np.int64)
        sub.nodes.append(oh.make_node("Gather", [current, sub.const(f"{prefix}_idx{axis}", idx)], [out], name=f"{prefix}/gather{axis}", axis=axis))
        current = out
    sub.description = "Gather(" + ", ".join(f"axis {a}" for a, _ in items) + ")"
    return sub


def is_one_hot(w: AxisWeights) -> bool:
    return not w.outside.any() and bool(np.all((w.matrix == 0) | (w.matrix == 1))) and bool(np.all(w.matrix.sum(axis=1) == 1))
