"""The pass contract for one Resize node: its state, the passes that change it, and the proof of every step.

A node's state is the original node, a chain of Resize spellings applied one after the other (separable,
so per-axis weights multiply), the identity (removed), or a lowered subgraph. A pass (``passes/``) declares
its name, its kind (``RESPELL`` or ``LOWER``) and what it must run after; ``check`` says why it does not
apply (None: it applies) and ``rewrite`` returns the new state. ``NodeContext.adopt`` proves every new
state against the original node's per-axis weights before taking it: a chain through the same parser as
any input model (``spelling.describe_spelling``), a lowering by rebuilding its matrices from the emitted
nodes and constants (``rewriter.proof``). A wrong rewrite is rejected, never emitted, whatever ``--verify``
says. ``PassManager`` validates the schedule up front and names the pass, the node and the passes before
it when a pass fails unexpectedly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import onnx
from onnx import helper as oh

from rewriter.emit import Subgraph
from rewriter.errors import PassError, UsageError
from rewriter.graph import Dim, ModelView, Scope
from rewriter.proof import ProofError, lowering_error, weight_tolerance
from rewriter.resize import ResizeSemantics
from rewriter.sampling import AxisWeights
from rewriter.spelling import Spelling, chain_weights, describe_spelling, resize_node
from rewriter.targets import LOWER_CHOICES, Target, make_target

RESPELL, LOWER = "respell", "lower"
BORDER_CHOICES = ("exact", "zero")
SYMBOLIC_DIM = 2  # the value a symbolic (unchanged) dimension takes where a concrete shape is needed


@dataclass(frozen=True)
class FixOptions:
    target: Target  # a name is taken as that target with its default options
    lower: str = "auto"
    border: str = "exact"
    max_matrix_bytes: int = 64 << 20
    separable_deconv: bool | None = None  # None: the target's choice

    def __post_init__(self) -> None:
        if isinstance(self.target, str):
            object.__setattr__(self, "target", make_target(self.target))
        if self.lower not in LOWER_CHOICES:
            raise UsageError(f"--lower {self.lower!r}: expected one of {', '.join(LOWER_CHOICES)}")
        if self.border not in BORDER_CHOICES:
            raise UsageError(f"--border {self.border!r}: expected exact or zero")

    @property
    def separable(self) -> bool:
        return self.target.separable_deconv if self.separable_deconv is None else self.separable_deconv


@dataclass(frozen=True)
class Lowering:
    """A lowered form: which one, its per-axis parameters, and the nodes that compute it."""

    form: str  # rewriter.targets.base: conv_transpose | gather | matmul
    parameters: dict[int, object]  # per resized axis: ConvTransposeForm, index table, or matrix shape
    subgraph: Subgraph
    exact: bool = True  # False only for --border zero (the classic recipe, approximate by design)

    def to_json(self) -> dict:
        def plain(value: object) -> object:
            return value.__dict__ if hasattr(value, "__dict__") else value

        return {"form": self.form, "axes": {str(a): plain(p) for a, p in self.parameters.items()}, "exact": self.exact}


@dataclass(frozen=True)
class NodeState:
    """``spellings`` None and no ``lowering``: the original node; ``()``: removed (identity)."""

    spellings: tuple[Spelling, ...] | None = None
    lowering: Lowering | None = None

    @property
    def kind(self) -> str:
        if self.lowering is not None:
            return "lowered"
        if self.spellings is None:
            return "original"
        return "respelled" if self.spellings else "removed"


ORIGINAL = NodeState()


@dataclass
class Step:
    pass_name: str
    before: str
    after: str


class Pass:
    """A rewrite rule over one Resize node (subclasses live in ``passes/``)."""

    name: ClassVar[str]
    kind: ClassVar[str]  # RESPELL or LOWER
    runs_after: ClassVar[tuple[str, ...]] = ()  # passes that must come before this one when both are scheduled

    def check(self, ctx: NodeContext) -> str | None:
        raise NotImplementedError

    def rewrite(self, ctx: NodeContext) -> NodeState:
        raise NotImplementedError


@dataclass
class NodeContext:
    view: ModelView
    scope: Scope
    node: onnx.NodeProto
    original: ResizeSemantics
    options: FixOptions
    opset: int  # the ai.onnx opset the emitted nodes will run at
    state: NodeState = ORIGINAL
    steps: list[Step] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    border_error: float | None = None  # --border zero: measured worst-case error of the emitted recipe
    memo: dict[str, object] = field(default_factory=dict)  # what a pass's check found, for its rewrite

    @property
    def target(self) -> Target:
        return self.options.target

    @property
    def chain(self) -> tuple[Spelling, ...] | None:
        return self.state.spellings

    @property
    def exact(self) -> bool:
        return self.state.lowering is None or self.state.lowering.exact

    @property
    def concrete_input_shape(self) -> tuple[int, ...]:
        return tuple(d if isinstance(d, int) else SYMBOLIC_DIM for d in self.original.input_shape)

    def describe_state(self, state: NodeState | None = None) -> str:
        state = self.state if state is None else state
        if state.lowering is not None:
            return state.lowering.subgraph.description
        if state.spellings is None:
            return self.original.label
        return " -> ".join(s.label() for s in state.spellings) if state.spellings else "removed (identity)"

    def chain_semantics(self, chain: tuple[Spelling, ...] | None = None) -> list[ResizeSemantics]:
        chain = self.state.spellings if chain is None else chain
        if chain is None:
            return [self.original]
        sems: list[ResizeSemantics] = []
        shape: tuple[Dim, ...] = self.original.input_shape
        for spelling in chain:
            sem = describe_spelling(spelling, shape, self.opset, self.original.elem_type)
            sems.append(sem)
            shape = sem.output_shape
        return sems

    def current_weights(self, axis: int) -> AxisWeights:
        """The weights the current (not lowered) state applies on ``axis``."""
        sems = self.chain_semantics()
        return chain_weights(sems, axis) if sems else AxisWeights(np.eye(int(self.original.input_shape[axis])))  # type: ignore[arg-type]

    def unaccepted_reason(self) -> str | None:
        """Why the current state does not yet run identically on the target (None: it does)."""
        if self.state.kind in ("lowered", "removed"):
            return None  # the lowering passes emit only forms the target allows; every target runs the identity
        for sem in self.chain_semantics():
            if (reason := self.target.accepts(sem)) is not None:
                return reason
        return None

    # ------------------------------------------------------------------ proofs

    def adopt(self, state: NodeState, pass_name: str) -> None:
        """Take ``state`` after proving it has the original node's weights (ProofError otherwise)."""
        if state.lowering is not None:
            self._prove_lowering(state.lowering)
        else:
            self._prove_chain(state.spellings or ())
        self.steps.append(Step(pass_name, self.describe_state(), self.describe_state(state)))
        self.state = state

    def _prove_chain(self, chain: tuple[Spelling, ...]) -> None:
        original = self.original
        sems = self.chain_semantics(chain)
        final_shape = sems[-1].output_shape if sems else original.input_shape
        if tuple(final_shape) != tuple(original.output_shape):
            raise ProofError(f"output shape {final_shape} != {original.output_shape}")
        resized = original.resized_axes
        for axis in resized:
            mine = original.axis_weights(axis)
            theirs = chain_weights(sems, axis) if sems else AxisWeights(np.eye(mine.shape[1]))
            if not mine.same_as(theirs):
                raise ProofError(f"axis {axis} weights differ by {mine.difference(theirs):.3g}")
        for sem in sems:
            if any(axis not in resized for axis in sem.resized_axes):
                raise ProofError("it resizes an axis the original leaves unchanged")

    def _prove_lowering(self, lowering: Lowering) -> None:
        error = lowering_error(self.original, lowering.subgraph, self.concrete_input_shape)
        if lowering.exact and error > weight_tolerance(self.original.elem_type):
            raise ProofError(f"the emitted {lowering.form} applies weights that differ by {error:.3g}")
        if not lowering.exact:
            self.border_error = error

    # ------------------------------------------------------------------ emission

    def emitted(self) -> Subgraph:
        """The nodes and constants that replace the original node in its graph."""
        if self.state.lowering is not None:
            return self.state.lowering.subgraph
        x, y = self.node.input[0], self.node.output[0]
        sub = Subgraph(x, y, description=self.describe_state())
        base = self.node.name or "resize"
        chain = self.state.spellings or ()
        if not chain:
            sub.nodes.append(oh.make_node("Identity", [x], [y], name=f"{base}/identity"))
            return sub
        current = x
        for k, spelling in enumerate(chain):
            out = y if k == len(chain) - 1 else f"{base}_part{k}"
            name = base if len(chain) == 1 else f"{base}/part{k}"
            node, tensors = resize_node(spelling, current, out, name, max(self.opset, spelling.min_opset))
            sub.nodes.append(node)
            sub.tensors.extend(tensors)
            current = out
        return sub


class ScheduleError(Exception):
    """A pass schedule that breaks a declared ordering constraint (a programming error, caught up front)."""


class PassManager:
    """Runs passes in their schedule order on one node; the schedule is validated when it is built."""

    def __init__(self, passes: list[Pass]) -> None:
        names = [p.name for p in passes]
        if len(set(names)) != len(names):
            raise ScheduleError(f"a pass is scheduled twice: {names}")
        position = {name: k for k, name in enumerate(names)}
        for k, p in enumerate(passes):
            if p.kind not in (RESPELL, LOWER):
                raise ScheduleError(f"pass {p.name!r} has unknown kind {p.kind!r}")
            for before in p.runs_after:
                if before in position and position[before] > k:
                    raise ScheduleError(f"pass {p.name!r} must run after {before!r}")
        kinds = [p.kind for p in passes]
        if LOWER in kinds and RESPELL in kinds[kinds.index(LOWER):]:
            raise ScheduleError("every respelling pass must run before the lowering passes (they read spellings)")
        self.passes = list(passes)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.passes]

    def run(self, ctx: NodeContext) -> None:
        ran: list[str] = []
        for p in self.passes:
            try:
                reason = p.check(ctx)
                if reason is not None:
                    ctx.skipped[p.name] = reason
                    continue
                state = p.rewrite(ctx)
                ctx.adopt(state, p.name)
                ran.append(p.name)
            except ProofError as e:
                ctx.skipped[p.name] = f"rejected: {e}"
            except Exception as e:  # a bug in a pass: say which pass, on which node, after what
                before = ", ".join(ran) or "none"
                first = (str(e).strip().splitlines() or [type(e).__name__])[0]
                raise PassError(
                    f"pass {p.name!r} failed on {ctx.original.qualified_name} {ctx.original.label} (passes applied before it: {before}): {type(e).__name__}: {first}"
                ) from e
