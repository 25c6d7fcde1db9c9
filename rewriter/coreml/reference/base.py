"""What every saved Core ML model offers the reference evaluator, whatever its format: ``read_spec`` (the
protobuf spec of a saved file), the ``ReferenceModel`` interface (``run``, ``resize_ops``, metadata) and
``ResizeOp``, one resizing op or layer with the per-axis matrices it applies."""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rewriter.sampling import AxisWeights


@dataclass
class ResizeOp:
    """One resizing op/layer of a saved model and the per-axis matrices it applies (documented grids)."""

    name: str
    kind: str  # MIL op type or "NN:<layer>"
    params: dict[str, Any]
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    weights_h: AxisWeights
    weights_w: AxisWeights

    def describe(self) -> str:
        order = ["scale_factor_height", "scale_factor_width", "target_size_height", "target_size_width", "align_corners",
                 "half_pixel_centers", "sampling_mode", "mode", "linearUpsampleMode", "scalingFactor", "fractionalScalingFactor", "targetSize"]
        keys = sorted(self.params, key=lambda k: (order.index(k) if k in order else len(order), k))
        return f"{self.kind}(" + ", ".join(f"{k}={_show(self.params[k])}" for k in keys) + ")"


def _show(v) -> str:
    if isinstance(v, (float, np.floating)) and not float(v).is_integer():
        return np.format_float_positional(np.float32(v))
    if isinstance(v, np.ndarray):
        return _show(v.tolist())
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_show(x) for x in v) + "]"
    return str(v)


def _quiet_import():
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        import coremltools
        from coremltools.proto import MIL_pb2  # noqa: F401
    return coremltools


def read_spec(path: str | os.PathLike):
    """The protobuf spec of a saved .mlmodel or .mlpackage (coremltools reads it; nothing is compiled)."""
    ct = _quiet_import()
    with contextlib.redirect_stderr(io.StringIO()):
        return ct.models.MLModel(str(path), skip_model_load=True).get_spec()


class ReferenceModel:
    """A saved model read back: ``run`` evaluates it, ``resize_ops`` lists its resizing ops with their matrices."""

    format = ""

    def __init__(self, path: Path, spec) -> None:
        self.path = path
        self.spec = spec
        self.input_names = [i.name for i in spec.description.input]
        self.output_names = [o.name for o in spec.description.output]

    @property
    def metadata(self) -> dict[str, str]:
        return dict(self.spec.description.metadata.userDefined)

    def accepts(self, name: str, shape: tuple[int, ...]) -> bool:
        """``shape`` is the input's declared shape, or within its declared ranges (a flexible dimension)."""
        array = next(i.type.multiArrayType for i in self.spec.description.input if i.name == name)
        ranges = array.shapeRange.sizeRanges
        if not ranges:
            return not array.shape or tuple(shape) == tuple(int(s) for s in array.shape)
        return len(shape) == len(ranges) and all(r.lowerBound <= n and (r.upperBound < 0 or n <= r.upperBound)
                                                 for n, r in zip(shape, ranges))

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def resize_ops(self, input_shapes: dict[str, tuple[int, ...]] | None = None) -> list[ResizeOp]:  # pragma: no cover
        raise NotImplementedError
