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


def _two_in_two_out(path: Path) -> dict[str, np.ndarray]:
    """Inputs a (1x2x3x4) and b (1x2x6x8); outputs up = Resize(a, x2 nearest) + b (4-D) and flat = b as 1x2x48
    (3-D): named inputs and outputs of several ranks, as the architecture corpus has them."""
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("Resize", ["a", "", "scales"], ["ra"], mode="nearest"),
             helper.make_node("Add", ["ra", "b"], ["up"]),
             helper.make_node("Reshape", ["b", "shape"], ["flat"])]
    graph = helper.make_graph(
        nodes, "two", [helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, 2, 3, 4]),
                       helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 2, 6, 8])],
        [helper.make_tensor_value_info("up", TensorProto.FLOAT, [1, 2, 6, 8]),
         helper.make_tensor_value_info("flat", TensorProto.FLOAT, [1, 2, 48])],
        [numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"),
         numpy_helper.from_array(np.array([1, 2, 48], np.int64), "shape")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), path)
    rng = np.random.default_rng(0)
    return {"a": rng.standard_normal((1, 2, 3, 4)).astype(np.float32), "b": rng.standard_normal((1, 2, 6, 8)).astype(np.float32)}


@pytest.mark.parametrize("runtime", list(M.RUNTIMES))
def test_runtime_named_inputs_outputs(runtime, tmp_path):
    """The runners feed inputs and return outputs by name, whatever their number and rank (measure_corpus.py)."""
    import measure_corpus as C

    why = M.available(runtime)
    if why:
        pytest.skip(f"{runtime}: {why}")
    model = tmp_path / "two.onnx"
    feeds = _two_in_two_out(model)
    np.savez(tmp_path / "in.npz", **feeds)
    refs = M.ort_outputs(model, feeds)
    job = {"key": "two", "model": str(model), "inputs": str(tmp_path / "in.npz"), "out": str(tmp_path / "out.npz"),
           "result": str(tmp_path / "two.json"), "work": str(tmp_path / "tmp"), "input_names": ["a", "b"],
           "output_names": ["up", "flat"], "out_shapes": {k: list(v.shape) for k, v in refs.items()},
           "out_shape": list(refs["up"].shape)}
    with open(tmp_path / "log.txt", "w") as log:
        results = M.run_runtime(runtime, [job], tmp_path, timeout=300, log=log)
    verdict = C.classify(runtime, results["two"], tmp_path / "out.npz", refs)
    assert verdict["status"] == "exact", verdict
    assert set(verdict["errs"]) == {"up", "flat"}


# The light runtimes (seconds to install: `make test` sets up their environments) prove their targets in every
# test run: fix-resize's output for a slice of the grid, on the real runtime, against ORT on the original.
LIGHT = ("openvino", "tract")
SLICE = 8  # every 8th grid model: all modes, transforms and opsets appear


@pytest.mark.parametrize("runtime", LIGHT)
def test_light_target_on_its_runtime(runtime, tmp_path):
    import rewriter
    from rewriter.errors import NotExactError

    why = M.available(runtime)
    if why:
        pytest.skip(f"{runtime}: {why}")
    jobs, refs, refused = [], {}, 0
    for c in G.grid()[::SLICE]:
        model = G.build_model(c)
        x = G.make_input(c)
        try:
            ref = M.ort_run(_save(model, tmp_path / f"{c.id}.onnx"), x)
        except Exception:  # noqa: BLE001 - a configuration ORT itself rejects is not a test case
            continue
        fixed = tmp_path / f"{c.id}.fix.onnx"
        try:
            rewriter.fix_resize(model, runtime, str(fixed), verify="none")
        except NotExactError:
            refused += 1
            continue
        np.savez(tmp_path / f"{c.id}.npz", X=x)
        refs[c.id] = ref
        jobs.append({"key": c.id, "model": str(fixed), "inputs": str(tmp_path / f"{c.id}.npz"),
                     "out": str(tmp_path / f"{c.id}.out.npz"), "result": str(tmp_path / f"{c.id}.json"),
                     "work": str(tmp_path / "tmp" / c.id), "out_shape": list(ref.shape),
                     "input_names": ["X"], "output_names": ["Y"]})
    with open(tmp_path / "log.txt", "w") as log:
        results = M.run_runtime(runtime, jobs, tmp_path, timeout=300, log=log)
    verdicts = {job["key"]: M.classify(runtime, results[job["key"]], Path(job["out"]), refs[job["key"]]) for job in jobs}
    wrong = {k: v for k, v in verdicts.items() if v["status"] != "exact"}
    assert not wrong, wrong
    assert len(jobs) >= 60 and refused <= len(jobs) // 20, (len(jobs), refused)


def _save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, path)
    return path
