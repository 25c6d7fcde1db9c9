"""rewriter: make ONNX Resize/Upsample give the same numbers on every runtime."""

from rewriter.errors import (
    BadModelError,
    NotExactError,
    RewriterError,
    UnresolvedShapeError,
    UsageError,
    VerificationError,
)
from rewriter.fix import FixResult, NodeResult, fix_resize
from rewriter.inspection import CheckResult, ModelReport, check, inspect

__version__ = "0.1.0"


def export_coreml(*args, **kwargs):
    """ONNX (or Keras) -> Core ML with exact upsampling; see ``rewriter.coreml.export_coreml``."""
    from rewriter.coreml import export_coreml as _export

    return _export(*args, **kwargs)


def export_caffe(*args, **kwargs):
    """ONNX -> Caffe prototxt + caffemodel with exact upsampling; see ``rewriter.caffe.export_caffe``."""
    from rewriter.caffe import export_caffe as _export

    return _export(*args, **kwargs)

__all__ = [
    "BadModelError",
    "CheckResult",
    "FixResult",
    "NodeResult",
    "fix_resize",
    "ModelReport",
    "NotExactError",
    "RewriterError",
    "UnresolvedShapeError",
    "UsageError",
    "VerificationError",
    "check",
    "export_caffe",
    "export_coreml",
    "inspect",
    "__version__",
]
