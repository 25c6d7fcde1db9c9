"""Numeric proof of rewrites in ONNX Runtime, on top of the weight proofs every step already passed.

``verify_local``: each rewritten node and its replacement as tiny one-input models with the node's real
input shape (symbolic dims pinned) and its roi/scales/sizes frozen to the values the rewrite was derived
from, so the cost does not depend on the model's weights; several seeded random inputs are compared.
``verify_full``: the whole model before and after.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import helper as oh

from rewriter.emit import Subgraph
from rewriter.errors import VerificationError, dynamic_input_error
from rewriter.graph import SymVector
from rewriter.model_io import load_model
from rewriter.ort_runtime import SEEDS, random_input, relative_error, session
from rewriter.pipeline import NodeContext
from rewriter.spelling import single_node_model


def original_node_model(ctx: NodeContext) -> onnx.ModelProto:
    """The node as it is in the model, its non-data inputs frozen to the values the analysis used."""
    node, sem = ctx.node, ctx.original
    copy = onnx.NodeProto()
    copy.CopyFrom(node)
    del copy.input[:]
    copy.input.append("x")
    del copy.output[:]
    copy.output.append("y")
    tensors = []
    shape = ctx.concrete_input_shape
    for k, name in enumerate(node.input[1:], start=1):
        if not name:
            copy.input.append("")
            continue
        value = ctx.view.value(ctx.scope, name)
        if isinstance(value, SymVector):
            value = np.array([d if isinstance(d, int) else shape[i] for i, d in enumerate(value.items)], dtype=np.int64)
        if value is None:
            raise ValueError(f"input {name!r} of {node.name!r} is not static")
        const = f"in{k}"
        tensors.append(onnx.numpy_helper.from_array(np.asarray(value), const))
        copy.input.append(const)
    return single_node_model([copy], tensors, shape, max(ctx.view.opset, 7), sem.elem_type)


def replacement_model(ctx: NodeContext, sub: Subgraph) -> onnx.ModelProto:
    nodes = [_renamed(n, {sub.x: "x", sub.y: "y"}) for n in sub.nodes] or [oh.make_node("Identity", ["x"], ["y"])]
    return single_node_model(nodes, list(sub.tensors), ctx.concrete_input_shape, ctx.opset, ctx.original.elem_type)


def _renamed(node: onnx.NodeProto, mapping: dict[str, str]) -> onnx.NodeProto:
    copy = onnx.NodeProto()
    copy.CopyFrom(node)
    del copy.metadata_props[:]
    for names in (copy.input, copy.output):
        for k, name in enumerate(names):
            names[k] = mapping.get(name, name)
    return copy


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
    """The worst ``relative_error`` over the seeded inputs (inf on a shape mismatch)."""
    from onnxruntime.capi.onnxruntime_pybind11_state import NotImplemented as OrtNotImplemented

    try:
        a_sess, b_sess = session(before, optimize=False), session(after, optimize=False)
    except OrtNotImplemented:
        if elem_type == onnx.TensorProto.FLOAT:
            raise
        return max_relative_error(as_float32(before, elem_type), as_float32(after, elem_type), shape, onnx.TensorProto.FLOAT)
    worst = 0.0
    for seed in SEEDS:
        x = random_input(shape, elem_type, seed)
        worst = max(worst, relative_error(a_sess.run(None, {"x": x})[0], b_sess.run(None, {"x": x})[0]))
    return worst


def tolerance_for(elem_type: int, atol: float) -> float:
    """The requested tolerance, widened to the data type's own rounding (fp16/bf16)."""
    if elem_type == onnx.TensorProto.FLOAT16:
        return max(atol, 2e-3)
    if elem_type == onnx.TensorProto.BFLOAT16:
        return max(atol, 1.6e-2)
    return atol


def verify_local(contexts: list[NodeContext], emitted: dict[int, Subgraph], atol: float) -> dict[int, float]:
    """Each rewritten node against its replacement in ONNX Runtime: the measured error by ``id(context)``."""
    from rewriter.progress import track

    failures = []
    errors: dict[int, float] = {}
    for ctx in track(contexts, "verifying rewrites in ONNX Runtime"):
        sub = emitted.get(id(ctx))
        if sub is None:
            continue
        name = ctx.original.qualified_name
        try:
            error = max_relative_error(original_node_model(ctx), replacement_model(ctx, sub), ctx.concrete_input_shape, ctx.original.elem_type)
        except Exception as e:  # ONNX Runtime refused one of the two tiny models
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise VerificationError(f"verification failed: {name}: ONNX Runtime cannot run the comparison ({first})") from None
        errors[id(ctx)] = error
        if ctx.exact and error > tolerance_for(ctx.original.elem_type, atol):
            failures.append(f"{name}: {ctx.describe_state()} differs from the original by {error:.3g} (relative)")
    if failures:
        raise VerificationError("verification failed: " + " | ".join(failures))
    return errors


def verify_full(
    original: str | os.PathLike | onnx.ModelProto,
    save: Callable[[Path], None],
    all_exact: bool,
    input_shapes: dict[str, tuple[int, ...]] | None,
    inputs: dict[str, np.ndarray] | None,
    atol: float,
    required: bool,
) -> None:
    """Run the whole model before and after (written by ``save``) in ONNX Runtime, on ``inputs`` or random ones."""
    before_model = original if isinstance(original, onnx.ModelProto) else load_model(original, load_weights=True)
    feeds: dict[str, np.ndarray] = {}
    initializer_names = {t.name for t in before_model.graph.initializer}
    for vi in before_model.graph.input:
        if vi.name in initializer_names:
            continue
        if inputs is not None and vi.name in inputs:
            feeds[vi.name] = inputs[vi.name]
            continue
        dims = (input_shapes or {}).get(vi.name) or tuple(d.dim_value if d.HasField("dim_value") else -1 for d in vi.type.tensor_type.shape.dim)
        if any(d < 0 for d in dims):
            if required:
                declared = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in vi.type.tensor_type.shape.dim]
                raise dynamic_input_error(vi.name, declared, "--inputs data.npz")
            return
        feeds[vi.name] = random_input(tuple(dims), vi.type.tensor_type.elem_type, 0)
    with tempfile.TemporaryDirectory() as tmp:
        after_path = Path(tmp) / "fixed.onnx"
        save(after_path)
        a = session(before_model).run(None, feeds)
        after = session(after_path)
        b = after.run(None, {i.name: feeds[i.name] for i in after.get_inputs()})  # pinned inputs are constants now
    for k, (x, y) in enumerate(zip(a, b)):
        if np.shape(x) != np.shape(y):
            raise VerificationError(f"--verify full: output {k} has shape {np.shape(y)} instead of {np.shape(x)}")
        error = relative_error(x, y)
        if error > atol and all_exact:
            raise VerificationError(f"--verify full: output {k} differs from the original model by {error:.3g} (relative)")
