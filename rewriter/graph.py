"""Read-only views of an ONNX model: graphs and subgraphs, static shapes, constant and shape-derived values.

Everything here works on the graph structure only: large weights are never read (shape inference runs
on a copy whose big initializers are replaced by typed inputs), so a multi-gigabyte model costs little.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Union

import numpy as np
import onnx
from onnx import numpy_helper

from rewriter.errors import BadModelError

# A dimension is a known int, a symbolic name (dim_param), or unknown (None).
Dim = Union[int, str, None]
# A value known at rewrite time: a full numpy array, or a 1-D vector of dims (e.g. derived from Shape).
Value = Union[np.ndarray, "SymVector"]

# Initializers bigger than this are hidden from shape inference (their data is never needed for shapes).
_INFERENCE_INLINE_LIMIT = 4096


@dataclass(frozen=True)
class SymVector:
    """A 1-D integer vector whose elements may be symbolic (a dim_param) or unknown."""

    items: tuple[Dim, ...]

    def known(self) -> np.ndarray | None:
        if all(isinstance(v, int) for v in self.items):
            return np.array(self.items, dtype=np.int64)
        return None


def fresh_name(base: str, taken: set[str]) -> str:
    """``base``, or ``base_1``, ``base_2``... whichever is not in ``taken``; it is added to ``taken``."""
    candidate, k = base, 1
    while candidate in taken:
        candidate = f"{base}_{k}"
        k += 1
    taken.add(candidate)
    return candidate


def default_opset(model: onnx.ModelProto) -> int:
    """The ai.onnx opset version the model imports (0 when it imports none)."""
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    return 0


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

    def lookup_producer(self, name: str) -> onnx.NodeProto | None:
        scope: Scope | None = self
        while scope is not None:
            if name in scope.producers:
                return scope.producers[name]
            scope = scope.parent
        return None

    def lookup_initializer(self, name: str) -> onnx.TensorProto | None:
        scope: Scope | None = self
        while scope is not None:
            if name in scope.initializers:
                return scope.initializers[name]
            if name in scope.producers:  # shadowed by a node output in an inner scope
                return None
            scope = scope.parent
        return None

    def lookup_shape(self, name: str) -> tuple[Dim, ...] | None:
        scope: Scope | None = self
        while scope is not None:
            if name in scope.shapes:
                return scope.shapes[name]
            scope = scope.parent
        return None

    def lookup_elem_type(self, name: str) -> int | None:
        scope: Scope | None = self
        while scope is not None:
            if name in scope.elem_types:
                return scope.elem_types[name]
            scope = scope.parent
        return None


def _shape_of(value_info: onnx.ValueInfoProto) -> tuple[Dim, ...] | None:
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


def _index_graph(graph: onnx.GraphProto, path: str, parent: Scope | None, out: list[Scope]) -> None:
    scope = Scope(graph=graph, path=path, parent=parent)
    for init in graph.initializer:
        scope.initializers[init.name] = init
        scope.shapes[init.name] = tuple(int(d) for d in init.dims)
        scope.elem_types[init.name] = init.data_type
    for vi in [*graph.input, *graph.value_info, *graph.output]:
        shape = _shape_of(vi)
        if shape is not None:
            scope.shapes[vi.name] = shape
        if vi.type.HasField("tensor_type"):
            scope.elem_types[vi.name] = vi.type.tensor_type.elem_type
    for node in graph.node:
        for o in node.output:
            if o:
                scope.producers[o] = node
    out.append(scope)
    for k, node in enumerate(graph.node):
        label = node.name or f"{node.op_type}_{k}"
        for attr_name, sub in subgraphs(node):
            _index_graph(sub, f"{path}/{label}/{attr_name}" if path else f"{label}/{attr_name}", scope, out)


def _strip_for_inference(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy for shape inference: large initializers become typed graph inputs (their bytes are not copied)."""
    big = [init for init in model.graph.initializer if _is_big(init)]
    saved = [(init, init.raw_data) for init in big if init.HasField("raw_data")]
    for init, _ in saved:
        init.ClearField("raw_data")
    stripped = onnx.ModelProto()
    try:
        stripped.CopyFrom(model)
    finally:
        for init, raw in saved:
            init.raw_data = raw
    graph = stripped.graph
    keep = [init for init in graph.initializer if not _is_big(init)]
    for init in graph.initializer:
        if _is_big(init):
            graph.input.append(onnx.helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
    del graph.initializer[:]
    graph.initializer.extend(keep)
    return stripped


def _is_big(init: onnx.TensorProto) -> bool:
    return init.data_location == onnx.TensorProto.EXTERNAL or int(np.prod(init.dims, dtype=np.int64)) > _INFERENCE_INLINE_LIMIT


def infer_shapes(model: onnx.ModelProto, input_shapes: dict[str, tuple[int, ...]] | None = None) -> onnx.ModelProto:
    """onnx shape inference (with data propagation) on a weight-free copy; never raises on odd models.

    ``input_shapes`` pins graph inputs to static shapes for the analysis only (the model is not changed).
    """
    stripped = _strip_for_inference(model)
    if input_shapes:
        check_input_shapes(model, input_shapes)
        by_name = {vi.name: vi for vi in stripped.graph.input}
        for name, dims in input_shapes.items():
            shape = by_name[name].type.tensor_type.shape
            shape.Clear()
            for d in dims:
                shape.dim.add().dim_value = int(d)
    try:
        return onnx.shape_inference.infer_shapes(stripped, check_type=False, strict_mode=False, data_prop=True)
    except Exception:  # inference is best effort: a model it cannot handle keeps its declared shapes
        return stripped


def check_input_shapes(model: onnx.ModelProto, input_shapes: dict[str, tuple[int, ...]]) -> None:
    """Reject ``--input-shape`` values naming no input or contradicting the model's static dims."""
    from rewriter.errors import UsageError

    initializer_names = {i.name for i in model.graph.initializer}
    inputs = {vi.name: vi for vi in model.graph.input if vi.name not in initializer_names}
    for name, dims in input_shapes.items():
        text = "x".join(map(str, dims))
        if name not in inputs:
            raise UsageError(f"--input-shape {name}={text}: the model has no graph input named {name!r} (inputs: {', '.join(inputs) or 'none'})")
        if any(d <= 0 for d in dims):
            raise UsageError(f"--input-shape {name}={text}: dimensions must be positive")
        declared = _shape_of(inputs[name])
        if declared is None:
            continue
        if len(declared) != len(dims):
            raise UsageError(f"--input-shape {name}={text}: rank {len(dims)} contradicts the model's rank {len(declared)}")
        for k, (d, want) in enumerate(zip(declared, dims)):
            if isinstance(d, int) and d != want:
                raise UsageError(f"--input-shape {name}={text}: dimension {k} is {d} in the model")


@dataclass
class ModelView:
    """A model with shape information and an index of every (sub)graph scope."""

    model: onnx.ModelProto
    base_dir: str | None = None
    scopes: list[Scope] = field(default_factory=list)

    @classmethod
    def build(cls, model: onnx.ModelProto, base_dir: str | None = None, input_shapes: dict[str, tuple[int, ...]] | None = None) -> ModelView:
        inferred = infer_shapes(model, input_shapes)
        scopes: list[Scope] = []
        _index_graph(inferred.graph, "", None, scopes)
        # Initializers (with their data) come from the original model, not the stripped copy.
        originals: list[Scope] = []
        _index_graph(model.graph, "", None, originals)
        for scope, orig in zip(scopes, originals):
            scope.source = orig.graph
            scope.initializers = orig.initializers
            for name in orig.initializers:
                scope.shapes[name] = orig.shapes[name]
                scope.elem_types[name] = orig.elem_types[name]
        return cls(model=model, base_dir=base_dir, scopes=scopes)

    @property
    def opset(self) -> int:
        return default_opset(self.model)

    def nodes(self) -> Iterator[tuple[Scope, onnx.NodeProto]]:
        for scope in self.scopes:
            for node in scope.graph.node:
                yield scope, node

    def tensor_value(self, tensor: onnx.TensorProto) -> np.ndarray:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            from rewriter.model_io import read_tensor

            return read_tensor(self.model, tensor, self.base_dir or ".")
        return numpy_helper.to_array(tensor)

    def value(self, scope: Scope, name: str) -> Value | None:
        """The value of tensor ``name`` if it is determined statically (constants and shape arithmetic)."""
        return _Evaluator(self, scope).value(name)


class _Evaluator:
    """Partial evaluation of the small integer/float subgraphs that feed Resize inputs."""

    _MAX_ELEMENTS = 1 << 16  # never materialise anything bigger: these are shape computations

    def __init__(self, view: ModelView, scope: Scope) -> None:
        self.view = view
        self.scope = scope
        self.memo: dict[str, Value | None] = {}

    def value(self, name: str) -> Value | None:
        if name in self.memo:
            return self.memo[name]
        self.memo[name] = None  # cycle guard
        result = self._compute(name)
        self.memo[name] = result
        return result

    def _compute(self, name: str) -> Value | None:
        if not name:
            return None
        init = self.scope.lookup_initializer(name)
        if init is not None:
            if int(np.prod(init.dims, dtype=np.int64)) > self._MAX_ELEMENTS:
                return None
            return self.view.tensor_value(init)
        node = self.scope.lookup_producer(name)
        if node is None:
            return None
        try:
            return self._eval_node(node, list(node.output).index(name))
        except BadModelError:
            raise
        except Exception:  # an op we cannot evaluate statically: the value is just unknown
            return None

    def _attr(self, node: onnx.NodeProto, name: str, default=None):
        for a in node.attribute:
            if a.name == name:
                return onnx.helper.get_attribute_value(a)
        return default

    def _eval_node(self, node: onnx.NodeProto, out_index: int) -> Value | None:
        op = node.op_type
        if node.domain not in ("", "ai.onnx"):
            return None
        if op == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    return numpy_helper.to_array(a.t)
                if a.name == "value_int":
                    return np.array(a.i, dtype=np.int64)
                if a.name == "value_ints":
                    return np.array(list(a.ints), dtype=np.int64)
                if a.name == "value_float":
                    return np.array(a.f, dtype=np.float32)
                if a.name == "value_floats":
                    return np.array(list(a.floats), dtype=np.float32)
            return None
        if op == "Shape":
            shape = self.scope.lookup_shape(node.input[0])
            if shape is None:
                return None
            start = self._attr(node, "start", 0)
            end = self._attr(node, "end", None)
            dims = list(shape)[slice(start, end)]
            vec = SymVector(tuple(dims))
            known = vec.known()
            return known if known is not None else vec
        if op == "Size":
            shape = self.scope.lookup_shape(node.input[0])
            if shape is None or not all(isinstance(d, int) for d in shape):
                return None
            return np.array(int(np.prod(shape, dtype=np.int64)), dtype=np.int64)

        inputs = [_normalize(self.value(i)) if i else None for i in node.input]
        if any(isinstance(v, SymVector) for v in inputs):
            return self._eval_symbolic(node, inputs)
        if any(v is None and name for v, name in zip(inputs, node.input)):
            return None
        if any(isinstance(v, np.ndarray) and v.size > self._MAX_ELEMENTS for v in inputs):
            return None
        return self._eval_reference(node, out_index, inputs)

    def _eval_symbolic(self, node: onnx.NodeProto, inputs: list[Value | None]) -> Value | None:
        """Element bookkeeping for vectors that contain symbolic dims (Gather/Slice/Concat/...)."""
        op = node.op_type
        data = inputs[0]
        if op in ("Identity", "Cast") and isinstance(data, SymVector):
            return data
        if op == "Gather" and isinstance(data, SymVector) and isinstance(inputs[1], np.ndarray):
            idx = inputs[1]
            picked = [data.items[int(k)] for k in np.atleast_1d(idx)]
            return SymVector(tuple(picked)) if idx.ndim else _scalar(picked[0])
        if op == "Slice" and isinstance(data, SymVector):
            starts, ends = inputs[1], inputs[2]
            steps = inputs[4] if len(inputs) > 4 and inputs[4] is not None else np.array([1])
            if not all(isinstance(v, np.ndarray) for v in (starts, ends, steps)):
                return None
            return SymVector(tuple(list(data.items)[slice(int(starts[0]), _clip_end(int(ends[0])), int(steps[0]))]))
        if op == "Concat":
            items: list[Dim] = []
            for v in inputs:
                if isinstance(v, SymVector):
                    items.extend(v.items)
                elif isinstance(v, np.ndarray) and v.ndim <= 1:
                    items.extend(int(x) for x in np.atleast_1d(v))
                else:
                    return None
            return SymVector(tuple(items))
        if op == "Unsqueeze" and isinstance(data, SymVector):
            return data
        if op == "Squeeze" and isinstance(data, SymVector) and len(data.items) == 1:
            return _scalar(data.items[0])
        if op in ("Mul", "Div", "Add", "Sub") and all(v is not None for v in inputs):
            a, b = (_as_items(v) for v in inputs)
            if a is None or b is None:
                return None
            if len(a) == 1 and len(b) > 1:
                a = a * len(b)
            if len(b) == 1 and len(a) > 1:
                b = b * len(a)
            if len(a) != len(b):
                return None
            out: list[Dim] = []
            for x, y in zip(a, b):
                if isinstance(x, int) and isinstance(y, int):
                    out.append(_arith(op, x, y))
                elif op == "Mul" and (x == 1 or y == 1):
                    out.append(y if x == 1 else x)
                elif op in ("Div",) and y == 1:
                    out.append(x)
                elif op in ("Add", "Sub") and y == 0:
                    out.append(x)
                else:
                    out.append(None)
            return _normalize(SymVector(tuple(out)))
        return None

    def _eval_reference(self, node: onnx.NodeProto, out_index: int, inputs: list[Value | None]) -> np.ndarray | None:
        return evaluate_node(node, inputs, self.view.opset)[out_index]  # type: ignore[arg-type]


def evaluate_node(node: onnx.NodeProto, inputs: list[np.ndarray | None], opset: int) -> list[np.ndarray | None]:
    """One node on constant inputs with onnx's reference evaluator (None for an unnamed, optional output)."""
    from onnx.reference import ReferenceEvaluator

    names = [f"in{k}" if n else "" for k, n in enumerate(node.input)]
    single = onnx.NodeProto()
    single.CopyFrom(node)
    del single.input[:]
    single.input.extend(names)
    del single.output[:]
    single.output.extend(f"out{k}" if o else "" for k, o in enumerate(node.output))
    feeds = {n: v for n, v in zip(names, inputs) if n and v is not None}
    graph = onnx.helper.make_graph(
        [single],
        "eval",
        [onnx.helper.make_tensor_value_info(n, onnx.helper.np_dtype_to_tensor_dtype(v.dtype), v.shape) for n, v in feeds.items()],
        [onnx.helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None) for o in single.output if o],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", max(opset, 7))])
    results = iter(ReferenceEvaluator(model).run(None, feeds))
    return [np.asarray(next(results)) if o else None for o in node.output]


def _normalize(v: Value | None) -> Value | None:
    """A symbolic vector whose elements all became known is just an array."""
    if isinstance(v, SymVector):
        known = v.known()
        return known if known is not None else v
    return v


def _arith(op: str, x: int, y: int) -> Dim:
    if op == "Mul":
        return x * y
    if op == "Add":
        return x + y
    if op == "Sub":
        return x - y
    return x // y if y and x % y == 0 else None


def _clip_end(end: int) -> int | None:
    return None if end >= (1 << 62) else end


def _scalar(d: Dim) -> Value:
    return np.array(d, dtype=np.int64) if isinstance(d, int) else SymVector((d,))


def _as_items(v: Value) -> list[Dim] | None:
    if isinstance(v, SymVector):
        return list(v.items)
    if isinstance(v, np.ndarray) and v.ndim <= 1:
        return [int(x) if float(x).is_integer() else None for x in np.atleast_1d(v)]
    return None
