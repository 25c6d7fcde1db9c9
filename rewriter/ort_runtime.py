"""ONNX Runtime, the project's numeric reference: one way to open a session and one error measure.

Every comparison in rewriter (a rewrite against the original node, an exported model against the ONNX
model) runs ONNX Runtime's CPU provider through ``session`` and scores the difference with
``relative_error``: max |a - b| / max(1, max |a|), i.e. absolute for outputs of magnitude below one and
relative above.
"""

from __future__ import annotations

import os

import numpy as np
import onnx


def session(model: onnx.ModelProto | bytes | str | os.PathLike, *, optimize: bool = True):
    """A quiet CPU ``InferenceSession``; ``optimize=False`` turns graph optimizations off (what a proof wants:
    ORT's fusions must not stand between the graph and the numbers)."""
    import onnxruntime as ort

    ort.set_default_logger_severity(3)  # e.g. tf_half_pixel_for_nn at opset >= 13 logs a warning per session
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def relative_error(expected: np.ndarray, actual: np.ndarray) -> float:
    """max |expected - actual| / max(1, max |expected|), in float64; inf when the shapes differ."""
    a = np.asarray(expected, dtype=np.float64)
    b = np.asarray(actual, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    return float(np.abs(a - b).max(initial=0.0)) / max(1.0, float(np.abs(a).max(initial=0.0)))


# Seeded inputs every numeric comparison uses: a rewrite that differs anywhere shows on random data.
SEEDS = (0, 1, 2)


def random_input(shape: tuple[int, ...], elem_type: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dtype = onnx.helper.tensor_dtype_to_np_dtype(elem_type)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, int(info.max) + 1, size=shape, dtype=dtype)
    return rng.standard_normal(shape).astype(dtype)
