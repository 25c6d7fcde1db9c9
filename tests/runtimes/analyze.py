"""Pattern tables from a measure.py run: what each runtime computes exactly, per spelling, and its float ties.

    python tests/runtimes/analyze.py [--out DIR] [--runtimes ncnn,...]   # reads DIR/results.json, writes DIR/analysis.md

Sections per runtime:
  native spellings   mode x transform x nearest_mode rows; counts exact / differs / rejected / crashed over the
                     other dimensions, and the scale/source tags of the non-exact ones
  by dimension       the same counts by opset, layout, size source, scale, axes attribute, antialias
  messages           distinct rejection / crash messages (numbers and paths blanked) with counts
  lowered forms      op pattern of each rewritten form and how it fared
  ties               nearest models: for output samples whose source coordinate is exactly k + 1/2 (exact rational
                     arithmetic on the float32 scale, or m/n for sizes), the index ORT and the runtime took (decoded
                     from the output values: the seeded input has distinct values)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from collections import Counter, defaultdict
from fractions import Fraction
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import grid as G  # noqa: E402
from runners._common import to_layout  # noqa: E402

REPO = HERE.parent.parent
STATUSES = ("exact", "differs", "rejected", "crashed")


def cell(c: Counter) -> str:
    return "/".join(str(c[s]) for s in STATUSES)


def tag(cfg: dict) -> str:
    t = cfg["scale"] + ("s" if cfg["source"] == "scales" else "z")
    extra = []
    if cfg["opset"] not in (13,):
        extra.append(f"o{cfg['opset']}")
    if cfg["layout"] != "nchw":
        extra.append("nhwc")
    if cfg["input"] != "5x7":
        extra.append("@" + cfg["input"])
    if cfg["axes"]:
        extra.append("axes")
    if cfg["antialias"]:
        extra.append("aa")
    return t + ("[" + ",".join(extra) + "]" if extra else "")


def norm_msg(m: str) -> str:
    m = re.sub(r"/[^\s:'\"]+", "<path>", m or "")
    m = re.sub(r"\b[0-9a-f]{16}\b", "<id>", m)
    m = re.sub(r"\d+(\.\d+)?", "N", m)
    return m[:220]


# ----------------------------------------------------------------------------------------------------------------
# exact source coordinates (rationals) for the tie analysis

def _f32(v) -> Fraction:
    return Fraction(float(np.float32(v)))


def source_coords(cfg: dict, axis_pos: int, n: int, m: int) -> list[Fraction]:
    ctm = cfg["ctm"] or "asymmetric"
    if cfg["scale"] == "to1" or cfg["source"] == "sizes":
        s = Fraction(m, n)
    else:
        s = _f32(G.SCALES[cfg["scale"]][axis_pos])
    xs = []
    for i in range(m):
        if ctm == "half_pixel":
            x = (i + Fraction(1, 2)) / s - Fraction(1, 2)
        elif ctm == "pytorch_half_pixel":
            x = (i + Fraction(1, 2)) / s - Fraction(1, 2) if m > 1 else Fraction(0)
        elif ctm == "align_corners":
            x = Fraction(i * (n - 1), m - 1) if m > 1 else Fraction(0)
        elif ctm == "asymmetric":
            x = i / s
        elif ctm == "tf_half_pixel_for_nn":
            x = (i + Fraction(1, 2)) / s
        elif ctm == "half_pixel_symmetric":
            adj = m / (s * n)
            off = Fraction(n, 2) * (1 - adj)
            x = off + (i + Fraction(1, 2)) / s - Fraction(1, 2)
        elif ctm == "tf_crop_and_resize":
            st, en = _f32(G.ROI[0][axis_pos]), _f32(G.ROI[1][axis_pos])
            x = st * (n - 1) + i * (en - st) * (n - 1) / (m - 1) if m > 1 else (st + en) * (n - 1) / 2
        else:
            raise ValueError(ctm)
        xs.append(x)
    return xs


def decode_indices(x: np.ndarray, y: np.ndarray, layout: str):
    """Per spatial axis, the source index each output row/column took (None where not decodable)."""
    if layout == "nchw":
        xi, yi = x[0, 0], y[0, 0]
    else:
        xi, yi = x[0, :, :, 0], y[0, :, :, 0]
    where = {}
    for (h, w), v in np.ndenumerate(xi):
        where.setdefault(float(v), (h, w))
    flat = np.array(sorted(where))

    def find(v):
        p = where.get(float(v))
        if p is None and flat.size:  # fp16 runtimes (RKNN): the nearest input value, if it is close enough
            k = int(np.argmin(np.abs(flat - v)))
            if abs(flat[k] - v) <= 2e-3 * max(1.0, abs(v)):
                p = where[float(flat[k])]
        return p

    rows = [(find(yi[i, 0]) or (None, None))[0] for i in range(yi.shape[0])]
    cols = [(find(yi[0, j]) or (None, None))[1] for j in range(yi.shape[1])]
    return rows, cols


def tie_table(records, runtimes, work: Path) -> list[str]:
    agg = defaultdict(Counter)  # (runtime, nearest_mode) -> counts
    examples = defaultdict(list)
    for r in records:
        cfg = r["config"]
        if cfg["mode"] != "nearest" or r["ort"]["status"] != "ran":
            continue
        x = np.load(work / "models" / f"{r['id']}.inputs.npz")["X"]
        ref = np.load(work / "models" / f"{r['id']}.ort.npy")
        n_h, n_w = G.INPUTS[cfg["input"]]
        m_h, m_w = (ref.shape[2], ref.shape[3]) if cfg["layout"] == "nchw" else (ref.shape[1], ref.shape[2])
        ties = []
        for pos, (n, m) in enumerate(((n_h, m_h), (n_w, m_w))):
            for i, xv in enumerate(source_coords(cfg, pos, n, m)):
                if xv - math.floor(xv) == Fraction(1, 2) and 0 <= xv <= n - 1:
                    ties.append((pos, i, math.floor(xv), math.ceil(xv)))
        if not ties:
            continue
        ort_idx = decode_indices(x, ref, cfg["layout"])
        rounding = cfg["nearest_mode"] or "legacy"
        for pos, i, lo, hi in ties:
            o = ort_idx[pos][i]
            agg[("ort", rounding)]["down" if o == lo else "up" if o == hi else "other"] += 1
        for rt in runtimes:
            res = r["runtimes"].get(rt, {}).get("native")
            if not res or res["status"] not in ("exact", "differs"):
                continue
            path = work / rt / f"{r['forms']['native']['sha']}.npz"
            if not path.exists():
                continue
            with np.load(path) as d:
                y = to_layout(d[d.files[0]], ref.shape)
            if y.shape != ref.shape:
                continue
            idx = decode_indices(x, y, cfg["layout"])
            for pos, i, lo, hi in ties:
                got, o = idx[pos][i], ort_idx[pos][i]
                side = "down" if got == lo else "up" if got == hi else "other"
                agg[(rt, rounding)][side] += 1
                agg[(rt, rounding)]["same as ORT" if got == o else "not as ORT"] += 1
                if got != o and len(examples[rt]) < 4:
                    examples[rt].append(f"{r['id']} axis {'HW'[pos]} out {i}: x = {lo}.5, ORT {o}, {rt} {got}")
    lines = ["| runtime | nearest_mode | tie samples | down (floor) | up (ceil) | other | same as ORT | not as ORT |",
             "|---|---|---|---|---|---|---|---|"]
    for (rt, rounding), c in sorted(agg.items(), key=lambda kv: (kv[0][0] != "ort", kv[0])):
        total = c["down"] + c["up"] + c["other"]
        lines.append(f"| {rt} | {rounding} | {total} | {c['down']} | {c['up']} | {c['other']} | "
                     f"{c['same as ORT'] if rt != 'ort' else '-'} | {c['not as ORT'] if rt != 'ort' else '-'} |")
    for rt, ex in examples.items():
        lines.append(f"\n{rt} examples: " + "; ".join(ex))
    return lines


# ----------------------------------------------------------------------------------------------------------------

def analyze(data: dict, runtimes: list[str], work: Path) -> str:
    records = [r for r in data["models"] if r["ort"]["status"] == "ran"]
    forms = data["meta"]["forms"]
    out = [f"# Per-runtime patterns ({len(records)} grid models ORT runs; cells = exact/differs/rejected/crashed)\n"]
    ort_rej = [r for r in data["models"] if r["ort"]["status"] != "ran"]
    if ort_rej:
        out.append(f"ORT itself rejects {len(ort_rej)} grid models (left out): "
                   + "; ".join(f"{k} x{v}" for k, v in Counter(norm_msg(r['ort']['error'])[:120] for r in ort_rej).items()) + "\n")
    for rt in runtimes:
        tol = data["meta"]["tolerance"].get(rt)
        out.append(f"\n## {rt} (exact = relative error <= {tol})\n")
        rows = defaultdict(Counter)
        bad = defaultdict(list)
        errs = defaultdict(list)
        for r in records:
            c = r["config"]
            res = r["runtimes"].get(rt, {}).get("native")
            if not res:
                continue
            key = (r["op"] if c["ctm"] is None else c["mode"], c["mode"] if c["ctm"] is None else c["ctm"], c["nearest_mode"] or "")
            rows[key][res["status"]] += 1
            if res["status"] != "exact":
                s = {"differs": "d", "rejected": "R", "crashed": "C"}[res["status"]]
                bad[key].append(tag(c) + s)
                if res.get("err") is not None:
                    errs[key].append(res["err"])
        out.append("### native spellings\n")
        out.append("| mode | transform | nearest_mode | e/d/R/C | max err | not exact (d differs, R rejected, C crashed) |")
        out.append("|---|---|---|---|---|---|")
        for key in sorted(rows):
            b = bad[key]
            shown = " ".join(b[:14]) + (f" … (+{len(b) - 14})" if len(b) > 14 else "")
            me = f"{max(errs[key]):.3g}" if errs[key] else ""
            out.append(f"| {key[0]} | {key[1]} | {key[2]} | {cell(rows[key])} | {me} | {shown} |")
        out.append("\n### native, by dimension\n")
        for dim in ("opset", "layout", "source", "scale", "input", "axes", "antialias"):
            cnt = defaultdict(Counter)
            for r in records:
                res = r["runtimes"].get(rt, {}).get("native")
                if res:
                    cnt[r["config"][dim]][res["status"]] += 1
            out.append(f"- {dim}: " + ", ".join(f"{k}: {cell(v)}" for k, v in sorted(cnt.items(), key=lambda kv: str(kv[0]))))
        out.append("\n### messages (native and rewritten forms)\n")
        msgs = Counter()
        for r in records:
            for form, res in r["runtimes"].get(rt, {}).items():
                if res["status"] in ("rejected", "crashed"):
                    msgs[(res["status"], res.get("stage", ""), norm_msg(res.get("error", "")))] += 1
        for (st, stage, m), k in msgs.most_common(12):
            out.append(f"- {k} × {st} at {stage or '-'}: `{m}`")
        out.append("\n### rewritten forms (exact/differs/rejected/crashed per op pattern; err = worst exact-or-differs error)\n")
        out.append("| form | op pattern | e/d/R/C | worst err |")
        out.append("|---|---|---|---|")
        for form in forms[1:]:
            agg = defaultdict(Counter)
            worst = defaultdict(float)
            for r in records:
                f = r["forms"].get(form, {})
                res = r["runtimes"].get(rt, {}).get(form)
                if not res:
                    continue
                agg[f["ops"]][res["status"]] += 1
                if res.get("err") is not None:
                    worst[f["ops"]] = max(worst[f["ops"]], res["err"])
            for ops, c in sorted(agg.items(), key=lambda kv: -sum(kv[1].values())):
                out.append(f"| {form} | {ops} | {cell(c)} | {worst[ops]:.3g} |")
        out.append("\n### canon form fate for natives that are not exact\n")
        fate = Counter()
        for r in records:
            st = {f: r["runtimes"].get(rt, {}).get(f, {}).get("status") for f in forms}
            if st.get("native") != "exact":
                best = next((f for f in forms[1:] if st.get(f) == "exact"), "none")
                fate[best] += 1
        out.append("first exact form in " + " > ".join(forms[1:]) + ": " + ", ".join(f"{k} {v}" for k, v in fate.most_common()))
    out.append("\n## Float ties (nearest, native spellings)\n")
    out += tie_table(data["models"], runtimes, work)
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("RUNTIMES_RESULTS", str(REPO / "build" / "runtimes")))
    ap.add_argument("--runtimes", default="")
    args = ap.parse_args(argv)
    out = Path(args.out)
    data = json.loads((out / "results.json").read_text())
    runtimes = [r for r in args.runtimes.split(",") if r] or data["meta"]["runtimes"]
    text = analyze(data, runtimes, out / "work")
    (out / "analysis.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
