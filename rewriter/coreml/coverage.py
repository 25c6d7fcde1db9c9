"""Which ONNX ops the Core ML exporter translates, and the one-line refusal for everything else.

The check runs on the graph structure only (no weights, no fix-resize, no coremltools): a model with an op
outside the registry (``rewriter.coreml.ops``), or a node failing its op's precondition, is refused before any
work is done, with every offending op type and the nodes using it.
Nodes whose outputs are known statically (Shape / Size arithmetic, constant subgraphs) are folded to
constants by the exporter, so their op type does not matter.
"""

from __future__ import annotations

import onnx

from rewriter.coreml.ops import COREML_OPS, NodeContext
from rewriter.errors import UnsupportedOpError
from rewriter.graph import ModelView, subgraphs

# ONNX op -> what it becomes in the MIL program (before coremltools' own graph passes fuse things).
SUPPORTED_OPS: dict[str, str] = COREML_OPS.descriptions()


def check_coverage(view: ModelView, exempt: frozenset[str] = frozenset()) -> None:
    """Raise ``UnsupportedOpError`` listing every op (with its nodes) the exporter cannot translate.

    ``exempt``: nodes fix-resize may replace by a Resize (upsampling spelled without one); if it does not, the
    translator refuses them later, in the same one-line form.
    """
    scope = view.scopes[0]
    problems: dict[str, list[str]] = {}

    # Tensors that depend on input DATA (not just on input shapes): anything else is a constant once the
    # input shapes are static (Shape/Size arithmetic), and the exporter folds it whatever its op type.
    graph = scope.source if scope.source is not None else view.model.graph  # scope.graph: a weight-free copy
    initializers = {t.name for t in graph.initializer}
    data = {vi.name for vi in graph.input if vi.name not in initializers}
    for node in graph.node:
        if node.op_type.startswith("Random") or node.op_type in ("Bernoulli", "Multinomial") or node.op_type not in ("Shape", "Size") and any(i in data for i in node.input if i) or any(_reads_outer(sub, data) for _, sub in subgraphs(node)):
            data.update(o for o in node.output if o)

    def is_static(name: str) -> bool:
        return not name or name not in data

    context = NodeContext(scope, is_static)

    for k, node in enumerate(graph.node):
        label = node.name or f"{node.op_type}_{k}"
        if label in exempt:
            continue
        domain = node.domain if node.domain not in ("", "ai.onnx") else ""
        key = None
        if domain:
            key = f"{domain}.{node.op_type}"
        elif node.op_type not in COREML_OPS:
            outputs = [o for o in node.output if o]
            if not outputs or any(o in data for o in outputs) or list(subgraphs(node)):
                key = node.op_type
        else:
            variant = COREML_OPS.refusal(node, context)
            if variant is not None:
                key = f"{node.op_type}({variant})"
        if key is not None:
            problems.setdefault(key, []).append(label)
    if problems:
        parts = [f"{op} ({', '.join(nodes)})" for op, nodes in problems.items()]
        raise UnsupportedOpError("unsupported ONNX ops for Core ML: " + "; ".join(parts))


def _reads_outer(graph: onnx.GraphProto, names: set[str]) -> bool:
    """Whether a subgraph (If/Loop body) reads one of ``names`` from the enclosing scope."""
    for node in graph.node:
        if any(i in names for i in node.input):
            return True
        if any(_reads_outer(sub, names) for _, sub in subgraphs(node)):
            return True
    return False


def supported_ops_markdown() -> str:
    """The README table of supported ops."""
    return COREML_OPS.markdown("Core ML (MIL)")


__all__ = ["SUPPORTED_OPS", "check_coverage", "subgraphs", "supported_ops_markdown"]
