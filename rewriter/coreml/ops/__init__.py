"""The Core ML (MIL) translations of ONNX ops, one module per op family; importing this package fills
``COREML_OPS``.

A handler ``(t: Translator, node)`` returns the MIL Var (or a list, one per output) of the node. A
precondition sees the node and a ``NodeContext`` (graph structure only: no weights, no coremltools), so
``rewriter.coreml.coverage`` can refuse a model before any work is done.
"""

from collections.abc import Callable
from dataclasses import dataclass

from rewriter.exporting.registry import OpRegistry
from rewriter.graph import Scope

COREML_OPS = OpRegistry("Core ML")


@dataclass(frozen=True)
class NodeContext:
    """What a Core ML precondition knows: the graph's shapes and which tensors are known before run time."""

    scope: Scope
    is_static: Callable[[str], bool]


# Each module registers its handlers on import.
from rewriter.coreml.ops import activations, conv, elementwise, linear, normalization, resize, shapes  # noqa: E402,F401

__all__ = ["COREML_OPS", "NodeContext"]
