"""The report's HTML: one static page, inline CSS, PNGs as data URIs, every text escaped."""

from __future__ import annotations

import base64
from html import escape
from typing import TYPE_CHECKING

from rewriter import __version__

if TYPE_CHECKING:
    from rewriter.inspection import ModelReport
    from rewriter.report import NodeSection

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; padding-bottom: .2em; }
code { background: #f4f4f4; padding: 0 .2em; }
table { border-collapse: collapse; margin: .8em 0; }
th, td { border: 1px solid #ccc; padding: .3em .6em; text-align: left; vertical-align: top; font-size: .92em; }
th { background: #f4f4f4; }
.as-is { color: #1a7f37; font-weight: 600; } .rewrite { color: #9a6700; font-weight: 600; }
.inexact, .unresolved { color: #cf222e; font-weight: 600; }
img { max-width: 100%; display: block; margin: .5em 0; }
.note { color: #555; font-style: italic; }
"""


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.3g}"


def _dims(dims) -> str:
    return "x".join("?" if d is None else str(d) for d in dims)


def _section(s: NodeSection, targets: list[str]) -> str:
    sem = s.node.semantics
    parts = [
        f"<h2>{escape(sem.qualified_name)} <small>{escape(sem.label)}</small></h2>",
        f"<p>{escape(_dims(sem.input_shape))} → {escape(_dims(sem.output_shape))}</p>",
    ]
    if s.grid_png is not None:
        parts.append("<h3>Where output pixels sample the input</h3>")
        parts.append(_img(s.grid_png, f"sampling grid of {sem.qualified_name}"))
    if s.error_png is not None:
        parts.append("<h3>Error of each naive mapping on a test image</h3>")
        parts.append(_img(s.error_png, f"error maps of {sem.qualified_name}"))
    if s.note:
        parts.append(f'<p class="note">{escape(s.note)}</p>')
    rows = []
    for t in targets:
        plan = s.node.plans[t]
        e = s.emitted.get(t)
        became = "" if e is None else (e.refusal or e.became)
        passes = "" if e is None else ", ".join(e.passes) or "–"
        naive = s.naive_errors.get(t)
        rows.append(
            f'<tr><td>{escape(t)}</td><td class="{escape(plan.verdict)}">{escape(plan.verdict)}</td><td>{escape(plan.how)}</td>'
            f"<td>{_num(naive)}</td><td>{escape(became)}</td><td>{escape(passes)}</td><td>{_num(e.max_error if e else None)}</td></tr>"
        )
    parts.append(
        "<h3>What rewriter emits instead</h3><table><tr><th>target</th><th>verdict</th><th>how</th><th>naive error</th>"
        "<th>fix-resize writes</th><th>passes</th><th>measured error</th></tr>" + "".join(rows) + "</table>"
    )
    return "\n".join(parts)


def render(report: ModelReport, sections: list[NodeSection]) -> str:
    body = "\n".join(_section(s, report.targets) for s in sections) or "<p>No Resize/Upsample node in this model.</p>"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>rewriter report: {escape(report.path)}</title><style>{_CSS}</style></head>
<body>
<h1>Resize/Upsample report: <code>{escape(report.path)}</code></h1>
<p>opset {report.opset}, {len(report.nodes)} resize node(s), targets: {escape(", ".join(report.targets))}. rewriter {escape(__version__)}.</p>
<p>The <b>node</b> mapping is what ONNX Runtime computes. A <b>naive</b> mapping is what a converter that maps by attribute
names would compute for that target (onnx's version converter for legacy ops, the default bilinear grid of Core ML
converters, the classic Caffe bilinear Deconvolution). <b>Naive error</b>: the largest difference from the node's output on
the test image (values in [−1, 1]). <b>Measured error</b>: what fix-resize emits, run in ONNX Runtime against the original node.</p>
{body}
</body></html>
"""
