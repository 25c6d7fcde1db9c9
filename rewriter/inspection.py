"""`inspect` and `check`: fix-resize run dry. What every Resize/Upsample computes, and what each target makes of it."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import onnx

from rewriter.graph import ModelView
from rewriter.plan import AS_IS, NodePlan, plan_model
from rewriter.resize import ResizeSemantics
from rewriter.targets import DEFAULT_TARGETS, Target, make_target


@dataclass
class NodeReport:
    semantics: ResizeSemantics
    plans: dict[str, NodePlan]

    @property
    def verdicts(self) -> dict[str, NodePlan]:
        return self.plans

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
            "recognized": first.recognized.to_json() if (first := next(iter(self.plans.values()), None)) and first.recognized else None,
            "targets": {t: p.to_json() for t, p in self.plans.items()},
        }


@dataclass
class ModelReport:
    path: str
    opset: int
    targets: list[str] = field(default_factory=list)
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
    input_values: dict | None = None,
    targets: tuple[str | Target, ...] = DEFAULT_TARGETS,
    options: dict[str, str | None] | None = None,
) -> ModelReport:
    """Describe every Resize/Upsample (subgraphs included) and what fix-resize would do for each target."""
    from passes.recognize_upsampling import recognize_upsampling
    from rewriter.fix import fix_options

    proto, label, base_dir = _as_model(model)
    view = ModelView.build(proto, base_dir, input_shapes, input_values)
    view, recognized = recognize_upsampling(view, input_shapes, copy=True)  # as fix-resize does, on a copy
    chosen = [make_target(t, options) for t in targets] or [make_target("onnx")]
    per_target = {t.name: plan_model(view, fix_options(t), label, recognized) for t in chosen}
    report = ModelReport(label, view.opset, [t.name for t in chosen])
    for k, first in enumerate(per_target[chosen[0].name]):
        report.nodes.append(NodeReport(first.semantics, {name: plans[k] for name, plans in per_target.items()}))
    return report


@dataclass
class CheckResult:
    target: str
    report: ModelReport

    @property
    def failing(self) -> list[NodeReport]:
        return [n for n in self.report.nodes if n.plans[self.target].verdict != AS_IS]

    @property
    def ok(self) -> bool:
        return not self.failing


def check(
    model: str | os.PathLike | onnx.ModelProto,
    target: str | Target = "onnx",
    *,
    input_shapes: dict[str, tuple[int, ...]] | None = None,
    input_values: dict | None = None,
    options: dict[str, str | None] | None = None,
) -> CheckResult:
    """Whether every Resize/Upsample already runs identically on ``target`` as it is (fix-resize would leave it)."""
    chosen = make_target(target, options)
    return CheckResult(chosen.name, inspect(model, input_shapes=input_shapes, input_values=input_values, targets=(chosen,), options=options))
