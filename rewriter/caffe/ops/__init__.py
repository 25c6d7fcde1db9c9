"""The Caffe translations of ONNX ops, one module per op family; importing this package fills ``CAFFE_OPS``.

A handler ``(t: Translator, node)`` adds the node's layers to ``t.net`` and records its outputs with
``t.set`` / ``t.alias``; it refuses a node by raising ``Problem`` with a one-line reason.
"""

from rewriter.exporting.registry import OpRegistry

CAFFE_OPS = OpRegistry("Caffe")

# Each module registers its handlers on import.
from rewriter.caffe.ops import activations, conv, elementwise, linear, normalization, resize, shapes  # noqa: E402,F401


def supported_ops_markdown() -> str:
    """The README table of supported ops."""
    return CAFFE_OPS.markdown("Caffe layers")


__all__ = ["CAFFE_OPS", "supported_ops_markdown"]
