"""The graphs of a model as scopes: each (sub)graph with the names visible in it, and declared shapes.

Kept apart from the analysis that fills the shapes in (``rewriter.static_values``, ``rewriter.graph``) so that
both can name a scope without depending on each other.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Union

import onnx

# A dimension is a known int, a symbolic name (dim_param), or unknown (None).
Dim = Union[int, str, None]


def shape_of(value_info: onnx.ValueInfoProto) -> tuple[Dim, ...] | None:
    t = value_info.type
    if not t.HasField("tensor_type") or not t.tensor_type.HasField("shape"):
        return None
    dims: list[Dim] = []
    for d in t.tensor_type.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param") and d.dim_param:
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return tuple(dims)


def subgraphs(node: onnx.NodeProto) -> Iterator[tuple[str, onnx.GraphProto]]:
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            yield attr.name, attr.g
        elif attr.type == onnx.AttributeProto.GRAPHS:
            for k, g in enumerate(attr.graphs):
                yield f"{attr.name}[{k}]", g


@dataclass
class Scope:
    """One graph with the names visible in it (its own and its enclosing graphs')."""

    graph: onnx.GraphProto
    path: str  # "" for the main graph, e.g. "If_3/then_branch" for a subgraph
    parent: Scope | None = None
    producers: dict[str, onnx.NodeProto] = field(default_factory=dict)
    initializers: dict[str, onnx.TensorProto] = field(default_factory=dict)
    shapes: dict[str, tuple[Dim, ...]] = field(default_factory=dict)
    elem_types: dict[str, int] = field(default_factory=dict)
    source: onnx.GraphProto | None = None  # the model's own graph (``graph`` may be a shape-inferred copy)

    def chain(self) -> Iterator[Scope]:
        """This scope and its enclosing ones, innermost first (where a name is looked up)."""
        scope: Scope | None = self
        while scope is not None:
            yield scope
            scope = scope.parent

    def lookup_producer(self, name: str) -> onnx.NodeProto | None:
        return next((scope.producers[name] for scope in self.chain() if name in scope.producers), None)

    def lookup_initializer(self, name: str) -> onnx.TensorProto | None:
        for scope in self.chain():
            if name in scope.initializers:
                return scope.initializers[name]
            if name in scope.producers:  # shadowed by a node output in an inner scope
                return None
        return None

    def lookup_shape(self, name: str) -> tuple[Dim, ...] | None:
        return next((scope.shapes[name] for scope in self.chain() if name in scope.shapes), None)

    def lookup_elem_type(self, name: str) -> int | None:
        return next((scope.elem_types[name] for scope in self.chain() if name in scope.elem_types), None)
