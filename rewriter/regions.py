"""Data-movement regions of a graph, and the element map each one computes, read off ONNX Runtime's numbers.

A region is a connected piece of the main graph built only from ops that move elements without computing
on them (Reshape, Tile, Expand, Gather, GatherND, DepthToSpace, Concat, Transpose...): one data tensor
``x`` goes in, one tensor ``y`` comes out, every other input of its nodes is a value the ``ModelView``
knows statically (a constant, or index arithmetic on shapes), and no intermediate tensor is used outside it.
``y`` is then a gather of ``x``: ``y[i] = x[source(i)]``. Nodes fix-resize emitted (stamped with the rule
that made them) are never part of a region, so a lowering is not recognised back into a Resize.

``index_map`` finds ``source`` without trusting any op's name: the region alone runs in ONNX Runtime on an
index-coded input (element k holds the number k, exactly representable in float32), so every output element
names the input element it copied. ``separable_tables`` then says whether that map is one index table per
axis (``y[i0, i1, ...] = x[t0[i0], t1[i1], ...]``), the form a nearest resize has.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from rewriter.graph import Dim, ModelView, Scope, SymVector, subgraphs
from rewriter.ort_runtime import session
from rewriter.spelling import single_node_model
from rewriter.splice import RULE_KEY

# Op -> positions of its data inputs (None: every input); the other inputs must be static values.
MOVEMENT_OPS: dict[str, tuple[int, ...] | None] = {
    "Identity": (0,), "Transpose": (0,), "Reshape": (0,), "Flatten": (0,), "Squeeze": (0,), "Unsqueeze": (0,),
    "DepthToSpace": (0,), "SpaceToDepth": (0,), "Tile": (0,), "Expand": (0,), "Gather": (0,), "GatherND": (0,),
    "GatherElements": (0,), "Slice": (0,), "Concat": None,
}
# The region's output is materialised several times (one per index digit): bounded so analysis stays cheap.
MAX_OUTPUT_ELEMENTS = 1 << 25
_EXACT_F32 = 1 << 24  # integers up to here are exact in float32
_DIGIT = 1 << 12


@dataclass(frozen=True)
class Region:
    """Nodes of the main graph (positions, in graph order) that compute ``y`` from ``x`` alone."""

    x: str
    y: str
    positions: tuple[int, ...]
    nodes: tuple[onnx.NodeProto, ...]
    params: tuple[str, ...]  # the non-data inputs, all static
    x_shape: tuple[Dim, ...]
    y_shape: tuple[Dim, ...]
    elem_type: int

    @property
    def description(self) -> str:
        return " -> ".join(n.op_type for n in self.nodes)

    @property
    def node_names(self) -> tuple[str, ...]:
        return tuple(n.name or n.output[0] for n in self.nodes)


def _data_inputs(node: onnx.NodeProto) -> list[str]:
    positions = MOVEMENT_OPS[node.op_type]
    names = list(node.input) if positions is None else [node.input[k] for k in positions if k < len(node.input)]
    return [n for n in names if n]


def _params(node: onnx.NodeProto) -> list[str]:
    data = set(_data_inputs(node))
    return [n for n in node.input if n and n not in data]


def _uses(graph: onnx.GraphProto) -> dict[str, list[int]]:
    """Tensor -> positions of the nodes reading it, a read inside a node's subgraph counting as that node's."""
    uses: dict[str, list[int]] = {}

    def reads(g: onnx.GraphProto, into: set[str]) -> None:
        for n in g.node:
            into.update(i for i in n.input if i)
            for _, sub in subgraphs(n):
                reads(sub, into)

    for k, node in enumerate(graph.node):
        names = {i for i in node.input if i}
        for _, sub in subgraphs(node):
            reads(sub, names)
        for name in names:
            uses.setdefault(name, []).append(k)
    return uses


def find_regions(view: ModelView) -> list[Region]:
    """Candidate regions of the main graph whose output is larger than their input on some axis and no
    smaller on any (the only regions that can be upsampling), largest first."""
    scope = view.scopes[0]
    graph = scope.graph
    moving = {k for k, n in enumerate(graph.node) if _is_movement(view, scope, n)}
    producer = {o: k for k, n in enumerate(graph.node) for o in n.output if o}
    uses = _uses(graph)
    outputs = {o.name for o in graph.output}
    found: list[Region] = []
    for k in moving:
        for y in graph.node[k].output:
            for x, members in _cuts(graph, moving, producer, k):
                region = _region(view, scope, x, y, members, uses, outputs)
                if region is not None:
                    found.append(region)
    found.sort(key=lambda r: (-len(r.positions), r.positions[-1]))
    return found


def _is_movement(view: ModelView, scope: Scope, node: onnx.NodeProto) -> bool:
    if node.domain not in ("", "ai.onnx") or node.op_type not in MOVEMENT_OPS or len(node.output) != 1:
        return False
    if any(e.key == RULE_KEY for e in node.metadata_props):
        return False  # emitted by fix-resize (e.g. a Gather lowering): already exact for its target, kept
    return all(view.value(scope, p) is not None for p in _params(node))


def _cuts(graph: onnx.GraphProto, moving: set[int], producer: dict[str, int], last: int) -> list[tuple[str, tuple[int, ...]]]:
    """Every (x, nodes) such that the movement nodes from tensor x up to node ``last`` read nothing else."""
    cuts = []
    frontier = [(last,)]
    seen: set[tuple[int, ...]] = set()
    while frontier and len(seen) < 256:  # bounded: real upsampling regions are a few nodes
        members = frontier.pop()
        if members in seen:
            continue
        seen.add(members)
        inputs = {i for k in members for i in _data_inputs(graph.node[k])} - {o for k in members for o in graph.node[k].output}
        if len(inputs) == 1:
            cuts.append((next(iter(inputs)), tuple(sorted(members))))
        for name in inputs:  # grow the region by the producer of one of its inputs
            k = producer.get(name)
            if k is not None and k in moving and len(members) < 32:
                frontier.append(tuple(sorted({*members, k})))
    return cuts


def _region(view: ModelView, scope: Scope, x: str, y: str, members: tuple[int, ...], uses: dict[str, list[int]], outputs: set[str]) -> Region | None:
    graph = scope.graph
    inside = set(members)
    for k in members:
        for o in graph.node[k].output:
            if o != y and (o in outputs or any(u not in inside for u in uses.get(o, []))):
                return None  # an intermediate is used outside: removing the region would break it
    if view.value(scope, x) is not None or scope.lookup_initializer(x) is not None:
        return None  # a constant: nothing to upsample at run time
    x_shape, y_shape = scope.lookup_shape(x), scope.lookup_shape(y)
    if x_shape is None or y_shape is None or len(x_shape) != len(y_shape) or not y_shape:
        return None
    grows = False
    y_shape = list(y_shape)
    for axis, (n, m) in enumerate(zip(x_shape, y_shape)):
        if isinstance(n, int) and isinstance(m, int):
            if m < n or (m > n and n < 2):
                return None  # downsampling, or a broadcast from length 1: not an upsampling
            grows = grows or m > n
        elif isinstance(n, str) and not isinstance(m, int):
            y_shape[axis] = n  # e.g. a Reshape to -1 (inference: unknown or a fresh symbol): checked when the region runs
        elif n != m or n is None:
            return None  # a symbolic length must be the same on both sides
    if not grows or int(np.prod([m if isinstance(m, int) else 3 for m in y_shape])) > MAX_OUTPUT_ELEMENTS:
        return None
    nodes = tuple(graph.node[k] for k in members)
    params = tuple(dict.fromkeys(p for n in nodes for p in _params(n)))
    elem_type = scope.lookup_elem_type(x) or TensorProto.FLOAT
    return Region(x, y, members, nodes, params, tuple(x_shape), tuple(y_shape), elem_type)


def concrete(shape: tuple[Dim, ...], symbols: dict[str, int]) -> tuple[int, ...]:
    return tuple(d if isinstance(d, int) else symbols[str(d)] for d in shape)


def region_model(view: ModelView, region: Region, symbols: dict[str, int]) -> onnx.ModelProto | None:
    """The region alone (float32, whatever its data type: its ops only move elements), its parameters frozen
    to their static values with symbolic dims set to ``symbols``; None if a parameter stays unknown."""
    scope = view.scopes[0]
    tensors = []
    for name in region.params:
        value = view.value(scope, name)
        if isinstance(value, SymVector):
            items = [d if isinstance(d, int) else symbols.get(str(d)) for d in value.items]
            if any(d is None for d in items):
                return None
            value = np.array(items, dtype=np.int64)
        if value is None:
            return None
        tensors.append(numpy_helper.from_array(np.asarray(value), name))
    nodes = []
    for node in region.nodes:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        del copy.metadata_props[:]
        nodes.append(copy)
    return single_node_model(nodes, tensors, concrete(region.x_shape, symbols), max(view.opset, 7), TensorProto.FLOAT, region.x, region.y)


def index_map(model: onnx.ModelProto, x_shape: tuple[int, ...]) -> np.ndarray | str:
    """For each output element, the flat index of the input element it holds (from ORT's own run of
    ``model`` on index-coded inputs), or why there is no such map."""
    total = int(np.prod(x_shape))
    codes = np.arange(total, dtype=np.int64).reshape(x_shape)
    digits = [codes] if total <= _EXACT_F32 else [codes % _DIGIT, codes // _DIGIT]
    try:
        run = session(model, optimize=False)
        outs = [run.run(None, {model.graph.input[0].name: d.astype(np.float32)})[0] for d in digits]
    except Exception as e:  # noqa: BLE001 - ORT refuses the region: it is not analysed
        return f"ONNX Runtime cannot run the region ({(str(e).strip().splitlines() or [type(e).__name__])[0]})"
    source = np.zeros(outs[0].shape, dtype=np.int64)
    for k, out in enumerate(outs):
        if not np.array_equal(out, np.rint(out)):
            return "the region computes values, not copies"
        source += out.astype(np.int64) * (_DIGIT**k if len(outs) > 1 else 1)
    if source.size and (source.min() < 0 or source.max() >= total):
        return "the region computes values, not copies"
    return source


def separable_tables(source: np.ndarray, x_shape: tuple[int, ...]) -> list[np.ndarray] | str:
    """Per axis the index table ``t`` with ``y[i0, i1, ...] = x[t0[i0], t1[i1], ...]``, or why none exists."""
    if source.ndim != len(x_shape):
        return f"rank {len(x_shape)} -> {source.ndim}"
    coords = np.unravel_index(source, x_shape)
    tables = []
    for axis, c in enumerate(coords):
        line = [0] * source.ndim
        line[axis] = slice(None)  # type: ignore[call-overload]
        tables.append(np.asarray(c[tuple(line)]))
    codes = np.arange(int(np.prod(x_shape)), dtype=np.int64).reshape(x_shape)
    if not np.array_equal(codes[np.ix_(*tables)], source):
        return "the output elements do not come from one index table per axis"
    return tables
