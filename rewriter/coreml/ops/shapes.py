"""Core ML translations of ONNX ops that move data: reshapes, Transpose, Concat, Split, Slice, Gather, Pad,
Identity, Constant, Cast (and Shape / Size, which the translator folds to constants).

Shapes are static, so every reshape-like op is one ``reshape`` to the known output shape. Split becomes
one slice per output so that each keeps its ONNX name; a negative-step Slice becomes a gather, and edge or
reflect padding that MIL's pad cannot do becomes a gather of a constant index table.
"""

from __future__ import annotations

import numpy as np
import onnx

from rewriter.coreml.ops import COREML_OPS, NodeContext
from rewriter.coreml.translator import Translator
from rewriter.errors import UnsupportedOpError
from rewriter.exporting.onnx_readers import attribute, padding, slice_axes

_MIL_DTYPES = {
    np.dtype(np.float32): "fp32",
    np.dtype(np.float16): "fp16",
    np.dtype(np.int32): "int32",
    np.dtype(bool): "bool",
}


def _reshape(t: Translator, node: onnx.NodeProto, shape: list[int]):
    x = t.var(node.input[0])
    if list(t.shape(node.input[0])) == list(shape):
        return t.mb.identity(x=x, name=t.out_name(node))
    if not shape:
        return t.mb.squeeze(x=x, name=t.out_name(node))
    return t.mb.reshape(x=x, shape=np.array(shape, dtype=np.int32), name=t.out_name(node))


@COREML_OPS.register("Reshape", becomes="reshape (static shape)")
def reshape(t: Translator, node: onnx.NodeProto):
    xs = t.shape(node.input[0])
    if t.opset < 5:
        target = list(attribute(node, "shape"))
    else:
        target = [int(d) for d in t.need_const(node, 1, "shape")]
    allowzero = bool(attribute(node, "allowzero", 0))
    out = [xs[i] if (d == 0 and not allowzero) else d for i, d in enumerate(target)]
    if -1 in out:
        known = int(np.prod([d for d in out if d != -1]))
        out[out.index(-1)] = int(np.prod(xs)) // known if known else 0
    return _reshape(t, node, out)


@COREML_OPS.register("Flatten", becomes="reshape (static shape)")
def flatten(t: Translator, node: onnx.NodeProto):
    xs = t.shape(node.input[0])
    axis = int(attribute(node, "axis", 1))
    axis = axis + len(xs) if axis < 0 else axis
    return _reshape(t, node, [int(np.prod(xs[:axis])), int(np.prod(xs[axis:]))])


@COREML_OPS.register("Squeeze", becomes="reshape (static shape)")
def squeeze(t: Translator, node: onnx.NodeProto):
    xs = t.shape(node.input[0])
    if t.opset >= 13:
        axes = t.const(node.input[1]) if len(node.input) > 1 and node.input[1] else None
        if len(node.input) > 1 and node.input[1] and axes is None:
            t.need_const(node, 1, "axes")
    else:
        axes = attribute(node, "axes", None)
    if axes is None:
        out = [d for d in xs if d != 1]
    else:
        drop = {int(a) % len(xs) for a in np.atleast_1d(axes)}
        out = [d for i, d in enumerate(xs) if i not in drop]
    return _reshape(t, node, out)


@COREML_OPS.register("Unsqueeze", becomes="reshape (static shape)")
def unsqueeze(t: Translator, node: onnx.NodeProto):
    xs = list(t.shape(node.input[0]))
    if t.opset >= 13:
        axes = [int(a) for a in np.atleast_1d(t.need_const(node, 1, "axes"))]
    else:
        axes = list(attribute(node, "axes"))
    rank = len(xs) + len(axes)
    axes = sorted(a % rank for a in axes)
    out = xs
    for a in axes:
        out.insert(a, 1)
    return _reshape(t, node, out)


@COREML_OPS.register("Transpose", becomes="transpose")
def transpose(t: Translator, node: onnx.NodeProto):
    rank = len(t.shape(node.input[0]))
    perm = list(attribute(node, "perm", list(range(rank))[::-1]))
    return t.mb.transpose(x=t.var(node.input[0]), perm=perm, name=t.out_name(node))


@COREML_OPS.register("Concat", becomes="concat")
def concat(t: Translator, node: onnx.NodeProto):
    vs = t.operands(node)
    axis = int(attribute(node, "axis"))
    if len(vs) == 1:
        return t.mb.identity(x=vs[0], name=t.out_name(node))
    return t.mb.concat(values=vs, axis=axis, name=t.out_name(node))


@COREML_OPS.register("Split", becomes="slice_by_index per output (each keeps its ONNX name)")
def split(t: Translator, node: onnx.NodeProto):
    xs = t.shape(node.input[0])
    axis = int(attribute(node, "axis", 0)) % len(xs)
    n_out = len(node.output)
    if t.opset >= 13 and len(node.input) > 1 and node.input[1]:
        sizes = [int(s) for s in t.need_const(node, 1, "split")]
    elif t.opset < 13 and attribute(node, "split", None) is not None:
        sizes = list(attribute(node, "split"))
    else:
        n = int(attribute(node, "num_outputs", n_out))
        chunk = -(-xs[axis] // n)
        sizes = [min(chunk, xs[axis] - chunk * i) for i in range(n)]
    names = [t.name(o or f"{node.output[0]}_unused{k}") for k, o in enumerate(node.output)]
    if len(sizes) == 1:
        return [t.mb.identity(x=t.var(node.input[0]), name=names[0])]
    # split names its outputs <name>_0, <name>_1...: slice instead so each output keeps its ONNX name.
    # The other axes are taken whole by end_mask, not by their length: no size but the split axis's is baked in.
    outs = []
    start = 0
    x = t.var(node.input[0])
    whole = [k != axis for k in range(len(xs))]
    for k, s in enumerate(sizes):
        begin = [0] * len(xs)
        end = [0] * len(xs)
        begin[axis], end[axis] = start, start + s
        outs.append(t.mb.slice_by_index(x=x, begin=begin, end=end, begin_mask=whole, end_mask=whole, name=names[k]))
        start += s
    return outs


def _gather_each(t: Translator, node: onnx.NodeProto, x, tables: list[tuple[int, np.ndarray]], hint: str):
    """Gather ``x`` along each (axis, index table) in turn; the last gather is named for the node's output."""
    for k, (axis, idx) in enumerate(tables):
        last = k == len(tables) - 1
        name = t.out_name(node) if last else t.tmp_name(node, f"{hint}{axis}")
        x = t.mb.gather(x=x, indices=idx.astype(np.int32), axis=axis, name=name)
    return x


@COREML_OPS.register("Slice", becomes="slice_by_index (gather for negative steps); static starts/ends/axes/steps")
def slice_(t: Translator, node: onnx.NodeProto):
    xs = t.shape(node.input[0])
    rank = len(xs)
    # Axes the node does not slice are taken whole by end_mask, not by their length (no size baked in).
    begin, end, stride, whole = [0] * rank, [0] * rank, [1] * rank, [True] * rank
    gathers = []
    for ax in slice_axes(node, t.opset, rank, t.const_input(node)):
        a = ax.axis
        lo, hi, step = ax.bounds(xs[a])
        if step < 0:
            gathers.append((a, np.arange(lo, hi, step)))
            continue
        begin[a], end[a], stride[a], whole[a] = lo, max(hi, lo), step, False
    x = t.var(node.input[0])
    if not gathers:
        return t.mb.slice_by_index(x=x, begin=begin, end=end, stride=stride, begin_mask=whole, end_mask=whole, name=t.out_name(node))
    if not all(whole):
        x = t.mb.slice_by_index(x=x, begin=begin, end=end, stride=stride, begin_mask=whole, end_mask=whole, name=t.tmp_name(node, "slice"))
    return _gather_each(t, node, x, gathers, "rev")


@COREML_OPS.register("Gather", becomes="gather")
def gather(t: Translator, node: onnx.NodeProto):
    xs = t.shape(node.input[0])
    axis = int(attribute(node, "axis", 0)) % len(xs)
    x = t.var(node.input[0])
    idx = t.const(node.input[1])
    if idx is None:
        indices = t.var(node.input[1])
        if t.np_dtype(indices).kind != "i":
            raise UnsupportedOpError(f"unsupported ONNX ops for Core ML: Gather(non-integer indices) ({node.name})")
        return t.mb.gather(x=x, indices=indices, axis=axis, name=t.out_name(node))
    idx = np.asarray(idx).astype(np.int64)
    idx = np.where(idx < 0, idx + xs[axis], idx).astype(np.int32)
    if idx.ndim == 0:
        y = t.mb.gather(x=x, indices=idx.reshape(1), axis=axis, name=t.tmp_name(node, "gather"))
        if len(xs) == 1:
            return t.mb.squeeze(x=y, name=t.out_name(node))
        return t.mb.squeeze(x=y, axes=[axis], name=t.out_name(node))
    return t.mb.gather(x=x, indices=idx, axis=axis, name=t.out_name(node))


def _pad_mode_refusal(node: onnx.NodeProto, ctx: NodeContext) -> str | None:
    mode = attribute(node, "mode", "constant")
    return None if mode in ("constant", "reflect", "edge") else f"mode={mode}"


@COREML_OPS.register(
    "Pad",
    becomes="pad (constant / reflect / replicate); gather of an index table where Core ML's pad cannot"
    " (edge/reflect beyond the last two axes); negative pads -> slice",
    precondition=_pad_mode_refusal,
)
def pad(t: Translator, node: onnx.NodeProto):
    xs = t.shape(node.input[0])
    rank = len(xs)
    spec = padding(node, t.opset, rank, t.const_input(node))
    mode, pads, value = spec.mode, spec.pads, spec.value
    before, after = pads[:rank], pads[rank:]
    x = t.var(node.input[0])
    # Negative pads crop: slice first.
    if any(p < 0 for p in pads):
        begin = [max(-b, 0) for b in before]
        end = [xs[i] - max(-after[i], 0) for i in range(rank)]
        x = t.mb.slice_by_index(x=x, begin=begin, end=end, name=t.tmp_name(node, "crop"))
        xs = tuple(e - b for b, e in zip(begin, end))
        before, after = [max(b, 0) for b in before], [max(a, 0) for a in after]
    if not any(before) and not any(after):
        return t.mb.identity(x=x, name=t.out_name(node))
    padded_axes = [i for i in range(rank) if before[i] or after[i]]
    mil_mode = {"constant": "constant", "reflect": "reflect", "edge": "replicate"}[mode]
    first = min(padded_axes)
    fits = all(max(before[i], after[i]) <= (xs[i] if mode == "edge" else xs[i] - 1) for i in padded_axes)
    native_ok = mode == "constant" or (first >= rank - 2 and fits)
    if t.model_format == "neuralnetwork" and mode != "constant" and rank < 3:
        native_ok = False
    if native_ok:
        start = first if mode == "constant" else rank - 2
        pad = [p for i in range(start, rank) for p in (before[i], after[i])]
        kw = dict(x=x, pad=np.array(pad, dtype=np.int32), mode=mil_mode, name=t.out_name(node))
        if mode == "constant":
            kw["constant_val"] = t.np_dtype(x).type(value)
        return t.mb.pad(**kw)
    # Edge / reflect padding Core ML's pad cannot express: gather of a constant index table per axis.
    tables = []
    for a in padded_axes:
        n = xs[a]
        pos = np.arange(-before[a], n + after[a])
        if mode == "edge":
            idx = np.clip(pos, 0, n - 1)
        else:
            period = 2 * (n - 1) if n > 1 else 1
            r = np.mod(pos, period)
            idx = np.where(r < n, r, period - r)
        tables.append((a, idx))
    return _gather_each(t, node, x, tables, "pad")


def _repeats_refusal(node: onnx.NodeProto, ctx: NodeContext) -> str | None:
    return None if ctx.is_static(node.input[1]) else "repeats / shape computed at run time"


@COREML_OPS.register("Tile", becomes="tile (constant repeats)", precondition=_repeats_refusal)
def tile(t: Translator, node: onnx.NodeProto):
    reps = np.asarray(t.need_const(node, 1, "repeats")).astype(np.int32).reshape(-1)
    return t.mb.tile(x=t.var(node.input[0]), reps=reps, name=t.out_name(node))


@COREML_OPS.register("Expand", becomes="tile along the broadcast axes (reshape first when the rank grows)",
                     precondition=_repeats_refusal)
def expand(t: Translator, node: onnx.NodeProto):
    xs = tuple(t.shape(node.input[0]))
    out = tuple(int(d) for d in np.broadcast_shapes(xs, tuple(int(d) for d in t.need_const(node, 1, "shape"))))
    x = t.var(node.input[0])
    full = (1,) * (len(out) - len(xs)) + xs
    if full != xs:
        x = t.mb.reshape(x=x, shape=np.array(full, dtype=np.int32), name=t.tmp_name(node, "rank"))
    reps = np.array([o // d if d != o else 1 for d, o in zip(full, out)], dtype=np.int32)
    if np.all(reps == 1):
        return t.mb.identity(x=x, name=t.out_name(node))
    return t.mb.tile(x=x, reps=reps, name=t.out_name(node))


def _if_refusal(node: onnx.NodeProto, ctx: NodeContext) -> str | None:
    return None if ctx.is_static(node.input[0]) else "condition computed at run time"


@COREML_OPS.register("If", becomes="the taken branch, inlined (the condition must be known before run time)",
                     precondition=_if_refusal)
def if_(t: Translator, node: onnx.NodeProto):
    from onnx import numpy_helper

    cond = np.asarray(t.need_const(node, 0, "condition"))
    taken = "then_branch" if bool(cond.reshape(-1)[0]) else "else_branch"
    branch = attribute(node, taken)
    # The branch's scope (its initializers and shapes) is the one the view indexed under the node's label.
    source = t.scope.source if t.scope.source is not None else t.scope.graph
    index = next(k for k, n in enumerate(source.node) if n is node or n == node)
    label = f"{node.name or f'{node.op_type}_{index}'}/{taken}"
    path = f"{t.scope.path}/{label}" if t.scope.path else label
    outer = t.scope
    t.scope = next(s for s in t.view.scopes if s.path == path)
    try:
        for init in branch.initializer:
            t.env[init.name] = numpy_helper.to_array(init)
        for sub in branch.node:
            t.node(sub)
    finally:
        t.scope, t.current = outer, node
    outputs = []
    for k, out in enumerate(branch.output):
        v = t.env[out.name]
        # a graph output keeps its ONNX name (translate() renames mismatched MIL names with an identity)
        outputs.append(v if isinstance(v, np.ndarray) else t.mb.identity(x=v, name=t.out_name(node, k)))
    return outputs


@COREML_OPS.register("Identity", becomes="(aliased; identity when it names a graph output)")
def identity(t: Translator, node: onnx.NodeProto):
    v = t.env[node.input[0]]
    if node.output[0] in t.graph_outputs:
        return t.mb.identity(x=t.var(node.input[0]), name=t.out_name(node))
    return v


@COREML_OPS.register("Constant", becomes="const")
def constant(t: Translator, node: onnx.NodeProto):  # only reached when view.value could not evaluate it
    raise UnsupportedOpError(f"unsupported ONNX ops for Core ML: Constant(sparse or string) ({node.name})")


@COREML_OPS.register("Cast", becomes="cast (int64 -> int32, float64 -> fp32)")
def cast(t: Translator, node: onnx.NodeProto):
    to = int(attribute(node, "to"))
    x = t.var(node.input[0])
    target = {
        onnx.TensorProto.FLOAT: "fp32",
        onnx.TensorProto.DOUBLE: "fp32",
        onnx.TensorProto.FLOAT16: "fp16",
        onnx.TensorProto.INT32: "int32",
        onnx.TensorProto.INT64: "int32",
        onnx.TensorProto.BOOL: "bool",
    }.get(to)
    if target is None:
        to_name = onnx.TensorProto.DataType.Name(to)
        raise UnsupportedOpError(f"unsupported ONNX ops for Core ML: Cast(to {to_name}) ({node.name})")
    if to == onnx.TensorProto.DOUBLE:
        t.warnings.append(f"{node.name or node.output[0]}: Cast to float64 becomes float32 in Core ML")
    current = _MIL_DTYPES.get(t.np_dtype(x))
    if current == target:
        return t.mb.identity(x=x, name=t.out_name(node))
    return t.mb.cast(x=x, dtype=target, name=t.out_name(node))


def _not_folded(t: Translator, node: onnx.NodeProto):  # the translator folds these with static shapes
    raise UnsupportedOpError(f"unsupported ONNX ops for Core ML: {node.op_type} ({node.name or node.output[0]})")


COREML_OPS.register("Shape", becomes="folded to a constant (static shapes)")(_not_folded)
COREML_OPS.register("Size", becomes="folded to a constant (static shapes)")(_not_folded)
