"""The fix-resize ladder for every Resize of a model, run dry: what each node becomes on a target, and why.

``plan_model`` is the one code path behind ``fix-resize`` (which then emits, verifies and writes),
``check`` and ``inspect`` (which only report), so by construction: ``check`` passes on fix-resize's output,
"as-is" means fix-resize leaves the node alone, and ``inspect``'s "how" names the passes fix-resize applies.
Both first run the graph-level ``recognize_upsampling`` (upsampling not spelled as Resize becomes one);
a Resize it made starts its ladder with that step.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx

from passes import SCHEDULE
from passes.recognize_upsampling import RECOGNIZE, Recognition
from rewriter.errors import BadModelError
from rewriter.graph import ModelView, Scope, default_opset
from rewriter.pipeline import FixOptions, NodeContext, PassManager, Step
from rewriter.resize import ResizeSemantics, describe_node, find_resizes
from rewriter.targets.base import FORCED_LOWERINGS, unresolved_reason

AS_IS, REWRITE, INEXACT, UNRESOLVED = "as-is", "rewrite", "inexact", "unresolved"
PASSES = PassManager([cls() for cls in SCHEDULE])


@dataclass
class NodePlan:
    """One node on one target: its final state (in ``ctx``), the verdict, and what a naive converter does."""

    ctx: NodeContext
    verdict: str
    reason: str | None  # INEXACT / UNRESOLVED: why no exact form exists for the target
    naive_max_error: float | None

    @property
    def semantics(self) -> ResizeSemantics:
        return self.ctx.original

    @property
    def passes(self) -> list[str]:
        return [s.pass_name for s in self.ctx.steps]

    @property
    def how(self) -> str:
        if self.verdict == AS_IS:
            prim = self.ctx.target.runs_as(self.semantics) if self.semantics.resolved else None
            return f"{self.ctx.target.label}: " + (prim.name if prim is not None else f"{self.semantics.label} runs as it is")
        if self.verdict == REWRITE:
            return "; ".join(f"{s.pass_name}: {s.after}" for s in self.ctx.steps)
        return self.reason or ""

    def refusal(self) -> str:
        """The one-line message fix-resize gives for a node it cannot make exact."""
        ctx = self.ctx
        why = [f"{p}: {r}" for p, r in ctx.skipped.items() if p.startswith("lower") and self.semantics.resolved]
        detail = f" ({'; '.join(why)})" if why else ""
        hint = f"; {suggestion}" if (suggestion := ctx.target.suggestion(self.semantics)) else ""
        if ctx.options.lower == "none":
            hint += "; try --lower auto"
        elif ctx.options.lower != "auto":
            hint += f"; --lower auto picks a form {ctx.target.label} runs exactly"
        return f"{self.semantics.qualified_name} {self.semantics.label}: cannot be made exact for {ctx.target.name}: {self.reason}{detail}{hint}"

    @property
    def recognized(self) -> Recognition | None:
        """The region this Resize replaces, when ``recognize_upsampling`` made it."""
        return self.ctx.memo.get(RECOGNIZE)  # type: ignore[return-value]

    def to_json(self) -> dict:
        out: dict = {"verdict": self.verdict, "how": self.how, "passes": self.passes}
        if self.naive_max_error is not None:
            out["naive_max_error"] = round(self.naive_max_error, 6)
        if self.verdict == AS_IS and self.semantics.resolved and (prim := self.ctx.target.runs_as(self.semantics)) is not None:
            out["op"] = prim.name
            bound = sum(self.semantics.grid_slack(a) for a in self.semantics.resized_axes) if prim.documented_grid else 0.0
            if bound:  # the native op matches ORT up to ORT's own float32 rounding of the grid, this much at most
                out["grid_bound"] = float(f"{bound:.3g}")
        return out


def emit_opset(view: ModelView, options: FixOptions) -> int:
    """The opset emitted nodes run at: targets that keep Resize nodes need Resize-11 or later."""
    model_opset = default_opset(view.model)
    if options.target.keeps_resize and model_opset < 11 and find_resizes(view):
        return max(model_opset, 11)
    return model_opset


def plan_node(view: ModelView, scope: Scope, node: onnx.NodeProto, options: FixOptions, opset: int, label: str,
              recognized: Recognition | None = None) -> NodePlan:
    sem = describe_node(view, scope, node)
    if sem.invalid is not None:
        raise BadModelError(f"{label}: {sem.op_type} node {sem.qualified_name}: {sem.invalid}")
    ctx = NodeContext(view, scope, node, sem, options, opset)
    if recognized is not None:  # the node replaces a region: that is the first step of its ladder
        ctx.steps.append(Step(RECOGNIZE, recognized.was, recognized.spelling.label()))
        ctx.memo[RECOGNIZE] = recognized
    if (too_large := sem.oversized_axis()) is not None:
        return NodePlan(ctx, INEXACT, too_large, None)
    PASSES.run(ctx)
    reason = ctx.unaccepted_reason()
    asked = FORCED_LOWERINGS.get(options.lower)
    if reason is None and asked is not None and sem.resized_axes and ctx.state.lowering is None:
        reason = f"--lower {options.lower} asks for the {asked.replace('_', ' ')} form and it is not exact here"
    if reason is None:
        verdict = REWRITE if ctx.steps else AS_IS
    elif sem.resolved:
        verdict = INEXACT
    else:  # what stops it is what cannot be resolved, whatever else the target lacks
        verdict, reason = UNRESOLVED, unresolved_reason(sem)
    return NodePlan(ctx, verdict, reason, naive_error(ctx))


def plan_model(view: ModelView, options: FixOptions, label: str, recognized: dict[str, Recognition] | None = None) -> list[NodePlan]:
    """The plan of every Resize/Upsample; ``recognized``: the Resize nodes ``recognize_upsampling`` made, by output."""
    opset = emit_opset(view, options)
    found = recognized or {}
    return [plan_node(view, scope, node, options, opset, label, found.get(node.output[0]) if not scope.path else None)
            for scope, node in find_resizes(view)]


def naive_error(ctx: NodeContext) -> float | None:
    """Worst-case error (inputs in [-1, 1]) of the mapping a name-based converter for the target would make."""
    sem = ctx.original
    if not sem.resolved or not sem.resized_axes:
        return None
    worst = 0.0
    for a in sem.resized_axes:
        naive = ctx.target.naive_weights(sem, a)
        if naive is None:
            return None
        worst = max(worst, naive.difference(sem.axis_weights(a)))
    return worst
