"""Smoke test of the real-runtime harness: two spellings every runtime computes exactly, run through each runtime's
runner in its own environment (tests/runtimes/setup_envs.sh, `make runtimes-env`). A runtime whose environment
is missing is skipped with the reason; the full measurement is `make runtimes-measure`."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import grid as G  # noqa: E402
import measure as M  # noqa: E402

SMOKE = (
    G.Config(13, "linear", "half_pixel", None, "x2", "scales"),
    G.Config(13, "nearest", "asymmetric", "floor", "x2", "scales"),
)


@pytest.mark.parametrize("runtime", list(M.RUNTIMES))
def test_runtime_smoke(runtime, tmp_path):
    why = M.available(runtime)
    if why:
        pytest.skip(f"{runtime}: {why}")
    jobs, refs = [], {}
    for c in SMOKE:
        model = tmp_path / f"{c.id}.onnx"
        onnx.save(G.build_model(c), model)
        x = G.make_input(c)
        np.savez(tmp_path / f"{c.id}.npz", X=x)
        refs[c.id] = M.ort_run(model, x)
        jobs.append({"key": c.id, "model": str(model), "inputs": str(tmp_path / f"{c.id}.npz"),
                     "out": str(tmp_path / f"{c.id}.out.npz"), "result": str(tmp_path / f"{c.id}.json"),
                     "work": str(tmp_path / "tmp" / c.id), "out_shape": list(refs[c.id].shape),
                     "input_names": ["X"], "output_names": ["Y"]})
    with open(tmp_path / "log.txt", "w") as log:
        results = M.run_runtime(runtime, jobs, tmp_path, timeout=300, log=log)
    for c in SMOKE:
        verdict = M.classify(runtime, results[c.id], Path(jobs[SMOKE.index(c)]["out"]), refs[c.id])
        assert verdict["status"] == "exact", (c.id, verdict)
