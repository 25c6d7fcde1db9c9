"""`inspect` and `check`: what every Resize/Upsample computes, and what each target makes of it."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import onnx

from rewriter.analysis import AS_IS, TargetOptions, Verdict, verdict_for
from rewriter.graph import ModelView
from rewriter.resize import ResizeSemantics, describe_model
from rewriter.targets import TARGETS


@dataclass
class NodeReport:
    semantics: ResizeSemantics
    verdicts: dict[str, Verdict]

    def to_json(self) -> dict:
        s = self.semantics
        return {
            "name": s.name,
            "graph": s.graph_path or None,
            "op_type": s.op_type,
            "opset": s.opset,
            "mode": s.mode,
            "coordinate_transformation_mode": s.transform,
            "nearest_mode": s.nearest_mode,
            "cubic_coeff_a": s.cubic_coeff_a if s.mode == "cubic" else None,
            "exclude_outside": s.exclude_outside,
            "extrapolation_value": s.extrapolation_value if s.transform == "tf_crop_and_resize" else None,
            "antialias": s.antialias,
            "axes": list(s.axes) if s.axes is not None else None,
            "keep_aspect_ratio_policy": s.keep_aspect_ratio_policy,
            "roi": list(s.roi) if s.roi is not None else None,
            "size_source": s.size_source,
            "input_shape": list(s.input_shape),
            "output_shape": list(s.output_shape),
            "scales": [float(x) if x is not None else None for x in s.scales],
            "problems": list(s.problems),
            "targets": {t: v.to_json() for t, v in self.verdicts.items()},
        }


@dataclass
class ModelReport:
    path: str
    opset: int
    nodes: list[NodeReport] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"model": self.path, "opset": self.opset, "nodes": [n.to_json() for n in self.nodes]}


def _as_model(model: str | os.PathLike | onnx.ModelProto) -> tuple[onnx.ModelProto, str, str | None]:
    from rewriter.model_io import load_model, model_dir

    if isinstance(model, onnx.ModelProto):
        return model, "<in-memory model>", None
    return load_model(model), str(model), str(model_dir(model))


def inspect(
    model: str | os.PathLike | onnx.ModelProto,
    *,
    input_shapes: dict[str, tuple[int, ...]] | None = None,
    options: TargetOptions = TargetOptions(),
    targets: tuple[str, ...] = TARGETS,
) -> ModelReport:
    """Describe every Resize/Upsample (subgraphs included) and give a verdict per target."""
    proto, label, base_dir = _as_model(model)
    view = ModelView.build(proto, base_dir, input_shapes)
    report = ModelReport(label, view.opset)
    for sem in describe_model(view):
        reject_invalid(sem, label)
        report.nodes.append(NodeReport(sem, {t: verdict_for(sem, t, options) for t in targets}))
    return report


def reject_invalid(sem: ResizeSemantics, label: str) -> None:
    if sem.invalid is not None:
        from rewriter.errors import BadModelError

        name = f"{sem.graph_path}/{sem.name}" if sem.graph_path else (sem.name or "(unnamed)")
        raise BadModelError(f"{label}: {sem.op_type} node {name}: {sem.invalid}")


@dataclass
class CheckResult:
    target: str
    report: ModelReport

    @property
    def failing(self) -> list[NodeReport]:
        return [n for n in self.report.nodes if n.verdicts[self.target].verdict != AS_IS]

    @property
    def ok(self) -> bool:
        return not self.failing


def check(
    model: str | os.PathLike | onnx.ModelProto,
    target: str = "onnx",
    *,
    input_shapes: dict[str, tuple[int, ...]] | None = None,
    options: TargetOptions = TargetOptions(),
) -> CheckResult:
    """Whether every Resize/Upsample already runs identically on ``target`` as it is."""
    return CheckResult(target, inspect(model, input_shapes=input_shapes, options=options, targets=(target,)))
