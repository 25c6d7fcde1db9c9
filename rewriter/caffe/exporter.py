"""`rewriter export caffe`: ONNX -> Caffe prototxt + caffemodel, with exact upsampling.

1. ``fix_resize(model, "caffe", ...)`` rewrites every Resize/Upsample into an exact form Caffe can run:
   Slice + Concat edge replication and a grouped ConvTranspose, or constant interpolation matrices
   (MatMul); with ``--flavor interp|upsample`` the nodes a fork layer reproduces stay Resize nodes.
2. The fixed graph is made static (``rewriter.caffe.static``: pinned inputs, folded constants, shapes).
3. Every node becomes BVLC layers (table in ``_HANDLERS``). Tensors carry a layout: the Caffe blob of
   ONNX tensor t is ``np.transpose(t, perm)``. Transposes only change the layout (no layer), elementwise
   ops, Concat, Slice, Split, Softmax, Tile and MatMul work in any layout, the rest need the ONNX layout;
   a permutation that reaches them is a refusal (BVLC has no Permute) unless it only moves size-1 axes
   (then a Reshape is the same memory). This removes tf2onnx's NHWC<->NCHW pairs; a graph input whose
   consumers all transpose it the same way is declared in the transposed layout (reported).
4. Geometry Caffe lacks is rebuilt exactly: symmetric ``pad`` plus a Slice for asymmetric ConvTranspose
   pads and for the extra pooled rows of Caffe's ceil rounding, zero DummyData for asymmetric Conv pads,
   a constant Scale for average-pooling divisors that differ from ONNX Runtime's (measured on ones).
   Slices of one tensor along one axis share one Slice layer, and a Concat of a sliced tensor takes its
   pieces, so edge replication (first row, x, last row) leaves no unused top; the tops nothing reads
   (crops) go to one Silence layer, and a graph output another layer also reads gets its own Split copy
   (Caffe's net outputs are the blobs no layer consumes).
5. Nothing is written unless every node translates; both files go through temp file + rename. The
   caffemodel holds names, types, bottoms, tops and blobs only (all BVLC field numbers, whatever the fork).

Layer arithmetic is checked as it is emitted: every layer's Caffe output shape (``reference.layer_shapes``)
must equal the ONNX tensor's shape in its layout, and every parameter blob must have Caffe's shape.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from google.protobuf import text_format

from rewriter.caffe import proto
from rewriter.caffe.reference import CaffeReferenceError, forward_layer, layer_shapes, pooled_size
from rewriter.caffe.static import StaticGraph, build
from rewriter.errors import UnsupportedOpError, UsageError
from rewriter.graph import fresh_name

FLAVORS = ("bvlc", "interp", "upsample")
BORDERS = ("exact", "zero")
F32 = np.float32


@dataclass
class CaffeExport:
    """What ``export_caffe`` wrote and how the model maps onto it."""

    prototxt: Path
    caffemodel: Path
    fix: object  # rewriter.fix.FixResult
    layers: dict[str, int]  # Caffe layer type -> count
    resize_layers: dict[str, str]  # ONNX Resize/Upsample node -> what it became (fix-resize form -> Caffe layers)
    border_error: float | None  # --border zero: measured max |Caffe - ORT| on a seeded unit-normal input
    warnings: list[str] = field(default_factory=list)
    inputs: dict[str, tuple[int, ...]] = field(default_factory=dict)  # Caffe input blob -> shape
    outputs: list[str] = field(default_factory=list)  # Caffe output blobs (named like the ONNX outputs)
    # ONNX graph input/output -> perm with caffe_blob = np.transpose(onnx_value, perm) (identity omitted)
    io_permutations: dict[str, tuple[int, ...]] = field(default_factory=dict)
    flavor: str = "bvlc"
    border: str = "exact"
    border_error_relative: float | None = None


class _Problem(Exception):
    """One node cannot be translated (the message says why)."""


@dataclass
class _Val:
    blob: str
    perm: tuple[int, ...]
    via: tuple[str, ...] = ()  # Transpose nodes that produced the layout (for messages)


def _identity(perm) -> bool:
    return tuple(perm) == tuple(range(len(perm)))


def _attrs(node: onnx.NodeProto) -> dict:
    out = {}
    for a in node.attribute:
        v = onnx.helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


# ------------------------------------------------------------------------------------------------
# Net builder: layers, weights, blob shapes (checked with Caffe's own shape rules as they are added)


class _Net:
    def __init__(self, reserved: set[str]) -> None:
        self.layers: list = []  # LayerParameter without blobs (the prototxt)
        self.weights: dict[str, list[np.ndarray]] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.origin: dict[str, str] = {}  # layer name -> ONNX node name
        self.producer: dict[str, str] = {}  # blob -> layer type
        self.current_origin = ""
        self._layer_names: set[str] = set()
        self._reserved = set(reserved)  # ONNX tensor names: only their own blob may take them
        self._used: set[str] = set()
        self._fresh: set[str] = set()  # generated by blob_name, not yet a top
        self.frozen_origins: set[str] = set()  # ONNX nodes fix-resize emitted: their weights are not to be trained
        self.pieces: dict[str, dict[int, list[str]]] = {}  # blob -> axis -> the tops of a Slice that tiles it

    def layer_name(self, hint: str) -> str:
        return fresh_name(hint or "layer", self._layer_names)

    def blob_name(self, hint: str) -> str:
        name, k = hint, 1
        while name in self._used or name in self._reserved:
            name = f"{hint}_{k}"
            k += 1
        self._used.add(name)
        self._fresh.add(name)
        return name

    def _claim(self, name: str) -> str:
        if name in self._fresh:
            self._fresh.discard(name)
            return name
        assert name not in self._used, f"blob {name!r} would be produced twice"
        self._used.add(name)
        return name

    def add(
        self,
        type_: str,
        bottoms: list[str],
        tops: list[str] | int,
        name: str,
        params: dict | None = None,
        blobs: list[np.ndarray] | None = None,
        frozen: bool = False,
    ) -> list[str]:
        layer = proto.LayerParameter(name=self.layer_name(name), type=type_)
        layer.bottom.extend(bottoms)
        if isinstance(tops, int):
            tops = [self.blob_name(f"{name}/out{k}" if tops > 1 else name) for k in range(tops)]
        tops = [self._claim(t) for t in tops]
        layer.top.extend(tops)
        if params:
            _fill(getattr(layer, proto.PARAM_FIELD[type_]), params)
        blobs = [np.array(b, dtype=F32, order="C") for b in (blobs or [])]
        if frozen or self.current_origin in self.frozen_origins:
            for _ in blobs:
                layer.param.add(lr_mult=0.0, decay_mult=0.0)
        try:
            top_shapes, blob_shapes = layer_shapes(layer, [self.shapes[b] for b in bottoms])
        except CaffeReferenceError as e:  # a translation bug, never a user error
            raise AssertionError(f"invalid Caffe layer {layer.name} ({type_}): {e}") from e
        assert len(blob_shapes) == len(blobs) and all(tuple(b.shape) == tuple(s) for b, s in zip(blobs, blob_shapes)), (
            f"{layer.name} ({type_}): blobs {[b.shape for b in blobs]} != Caffe's {blob_shapes}"
        )
        for t, s in zip(tops, top_shapes):
            self.shapes[t] = tuple(int(d) for d in s)
            self.producer[t] = type_
        if type_ == "Slice":
            axis = layer.slice_param.axis % len(self.shapes[bottoms[0]])
            self.pieces.setdefault(bottoms[0], {}).setdefault(axis, list(tops))
        self.layers.append(layer)
        if blobs:
            self.weights[layer.name] = blobs
        self.origin[layer.name] = self.current_origin
        return tops

    def rename_blob(self, old: str, new: str) -> None:
        for layer in self.layers:
            for names in (layer.bottom, layer.top):
                for k, b in enumerate(names):
                    if b == old:
                        names[k] = new
        self.shapes[new] = self.shapes.pop(old)
        self.producer[new] = self.producer.pop(old)
        self._used.discard(old)
        self._used.add(new)


def _fill(msg, params: dict) -> None:
    for key, value in params.items():
        if value is None:
            continue
        target = getattr(msg, key)
        if isinstance(value, dict):
            _fill(target, value)
        elif isinstance(value, (list, tuple)):
            for item in value:
                if isinstance(item, dict):
                    _fill(target.add(), item)
                else:
                    target.append(item)
        else:
            setattr(msg, key, value)


def _shape_msg(dims) -> dict:
    return {"dim": [int(d) for d in dims]}


# ------------------------------------------------------------------------------------------------
# Translator


class _Translator:
    def __init__(self, g: StaticGraph, flavor: str, resize_sems: dict[str, object], frozen_nodes: set[str]) -> None:
        self.g = g
        self.flavor = flavor
        self.resize_sems = resize_sems
        self.frozen_nodes = frozen_nodes
        reserved = (
            set(g.shapes) | set(g.consts) | {o for n in g.nodes for o in n.output} | set(g.inputs) | set(g.outputs)
        )
        self.net = _Net(reserved)
        self.net.frozen_origins = set(frozen_nodes)
        self.vals: dict[str, _Val] = {}
        self.poisoned: set[str] = set()
        self.problems: list[tuple[str, str, str | None]] = []
        self.warnings: list[str] = []
        self.io_perms: dict[str, tuple[int, ...]] = {}
        self._param_cache: dict[tuple, str] = {}
        self._materialized: dict[str, str] = {}
        self._slice_groups: dict[str, list] = {}
        self._slice_done: dict[str, str] = {}
        self._reserved = reserved
        self.node = None

    # ---------------------------------------------------------------- values

    def shape(self, name: str) -> tuple[int, ...]:
        if name not in self.g.shapes:
            raise _Problem(f"the shape of {name!r} is not static")
        return self.g.shapes[name]

    def is_const(self, name: str) -> bool:
        return bool(name) and name in self.g.consts

    def const(self, name: str) -> np.ndarray:
        if not self.is_const(name):
            raise _Problem(f"input {name!r} must be a constant (initializer) for Caffe")
        return self.g.consts[name]

    def opt_const(self, node, k: int):
        return self.const(node.input[k]) if len(node.input) > k and node.input[k] else None

    def val(self, name: str) -> _Val:
        if name in self.vals:
            return self.vals[name]
        if self.is_const(name):
            return _Val(
                self.param_blob(name, tuple(range(self.g.consts[name].ndim))), tuple(range(self.g.consts[name].ndim))
            )
        raise _Problem(f"tensor {name!r} has no Caffe blob")

    def set(self, name: str, blob: str, perm=None, via: tuple[str, ...] = ()) -> None:
        perm = tuple(range(len(self.net.shapes[blob]))) if perm is None else tuple(perm)
        self.vals[name] = _Val(blob, perm, via)
        expected = tuple(self.shape(name)[p] for p in perm)
        assert self.net.shapes[blob] == expected, (
            f"{self.node.name if self.node is not None else name}: Caffe blob {blob} has shape {self.net.shapes[blob]}, ONNX {name} needs {expected} (perm {perm})"
        )

    def param_blob(self, name: str, perm: tuple[int, ...]) -> str:
        """A constant used as data: a Parameter layer holding its (transposed) value."""
        key = (name, perm)
        if key not in self._param_cache:
            value = np.transpose(np.asarray(self.g.consts[name], dtype=F32), perm)
            (top,) = self.net.add(
                "Parameter",
                [],
                [self.net.blob_name(f"{name}/const")],
                f"{name}/const",
                {"shape": _shape_msg(value.shape)},
                [value],
            )
            self._param_cache[key] = top
        return self._param_cache[key]

    def data(self, name: str) -> str:
        """The blob of ``name`` in ONNX layout (the layout-sensitive layers need it)."""
        v = self.val(name)
        if _identity(v.perm):
            return v.blob
        if name in self._materialized:
            return self._materialized[name]
        logical = self.shape(name)
        moved = [a for a in v.perm if logical[a] != 1]
        if moved != sorted(moved):
            via = f" (left by {', '.join(v.via)})" if v.via else ""
            raise _Problem(
                f"its input {name!r} is a real permutation of the Caffe blob{via}: blob = transpose({name}, {list(v.perm)}), and BVLC Caffe has no Permute layer"
            )
        (top,) = self.net.add(
            "Reshape",
            [v.blob],
            [self.net.blob_name(f"{name}/layout")],
            f"{name}/layout",
            {"shape": _shape_msg(logical)},
        )
        self._materialized[name] = top
        return top

    def same_layout(self, names: list[str]) -> tuple[list[str], tuple[int, ...]]:
        """Blobs of several tensors in one common layout (theirs if they agree, else ONNX layout)."""
        vals = [self.val(n) for n in names if not self.is_const(n)]
        perms = {v.perm for v in vals}
        if len(perms) == 1:
            perm = perms.pop()
        else:
            perm = tuple(range(len(self.shape(names[0]))))
        blobs = []
        for n in names:
            if self.is_const(n):
                blobs.append(self.param_blob(n, perm))
            elif self.val(n).perm == perm:
                blobs.append(self.val(n).blob)
            else:
                blobs.append(self.data(n))
        return blobs, perm

    # ---------------------------------------------------------------- helpers

    def lname(self, suffix: str = "") -> str:
        base = self.node.name or self.node.output[0]
        return f"{base}/{suffix}" if suffix else base

    def slice_range(
        self, blob: str, axis: int, start: int, stop: int, top: str | None = None, hint: str = "crop"
    ) -> str:
        """Keep [start, stop) of ``axis``: one Slice layer (unused pieces are silenced at the end)."""
        length = self.net.shapes[blob][axis]
        if start == 0 and stop == length:
            return blob
        points = [p for p in (start, stop) if 0 < p < length]
        pieces = [0, *points, length]
        keep = pieces.index(start)
        tops = [top if (k == keep and top) else self.net.blob_name(f"{blob}/{hint}{k}") for k in range(len(pieces) - 1)]
        tops = self.net.add("Slice", [blob], tops, self.lname(hint), {"axis": axis, "slice_point": points})
        return tops[keep]

    def zero_extend(self, blob: str, axis: int, amount: int) -> str:
        """Append ``amount`` zeros along ``axis`` (a constant DummyData blob + Concat)."""
        shape = list(self.net.shapes[blob])
        shape[axis] = amount
        (zeros,) = self.net.add(
            "DummyData",
            [],
            1,
            self.lname(f"zeros{axis}"),
            {"shape": [_shape_msg(shape)], "data_filler": [{"type": "constant", "value": 0.0}]},
        )
        (out,) = self.net.add("Concat", [blob, zeros], 1, self.lname(f"zero_pad{axis}"), {"axis": axis})
        return out

    def pads(self, a: dict, spatial: tuple[int, ...], kernel, strides, dilations) -> list[int]:
        n = len(spatial)
        auto = a.get("auto_pad", "NOTSET")
        if auto in ("NOTSET", ""):
            return list(a.get("pads", [0] * (2 * n)))
        if auto == "VALID":
            return [0] * (2 * n)
        begins, ends = [], []
        for i in range(n):
            out = -(-spatial[i] // strides[i])
            ext = dilations[i] * (kernel[i] - 1) + 1
            total = max((out - 1) * strides[i] + ext - spatial[i], 0)
            small, big = total // 2, total - total // 2
            begins.append(small if auto == "SAME_UPPER" else big)
            ends.append(big if auto == "SAME_UPPER" else small)
        return begins + ends

    @staticmethod
    def geometry(params: dict, key: str, values: list[int], default: int, nsp: int) -> None:
        """pad / kernel / stride / dilation fields: one value when equal, *_h/*_w for 2-D, else repeated."""
        if all(v == default for v in values) and key != "kernel":
            return
        field = "kernel_size" if key == "kernel" else key
        if len(set(values)) == 1:
            params[field] = [int(values[0])]
        elif nsp == 2 and key != "dilation":
            params[f"{key}_h"] = int(values[0])
            params[f"{key}_w"] = int(values[1])
        else:
            params[field] = [int(v) for v in values]

    # ---------------------------------------------------------------- driver

    def run(self) -> None:
        g = self.g
        for name in g.inputs:
            t = g.elem_types.get(name)
            if t != onnx.TensorProto.FLOAT:
                self.problems.append(
                    (
                        "graph input",
                        name,
                        f"is {onnx.TensorProto.DataType.Name(t) if t else 'untyped'} (Caffe blobs are float32)",
                    )
                )
                self.poisoned.add(name)
                continue
            consumers = g.consumers.get(name, [])
            perm = tuple(range(len(g.shapes[name])))
            perms = {tuple(_attrs(c).get("perm", [])) for c in consumers if c.op_type == "Transpose"}
            if (
                consumers
                and all(c.op_type == "Transpose" for c in consumers)
                and len(perms) == 1
                and name not in g.outputs
            ):
                p = perms.pop()
                if p and not _identity(p):
                    perm = p
                    self.io_perms[name] = perm
            shape = tuple(g.shapes[name][a] for a in perm)
            self.net.current_origin = ""
            (top,) = self.net.add("Input", [], [name], name, {"shape": [_shape_msg(shape)]})
            self.vals[name] = _Val(top, perm, ("graph input layout",) if name in self.io_perms else ())
        self._plan_slices()
        for node in g.nodes:
            self.node = node
            self.net.current_origin = node.name or node.output[0]
            handler = _HANDLERS.get(node.op_type) if node.domain in ("", "ai.onnx") else None
            if handler is None:
                op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
                self.problems.append((op, node.name or node.output[0], None))
                self.poisoned.update(o for o in node.output if o)
                continue
            if any(i in self.poisoned for i in node.input if i):
                self.poisoned.update(o for o in node.output if o)
                continue
            try:
                handler(self, node)
            except _Problem as e:
                self.problems.append((node.op_type, node.name or node.output[0], str(e)))
                self.poisoned.update(o for o in node.output if o)
            except AssertionError as e:  # a layer whose Caffe shapes disagree with ONNX: refuse, never write it
                first = (str(e).splitlines() or ["shape check failed"])[0]
                self.problems.append(
                    (node.op_type, node.name or node.output[0], f"internal consistency check failed ({first})")
                )
                self.poisoned.update(o for o in node.output if o)
        self.node = None

    def finish(self) -> list[str]:
        """Name the output blobs like the ONNX outputs, silence every other dangling blob."""
        net = self.net
        outputs = []
        for name in self.g.outputs:
            if name in self.poisoned:
                continue
            if self.is_const(name) and name not in self.vals:
                self.vals[name] = _Val(
                    self.param_blob(name, tuple(range(self.g.consts[name].ndim))),
                    tuple(range(self.g.consts[name].ndim)),
                )
            v = self.vals[name]
            blob, perm = v.blob, v.perm
            if not _identity(perm):
                logical = self.shape(name)
                moved = [a for a in perm if logical[a] != 1]
                if moved == sorted(moved):
                    blob, perm = self.data(name), tuple(range(len(perm)))
                else:
                    self.io_perms[name] = perm
                    self.warnings.append(
                        f"output {name!r} is written in the layout of the Caffe graph: blob = transpose(ONNX output, {list(perm)}) (the Transpose before it was removed; BVLC has no Permute)"
                    )
            if blob != name:
                movable = blob not in self.g.outputs and blob not in self.g.inputs and blob not in outputs
                if name not in net.shapes and net.producer.get(blob) not in (None, "Input", "Parameter") and movable:
                    net.rename_blob(blob, name)
                    for other in self.vals.values():
                        if other.blob == blob:
                            other.blob = name
                else:
                    self.net.current_origin = name
                    net.add("Split", [blob], [name], f"{name}/output")
                blob = name
            outputs.append(blob)
        consumed = {b for layer in net.layers for b in layer.bottom}
        for name in outputs:
            if name in consumed:  # Caffe's net outputs are the blobs no layer consumes: give the output its own copy
                inner = net.blob_name(f"{name}/value")
                net.rename_blob(name, inner)
                net._fresh.discard(inner)
                for other in self.vals.values():
                    if other.blob == name:
                        other.blob = inner
                self.net.current_origin = name
                net.add("Split", [inner], [name], f"{name}/output")
        consumed = {b for layer in net.layers for b in layer.bottom}
        dangling = [t for layer in net.layers for t in layer.top if t not in consumed and t not in outputs]
        if dangling:
            self.net.current_origin = ""
            net.add("Silence", dangling, [], "silence_unused")
        return outputs

    # ---------------------------------------------------------------- slices

    def _slice_spec(self, node) -> list[tuple[int, int, int]]:
        """Normalized (axis, start, stop) of a static step-1 ONNX Slice."""
        shape = self.shape(node.input[0])
        rank = len(shape)
        a = _attrs(node)
        if self.g.opset < 10 or "starts" in a:
            starts, ends = a["starts"], a["ends"]
            axes = a.get("axes", list(range(len(starts))))
            steps = [1] * len(starts)
        else:
            starts = [int(v) for v in self.const(node.input[1]).ravel()]
            ends = [int(v) for v in self.const(node.input[2]).ravel()]
            axes = (
                [int(v) for v in self.opt_const(node, 3).ravel()]
                if self.opt_const(node, 3) is not None
                else list(range(len(starts)))
            )
            steps = (
                [int(v) for v in self.opt_const(node, 4).ravel()]
                if self.opt_const(node, 4) is not None
                else [1] * len(starts)
            )
        spec = []
        for axis, start, end, step in zip(axes, starts, ends, steps):
            axis = axis + rank if axis < 0 else axis
            dim = shape[axis]
            if step != 1:
                raise _Problem(f"step {step}: Caffe's Slice layer only takes contiguous ranges")
            start = start + dim if start < 0 else start
            end = end + dim if end < 0 else end
            start, end = min(max(start, 0), dim), min(max(end, 0), dim)
            if end <= start:
                raise _Problem("empty slice")
            spec.append((axis, start, end))
        return spec

    def _plan_slices(self) -> None:
        groups: dict[tuple[str, int], list] = {}
        for node in self.g.nodes:
            if node.op_type != "Slice" or node.domain not in ("", "ai.onnx") or self.is_const(node.input[0]):
                continue
            try:
                spec = self._slice_spec(node)
            except _Problem:
                continue
            if len(spec) == 1:
                axis, start, stop = spec[0]
                if (start, stop) != (0, self.g.shapes[node.input[0]][axis]):
                    groups.setdefault((node.input[0], axis), []).append((node, start, stop))
        for members in groups.values():
            if len(members) > 1:
                for node, _, _ in members:
                    self._slice_groups[node.output[0]] = members

    def emit_slice_group(self, members) -> None:
        """Several Slices of one tensor along one axis (edge replication takes first and last rows): one
        Caffe Slice layer whose pieces are the requested ranges (the rest is silenced)."""
        first = members[0][0]
        v = self.val(first.input[0])
        axis_onnx = self._slice_spec(first)[0][0]
        axis = v.perm.index(axis_onnx)
        length = self.net.shapes[v.blob][axis]
        points = sorted({p for _, a, b in members for p in (a, b) if 0 < p < length})
        pieces = list(zip([0, *points], [*points, length]))
        owner: dict[int, str] = {}
        single = []
        for node, a, b in members:
            if (a, b) in pieces:
                owner.setdefault(pieces.index((a, b)), node.output[0])
            else:
                single.append((node, a, b))
        tops = [owner.get(k) or self.net.blob_name(f"{v.blob}/piece{k}") for k in range(len(pieces))]
        tops = self.net.add(
            "Slice", [v.blob], tops, f"{first.name or first.output[0]}/slices", {"axis": axis, "slice_point": points}
        )
        for node, a, b in members:
            if (a, b) in pieces:
                top = tops[pieces.index((a, b))]
                self.vals[node.output[0]] = _Val(top, v.perm, v.via)
                self._slice_done[node.output[0]] = top
        for node, a, b in single:
            top = self.slice_range(v.blob, axis, a, b, top=node.output[0])
            self.vals[node.output[0]] = _Val(top, v.perm, v.via)
            self._slice_done[node.output[0]] = top


# ------------------------------------------------------------------------------------------------
# Handlers: one per ONNX op type


def _alias(t: _Translator, node) -> None:
    v = t.val(node.input[0])
    t.vals[node.output[0]] = _Val(v.blob, v.perm, v.via)


def _identity_op(t: _Translator, node) -> None:
    if node.op_type == "Dropout" and len(node.output) > 1 and node.output[1] and node.output[1] in t.g.consumers:
        raise _Problem("its mask output is used")
    if node.op_type == "Cast" and _attrs(node).get("to") != onnx.TensorProto.FLOAT:
        raise _Problem("Caffe blobs are float32 only")
    _alias(t, node)


def _transpose(t: _Translator, node) -> None:
    v = t.val(node.input[0])
    rank = len(v.perm)
    p = list(_attrs(node).get("perm", list(range(rank))[::-1]))
    inv = [0] * rank
    for i, a in enumerate(p):
        inv[a] = i
    new = tuple(inv[q] for q in v.perm)
    via = v.via + (f"Transpose {node.name or node.output[0]}",)
    t.set(node.output[0], v.blob, new, via if not _identity(new) else ())


def _unary(type_: str, params: dict | None = None):
    def handler(t: _Translator, node) -> None:
        v = t.val(node.input[0])
        (top,) = t.net.add(type_, [v.blob], [node.output[0]], t.lname(), params)
        t.set(node.output[0], top, v.perm, v.via)

    return handler


def _leaky(t: _Translator, node) -> None:
    _unary("ReLU", {"negative_slope": float(_attrs(node).get("alpha", 0.01))})(t, node)


def _elu(t: _Translator, node) -> None:
    _unary("ELU", {"alpha": float(_attrs(node).get("alpha", 1.0))})(t, node)


def _clip(t: _Translator, node) -> None:
    a = _attrs(node)
    lo = a.get("min") if t.g.opset < 11 else (float(t.opt_const(node, 1)) if t.opt_const(node, 1) is not None else None)
    hi = a.get("max") if t.g.opset < 11 else (float(t.opt_const(node, 2)) if t.opt_const(node, 2) is not None else None)
    if lo == 0 and (hi is None or np.isinf(hi)):
        _unary("ReLU")(t, node)
        return
    raise _Problem(f"Clip({lo}, {hi}): BVLC Caffe has only ReLU (min 0, no max)")


def _power(power: float = 1.0, scale: float = 1.0, shift: float = 0.0):
    return _unary("Power", {"power": power, "scale": scale, "shift": shift})


def _pow(t: _Translator, node) -> None:
    e = t.const(node.input[1])
    if e.size != 1:
        raise _Problem("the exponent must be one constant")
    _power(power=float(e.ravel()[0]))(t, node)


def _prelu(t: _Translator, node) -> None:
    x = t.data(node.input[0])
    shape = t.shape(node.input[0])
    slope = np.asarray(t.const(node.input[1]), dtype=F32)
    try:
        full = np.broadcast_to(slope, shape)
    except ValueError:
        raise _Problem(f"slope {slope.shape} does not broadcast to {shape}") from None
    if len(shape) > 4 or len(shape) < 2:
        raise _Problem("Caffe's PReLU takes 2-D to 4-D blobs")
    if np.all(full == full.ravel()[0]):
        (top,) = t.net.add(
            "PReLU", [x], [node.output[0]], t.lname(), {"channel_shared": True}, [np.array(full.ravel()[0], dtype=F32)]
        )
    else:
        per_channel = full[0].reshape(shape[1], -1) if len(shape) >= 2 else None
        if per_channel is None or not np.all(per_channel == per_channel[:, :1]) or not np.all(full == full[:1]):
            raise _Problem("the slope varies along more than the channel axis (Caffe's PReLU is per channel)")
        (top,) = t.net.add("PReLU", [x], [node.output[0]], t.lname(), None, [per_channel[:, 0].copy()])
    t.set(node.output[0], top)


def _softmax(t: _Translator, node) -> None:
    shape = t.shape(node.input[0])
    rank = len(shape)
    axis = _attrs(node).get("axis", -1 if t.g.opset >= 13 else 1)
    axis = axis + rank if axis < 0 else axis
    if t.g.opset >= 13 or int(np.prod(shape[axis + 1 :], dtype=np.int64)) == 1:
        v = t.val(node.input[0])
        (top,) = t.net.add("Softmax", [v.blob], [node.output[0]], t.lname(), {"axis": v.perm.index(axis)})
        t.set(node.output[0], top, v.perm, v.via)
        return
    # Softmax-1/11 normalizes over the flattened block [axis:].
    x = t.data(node.input[0])
    outer, inner = int(np.prod(shape[:axis], dtype=np.int64)), int(np.prod(shape[axis:], dtype=np.int64))
    (flat,) = t.net.add("Reshape", [x], 1, t.lname("flatten"), {"shape": _shape_msg((outer, inner))})
    (sm,) = t.net.add("Softmax", [flat], 1, t.lname("softmax"), {"axis": 1})
    (top,) = t.net.add("Reshape", [sm], [node.output[0]], t.lname(), {"shape": _shape_msg(shape)})
    t.set(node.output[0], top)


def _reshape_like(t: _Translator, node) -> None:
    out_shape = t.shape(node.output[0])
    x = t.data(node.input[0])
    if t.net.shapes[x] == tuple(out_shape):
        t.set(node.output[0], x)
        return
    if node.op_type == "Flatten" and _attrs(node).get("axis", 1) == 1 and len(t.net.shapes[x]) >= 2:
        (top,) = t.net.add("Flatten", [x], [node.output[0]], t.lname())
    else:
        (top,) = t.net.add("Reshape", [x], [node.output[0]], t.lname(), {"shape": _shape_msg(out_shape)})
    t.set(node.output[0], top)


def _concat(t: _Translator, node) -> None:
    names = [n for n in node.input if n]
    rank = len(t.shape(node.output[0]))
    axis = _attrs(node)["axis"]
    axis = axis + rank if axis < 0 else axis
    names = [n for n in names if t.shape(n)[axis] > 0]
    if len(names) == 1:
        v = t.val(names[0])
        t.vals[node.output[0]] = _Val(v.blob, v.perm, v.via)
        return
    blobs, perm = t.same_layout(names)
    caffe_axis = perm.index(axis)
    # A bottom that a Slice layer cut along this axis is the concatenation of its pieces: Concat(first, x, last)
    # of the edge replication becomes Concat(first, first, middle, last, last) and no piece is left unused.
    expanded = [piece for b in blobs for piece in t.net.pieces.get(b, {}).get(caffe_axis, [b])]
    (top,) = t.net.add("Concat", expanded, [node.output[0]], t.lname(), {"axis": caffe_axis})
    t.set(node.output[0], top, perm)


def _split(t: _Translator, node) -> None:
    v = t.val(node.input[0])
    shape = t.shape(node.input[0])
    rank = len(shape)
    axis = _attrs(node).get("axis", 0)
    axis = axis + rank if axis < 0 else axis
    sizes = [t.shape(o)[axis] for o in node.output]
    if len(sizes) == 1:
        t.vals[node.output[0]] = _Val(v.blob, v.perm, v.via)
        return
    points = list(np.cumsum(sizes)[:-1])
    tops = [o if o else t.net.blob_name(f"{v.blob}/split{k}") for k, o in enumerate(node.output)]
    tops = t.net.add(
        "Slice", [v.blob], tops, t.lname(), {"axis": v.perm.index(axis), "slice_point": [int(p) for p in points]}
    )
    for o, top in zip(node.output, tops):
        if o:
            t.set(o, top, v.perm, v.via)


def _slice(t: _Translator, node) -> None:
    if node.output[0] in t._slice_groups and node.output[0] not in t._slice_done:
        t.emit_slice_group(t._slice_groups[node.output[0]])
    if node.output[0] in t._slice_done:
        v = t.val(node.input[0])
        t.set(node.output[0], t._slice_done[node.output[0]], v.perm, v.via)
        return
    v = t.val(node.input[0])
    blob = v.blob
    spec = t._slice_spec(node)
    for k, (axis, start, stop) in enumerate(spec):
        last = k == len(spec) - 1
        blob = t.slice_range(
            blob, v.perm.index(axis), start, stop, top=node.output[0] if last else None, hint=f"slice{axis}_"
        )
    if blob == v.blob:
        t.vals[node.output[0]] = _Val(v.blob, v.perm, v.via)
        return
    t.set(node.output[0], blob, v.perm, v.via)


def _tile(t: _Translator, node) -> None:
    v = t.val(node.input[0])
    reps = [int(r) for r in t.const(node.input[1]).ravel()]
    blob = v.blob
    axes = [a for a, r in enumerate(reps) if r != 1]
    if any(r < 1 for r in reps):
        raise _Problem("repeats must be positive")
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
        t.vals[node.output[0]] = _Val(v.blob, v.perm, v.via)
        return
    t.set(node.output[0], blob, v.perm, v.via)


def _pad(t: _Translator, node) -> None:
    a = _attrs(node)
    mode = a.get("mode", "constant")
    rank = len(t.shape(node.input[0]))
    if t.g.opset < 11:
        pads, value = list(a.get("pads", a.get("paddings", []))), float(a.get("value", 0.0))
    else:
        pads = [int(p) for p in t.const(node.input[1]).ravel()]
        value = float(t.opt_const(node, 2).ravel()[0]) if t.opt_const(node, 2) is not None else 0.0
        axes_c = t.opt_const(node, 3)
        if axes_c is not None:
            axes = [int(x) + rank if int(x) < 0 else int(x) for x in axes_c.ravel()]
            full = [0] * (2 * rank)
            for i, ax in enumerate(axes):
                full[ax], full[rank + ax] = pads[i], pads[len(axes) + i]
            pads = full
    if any(p < 0 for p in pads):
        raise _Problem("negative pads")
    if mode not in ("constant", "edge"):
        raise _Problem(f"mode {mode!r}: only constant and edge padding can be built from BVLC layers")
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
                        {"shape": [_shape_msg(shape)], "data_filler": [{"type": "constant", "value": value}]},
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
        t.vals[node.output[0]] = _Val(v.blob, v.perm, v.via)
        return
    t.set(node.output[0], blob, v.perm, v.via)


# ---------------------------------------------------------------- elementwise arithmetic


def _span(shape: tuple[int, ...]) -> tuple[int, int]:
    nz = [i for i, d in enumerate(shape) if d != 1]
    return (nz[0], nz[-1] + 1) if nz else (0, 0)


def _const_operand(t: _Translator, value: np.ndarray, out_shape: tuple[int, ...], perm: tuple[int, ...]):
    """A constant broadcast against a tensor of ``out_shape`` (layout ``perm``): (axis, blob) for Scale/Bias,
    or None when it is one number."""
    value = np.asarray(value, dtype=F32)
    if value.size == 1:
        return None
    rank = len(out_shape)
    if value.ndim > rank:
        raise _Problem("the constant has more axes than the tensor")
    full = value.reshape((1,) * (rank - value.ndim) + value.shape)
    if any(d not in (1, o) for d, o in zip(full.shape, out_shape)):
        raise _Problem(f"the constant {value.shape} broadcasts the tensor {out_shape} to a larger shape")
    blob_value = np.transpose(full, perm)
    blob_shape = tuple(out_shape[p] for p in perm)
    a, b = _span(blob_value.shape)
    block = np.broadcast_to(blob_value, blob_value.shape[:a] + blob_shape[a:b] + blob_value.shape[b:])
    return a, np.ascontiguousarray(block.reshape(blob_shape[a:b]))


def _binary(t: _Translator, node) -> None:
    op = node.op_type
    x_name, y_name = node.input[0], node.input[1]
    out = node.output[0]
    out_shape = t.shape(out)
    cx, cy = t.is_const(x_name), t.is_const(y_name)
    if not cx and not cy:
        _binary_tensors(t, node, op, x_name, y_name, out, out_shape)
        return
    tensor, c, const_first = (y_name, t.const(x_name), True) if cx else (x_name, t.const(y_name), False)
    if t.shape(tensor) != out_shape:
        raise _Problem(f"the constant {c.shape} broadcasts the tensor {t.shape(tensor)} to {out_shape}")
    v = t.val(tensor)
    c = np.asarray(c, dtype=np.float64)
    if op in ("Max", "Min"):
        if c.size == 1 and float(c.ravel()[0]) == 0.0 and op == "Max":
            (top,) = t.net.add("ReLU", [v.blob], [out], t.lname())
            t.set(out, top, v.perm, v.via)
            return
        raise _Problem(f"{op} with a constant: BVLC Caffe has no clamp layer")
    if op == "Div":
        if const_first:
            raise _Problem("constant / tensor: Caffe has no elementwise division")
        c = 1.0 / c
        op = "Mul"
    negate_tensor = op == "Sub" and const_first
    if op == "Sub" and not const_first:
        c, op = -c, "Add"
    if op == "Sub":  # c - x = (-x) + c
        op = "Add"
    operand = _const_operand(t, c, out_shape, v.perm)
    blob = v.blob
    if operand is None:
        value = float(c.ravel()[0])
        params = {"scale": value} if op == "Mul" else {"shift": value}
        if negate_tensor:
            params["scale"] = -1.0
        (top,) = t.net.add("Power", [blob], [out], t.lname(), params)
        t.set(out, top, v.perm, v.via)
        return
    if negate_tensor:
        (blob,) = t.net.add("Power", [blob], 1, t.lname("negate"), {"scale": -1.0})
    axis, block = operand
    kind = "Scale" if op == "Mul" else "Bias"
    (top,) = t.net.add(kind, [blob], [out], t.lname(), {"axis": axis, "num_axes": block.ndim}, [block])
    t.set(out, top, v.perm, v.via)


def _binary_tensors(t: _Translator, node, op, x_name, y_name, out, out_shape) -> None:
    sx, sy = t.shape(x_name), t.shape(y_name)
    if sx == sy == out_shape:
        (bx, by), perm = t.same_layout([x_name, y_name])
        if op in ("Add", "Sub", "Mul", "Max"):
            params = {"operation": {"Add": "SUM", "Sub": "SUM", "Mul": "PROD", "Max": "MAX"}[op]}
            if op == "Sub":
                params["coeff"] = [1.0, -1.0]
            (top,) = t.net.add("Eltwise", [bx, by], [out], t.lname(), params)
        elif op == "Min":  # min(a, b) = -max(-a, -b), exactly
            (nx,) = t.net.add("Power", [bx], 1, t.lname("neg_a"), {"scale": -1.0})
            (ny,) = t.net.add("Power", [by], 1, t.lname("neg_b"), {"scale": -1.0})
            (mx,) = t.net.add("Eltwise", [nx, ny], 1, t.lname("max"), {"operation": "MAX"})
            (top,) = t.net.add("Power", [mx], [out], t.lname(), {"scale": -1.0})
        else:
            raise _Problem("tensor / tensor: Caffe has no elementwise division")
        t.set(out, top, perm)
        return
    if op not in ("Add", "Mul", "Sub"):
        raise _Problem(f"broadcasting {op}: Caffe's Scale/Bias broadcast only products and sums")
    big, small = (x_name, y_name) if sx == out_shape else (y_name, x_name)
    if t.shape(big) != out_shape:
        raise _Problem("both operands are broadcast")
    rank = len(out_shape)
    small_shape = (1,) * (rank - len(t.shape(small))) + tuple(t.shape(small))
    a, b = _span(small_shape)
    if a == b or any(small_shape[i] != out_shape[i] for i in range(a, b)):
        raise _Problem(f"{small_shape} is not a contiguous block of {out_shape} (what Caffe's Scale/Bias broadcast)")
    bblob = t.data(big)
    sblob = t.data(small)
    if t.net.shapes[sblob] != tuple(out_shape[a:b]):
        (sblob,) = t.net.add("Reshape", [sblob], 1, t.lname("operand"), {"shape": _shape_msg(out_shape[a:b])})
    negate_result = False
    if op == "Sub":
        if small == y_name:  # big - small = big + (-small)
            (sblob,) = t.net.add("Power", [sblob], 1, t.lname("negate"), {"scale": -1.0})
        else:  # small - big = -(big - small)
            (sblob,) = t.net.add("Power", [sblob], 1, t.lname("negate"), {"scale": -1.0})
            negate_result = True
    kind = "Scale" if op == "Mul" else "Bias"
    if negate_result:
        (mid,) = t.net.add(kind, [bblob, sblob], 1, t.lname("bias"), {"axis": a})
        (top,) = t.net.add("Power", [mid], [out], t.lname(), {"scale": -1.0})
    else:
        (top,) = t.net.add(kind, [bblob, sblob], [out], t.lname(), {"axis": a})
    t.set(out, top)


def _variadic(t: _Translator, node) -> None:
    names = [n for n in node.input if n]
    if len(names) == 1:
        _alias(t, node)
        return
    if any(t.shape(n) != t.shape(node.output[0]) for n in names) or any(t.is_const(n) for n in names):
        raise _Problem("broadcasting or constant operands")
    blobs, perm = t.same_layout(names)
    if node.op_type == "Max":
        params = {"operation": "MAX"}
    else:
        params = {"operation": "SUM"}
        if node.op_type == "Mean":
            params["coeff"] = [1.0 / len(names)] * len(names)
    (top,) = t.net.add("Eltwise", blobs, [node.output[0]], t.lname(), params)
    t.set(node.output[0], top, perm)


def _binary_or_variadic(t: _Translator, node) -> None:
    if len([n for n in node.input if n]) == 2:
        _binary(t, node)
    else:
        _variadic(t, node)


# ---------------------------------------------------------------- convolutions and matrices


def _conv(t: _Translator, node) -> None:
    a = _attrs(node)
    x = t.data(node.input[0])
    w = np.asarray(t.const(node.input[1]), dtype=F32)
    bias = t.opt_const(node, 2)
    nsp = w.ndim - 2
    spatial = t.net.shapes[x][2:]
    if nsp < 1 or len(spatial) != nsp:
        raise _Problem("needs an N x C x spatial input")
    kernel = list(w.shape[2:])
    strides = list(a.get("strides", [1] * nsp))
    dil = list(a.get("dilations", [1] * nsp))
    group = int(a.get("group", 1))
    pads = t.pads(a, spatial, kernel, strides, dil)
    onnx_out = t.shape(node.output[0])[2:]
    for i in range(nsp):
        ext = dil[i] * (kernel[i] - 1) + 1
        caffe = (spatial[i] + 2 * pads[i] - ext) // strides[i] + 1
        if caffe < onnx_out[i]:  # a larger end pad than begin pad that Caffe's symmetric pad cannot give
            x = t.zero_extend(x, 2 + i, pads[nsp + i] - pads[i])
    params: dict = {"num_output": int(w.shape[0]), "bias_term": bias is not None}
    t.geometry(params, "pad", pads[:nsp], 0, nsp)
    t.geometry(params, "kernel", kernel, 0, nsp)
    t.geometry(params, "stride", strides, 1, nsp)
    t.geometry(params, "dilation", dil, 1, nsp)
    if group != 1:
        params["group"] = group
    if nsp != 2:
        params["engine"] = "CAFFE"  # cuDNN convolution is 2-D only
    blobs = [w] + ([np.asarray(bias, dtype=F32).reshape(-1)] if bias is not None else [])
    xs = t.net.shapes[x][2:]
    caffe_out = [(xs[i] + 2 * pads[i] - (dil[i] * (kernel[i] - 1) + 1)) // strides[i] + 1 for i in range(nsp)]
    crops = [i for i in range(nsp) if caffe_out[i] > onnx_out[i]]  # a begin pad larger than the end pad
    (top,) = t.net.add(
        "Convolution",
        [x],
        [node.output[0]] if not crops else 1,
        t.lname() if not crops else t.lname("conv"),
        params,
        blobs,
    )
    for k, i in enumerate(crops):
        top = t.slice_range(top, 2 + i, 0, onnx_out[i], top=node.output[0] if k == len(crops) - 1 else None)
    t.set(node.output[0], top)


def _conv_transpose(t: _Translator, node) -> None:
    a = _attrs(node)
    x = t.data(node.input[0])
    w = np.asarray(t.const(node.input[1]), dtype=F32)
    bias = t.opt_const(node, 2)
    nsp = w.ndim - 2
    spatial = t.net.shapes[x][2:]
    if nsp < 1 or len(spatial) != nsp:
        raise _Problem("needs an N x C x spatial input")
    if "output_shape" in a or a.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID", ""):
        raise _Problem("output_shape / SAME auto_pad: give explicit pads")
    kernel = list(w.shape[2:])
    strides = list(a.get("strides", [1] * nsp))
    dil = list(a.get("dilations", [1] * nsp))
    group = int(a.get("group", 1))
    pads = list(a.get("pads", [0] * (2 * nsp))) if a.get("auto_pad", "NOTSET") != "VALID" else [0] * (2 * nsp)
    out_pad = list(a.get("output_padding", [0] * nsp))
    begin = pads[:nsp]
    end = [pads[nsp + i] - out_pad[i] for i in range(nsp)]
    if any(e < 0 for e in end):
        raise _Problem("output_padding beyond the end pad adds rows only the bias reaches")
    caffe_pad = [min(b, e) for b, e in zip(begin, end)]
    params: dict = {"num_output": int(w.shape[1] * group), "bias_term": bias is not None}
    t.geometry(params, "pad", caffe_pad, 0, nsp)
    t.geometry(params, "kernel", kernel, 0, nsp)
    t.geometry(params, "stride", strides, 1, nsp)
    t.geometry(params, "dilation", dil, 1, nsp)
    if group != 1:
        params["group"] = group
    if nsp != 2:
        params["engine"] = "CAFFE"
    blobs = [w] + ([np.asarray(bias, dtype=F32).reshape(-1)] if bias is not None else [])
    frozen = (node.name or node.output[0]) in t.frozen_nodes
    needs_crop = [i for i in range(nsp) if begin[i] != end[i]]
    (top,) = t.net.add(
        "Deconvolution",
        [x],
        [node.output[0]] if not needs_crop else 1,
        t.lname() if not needs_crop else t.lname("deconv"),
        params,
        blobs,
        frozen=frozen,
    )
    for k, i in enumerate(needs_crop):
        length = t.net.shapes[top][2 + i]
        start = begin[i] - caffe_pad[i]
        stop = length - (end[i] - caffe_pad[i])
        top = t.slice_range(top, 2 + i, start, stop, top=node.output[0] if k == len(needs_crop) - 1 else None)
    t.set(node.output[0], top)


def _matmul_axis(t: _Translator, node, data_name: str, logical_axis: int, weight: np.ndarray) -> None:
    """y = x contracted along one axis with a constant (M x K) matrix ``weight``, in any layout."""
    v = t.val(data_name)
    j = v.perm.index(logical_axis)
    shape = t.net.shapes[v.blob]
    outer = int(np.prod(shape[:j], dtype=np.int64))
    k = shape[j]
    inner = int(np.prod(shape[j + 1 :], dtype=np.int64))
    m = weight.shape[0]
    out_shape = tuple(shape[:j]) + (m,) + tuple(shape[j + 1 :])
    out = node.output[0]
    if inner == 1:
        # InnerProduct(axis=j) flattens [j:] (= k values) and keeps [:j]
        last = j == len(shape) - 1
        frozen = (node.name or node.output[0]) in t.frozen_nodes
        (top,) = t.net.add(
            "InnerProduct",
            [v.blob],
            [out] if last else 1,
            t.lname() if last else t.lname("ip"),
            {"num_output": m, "bias_term": False, "axis": j},
            [weight],
            frozen=frozen,
        )
        if not last:
            (top,) = t.net.add("Reshape", [top], [out], t.lname(), {"shape": _shape_msg(out_shape)})
    else:
        blob = v.blob
        if shape != (outer, k, inner, 1):
            (blob,) = t.net.add(
                "Reshape", [blob], 1, t.lname("to_channels"), {"shape": _shape_msg((outer, k, inner, 1))}
            )
        frozen = {"frozen": (node.name or node.output[0]) in t.frozen_nodes}
        (conv,) = t.net.add(
            "Convolution",
            [blob],
            1,
            t.lname("matrix"),
            {"num_output": m, "bias_term": False, "kernel_size": [1]},
            [weight.reshape(m, k, 1, 1)],
            **frozen,
        )
        (top,) = t.net.add("Reshape", [conv], [out], t.lname(), {"shape": _shape_msg(out_shape)})
    t.set(out, top, v.perm, v.via)


def _matmul(t: _Translator, node) -> None:
    a_name, b_name = node.input[0], node.input[1]
    if t.is_const(b_name) and not t.is_const(a_name):
        b = np.asarray(t.const(b_name), dtype=F32)
        rank = len(t.shape(a_name))
        if b.ndim != 2 or rank < 2:
            raise _Problem("needs a 2-D constant matrix and a tensor of rank >= 2")
        _matmul_axis(t, node, a_name, rank - 1, np.ascontiguousarray(b.T))
    elif t.is_const(a_name) and not t.is_const(b_name):
        a = np.asarray(t.const(a_name), dtype=F32)
        rank = len(t.shape(b_name))
        if a.ndim != 2 or rank < 2:
            raise _Problem("needs a 2-D constant matrix and a tensor of rank >= 2")
        _matmul_axis(t, node, b_name, rank - 2, np.ascontiguousarray(a))
    else:
        raise _Problem("a product of two tensors (Caffe's InnerProduct needs constant weights)")


def _gemm(t: _Translator, node) -> None:
    a = _attrs(node)
    if a.get("transA", 0):
        raise _Problem("transA=1")
    x = t.data(node.input[0])
    if len(t.net.shapes[x]) != 2:
        raise _Problem("needs a 2-D input")
    w = np.asarray(t.const(node.input[1]), dtype=np.float64)
    w = w if a.get("transB", 0) else w.T
    w = (w * a.get("alpha", 1.0)).astype(F32)
    n = w.shape[0]
    c = t.opt_const(node, 2)
    blobs = [w]
    if c is not None:
        c = np.asarray(c, dtype=np.float64) * a.get("beta", 1.0)
        if c.size not in (1, n) or (c.ndim == 2 and c.shape[0] != 1):
            raise _Problem("the bias must be a vector over the outputs")
        blobs.append(np.broadcast_to(c.reshape(-1), (n,)).astype(F32))
    (top,) = t.net.add(
        "InnerProduct", [x], [node.output[0]], t.lname(), {"num_output": n, "bias_term": c is not None}, blobs
    )
    t.set(node.output[0], top)


# ---------------------------------------------------------------- pooling and normalization


def _pool(t: _Translator, node) -> None:
    op = node.op_type
    a = _attrs(node)
    x = t.data(node.input[0])
    shape = t.net.shapes[x]
    if len(shape) != 4:
        raise _Problem("Caffe's Pooling layer is 2-D (N x C x H x W) only")
    if len(node.output) > 1 and node.output[1]:
        raise _Problem("the Indices output")
    kernel = list(a["kernel_shape"])
    strides = list(a.get("strides", [1, 1]))
    if any(d != 1 for d in a.get("dilations", [1, 1])):
        raise _Problem("dilated pooling")
    pads = t.pads(a, shape[2:], kernel, strides, [1, 1])
    onnx_out = t.shape(node.output[0])[2:]
    for i in range(2):
        if pads[i] and pads[i] >= kernel[i]:
            raise _Problem(f"pad {pads[i]} >= kernel {kernel[i]} (Caffe requires pad < kernel)")
        if pooled_size(shape[2 + i], kernel[i], strides[i], pads[i]) < onnx_out[i]:
            raise _Problem(
                f"pads {pads[i]}/{pads[2 + i]} along axis {2 + i}: the end pad is larger than Caffe's symmetric pad can give"
            )
    is_max = op == "MaxPool"
    params: dict = {"pool": "MAX" if is_max else "AVE"}
    if kernel[0] == kernel[1]:
        params["kernel_size"] = kernel[0]
    else:
        params["kernel_h"], params["kernel_w"] = kernel
    if strides[0] == strides[1]:
        if strides[0] != 1:
            params["stride"] = strides[0]
    else:
        params["stride_h"], params["stride_w"] = strides
    if pads[0] or pads[1]:
        if pads[0] == pads[1]:
            params["pad"] = pads[0]
        else:
            params["pad_h"], params["pad_w"] = pads[0], pads[1]
    out = node.output[0]
    caffe_out = [pooled_size(shape[2 + i], kernel[i], strides[i], pads[i]) for i in range(2)]
    factor = None if is_max else _ave_divisor_correction(t, node, shape, params, onnx_out)
    extra = [i for i in range(2) if caffe_out[i] > onnx_out[i]]
    final_is_pool = not extra and factor is None
    (top,) = t.net.add(
        "Pooling", [x], [out] if final_is_pool else 1, t.lname() if final_is_pool else t.lname("pool"), params
    )
    for k, i in enumerate(extra):  # Caffe rounds the pooled size up: drop the rows ONNX (floor) does not have
        last = k == len(extra) - 1 and factor is None
        top = t.slice_range(top, 2 + i, 0, onnx_out[i], top=out if last else None, hint="floor")
    if factor is not None:
        (top,) = t.net.add("Scale", [top], [out], t.lname(), {"axis": 2, "num_axes": 2}, [factor])
    t.set(out, top)


def _ave_divisor_correction(t: _Translator, node, shape, params, onnx_out):
    """ONNX Runtime's AveragePool divisor vs Caffe's, measured on an all-ones input: None if they agree."""
    import onnxruntime as ort

    probe_in = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 1, shape[2], shape[3]])
    probe_out = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)
    single = onnx.helper.make_node(node.op_type, ["x"], ["y"], **_attrs(node))
    model = onnx.helper.make_model(
        onnx.helper.make_graph([single], "probe", [probe_in], [probe_out]),
        opset_imports=[onnx.helper.make_opsetid("", max(t.g.opset, 7))],
    )
    ones = np.ones((1, 1, shape[2], shape[3]), dtype=F32)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    onnx_ones = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"]).run(
        None, {"x": ones}
    )[0][0, 0]
    layer = proto.LayerParameter(name="probe", type="Pooling")
    _fill(layer.pooling_param, params)
    caffe_ones = forward_layer(layer, [ones], [])[0][0, 0, : onnx_out[0], : onnx_out[1]]
    factor = (onnx_ones.astype(np.float64) / caffe_ones.astype(np.float64)).astype(F32)
    return None if np.all(factor == 1) else factor


def _global_pool(t: _Translator, node) -> None:
    x = t.data(node.input[0])
    if len(t.net.shapes[x]) != 4:
        raise _Problem("Caffe's Pooling layer is 2-D (N x C x H x W) only")
    pool = "MAX" if node.op_type in ("GlobalMaxPool", "ReduceMax") else "AVE"
    out = node.output[0]
    keep = tuple(t.shape(out)) == (t.net.shapes[x][0], t.net.shapes[x][1], 1, 1)
    (top,) = t.net.add(
        "Pooling",
        [x],
        [out] if keep else 1,
        t.lname() if keep else t.lname("pool"),
        {"pool": pool, "global_pooling": True},
    )
    if not keep:
        (top,) = t.net.add("Reshape", [top], [out], t.lname(), {"shape": _shape_msg(t.shape(out))})
    t.set(out, top)


def _reduce(t: _Translator, node) -> None:
    a = _attrs(node)
    rank = len(t.shape(node.input[0]))
    axes = a.get("axes")
    if axes is None and len(node.input) > 1 and node.input[1]:
        axes = [int(v) for v in t.const(node.input[1]).ravel()]
    axes = sorted(ax + rank if ax < 0 else ax for ax in (axes or []))
    if rank != 4 or axes != [2, 3]:
        raise _Problem("only a reduction over H and W of an N x C x H x W tensor (global pooling) maps to Caffe")
    _global_pool(t, node)


def _batchnorm(t: _Translator, node) -> None:
    a = _attrs(node)
    if a.get("training_mode", 0) or any(o for o in node.output[1:]):
        raise _Problem("training mode")
    x = t.data(node.input[0])
    gamma, beta, mean, var = (np.asarray(t.const(n), dtype=F32).reshape(-1) for n in node.input[1:5])
    eps = float(a.get("epsilon", 1e-5))
    (normed,) = t.net.add(
        "BatchNorm", [x], 1, t.lname("bn"), {"use_global_stats": True, "eps": eps}, [mean, var, np.ones(1, dtype=F32)]
    )
    (top,) = t.net.add("Scale", [normed], [node.output[0]], t.lname(), {"bias_term": True}, [gamma, beta])
    t.set(node.output[0], top)


# ---------------------------------------------------------------- Resize kept for a fork flavor


def _resize(t: _Translator, node) -> None:
    from rewriter.targets import make_target

    sem = t.resize_sems.get(node.output[0])
    if sem is None or t.flavor == "bvlc":
        raise _Problem("BVLC Caffe has no resize layer (fix-resize should have lowered it)")
    axes = sem.resized_axes
    if make_target("caffe", {"flavor": t.flavor}).runs_as(sem) is None or not axes:
        raise _Problem(f"no {t.flavor} layer samples like this node")
    x = t.data(node.input[0])
    shape = t.net.shapes[x]
    out_shape = t.shape(node.output[0])
    if len(shape) != 4 or any(ax < 2 for ax in axes):
        raise _Problem("fork resize layers take N x C x H x W and resize H, W only")
    out = node.output[0]
    if t.flavor == "interp":
        (top,) = t.net.add("Interp", [x], [out], t.lname(), {"height": int(out_shape[2]), "width": int(out_shape[3])})
    else:
        fh, fw = out_shape[2] // shape[2], out_shape[3] // shape[3]
        if fh == fw:
            (top,) = t.net.add("Upsample", [x], [out], t.lname(), {"scale": int(fh)})
        else:  # the fork layer has one scale: the same repetition as a ones-kernel Deconvolution (exact)
            c = shape[1]
            params: dict = {"num_output": c, "bias_term": False, "group": c}
            t.geometry(params, "kernel", [fh, fw], 0, 2)
            t.geometry(params, "stride", [fh, fw], 1, 2)
            (top,) = t.net.add(
                "Deconvolution", [x], [out], t.lname(), params, [np.ones((c, 1, fh, fw), dtype=F32)], frozen=True
            )
            t.warnings.append(
                f"{node.name or out}: factors {fh}x{fw} differ, the fork Upsample layer has one scale: written as a ones-kernel Deconvolution (exact)"
            )
    t.set(out, top)


_HANDLERS = {
    "Identity": _identity_op,
    "Dropout": _identity_op,
    "Cast": _identity_op,
    "Transpose": _transpose,
    "Relu": _unary("ReLU"),
    "LeakyRelu": _leaky,
    "PRelu": _prelu,
    "Sigmoid": _unary("Sigmoid"),
    "Tanh": _unary("TanH"),
    "Elu": _elu,
    "Abs": _unary("AbsVal"),
    "Exp": _unary("Exp"),
    "Log": _unary("Log"),
    "Sqrt": _power(power=0.5),
    "Reciprocal": _power(power=-1.0),
    "Neg": _power(scale=-1.0),
    "Pow": _pow,
    "Clip": _clip,
    "Softmax": _softmax,
    "Reshape": _reshape_like,
    "Flatten": _reshape_like,
    "Squeeze": _reshape_like,
    "Unsqueeze": _reshape_like,
    "Concat": _concat,
    "Split": _split,
    "Slice": _slice,
    "Tile": _tile,
    "Pad": _pad,
    "Add": _binary,
    "Sub": _binary,
    "Mul": _binary,
    "Div": _binary,
    "Max": _binary_or_variadic,
    "Min": _binary_or_variadic,
    "Sum": _binary_or_variadic,
    "Mean": _variadic,
    "Conv": _conv,
    "ConvTranspose": _conv_transpose,
    "MatMul": _matmul,
    "Gemm": _gemm,
    "MaxPool": _pool,
    "AveragePool": _pool,
    "GlobalAveragePool": _global_pool,
    "GlobalMaxPool": _global_pool,
    "ReduceMean": _reduce,
    "ReduceMax": _reduce,
    "BatchNormalization": _batchnorm,
    "Resize": _resize,
    "Upsample": _resize,
}


# ------------------------------------------------------------------------------------------------
# Files


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(number: int, wire: int) -> bytes:
    return _varint((number << 3) | wire)


def _len_field(number: int, payload_len: int) -> bytes:
    return _key(number, 2) + _varint(payload_len)


def _string_field(number: int, text: str) -> bytes:
    data = text.encode("utf-8")
    return _len_field(number, len(data)) + data


class _BlobPiece:
    """One BlobProto: packed float data (5) then shape (7) — field order, as protobuf serializes it."""

    def __init__(self, array: np.ndarray) -> None:
        self.data = np.array(array, dtype="<f4", order="C")
        dims = b"".join(_varint(int(d)) for d in array.shape)
        shape_body = (_len_field(1, len(dims)) + dims) if dims else b""
        self.head = _len_field(5, self.data.nbytes) if self.data.size else b""
        self.tail = _len_field(7, len(shape_body)) + shape_body
        self.size = len(self.head) + (self.data.nbytes if self.data.size else 0) + len(self.tail)

    def write(self, f) -> None:
        f.write(self.head)
        if self.data.size:
            f.write(self.data.tobytes())
        f.write(self.tail)


def write_caffemodel(f, net_name: str, layers, weights: dict[str, list[np.ndarray]]) -> None:
    """Binary NetParameter {name, layer: {name, type, bottom, top, blobs}} streamed to ``f``.

    A small encoder (bytes identical to protobuf's serialization of the same message) so that weights go
    from numpy to the file without a per-float Python list.
    """
    f.write(_string_field(1, net_name))
    for layer in layers:
        head = _string_field(1, layer.name) + _string_field(2, layer.type)
        head += b"".join(_string_field(3, b) for b in layer.bottom) + b"".join(_string_field(4, t) for t in layer.top)
        pieces = [_BlobPiece(a) for a in weights.get(layer.name, [])]
        body_len = len(head) + sum(len(_len_field(7, p.size)) + p.size for p in pieces)
        f.write(_len_field(100, body_len))
        f.write(head)
        for p in pieces:
            f.write(_len_field(7, p.size))
            p.write(f)


def _atomic_pair(targets: list[tuple[Path, object]]) -> None:
    """Write each (path, writer(f)) to a temp file beside it, then rename all; nothing is left on error."""
    temps: list[tuple[str, Path]] = []
    try:
        for path, writer in targets:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
            temps.append((tmp, path))
            with os.fdopen(fd, "wb") as f:
                writer(f)
                f.flush()
                os.fsync(f.fileno())
            mask = os.umask(0)
            os.umask(mask)
            os.chmod(tmp, 0o666 & ~mask)
        for tmp, path in temps:
            os.replace(tmp, path)
        temps = []
    finally:
        for tmp, _ in temps:
            try:
                os.unlink(tmp)
            except OSError:
                pass


# ------------------------------------------------------------------------------------------------
# API


def _model_name(model) -> str:
    if isinstance(model, onnx.ModelProto):
        return model.graph.name or "model"
    return Path(model).stem


def _original_node_names(model) -> set[str]:
    from rewriter.model_io import load_model

    proto_model = model if isinstance(model, onnx.ModelProto) else load_model(model)
    return {n.name for n in proto_model.graph.node}


def _resize_origins(fix, original_names: set[str], fixed_nodes: list[onnx.NodeProto]) -> dict[str, str]:
    """Fixed-graph node name -> the ONNX Resize/Upsample it came from (emitted nodes are named after it)."""
    prefixes = sorted(
        ((r.name or "resize", r.name or "(unnamed)") for r in fix.nodes if not r.graph), key=lambda p: -len(p[0])
    )
    origin: dict[str, str] = {}
    for node in fixed_nodes:
        if node.name in original_names and node.op_type not in ("Resize", "Upsample"):
            continue
        for prefix, name in prefixes:
            if node.name == prefix or node.name.startswith(prefix + "/"):
                origin[node.name] = name
                break
    return origin


def _modernize_for_fork(model, input_shapes):
    """Work around fix-resize keeping an opset < 11 graph while spelling the Resize a fork layer matches as
    Resize-11 (an invalid model that ONNX Runtime rejects): bring such models to opset 11 first with
    ``fix_resize(target="onnx")`` (exact, verified), then fix for Caffe."""
    from rewriter.fix import fix_resize
    from rewriter.graph import default_opset
    from rewriter.model_io import load_model

    proto_model = model if isinstance(model, onnx.ModelProto) else load_model(model)
    opset = default_opset(proto_model)
    if opset >= 11 or not any(n.op_type in ("Resize", "Upsample") for n in proto_model.graph.node):
        return model, None
    if not isinstance(model, onnx.ModelProto):
        proto_model = load_model(model, load_weights=True)
    upgraded = fix_resize(proto_model, "onnx", input_shapes=input_shapes, verify="local")
    return (
        upgraded.model,
        f"opset {opset} < 11: upgraded to opset 11 with fix-resize --target onnx before the fork-layer mapping",
    )


def export_caffe(
    model: str | os.PathLike | onnx.ModelProto,
    prototxt: str | os.PathLike,
    caffemodel: str | os.PathLike | None = None,
    *,
    flavor: str = "bvlc",
    border: str = "exact",
    input_shapes: dict[str, tuple[int, ...]] | None = None,
) -> CaffeExport:
    """Export ``model`` to a Caffe prototxt + caffemodel whose upsampling equals ONNX Runtime's.

    Raises ``UsageError`` (bad option, dynamic shapes without ``input_shapes``), ``NotExactError`` (a resize
    fix-resize cannot make exact for the flavor), ``UnsupportedOpError`` (one line: every ONNX op the Caffe
    layers cannot express, with its nodes). Nothing is written unless the whole net translates.
    """
    from rewriter.fix import fix_resize
    from rewriter.graph import ModelView
    from rewriter.resize import describe_node, find_resizes

    if flavor not in FLAVORS:
        raise UsageError(f"--flavor {flavor!r}: expected bvlc, interp or upsample")
    if border not in BORDERS:
        raise UsageError(f"--border {border!r}: expected exact or zero")
    prototxt = Path(prototxt)
    caffemodel = Path(caffemodel) if caffemodel is not None else prototxt.with_suffix(".caffemodel")
    for path in (prototxt, caffemodel):
        if not path.parent.is_dir():
            raise UsageError(f"{path}: directory {path.parent} does not exist")
    if prototxt.resolve() == caffemodel.resolve():
        raise UsageError(f"{prototxt}: the prototxt and the caffemodel must be different files")
    if not isinstance(model, onnx.ModelProto) and Path(model).resolve() in (prototxt.resolve(), caffemodel.resolve()):
        raise UsageError(f"{model}: refusing to overwrite the input model")

    pre_warnings: list[str] = []
    source = model
    if flavor != "bvlc":
        source, note = _modernize_for_fork(model, input_shapes)
        if note:
            pre_warnings.append(note)
    fix = fix_resize(source, "caffe", caffe_flavor=flavor, border=border, input_shapes=input_shapes, verify="local")
    g = build(fix.model, fix.source_dir, input_shapes)

    resize_sems: dict[str, object] = {}
    if any(n.op_type in ("Resize", "Upsample") for n in g.nodes):
        view = ModelView.build(fix.model, fix.source_dir, input_shapes)
        for scope, node in find_resizes(view):
            if not scope.path:
                resize_sems[node.output[0]] = describe_node(view, scope, node)
    origins = _resize_origins(fix, _original_node_names(source), list(fix.model.graph.node))
    frozen = set(origins)

    tr = _Translator(g, flavor, resize_sems, frozen)
    tr.run()
    if tr.problems:
        raise UnsupportedOpError(_problem_line(tr.problems, flavor))
    outputs = tr.finish()
    net = proto.NetParameter(name=_model_name(model))
    net.layer.extend(tr.net.layers)

    header = f"# exported by rewriter export caffe (flavor {flavor}, border {border})\n"
    if flavor != "bvlc":
        used = sorted({layer.type for layer in tr.net.layers if layer.type in proto.FORK_LAYERS})
        header += f"# needs a Caffe fork with the {', '.join(used) or 'no'} layer(s)\n" if used else ""
    text = header + text_format.MessageToString(net)
    _atomic_pair(
        [
            (prototxt, lambda f: f.write(text.encode("utf-8"))),
            (caffemodel, lambda f: write_caffemodel(f, net.name, tr.net.layers, tr.net.weights)),
        ]
    )

    layers = dict(Counter(layer.type for layer in tr.net.layers))
    by_resize: dict[str, list[str]] = {}
    for layer in tr.net.layers:
        src = origins.get(tr.net.origin.get(layer.name, ""))
        if src is not None:
            by_resize.setdefault(src, []).append(layer.type)
    resize_layers: dict[str, str] = {}
    for r in fix.nodes:
        key = (f"{r.graph}/" if r.graph else "") + (r.name or "(unnamed)")
        caffe = by_resize.get(r.name or "(unnamed)") if not r.graph else None
        kinds = ", ".join(f"{k} x{v}" for k, v in Counter(caffe).items()) if caffe else "no layer"
        resize_layers[key] = f"{r.became if r.passes else r.was} -> Caffe: {kinds}"

    warnings = pre_warnings + list(tr.warnings)
    for name, perm in tr.io_perms.items():
        if name in g.inputs:
            warnings.append(
                f"input {name!r} is declared in the Caffe graph's layout: feed np.transpose(x, {list(perm)}) (its Transposes were removed; BVLC has no Permute)"
            )
    result = CaffeExport(
        prototxt=prototxt,
        caffemodel=caffemodel,
        fix=fix,
        layers=layers,
        resize_layers=resize_layers,
        border_error=None,
        warnings=warnings,
        inputs={name: tr.net.shapes[name] for name in g.inputs},
        outputs=outputs,
        io_permutations=dict(tr.io_perms),
        flavor=flavor,
        border=border,
    )
    if border == "zero":
        result.border_error, result.border_error_relative = measure_error(model, result)
        if any(not n.exact for n in fix.nodes):
            warnings.append(
                f"--border zero: the classic zero-border Deconvolution is not exact: max |Caffe - ONNX Runtime| = {result.border_error:.3g} ({result.border_error_relative:.3g} relative) on a seeded unit-normal input"
            )
        else:
            warnings.append(
                "--border zero: no node uses the classic recipe (none is an integer-factor linear resize); the export is exact"
            )
    return result


def _problem_line(problems: list[tuple[str, str, str | None]], flavor: str) -> str:
    plain: dict[str, list[str]] = {}
    detailed: dict[tuple[str, str], list[str]] = {}
    for op, name, reason in problems:
        if reason is None:
            plain.setdefault(op, []).append(name)
        else:
            detailed.setdefault((op, reason), []).append(name)
    parts = [f"graph input {name!r} {reason}" for op, name, reason in problems if op == "graph input"]
    plain.pop("graph input", None)
    detailed = {k: v for k, v in detailed.items() if k[0] != "graph input"}
    if plain:
        parts.append("unsupported ONNX ops: " + ", ".join(f"{op} ({_names(names)})" for op, names in plain.items()))
    for (op, reason), names in detailed.items():
        parts.append(f"{op} ({_names(names)}): {reason}")
    target = "BVLC Caffe" if flavor == "bvlc" else f"Caffe ({flavor} flavor)"
    return f"cannot export to {target}: " + "; ".join(parts)


def _names(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... {len(names) - limit} more" if len(names) > limit else "")


def measure_error(
    model, result: CaffeExport, input_shapes=None, seed: int = 0, inputs: dict[str, np.ndarray] | None = None
) -> tuple[float, float]:
    """max |Caffe - ORT| (and relative to max(1, max |ORT|)) on seeded unit-normal inputs, with the
    reference evaluator on the written files."""
    import onnxruntime as ort

    from rewriter.caffe.reference import load
    from rewriter.model_io import load_model

    onnx_model = model if isinstance(model, onnx.ModelProto) else load_model(model, load_weights=True)
    rng = np.random.default_rng(seed)
    feeds = {}
    for name, shape in result.inputs.items():
        perm = result.io_permutations.get(name)
        onnx_shape = shape if perm is None else tuple(shape[perm.index(a)] for a in range(len(shape)))
        feeds[name] = inputs[name] if inputs and name in inputs else rng.standard_normal(onnx_shape).astype(F32)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(onnx_model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    expected = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
    caffe_feeds = {
        n: np.transpose(v, result.io_permutations[n]) if n in result.io_permutations else v for n, v in feeds.items()
    }
    got = load(result.prototxt, result.caffemodel).forward(caffe_feeds)
    worst = rel = 0.0
    for name in result.outputs:
        want = expected[name]
        if name in result.io_permutations:
            want = np.transpose(want, result.io_permutations[name])
        diff = float(np.abs(got[name].astype(np.float64) - want.astype(np.float64)).max(initial=0.0))
        worst = max(worst, diff)
        rel = max(rel, diff / max(1.0, float(np.abs(want).max(initial=0.0))))
    return worst, rel


__all__ = ["BORDERS", "FLAVORS", "CaffeExport", "export_caffe", "measure_error", "write_caffemodel"]
