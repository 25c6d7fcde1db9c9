"""The fix-resize pass pipeline for one node: state, proof after every step, and the pass contract.

A node's state is either the original node, a chain of Resize spellings applied one after the other
(separable, so per-axis weights multiply), or a lowered subgraph. Every pass that changes the state
must leave the per-axis weights identical to the original node's; ``NodeContext`` checks that after
each step with the semantics core and rejects the step otherwise, so a pass bug can cost exactness of
nothing, only a missed optimisation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import onnx

from rewriter.analysis import matching_primitives, onnx_canonical_problem, resized_axes
from rewriter.emit import Subgraph
from rewriter.graph import Dim, ModelView, Scope
from rewriter.resize import ResizeSemantics
from rewriter.sampling import AxisWeights
from rewriter.spelling import Spelling, chain_weights, describe_spelling
from rewriter.targets import caffe_primitives, coreml_primitives

LOWER_CHOICES = ("auto", "none", "deconv", "matmul")
BORDER_CHOICES = ("exact", "zero")


@dataclass(frozen=True)
class FixOptions:
    target: str = "onnx"
    deployment_target: str = "iOS15"
    coreml_format: str = "mlprogram"
    caffe_flavor: str = "bvlc"
    lower: str = "auto"
    border: str = "exact"
    max_matrix_bytes: int = 64 << 20
    separable_deconv: bool = True
    # --lower auto for onnx/coreml: below this input length per resized axis the MatMul form is faster than
    # the ConvTranspose form in ONNX Runtime (bench/bench_lowering.py: 0.5-1x native at 32, ~3x both at 128).
    matmul_below: int = 64


@dataclass
class Step:
    pass_name: str
    before: str
    after: str


class ProofError(Exception):
    """A pass produced a form whose weights differ from the original node's (the step is rejected)."""


@dataclass
class NodeContext:
    view: ModelView
    scope: Scope
    node: onnx.NodeProto
    original: ResizeSemantics
    options: FixOptions
    opset: int  # the ai.onnx opset the emitted nodes will run at
    chain: list[Spelling] | None = None
    lowered: Subgraph | None = None
    steps: list[Step] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    exact: bool = True
    border_error: float | None = None  # --border zero: worst-case per-axis error bound of the classic recipe

    # ------------------------------------------------------------------ state

    @property
    def label(self) -> str:
        s = self.original
        return f"{s.op_type}-{s.opset}({s.mode}, {s.transform}" + (f", {s.nearest_mode}" if s.nearest_mode else "") + ")"

    def describe_state(self) -> str:
        if self.lowered is not None:
            return self.lowered.description
        if self.chain is None:
            return self.label
        return " -> ".join(s.label() for s in self.chain) if self.chain else "removed (identity)"

    def chain_semantics(self, chain: list[Spelling] | None = None) -> list[ResizeSemantics]:
        chain = self.chain if chain is None else chain
        if chain is None:
            return [self.original]
        sems: list[ResizeSemantics] = []
        shape: tuple[Dim, ...] = self.original.input_shape
        for spelling in chain:
            sem = describe_spelling(spelling, shape, self.opset, self.original.elem_type)
            sems.append(sem)
            shape = sem.output_shape
        return sems

    def set_chain(self, chain: list[Spelling], pass_name: str) -> None:
        """Adopt a new chain of spellings after proving it has the original weights on every axis."""
        sems = self.chain_semantics(chain)
        final_shape = sems[-1].output_shape if sems else self.original.input_shape
        if tuple(final_shape) != tuple(self.original.output_shape):
            raise ProofError(f"{pass_name}: output shape {final_shape} != {self.original.output_shape}")
        for axis in resized_axes(self.original):
            mine = self.original.axis_weights(axis)
            theirs = chain_weights(sems, axis) if sems else AxisWeights(np.eye(mine.shape[1]))
            if not mine.same_as(theirs):
                raise ProofError(f"{pass_name}: axis {axis} weights differ by {mine.difference(theirs):.3g}")
        for sem in sems:
            for axis in range(sem.rank):
                if axis not in resized_axes(self.original) and not (sem.axes_info[axis].unchanged or sem.is_noop):
                    raise ProofError(f"{pass_name}: resizes axis {axis}, which the original leaves unchanged")
        before = self.describe_state()
        self.chain = chain
        self.steps.append(Step(pass_name, before, self.describe_state()))

    def set_lowered(self, sub: Subgraph, pass_name: str, exact: bool = True) -> None:
        before = self.describe_state()
        self.lowered = sub
        self.exact = exact
        self.steps.append(Step(pass_name, before, sub.description))

    # ------------------------------------------------------------------ target acceptance

    def unaccepted_reason(self) -> str | None:
        """Why the current state does not yet run identically on the target (None: it does)."""
        if self.lowered is not None or self.chain == []:
            return None  # lowered, or removed as an identity: every target runs that
        target = self.options.target
        if self.chain is None and not self.original.resolved and target != "onnx":
            return "cannot be analysed statically: " + ("; ".join(self.original.problems) or "its input shape is unknown: pass --input-shape NAME=DIMS")
        if target == "caffe":
            flavor = self.options.caffe_flavor
            prims = caffe_primitives(flavor)
            if prims and all(resized_axes(sem) and matching_primitives(sem, prims) for sem in self.chain_semantics()):
                return None  # the fork layer (Interp / Upsample) the exporter maps it to samples the same way
            return "BVLC Caffe has no Resize layer" if flavor == "bvlc" else f"no {flavor} layer samples like this node"
        if self.chain is None and (self.original.opset < 11 or self.original.op_type != "Resize"):
            return f"{self.original.op_type}-{self.original.opset} is a legacy op"
        for sem in self.chain_semantics():
            if target == "onnx":
                if (problem := onnx_canonical_problem(sem)) is not None:
                    return problem
            elif target == "coreml":
                if resized_axes(sem) and not matching_primitives(sem, coreml_primitives(self.options.deployment_target, self.options.coreml_format)):
                    return f"no Core ML op for {self.options.deployment_target} samples like {sem.mode}/{sem.transform} here"
        return None


class ResizePass(Protocol):
    """A rewrite rule over one Resize node: ``check`` says why it does not apply (None = applies)."""

    name: str

    def check(self, ctx: NodeContext) -> str | None: ...

    def rewrite(self, ctx: NodeContext) -> None: ...


def run_passes(ctx: NodeContext, passes: list[ResizePass]) -> None:
    for p in passes:
        reason = p.check(ctx)
        if reason is not None:
            ctx.skipped[p.name] = reason
            continue
        try:
            p.rewrite(ctx)
        except ProofError as e:
            ctx.skipped[p.name] = f"rejected: {e}"


