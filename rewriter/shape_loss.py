"""Why a tensor's shape or value is not static: the first node where it was lost, and what would fix it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from rewriter.errors import input_shape_option
from rewriter.scopes import Dim, Scope, shape_of
from rewriter.static_values import (
    DATA_SHAPED,
    MAX_ELEMENTS,
    NOT_FOLDED,
    SHAPE_INPUTS,
    StaticValues,
    SymVector,
    is_static,
)


@dataclass(frozen=True)
class Lost:
    """Where and why a shape or value stops being static.

    ``node``/``op``: the first node on the way to the tensor whose output shape or value became unknown (None
    when a graph input is itself the cause); ``reason``: why, in words; ``fix``: what the user can pass, when
    a symbolic input dimension is the cause; ``runtime_input``: the graph input whose run-time value is needed.
    """

    reason: str
    node: str | None = None
    op: str | None = None
    fix: str | None = None
    runtime_input: str | None = None

    def __str__(self) -> str:
        text = f"lost at {self.op} node {self.node!r}: {self.reason}" if self.node else self.reason
        return f"{text}: {self.fix}" if self.fix else text

    def at(self, node: str, op: str, via: str) -> Lost:
        """This cause seen from the node it first stops: "its 'pads' input <reason>" (a deeper node is kept)."""
        if self.node is not None:
            return self
        return Lost(f"its input {via!r} {self.reason}", node, op, self.fix, self.runtime_input)


class ShapeLoss:
    """For every tensor whose shape or value is unknown, the first place it was lost (one forward pass, on demand)."""

    def __init__(self, static: StaticValues, scopes: list[Scope]) -> None:
        self.static = static
        self._shape: dict[tuple[int, str], Lost] = {}
        self._value: dict[tuple[int, str], Lost] = {}
        for scope in scopes:
            self._seed_inputs(scope)
            for k, node in enumerate(scope.graph.node):
                self._visit(scope, node, node.name or f"{node.op_type}_{k}")

    def shape(self, scope: Scope, name: str) -> Lost | None:
        owner = self.static.owner(scope, name)
        if owner is None or is_static(scope.lookup_shape(name)):
            return None
        return self._shape.get((id(owner), name)) or Lost(f"the shape of {name!r} is not known")

    def value(self, scope: Scope, name: str) -> Lost | None:
        owner = self.static.owner(scope, name)
        if owner is None:
            return Lost(f"{name!r} is not a tensor of this graph")
        if _static_value(self.static.value(scope, name, read=False)) or self.static.readable(scope, name) or self.static.on_request(name):
            return None
        count = self.static.constant_elements(scope, name)
        if count is not None:
            return Lost(f"is a constant of {count} elements, more than the {MAX_ELEMENTS} read statically")
        return self._value.get((id(owner), name)) or Lost(f"the value of {name!r} is not known")

    def item(self, scope: Scope, name: str, k: int) -> Lost | None:
        """Why element ``k`` of the shape vector ``name`` is not static, followed back through the shape
        arithmetic to the input dimension it comes from; the whole tensor's cause where that is not possible."""
        for _ in range(64):  # shape-vector chains are short
            v = self.static.value(scope, name, read=False)
            if isinstance(v, np.ndarray) or (isinstance(v, SymVector) and k < len(v.items) and isinstance(v.items[k], int)):
                return None
            node = scope.lookup_producer(name)
            step = self._item_source(scope, node, k) if node is not None and node.domain in ("", "ai.onnx") else None
            if step is None:
                break
            if node.op_type == "Shape":  # type: ignore[union-attr]
                return self._dim(scope, *step)
            name, k = step
        return self.value(scope, name)

    def _item_source(self, scope: Scope, node: onnx.NodeProto, k: int) -> tuple[str, int] | None:
        """The input tensor and element that element ``k`` of ``node``'s output is computed from."""
        op, ins = node.op_type, list(node.input)
        values = [self.static.value(scope, n, read=False) if n else None for n in ins]
        if op == "Shape":
            rank = len(scope.lookup_shape(ins[0]) or ())
            begin = next((onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == "start"), 0)
            return ins[0], (begin % rank if rank else 0) + k
        if op in ("Identity", "Cast", "Floor", "Ceil", "Unsqueeze", "Squeeze", "Reshape"):
            return ins[0], k
        if op == "Concat":
            for n, v in zip(ins, values):
                length = len(v.items) if isinstance(v, SymVector) else np.size(v) if isinstance(v, np.ndarray) else None
                if length is None:
                    return None
                if k < length:
                    return n, k
                k -= length
            return None
        data = values[0].items if isinstance(values[0], SymVector) else None
        if op == "Gather" and data is not None and isinstance(values[1], np.ndarray) and k < values[1].size:
            return ins[0], int(values[1].flat[k]) % len(data)
        if op == "Slice" and data is not None and all(isinstance(v, np.ndarray) and v.size for v in values[1:3]):
            steps = values[4] if len(values) > 4 and isinstance(values[4], np.ndarray) else np.array([1])
            picked = range(len(data))[slice(int(values[1].flat[0]), int(values[2].flat[0]), int(steps.flat[0]))]
            return (ins[0], picked[k]) if k < len(picked) else None
        if op in ("Mul", "Div", "Add", "Sub", "Max", "Min"):
            for n, v in zip(ins, values):
                if isinstance(v, SymVector):
                    j = k if len(v.items) > 1 else 0
                    if not isinstance(v.items[j], int):
                        return n, j
        return None

    def _element_or_value(self, scope: Scope, name: str) -> Lost | None:
        """Why a shape-deciding vector is not static: its first unknown element where it can be traced."""
        v = self.static.value(scope, name, read=False)
        if isinstance(v, SymVector):
            first = next((k for k, d in enumerate(v.items) if d is None), None)
            first = first if first is not None else next((k for k, d in enumerate(v.items) if not isinstance(d, int)), None)
            if first is not None:
                return self.item(scope, name, first)
        return self.value(scope, name)

    def _dim(self, scope: Scope, name: str, k: int) -> Lost | None:
        """Why dimension ``k`` of tensor ``name`` is not static."""
        shape = scope.lookup_shape(name)
        if shape is not None and k < len(shape) and isinstance(shape[k], int):
            return None
        owner = self.static.owner(scope, name)
        declared = next((shape_of(vi) for vi in (owner.source or owner.graph).input if vi.name == name), None) if owner is not None and owner.parent is None else None
        if declared is not None and k < len(declared) and not isinstance(declared[k], int) and shape is not None and not isinstance(shape[k], int):
            d = declared[k]
            what = f"dimension {d!r}, which is symbolic" if isinstance(d, str) else f"dimension {k}, which is not fixed"
            return Lost(f"depends on input {name!r} {what}", fix=_input_shape_lost(name, declared).fix)
        return self.shape(scope, name)

    # ------------------------------------------------------------------ the pass

    def _seed_inputs(self, scope: Scope) -> None:
        graph = scope.source or scope.graph
        for vi in graph.input:
            name = vi.name
            if name in scope.initializers or self.static.value(scope, name, read=False) is not None:
                continue
            key = (id(scope), name)
            if scope.parent is not None:
                lost = Lost(f"depends on {name!r}, an input of subgraph {scope.path!r} set at run time")
                self._shape[key] = self._value[key] = lost
                continue
            self._value[key] = Lost(f"depends on graph input {name!r}, a value supplied at run time", runtime_input=name)
            if not is_static(scope.lookup_shape(name)):
                self._shape[key] = _input_shape_lost(name, shape_of(vi))

    def _visit(self, scope: Scope, node: onnx.NodeProto, label: str) -> None:
        for out in node.output:
            if not out:
                continue
            key = (id(scope), out)
            if not is_static(scope.shapes.get(out)):
                self._shape[key] = self._shape_cause(scope, node, label, out)
            if not _static_value(self.static.value(scope, out, read=False)):
                self._value[key] = self._value_cause(scope, node, label, out)

    def _shape_cause(self, scope: Scope, node: onnx.NodeProto, label: str, out: str) -> Lost:
        op = node.op_type
        if out in self.static.failures:
            return Lost(self.static.failures[out], label, op)
        if op in DATA_SHAPED:
            return Lost("its output shape depends on the data", label, op)
        decisive = [node.input[k] for k in SHAPE_INPUTS.get(op, ()) if k < len(node.input) and node.input[k]] if node.domain in ("", "ai.onnx") else []
        # A shape-deciding value that is unknown (not merely symbolic) loses the shape at this node.
        symbolic = {n for n in decisive if isinstance(v := self.static.value(scope, n, read=False), SymVector) and None not in v.items}
        for name in decisive:
            if name not in symbolic and (lost := self._element_or_value(scope, name)) is not None:
                return lost.at(label, op, name)
        for name in [*node.input, *symbolic]:
            if name and (lost := self.shape(scope, name) if name not in symbolic else self._element_or_value(scope, name)) is not None:
                return lost
        if node.domain not in ("", "ai.onnx"):
            return Lost(f"no shape inference for {node.domain}::{op}", label, op)
        if op in ("If", "Loop", "Scan"):
            return Lost("its subgraphs decide the output shape at run time", label, op)
        return Lost("shape inference cannot determine its output shape", label, op)

    def _value_cause(self, scope: Scope, node: onnx.NodeProto, label: str, out: str) -> Lost:
        op = node.op_type
        if out in self.static.failures:
            return Lost(self.static.failures[out], label, op)
        if op in ("Shape", "Size"):
            return self.shape(scope, node.input[0]) or Lost("the input shape is not known", label, op)
        if node.domain not in ("", "ai.onnx") or op in NOT_FOLDED:
            return Lost(f"{op} is not evaluated statically", label, op)
        for name in node.input:
            if name and (lost := self.value(scope, name)) is not None:
                return lost
        return Lost(f"{op} cannot be evaluated statically", label, op)


def _static_value(v) -> bool:
    return isinstance(v, np.ndarray) or (isinstance(v, SymVector) and v.known() is not None)


def _input_shape_lost(name: str, shape: tuple[Dim, ...] | None) -> Lost:
    if shape is None:
        return Lost(f"depends on input {name!r}, whose shape is not declared", fix=f"pass --input-shape {name}=DIMS")
    loose = [(k, d) for k, d in enumerate(shape) if not isinstance(d, int)]
    if not loose:
        return Lost(f"depends on input {name!r}, whose shape is not known", fix=f"pass --input-shape {name}=DIMS")
    named = ", ".join(repr(d) if isinstance(d, str) else str(k) for k, d in loose)
    kind = "symbolic" if all(isinstance(d, str) for _, d in loose) else "not fixed"
    plural = len(loose) > 1
    return Lost(f"depends on input {name!r} dimension{'s' if plural else ''} {named}, which {'are' if plural else 'is'} {kind}",
                fix=f"pass {input_shape_option(name, shape)}")
