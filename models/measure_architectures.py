"""Measure how rewriter does on the architecture corpus (``architectures.json``).

Per model:

- ``fix_resize`` for each target (onnx, coreml, caffe): ``exact`` (written, every node exact, and the whole
  model gives the same outputs in ONNX Runtime as the original on the recorded input, relative error <= 1e-5),
  ``inexact`` (written but the whole-model check fails), ``refused`` (NotExactError, with its message) or
  ``error`` (any other exception: a bug);
- ``export_coreml(model, out.mlpackage, verify=True)`` (verified with rewriter's reference evaluator on Linux);
- ``export_caffe(model, out.prototxt)`` then ``rewriter.caffe.measure_error`` on the recorded input (a model with a
  dynamic batch gets ``input_shapes`` from the recorded input, as the exporter's message advises: Caffe nets declare
  their input sizes).

Prints one table per family x exporter and the refusal reasons grouped (node names and numbers folded away,
unsupported ops counted per op type). Needs rewriter (with coremltools for Core ML), onnx, onnxruntime, numpy:

    python models/measure_architectures.py                   # everything
    python models/measure_architectures.py --only yolo --json results.json
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import tempfile
import textwrap
import time
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.dont_write_bytecode = True

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402

import rewriter  # noqa: E402
from rewriter.errors import NotExactError, RewriterError, UnsupportedOpError  # noqa: E402

TARGETS = ("onnx", "coreml", "caffe")
STEPS = (*(f"fix-{t}" for t in TARGETS), "export-coreml", "export-caffe")
RELATIVE_LIMIT = 1e-5
STEP_TIMEOUT = 600  # seconds


class StepTimeout(Exception):
    pass


def _alarm(_signum, _frame):
    raise StepTimeout(f"timed out after {STEP_TIMEOUT} s")


def run_ort(path_or_bytes, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(path_or_bytes, options, providers=["CPUExecutionProvider"]).run(None, feeds)


def relative(a: np.ndarray, b: np.ndarray) -> float:
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a64.shape != b64.shape:
        return float("inf")
    return float(np.abs(a64 - b64).max(initial=0.0)) / max(1.0, float(np.abs(a64).max(initial=0.0)))


def outcome(status: str, detail: str = "", error: float | None = None, forms: Counter | None = None) -> dict:
    """``forms``: what the Resize nodes became (op or layer kind -> count)."""
    return {"status": status, "detail": detail, "error": error, "forms": dict(forms or {})}


def kind(text: str) -> str:
    """'ConvTranspose(axis 2: ...)' -> 'ConvTranspose'; '' (removed) -> 'removed'."""
    return re.split(r"[(\s]", text.strip(), maxsplit=1)[0] or "removed"


def failure(exc: BaseException) -> dict:
    msg = " ".join(str(exc).split())
    if isinstance(exc, (NotExactError, UnsupportedOpError)):
        return outcome("refused", f"{type(exc).__name__}: {msg}")
    if isinstance(exc, RewriterError):
        return outcome("refused", f"{type(exc).__name__}: {msg}")
    return outcome("error", f"{type(exc).__name__}: {msg[:500]}")


def fix_step(path: Path, target: str, feeds, expected, tmp: Path) -> dict:
    out = tmp / f"fixed_{target}.onnx"
    try:
        result = rewriter.fix_resize(path, target, out)
    except NotExactError as exc:
        if "--input-shape" not in str(exc):
            raise
        # the message asks for --input-shape: the corpus inputs are static already, so say what that gives
        try:
            rewriter.fix_resize(path, target, out, input_shapes={k: v.shape for k, v in feeds.items()})
            retry = "with --input-shape: written"
        except Exception as again:  # noqa: BLE001
            retry = f"with --input-shape: {type(again).__name__}"
        raise NotExactError(f"{exc} [{retry}]") from None
    inexact = [n.name for n in result.nodes if not n.exact]
    if inexact:
        return outcome("inexact", f"nodes reported inexact: {inexact}")
    got = run_ort(str(out), feeds)
    worst = max((relative(a, b) for a, b in zip(expected, got)), default=0.0)
    if worst > RELATIVE_LIMIT:
        return outcome("inexact", f"whole model relative error {worst:.3g}", worst)
    return outcome("exact", f"{len(result.nodes)} resize nodes", worst, Counter(kind(n.became) for n in result.nodes))


def coreml_step(path: Path, feeds, expected, tmp: Path) -> dict:
    result = rewriter.export_coreml(path, tmp / "model.mlpackage", verify=True)
    err = result.max_error
    if err is not None and err > RELATIVE_LIMIT:
        return outcome("inexact", f"verified with {result.verified_with}: {err:.3g}", err)
    ops = Counter(kind(op.removeprefix("lowered: ")) for _, op in result.resize_ops)
    return outcome("exact", f"verified with {','.join(result.verified_with)}", err, ops)


def caffe_step(path: Path, feeds, expected, tmp: Path) -> dict:
    from rewriter.caffe.exporter import measure_error

    try:
        result = rewriter.export_caffe(path, tmp / "model.prototxt")
    except RewriterError as exc:
        if "has a dynamic shape" not in str(exc):
            raise
        # a Caffe net declares its input sizes: a dynamic batch is pinned as the message advises
        result = rewriter.export_caffe(path, tmp / "model.prototxt", input_shapes={k: v.shape for k, v in feeds.items()})
    _, rel = measure_error(path, result, inputs=feeds)
    if rel > RELATIVE_LIMIT:
        return outcome("inexact", f"relative error {rel:.3g}", rel)
    forms = Counter("+".join(re.findall(r"([A-Za-z]+) x\d+", v.split("-> Caffe: ")[-1])) or kind(v)
                    for v in result.resize_layers.values())
    return outcome("exact", f"layers {sum(result.layers.values())}", rel, forms)


def measure(entry: dict) -> dict:
    path = HERE / entry["file"]
    io = np.load(HERE / entry["io"])
    feeds = {name: io[name] for name in entry["inputs"]}
    expected = run_ort(str(path), feeds)
    results = {}
    for step in STEPS:
        signal.alarm(STEP_TIMEOUT)
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as d:
            try:
                if step.startswith("fix-"):
                    res = fix_step(path, step[4:], feeds, expected, Path(d))
                elif step == "export-coreml":
                    res = coreml_step(path, feeds, expected, Path(d))
                else:
                    res = caffe_step(path, feeds, expected, Path(d))
            except Exception as exc:  # noqa: BLE001 - every failure is a measured fact
                res = failure(exc)
            finally:
                signal.alarm(0)
        res["seconds"] = round(time.perf_counter() - start, 2)
        results[step] = res
    return results


# --------------------------------------------------------------------------- grouping of reasons
def split_top(text: str, sep: str) -> list[str]:
    """Split at ``sep`` outside parentheses."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(text):
        c = text[i]
        depth += (c == "(") - (c == ")")
        if depth == 0 and text.startswith(sep, i):
            parts.append(text[start:i])
            start = i = i + len(sep)
            continue
        i += 1
    return parts + [text[start:]]


def fold(text: str) -> str:
    """A message with node/tensor names and numbers folded away, to group equal reasons."""
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", text)
    text = re.sub(r"\([^()]*(?:\([^()]*\)[^()]*)*\)", "(…)", text)
    return re.sub(r"\b\d+(\.\d+)?(e-?\d+)?\b", "N", text)[:160]


def static_shape_losses(path: Path, resize_names: set[str]) -> list[str]:
    """Where static shapes are first lost upstream of the refused Resize nodes: nodes whose inputs all have a
    static shape (after onnx shape inference with data propagation, as rewriter runs it) but an output has not.
    Returns "OpType name" in graph order."""
    import onnx

    from rewriter.graph import infer_shapes

    model = onnx.load(str(path), load_external_data=False)
    graph = infer_shapes(model).graph
    known = {i.name for i in model.graph.initializer}
    for vi in [*graph.input, *graph.value_info, *graph.output]:
        t = vi.type.tensor_type
        if t.HasField("shape") and all(d.HasField("dim_value") for d in t.shape.dim):
            known.add(vi.name)
    producer = {o: n for n in graph.node for o in n.output}
    order = {id(n): k for k, n in enumerate(graph.node)}
    wanted, stack, seen = [], [n for n in graph.node if n.name in resize_names], set()
    while stack:  # ancestors of the refused nodes
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        wanted.append(node)
        stack += [producer[i] for i in node.input if i in producer]
    losses = [n for n in wanted if n.name not in resize_names and all(i in known for i in n.input if i)
              and any(o not in known for o in n.output if o)]
    return [f"{n.op_type} {n.name}" for n in sorted(losses, key=lambda n: order[id(n)])]


def reason_keys(detail: str, path: Path | None = None) -> list[str]:
    """(group key, note) pairs of one refusal: one per unsupported op (or op + reason), or the fix-resize reason
    (with the node where static shapes are first lost as the note)."""
    kind, _, msg = detail.partition(": ")
    if kind == "UnsupportedOpError":
        _, _, body = msg.partition("Core ML: ") if "for Core ML: " in msg else msg.partition("Caffe: ")
        keys = []
        for part in split_top(body, "; "):
            if part.startswith("unsupported ONNX ops: "):
                keys += [(f"unsupported op {p.split(' (')[0].strip()}", "") for p in split_top(part[22:], ", ")]
            elif "): " in part:
                op, _, why = part.partition(" (")
                keys.append((f"{op}: {fold(why.split('): ', 1)[1])}", ""))
            else:
                keys.append((f"unsupported op {part.split(' (')[0].strip()}", ""))
        return keys
    if "cannot be analysed statically" in msg:
        key = "cannot be analysed statically: " + fold(msg.split("cannot be analysed statically: ")[1].split(";")[0])
        retry = re.search(r"\[(with --input-shape: \w+)\]$", msg)
        if retry:
            key += f" [{retry.group(1)}]"
        if path is not None:
            names = {p.split(" Resize")[0].split(" Upsample")[0].strip() for p in msg.split(" | ")}
            try:
                losses = static_shape_losses(path, names)
            except Exception as exc:  # noqa: BLE001 - a diagnosis, not the measurement
                losses = [f"(diagnosis failed: {type(exc).__name__})"]
            if losses:
                op, _, name = losses[0].partition(" ")
                return [(f"{key} -- static shape first lost at a {op}", name)]
        return [(key, "")]
    return [(f"{kind}: {fold(msg)}", "")]


def summarize(entries: list[dict], results: dict[str, dict]) -> str:
    lines = []
    groups = defaultdict(list)
    for e in entries:
        if e["file"] in results:
            groups[(e["family"], e["exporter_kind"], e["opset"])].append(e)
    head = f"{'family':12s} {'exporter':8s} {'opset':>5s} {'n':>3s}  " + "  ".join(f"{s:>15s}" for s in STEPS)
    lines += ["exact / refused / inexact+error per step", head, "-" * len(head)]
    totals = {s: Counter() for s in STEPS}
    for (family, kind, opset), es in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or 0)):
        cells = []
        for s in STEPS:
            c = Counter(results[e["file"]][s]["status"] for e in es)
            totals[s].update(c)
            cells.append(f"{c['exact']:>5d}/{c['refused']:>3d}/{c['inexact'] + c['error']:>3d}")
        lines.append(f"{family:12s} {kind:8s} {opset or '':>5} {len(es):>3d}  " + "  ".join(f"{c:>15s}" for c in cells))
    lines.append("-" * len(head))
    n = sum(len(es) for es in groups.values())
    lines.append(f"{'all':12s} {'':8s} {'':>5s} {n:>3d}  " + "  ".join(
        f"{t['exact']:>5d}/{t['refused']:>3d}/{t['inexact'] + t['error']:>3d}".rjust(15) for t in totals.values()))
    lines += ["", "what the Resize/Upsample nodes became (exact models only)"]
    for s in STEPS:
        forms = Counter()
        for e in entries:
            r = results.get(e["file"], {}).get(s)
            if r and r["status"] == "exact":
                forms.update(r.get("forms", {}))
        lines.append(f"  {s:14s} " + ", ".join(f"{k} {v}" for k, v in forms.most_common()))
    for s in STEPS:
        reasons = defaultdict(list)
        for e in entries:
            r = results.get(e["file"], {}).get(s)
            if r and r["status"] != "exact":
                keys = reason_keys(r["detail"], HERE / e["file"]) if r["status"] == "refused" else [
                    (f"{r['status']}: {r['detail'][:160]}", "")]
                for key, note in keys:
                    reasons[key].append(Path(e["file"]).stem + (f" ({note})" if note else ""))
        if reasons:
            lines += ["", f"{s}: not exact"]
            for key, files in sorted(reasons.items(), key=lambda kv: -len(kv[1])):
                lines.append(f"  {len(files):3d}  {key}")
                lines += [f"       {line}" for line in textwrap.wrap(", ".join(sorted(files)), 110)]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", default=[], help="substring of the file name (repeatable)")
    parser.add_argument("--json", type=Path, help="write every result (with full messages) here")
    parser.add_argument("--load", type=Path, help="print the tables of a previous --json instead of measuring")
    args = parser.parse_args(argv)
    entries = json.loads((HERE / "architectures.json").read_text())["models"]
    if args.only:
        entries = [e for e in entries if any(s in e["file"] for s in args.only)]
    if args.load:
        results = json.loads(args.load.read_text())
    else:
        signal.signal(signal.SIGALRM, _alarm)
        results = {}
        for i, e in enumerate(entries, 1):
            start = time.perf_counter()
            results[e["file"]] = measure(e)
            status = " ".join(f"{s}={r['status']}" for s, r in results[e["file"]].items())
            print(f"[{i}/{len(entries)}] {e['file']}: {status} ({time.perf_counter() - start:.0f} s)", flush=True)
            if args.json:
                args.json.write_text(json.dumps(results, indent=1) + "\n")
    print()
    print(summarize(entries, results))


if __name__ == "__main__":
    main()
