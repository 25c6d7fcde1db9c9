"""Putting rewritten nodes into the model: splice each replacement in place, keep names unique, stamp the
rules that made each node, drop what only fed the replaced nodes, and raise the opset where needed."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper as oh
from onnx import numpy_helper

from rewriter.emit import Subgraph
from rewriter.errors import NotExactError
from rewriter.graph import ModelView, Scope, default_opset, fresh_name, subgraphs
from rewriter.pipeline import NodeContext

# metadata_props keys on every node fix-resize emits: outside tools can see which rule made it, and from what.
RULE_KEY = "rewriter.rule"
SOURCE_KEY = "rewriter.source"
_PLACEHOLDER_DOMAIN = "rewriter.pending"  # hides freshly emitted nodes from onnx's version converter


def unique_names(view: ModelView) -> set[str]:
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


def splice(view: ModelView, contexts: list[NodeContext], emitted: dict[int, Subgraph]) -> dict[int, Subgraph]:
    """Replace each rewritten node by its subgraph in the model's own graphs, each emitted node stamped with
    the rules that made it (``metadata_props``); returns the subgraphs with their final names, by context."""
    taken = unique_names(view)
    placed: dict[int, Subgraph] = {}
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
            placed[id(ctx)] = sub
            replaced_inputs.extend(n for n in graph.node[k].input[1:] if n)
            del graph.node[k]
            rules = ",".join(s.pass_name for s in ctx.steps)
            for j, node in enumerate(sub.nodes):
                _stamp(node, {RULE_KEY: rules, SOURCE_KEY: ctx.node.name})
                graph.node.insert(k + j, node)
            graph.initializer.extend(sub.tensors)
            if view.model.ir_version < 4:  # IR 3 requires every initializer to be a graph input too
                graph.input.extend(onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in sub.tensors)
        drop_dead_producers(graph, replaced_inputs)
    return placed


def _stamp(node: onnx.NodeProto, entries: dict[str, str]) -> None:
    for key, value in entries.items():
        entry = node.metadata_props.add()
        entry.key, entry.value = key, value


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


def drop_dead_producers(graph: onnx.GraphProto, candidates: list[str]) -> None:
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


def upgrade_opset(model: onnx.ModelProto, opset: int) -> None:
    """Raise the model's ai.onnx opset with onnx's converter, shielding the nodes rewriter emitted.

    The emitted nodes already have their target-opset form; every other node is converted by onnx.
    """
    from onnx import version_converter

    def shield(graph: onnx.GraphProto) -> None:
        for node in graph.node:
            if node.domain in ("", "ai.onnx") and any(e.key == RULE_KEY for e in node.metadata_props):
                node.domain = _PLACEHOLDER_DOMAIN
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


def pin_input_shapes(model: onnx.ModelProto, input_shapes: dict[str, tuple[int, ...]]) -> None:
    """Rewrites derived from --input-shape hold for that shape only: make the model say so."""
    for vi in model.graph.input:
        if vi.name in input_shapes:
            shape = vi.type.tensor_type.shape
            shape.Clear()
            for d in input_shapes[vi.name]:
                shape.dim.add().dim_value = int(d)


def pin_input_values(model: onnx.ModelProto, input_values: dict[str, np.ndarray]) -> None:
    """Inputs pinned to values become constants: the written model no longer has them as inputs (the rewrites
    derived from the values hold for those values only)."""
    keep = [vi for vi in model.graph.input if vi.name not in input_values]
    del model.graph.input[:]
    model.graph.input.extend(keep)
    present = {t.name for t in model.graph.initializer}
    for name, value in input_values.items():
        if name not in present:
            model.graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
        if model.ir_version < 4:  # IR 3 requires every initializer to be a graph input too
            model.graph.input.append(oh.make_tensor_value_info(name, numpy_helper.from_array(np.asarray(value)).data_type, list(value.shape)))
