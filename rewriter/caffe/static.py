"""A fixed ONNX graph made static for export: pinned input shapes, folded constants, a shape for every tensor.

Caffe nets are static: every blob has one shape, and every weight is a number in the caffemodel. This module
takes the model ``fix_resize`` produced and returns its main graph with

- the graph inputs pinned (``--input-shape`` or the declared dims; a symbolic dim left is a UsageError),
- a static shape for every tensor from the analysis every command uses (``ModelView``: weight-free shape
  inference plus the forward pass of ``rewriter.static_values``); for the rare tensor it leaves unknown,
  one ONNX Runtime run of the remaining graph on zeros,
- every node whose inputs are all constants evaluated once with the same kernels (``evaluate_node``) and
  removed, so Shape -> Gather -> Concat -> Reshape chains, Constant nodes and weight transforms become
  plain values (here weights are read: the caffemodel holds them all).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

from rewriter.errors import UsageError, dynamic_input_error
from rewriter.exporting.onnx_readers import attributes
from rewriter.graph import ModelView, default_opset, evaluate_node
from rewriter.ort_runtime import session

_NO_FOLD = {
    "If",
    "Loop",
    "Scan",
    "RandomNormal",
    "RandomUniform",
    "RandomNormalLike",
    "RandomUniformLike",
    "Multinomial",
    "Bernoulli",
}


@dataclass
class StaticGraph:
    nodes: list[onnx.NodeProto]
    consts: dict[str, np.ndarray]
    shapes: dict[str, tuple[int, ...]]
    elem_types: dict[str, int]
    inputs: list[str]  # graph inputs that are not initializers, in order
    outputs: list[str]
    opset: int
    consumers: dict[str, list[onnx.NodeProto]] = field(default_factory=dict)

    def shape(self, name: str) -> tuple[int, ...]:
        return self.shapes[name]


def _tensor_value(tensor: onnx.TensorProto, model: onnx.ModelProto, source_dir: str | None) -> np.ndarray:
    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        from rewriter.model_io import read_tensor

        return read_tensor(model, tensor, source_dir or ".")
    return numpy_helper.to_array(tensor)


def _static_dims(vi: onnx.ValueInfoProto) -> tuple[int, ...] | None:
    if not vi.type.HasField("tensor_type") or not vi.type.tensor_type.HasField("shape"):
        return None
    dims = []
    for d in vi.type.tensor_type.shape.dim:
        if not d.HasField("dim_value"):
            return None
        dims.append(int(d.dim_value))
    return tuple(dims)


def _declared(vi: onnx.ValueInfoProto) -> list[str]:
    out = []
    for d in vi.type.tensor_type.shape.dim:
        out.append(str(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?"))
    return out


def build(
    model: onnx.ModelProto, source_dir: str | None, input_shapes: dict[str, tuple[int, ...]] | None
) -> StaticGraph:
    graph = model.graph
    init_names = {t.name for t in graph.initializer}
    consts: dict[str, np.ndarray] = {t.name: _tensor_value(t, model, source_dir) for t in graph.initializer}
    elem_types: dict[str, int] = {t.name: t.data_type for t in graph.initializer}
    inputs = [vi.name for vi in graph.input if vi.name not in init_names]
    pinned: dict[str, tuple[int, ...]] = {}
    for vi in graph.input:
        if vi.name in init_names:
            continue
        elem_types[vi.name] = vi.type.tensor_type.elem_type
        if input_shapes and vi.name in input_shapes:
            pinned[vi.name] = tuple(int(d) for d in input_shapes[vi.name])
            continue
        dims = _static_dims(vi)
        if dims is None:
            raise dynamic_input_error(vi.name, [int(d) if d.isdigit() else d for d in _declared(vi)])
        pinned[vi.name] = dims
    if input_shapes:
        unknown = sorted(set(input_shapes) - set(inputs))
        if unknown:
            raise UsageError(
                f"--input-shape {unknown[0]}=...: the model has no graph input named {unknown[0]!r} (inputs: {', '.join(inputs)})"
            )
    opset = default_opset(model)

    view = ModelView.build(model, source_dir, pinned)
    main = view.scopes[0]
    shapes = {name: dims for name, dims in main.shapes.items() if all(isinstance(d, int) for d in dims)}  # type: ignore[misc]
    types = dict(main.elem_types)
    for name, dims in pinned.items():
        shapes[name] = dims
    for name, value in consts.items():
        shapes[name] = tuple(value.shape)

    nodes: list[onnx.NodeProto] = []
    for node in graph.node:
        if _foldable(node, consts, shapes):
            values = _evaluate(node, consts, shapes, opset)
            if values is not None:
                for name, value in zip(node.output, values):
                    if name:
                        consts[name] = value
                        shapes[name] = tuple(value.shape)
                        elem_types[name] = onnx.helper.np_dtype_to_tensor_dtype(value.dtype)
                continue
        nodes.append(node)

    needed = {o for n in nodes for o in n.output if o} | {o.name for o in graph.output}
    missing = [n for n in needed if n not in shapes]
    if missing:
        shapes.update(_ort_shapes(model, nodes, pinned, consts, elem_types, missing, opset))
    for name, t in types.items():
        elem_types.setdefault(name, t)

    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in nodes:
        for i in node.input:
            if i:
                consumers.setdefault(i, []).append(node)
    return StaticGraph(nodes, consts, shapes, elem_types, inputs, [o.name for o in graph.output], opset, consumers)


def _foldable(node: onnx.NodeProto, consts: dict[str, np.ndarray], shapes: dict[str, tuple[int, ...]]) -> bool:
    if node.op_type in _NO_FOLD or node.domain not in ("", "ai.onnx"):
        return False
    if node.op_type in ("Shape", "Size"):
        return bool(node.input) and node.input[0] in shapes
    if node.op_type == "Constant":
        return True
    return all((not i) or i in consts for i in node.input)


def _evaluate(
    node: onnx.NodeProto, consts: dict[str, np.ndarray], shapes: dict[str, tuple[int, ...]], opset: int
) -> list[np.ndarray] | None:
    if node.op_type == "Shape":
        dims = np.array(shapes[node.input[0]], dtype=np.int64)
        attrs = attributes(node)
        start, end = attrs.get("start", 0), attrs.get("end", None)
        return [dims[start:end]]
    if node.op_type == "Size":
        return [np.array(int(np.prod(shapes[node.input[0]], dtype=np.int64)), dtype=np.int64)]
    try:
        values = evaluate_node(node, [consts[i] if i else None for i in node.input], opset)
    except Exception:  # noqa: BLE001 - any evaluator failure just leaves the node in the graph
        return None  # left in the graph: translated (or reported) like any other node
    return [v if v is not None else np.zeros(0) for v in values]


def _ort_shapes(model, nodes, pinned, consts, elem_types, wanted, opset) -> dict[str, tuple[int, ...]]:
    """Shapes inference could not give: one ONNX Runtime run of the remaining graph on zeros."""
    graph = model.graph
    inits = [numpy_helper.from_array(v, n) for n, v in consts.items() if any(n in node.input for node in nodes)]
    inputs = []
    feeds = {}
    for name, dims in pinned.items():
        vi = next(v for v in graph.input if v.name == name)
        t = vi.type.tensor_type.elem_type
        inputs.append(onnx.helper.make_tensor_value_info(name, t, list(dims)))
        feeds[name] = np.zeros(dims, dtype=onnx.helper.tensor_dtype_to_np_dtype(t))
    outputs = [onnx.helper.make_tensor_value_info(n, onnx.TensorProto.UNDEFINED, None) for n in wanted]
    g = onnx.helper.make_graph(nodes, "shapes", inputs, outputs, inits)
    m = onnx.helper.make_model(g, opset_imports=list(model.opset_import), ir_version=max(model.ir_version, 4))
    try:
        results = session(m).run(wanted, feeds)
    except Exception:  # noqa: BLE001 - best effort: the shapes it gives are checked against Caffe's
        return {}
    return {n: tuple(np.asarray(r).shape) for n, r in zip(wanted, results)}
