"""`fix-resize`: rewrite every Resize/Upsample so that it runs identically on the target, prove it, write it.

load -> recognise upsampling spelled without Resize (``passes.recognize_upsampling``: such a region becomes
a Resize in place) -> plan (the pass ladder per node, ``rewriter.plan``; every step proved by weights) -> refuse what no
exact form reaches -> emit -> verify in ONNX Runtime -> splice into the model -> raise the opset if needed
-> write atomically. The result carries, per original node, what it became and where (provenance), so
exporters consume fix-resize's decisions instead of re-deriving them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from passes.recognize_upsampling import recognize_upsampling
from rewriter.emit import Subgraph
from rewriter.errors import NotExactError, UsageError
from rewriter.graph import ModelView, default_opset, subgraphs
from rewriter.model_io import DataCopy, external_data_files, load_model, model_dir, save_model
from rewriter.pipeline import FixOptions, NodeState
from rewriter.plan import INEXACT, REWRITE, UNRESOLVED, NodePlan, plan_model
from rewriter.progress import track
from rewriter.resize import ResizeSemantics
from rewriter.splice import RULE_KEY, pin_input_shapes, pin_input_values, splice, upgrade_opset
from rewriter.targets import Target, make_target

VERIFY_CHOICES = ("local", "full", "none")


@dataclass
class NodeResult:
    """One original node: what it was, what it became (state and emitted names), which passes did it, the error."""

    name: str
    graph: str
    was: str
    became: str
    passes: list[str]
    exact: bool
    semantics: ResizeSemantics
    state: NodeState
    max_error: float | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    border_error: float | None = None
    emitted_nodes: list[str] = field(default_factory=list)  # names in the written model (empty: unchanged)
    emitted_tensors: list[str] = field(default_factory=list)
    # The Resize nodes this node is in the written model, by output tensor (unique, unlike node names), with
    # their semantics: the original node itself when unchanged, one per spelling when respelled, none when
    # lowered or removed.
    resize_nodes: list[tuple[str, ResizeSemantics]] = field(default_factory=list)

    @property
    def qualified_name(self) -> str:
        return self.semantics.qualified_name

    def to_json(self) -> dict:
        state: dict = {"kind": self.state.kind}
        if self.state.spellings:
            state["spellings"] = [s.label() for s in self.state.spellings]
        if self.state.lowering is not None:
            state["lowering"] = self.state.lowering.to_json()
        return {
            "name": self.name,
            "graph": self.graph or None,
            "was": self.was,
            "became": self.became,
            "passes": self.passes,
            "exact": self.exact,
            "max_error": self.max_error,
            "border_error": self.border_error,
            "state": state,
            "emitted_nodes": self.emitted_nodes,
            "not_applied": self.skipped,
        }


@dataclass
class FixResult:
    model: onnx.ModelProto
    nodes: list[NodeResult]
    target: str
    source_dir: str | None = None
    opset_upgraded_from: int | None = None
    opset_upgraded_to: int | None = None
    pinned_inputs: dict[str, np.ndarray] = field(default_factory=dict)  # graph inputs written as constants

    @property
    def changed(self) -> bool:
        return any(n.passes for n in self.nodes) or self.opset_upgraded_from is not None

    def save(self, path: str | os.PathLike, prestaged: DataCopy | None = None) -> None:
        save_model(self.model, path, source_dir=self.source_dir, prestaged=prestaged)

    def to_json(self) -> dict:
        return {
            "target": self.target,
            "opset_upgraded_from": self.opset_upgraded_from,
            "opset_upgraded_to": self.opset_upgraded_to,
            "nodes": [n.to_json() for n in self.nodes],
        }


def fix_options(
    target: str | Target,
    *,
    deployment_target: str | None = None,
    coreml_format: str | None = None,
    caffe_flavor: str | None = None,
    lower: str = "auto",
    border: str = "exact",
    separable_deconv: bool | None = None,
) -> FixOptions:
    """Validated options for one target (UsageError on a bad value)."""
    chosen = make_target(target, {"deployment_target": deployment_target, "model_format": coreml_format, "flavor": caffe_flavor})
    return FixOptions(chosen, lower, border, separable_deconv=separable_deconv)


def fix_resize(
    model: str | os.PathLike | onnx.ModelProto,
    target: str | Target = "onnx",
    output: str | os.PathLike | None = None,
    *,
    deployment_target: str | None = None,
    coreml_format: str | None = None,
    caffe_flavor: str | None = None,
    lower: str = "auto",
    border: str = "exact",
    input_shapes: dict[str, tuple[int, ...]] | None = None,
    input_values: dict[str, object] | None = None,
    verify: str = "local",
    atol: float = 1e-5,
    inputs: dict[str, np.ndarray] | None = None,
    separable_deconv: bool | None = None,
) -> FixResult:
    """Rewrite every Resize/Upsample of ``model`` to run identically on ``target``; save to ``output`` if given.

    ``input_values`` pins graph inputs (scales, sizes, roi, any non-data input) to constants: the analysis
    uses them and the written model has them as constants instead of inputs.

    Raises ``NotExactError`` (nothing written) when a node cannot be made exact, ``VerificationError`` when
    a rewrite does not match in ONNX Runtime, ``BadModelError`` / ``UsageError`` for bad input.
    """
    options = fix_options(target, deployment_target=deployment_target, coreml_format=coreml_format, caffe_flavor=caffe_flavor,
                          lower=lower, border=border, separable_deconv=separable_deconv)
    if verify not in VERIFY_CHOICES:
        raise UsageError(f"--verify {verify!r}: expected local, full or none")
    proto, source_dir = _load(model)
    early_copy = _start_data_copy(proto, output, source_dir)  # runs while the model is analysed and rewritten
    try:
        view = ModelView.build(proto, source_dir, input_shapes, input_values)
        job = _Job(model, proto, source_dir, output, options, input_shapes, verify, atol, inputs, early_copy, view.input_values)
        return _fix(job, view)
    finally:
        if early_copy is not None:
            early_copy.discard()  # no-op once save_model has taken the copies


def fix_model(view: ModelView, options: FixOptions, *, input_shapes: dict[str, tuple[int, ...]] | None = None,
              original: onnx.ModelProto | None = None, verify: str = "local", atol: float = 1e-5) -> FixResult:
    """fix-resize on a model already loaded and analysed (the exporters' path): ``view.model`` is rewritten in
    place, so the model is read and its shapes inferred once. ``original`` (an untouched copy with its
    weights) is what ``--verify full`` and an opset upgrade compare against."""
    if verify not in VERIFY_CHOICES:
        raise UsageError(f"--verify {verify!r}: expected local, full or none")
    if original is None:
        original = onnx.ModelProto()
        original.CopyFrom(view.model)
    job = _Job(original, view.model, view.base_dir, None, options, input_shapes, verify, atol, None, None, dict(view.input_values))
    return _fix(job, view)


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
    input_values: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return "<in-memory model>" if isinstance(self.source, onnx.ModelProto) else str(self.source)


def _start_data_copy(proto: onnx.ModelProto, output: str | os.PathLike | None, source_dir: str | None) -> DataCopy | None:
    """Copy external data beside the output while the passes run (it is most of the save time)."""
    if output is None or source_dir is None or not external_data_files(proto):
        return None
    return DataCopy(proto, output, source_dir)


def _fix(job: _Job, view: ModelView) -> FixResult:
    from rewriter.verify import verify_full, verify_local

    proto = job.proto
    model_opset = default_opset(proto)
    view, recognized = recognize_upsampling(view, job.input_shapes)  # rewrites ``proto`` in place
    plans = [p for p in track(plan_model(view, job.options, job.label, recognized), "analysing Resize nodes")]
    refused = [p.refusal() for p in plans if p.verdict in (INEXACT, UNRESOLVED)]
    if refused:
        raise NotExactError(" | ".join(refused))

    # A recognised Resize the target runs as it is is already in the model: nothing to emit for it.
    rewritten = [p.ctx for p in plans if p.verdict == REWRITE and p.ctx.state.kind != "original"]
    emitted = {id(ctx): ctx.emitted() for ctx in rewritten}
    results = [_result(p) for p in plans]
    if job.verify != "none":
        errors = verify_local([p.ctx for p in plans], emitted, job.atol)
        for plan, result in zip(plans, results):
            result.max_error = errors.get(id(plan.ctx), result.max_error)

    placed = splice(view, rewritten, emitted)
    for plan, result in zip(plans, results):
        _record_provenance(plan, result, placed.get(id(plan.ctx)))
    if job.input_shapes and (emitted or recognized):
        pin_input_shapes(proto, job.input_shapes)
    if job.input_values:
        pin_input_values(proto, job.input_values)
    opset = max((ctx.opset for ctx in rewritten), default=model_opset)
    result = FixResult(proto, results, job.options.target.name, job.source_dir, pinned_inputs=dict(job.input_values))
    if opset != model_opset:
        stamps = _stamps(proto.graph)
        upgrade_opset(proto, opset)
        _restamp(proto.graph, stamps)
        result.opset_upgraded_from, result.opset_upgraded_to = model_opset, opset
    if job.verify == "full" or (result.opset_upgraded_from is not None and job.verify != "none"):
        feeds = {**job.input_values, **(job.inputs or {})}
        verify_full(job.source, result.save, all(n.exact for n in result.nodes), job.input_shapes, feeds or None, job.atol,
                    required=job.verify == "full")
    if job.output is not None:
        result.save(job.output, prestaged=job.early_copy)
    return result


def _stamps(graph: onnx.GraphProto) -> dict[str, list[tuple[str, str]]]:
    """The rule stamps of the emitted nodes, by node name (onnx's version converter drops metadata_props)."""
    found: dict[str, list[tuple[str, str]]] = {}
    for node in graph.node:
        if node.name and any(e.key == RULE_KEY for e in node.metadata_props):
            found[node.name] = [(e.key, e.value) for e in node.metadata_props]
        for _, sub in subgraphs(node):
            found.update(_stamps(sub))
    return found


def _restamp(graph: onnx.GraphProto, stamps: dict[str, list[tuple[str, str]]]) -> None:
    """Put back the stamps the converter dropped: provenance, and what keeps a lowering from being recognised again."""
    for node in graph.node:
        if node.name in stamps and not node.metadata_props:
            for key, value in stamps[node.name]:
                entry = node.metadata_props.add()
                entry.key, entry.value = key, value
        for _, sub in subgraphs(node):
            _restamp(sub, stamps)


def _load(model: str | os.PathLike | onnx.ModelProto) -> tuple[onnx.ModelProto, str | None]:
    if isinstance(model, onnx.ModelProto):
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        return copy, None
    return load_model(model), str(model_dir(model))


def _result(plan: NodePlan) -> NodeResult:
    ctx = plan.ctx
    return NodeResult(
        name=ctx.node.name,
        graph=ctx.scope.path,
        was=plan.recognized.was if plan.recognized is not None else ctx.original.label,
        became=ctx.describe_state() if ctx.steps else "unchanged",
        passes=plan.passes,
        exact=ctx.exact,
        semantics=ctx.original,
        state=ctx.state,
        skipped=dict(ctx.skipped),
        border_error=ctx.border_error,
        max_error=plan.recognized.max_error if plan.recognized is not None else None,
    )


def _record_provenance(plan: NodePlan, result: NodeResult, placed: Subgraph | None) -> None:
    ctx = plan.ctx
    if placed is None:  # left as it is
        result.resize_nodes = [(ctx.node.output[0], ctx.original)]
        if plan.recognized is not None:  # the Resize that replaced a region
            result.emitted_nodes, result.emitted_tensors = [ctx.node.name], list(plan.recognized.tensors)
        return
    result.emitted_nodes = [n.name for n in placed.nodes]
    result.emitted_tensors = [t.name for t in placed.tensors]
    if ctx.state.kind == "respelled":
        result.resize_nodes = [(n.output[0], sem) for n, sem in zip(placed.nodes, ctx.chain_semantics())]


def write_report_json(result: FixResult, path: str | os.PathLike) -> None:
    Path(path).write_text(json.dumps(result.to_json(), indent=2) + "\n")
