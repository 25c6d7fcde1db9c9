"""Each command's result as a ``Listing`` (rewriter.output renders it as a table, plain lines, JSON or CSV)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rewriter.output import Column, Listing

if TYPE_CHECKING:
    from rewriter.caffe.exporter import CaffeExport
    from rewriter.coreml.exporter import CoreMLExport
    from rewriter.fix import FixResult
    from rewriter.inspection import ModelReport, NodeReport
    from rewriter.report import Report

VERDICT_STYLES = {"as-is": "green", "rewrite": "yellow", "inexact": "red", "unresolved": "magenta"}


def _shape(shape) -> str:
    return "x".join("?" if d is None else str(d) for d in shape) or "?"


def _scales(scales) -> str:
    return ", ".join("?" if s is None else f"{s:.6g}" for s in scales)


def verdict_cell(node: NodeReport, target: str) -> str:
    plan = node.plans[target]
    naive = f" (naive mapping error {plan.naive_max_error:.3g})" if plan.naive_max_error else ""
    return f"{plan.verdict}: {plan.how}{naive}"


def inspect_listing(report: ModelReport) -> Listing:
    columns = [Column("node"), Column("op", 2), Column("mode", 4), Column("transform", 1), Column("nearest", 5),
               Column("shape", 3), Column("scales", 6), *(Column(t) for t in report.targets)]
    rows = []
    for node in report.nodes:
        s = node.semantics
        rows.append([
            s.qualified_name,
            f"{s.op_type}-{s.opset}",
            s.mode + (" +antialias" if s.antialias else ""),
            s.transform,
            s.nearest_mode or "",
            f"{_shape(s.input_shape)} → {_shape(s.output_shape)}",
            _scales(s.scales),
            *(verdict_cell(node, t) for t in report.targets),
        ])
    title = f"{report.path} (opset {report.opset}): {len(report.nodes)} resize node(s)"
    return Listing(title, columns, rows, report.to_json(), styles=VERDICT_STYLES)


@dataclass
class ModelCheck:
    """``check`` on one model for one target: the failing nodes, or the error that stopped it."""

    model: str
    target: str
    report: ModelReport | None = None
    error: str | None = None
    failing: list[NodeReport] = field(default_factory=list)

    def to_json(self) -> dict:
        nodes = []
        for node in self.failing:
            plan = node.plans[self.target]
            nodes.append({"name": node.semantics.name, "qualified_name": node.semantics.qualified_name, "label": node.semantics.label,
                          "verdict": plan.verdict, "how": plan.how, "fixable": plan.verdict == "rewrite"})
        total = len(self.report.nodes) if self.report is not None else None
        return {"model": self.model, "target": self.target, "ok": self.error is None and not self.failing,
                "resize_nodes": total, "failing": nodes, "error": self.error}


def check_listing(checks: list[ModelCheck]) -> Listing:
    columns = [Column("model"), Column("target"), Column("node"), Column("verdict"), Column("how", 1), Column("fix-resize", 2)]
    rows, lines = [], []
    for c in checks:
        if c.error is not None:
            rows.append([c.model, c.target, "", "error", c.error, ""])
            continue
        if not c.failing:
            n = len(c.report.nodes)  # type: ignore[union-attr]
            rows.append([c.model, c.target, "", "as-is", f"{n} resize node(s), all run identically", ""])
            lines.append(f"{c.model}: {n} resize node(s), all run identically on {c.target}")
        for node in c.failing:
            s, plan = node.semantics, node.plans[c.target]
            fixable = "fix-resize can make it exact" if plan.verdict == "rewrite" else "fix-resize cannot make it exact"
            rows.append([c.model, c.target, s.qualified_name, plan.verdict, plan.how, fixable])
            lines.append(f"{c.model}: {s.qualified_name} ({s.op_type}-{s.opset} {s.mode}/{s.transform}): {plan.verdict} for {c.target}: {plan.how}; {fixable}")
    failing = sum(1 for c in checks if c.failing or c.error)
    title = f"check: {len(checks) - failing} of {len(checks)} model/target pair(s) run identically as they are"
    return Listing(title, columns, rows, {"checks": [c.to_json() for c in checks]}, plain=lines, styles=VERDICT_STYLES)


def opset_note(result: FixResult) -> str | None:
    if result.opset_upgraded_from is None:
        return None
    return f"model opset raised from {result.opset_upgraded_from} to {result.opset_upgraded_to} for the rewritten nodes (whole model verified)"


def fix_listing(result: FixResult, output: Path) -> Listing:
    columns = [Column("node"), Column("was", 2), Column("became"), Column("passes", 1), Column("max error")]
    rows = []
    for n in result.nodes:
        error = "" if n.max_error is None else f"{n.max_error:.2g}"
        if not n.exact:
            error += " (inexact: --border zero)"
        rows.append([n.qualified_name, n.was, n.became, ", ".join(n.passes) or "-", error])
    notes = [note] if (note := opset_note(result)) else []
    document = {"output": str(output), **result.to_json()}
    return Listing(f"fix-resize --target {result.target} → {output}", columns, rows, document, notes, styles={"inexact:": "red"})


def caffe_listing(r: CaffeExport) -> Listing:
    layers = ", ".join(f"{t} x{n}" for t, n in sorted(r.layers.items()))
    notes = [f"--border zero: max |Caffe - ONNX Runtime| = {r.border_error:.3g} (NOT exact)"] if r.border_error is not None else []
    if (note := opset_note(r.fix)) is not None:  # type: ignore[arg-type]
        notes.append(note)
    rows = [[name, became] for name, became in r.resize_layers.items()]
    document = r.to_json()  # includes the input/output layout changes, machine-readable
    return Listing(f"wrote {r.prototxt} + {r.caffemodel}: {layers}", [Column("node"), Column("became")], rows, document, notes)


def coreml_listing(r: CoreMLExport) -> Listing:
    # resize_ops holds raw ONNX names; print them the way every other command does (subgraph path, "(unnamed)").
    shown = {n.name: n.qualified_name for n in r.fix.nodes if not n.graph}
    rows = [[shown.get(name, name or "(unnamed)"), became] for name, became in r.resize_ops]
    notes = []
    if r.verified_with:
        notes.append(f"verified with {', '.join(r.verified_with)}: max error {r.max_error:.3g} (relative)")
    if (note := opset_note(r.fix)) is not None:
        notes.append(note)
    if (batch := r.flexible_batch) is not None:
        notes.append(f"flexible batch 1..{batch.max_batch} (dimension {batch.label!r}) on input{'s' if len(batch.inputs) > 1 else ''} "
                     f"{', '.join(batch.inputs)}: --max-batch changes the bound, --input-shape pins it")
    title = f"wrote {r.path} ({r.model_format}, {r.deployment_target})"
    return Listing(title, [Column("node"), Column("became")], rows, r.to_json(), notes)


def report_listing(r: Report) -> Listing:
    rows = []
    for node in r.to_json()["nodes"]:
        for t, d in node["targets"].items():
            naive = "" if d["naive_error"] is None else f"{d['naive_error']:.3g}"
            measured = "" if d["measured_error"] is None else f"{d['measured_error']:.2g}"
            rows.append([node["name"], t, d["verdict"], naive, d["fix_resize"] or "", measured])
    columns = [Column("node"), Column("target"), Column("verdict"), Column("naive error", 1), Column("fix-resize writes", 2), Column("measured error", 1)]
    return Listing(f"wrote {r.path}", columns, rows, r.to_json(), styles=VERDICT_STYLES)
