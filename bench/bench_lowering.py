"""ONNX Runtime latency of the exact lowered forms vs the native Resize (CPU, this machine).

    python bench/bench_lowering.py [--runs 30]

For each feature map and factor (half_pixel linear, the PyTorch/TF default): native Resize, the exact
ConvTranspose form as one 2-D grouped ConvTranspose, the same as two separable 1-D ConvTransposes, and
the MatMul form. Every form is checked against the native Resize before it is timed. Median of --runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rewriter.fix import fix_resize  # noqa: E402
from tests.resize_cases import build_resize_model  # noqa: E402

CASES = [((1, 64, 128, 128), 2), ((1, 16, 256, 256), 2), ((1, 256, 32, 32), 2), ((1, 256, 32, 32), 4), ((1, 256, 32, 32), 8)]


def session(model) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def timed(sess: ort.InferenceSession, x: np.ndarray, runs: int) -> tuple[float, np.ndarray]:
    out = sess.run(None, {"x": x})[0]
    for _ in range(3):
        sess.run(None, {"x": x})
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        sess.run(None, {"x": x})
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30)
    opts = parser.parse_args()
    table = Table(title=f"ORT CPU latency, ms (median of {opts.runs}); ratio to native Resize")
    for col in ("input", "factor", "Resize", "ConvTranspose 2-D", "ConvTranspose separable", "MatMul"):
        table.add_column(col)
    for shape, f in CASES:
        model = build_resize_model(shape, 13, {"mode": "linear", "coordinate_transformation_mode": "half_pixel"}, scales=[1, 1, f, f])
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        native, reference = timed(session(model), x, opts.runs)
        cells = []
        for lower, separable in (("deconv", False), ("deconv", True), ("matmul", False)):
            fixed = fix_resize(model, "onnx", lower=lower, verify="none", separable_deconv=separable).model
            ms, out = timed(session(fixed), x, opts.runs)
            assert np.abs(out - reference).max() < 1e-4, "lowered form differs"
            cells.append(f"{ms:.2f} ({ms / native:.2f}x)")
        table.add_row("x".join(map(str, shape)), f"x{f}", f"{native:.2f}", *cells)
    Console().print(table)


if __name__ == "__main__":
    main()
