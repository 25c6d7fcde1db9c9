"""A table of per-op translators for one export target, filled by a decorator.

Each translator is registered for one or more ONNX op types (default domain) with a one-line description
of what the op becomes in the target and, optionally, a precondition: a function of the node and an
exporter-specific context that returns None, or a one-line reason why this node cannot be translated.
The supported-op table, the coverage check and the README tables are all read off the registry, so a
handler and its documentation cannot drift apart.

    CAFFE_OPS = OpRegistry("Caffe")

    @CAFFE_OPS.register("Conv", becomes="Convolution")
    def conv(t, node): ...
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import onnx

Handler = TypeVar("Handler", bound=Callable[..., Any])
# (node, exporter context) -> None, or why this node cannot be translated
Precondition = Callable[[onnx.NodeProto, Any], "str | None"]

_DEFAULT_DOMAINS = ("", "ai.onnx")


@dataclass(frozen=True)
class OpTranslator:
    """One registered op type: its handler, what it becomes, and the precondition it must pass."""

    op_type: str
    handler: Callable[..., Any]
    becomes: str
    precondition: Precondition | None = None


class OpRegistry:
    """ONNX op type -> ``OpTranslator`` for one export target, in registration order."""

    def __init__(self, target: str) -> None:
        self.target = target
        self._ops: dict[str, OpTranslator] = {}

    def register(
        self, *op_types: str, becomes: str, precondition: Precondition | None = None
    ) -> Callable[[Handler], Handler]:
        """Decorator: ``handler`` translates every op in ``op_types``; registering an op twice is an error."""
        if not op_types:
            raise ValueError("register() needs at least one ONNX op type")

        def decorate(handler: Handler) -> Handler:
            for op_type in op_types:
                if op_type in self._ops:
                    raise ValueError(f"{self.target}: ONNX op {op_type} is registered twice")
                self._ops[op_type] = OpTranslator(op_type, handler, becomes, precondition)
            return handler

        return decorate

    def lookup(self, node: onnx.NodeProto) -> OpTranslator | None:
        """The translator of ``node``, or None for an op type (or a domain) the target does not support."""
        if node.domain not in _DEFAULT_DOMAINS:
            return None
        return self._ops.get(node.op_type)

    def refusal(self, node: onnx.NodeProto, context: Any) -> str | None:
        """Why a node of a supported op type still cannot be translated (its precondition), else None."""
        entry = self.lookup(node)
        if entry is None or entry.precondition is None:
            return None
        return entry.precondition(node, context)

    def __contains__(self, op_type: object) -> bool:
        return op_type in self._ops

    def descriptions(self) -> dict[str, str]:
        """ONNX op type -> what it becomes (the supported-op table)."""
        return {op: entry.becomes for op, entry in self._ops.items()}

    def markdown(self, target_column: str) -> str:
        """The supported-op table as markdown (the README's tables are this text)."""
        lines = [f"| ONNX op | {target_column} |", "|---|---|"]
        lines += [f"| {op} | {becomes} |" for op, becomes in self.descriptions().items()]
        return "\n".join(lines)


__all__ = ["OpRegistry", "OpTranslator", "Precondition"]
