"""Caffe translations of ONNX ops that move data without arithmetic.

Identity, Dropout, Cast to float and Transpose only relabel a blob (a Transpose changes the tensor's layout,
see ``rewriter.caffe.translator``). Reshape-like ops need the ONNX layout. Concat, Split, Slice and Tile
work along an axis in any layout; Expand is Tile along its size-1 axes, and Gather with constant indices
is one Slice layer cut at the runs of consecutive indices plus a Concat of the pieces. Slices of one tensor
along one axis share one Slice layer, and a Concat of a sliced tensor takes its pieces, so edge replication
(first row, x, last row) leaves no unused top.
Pad is built from DummyData (constant) or edge Slices, and Concat.
"""

from __future__ import annotations

import numpy as np
import onnx

from rewriter.caffe.net import shape_msg
from rewriter.caffe.ops import CAFFE_OPS
from rewriter.caffe.translator import Problem, Translator, Value, is_identity
from rewriter.exporting.onnx_readers import attributes, padding, slice_axes


def _identity_refusal(node: onnx.NodeProto, t: Translator) -> str | None:
    if node.op_type == "Dropout" and len(node.output) > 1 and node.output[1] and node.output[1] in t.g.consumers:
        return "its mask output is used"
    if node.op_type == "Cast" and attributes(node).get("to") != onnx.TensorProto.FLOAT:
        return "Caffe blobs are float32 only"
    return None


@CAFFE_OPS.register(
    "Identity", "Dropout", "Cast", becomes="nothing (the same blob; Cast to float only)", precondition=_identity_refusal
)
def identity(t: Translator, node: onnx.NodeProto) -> None:
    t.alias(node.output[0], node.input[0])


@CAFFE_OPS.register("Transpose", becomes="nothing: a layout change (a real permutation reaching a layer is refused)")
def transpose(t: Translator, node: onnx.NodeProto) -> None:
    v = t.val(node.input[0])
    rank = len(v.perm)
    p = list(attributes(node).get("perm", list(range(rank))[::-1]))
    inv = [0] * rank
    for i, a in enumerate(p):
        inv[a] = i
    new = tuple(inv[q] for q in v.perm)
    via = v.via + (f"Transpose {node.name or node.output[0]}",)
    t.set(node.output[0], v.blob, new, via if not is_identity(new) else ())


@CAFFE_OPS.register("Reshape", "Flatten", "Squeeze", "Unsqueeze", becomes="Reshape / Flatten (static shape)")
def reshape_like(t: Translator, node: onnx.NodeProto) -> None:
    out_shape = t.shape(node.output[0])
    x = t.data(node.input[0])
    if t.net.shapes[x] == tuple(out_shape):
        t.set(node.output[0], x)
        return
    if node.op_type == "Flatten" and attributes(node).get("axis", 1) == 1 and len(t.net.shapes[x]) >= 2:
        (top,) = t.net.add("Flatten", [x], [node.output[0]], t.lname())
    else:
        (top,) = t.net.add("Reshape", [x], [node.output[0]], t.lname(), {"shape": shape_msg(out_shape)})
    t.set(node.output[0], top)


@CAFFE_OPS.register("Concat", becomes="Concat (a sliced input contributes its Slice pieces)")
def concat(t: Translator, node: onnx.NodeProto) -> None:
    names = [n for n in node.input if n]
    rank = len(t.shape(node.output[0]))
    axis = attributes(node)["axis"]
    axis = axis + rank if axis < 0 else axis
    names = [n for n in names if t.shape(n)[axis] > 0]
    if len(names) == 1:
        t.alias(node.output[0], names[0])
        return
    blobs, perm = t.same_layout(names)
    caffe_axis = perm.index(axis)
    # A bottom that a Slice layer cut along this axis is the concatenation of its pieces: Concat(first, x, last)
    # of the edge replication becomes Concat(first, first, middle, last, last) and no piece is left unused.
    expanded = [piece for b in blobs for piece in t.net.pieces.get(b, {}).get(caffe_axis, [b])]
    (top,) = t.net.add("Concat", expanded, [node.output[0]], t.lname(), {"axis": caffe_axis})
    t.set(node.output[0], top, perm)


@CAFFE_OPS.register("Split", becomes="Slice")
def split(t: Translator, node: onnx.NodeProto) -> None:
    v = t.val(node.input[0])
    shape = t.shape(node.input[0])
    rank = len(shape)
    axis = attributes(node).get("axis", 0)
    axis = axis + rank if axis < 0 else axis
    sizes = [t.shape(o)[axis] for o in node.output]
    if len(sizes) == 1:
        t.alias(node.output[0], node.input[0])
        return
    points = list(np.cumsum(sizes)[:-1])
    tops = [o if o else t.net.blob_name(f"{v.blob}/split{k}") for k, o in enumerate(node.output)]
    tops = t.net.add(
        "Slice", [v.blob], tops, t.lname(), {"axis": v.perm.index(axis), "slice_point": [int(p) for p in points]}
    )
    for o, top in zip(node.output, tops):
        if o:
            t.set(o, top, v.perm, v.via)


# ---------------------------------------------------------------- Slice


def slice_spec(t: Translator, node: onnx.NodeProto) -> list[tuple[int, int, int]]:
    """Normalized (axis, start, stop) of a static step-1 ONNX Slice."""
    shape = t.shape(node.input[0])
    spec = []
    for ax in slice_axes(node, t.g.opset, len(shape), t.const_input(node)):
        if ax.step != 1:
            raise Problem(f"step {ax.step}: Caffe's Slice layer only takes contiguous ranges")
        start, end, _ = ax.bounds(shape[ax.axis])
        if end <= start:
            raise Problem("empty slice")
        spec.append((ax.axis, start, end))
    return spec


def _plan_slice_groups(t: Translator) -> dict[str, list]:
    """ONNX Slice output -> every one-axis Slice of the same tensor along the same axis (groups of two or more)."""
    groups: dict[tuple[str, int], list] = {}
    for node in t.g.nodes:
        if node.op_type != "Slice" or node.domain not in ("", "ai.onnx") or t.is_const(node.input[0]):
            continue
        try:
            spec = slice_spec(t, node)
        except Problem:
            continue
        if len(spec) == 1:
            axis, start, stop = spec[0]
            if (start, stop) != (0, t.g.shapes[node.input[0]][axis]):
                groups.setdefault((node.input[0], axis), []).append((node, start, stop))
    return {node.output[0]: members for members in groups.values() if len(members) > 1 for node, _, _ in members}


def _emit_slice_group(t: Translator, members) -> None:
    """Several Slices of one tensor along one axis (edge replication takes first and last rows): one
    Caffe Slice layer whose pieces are the requested ranges (the rest is silenced)."""
    first = members[0][0]
    v = t.val(first.input[0])
    axis_onnx = slice_spec(t, first)[0][0]
    axis = v.perm.index(axis_onnx)
    length = t.net.shapes[v.blob][axis]
    points = sorted({p for _, a, b in members for p in (a, b) if 0 < p < length})
    pieces = list(zip([0, *points], [*points, length]))
    owner: dict[int, str] = {}
    single = []
    for node, a, b in members:
        if (a, b) in pieces:
            owner.setdefault(pieces.index((a, b)), node.output[0])
        else:
            single.append((node, a, b))
    tops = [owner.get(k) or t.net.blob_name(f"{v.blob}/piece{k}") for k in range(len(pieces))]
    tops = t.net.add(
        "Slice", [v.blob], tops, f"{first.name or first.output[0]}/slices", {"axis": axis, "slice_point": points}
    )
    for node, a, b in members:
        if (a, b) in pieces:
            top = tops[pieces.index((a, b))]
            t.vals[node.output[0]] = Value(top, v.perm, v.via)
            t.slice_done[node.output[0]] = top
    for node, a, b in single:
        top = t.slice_range(v.blob, axis, a, b, top=node.output[0])
        t.vals[node.output[0]] = Value(top, v.perm, v.via)
        t.slice_done[node.output[0]] = top


@CAFFE_OPS.register("Slice", becomes="Slice (step 1; slices of one tensor along one axis share one layer)")
def slice_(t: Translator, node: onnx.NodeProto) -> None:
    if t.slice_groups is None:
        t.slice_groups = _plan_slice_groups(t)
    if node.output[0] in t.slice_groups and node.output[0] not in t.slice_done:
        _emit_slice_group(t, t.slice_groups[node.output[0]])
    if node.output[0] in t.slice_done:
        v = t.val(node.input[0])
        t.set(node.output[0], t.slice_done[node.output[0]], v.perm, v.via)
        return
    v = t.val(node.input[0])
    blob = v.blob
    spec = slice_spec(t, node)
    for k, (axis, start, stop) in enumerate(spec):
        last = k == len(spec) - 1
        blob = t.slice_range(
            blob, v.perm.index(axis), start, stop, top=node.output[0] if last else None, hint=f"slice{axis}_"
        )
    if blob == v.blob:
        t.alias(node.output[0], node.input[0])
        return
    t.set(node.output[0], blob, v.perm, v.via)


# ---------------------------------------------------------------- Tile, Pad


@CAFFE_OPS.register("Tile", becomes="Tile (one layer per repeated axis)")
def tile(t: Translator, node: onnx.NodeProto) -> None:
    v = t.val(node.input[0])
    reps = [int(r) for r in t.const(node.input[1]).ravel()]
    blob = v.blob
    axes = [a for a, r in enumerate(reps) if r != 1]
    if any(r < 1 for r in reps):
        raise Problem("repeats must be positive")
    for k, axis in enumerate(axes):
        last = k == len(axes) - 1
        (blob,) = t.net.add(
            "Tile",
            [blob],
            [node.output[0]] if last else 1,
            t.lname(f"tile{axis}") if not last else t.lname(),
            {"axis": v.perm.index(axis), "tiles": reps[axis]},
        )
    if not axes:
        t.alias(node.output[0], node.input[0])
        return
    t.set(node.output[0], blob, v.perm, v.via)


@CAFFE_OPS.register("Expand", becomes="Tile along each broadcast axis (Reshape first when the rank grows)")
def expand(t: Translator, node: onnx.NodeProto) -> None:
    out = node.output[0]
    out_shape = tuple(t.shape(out))
    in_shape = tuple(t.shape(node.input[0]))
    if len(in_shape) == len(out_shape):
        v = t.val(node.input[0])
        blob, perm, via = v.blob, v.perm, v.via
    else:
        full = (1,) * (len(out_shape) - len(in_shape)) + in_shape
        (blob,) = t.net.add("Reshape", [t.data(node.input[0])], 1, t.lname("rank"), {"shape": shape_msg(full)})
        perm, via = tuple(range(len(out_shape))), ()
    axes = [a for a in range(len(out_shape)) if t.net.shapes[blob][perm.index(a)] != out_shape[a]]
    for k, axis in enumerate(axes):
        last = k == len(axes) - 1
        (blob,) = t.net.add(
            "Tile",
            [blob],
            [out] if last else 1,
            t.lname() if last else t.lname(f"tile{axis}"),
            {"axis": perm.index(axis), "tiles": out_shape[axis]},
        )
    if not axes and blob == t.val(node.input[0]).blob:
        t.alias(out, node.input[0])
        return
    t.set(out, blob, perm, via)


def _gather_refusal(node: onnx.NodeProto, t: Translator) -> str | None:
    if not t.is_const(node.input[1]):
        return "indices computed at run time (Caffe has no gather: only constant indices become Slice + Concat)"
    return None


@CAFFE_OPS.register(
    "Gather",
    becomes="Slice at the runs of consecutive constant indices + Concat (Reshape for other index ranks)",
    precondition=_gather_refusal,
)
def gather(t: Translator, node: onnx.NodeProto) -> None:
    shape = t.shape(node.input[0])
    axis = int(attributes(node).get("axis", 0)) % len(shape)
    n = shape[axis]
    indices = np.asarray(t.const(node.input[1])).astype(np.int64)
    if np.any(indices < -n) or np.any(indices >= n):
        raise Problem(f"an index is out of range for an axis of {n}")
    flat = [int(i) % n for i in indices.ravel()]
    out = node.output[0]
    out_shape = tuple(t.shape(out))
    if indices.ndim == 1:
        v = t.val(node.input[0])
        blob, perm, via = v.blob, v.perm, v.via
    else:
        blob, perm, via = t.data(node.input[0]), tuple(range(len(shape))), ()
    runs: list[list[int]] = []  # [start, stop) of consecutive indices
    for i in flat:
        if runs and runs[-1][1] == i:
            runs[-1][1] = i + 1
        else:
            runs.append([i, i + 1])
    if runs == [[0, n]] and indices.ndim == 1:
        t.alias(out, node.input[0])
        return
    caffe_axis = perm.index(axis)
    points = sorted({p for run in runs for p in run if 0 < p < n})
    bounds = [0, *points, n]
    tops = t.net.add("Slice", [blob], len(bounds) - 1, t.lname("pieces"), {"axis": caffe_axis, "slice_point": points})
    chosen = [tops[k] for a, b in runs for k in range(bounds.index(a), bounds.index(b))]
    reshape = indices.ndim != 1
    if len(chosen) == 1 and not reshape:
        t.set(out, chosen[0], perm, via)
        return
    if len(chosen) > 1:
        (blob,) = t.net.add("Concat", chosen, [out] if not reshape else 1, t.lname(), {"axis": caffe_axis})
    else:
        blob = chosen[0]
    if reshape:
        (blob,) = t.net.add("Reshape", [blob], [out], t.lname("reshape"), {"shape": shape_msg(out_shape)})
    t.set(out, blob, perm if not reshape else None, via if not reshape else ())


@CAFFE_OPS.register("Pad", becomes="Concat of constant DummyData (constant mode) or edge Slices (edge mode)")
def pad(t: Translator, node: onnx.NodeProto) -> None:
    rank = len(t.shape(node.input[0]))
    spec = padding(node, t.g.opset, rank, t.const_input(node))
    mode, pads, value = spec.mode, spec.pads, spec.value
    if any(p < 0 for p in pads):
        raise Problem("negative pads")
    if mode not in ("constant", "edge"):
        raise Problem(f"mode {mode!r}: only constant and edge padding can be built from BVLC layers")
    v = t.val(node.input[0])
    blob = v.blob
    active = [ax for ax in range(rank) if pads[ax] or pads[rank + ax]]
    for k, ax in enumerate(active):
        j = v.perm.index(ax)
        before, after = pads[ax], pads[rank + ax]
        parts = []
        length = t.net.shapes[blob][j]
        if mode == "edge":
            first = t.slice_range(blob, j, 0, 1, hint=f"first{ax}_")
            last = t.slice_range(blob, j, length - 1, length, hint=f"last{ax}_")
            parts = [first] * before + [blob] + [last] * after
        else:
            for side, amount in (("before", before), ("after", after)):
                if amount:
                    shape = list(t.net.shapes[blob])
                    shape[j] = amount
                    (fill,) = t.net.add(
                        "DummyData",
                        [],
                        1,
                        t.lname(f"{side}{ax}"),
                        {"shape": [shape_msg(shape)], "data_filler": [{"type": "constant", "value": value}]},
                    )
                    parts.append(fill)
                if side == "before":
                    parts.append(blob)
        last_axis = k == len(active) - 1
        (blob,) = t.net.add(
            "Concat",
            parts,
            [node.output[0]] if last_axis else 1,
            t.lname() if last_axis else t.lname(f"pad{ax}"),
            {"axis": j},
        )
    if not active:
        t.alias(node.output[0], node.input[0])
        return
    t.set(node.output[0], blob, v.perm, v.via)
