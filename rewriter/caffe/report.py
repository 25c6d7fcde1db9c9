"""What an export reports: the one-line refusal listing every untranslatable node, and which Caffe layers
each ONNX Resize/Upsample became."""

from __future__ import annotations

from collections import Counter

from rewriter.caffe.net import Net
from rewriter.fix import NodeResult


def describe_resize_layers(nodes: list[NodeResult], net: Net) -> dict[str, str]:
    """ONNX Resize/Upsample node -> "<fix-resize form> -> Caffe: <layer type> x<count>, ...", from fix-resize's
    provenance (the nodes each one became) and the net's record of which node each layer came from."""
    layers_of: dict[str, list[str]] = {}
    for layer in net.layers:
        layers_of.setdefault(net.origin.get(layer.name, ""), []).append(layer.type)
    described: dict[str, str] = {}
    for r in nodes:
        # A node the translator saw is known by its name, or by its output when unnamed.
        sources = r.emitted_nodes or [r.name or output for output, _ in r.resize_nodes]
        caffe = [kind for source in sources for kind in layers_of.get(source, [])]
        kinds = ", ".join(f"{k} x{v}" for k, v in Counter(caffe).items()) if caffe else "no layer"
        described[r.qualified_name] = f"{r.became if r.passes else r.was} -> Caffe: {kinds}"
    return described


def problem_line(problems: list[tuple[str, str, str | None]], target: str) -> str:
    """Every (op, node, reason) the translator could not handle, grouped, in one line."""
    plain: dict[str, list[str]] = {}
    detailed: dict[tuple[str, str], list[str]] = {}
    for op, name, reason in problems:
        if reason is None:
            plain.setdefault(op, []).append(name)
        else:
            detailed.setdefault((op, reason), []).append(name)
    parts = [f"graph input {name!r} {reason}" for op, name, reason in problems if op == "graph input"]
    plain.pop("graph input", None)
    detailed = {k: v for k, v in detailed.items() if k[0] != "graph input"}
    if plain:
        parts.append("unsupported ONNX ops: " + ", ".join(f"{op} ({_node_list(names)})" for op, names in plain.items()))
    for (op, reason), names in detailed.items():
        parts.append(f"{op} ({_node_list(names)}): {reason}")
    return f"cannot export to {target}: " + "; ".join(parts)


def _node_list(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... {len(names) - limit} more" if len(names) > limit else "")


__all__ = ["describe_resize_layers", "problem_line"]
