"""Numeric proof of a rewrite in ONNX Runtime: the original node and its replacement as tiny models.

Each side is a one-input model with the node's real input shape (symbolic dims pinned) and its
roi/scales/sizes as the constants the rewrite was derived from, so the cost does not depend on the
model's weights. Several seeded random inputs are compared.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper as oh

from rewriter.emit import Subgraph
from rewriter.graph import ModelView, Scope, SymVector
from rewriter.resize import ResizeSemantics
from rewriter.spelling import single_node_model

SEEDS = (0, 1, 2)
ort.set_default_logger_severity(3)  # e.g. tf_half_pixel_for_nn at opset >= 13 logs a warning per session
_SYMBOLIC_DIM = 2  # value given to a symbolic (unchanged) dimension in the verification models


def concrete_shape(sem: ResizeSemantics) -> tuple[int, ...]:
    return tuple(d if isinstance(d, int) else _SYMBOLIC_DIM for d in sem.input_shape)


def original_node_model(view: ModelView, scope: Scope, node: onnx.NodeProto, sem: ResizeSemantics, opset: int) -> onnx.ModelProto:
    """The node as it is in the model, its non-data inputs frozen to the values the analysis used."""
    copy = onnx.NodeProto()
    copy.CopyFrom(node)
    del copy.input[:]
    copy.input.append("x")
    del copy.output[:]
    copy.output.append("y")
    tensors = []
    shape = concrete_shape(sem)
    for k, name in enumerate(node.input[1:], start=1):
        if not name:
            copy.input.append("")
            continue
        value = view.value(scope, name)
        if isinstance(value, SymVector):
            value = np.array([d if isinstance(d, int) else shape[i] for i, d in enumerate(value.items)], dtype=np.int64)
        if value is None:
            raise ValueError(f"input {name!r} of {node.name!r} is not static")
        const = f"in{k}"
        tensors.append(onnx.numpy_helper.from_array(np.asarray(value), const))
        copy.input.append(const)
    return single_node_model([copy], tensors, shape, opset, sem.elem_type)


def replacement_model(sub: Subgraph, x: str, y: str, sem: ResizeSemantics, opset: int) -> onnx.ModelProto:
    nodes = [_renamed(n, {x: "x", y: "y"}) for n in sub.nodes]
    if not nodes:  # identity removal
        nodes = [oh.make_node("Identity", ["x"], ["y"])]
    return single_node_model(nodes, list(sub.tensors), concrete_shape(sem), opset, sem.elem_type)


def _renamed(node: onnx.NodeProto, mapping: dict[str, str]) -> onnx.NodeProto:
    copy = onnx.NodeProto()
    copy.CopyFrom(node)
    for field in (copy.input, copy.output):
        for k, name in enumerate(field):
            field[k] = mapping.get(name, name)
    return copy


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def random_input(shape: tuple[int, ...], elem_type: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dtype = onnx.helper.tensor_dtype_to_np_dtype(elem_type)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, int(info.max) + 1, size=shape, dtype=dtype)
    return rng.standard_normal(shape).astype(dtype)


def as_float32(model: onnx.ModelProto, elem_type: int) -> onnx.ModelProto:
    """The same tiny model computing in float32 (for data types ORT has no Resize kernel for, e.g. bfloat16).

    The rewrites do not depend on the data type (they are the same weights), so comparing them in float32
    proves them; the lowered constants are converted from the data type, keeping its rounding.
    """
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for vi in [*copy.graph.input, *copy.graph.output]:
        if vi.type.tensor_type.elem_type == elem_type:
            vi.type.tensor_type.elem_type = onnx.TensorProto.FLOAT
    for k, tensor in enumerate(copy.graph.initializer):
        if tensor.data_type == elem_type:
            value = onnx.numpy_helper.to_array(tensor).astype(np.float32)
            copy.graph.initializer[k].CopyFrom(onnx.numpy_helper.from_array(value, tensor.name))
    return copy


def max_relative_error(before: onnx.ModelProto, after: onnx.ModelProto, shape: tuple[int, ...], elem_type: int) -> float:
    """max |a - b| / max(1, max |a|) over the seeded inputs (inf on a shape mismatch)."""
    try:
        a_sess, b_sess = _session(before), _session(after)
    except ort.capi.onnxruntime_pybind11_state.NotImplemented:
        if elem_type == onnx.TensorProto.FLOAT:
            raise
        return max_relative_error(as_float32(before, elem_type), as_float32(after, elem_type), shape, onnx.TensorProto.FLOAT)
    worst = 0.0
    for seed in SEEDS:
        x = random_input(shape, elem_type, seed)
        a = a_sess.run(None, {"x": x})[0].astype(np.float64)
        b = b_sess.run(None, {"x": x})[0].astype(np.float64)
        if a.shape != b.shape:
            return float("inf")
        worst = max(worst, float(np.abs(a - b).max(initial=0.0)) / max(1.0, float(np.abs(a).max(initial=0.0))))
    return worst


def tolerance_for(elem_type: int, atol: float) -> float:
    """The requested tolerance, widened to the data type's own rounding (fp16/bf16)."""
    if elem_type == onnx.TensorProto.FLOAT16:
        return max(atol, 2e-3)
    if elem_type == onnx.TensorProto.BFLOAT16:
        return max(atol, 1.6e-2)
    return atol
