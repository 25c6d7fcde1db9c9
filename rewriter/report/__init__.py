"""`rewriter report`: one self-contained HTML page showing, per Resize/Upsample, what goes wrong without rewriter.

For every node: where its output pixels sample the input compared with what each target's name-based
converter would do, the error of that naive mapping on a test image, and what fix-resize emits for each
target with the error measured in ONNX Runtime. Pictures are PNGs embedded in the page (no external file,
no script), made with matplotlib (the ``report`` extra).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rewriter.errors import NotExactError, RewriterError, UsageError
from rewriter.inspection import ModelReport, NodeReport, inspect
from rewriter.sampling import AxisWeights
from rewriter.targets import TARGET_NAMES


@dataclass
class Emitted:
    """What fix-resize writes for one node on one target, or why it writes nothing."""

    became: str
    passes: list[str]
    max_error: float | None
    refusal: str | None = None


@dataclass
class NodeSection:
    node: NodeReport
    grid_png: bytes | None = None
    error_png: bytes | None = None
    naive_errors: dict[str, float] = field(default_factory=dict)  # target -> worst error on the test image
    emitted: dict[str, Emitted] = field(default_factory=dict)
    note: str | None = None  # why there are no pictures


@dataclass
class Report:
    """What ``write_report`` wrote: the page, the dry-run report behind it, and one section per node."""

    path: Path
    model: ModelReport
    sections: list[NodeSection]

    def to_json(self) -> dict:
        nodes = []
        for s in self.sections:
            per_target = {}
            for t in self.model.targets:
                e = s.emitted.get(t)
                per_target[t] = {"verdict": s.node.plans[t].verdict, "naive_error": s.naive_errors.get(t),
                                 "fix_resize": None if e is None else (e.refusal or e.became), "passes": [] if e is None else e.passes,
                                 "measured_error": None if e is None else e.max_error}
            nodes.append({"name": s.node.semantics.qualified_name, "pictures": s.grid_png is not None, "note": s.note, "targets": per_target})
        return {"output": str(self.path), "model": self.model.path, "nodes": nodes}


def _need_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError("rewriter report needs matplotlib: pip install 'rewriter[report]'") from None


def _emitted(model: Path, target: str, options: dict, input_shapes: dict, input_values: dict) -> dict[str, Emitted]:
    """fix-resize dry (nothing written) for one target: per node name, what it became and its measured error."""
    from rewriter.fix import fix_resize

    try:
        result = fix_resize(model, target, None, deployment_target=options.get("deployment_target"),
                            caffe_flavor=options.get("flavor"), input_shapes=input_shapes, input_values=input_values, verify="local")
    except NotExactError as e:
        return {"": Emitted("nothing (the model is refused as a whole)", [], None, str(e))}
    return {n.qualified_name: Emitted(n.became, n.passes, n.max_error) for n in result.nodes}


def _pictures(section: NodeSection, targets: list[str]) -> None:
    from rewriter.report.figures import Mapping, error_png, grid_png, sample_image

    sem = section.node.semantics
    if not sem.resolved or not sem.resized_axes:
        section.note = section.node.plans[targets[0]].reason or "no resized axis: nothing to draw"
        return
    if (too_large := sem.oversized_axis()) is not None:
        section.note = too_large
        return
    rows_axis, cols_axis = (sem.rank - 2, sem.rank - 1) if sem.rank >= 2 else (None, 0)

    def weights(axis: int | None, naive_of=None):
        if axis is None:  # a 1-D resize is drawn as a one-row image
            return AxisWeights(np.eye(1))
        if naive_of is None or axis not in sem.resized_axes:
            return sem.axis_weights(axis)
        return naive_of.naive_weights(sem, axis)

    mappings = [Mapping("node (ONNX Runtime)", weights(rows_axis), weights(cols_axis))]
    for t in targets:
        target = section.node.plans[t].ctx.target
        mappings.append(Mapping(f"naive {t}", weights(rows_axis, target), weights(cols_axis, target)))
    h = int(sem.axes_info[rows_axis].n) if rows_axis is not None else 1  # type: ignore[arg-type]
    w = int(sem.axes_info[cols_axis].n)  # type: ignore[arg-type]
    section.grid_png = grid_png("W" if sem.rank >= 2 else "axis 0", mappings)
    section.error_png, worst = error_png(mappings, sample_image(h, w))
    section.naive_errors = {label.removeprefix("naive "): e for label, e in worst.items()}


def write_report(
    model: str | os.PathLike,
    output: str | os.PathLike,
    *,
    targets: tuple[str, ...] = TARGET_NAMES,
    input_shapes: dict[str, tuple[int, ...]] | None = None,
    input_values: dict[str, object] | None = None,
    options: dict[str, str | None] | None = None,
) -> Report:
    """Write the HTML report of ``model`` to ``output`` (atomically)."""
    from rewriter.report.page import render

    out = Path(output)
    if not out.parent.is_dir():
        raise UsageError(f"cannot write {out}: directory does not exist")
    _need_matplotlib()
    model = Path(model)
    options = options or {}
    report = inspect(model, input_shapes=input_shapes, input_values=input_values, targets=targets, options=options)
    emitted = {t: _emitted(model, t, options, input_shapes or {}, input_values or {}) for t in report.targets}
    sections = []
    for node in report.nodes:
        section = NodeSection(node)
        for t in report.targets:
            found = emitted[t].get(node.semantics.qualified_name) or emitted[t].get("")
            if found is not None:
                section.emitted[t] = found
        try:
            _pictures(section, report.targets)
        except (RewriterError, ValueError) as e:
            section.note = f"no pictures: {e}"
        sections.append(section)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(render(report, sections), encoding="utf-8")
    os.replace(tmp, out)
    return Report(out, report, sections)
