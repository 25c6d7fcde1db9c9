"""Runs every grid model, and the project's rewritten forms of it, through every runtime and compares with ORT.

    python tests/runtimes/measure.py [--out DIR] [--runtimes ncnn,mnn,...] [--limit N] [--only SUBSTRING]

Run with the driver environment's Python (tests/runtimes/setup_envs.sh makes it; it has onnx, onnxruntime and
this project). Each runtime runs in its own environment, as a subprocess (runners/<runtime>.py) over a batch of
models; a model that kills the process (segfault) is classified `crashed` and the runner restarts on the rest;
a model that takes longer than --timeout seconds is killed and classified `crashed` (timeout).

For every grid model: ORT's output (CPU, graph optimisations off) on a seeded input; the forms (FIX_ARGS): `native`
(the model itself), `canon` (`rewriter.fix_resize(model, "onnx")`), `matmul` (lower="matmul"), `deconv`
(lower="deconv": Pad + separable ConvTranspose, else Gather / MatMul), `deconv2d` (the same with one 2-D
ConvTranspose) and `caffe` (target "caffe": Slice+Concat edge replication + 2-D ConvTranspose); every form through
every runtime, compared with ORT on the ORIGINAL model:

    exact     max|y - y_ort| / max(1, max|y_ort|) <= tolerance (1e-5; RKNN 2e-3: its simulator computes in fp16)
    differs   ran, but above the tolerance (or another shape)
    rejected  the converter / loader / runtime refused (first line of its message)
    crashed   the process died (exit code or signal) or timed out

Writes DIR/results.json (one record per grid model), DIR/summary.md (the tables it prints) and keeps the
models, inputs and runtime outputs under DIR/work/.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import grid as G  # noqa: E402

REPO = HERE.parent.parent
sys.path.insert(0, str(REPO))  # this checkout's rewriter, whatever the driver environment has installed
VENVS = Path(os.environ.get("RUNTIMES_VENV_DIR", REPO / ".venv-runtimes"))
RUNTIMES = {  # runtime -> environment; the slow ones first (two run at a time)
    "ncnn": "torch",
    "tflite": "onnx2tf",
    "rknn": "rknn",
    "torch": "torch",
    "mnn": "mnn",
    "openvino": "openvino",
    "tract": "tract",
}
TOLERANCE = {"rknn": 2e-3}  # the RKNN x86 simulator computes non-quantized models in fp16 (rewriter.targets.rknn says why)
DEFAULT_TOL = 1e-5
ANALYSIS_FORMS = ("native", "canon", "matmul", "deconv", "deconv2d", "caffe")
# form -> the one runtime it is for: `fix_resize(model, <that runtime's target>)` (refusals recorded as refused)
TARGET_FORMS = {
    "fix-openvino": "openvino",
    "fix-tract": "tract",
    "fix-mnn": "mnn",
    "fix-rknn": "rknn",
    "fix-ncnn": "ncnn",
    "fix-torch": "torch",
    "fix-tflite": "tflite",
}
FORMS = ANALYSIS_FORMS + tuple(TARGET_FORMS)
# form -> rewriter.fix_resize(model, target, **kwargs)
FIX_ARGS = {
    "canon": ("onnx", {}),                                                   # canonical Resize spelling
    "matmul": ("onnx", {"lower": "matmul"}),                                 # constant interpolation matrices
    "deconv": ("onnx", {"lower": "deconv"}),                                 # Pad (edge) + one ConvTranspose per axis; Gather / MatMul fallback
    "deconv2d": ("onnx", {"lower": "deconv", "separable_deconv": False}),    # Pad (edge) + one 2-D ConvTranspose
    "caffe": ("caffe", {}),                                                  # Slice+Concat edge replication + 2-D ConvTranspose
} | {form: (runtime, {}) for form, runtime in TARGET_FORMS.items()}


def runs_form(rt: str, form: str) -> bool:
    """Analysis forms run on every runtime, a target form only on its own runtime."""
    return TARGET_FORMS.get(form, rt) == rt


def rel_err(y: np.ndarray, ref: np.ndarray) -> float:
    return float(np.max(np.abs(y.astype(np.float64) - ref.astype(np.float64))) / max(1.0, float(np.max(np.abs(ref)))))


def ort_outputs(path: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """ORT (CPU, graph optimisations off) on a model: every output by name."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))


def ort_run(path: Path, x: np.ndarray):
    """ORT's output of a grid model (one input X, one output)."""
    return next(iter(ort_outputs(path, {"X": x}).values()))


def op_summary(model) -> str:
    """The op types of a form in order of first use, with counts: e.g. 'Pad+ConvTranspose*2' (separable)."""
    cnt = Counter(n.op_type for n in model.graph.node)
    order = list(dict.fromkeys(n.op_type for n in model.graph.node))
    return "+".join(op + (f"*{cnt[op]}" if cnt[op] > 1 else "") for op in order) if order else "(empty)"


def prepare_one(cid: str, work: str, forms: tuple[str, ...] = FORMS):
    """Build the grid model, its input, ORT's output and its rewritten ``forms``. Runs in a worker process."""
    import onnx

    import rewriter

    c = {x.id: x for x in G.grid()}[cid]
    d = Path(work) / "models"
    model = G.build_model(c)
    native = d / f"{cid}.native.onnx"
    onnx.save(model, native)
    x = G.make_input(c)
    np.savez(d / f"{cid}.inputs.npz", X=x)
    rec = {"id": cid, "config": {k: getattr(c, k) for k in c.__dataclass_fields__}, "op": c.op,
           "input_shape": list(c.input_shape()), "expected_shape": list(c.output_shape()), "forms": {}}
    try:
        y = ort_run(native, x)
        np.save(d / f"{cid}.ort.npy", y)
        rec["ort"] = {"status": "ran", "shape": list(y.shape)}
    except Exception as e:  # noqa: BLE001
        rec["ort"] = {"status": "rejected", "error": f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"}
    rec["forms"]["native"] = {"path": str(native), "ops": op_summary(model)}
    for form, (target, kw) in FIX_ARGS.items():
        if form not in forms:
            continue
        out = d / f"{cid}.{form}.onnx"
        try:
            rewriter.fix_resize(model, target, str(out), verify="none", **kw)
            m = onnx.load(out)
            rec["forms"][form] = {"path": str(out), "ops": op_summary(m),
                                  "opset": max((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), default=0)}
        except Exception as e:  # noqa: BLE001
            rec["forms"][form] = {"refused": f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"}
    for form, f in rec["forms"].items():
        if "path" in f:
            f["sha"] = hashlib.sha1(Path(f["path"]).read_bytes()).hexdigest()[:16]
    return rec


# ----------------------------------------------------------------------------------------------------------------
# running a runtime over a batch, restarting after crashes

def run_runtime(rt: str, jobs: list[dict], work: Path, timeout: float, log) -> dict[str, dict]:
    py = VENVS / RUNTIMES[rt] / "bin" / "python"
    runner = HERE / "runners" / f"{rt}.py"
    results: dict[str, dict] = {}
    pending = list(jobs)
    attempt = 0
    while pending:
        attempt += 1
        jobs_path = work / f"{rt}.jobs.{attempt}.json"
        progress = work / f"{rt}.progress.{attempt}.txt"
        progress.write_text("")
        jobs_path.write_text(json.dumps(pending))
        logf = open(work / f"{rt}.runner.{attempt}.log", "w")
        env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="3", OMP_NUM_THREADS="1",
                   CUDA_VISIBLE_DEVICES="", PYTHONDONTWRITEBYTECODE="1")
        proc = subprocess.Popen([str(py), str(runner), str(jobs_path), str(progress)], stdout=logf, stderr=logf,
                                env=env, start_new_session=True)
        current, started = None, time.time()
        done_keys: set[str] = set()
        killed = None
        last_progress = None
        while True:
            rc = proc.poll()
            text = progress.read_text()
            if text != last_progress:
                last_progress = text
                current = None
                for line in text.splitlines():
                    kind, _, key = line.partition(" ")
                    if kind == "START":
                        current, started = key, time.time()
                    elif kind == "DONE":
                        done_keys.add(key)
                        current = None
            if rc is not None:
                break
            if current is not None and time.time() - started > timeout:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                killed = current
                rc = proc.returncode
                break
            time.sleep(0.05)
        logf.close()
        # final read (the runner may have finished between polls)
        for line in progress.read_text().splitlines():
            kind, _, key = line.partition(" ")
            if kind == "START":
                current = key
            elif kind == "DONE":
                done_keys.add(key)
                if current == key:
                    current = None
        by_key = {j["key"]: j for j in pending}
        for key in done_keys:
            results[key] = json.loads(Path(by_key[key]["result"]).read_text())
        rest = [j for j in pending if j["key"] not in done_keys]
        if killed is not None:
            results[killed] = {"status": "crashed", "error": f"timeout after {timeout:.0f} s"}
            rest = [j for j in rest if j["key"] != killed]
        elif current is not None and current not in done_keys:
            results[current] = {"status": "crashed", "error": f"process died, exit code {rc}"
                                + (f" (signal {-rc})" if rc and rc < 0 else "")}
            rest = [j for j in rest if j["key"] != current]
        elif rest and done_keys:  # the runner stopped early on purpose (fresh process after an error)
            pass
        elif rest:  # died before starting anything: environment problem; do not loop forever
            msg = f"runner exited {rc} before its first job (see {rt}.runner.{attempt}.log)"
            for j in rest:
                results[j["key"]] = {"status": "crashed", "error": msg}
            rest = []
        if rc not in (0, None) or killed:
            print(f"  [{rt}] runner restart {attempt}: {len(results)}/{len(jobs)} done, {len(rest)} left", file=log, flush=True)
        pending = rest
    for j in jobs:  # crashes are results too: --reuse does not run them again
        if results.get(j["key"], {}).get("status") == "crashed" and not Path(j["result"]).exists():
            Path(j["result"]).write_text(json.dumps(results[j["key"]]))
    return results


def run_reusing(rt: str, jobs: list[dict], work: Path, timeout: float, reuse: bool, log) -> dict[str, dict]:
    """``run_runtime`` on the jobs without a result yet when ``reuse`` (else on all of them); every job's result."""
    have: dict[str, dict] = {}
    if reuse:
        for j in jobs:
            try:
                have[j["key"]] = json.loads(Path(j["result"]).read_text())
            except (OSError, ValueError):  # missing, or left empty by a process that died while writing it
                pass
    todo = [j for j in jobs if j["key"] not in have]
    print(f"[{rt}] {len(todo)} models to run ({len(have)} reused)", flush=True)
    start = time.time()
    res = {**have, **run_runtime(rt, todo, work, timeout, log)}
    print(f"[{rt}] done in {time.time() - start:.0f} s: {dict(Counter(v['status'] for v in res.values()))}", flush=True)
    return res


def classify(rt: str, res: dict, out_path: Path, ref: np.ndarray) -> dict:
    if res["status"] != "ran":
        return {k: v for k, v in res.items() if k in ("status", "error", "stage", "seconds")}
    with np.load(out_path) as data:
        outs = [data[k] for k in data.files]
    if not outs:
        return {"status": "differs", "error": "no output"}
    from runners._common import to_layout

    y = to_layout(outs[0], ref.shape)
    note = None
    if y.shape != ref.shape:
        # ncnn hands a 4-D NHWC result back in its own channel-first layout: same values, permuted axes
        y = _permuted_match(outs[0], ref, TOLERANCE.get(rt, DEFAULT_TOL))
        if y is None:
            return {"status": "differs", "error": f"shape {list(outs[0].shape)} vs ORT {list(ref.shape)}", "err": None}
        note = f"values in another axis order: runtime shape {list(outs[0].shape)}"
    if not np.all(np.isfinite(y)):
        return {"status": "differs", "error": "non-finite output", "err": None}
    e = rel_err(y, ref)
    tol = TOLERANCE.get(rt, DEFAULT_TOL)
    out = {"status": "exact" if e <= tol else "differs", "err": float(f"{e:.3g}"), "seconds": res.get("seconds")}
    if note:
        out["layout"] = note
    return out


def _permuted_match(y: np.ndarray, ref: np.ndarray, tol: float):
    """ref's shape from a permutation of y's non-1 axes, if one matches ref within tol (else None)."""
    import itertools

    ys, rs = y.reshape([d for d in y.shape if d != 1]), [d for d in ref.shape if d != 1]
    if sorted(ys.shape) != sorted(rs) or ys.ndim > 5:
        return None
    for perm in itertools.permutations(range(ys.ndim)):
        if [ys.shape[p] for p in perm] == rs:
            cand = ys.transpose(perm).reshape(ref.shape)
            if rel_err(cand, ref) <= tol:
                return cand
    return None


def available(rt: str) -> str | None:
    py = VENVS / RUNTIMES[rt] / "bin" / "python"
    if not py.exists():
        return f"environment {VENVS / RUNTIMES[rt]} missing (tests/runtimes/setup_envs.sh {RUNTIMES[rt]})"
    return None


# ----------------------------------------------------------------------------------------------------------------

def summarize(records: list[dict], runtimes: list[str], skipped: dict[str, str], forms: tuple[str, ...] = FORMS) -> str:
    lines = []
    usable = [r for r in records if r["ort"]["status"] == "ran"]
    lines.append(f"# Resize on real runtimes vs ORT\n\n{len(records)} grid models, {len(usable)} that ORT runs "
                 f"({len(records) - len(usable)} ORT rejects are left out).\n")
    for rt, why in skipped.items():
        lines.append(f"- **{rt}: skipped** ({why})")
    lines.append("\n## Per runtime and form (exact / differs / rejected / crashed / not run)\n")
    lines.append("| runtime | form | exact | differs | rejected | crashed | not run | rewriter refused |")
    lines.append("|---|---|---|---|---|---|---|---|")
    for rt in runtimes:
        for form in forms:
            if not runs_form(rt, form):
                continue
            cnt = Counter()
            for r in usable:
                f = r["forms"].get(form, {})
                if "refused" in f:
                    cnt["refused"] += 1
                    continue
                cnt[r["runtimes"].get(rt, {}).get(form, {}).get("status", "not run")] += 1
            lines.append(f"| {rt} | {form} | {cnt['exact']} | {cnt['differs']} | {cnt['rejected']} | {cnt['crashed']} "
                         f"| {cnt['not run']} | {cnt['refused']} |")
    if not set(ANALYSIS_FORMS) <= set(forms):
        return "\n".join(lines) + "\n"
    lines.append("\n## Best form per model (native if exact, else the first exact of canon / matmul / deconv)\n")
    lowered = [f for f in ANALYSIS_FORMS if f not in ("native", "canon")]
    lines.append("| runtime | native exact | canon fixes | lowering fixes | " + " | ".join(f"{f} exact" for f in lowered) + " | nothing exact |")
    lines.append("|---|---|---|---|" + "---|" * len(lowered) + "---|")
    for rt in runtimes:
        cnt = Counter()
        for r in usable:
            st = {f: r["runtimes"].get(rt, {}).get(f, {}).get("status") for f in ANALYSIS_FORMS}
            if st["native"] == "exact":
                cnt["native"] += 1
            elif st["canon"] == "exact":
                cnt["canon"] += 1
            elif any(st[f] == "exact" for f in lowered):
                cnt["lowered"] += 1
                for f in lowered:
                    cnt[f] += st[f] == "exact"
            else:
                cnt["nothing"] += 1
        lines.append(f"| {rt} | {cnt['native']} | {cnt['canon']} | {cnt['lowered']} | " + " | ".join(str(cnt[f]) for f in lowered) + f" | {cnt['nothing']} |")
    lines.append("\n## Lowered forms by op pattern (each distinct lowered model of a grid model counted once)\n")
    lines.append("| runtime | form ops | models | exact | differs | rejected | crashed |")
    lines.append("|---|---|---|---|---|---|---|")
    for rt in runtimes:
        agg = defaultdict(Counter)
        for r in usable:
            seen = set()
            for form in ANALYSIS_FORMS[2:]:
                f = r["forms"].get(form, {})
                if f.get("sha") in seen:
                    continue
                seen.add(f.get("sha"))
                if "ops" not in f:
                    continue
                st = r["runtimes"].get(rt, {}).get(form, {}).get("status", "not run")
                agg[f["ops"]][st] += 1
                agg[f["ops"]]["n"] += 1
        for ops, c in sorted(agg.items(), key=lambda kv: -kv[1]["n"]):
            lines.append(f"| {rt} | {ops} | {c['n']} | {c['exact']} | {c['differs']} | {c['rejected']} | {c['crashed']} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.environ.get("RUNTIMES_RESULTS", str(REPO / "build" / "runtimes")))
    ap.add_argument("--runtimes", default=",".join(RUNTIMES))
    ap.add_argument("--limit", type=int, default=0, help="only the first N grid models (by id)")
    ap.add_argument("--only", default="", help="only grid ids containing this substring")
    ap.add_argument("--forms", default=",".join(FORMS))
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--jobs", type=int, default=2, help="runtimes run in parallel")
    ap.add_argument("--reuse", action="store_true", help="reuse prepared models and runtime results in --out")
    args = ap.parse_args(argv)

    out = Path(args.out).resolve()
    work = out / "work"
    if not args.reuse and work.exists():
        shutil.rmtree(work)
    (work / "models").mkdir(parents=True, exist_ok=True)
    configs = [c for c in G.grid() if args.only in c.id]
    if args.limit:
        configs = configs[: args.limit]
    forms = [f for f in args.forms.split(",") if f]
    runtimes = [r for r in args.runtimes.split(",") if r]
    for r in runtimes:
        if r not in RUNTIMES:
            ap.error(f"unknown runtime {r}; known: {', '.join(RUNTIMES)}")
    log = sys.stdout
    t0 = time.time()
    print(f"{len(configs)} grid models; preparing models, ORT outputs and rewritten forms ...", flush=True)
    prep_cache = work / "prepared.json"
    records = None
    if args.reuse and prep_cache.exists():
        cached = json.loads(prep_cache.read_text())
        if [r["id"] for r in cached] == [c.id for c in configs] and all(f in cached[0]["forms"] for f in forms):
            records = cached
    if records is None:
        with cf.ProcessPoolExecutor(max_workers=2) as ex:
            records = list(ex.map(prepare_one, [c.id for c in configs], [str(work)] * len(configs),
                                  [tuple(forms)] * len(configs), chunksize=4))
        prep_cache.write_text(json.dumps(records))
    print(f"  prepared in {time.time() - t0:.0f} s", flush=True)

    skipped = {}
    for rt in list(runtimes):
        why = available(rt)
        if why:
            skipped[rt] = why
            print(f"SKIP {rt}: {why}", flush=True)
    active = [r for r in runtimes if r not in skipped]

    def jobs_for(rt):
        # one job per distinct model file (forms often coincide: canonical form == original, deconv == matmul ...)
        unique: dict[str, dict] = {}
        for r in records:
            if r["ort"]["status"] != "ran":
                continue
            for form in forms:
                f = r["forms"].get(form, {})
                if runs_form(rt, form) and "path" in f and f["sha"] not in unique:
                    unique[f["sha"]] = {"model": f["path"], "inputs": str(work / "models" / f"{r['id']}.inputs.npz"),
                                        "out_shape": r["ort"]["shape"]}
        d = work / rt
        d.mkdir(exist_ok=True)
        jobs = []
        for sha, u in unique.items():
            jobs.append({"key": sha, "model": u["model"], "inputs": u["inputs"], "out": str(d / f"{sha}.npz"),
                         "result": str(d / f"{sha}.json"), "work": str(d / "tmp" / sha), "out_shape": u["out_shape"],
                         "input_names": ["X"], "output_names": ["Y"]})
        return jobs

    def one_runtime(rt):
        res = run_reusing(rt, jobs_for(rt), work, args.timeout, args.reuse, log)
        (work / f"{rt}.raw.json").write_text(json.dumps(res))
        return rt, res

    raw: dict[str, dict] = {}
    with cf.ThreadPoolExecutor(max_workers=args.jobs) as ex:
        for rt, res in ex.map(one_runtime, active):
            raw[rt] = res

    for r in records:
        r["runtimes"] = {}
        if r["ort"]["status"] != "ran":
            continue
        ref = np.load(work / "models" / f"{r['id']}.ort.npy")
        for rt in active:
            per = {}
            for form in forms:
                f = r["forms"].get(form, {})
                if "sha" not in f or not runs_form(rt, form):
                    continue
                res = raw[rt].get(f["sha"])
                if res is None:
                    continue
                per[form] = classify(rt, res, work / rt / f"{f['sha']}.npz", ref)
            r["runtimes"][rt] = per
    meta = {"tolerance": {rt: TOLERANCE.get(rt, DEFAULT_TOL) for rt in active}, "skipped": skipped,
            "runtimes": active, "forms": forms, "seconds": round(time.time() - t0),
            "versions": {rt: _freeze(RUNTIMES[rt]) for rt in active}}
    (out / "results.json").write_text(json.dumps({"meta": meta, "models": records}, indent=1))
    text = summarize(records, active, skipped, tuple(forms))
    (out / "summary.md").write_text(text)
    print(text)
    print(f"results: {out / 'results.json'}; {time.time() - t0:.0f} s in all")
    return 0


def _freeze(env: str) -> dict:
    p = VENVS / env / "freeze.txt"
    keep = ("openvino", "tract", "mnn", "ncnn", "pnnx", "torch", "onnx2torch", "onnx2tf", "tensorflow", "ai-edge-litert",
            "rknn-toolkit2", "onnx", "numpy", "protobuf", "onnxruntime")
    out = {}
    if p.exists():
        for line in p.read_text().splitlines():
            name, _, ver = line.partition("==")
            if name.lower() in keep:
                out[name.lower()] = ver
    return out


if __name__ == "__main__":
    sys.exit(main())
