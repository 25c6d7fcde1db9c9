"""rewriter: make ONNX Resize/Upsample give the same numbers on every runtime.

The public API is loaded on first use, so that ``import rewriter`` (and importing a pass module first)
stays cheap and free of import cycles.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from rewriter.errors import (
    BadModelError,
    NotExactError,
    PassError,
    RewriterError,
    UnsupportedOpError,
    UsageError,
    VerificationError,
)

__version__ = "0.2.0"  # the one place the version is written (pyproject.toml reads it; tags are v<version>)

_LAZY = {
    "fix_resize": "rewriter.fix",
    "FixResult": "rewriter.fix",
    "NodeResult": "rewriter.fix",
    "inspect": "rewriter.inspection",
    "check": "rewriter.inspection",
    "CheckResult": "rewriter.inspection",
    "ModelReport": "rewriter.inspection",
    "export_coreml": "rewriter.coreml",
    "export_caffe": "rewriter.caffe",
    "write_report": "rewriter.report",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rewriter' has no attribute {name!r}")


__all__ = [
    "BadModelError",
    "CheckResult",
    "FixResult",
    "ModelReport",
    "NodeResult",
    "NotExactError",
    "PassError",
    "RewriterError",
    "UnsupportedOpError",
    "UsageError",
    "VerificationError",
    "__version__",
    "check",
    "export_caffe",
    "export_coreml",
    "fix_resize",
    "inspect",
    "write_report",
]
