"""Runs the real-architecture corpus (models/architectures.json) through every runtime, as it is and as each
runtime's target writes it, and compares with ORT on the original model.

    python tests/runtimes/measure_corpus.py [--out DIR] [--runtimes ncnn,mnn,...] [--only SUBSTRING] [--taps]

Run with the driver environment's Python, like measure.py (whose runners, crash handling and comparison it uses).
For every corpus model: ORT (CPU, graph optimisations off) on the original with the recorded inputs (the
reference), then per runtime two forms: `native` (the original file) and `fix-<runtime>`
(`rewriter.fix_resize(model, "<runtime>", verify="none")`; a refusal is recorded as `refused` with its reason).
Every output of the model is compared, `max|y - y_ort| / max(1, max|y_ort|)`, and the worst one classifies it:

    exact     every output within the tolerance (1e-5; RKNN 2e-3: its simulator computes in fp16)
    differs   ran, but an output is above the tolerance, has another shape or is missing
    rejected  the converter / loader / runtime refused (first line of its message)
    crashed   the process died or timed out

A whole network also computes its convolutions in another order on each runtime, so a `differs` is not by itself a
Resize difference. --taps looks inside every model whose fixed form differs: the fixed model with every Resize's
data input and output added as graph outputs (`taps-<runtime>`), run on the runtime; each Resize (or what the
target made of it) is then compared with ORT's Resize node applied to the runtime's OWN input of that node
(`local` error: the Resize alone, whatever the layers before it did), beside the runtime's error at its input and
output against ORT on the whole original.

Writes DIR/results.json, DIR/summary.md (the tables it prints); models, inputs and outputs under DIR/work/.
Exits 1 when a fixed model differs and --taps finds a Resize whose local error is above the tolerance (a silent
mismatch of rewriter) or could not look (no taps measured for it).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import hashlib
import itertools
import json
import shutil
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import measure as M  # noqa: E402  (puts this checkout's rewriter on sys.path)

REPO = M.REPO
MODELS = REPO / "models"
sys.path.insert(0, str(MODELS))


def corpus() -> list[dict]:
    entries = json.loads((MODELS / "architectures.json").read_text())["models"]
    return [dict(e, id=Path(e["file"]).stem) for e in entries]


def _sha(path) -> str:
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()[:16]


def _resize_nodes(model) -> list:
    return [n for n in model.graph.node if n.op_type in ("Resize", "Upsample") and n.domain in ("", "ai.onnx")]


def prepare_one(entry: dict, work: str, runtimes: tuple[str, ...]) -> dict:
    """Inputs, ORT's outputs on the original and every runtime's fixed form of one corpus model (a worker process)."""
    import onnx
    from measure_architectures import kind

    import rewriter

    d = Path(work) / "models"
    cid = entry["id"]
    path = MODELS / entry["file"]
    with np.load(MODELS / entry["io"]) as io:
        feeds = {n: io[n] for n in entry["inputs"]}
    np.savez(d / f"{cid}.inputs.npz", **feeds)
    model = onnx.load(str(path))
    rec = {"id": cid, "family": entry["family"], "arch": entry["arch"], "exporter": entry["exporter_kind"],
           "opset": entry["opset"], "resize_nodes": len(_resize_nodes(model)),
           "inputs": [i.name for i in model.graph.input], "outputs": [o.name for o in model.graph.output], "forms": {}}
    try:
        ref = M.ort_outputs(path, feeds)
        np.savez(d / f"{cid}.ort.npz", **ref)
        rec["ort"] = {"status": "ran", "shapes": {k: list(v.shape) for k, v in ref.items()}}
    except Exception as e:  # noqa: BLE001
        rec["ort"] = {"status": "rejected", "error": f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"}
    rec["forms"]["native"] = {"path": str(path), "sha": _sha(path)}
    for rt in runtimes:
        out = d / f"{cid}.fix-{rt}.onnx"
        try:
            result = rewriter.fix_resize(model, rt, str(out), verify="none")
            rec["forms"][f"fix-{rt}"] = {"path": str(out), "sha": _sha(out),
                                         "became": dict(Counter(kind(n.became) for n in result.nodes))}
        except Exception as e:  # noqa: BLE001 - a refusal is a result
            rec["forms"][f"fix-{rt}"] = {"refused": f"{type(e).__name__}: {' '.join(str(e).split())[:2000]}"}
    return rec


# ----------------------------------------------------------------------------------------------------------------
# comparing several outputs of any rank

def compare(rt: str, y: np.ndarray, ref: np.ndarray) -> tuple[float | None, str | None]:
    """(relative error, note) of one runtime output against ORT's. The runtime may hand a tensor back in another
    axis order (NHWC, ncnn's batch-less layout): measure.py's to_layout / _permuted_match first, else the one
    permutation of y's non-1 axes that has ORT's shape (if only one has), else (None, why)."""
    tol = M.TOLERANCE.get(rt, M.DEFAULT_TOL)
    from runners._common import to_layout

    y2, note = to_layout(y, ref.shape), None
    if y2.shape != ref.shape:
        cand = M._permuted_match(y, ref, tol)
        if cand is None:
            ys, rs = y.reshape([n for n in y.shape if n != 1]), [n for n in ref.shape if n != 1]
            perms = [p for p in itertools.permutations(range(ys.ndim)) if [ys.shape[i] for i in p] == rs] \
                if sorted(ys.shape) == sorted(rs) else []
            if len(perms) != 1:
                return None, f"shape {list(y.shape)} vs ORT {list(ref.shape)}"
            cand = ys.transpose(perms[0]).reshape(ref.shape)
        y2, note = cand, f"runtime shape {list(y.shape)}"
    if not np.all(np.isfinite(y2)) and np.all(np.isfinite(ref)):
        return None, "non-finite output"
    return M.rel_err(y2, ref), note


def classify(rt: str, res: dict, out_path: Path, refs: dict[str, np.ndarray]) -> dict:
    """Worst output decides; every output's error is kept."""
    if res["status"] != "ran":
        return {k: v for k, v in res.items() if k in ("status", "error", "stage", "seconds")}
    with np.load(out_path) as data:
        got = {k: data[k] for k in data.files}
    names = list(got)
    errs, notes, worst, broken = {}, [], 0.0, None
    for i, (name, ref) in enumerate(refs.items()):
        y = got.get(name, got[names[i]] if i < len(names) else None)  # by name, else by position
        if y is None:
            broken = broken or f"output {name} missing"
            continue
        e, note = compare(rt, y, ref)
        errs[name] = None if e is None else float(f"{e:.3g}")
        if e is None:
            broken = broken or f"{name}: {note}"
        else:
            worst = max(worst, e)
            if note:
                notes.append(f"{name}: {note}")
    tol = M.TOLERANCE.get(rt, M.DEFAULT_TOL)
    out = {"status": "differs" if broken or worst > tol else "exact", "err": float(f"{worst:.3g}"), "errs": errs,
           "seconds": res.get("seconds")}
    if broken:
        out["error"] = broken
    if notes:
        out["layout"] = "; ".join(notes)
    return out


# ----------------------------------------------------------------------------------------------------------------
# --taps: every Resize of a fixed model, checked on the runtime against ORT's node applied to the runtime's input

def prepare_taps(rec: dict, rt: str, work: Path) -> dict | None:
    """The fixed model with each original Resize's data input and output as extra graph outputs, the ORT
    reference of those tensors (on the original) and one single-node model per Resize for the local check."""
    import onnx
    from onnx import helper, numpy_helper

    fix = rec["forms"].get(f"fix-{rt}", {})
    if "path" not in fix:
        return None
    d = work / "taps"
    d.mkdir(exist_ok=True)
    original = onnx.load(MODELS / "architectures" / f"{rec['id']}.onnx")
    fixed = onnx.load(fix["path"])
    produced = {o for n in fixed.graph.node for o in n.output} | {i.name for i in fixed.graph.input}
    inits = {i.name: i for i in original.graph.initializer}
    feeds = dict(np.load(work / "models" / f"{rec['id']}.inputs.npz"))
    nodes = [n for n in _resize_nodes(original) if n.input[0] in produced and n.output[0] in produced]
    # ORT on the original, with every tap and every non-constant parameter input of the nodes as outputs
    wanted = list(dict.fromkeys([t for n in nodes for t in (n.input[0], n.output[0], *n.input[1:]) if t and t not in inits]))
    probe = onnx.ModelProto()
    probe.CopyFrom(original)
    have = {o.name for o in probe.graph.output}
    probe.graph.output.extend([helper.ValueInfoProto(name=t) for t in wanted if t not in have])
    onnx.save(probe, d / f"{rec['id']}.probe.onnx")
    ort_vals = M.ort_outputs(d / f"{rec['id']}.probe.onnx", feeds)
    opset = [o for o in original.opset_import if o.domain in ("", "ai.onnx")]
    taps, locals_ = [], []
    for k, n in enumerate(nodes):
        x, y = n.input[0], n.output[0]
        if x in ort_vals and y in ort_vals:
            taps += [x, y]
        else:
            continue
        consts = []
        for t in n.input[1:]:
            if t:
                consts.append(numpy_helper.from_array(numpy_helper.to_array(inits[t]) if t in inits else ort_vals[t], t))
        xv = ort_vals[x]
        g = helper.make_graph([n], "one", [helper.make_tensor_value_info(x, helper.np_dtype_to_tensor_dtype(xv.dtype), list(xv.shape))],
                              [helper.make_tensor_value_info(y, helper.np_dtype_to_tensor_dtype(ort_vals[y].dtype), None)], consts)
        one = helper.make_model(g, opset_imports=opset, ir_version=original.ir_version)
        p = d / f"{rec['id']}.node{k}.onnx"
        onnx.save(one, p)
        locals_.append({"node": n.name, "x": x, "y": y, "model": str(p)})
    # each tap leaves through an Identity named tapN: converters refuse some tensor names as outputs
    # (onnx2tf: a trailing '/'), and a model output that is also an inner tensor is spelled differently by some
    taps = list(dict.fromkeys(taps))
    alias = {t: f"tap{k}" for k, t in enumerate(taps)}
    tapped = onnx.ModelProto()
    tapped.CopyFrom(fixed)
    for t, a in alias.items():
        v = ort_vals[t]
        tapped.graph.node.append(helper.make_node("Identity", [t], [a], name=f"{a}_identity"))
        tapped.graph.output.append(helper.make_tensor_value_info(a, helper.np_dtype_to_tensor_dtype(v.dtype), list(v.shape)))
    path = d / f"{rec['id']}.taps-{rt}.onnx"
    onnx.save(tapped, path)
    ref_names = [o.name for o in tapped.graph.output]
    np.savez(d / f"{rec['id']}.taps.ort.npz", **{alias[t]: ort_vals[t] for t in taps})
    for n in locals_:
        n["x_tap"], n["y_tap"] = alias[n["x"]], alias[n["y"]]
    return {"path": str(path), "sha": _sha(path), "outputs": ref_names, "taps": taps, "nodes": locals_,
            "out_shapes": {alias[t]: list(ort_vals[t].shape) for t in taps}}


def judge_taps(rt: str, rec: dict, tap: dict, res: dict, out_path: Path, work: Path) -> dict:
    """Per Resize: the runtime's error at its input and output (vs ORT on the original) and its local error
    (the runtime's output vs ORT's node on the runtime's own input)."""
    if res["status"] != "ran":
        return {"status": res["status"], "error": res.get("error")}
    with np.load(out_path) as data:
        got = {k: data[k] for k in data.files}
    order = list(got)
    ref = dict(np.load(work / "taps" / f"{rec['id']}.taps.ort.npz"))
    aligned = {}
    for i, name in enumerate(tap["outputs"]):
        y = got.get(name, got[order[i]] if i < len(order) else None)
        if y is None or name not in ref:
            continue
        e, _ = compare(rt, y, ref[name])
        if e is not None:  # the runtime's tensor in ORT's layout (compare accepted it)
            from runners._common import to_layout

            y2 = to_layout(y, ref[name].shape)
            if y2.shape != ref[name].shape:
                y2 = M._permuted_match(y, ref[name], np.inf)
            aligned[name] = (y2, e)
    tol = M.TOLERANCE.get(rt, M.DEFAULT_TOL)
    nodes = []
    for n in tap["nodes"]:
        row = {"node": n["node"]}
        xt, yt = n["x_tap"], n["y_tap"]
        if xt in aligned and yt in aligned:
            xr, yr = aligned[xt][0], aligned[yt][0]
            local = M.ort_outputs(Path(n["model"]), {n["x"]: xr.astype(ref[xt].dtype)})[n["y"]]
            row.update(input_err=float(f"{aligned[xt][1]:.3g}"), output_err=float(f"{aligned[yt][1]:.3g}"),
                       local_err=float(f"{M.rel_err(yr, local):.3g}"))
        else:
            row["missing"] = "tap not returned in a comparable shape"
        nodes.append(row)
    measured = [r for r in nodes if "local_err" in r]
    worst = max((r["local_err"] for r in measured), default=None)
    status = "no taps" if not measured else ("resize differs" if worst > tol else "resize exact")
    return {"status": status, "local_err": worst, "checked": len(measured), "nodes": nodes}


# ----------------------------------------------------------------------------------------------------------------

def summarize(records: list[dict], runtimes: list[str], skipped: dict[str, str], meta: dict) -> str:
    from measure_architectures import reason_keys

    usable = [r for r in records if r["ort"]["status"] == "ran"]
    lines = [f"# Architecture corpus on real runtimes vs ORT\n\n{len(records)} corpus models, {len(usable)} that ORT runs.\n"]
    for rt, why in skipped.items():
        lines.append(f"- **{rt}: skipped** ({why})")
    lines += ["\n## Per runtime\n",
              "| runtime | tolerance | native exact | differs | rejected | crashed | fix exact | differs | refused | rejected | crashed |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for rt in runtimes:
        nat, fix = Counter(), Counter()
        for r in usable:
            nat[r["runtimes"][rt].get("native", {}).get("status", "not run")] += 1
            f = r["forms"].get(f"fix-{rt}", {})
            fix["refused" if "refused" in f else r["runtimes"][rt].get(f"fix-{rt}", {}).get("status", "not run")] += 1
        lines.append(f"| {rt} | {meta['tolerance'][rt]:g} | {nat['exact']} | {nat['differs']} | {nat['rejected']} | {nat['crashed']} "
                     f"| {fix['exact']} | {fix['differs']} | {fix['refused']} | {fix['rejected']} | {fix['crashed']} |")
    lines += ["\n## Models not exact (relative error of the worst output; taps: the Resize nodes checked on the "
              "runtime's own inputs)\n", "| runtime | model | native | fix | fixed Resize nodes, local error |", "|---|---|---|---|---|"]

    def cell(v):
        if not v:
            return "not run"
        if v["status"] in ("exact", "differs"):
            return f"{v['status']} {v['err']:.3g}" + (f" ({v['error']})" if v.get("error") else "")
        return f"{v['status']}: {(v.get('error') or '')[:90]}"

    for rt in runtimes:
        for r in usable:
            per = r["runtimes"][rt]
            f = r["forms"].get(f"fix-{rt}", {})
            fixc = "refused" if "refused" in f else cell(per.get(f"fix-{rt}"))
            nat = per.get("native", {}).get("status")
            fixs = "refused" if "refused" in f else per.get(f"fix-{rt}", {}).get("status")
            if "differs" not in (nat, fixs) and (nat == fixs or fixs == "exact"):
                continue  # both exact, or refused alike by the runtime (grouped below), or fixed
            t = per.get(f"taps-{rt}")
            taps = "" if not t else (f"{t['status']}: {t['local_err']:.3g} over {t['checked']} nodes" if t.get("local_err") is not None
                                     else f"{t['status']}" + (f": {t['error'][:80]}" if t.get("error") else ""))
            lines.append(f"| {rt} | {r['id']} | {cell(per.get('native'))} | {fixc} | {taps} |")
    lines.append("\n## What the converters refuse, and what fix-resize refuses (grouped by message)\n")
    for rt in runtimes:
        groups: dict[str, dict] = defaultdict(lambda: {"forms": Counter(), "ids": set()})
        for r in usable:
            for form in ("native", f"fix-{rt}"):
                v = r["runtimes"][rt].get(form, {})
                if v.get("status") in ("rejected", "crashed"):
                    g = groups[f"{v['status']}: {(v.get('error') or '')[:160]}"]
                    g["forms"][form.split("-")[0]] += 1
                    g["ids"].add(r["id"])
            f = r["forms"].get(f"fix-{rt}", {})
            if "refused" in f:
                for key, _ in reason_keys(f["refused"]):
                    g = groups[f"fix-resize refused: {key}"]
                    g["forms"]["fix"] += 1
                    g["ids"].add(r["id"])
        for key, g in sorted(groups.items(), key=lambda kv: -sum(kv[1]["forms"].values())):
            ids = sorted(g["ids"])
            lines.append(f"- {rt}: {key} — native {g['forms']['native']}, fix {g['forms']['fix']} "
                         f"({', '.join(ids[:6])}{', …' if len(ids) > 6 else ''})")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(REPO / "build" / "runtimes-corpus"))
    ap.add_argument("--runtimes", default=",".join(M.RUNTIMES))
    ap.add_argument("--only", default="", help="only corpus models whose name contains this substring")
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--jobs", type=int, default=2, help="runtimes run in parallel")
    ap.add_argument("--taps", action="store_true", help="look at every Resize of a fixed model that differs")
    ap.add_argument("--reuse", action="store_true", help="reuse prepared models and runtime results in --out")
    args = ap.parse_args(argv)

    out = Path(args.out).resolve()
    work = out / "work"
    if not args.reuse and work.exists():
        shutil.rmtree(work)
    (work / "models").mkdir(parents=True, exist_ok=True)
    runtimes = [r for r in args.runtimes.split(",") if r]
    for r in runtimes:
        if r not in M.RUNTIMES:
            ap.error(f"unknown runtime {r}; known: {', '.join(M.RUNTIMES)}")
    entries = [e for e in corpus() if args.only in e["id"]]
    t0 = time.time()
    print(f"{len(entries)} corpus models; ORT references and fixed forms ...", flush=True)
    prep_cache = work / "prepared.json"
    records = None
    if args.reuse and prep_cache.exists():
        cached = json.loads(prep_cache.read_text())
        if [r["id"] for r in cached] == [e["id"] for e in entries] and all(f"fix-{rt}" in cached[0]["forms"] for rt in runtimes):
            records = cached
    if records is None:
        with cf.ProcessPoolExecutor(max_workers=2) as ex:
            records = list(ex.map(prepare_one, entries, [str(work)] * len(entries), [tuple(runtimes)] * len(entries)))
        prep_cache.write_text(json.dumps(records))
    print(f"  prepared in {time.time() - t0:.0f} s", flush=True)

    skipped = {}
    for rt in runtimes:
        why = M.available(rt)
        if why:
            skipped[rt] = why
            print(f"SKIP {rt}: {why}", flush=True)
    active = [r for r in runtimes if r not in skipped]
    usable = [r for r in records if r["ort"]["status"] == "ran"]

    def job(rt: str, key: str, model: str, rec: dict, outputs: list[str], out_shapes: dict, inputs: Path) -> dict:
        d = work / rt
        d.mkdir(exist_ok=True)
        return {"key": key, "model": model, "inputs": str(inputs), "out": str(d / f"{key}.npz"),
                "result": str(d / f"{key}.json"), "work": str(d / "tmp" / key), "input_names": rec["inputs"],
                "output_names": outputs, "out_shapes": out_shapes, "out_shape": out_shapes[outputs[0]]}

    def one_runtime(rt: str):
        unique = {}
        for r in usable:
            for form in ("native", f"fix-{rt}"):
                f = r["forms"].get(form, {})
                if "sha" in f and f["sha"] not in unique:
                    unique[f["sha"]] = job(rt, f["sha"], f["path"], r, r["outputs"], r["ort"]["shapes"],
                                           work / "models" / f"{r['id']}.inputs.npz")
        return rt, M.run_reusing(rt, list(unique.values()), work, args.timeout, args.reuse, sys.stdout)

    raw: dict[str, dict] = {}
    with cf.ThreadPoolExecutor(max_workers=args.jobs) as ex:
        for rt, res in ex.map(one_runtime, active):
            raw[rt] = res

    for r in records:
        r["runtimes"] = {}
        if r["ort"]["status"] != "ran":
            continue
        with np.load(work / "models" / f"{r['id']}.ort.npz") as data:
            refs = {k: data[k] for k in data.files}
        for rt in active:
            per = {}
            for form in ("native", f"fix-{rt}"):
                f = r["forms"].get(form, {})
                if "sha" in f and f["sha"] in raw[rt]:
                    per[form] = classify(rt, raw[rt][f["sha"]], work / rt / f"{f['sha']}.npz", refs)
            r["runtimes"][rt] = per

    if args.taps:
        def taps_runtime(rt: str):
            jobs, taps = [], {}
            for r in usable:
                if r["runtimes"][rt].get(f"fix-{rt}", {}).get("status") != "differs":
                    continue
                if r["resize_nodes"] == 0:  # nothing of rewriter's in it: the runtime's own difference
                    r["runtimes"][rt][f"taps-{rt}"] = {"status": "no resize", "error": "the model has no Resize / Upsample"}
                    continue
                try:
                    tap = prepare_taps(r, rt, work)
                except Exception as e:  # noqa: BLE001
                    r["runtimes"][rt][f"taps-{rt}"] = {"status": "no taps", "error": f"{type(e).__name__}: {e}"[:300]}
                    continue
                if tap is None or not tap["taps"]:
                    r["runtimes"][rt][f"taps-{rt}"] = {"status": "no taps", "error": "no Resize output left to tap"}
                    continue
                taps[r["id"]] = tap
                jobs.append(job(rt, "taps-" + tap["sha"], tap["path"], r, tap["outputs"],
                                {**r["ort"]["shapes"], **tap["out_shapes"]}, work / "models" / f"{r['id']}.inputs.npz"))
            res = M.run_reusing(rt, jobs, work, args.timeout, args.reuse, sys.stdout) if jobs else {}
            return rt, taps, res

        with cf.ThreadPoolExecutor(max_workers=args.jobs) as ex:
            for rt, taps, res in ex.map(taps_runtime, active):
                for r in usable:
                    if r["id"] in taps:
                        tap = taps[r["id"]]
                        key = "taps-" + tap["sha"]
                        verdict = judge_taps(rt, r, tap, res.get(key, {"status": "crashed", "error": "not run"}),
                                             work / rt / f"{key}.npz", work)
                        r["runtimes"][rt][f"taps-{rt}"] = verdict

    meta = {"tolerance": {rt: M.TOLERANCE.get(rt, M.DEFAULT_TOL) for rt in active}, "skipped": skipped,
            "runtimes": active, "seconds": round(time.time() - t0),
            "versions": {rt: M._freeze(M.RUNTIMES[rt]) for rt in active}}
    (out / "results.json").write_text(json.dumps({"meta": meta, "models": records}, indent=1))
    text = summarize(records, active, skipped, meta)
    (out / "summary.md").write_text(text)
    print(text)
    print(f"results: {out / 'results.json'}; {time.time() - t0:.0f} s in all")
    silent = [(rt, r["id"]) for r in usable for rt in active
              if r["runtimes"][rt].get(f"fix-{rt}", {}).get("status") == "differs"
              and r["runtimes"][rt].get(f"taps-{rt}", {}).get("status") not in ("resize exact", "no resize")]
    if args.taps and silent:
        print(f"FAILED: {len(silent)} fixed models differ without every Resize exact on the runtime: {silent}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
