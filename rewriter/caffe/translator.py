"""The Caffe translator core: the Caffe blob and layout of every ONNX tensor, and the driver.

Tensors carry a layout: the Caffe blob of ONNX tensor t is ``np.transpose(t, perm)``. Transposes only change
the layout (no layer); layout-agnostic handlers (elementwise, Concat, Slice, Split, Softmax, Tile, MatMul)
work in any layout, the rest ask for the ONNX layout with ``data``. A permutation that reaches them is a
refusal (BVLC has no Permute) unless it only moves size-1 axes (then a Reshape is the same memory). A graph
input whose consumers all transpose it the same way is declared in the transposed layout.

The driver runs each node's registered handler (``rewriter.caffe.ops``). A node that cannot be translated
is recorded with its reason and poisons its outputs, so one export lists every problem at once; ``finish``
names the output blobs and silences the tops nothing reads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from rewriter.caffe.net import F32, Net, shape_msg
from rewriter.caffe.static import StaticGraph
from rewriter.exporting.onnx_readers import ConstInput, attributes
from rewriter.exporting.registry import OpRegistry


class Problem(Exception):
    """One node cannot be translated (the message says why)."""


@dataclass
class Value:
    """Where an ONNX tensor lives in the net: its blob is ``np.transpose(tensor, perm)``."""

    blob: str
    perm: tuple[int, ...]
    via: tuple[str, ...] = ()  # Transpose nodes that produced the layout (for messages)


def is_identity(perm) -> bool:
    return tuple(perm) == tuple(range(len(perm)))


class Translator:
    """ONNX nodes -> Caffe layers, keeping the Caffe blob and layout of every ONNX tensor."""

    def __init__(
        self,
        g: StaticGraph,
        ops: OpRegistry,
        flavor: str,
        resize_sems: dict[str, object],
        frozen_nodes: set[str],
    ) -> None:
        self.g = g
        self.ops = ops
        self.flavor = flavor
        self.resize_sems = resize_sems
        self.frozen_nodes = frozen_nodes
        reserved = (
            set(g.shapes) | set(g.consts) | {o for n in g.nodes for o in n.output} | set(g.inputs) | set(g.outputs)
        )
        self.net = Net(reserved)
        self.net.frozen_origins = set(frozen_nodes)
        self.vals: dict[str, Value] = {}
        self.poisoned: set[str] = set()
        self.problems: list[tuple[str, str, str | None]] = []
        self.warnings: list[str] = []
        self.io_perms: dict[str, tuple[int, ...]] = {}
        self._param_cache: dict[tuple, str] = {}
        self._materialized: dict[str, str] = {}
        # ONNX Slices of one tensor along one axis share one Slice layer (planned by the Slice handler)
        self.slice_groups: dict[str, list] | None = None
        self.slice_done: dict[str, str] = {}
        self.node: onnx.NodeProto | None = None

    # ---------------------------------------------------------------- values

    def shape(self, name: str) -> tuple[int, ...]:
        if name not in self.g.shapes:
            raise Problem(f"the shape of {name!r} is not static")
        return self.g.shapes[name]

    def is_const(self, name: str) -> bool:
        return bool(name) and name in self.g.consts

    def const(self, name: str) -> np.ndarray:
        if not self.is_const(name):
            raise Problem(f"input {name!r} must be a constant (initializer) for Caffe")
        return self.g.consts[name]

    def const_input(self, node: onnx.NodeProto) -> ConstInput:
        """``node``'s constant inputs for the ONNX readers (a computed one is refused)."""
        return lambda k, what: self.const(node.input[k])

    def opt_const(self, node: onnx.NodeProto, k: int) -> np.ndarray | None:
        """The constant optional input ``k`` of ``node``, None when it is not given."""
        return self.const(node.input[k]) if len(node.input) > k and node.input[k] else None

    def val(self, name: str) -> Value:
        if name in self.vals:
            return self.vals[name]
        if self.is_const(name):
            return Value(
                self.param_blob(name, tuple(range(self.g.consts[name].ndim))), tuple(range(self.g.consts[name].ndim))
            )
        raise Problem(f"tensor {name!r} has no Caffe blob")

    def alias(self, name: str, source: str) -> None:
        """``name`` is the same blob, in the same layout, as ``source`` (no layer)."""
        v = self.val(source)
        self.vals[name] = Value(v.blob, v.perm, v.via)

    def set(self, name: str, blob: str, perm=None, via: tuple[str, ...] = ()) -> None:
        perm = tuple(range(len(self.net.shapes[blob]))) if perm is None else tuple(perm)
        self.vals[name] = Value(blob, perm, via)
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
                {"shape": shape_msg(value.shape)},
                [value],
            )
            self._param_cache[key] = top
        return self._param_cache[key]

    def data(self, name: str) -> str:
        """The blob of ``name`` in ONNX layout (the layout-sensitive layers need it)."""
        v = self.val(name)
        if is_identity(v.perm):
            return v.blob
        if name in self._materialized:
            return self._materialized[name]
        logical = self.shape(name)
        moved = [a for a in v.perm if logical[a] != 1]
        if moved != sorted(moved):
            via = f" (left by {', '.join(v.via)})" if v.via else ""
            raise Problem(
                f"its input {name!r} is a real permutation of the Caffe blob{via}: blob = transpose({name}, {list(v.perm)}), and BVLC Caffe has no Permute layer"
            )
        (top,) = self.net.add(
            "Reshape",
            [v.blob],
            [self.net.blob_name(f"{name}/layout")],
            f"{name}/layout",
            {"shape": shape_msg(logical)},
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
            {"shape": [shape_msg(shape)], "data_filler": [{"type": "constant", "value": 0.0}]},
        )
        (out,) = self.net.add("Concat", [blob, zeros], 1, self.lname(f"zero_pad{axis}"), {"axis": axis})
        return out

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
            perms = {tuple(attributes(c).get("perm", [])) for c in consumers if c.op_type == "Transpose"}
            if (
                consumers
                and all(c.op_type == "Transpose" for c in consumers)
                and len(perms) == 1
                and name not in g.outputs
            ):
                p = perms.pop()
                if p and not is_identity(p):
                    perm = p
                    self.io_perms[name] = perm
            shape = tuple(g.shapes[name][a] for a in perm)
            self.net.current_origin = ""
            (top,) = self.net.add("Input", [], [name], name, {"shape": [shape_msg(shape)]})
            self.vals[name] = Value(top, perm, ("graph input layout",) if name in self.io_perms else ())
        for node in g.nodes:
            self.node = node
            self.net.current_origin = node.name or node.output[0]
            entry = self.ops.lookup(node)
            if entry is None:
                op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
                self.problems.append((op, node.name or node.output[0], None))
                self.poisoned.update(o for o in node.output if o)
                continue
            if any(i in self.poisoned for i in node.input if i):
                self.poisoned.update(o for o in node.output if o)
                continue
            try:
                reason = self.ops.refusal(node, self)
                if reason is not None:
                    raise Problem(reason)
                entry.handler(self, node)
            except Problem as e:
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
                self.vals[name] = Value(
                    self.param_blob(name, tuple(range(self.g.consts[name].ndim))),
                    tuple(range(self.g.consts[name].ndim)),
                )
            v = self.vals[name]
            blob, perm = v.blob, v.perm
            if not is_identity(perm):
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
                inner = net.rename_to_fresh(name, f"{name}/value")
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


__all__ = ["Problem", "Translator", "Value", "is_identity"]
