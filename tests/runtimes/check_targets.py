"""Checks `fix-resize --target <runtime>` on the real runtimes: every model it writes computes what ORT computes.

    python tests/runtimes/check_targets.py RESULTS_JSON [--runtimes ncnn,torch,tflite]

Reads measure.py's results.json (the `fix-<runtime>` forms). Per runtime, over the grid models ORT runs: `exact`,
`refused` (fix-resize refused the node, with its reason), `silent` (fix-resize wrote a model the runtime computes
differently, rejects or crashes on: must be none) and the exact rate. A runtime whose environment was missing is
reported as skipped. Exit status 1 when a model is silent.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path


def tally(records: list[dict], runtime: str) -> Counter:
    form = f"fix-{runtime}"
    counts: Counter = Counter()
    for r in records:
        if r["ort"]["status"] != "ran":
            continue
        f = r["forms"].get(form)
        if f is None:
            counts["not prepared"] += 1
        elif "refused" in f:
            counts["refused"] += 1
        else:
            status = r["runtimes"].get(runtime, {}).get(form, {}).get("status", "not run")
            counts["exact" if status == "exact" else "silent" if status in ("differs", "rejected", "crashed") else status] += 1
    return counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", type=Path)
    ap.add_argument("--runtimes", default="ncnn,torch,tflite")
    args = ap.parse_args(argv)
    data = json.loads(args.results.read_text())
    meta, records = data["meta"], data["models"]
    failed = False
    print("| runtime | versions | exact | refused | silent | exact rate |")
    print("|---|---|---|---|---|---|")
    for rt in [r for r in args.runtimes.split(",") if r]:
        if rt not in meta["runtimes"]:
            print(f"| {rt} | skipped: {meta.get('skipped', {}).get(rt, 'not measured')} | | | | |")
            continue
        c = tally(records, rt)
        total = sum(c.values())
        versions = ", ".join(f"{k} {v}" for k, v in sorted(meta["versions"].get(rt, {}).items()) if k not in ("numpy", "protobuf", "onnx"))
        print(f"| {rt} | {versions} | {c['exact']} | {c['refused']} | {c['silent']} | {c['exact'] / max(1, total):.1%} of {total} |")
        failed |= c["silent"] > 0 or c["not run"] > 0 or c["not prepared"] > 0
    for rt in [r for r in args.runtimes.split(",") if r in meta["runtimes"]]:
        for r in records:
            f = r["forms"].get(f"fix-{rt}", {})
            got = r["runtimes"].get(rt, {}).get(f"fix-{rt}", {})
            if r["ort"]["status"] == "ran" and "path" in f and got.get("status") != "exact":
                print(f"SILENT {rt} {r['id']} ({f.get('ops')}): {got.get('status')} {got.get('error', got.get('err', ''))}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
