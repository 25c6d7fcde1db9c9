"""Read-only views of an ONNX model: graphs and subgraphs, static shapes, constant and shape-derived values.

Everything here works on the graph structure only: large weights are never read (shape inference runs
on a copy whose big initializers are replaced by typed inputs, and ``static_values`` folds shape arithmetic
from small constants only), so a multi-gigabyte model costs little.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

from rewriter.errors import UsageError
from rewriter.scopes import Dim, Scope, shape_of, subgraphs
from rewriter.shape_loss import Lost, ShapeLoss
from rewriter.static_values import MAX_ELEMENTS, StaticValues, SymVector, Value, elements, evaluate_node

__all__ = ["Dim", "Lost", "ModelView", "Scope", "SymVector", "Value", "as_input_values", "check_input_shapes", "check_input_values", "default_opset",
           "evaluate_node", "fresh_name", "infer_shapes", "subgraphs"]

# Initializers bigger than this are hidden from shape inference (their data is never needed for shapes).
_INFERENCE_INLINE_LIMIT = 4096


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


def _index_graph(graph: onnx.GraphProto, path: str, parent: Scope | None, out: list[Scope]) -> None:
    scope = Scope(graph=graph, path=path, parent=parent)
    for init in graph.initializer:
        scope.initializers[init.name] = init
        scope.shapes[init.name] = tuple(int(d) for d in init.dims)
        scope.elem_types[init.name] = init.data_type
    for vi in [*graph.input, *graph.value_info, *graph.output]:
        shape = shape_of(vi)
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
    return init.data_location == onnx.TensorProto.EXTERNAL or elements(init.dims) > _INFERENCE_INLINE_LIMIT


def infer_shapes(model: onnx.ModelProto, input_shapes: dict[str, tuple[int, ...]] | None = None,
                 input_values: dict[str, np.ndarray] | None = None) -> onnx.ModelProto:
    """onnx shape inference (with data propagation) on a weight-free copy; never raises on odd models.

    ``input_shapes`` pins graph inputs to static shapes, ``input_values`` to constants (small ones become
    initializers of the copy, so inference sees their data), for the analysis only: the model is not changed.
    """
    stripped = _strip_for_inference(model)
    pinned = dict(input_shapes or {})
    if input_shapes:
        check_input_shapes(model, input_shapes)
    if input_values:
        check_input_values(model, input_values, input_shapes)
        pinned.update({name: v.shape for name, v in input_values.items()})
        small = {name: v for name, v in input_values.items() if v.size <= MAX_ELEMENTS}
        stripped.graph.initializer.extend(numpy_helper.from_array(v, name) for name, v in small.items())
        kept = [vi for vi in stripped.graph.input if vi.name not in small]
        del stripped.graph.input[:]
        stripped.graph.input.extend(kept)
    by_name = {vi.name: vi for vi in stripped.graph.input}
    for name, dims in pinned.items():
        if name in by_name:
            shape = by_name[name].type.tensor_type.shape
            shape.Clear()
            for d in dims:
                shape.dim.add().dim_value = int(d)
    try:
        return onnx.shape_inference.infer_shapes(stripped, check_type=False, strict_mode=False, data_prop=True)
    except Exception:  # inference is best effort: a model it cannot handle keeps its declared shapes
        return stripped


def _graph_inputs(model: onnx.ModelProto) -> dict[str, onnx.ValueInfoProto]:
    initializer_names = {i.name for i in model.graph.initializer}
    return {vi.name: vi for vi in model.graph.input if vi.name not in initializer_names}


def check_input_shapes(model: onnx.ModelProto, input_shapes: dict[str, tuple[int, ...]]) -> None:
    """Reject ``--input-shape`` values naming no input or contradicting the model's static dims."""
    inputs = _graph_inputs(model)
    for name, dims in input_shapes.items():
        text = "x".join(map(str, dims))
        if name not in inputs:
            raise UsageError(f"--input-shape {name}={text}: the model has no graph input named {name!r} (inputs: {', '.join(inputs) or 'none'})")
        if any(d <= 0 for d in dims):
            raise UsageError(f"--input-shape {name}={text}: dimensions must be positive")
        if (problem := _shape_conflict(shape_of(inputs[name]), tuple(dims))) is not None:
            raise UsageError(f"--input-shape {name}={text}: {problem}")


def as_input_values(model: onnx.ModelProto, given: dict[str, object] | None) -> dict[str, np.ndarray]:
    """Pinned input values as arrays of the input's declared type, shaped like it when it is static: a plain
    list such as ``[1, 1, 2, 2]`` (what ``--input-value scales=1,1,2,2`` gives) works for any input."""
    inputs = _graph_inputs(model)
    out: dict[str, np.ndarray] = {}
    for name, value in (given or {}).items():
        vi = inputs.get(name)
        if isinstance(value, np.ndarray) or vi is None or not vi.type.tensor_type.elem_type:
            out[name] = np.asarray(value)  # validated (name, dtype, shape) by check_input_values
            continue
        try:
            array = np.asarray(value, dtype=onnx.helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type))
        except (TypeError, ValueError):
            raise UsageError(f"input value {name}: {value!r} is not a list of numbers") from None
        declared = shape_of(vi)
        if declared is not None and all(isinstance(d, int) for d in declared) and int(np.prod(declared)) == array.size:
            array = array.reshape(declared)  # type: ignore[arg-type]
        out[name] = array
    return out


def check_input_values(model: onnx.ModelProto, input_values: dict[str, np.ndarray], input_shapes: dict[str, tuple[int, ...]] | None = None) -> None:
    """Reject pinned input values naming no input, or whose dtype or shape contradicts the model (or ``input_shapes``)."""
    inputs = _graph_inputs(model)
    for name, value in input_values.items():
        if name not in inputs:
            raise UsageError(f"input value {name}: the model has no graph input named {name!r} (inputs: {', '.join(inputs) or 'none'})")
        if not isinstance(value, np.ndarray):
            raise UsageError(f"input value {name}: expected a numpy array, got {type(value).__name__}")
        declared_type = inputs[name].type.tensor_type.elem_type
        want = onnx.helper.tensor_dtype_to_np_dtype(declared_type) if declared_type else value.dtype
        if value.dtype != want:
            raise UsageError(f"input value {name}: dtype {value.dtype} but the model declares {np.dtype(want)}")
        shape = tuple(int(d) for d in value.shape)
        if (problem := _shape_conflict(shape_of(inputs[name]), shape)) is not None:
            raise UsageError(f"input value {name}: shape {list(shape)}: {problem}")
        if input_shapes and name in input_shapes and tuple(input_shapes[name]) != shape:
            raise UsageError(f"input value {name}: shape {list(shape)} contradicts --input-shape {name}={'x'.join(map(str, input_shapes[name]))}")


def _shape_conflict(declared: tuple[Dim, ...] | None, dims: tuple[int, ...]) -> str | None:
    if declared is None:
        return None
    if len(declared) != len(dims):
        return f"rank {len(dims)} contradicts the model's rank {len(declared)}"
    for k, (d, want) in enumerate(zip(declared, dims)):
        if isinstance(d, int) and d != want:
            return f"dimension {k} is {d} in the model"
    return None


@dataclass
class ModelView:
    """A model with shape information, an index of every (sub)graph scope, and its static values.

    ``input_values`` are graph inputs pinned to constants for the analysis (their value and shape).
    """

    model: onnx.ModelProto
    base_dir: str | None = None
    scopes: list[Scope] = field(default_factory=list)
    input_values: dict[str, np.ndarray] = field(default_factory=dict)
    static: StaticValues | None = field(default=None, repr=False, init=False)
    _loss: ShapeLoss | None = field(default=None, repr=False, init=False)

    @classmethod
    def build(cls, model: onnx.ModelProto, base_dir: str | None = None, input_shapes: dict[str, tuple[int, ...]] | None = None,
              input_values: dict[str, object] | None = None) -> ModelView:
        input_values = as_input_values(model, input_values)
        inferred = infer_shapes(model, input_shapes, input_values)
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
        view = cls(model=model, base_dir=base_dir, scopes=scopes, input_values=dict(input_values or {}))
        view.static = StaticValues(scopes, model, view.tensor_value, view.input_values)
        return view

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
        return self.static.value(scope, name) if self.static is not None and name else None

    def lost(self, scope: Scope, name: str, what: str = "value", item: int | None = None) -> Lost | None:
        """Why the value (``what="shape"``: the shape) of ``name`` is not static, None if it is: the first node
        where it was lost and the reason. ``item`` asks about one element of a shape vector (e.g. one of a
        Resize's sizes), followed back to the input dimension it comes from."""
        if self.static is None:
            return None
        if self._loss is None:
            self._loss = ShapeLoss(self.static, self.scopes)
        if what == "shape":
            return self._loss.shape(scope, name)
        return self._loss.value(scope, name) if item is None else self._loss.item(scope, name, item)
