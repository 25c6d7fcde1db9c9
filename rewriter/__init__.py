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
    "inspect",
    "__version__",
]
