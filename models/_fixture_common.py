"""Helpers shared by the fixture generator scripts in this folder.

Needs only ``onnx``, ``onnxruntime`` and ``numpy`` so it can be imported from the
torch environment as well as from the TensorFlow environment.
Nothing here is part of the rewriter library; it only builds and checks test fixtures.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

ort.set_default_logger_severity(3)  # hide e.g. the tf_half_pixel_for_nn deprecation warning

HERE = Path(__file__).resolve().parent
MANIFEST = HERE / "manifest.json"
MAX_FILE_BYTES = 200 * 1024

RESIZE_OPS = ("Resize", "Upsample")


# --------------------------------------------------------------------------- graph walking
def iter_nodes(graph: onnx.GraphProto):
    """Yield every node of ``graph`` including nodes of nested subgraphs (If/Loop/Scan bodies)."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from iter_nodes(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from iter_nodes(g)


def resize_nodes(model: onnx.ModelProto):
    return [n for n in iter_nodes(model.graph) if n.op_type in RESIZE_OPS]


def default_opset(model: onnx.ModelProto) -> int:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    raise ValueError("model has no default-domain opset import")


def _attr_str(v):
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list):
        return "[" + ",".join(_attr_str(x) for x in v) + "]"
    return str(v)


def describe_resize(node: onnx.NodeProto, graph_inits: dict | None = None) -> str:
    """One-line description: op, attributes (as written in the file) and which of roi/scales/sizes is used."""
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    parts = [f"{k}={_attr_str(attrs[k])}" for k in sorted(attrs)]
    ins = list(node.input)
    if node.op_type == "Upsample":
        if len(ins) > 1:
            parts.append("scales=input")
    elif len(ins) == 2:  # Resize-10 (X, scales)
        parts.append("scales=input")
    else:
        used = []
        if len(ins) > 1 and ins[1]:
            used.append("roi")
        if len(ins) > 2 and ins[2]:
            used.append("scales")
        if len(ins) > 3 and ins[3]:
            used.append("sizes")
        parts.append("inputs:" + "+".join(["X"] + used))
    return f"{node.op_type}(" + ", ".join(parts) + ")"


# --------------------------------------------------------------------------- machine paths in metadata
_SITE_RE = None


def scrub_text(text: str) -> str:
    """Replace absolute machine paths (and object addresses) in exporter debug metadata by neutral text."""
    import re

    global _SITE_RE
    if _SITE_RE is None:
        _SITE_RE = re.compile(r'[^"\'\s]*/(?:site|dist)-packages/')
    text = text.replace(str(HERE) + "/", "models/")
    text = re.sub(r" at 0x[0-9a-fA-F]+>", ">", text)  # object addresses (differ from run to run)
    return _SITE_RE.sub("<site-packages>/", text)


def scrub_ir_model(ir_model) -> int:
    """Scrub machine paths from the metadata_props of an onnx_ir Model (as held by torch's ONNXProgram).

    The dynamo exporter records Python stack traces (``pkg.torch.onnx.stack_trace``) with absolute file
    paths of the generating machine, and reprs with memory addresses, in node metadata. Only these debug
    strings are rewritten; the graph is not touched. Returns the number of strings changed.
    """
    import onnx_ir as ir

    changed = 0

    def fix(props):
        nonlocal changed
        for k in list(props):
            v = props[k]
            nv = scrub_text(v)
            if nv != v:
                props[k] = nv
                changed += 1

    fix(ir_model.metadata_props)
    fix(ir_model.graph.metadata_props)
    for node in ir.traversal.RecursiveGraphIterator(ir_model.graph):
        fix(node.metadata_props)
    for func in ir_model.functions.values():
        fix(func.metadata_props)
        for node in func:
            fix(node.metadata_props)
    return changed


# --------------------------------------------------------------------------- checking / running
def check_model(path: Path) -> str:
    """Run the ONNX checker; full_check when it passes, else plain check. Returns a note ('' if full check ok)."""
    try:
        onnx.checker.check_model(str(path), full_check=True)
        return ""
    except Exception as exc:  # noqa: BLE001 - we want to record whatever the checker says
        onnx.checker.check_model(str(path), full_check=False)  # must pass, or we raise
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        return f"onnx.checker full_check fails (plain check passes): {first}"


def run_ort(path: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    so = ort.SessionOptions()
    so.log_severity_level = 3  # hide e.g. the tf_half_pixel_for_nn deprecation warning
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    outs = sess.run(names, feeds)
    return dict(zip(names, outs))


def graph_io_names(model: onnx.ModelProto) -> tuple[list[str], list[str]]:
    init_names = {i.name for i in model.graph.initializer}
    ins = [i.name for i in model.graph.input if i.name not in init_names]
    outs = [o.name for o in model.graph.output]
    return ins, outs


def max_abs_diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float | None:
    worst = 0.0
    for k, va in a.items():
        vb = b.get(k)
        if vb is None:
            return None
        va = np.asarray(va)
        vb = np.asarray(vb)
        if va.shape != vb.shape:
            return float("inf")
        if va.size:
            worst = max(worst, float(np.max(np.abs(va.astype(np.float64) - vb.astype(np.float64)))))
    return worst


def save_io(stem_path: Path, inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray]) -> Path:
    npz = stem_path.with_name(stem_path.name + ".io.npz")
    arrays = {k: np.asarray(v) for k, v in inputs.items()}
    arrays.update({f"out_{k}": np.asarray(v) for k, v in outputs.items()})
    np.savez_compressed(npz, **arrays)
    return npz


def files_of(onnx_path: Path) -> list[Path]:
    """The .onnx file plus any external-data files it references."""
    model = onnx.load(str(onnx_path), load_external_data=False)
    locs = set()

    def visit(graph):
        for t in graph.initializer:
            if t.data_location == onnx.TensorProto.EXTERNAL:
                for e in t.external_data:
                    if e.key == "location":
                        locs.add(e.value)
        for n in graph.node:
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    visit(a.g)
                elif a.type == onnx.AttributeProto.GRAPHS:
                    for g in a.graphs:
                        visit(g)

    visit(model.graph)
    return [onnx_path] + [onnx_path.parent / loc for loc in sorted(locs)]


def auto_notes(model: onnx.ModelProto) -> list[str]:
    """Facts about the Resize nodes worth flagging in the manifest (computed, not hand-written)."""
    out = []
    opset = default_opset(model)
    nodes = resize_nodes(model)
    ctms = {onnx.helper.get_attribute_value(a).decode() for n in nodes for a in n.attribute
            if a.name == "coordinate_transformation_mode"}
    if "tf_half_pixel_for_nn" in ctms and opset >= 13:
        out.append(f"uses tf_half_pixel_for_nn at opset {opset} (removed from the spec list in Resize-13; ORT accepts "
                   "it with a deprecation warning)")
    # float32-scales output-size trap: ORT int64(f32(s)*n) vs onnx shape inference / reference floor(double)
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001
        return out
    shapes = {}
    for vi in list(inferred.graph.input) + list(inferred.graph.value_info) + list(inferred.graph.output):
        dims = vi.type.tensor_type.shape.dim
        shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    consts = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    consts[n.output[0]] = onnx.numpy_helper.to_array(a.t)
    for n in model.graph.node:
        if n.op_type not in RESIZE_OPS:
            continue
        if n.op_type == "Upsample" and len(n.input) == 1:
            scales = [a for a in n.attribute if a.name == "scales"]
            sc = np.array(onnx.helper.get_attribute_value(scales[0]), np.float32) if scales else None
        else:
            idx = 1 if (n.op_type == "Upsample" or len(n.input) == 2) else 2
            name = n.input[idx] if len(n.input) > idx else ""
            sc = consts.get(name) if name else None
        xs = shapes.get(n.input[0])
        if sc is None or sc.size == 0 or not xs or len(xs) != sc.size or any(d is None for d in xs):
            continue
        sc = sc.astype(np.float32)
        for ax, (d, s) in enumerate(zip(xs, sc)):
            m32 = int(np.float32(d) * np.float32(s))
            m64 = int(np.floor(float(d) * float(s)))
            if m32 != m64:
                out.append(f"float32-scales size trap on axis {ax}: n={d}, scale={float(s)!r}: ORT output {m32}, "
                           f"onnx shape inference/reference {m64}")
    return out


def finalize(
    onnx_path: Path,
    *,
    inputs: dict[str, np.ndarray],
    expected: dict[str, np.ndarray] | None,
    exporter: str,
    source: str,
    script: str,
    notes: str = "",
    expected_from: str = "",
    reference: dict[str, np.ndarray] | None = None,
) -> dict:
    """Check, run in ORT, compare with ``expected`` (framework output), write the .io.npz, return a manifest entry.

    ``expected`` keys must be the ONNX output names.  If ``expected`` is None the ORT output is stored as out_*;
    then, if ``reference`` (e.g. onnx.reference output) is given, it is stored as ref_* and
    framework_max_abs_diff is max|ORT - reference|, else null.
    """
    notes_l = [notes] if notes else []
    chk = check_model(onnx_path)
    if chk:
        notes_l.append(chk)
    model = onnx.load(str(onnx_path), load_external_data=False)
    in_names, out_names = graph_io_names(model)
    missing = set(in_names) - set(inputs)
    extra = set(inputs) - set(in_names)
    if missing or extra:
        raise RuntimeError(f"{onnx_path.name}: input names mismatch, missing={missing} extra={extra}")
    notes_l.extend(auto_notes(onnx.load(str(onnx_path))))
    ort_out = run_ort(onnx_path, inputs)
    diff = None
    if expected is None and reference is not None:
        diff = max_abs_diff(reference, ort_out)
        if diff == float("inf"):
            shapes = {k: (np.shape(reference[k]), ort_out[k].shape) for k in out_names}
            notes_l.append(f"ORT output SHAPE differs from onnx.reference output: {shapes}")
    if expected is not None:
        if set(expected) != set(out_names):
            raise RuntimeError(f"{onnx_path.name}: expected keys {sorted(expected)} != outputs {out_names}")
        diff = max_abs_diff(expected, ort_out)
        if diff == float("inf"):
            shapes = {k: (np.shape(expected[k]), ort_out[k].shape) for k in out_names}
            notes_l.append(f"ORT output SHAPE differs from framework output: {shapes}")
    stored = dict(expected if expected is not None else ort_out)
    if expected is None:
        if reference is not None:
            notes_l.append("no framework: out_* in .io.npz is the onnxruntime output, ref_* the onnx.reference "
                           "output, framework_max_abs_diff = max|ORT - onnx.reference|")
        else:
            notes_l.append("no framework output: out_* in .io.npz is the onnxruntime output")
    elif expected_from:
        notes_l.append(f"out_* in .io.npz is the {expected_from} output")
    extra = {}
    if expected is None and reference is not None:
        extra = {f"ref_{k}": np.asarray(v) for k, v in reference.items()}
    save_io(onnx_path.with_suffix(""), {**inputs, **extra}, stored)

    nodes = resize_nodes(model)
    inits = {i.name for i in model.graph.initializer}
    files = files_of(onnx_path)
    external = len(files) > 1
    for f in files:
        size = f.stat().st_size
        if size > MAX_FILE_BYTES:
            raise RuntimeError(f"{f.name} is {size} bytes (> {MAX_FILE_BYTES})")
    diff_json = None if diff is None else (diff if diff != float("inf") else "shape mismatch")
    status = "n/a" if diff is None else ("SHAPE MISMATCH" if diff == float("inf") else f"{diff:.3g}")
    print(f"  {onnx_path.name:48s} resize_nodes={len(nodes)} ort_vs_framework={status}")
    return {
        "file": onnx_path.name,
        "exporter": exporter,
        "source": source,
        "opset": default_opset(model),
        "resize_nodes": len(nodes),
        "external_data": external,
        "framework_max_abs_diff": diff_json,
        "notes": "; ".join(n for n in notes_l if n),
        # extra fields (informational)
        "resize_attrs": [describe_resize(n, inits) for n in nodes],
        "inputs": in_names,
        "outputs": out_names,
        "io": onnx_path.with_suffix("").name + ".io.npz",
        "data_files": [f.name for f in files[1:]],
        "script": script,
    }


def write_manifest(script: str, entries: list[dict]) -> None:
    """Replace this script's entries in manifest.json, keep the other scripts' entries."""
    old = []
    if MANIFEST.exists():
        old = [e for e in json.loads(MANIFEST.read_text()) if e.get("script") != script]
    allents = old + entries
    allents.sort(key=lambda e: (e.get("script", ""), e["file"]))
    MANIFEST.write_text(json.dumps(allents, indent=1) + "\n")
    print(f"manifest.json: {len(entries)} entries from {script}, {len(allents)} total")


def remove_stale(prefixes: tuple[str, ...], keep: set[str]) -> None:
    """Delete previously generated files with one of ``prefixes`` that this run did not produce."""
    for f in HERE.iterdir():
        if f.is_file() and f.name.startswith(prefixes) and f.name not in keep:
            f.unlink()


@contextlib.contextmanager
def quiet():
    """Silence Python and C++ (file-descriptor level) output of the exporters."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 1)
        os.dup2(devnull.fileno(), 2)
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
