"""`fix-resize`: rewrite every Resize/Upsample so that it runs identically on the target, prove it, write it."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import helper as oh

from passes.canonicalize import Canonicalize
from passes.fold_sizes import FoldSizes
from passes.legacy_upgrade import LegacyUpgrade
from passes.lower_conv_transpose import LowerToConvTranspose
from passes.lower_gather import LowerToGather
from passes.lower_matmul import LowerToMatMul
from rewriter.emit import Subgraph
from rewriter.errors import NotExactError, UsageError, VerificationError
from rewriter.graph import ModelView, Scope, default_opset, fresh_name, subgraphs
from rewriter.inspection import reject_invalid
from rewriter.model_io import DataCopy, external_data_files, load_model, model_dir, save_model
from rewriter.pipeline import BORDER_CHOICES, LOWER_CHOICES, FixOptions, NodeContext, run_passes
from rewriter.progress import track
from rewriter.resize import describe_node, find_resizes
from rewriter.spelling import resize_node
from rewriter.targets import IOS_VERSIONS, TARGETS

PASSES = (LegacyUpgrade(), FoldSizes(), Canonicalize(), LowerToConvTranspose(), LowerToGather(), LowerToMatMul())
_PLACEHOLDER_DOMAIN = "rewriter.pending"  # hides freshly emitted nodes from onnx's version converter


@dataclass
class NodeResult:
    """One line of the report: what a node was, what it became, which passes did it, the measured error."""

    name: str
    graph: str
    was: str
    became: str
    passes: list[str]
    exact: bool
    max_error: float | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    border_error: float | None = None

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "graph": self.graph or None,
            "was": self.was,
            "became": self.became,
            "passes": self.passes,
            "exact": self.exact,
            "max_error": self.max_error,
            "border_error": self.border_error,
            "not_applied": self.skipped,
        }


@dataclass
class FixResult:
    model: onnx.ModelProto
    nodes: list[NodeResult]
    target: str
    source_dir: str | None = None
    opset_upgraded_from: int | None = None

    @property
    def changed(self) -> bool:
        return any(n.passes for n in self.nodes) or self.opset_upgraded_from is not None

    def save(self, path: str | os.PathLike, prestaged: DataCopy | None = None) -> None:
        save_model(self.model, path, source_dir=self.source_dir, prestaged=prestaged)

    def to_json(self) -> dict:
        return {
            "target": self.target,
            "opset_upgraded_from": self.opset_upgraded_from,
            "nodes": [n.to_json() for n in self.nodes],
        }


def _check_options(target: str, options: FixOptions, verify: str) -> None:
    if target not in TARGETS:
        raise UsageError(f"--target {target!r}: expected one of {', '.join(TARGETS)}")
    if options.deployment_target not in IOS_VERSIONS:
        raise UsageError(f"--deployment-target {options.deployment_target!r}: expected one of {', '.join(IOS_VERSIONS)}")
    if options.lower not in LOWER_CHOICES:
        raise UsageError(f"--lower {options.lower!r}: expected one of {', '.join(LOWER_CHOICES)}")
    if options.border not in BORDER_CHOICES:
        raise UsageError(f"--border {options.border!r}: expected exact or zero")
    if verify not in ("local", "full", "none"):
        raise UsageError(f"--verify {verify!r}: expected local, full or none")


def fix_resize(
    model: str | os.PathLike | onnx.ModelProto,
    target: str = "onnx",
    output: str | os.PathLike | None = None,
    *,
    deployment_target: str = "iOS15",
    coreml_format: str = "mlprogram",
    caffe_flavor: str = "bvlc",
    lower: str = "auto",
    border: str = "exact",
    input_shapes: dict[str, tuple[int, ...]] | None = None,
    verify: str = "local",
    atol: float = 1e-5,
    inputs: dict[str, np.ndarray] | None = None,
    separable_deconv: bool | None = None,
) -> FixResult:
    """Rewrite every Resize/Upsample of ``model`` to run identically on ``target``; save to ``output`` if given.

    Raises ``NotExactError`` (nothing written) when a node cannot be made exact, ``VerificationError`` when
    a rewrite does not match in ONNX Runtime, ``BadModelError`` / ``UsageError`` for bad input.
    """
    if separable_deconv is None:  # Caffe-based NPU toolchains know the classic single 2-D Deconvolution best
        separable_deconv = target != "caffe"
    options = FixOptions(target, deployment_target, coreml_format, caffe_flavor, lower, border, separable_deconv=separable_deconv)
    _check_options(target, options, verify)
    proto, source_dir = _load(model)
    job = _Job(model, proto, source_dir, output, options, input_shapes, verify, atol, inputs, _start_data_copy(proto, output, source_dir))
    try:
        return _fix(job)
    finally:
        if job.early_copy is not None:
            job.early_copy.discard()  # no-op once save_model has taken the copies


@dataclass
class _Job:
    """One fix-resize call: the model (as given and as loaded) and what was asked."""

    source: str | os.PathLike | onnx.ModelProto
    proto: onnx.ModelProto
    source_dir: str | None
    output: str | os.PathLike | None
    options: FixOptions
    input_shapes: dict[str, tuple[int, ...]] | None
    verify: str
    atol: float
    inputs: dict[str, np.ndarray] | None
    early_copy: DataCopy | None

    @property
    def label(self) -> str:
        return "<in-memory model>" if isinstance(self.source, onnx.ModelProto) else str(self.source)


def _start_data_copy(proto: onnx.ModelProto, output: str | os.PathLike | None, source_dir: str | None) -> DataCopy | None:
    """Copy external data beside the output while the passes run (it is most of the save time)."""
    if output is None or source_dir is None or not external_data_files(proto):
        return None
    return DataCopy(proto, output, source_dir)


def _fix(job: _Job) -> FixResult:
    proto, options = job.proto, job.options
    view = ModelView.build(proto, job.source_dir, job.input_shapes)
    model_opset = default_opset(proto)
    # Resize spellings the target keeps (all but BVLC Caffe, which lowers everything) need Resize-11+.
    keeps_resize = options.target in ("onnx", "coreml") or options.caffe_flavor != "bvlc"
    needs_modern = keeps_resize and model_opset < 11 and bool(find_resizes(view))
    opset = max(model_opset, 11) if needs_modern else model_opset

    contexts: list[NodeContext] = []
    refused: list[str] = []
    for scope, node in track(find_resizes(view), "analysing Resize nodes"):
        sem = describe_node(view, scope, node)
        reject_invalid(sem, job.label)
        ctx = NodeContext(view, scope, node, sem, options, opset)
        if (too_large := sem.oversized_axis()) is not None:
            refused.append(_refusal(ctx, too_large))
            contexts.append(ctx)
            continue
        run_passes(ctx, list(PASSES))
        reason = ctx.unaccepted_reason()
        if reason is not None:
            refused.append(_refusal(ctx, reason))
        contexts.append(ctx)
    if refused:
        raise NotExactError(" | ".join(refused))

    emitted = {id(ctx): _emit(ctx) for ctx in contexts if ctx.steps}
    results = [_result(ctx) for ctx in contexts]
    if job.verify != "none":
        _verify_local(contexts, emitted, results, job.atol)

    emitted_names = _splice(view, contexts, emitted)
    if job.input_shapes and emitted:
        _pin_input_shapes(proto, job.input_shapes)
    upgraded_from = None
    if opset != model_opset:
        _upgrade_opset(proto, opset, emitted_names)
        upgraded_from = model_opset
    result = FixResult(proto, results, options.target, job.source_dir, upgraded_from)
    if job.verify == "full" or (upgraded_from is not None and job.verify != "none"):
        _verify_full(job.source, result, job.input_shapes, job.inputs, job.atol, required=job.verify == "full")
    if job.output is not None:
        result.save(job.output, prestaged=job.early_copy)
    return result


def _pin_input_shapes(model: onnx.ModelProto, input_shapes: dict[str, tuple[int, ...]]) -> None:
    """Rewrites derived from --input-shape hold for that shape only: make the model say so."""
    for vi in model.graph.input:
        if vi.name in input_shapes:
            shape = vi.type.tensor_type.shape
            shape.Clear()
            for d in input_shapes[vi.name]:
                shape.dim.add().dim_value = int(d)


def _load(model: str | os.PathLike | onnx.ModelProto) -> tuple[onnx.ModelProto, str | None]:
    if isinstance(model, onnx.ModelProto):
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        return copy, None
    return load_model(model), str(model_dir(model))


def _refusal(ctx: NodeContext, reason: str) -> str:
    name = f"{ctx.scope.path}/{ctx.node.name}" if ctx.scope.path else (ctx.node.name or "(unnamed)")
    why = [f"{p}: {r}" for p, r in ctx.skipped.items() if p.startswith("lower") and ctx.original.resolved]
    hint = ""
    if ctx.options.target != "onnx":
        hint = "; --target onnx keeps it as exact portable ONNX"
    if ctx.options.lower == "none":
        hint += "; try --lower auto"
    detail = f" ({'; '.join(why)})" if why else ""
    return f"{name} {ctx.label}: cannot be made exact for {ctx.options.target}: {reason}{detail}{hint}"


def _emit(ctx: NodeContext) -> Subgraph:
    if ctx.lowered is not None:
        return ctx.lowered
    assert ctx.chain is not None
    sub = Subgraph(description=ctx.describe_state())
    x, y = ctx.node.input[0], ctx.node.output[0]
    base = ctx.node.name or "resize"
    if not ctx.chain:
        sub.nodes.append(oh.make_node("Identity", [x], [y], name=f"{base}/identity"))
        return sub
    current = x
    for k, spelling in enumerate(ctx.chain):
        out = y if k == len(ctx.chain) - 1 else f"{base}_part{k}"
        name = base if len(ctx.chain) == 1 else f"{base}/part{k}"
        node, tensors = resize_node(spelling, current, out, name, max(ctx.opset, spelling.min_opset))
        sub.nodes.append(node)
        sub.tensors.extend(tensors)
        current = out
    return sub


def _result(ctx: NodeContext) -> NodeResult:
    return NodeResult(
        name=ctx.node.name,
        graph=ctx.scope.path,
        was=ctx.label,
        became=ctx.describe_state() if ctx.steps else "unchanged",
        passes=[s.pass_name for s in ctx.steps],
        exact=ctx.exact,
        skipped=dict(ctx.skipped),
        border_error=ctx.border_error,
    )


def _verify_local(contexts: list[NodeContext], emitted: dict[int, Subgraph], results: list[NodeResult], atol: float) -> None:
    # Imported here: onnxruntime loads while the external data copy is already running.
    from rewriter.verify import (
        concrete_shape,
        max_relative_error,
        original_node_model,
        replacement_model,
        tolerance_for,
    )

    failures = []
    for ctx, result in track(list(zip(contexts, results)), "verifying rewrites in ONNX Runtime"):
        sub = emitted.get(id(ctx))
        if sub is None:
            continue
        sem = ctx.original
        before = original_node_model(ctx.view, ctx.scope, ctx.node, sem, max(ctx.view.opset, 7))
        after = replacement_model(sub, ctx.node.input[0], ctx.node.output[0], sem, ctx.opset)
        try:
            error = max_relative_error(before, after, concrete_shape(sem), sem.elem_type)
        except Exception as e:  # ONNX Runtime refused one of the two tiny models
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise VerificationError(f"verification failed: {result.name or '(unnamed)'}: ONNX Runtime cannot run the comparison ({first})") from None
        result.max_error = error
        if ctx.exact and error > tolerance_for(sem.elem_type, atol):
            failures.append(f"{result.name or '(unnamed)'}: {result.became} differs from the original by {error:.3g} (relative)")
    if failures:
        raise VerificationError("verification failed: " + " | ".join(failures))


def _unique_names(view: ModelView) -> set[str]:
    names: set[str] = set()

    def walk(graph: onnx.GraphProto) -> None:
        for t in graph.initializer:
            names.add(t.name)
        for vi in [*graph.input, *graph.output]:
            names.add(vi.name)
        for node in graph.node:
            names.update(node.output)
            names.add(node.name)
            for _, sub in subgraphs(node):
                walk(sub)

    walk(view.model.graph)
    return names


def _splice(view: ModelView, contexts: list[NodeContext], emitted: dict[int, Subgraph]) -> set[str]:
    """Replace each rewritten node by its subgraph in the model's own graphs; returns the new node names."""
    taken = _unique_names(view)
    new_names: set[str] = set()
    by_scope: dict[int, list[NodeContext]] = {}
    for ctx in contexts:
        if id(ctx) in emitted:
            by_scope.setdefault(id(ctx.scope), []).append(ctx)
    for ctxs in by_scope.values():
        scope: Scope = ctxs[0].scope
        graph = scope.source
        assert graph is not None
        position = {id(n): k for k, n in enumerate(scope.graph.node)}
        replaced_inputs: list[str] = []
        for ctx in sorted(ctxs, key=lambda c: -position[id(c.node)]):
            k = position[id(ctx.node)]
            taken.discard(ctx.node.name)  # the replacement may keep the replaced node's name
            sub = _rename_fresh(emitted[id(ctx)], {*ctx.node.input, *ctx.node.output}, taken)
            replaced_inputs.extend(n for n in graph.node[k].input[1:] if n)
            del graph.node[k]
            for j, node in enumerate(sub.nodes):
                graph.node.insert(k + j, node)
                new_names.add(node.name)
            graph.initializer.extend(sub.tensors)
            if view.model.ir_version < 4:  # IR 3 requires every initializer to be a graph input too
                graph.input.extend(onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in sub.tensors)
        _drop_dead_producers(graph, replaced_inputs)
    return new_names


def _rename_fresh(sub: Subgraph, keep: set[str], taken: set[str]) -> Subgraph:
    """Give the subgraph's own tensors and nodes names that clash with nothing in the model."""
    mapping: dict[str, str] = {}

    for t in sub.tensors:
        mapping[t.name] = fresh_name(t.name, taken)
        t.name = mapping[t.name]
    for node in sub.nodes:
        for o_idx, o in enumerate(node.output):
            if o not in keep:
                if o not in mapping:
                    mapping[o] = fresh_name(o, taken)
                node.output[o_idx] = mapping[o]
        for i_idx, i in enumerate(node.input):
            node.input[i_idx] = mapping.get(i, i)
        node.name = fresh_name(node.name, taken) if node.name else node.name
    return sub


def _drop_dead_producers(graph: onnx.GraphProto, candidates: list[str]) -> None:
    """Remove what only fed the replaced nodes' roi/scales/sizes (Shape subgraphs, constants), nothing else."""
    pending = set(candidates)
    while True:
        used = _used_names(graph) | {vi.name for vi in graph.output}
        dead = [k for k, node in enumerate(graph.node) if node.output and any(o in pending for o in node.output) and not any(o in used for o in node.output)]
        if not dead:
            break
        for k in reversed(dead):
            pending.update(i for i in graph.node[k].input if i)
            del graph.node[k]
    used = _used_names(graph) | {vi.name for vi in graph.output}
    keep = [t for t in graph.initializer if t.name in used or t.name not in pending]
    if len(keep) != len(graph.initializer):
        del graph.initializer[:]
        graph.initializer.extend(keep)


def _used_names(graph: onnx.GraphProto) -> set[str]:
    used: set[str] = set()

    def walk(g: onnx.GraphProto) -> None:
        for node in g.node:
            used.update(node.input)
            for _, sub in subgraphs(node):
                walk(sub)

    walk(graph)
    return used


def _upgrade_opset(model: onnx.ModelProto, opset: int, emitted_names: set[str]) -> None:
    """Raise the model's ai.onnx opset with onnx's converter, shielding the nodes rewriter emitted.

    The emitted nodes already have their target-opset form; every other node is converted by onnx.
    """
    from onnx import version_converter

    shielded: list[onnx.NodeProto] = []

    def shield(graph: onnx.GraphProto) -> None:
        for node in graph.node:
            if node.domain in ("", "ai.onnx") and node.name in emitted_names:
                node.domain = _PLACEHOLDER_DOMAIN
                shielded.append(node)
            for _, sub in subgraphs(node):
                shield(sub)

    shield(model.graph)
    model.opset_import.append(oh.make_opsetid(_PLACEHOLDER_DOMAIN, 1))
    try:
        converted = version_converter.convert_version(model, opset)
    except Exception as e:  # the converter has no adapter for some op in the model
        raise NotExactError(f"cannot raise the model from opset {default_opset(model)} to {opset} for the rewritten Resize nodes: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    model.CopyFrom(converted)

    def unshield(graph: onnx.GraphProto) -> None:
        for node in graph.node:
            if node.domain == _PLACEHOLDER_DOMAIN:
                node.domain = ""
            for _, sub in subgraphs(node):
                unshield(sub)

    unshield(model.graph)
    keep = [imp for imp in model.opset_import if imp.domain != _PLACEHOLDER_DOMAIN]
    del model.opset_import[:]
    model.opset_import.extend(keep)


def _verify_full(
    original: str | os.PathLike | onnx.ModelProto,
    result: FixResult,
    input_shapes: dict[str, tuple[int, ...]] | None,
    inputs: dict[str, np.ndarray] | None,
    atol: float,
    required: bool,
) -> None:
    """Run the whole model before and after in ONNX Runtime (random inputs unless ``inputs`` is given)."""
    import tempfile

    import onnxruntime as ort

    from rewriter.verify import random_input

    if isinstance(original, onnx.ModelProto):
        before_model = original
    else:
        before_model = load_model(original, load_weights=True)
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
                raise UsageError(f"--verify full: input {vi.name!r} has a dynamic shape: pass --input-shape {vi.name}=... or --inputs data.npz")
            return
        feeds[vi.name] = random_input(tuple(dims), vi.type.tensor_type.elem_type, 0)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    with tempfile.TemporaryDirectory() as tmp:
        after_path = Path(tmp) / "fixed.onnx"
        result.save(after_path)
        a = ort.InferenceSession(before_model.SerializeToString(), options, providers=["CPUExecutionProvider"]).run(None, feeds)
        b = ort.InferenceSession(str(after_path), options, providers=["CPUExecutionProvider"]).run(None, feeds)
    for k, (x, y) in enumerate(zip(a, b)):
        x64, y64 = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if x64.shape != y64.shape:
            raise VerificationError(f"--verify full: output {k} has shape {y64.shape} instead of {x64.shape}")
        error = float(np.abs(x64 - y64).max(initial=0.0)) / max(1.0, float(np.abs(x64).max(initial=0.0)))
        if error > atol and all(n.exact for n in result.nodes):
            raise VerificationError(f"--verify full: output {k} differs from the original model by {error:.3g} (relative)")


def write_report_json(result: FixResult, path: str | os.PathLike) -> None:
    Path(path).write_text(json.dumps(result.to_json(), indent=2) + "\n")
