"""Proof of a lowering: the per-axis matrices an emitted subgraph applies, rebuilt from its nodes and constants.

Every lowered form rewriter emits is separable and linear in its input: edge replication (Pad or Slice +
Concat), grouped ConvTranspose with a separable kernel, Gather of constant indices, MatMul with a constant
matrix, Transpose, and the constant mask + fill of an extrapolating crop. ``subgraph_weights`` interprets
those nodes symbolically (each tensor is a list of per-axis matrices from the input, plus the outputs that
take the fill value), reading only what was emitted, so a wrong kernel, crop, index table or matrix shows up
as a weight difference against the original node, independently of how the form was derived and of any
numeric run. Anything outside that vocabulary is a proof failure, never a pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from rewriter.emit import Subgraph
from rewriter.resize import ResizeSemantics
from rewriter.sampling import WEIGHT_ATOL, AxisWeights, conv_transpose_matrix, edge_pad_matrix


class ProofError(Exception):
    """A rewrite whose weights differ from the original node's (the step is rejected)."""


@dataclass
class _Linear:
    """A tensor as per-axis maps from the subgraph input: ``y = x x_0 M_0 x_1 M_1 ...`` (separable)."""

    axes: list[AxisWeights]
    fill: float | None = None  # value of the outputs marked ``outside`` (an extrapolating crop)


def _attrs(node: onnx.NodeProto) -> dict:
    out = {}
    for a in node.attribute:
        v = onnx.helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def subgraph_weights(sub: Subgraph, input_shape: tuple[int, ...]) -> _Linear:
    """The separable linear map from ``sub.x`` to ``sub.y`` (ProofError if the subgraph is not one)."""
    x, y = sub.x, sub.y
    consts = {t.name: numpy_helper.to_array(t).astype(np.float64) if t.data_type != onnx.TensorProto.INT64 else numpy_helper.to_array(t) for t in sub.tensors}
    values: dict[str, _Linear] = {x: _Linear([AxisWeights(np.eye(n)) for n in input_shape])}
    for node in sub.nodes:
        args = [values.get(i) for i in node.input]
        handler = _OPS.get(node.op_type)
        if handler is None or node.domain not in ("", "ai.onnx") or args[0] is None and node.op_type != "MatMul":
            raise ProofError(f"cannot prove {node.op_type} node {node.name!r} (not a lowering op rewriter emits)")
        values[node.output[0]] = handler(node, args, [consts.get(i) for i in node.input], _attrs(node))
    if y not in values:
        raise ProofError(f"the emitted subgraph does not produce {y!r}")
    return values[y]


def _rows(t: _Linear, axis: int, pick: np.ndarray | slice) -> _Linear:
    axes = list(t.axes)
    w = axes[axis]
    axes[axis] = AxisWeights(w.matrix[pick], w.outside[pick])
    return _Linear(axes, t.fill)


def _compose(t: _Linear, axis: int, matrix: np.ndarray) -> _Linear:
    axes = list(t.axes)
    w = axes[axis]
    outside = (np.abs(matrix) @ w.outside.astype(float)) > 0
    axes[axis] = AxisWeights(matrix @ w.matrix, outside)
    return _Linear(axes, t.fill)


def _pad(node, args, consts, attrs) -> _Linear:
    t = args[0]
    if attrs.get("mode", "constant") != "edge":
        raise ProofError(f"Pad node {node.name!r} is not edge replication")
    pads = attrs["pads"] if "pads" in attrs else consts[1]
    rank = len(t.axes)
    pads = [int(p) for p in np.asarray(pads).ravel()]
    for a in range(rank):
        before, after = pads[a], pads[rank + a]
        if before or after:
            t = _compose(t, a, edge_pad_matrix(t.axes[a].shape[0], before, after))
    return t


def _slice(node, args, consts, attrs) -> _Linear:
    t = args[0]
    if "starts" in attrs:
        starts, ends, axes, steps = attrs["starts"], attrs["ends"], attrs.get("axes"), None
    else:
        starts, ends = consts[1], consts[2]
        axes = consts[3] if len(consts) > 3 and consts[3] is not None else None
        steps = consts[4] if len(consts) > 4 and consts[4] is not None else None
    starts, ends = np.asarray(starts).ravel(), np.asarray(ends).ravel()
    axes = np.arange(len(starts)) if axes is None else np.asarray(axes).ravel()
    if steps is not None and np.any(np.asarray(steps) != 1):
        raise ProofError(f"Slice node {node.name!r} has steps")
    for start, end, axis in zip(starts, ends, axes):
        axis = int(axis) % len(t.axes)
        t = _rows(t, axis, slice(*slice(int(start), int(end)).indices(t.axes[axis].shape[0])))
    return t


def _concat(node, args, consts, attrs) -> _Linear:
    axis = int(attrs["axis"]) % len(args[0].axes)
    for other in args[1:]:
        for a in range(len(other.axes)):
            if a != axis and not other.axes[a].same_as(args[0].axes[a], atol=0.0):
                raise ProofError(f"Concat node {node.name!r} joins tensors that differ on axis {a}")
    axes = list(args[0].axes)
    axes[axis] = AxisWeights(np.concatenate([t.axes[axis].matrix for t in args]), np.concatenate([t.axes[axis].outside for t in args]))
    return _Linear(axes, args[0].fill)


def _separable_kernel(kernel: np.ndarray) -> list[np.ndarray]:
    """Per-axis 1-D kernels whose outer product is ``kernel`` (ProofError if it is not rank one)."""
    peak = np.unravel_index(np.argmax(np.abs(kernel)), kernel.shape)
    factors = []
    for a in range(kernel.ndim):
        index = list(peak)
        index[a] = slice(None)  # type: ignore[call-overload]
        factors.append(kernel[tuple(index)] / (kernel[peak] if a else 1.0))
    rebuilt = factors[0]
    for f in factors[1:]:
        rebuilt = np.multiply.outer(rebuilt, f)
    if not np.allclose(rebuilt, kernel, atol=WEIGHT_ATOL, rtol=0):
        raise ProofError("the ConvTranspose kernel is not separable")
    return factors


def _conv_transpose(node, args, consts, attrs) -> _Linear:
    t, weight = args[0], consts[1]
    rank = len(t.axes)
    channels = t.axes[1].shape[0]
    if weight is None or len(node.input) > 2 and node.input[2]:
        raise ProofError(f"ConvTranspose node {node.name!r} needs a constant kernel and no bias")
    if int(attrs.get("group", 1)) != channels or weight.shape[:2] != (channels, 1) or not np.all(weight == weight[:1]):
        raise ProofError(f"ConvTranspose node {node.name!r} is not one kernel applied per channel")
    spatial = rank - 2
    if any(int(d) != 1 for d in attrs.get("dilations", [1] * spatial)) or any(int(p) for p in attrs.get("output_padding", [])) or attrs.get("auto_pad", "NOTSET") != "NOTSET":
        raise ProofError(f"ConvTranspose node {node.name!r} uses dilations, output_padding or auto_pad")
    strides = [int(s) for s in attrs.get("strides", [1] * spatial)]
    pads = [int(p) for p in attrs.get("pads", [0] * (2 * spatial))]
    for k, kernel in enumerate(_separable_kernel(weight[0, 0])):
        axis = 2 + k
        t = _compose(t, axis, conv_transpose_matrix(kernel, strides[k], pads[k], pads[spatial + k], t.axes[axis].shape[0]))
    return t


def _gather(node, args, consts, attrs) -> _Linear:
    t, indices = args[0], consts[1]
    if indices is None or indices.ndim != 1:
        raise ProofError(f"Gather node {node.name!r} needs a constant 1-D index table")
    axis = int(attrs.get("axis", 0)) % len(t.axes)
    n = t.axes[axis].shape[0]
    if np.any(indices < -n) or np.any(indices >= n):
        raise ProofError(f"Gather node {node.name!r} indexes outside the axis")
    return _rows(t, axis, np.asarray(indices, dtype=np.int64) % n)


def _matmul(node, args, consts, attrs) -> _Linear:
    if args[0] is not None and consts[1] is not None and consts[1].ndim == 2:  # X . B: the last axis
        t = args[0]
        return _compose(t, len(t.axes) - 1, consts[1].T)
    if consts[0] is not None and consts[0].ndim == 2 and args[1] is not None:  # A . X: the second last axis
        t = args[1]
        return _compose(t, len(t.axes) - 2, consts[0])
    raise ProofError(f"MatMul node {node.name!r} is not a constant matrix on one axis")


def _transpose(node, args, consts, attrs) -> _Linear:
    t = args[0]
    perm = attrs.get("perm", list(reversed(range(len(t.axes)))))
    return _Linear([t.axes[p] for p in perm], t.fill)


def _identity(node, args, consts, attrs) -> _Linear:
    return args[0]


def _mask(node, args, consts, attrs) -> _Linear:
    """Mul by a constant 0/1 mask that is a product of per-axis masks: those outputs become ``outside``."""
    t, keep = args[0], consts[1]
    if keep is None or not np.all((keep == 0) | (keep == 1)):
        raise ProofError(f"Mul node {node.name!r} is not a constant 0/1 mask")
    rank = len(t.axes)
    keep = np.broadcast_to(keep, [w.shape[0] for w in t.axes]).astype(bool)
    lines = [keep.any(axis=tuple(i for i in range(rank) if i != a)) for a in range(rank)]
    rebuilt = np.ones([1] * rank, dtype=bool)
    for a, line in enumerate(lines):
        rebuilt = rebuilt & line.reshape([-1 if i == a else 1 for i in range(rank)])
    if not np.array_equal(np.broadcast_to(rebuilt, keep.shape), keep):
        raise ProofError(f"Mul node {node.name!r}: the mask is not a product of per-axis masks")
    axes = [AxisWeights(np.where(line[:, None], w.matrix, 0.0), w.outside | ~line) for w, line in zip(t.axes, lines)]
    return _Linear(axes, t.fill)


def _fill(node, args, consts, attrs) -> _Linear:
    """Add a constant that is zero on kept outputs and one value on the masked ones."""
    t, add = args[0], consts[1]
    if add is None:
        raise ProofError(f"Add node {node.name!r} does not add a constant")
    outside = np.zeros([w.shape[0] for w in t.axes], dtype=bool)
    for a, w in enumerate(t.axes):
        outside |= w.outside.reshape([-1 if i == a else 1 for i in range(len(t.axes))])
    add = np.broadcast_to(add, outside.shape)
    values = np.unique(add[outside])
    if np.any(add[~outside] != 0) or len(values) > 1:
        raise ProofError(f"Add node {node.name!r} is not a fill of the masked outputs")
    return _Linear(t.axes, float(values[0]) if len(values) else t.fill)


_OPS = {
    "Pad": _pad,
    "Slice": _slice,
    "Concat": _concat,
    "ConvTranspose": _conv_transpose,
    "Gather": _gather,
    "MatMul": _matmul,
    "Transpose": _transpose,
    "Identity": _identity,
    "Mul": _mask,
    "Add": _fill,
}


def lowering_error(sem: ResizeSemantics, sub: Subgraph, input_shape: tuple[int, ...]) -> float:
    """Worst-case output difference (inputs in [-1, 1]) between the node and the emitted subgraph."""
    linear = subgraph_weights(sub, input_shape)
    rebuilt = [w.shape[0] for w in linear.axes]
    wanted = [d if isinstance(d, int) else input_shape[a] for a, d in enumerate(sem.output_shape)]
    if rebuilt != wanted:
        raise ProofError(f"the emitted subgraph gives shape {rebuilt}, the node {wanted}")
    if linear.fill is not None and any(w.outside.any() for w in linear.axes) and linear.fill != np.float64(sem.extrapolation_value):
        raise ProofError(f"the emitted subgraph fills with {linear.fill}, the node with {sem.extrapolation_value}")
    mine = [sem.axis_weights(a) if a in sem.resized_axes else AxisWeights(np.eye(input_shape[a])) for a in range(len(linear.axes))]
    # A separable map fixes its per-axis factors only up to gains whose product is 1 (a 2-D kernel can be
    # split as (c k_h) x (k_w / c)): give each rebuilt axis the original's total weight, then the gains
    # left over must multiply to one.
    gains = [float(m.matrix.sum() / t.matrix.sum()) if t.matrix.sum() else 1.0 for m, t in zip(mine, linear.axes)]
    worst = abs(float(np.prod(gains)) - 1.0)
    for m, t, gain in zip(mine, linear.axes, gains):
        worst = max(worst, m.difference(AxisWeights(t.matrix * gain, t.outside)))
    return worst


def weight_tolerance(elem_type: int) -> float:
    """Weights stored in a narrow float type are exact up to its rounding."""
    return max(WEIGHT_ATOL, _EPSILON.get(elem_type, 0.0))


_EPSILON = {onnx.TensorProto.FLOAT16: 2.0**-10, onnx.TensorProto.BFLOAT16: 2.0**-7}
