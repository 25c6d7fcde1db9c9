"""The target registry: one module per deployment target, each a ``Target`` subclass registered here.

Adding a target means one new module under ``rewriter/targets/``, one line in ``_REGISTRY`` and its tests;
the CLI's ``--target`` choices, ``inspect``'s columns and fix-resize's ladder all read the registry.
"""

from __future__ import annotations

from collections.abc import Mapping

from rewriter.errors import UsageError
from rewriter.targets.base import LOWER_CHOICES, Option, Primitive, Target
from rewriter.targets.caffe import CaffeTarget
from rewriter.targets.coreml import CoreMLTarget
from rewriter.targets.mnn import MNNTarget
from rewriter.targets.ncnn import NcnnTarget
from rewriter.targets.onnx import OnnxTarget
from rewriter.targets.openvino import OpenVINOTarget
from rewriter.targets.rknn import RKNNTarget
from rewriter.targets.tflite import TfliteTarget
from rewriter.targets.torch import TorchTarget
from rewriter.targets.tract import TractTarget

_REGISTRY: dict[str, type[Target]] = {cls.name: cls for cls in (OnnxTarget, CoreMLTarget, CaffeTarget, OpenVINOTarget, TractTarget, MNNTarget, RKNNTarget, NcnnTarget, TorchTarget, TfliteTarget)}
TARGET_NAMES: tuple[str, ...] = tuple(_REGISTRY)
DEFAULT_TARGETS: tuple[str, ...] = tuple(name for name, cls in _REGISTRY.items() if cls.listed_by_default)


def target_class(name: str) -> type[Target]:
    if name not in _REGISTRY:
        raise UsageError(f"--target {name!r}: expected one of {', '.join(TARGET_NAMES)}")
    return _REGISTRY[name]


def make_target(name: str | Target, options: Mapping[str, str | None] | None = None) -> Target:
    """The target called ``name`` with its options picked from ``options`` and validated."""
    if isinstance(name, Target):
        return name
    return target_class(name).from_options(options)


def option_flags() -> dict[str, Option]:
    """Every target option by key (for the CLI and the API)."""
    return {key: opt for cls in _REGISTRY.values() for key, opt in cls.options.items()}


__all__ = ["DEFAULT_TARGETS", "LOWER_CHOICES", "TARGET_NAMES", "Option", "Primitive", "Target", "make_target", "option_flags", "target_class"]
