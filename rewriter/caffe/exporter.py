"""`rewriter export caffe`: ONNX -> Caffe prototxt + caffemodel, with exact upsampling (the API).

1. ``fix_resize(model, "caffe", ...)`` rewrites every Resize/Upsample into an exact form Caffe can run:
   Slice + Concat edge replication and a grouped ConvTranspose, or constant interpolation matrices
   (MatMul); with ``--flavor interp|upsample`` the nodes a fork layer reproduces stay Resize nodes.
2. The fixed graph is made static (``rewriter.caffe.static``: pinned inputs, folded constants, shapes).
3. Every node becomes BVLC layers (``rewriter.caffe.translator`` drives the handlers registered in
   ``rewriter.caffe.ops``), each layer checked against Caffe's shape rules as it is added.
4. Nothing is written unless every node translates; both files are committed together through
   ``rewriter.atomic`` (the caffemodel by ``rewriter.caffe.caffemodel``).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from google.protobuf import text_format

from rewriter.atomic import Staging
from rewriter.caffe import proto
from rewriter.caffe.caffemodel import write_caffemodel
from rewriter.caffe.net import F32
from rewriter.caffe.ops import CAFFE_OPS
from rewriter.caffe.report import describe_resize_layers, problem_line
from rewriter.caffe.static import build
from rewriter.caffe.translator import Translator
from rewriter.errors import UnsupportedOpError, UsageError
from rewriter.ort_runtime import relative_error, session
from rewriter.targets import make_target

BORDERS = ("exact", "zero")


@dataclass
class CaffeExport:
    """What ``export_caffe`` wrote and how the model maps onto it."""

    prototxt: Path
    caffemodel: Path
    fix: object  # rewriter.fix.FixResult
    layers: dict[str, int]  # Caffe layer type -> count
    resize_layers: dict[str, str]  # ONNX Resize/Upsample node -> what it became (fix-resize form -> Caffe layers)
    border_error: float | None  # --border zero: measured max |Caffe - ORT| on a seeded unit-normal input
    warnings: list[str] = field(default_factory=list)
    inputs: dict[str, tuple[int, ...]] = field(default_factory=dict)  # Caffe input blob -> shape
    outputs: list[str] = field(default_factory=list)  # Caffe output blobs (named like the ONNX outputs)
    # ONNX graph input/output -> perm with caffe_blob = np.transpose(onnx_value, perm) (identity omitted)
    io_permutations: dict[str, tuple[int, ...]] = field(default_factory=dict)
    flavor: str = "bvlc"
    border: str = "exact"
    border_error_relative: float | None = None

    def layout_changes(self) -> list[dict]:
        """Each graph input/output whose Caffe blob is a transpose of the ONNX tensor (machine-readable)."""
        return layout_changes(self.io_permutations, self.inputs, self.outputs)

    def to_json(self) -> dict:
        return {
            "prototxt": str(self.prototxt),
            "caffemodel": str(self.caffemodel),
            "flavor": self.flavor,
            "border": self.border,
            "layers": self.layers,
            "resize_layers": self.resize_layers,
            "inputs": {name: list(shape) for name, shape in self.inputs.items()},
            "outputs": self.outputs,
            "io_permutations": {name: list(perm) for name, perm in self.io_permutations.items()},
            "layout_changes": self.layout_changes(),
            "border_error": self.border_error,
            "border_error_relative": self.border_error_relative,
            "warnings": self.warnings,
        }


def layout_changes(
    perms: dict[str, tuple[int, ...]], inputs: dict[str, tuple[int, ...]], outputs: list[str]
) -> list[dict]:
    """{tensor, role, perm, and how to convert}: caffe_blob = np.transpose(onnx_value, perm)."""
    changes = []
    for name, perm in perms.items():
        role = "input" if name in inputs else "output"
        inverse = [perm.index(a) for a in range(len(perm))]
        how = f"np.transpose(x, {list(perm)})" if role == "input" else f"np.transpose(y, {inverse})"
        changes.append({"tensor": name, "role": role, "perm": list(perm), "inverse": inverse, "convert": how})
    return changes


def layout_comment(changes: list[dict]) -> str:
    """The prototxt header lines that state each layout change."""
    lines = []
    for c in changes:
        if c["role"] == "input":
            lines.append(f"# layout: input {c['tensor']!r} is blob = np.transpose(onnx_input, {c['perm']}): feed {c['convert']}\n")
        else:
            lines.append(f"# layout: output {c['tensor']!r} is blob = np.transpose(onnx_output, {c['perm']}): ONNX value = {c['convert']}\n")
    return "".join(lines)


def _model_name(model) -> str:
    if isinstance(model, onnx.ModelProto):
        return model.graph.name or "model"
    return Path(model).stem


def export_caffe(
    model: str | os.PathLike | onnx.ModelProto,
    prototxt: str | os.PathLike,
    caffemodel: str | os.PathLike | None = None,
    *,
    flavor: str = "bvlc",
    border: str = "exact",
    input_shapes: dict[str, tuple[int, ...]] | None = None,
    input_values: dict[str, object] | None = None,
) -> CaffeExport:
    """Export ``model`` to a Caffe prototxt + caffemodel whose upsampling equals ONNX Runtime's.

    Raises ``UsageError`` (bad option, dynamic shapes without ``input_shapes``), ``NotExactError`` (a resize
    fix-resize cannot make exact for the flavor), ``UnsupportedOpError`` (one line: every ONNX op the Caffe
    layers cannot express, with its nodes). Nothing is written unless the whole net translates.
    """
    from rewriter.fix import fix_resize
    from rewriter.model_io import load_model

    target = make_target("caffe", {"flavor": flavor})
    if border not in BORDERS:
        raise UsageError(f"--border {border!r}: expected exact or zero")
    prototxt = Path(prototxt)
    caffemodel = Path(caffemodel) if caffemodel is not None else prototxt.with_suffix(".caffemodel")
    for path in (prototxt, caffemodel):
        if not path.parent.is_dir():
            raise UsageError(f"{path}: directory {path.parent} does not exist")
    if prototxt.resolve() == caffemodel.resolve():
        raise UsageError(f"{prototxt}: the prototxt and the caffemodel must be different files")
    if not isinstance(model, onnx.ModelProto) and Path(model).resolve() in (prototxt.resolve(), caffemodel.resolve()):
        raise UsageError(f"{model}: refusing to overwrite the input model")

    # Loaded once, weights included: the caffemodel holds every one of them, and the comparison with ONNX
    # Runtime (--border zero) runs on this same copy.
    original = model if isinstance(model, onnx.ModelProto) else load_model(model, load_weights=True)
    fix = fix_resize(original, target, border=border, input_shapes=input_shapes, input_values=input_values, verify="local")
    g = build(fix.model, None, input_shapes)

    # What fix-resize decided, read from its provenance: the Resize nodes a fork layer runs (with their
    # semantics) and the nodes it emitted (their weights are fixed interpolation kernels, not to be trained).
    main_graph = [r for r in fix.nodes if not r.graph]
    resize_sems = {output: sem for r in main_graph for output, sem in r.resize_nodes}
    frozen = {name for r in main_graph for name in r.emitted_nodes}

    tr = Translator(g, CAFFE_OPS, flavor, resize_sems, frozen)
    tr.run()
    if tr.problems:
        raise UnsupportedOpError(problem_line(tr.problems, target.label))
    outputs = tr.finish()
    net = proto.NetParameter(name=_model_name(model))
    net.layer.extend(tr.net.layers)

    header = f"# exported by rewriter export caffe (flavor {flavor}, border {border})\n"
    used = sorted({layer.type for layer in tr.net.layers if layer.type in proto.FORK_LAYERS})
    if used:
        header += f"# needs a Caffe fork with the {', '.join(used)} layer(s)\n"
    header += layout_comment(layout_changes(tr.io_perms, g.inputs, outputs))
    text = header + text_format.MessageToString(net)
    with Staging(sync=True) as stage:
        with open(stage.file(prototxt), "wb") as f:
            f.write(text.encode("utf-8"))
        with open(stage.file(caffemodel), "wb") as f:
            write_caffemodel(f, net.name, tr.net.layers, tr.net.weights)
        stage.commit()

    layers = dict(Counter(layer.type for layer in tr.net.layers))
    resize_layers = describe_resize_layers(main_graph, tr.net)

    warnings = list(tr.warnings)
    for name, perm in tr.io_perms.items():
        if name in g.inputs:
            warnings.append(
                f"input {name!r} is declared in the Caffe graph's layout: feed np.transpose(x, {list(perm)}) (its Transposes were removed; BVLC has no Permute)"
            )
    result = CaffeExport(
        prototxt=prototxt,
        caffemodel=caffemodel,
        fix=fix,
        layers=layers,
        resize_layers=resize_layers,
        border_error=None,
        warnings=warnings,
        inputs={name: tr.net.shapes[name] for name in g.inputs},
        outputs=outputs,
        io_permutations=dict(tr.io_perms),
        flavor=flavor,
        border=border,
    )
    if border == "zero":
        result.border_error, result.border_error_relative = measure_error(original, result, inputs=fix.pinned_inputs)
        if any(not n.exact for n in fix.nodes):
            warnings.append(
                f"--border zero: the classic zero-border Deconvolution is not exact: max |Caffe - ONNX Runtime| = {result.border_error:.3g} ({result.border_error_relative:.3g} relative) on a seeded unit-normal input"
            )
        else:
            warnings.append(
                "--border zero: no node uses the classic recipe (none is an integer-factor linear resize); the export is exact"
            )
    return result


def measure_error(
    model, result: CaffeExport, input_shapes=None, seed: int = 0, inputs: dict[str, np.ndarray] | None = None
) -> tuple[float, float]:
    """max |Caffe - ORT| (and relative to max(1, max |ORT|)) on seeded unit-normal inputs, with the
    reference evaluator on the written files."""
    from rewriter.caffe.reference import load
    from rewriter.model_io import load_model

    onnx_model = model if isinstance(model, onnx.ModelProto) else load_model(model, load_weights=True)
    rng = np.random.default_rng(seed)
    feeds = {}
    for name, shape in result.inputs.items():
        perm = result.io_permutations.get(name)
        onnx_shape = shape if perm is None else tuple(shape[perm.index(a)] for a in range(len(shape)))
        feeds[name] = inputs[name] if inputs and name in inputs else rng.standard_normal(onnx_shape).astype(F32)
    ort_session = session(onnx_model)
    # Inputs pinned to constants in the export are still inputs of the ONNX model: feed it their values.
    pinned = {k: v for k, v in (inputs or {}).items() if k not in feeds}
    expected = dict(zip([o.name for o in ort_session.get_outputs()], ort_session.run(None, {**feeds, **pinned})))
    caffe_feeds = {
        n: np.transpose(v, result.io_permutations[n]) if n in result.io_permutations else v for n, v in feeds.items()
    }
    got = load(result.prototxt, result.caffemodel).forward(caffe_feeds)
    worst = rel = 0.0
    for name in result.outputs:
        want = expected[name]
        if name in result.io_permutations:
            want = np.transpose(want, result.io_permutations[name])
        worst = max(worst, float(np.abs(got[name].astype(np.float64) - want.astype(np.float64)).max(initial=0.0)))
        rel = max(rel, relative_error(want, got[name]))
    return worst, rel


__all__ = ["BORDERS", "CaffeExport", "export_caffe", "layout_changes", "measure_error"]
