"""Helpers for the architecture corpus (``models/architectures/``, listed in ``models/architectures.json``).

The corpus holds real network architectures (torchvision, segmentation_models_pytorch, ultralytics, Keras) with
random weights and reduced widths. Its manifest is separate from ``manifest.json`` on purpose: the fixture tests
iterate over ``manifest.json`` and the rewriter does not handle every architecture here yet.
``measure_architectures.py`` measures how the rewriter does on it.

Needs only ``onnx``, ``onnxruntime`` and ``numpy`` (torch only inside ``export_torch``).
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np

import _fixture_common as fc

HERE = Path(__file__).resolve().parent
ARCH_DIR = HERE / "architectures"
ARCH_MANIFEST = HERE / "architectures.json"
ARCH_MAX_FILE_BYTES = 2 * 1024 * 1024

# The corpus files are larger than the unit fixtures; fc.finalize checks every file against this limit.
fc.MAX_FILE_BYTES = ARCH_MAX_FILE_BYTES


def forbid_network() -> None:
    """Make any network connection fail: the corpus must build from the packages' own builders only."""

    def refuse(*_args, **_kwargs):
        raise RuntimeError("network access attempted while building the architecture corpus")

    socket.socket.connect = refuse  # type: ignore[method-assign]
    socket.create_connection = refuse  # type: ignore[assignment]


def seeded_inputs(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(shape).astype(np.float32) for name, shape in shapes.items()}


def arch_entry(entry: dict, *, family: str, exporter_kind: str, opset: int, arch: str, config: str) -> dict:
    """A manifest.json-style entry from fc.finalize, with paths relative to models/ and the corpus fields."""
    entry = dict(entry)
    entry["file"] = f"{ARCH_DIR.name}/{entry['file']}"
    entry["io"] = f"{ARCH_DIR.name}/{entry['io']}"
    entry["data_files"] = [f"{ARCH_DIR.name}/{f}" for f in entry["data_files"]]
    entry["family"] = family
    entry["arch"] = arch
    entry["exporter_kind"] = exporter_kind
    entry["opset"] = opset
    entry["config"] = config
    entry["bytes"] = sum((HERE / f).stat().st_size for f in [entry["file"], *entry["data_files"]])
    return entry


def write_arch_manifest(script: str, entries: list[dict], failures: list[dict], families: set[str]) -> None:
    """Replace this script's entries of ``families`` in architectures.json; keep everything else.

    ``failures`` (models an exporter could not produce) are kept under ``not_produced``.
    """
    old = {"models": [], "not_produced": []}
    if ARCH_MANIFEST.exists():
        old = json.loads(ARCH_MANIFEST.read_text())

    def mine(e):
        return e.get("script") == script and e.get("family") in families

    models = [e for e in old["models"] if not mine(e)] + entries
    missing = [e for e in old["not_produced"] if not mine(e)] + failures
    models.sort(key=lambda e: (e["family"], e["file"]))
    missing.sort(key=lambda e: (e["family"], e["stem"]))
    ARCH_MANIFEST.write_text(json.dumps({"models": models, "not_produced": missing}, indent=1) + "\n")
    total = sum(e["bytes"] for e in models)
    print(f"architectures.json: {len(entries)} entries from {script}, {len(models)} models, "
          f"{len(missing)} not produced, {total / 2**20:.1f} MiB")


def remove_stale(prefixes: tuple[str, ...], keep: set[str]) -> None:
    for f in ARCH_DIR.iterdir():
        if f.is_file() and f.name.startswith(prefixes) and f.name not in keep:
            f.unlink()


def first_line(exc: BaseException) -> str:
    """``Type: first line`` of an exception, and of its cause (the exporters wrap the real error)."""
    import re

    def one(e):
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip()
        return f"{type(e).__name__}: {(text.splitlines()[0] if text else '')[:300]}"

    cause = exc.__cause__ or exc.__context__
    return one(exc) + (f" (caused by {one(cause)})" if cause is not None else "")


# --------------------------------------------------------------------------- torch export
# (file suffix, exporter, opset, dynamic batch): the batch-dynamic exports are how most models are shipped
# (``dynamic_axes={"image": {0: "batch"}}``; the dynamo exporter's ``Dim("batch")``).
EXPORTS = (("ts11", "ts", 11, False), ("ts17", "ts", 17, False), ("dynamo", "dynamo", None, False),
           ("ts17_dynbatch", "ts", 17, True), ("dynamo_dynbatch", "dynamo", None, True))


def export_torch(model, inputs: dict[str, np.ndarray], output_names: list[str], *, stem: str, family: str,
                 arch: str, source: str, config: str, script: str, exports=EXPORTS):
    """Export ``model`` with each of ``exports``; return (entries, failures, files written).

    ``model(*inputs)`` must return a tensor or a tuple of tensors named ``output_names``. Static shapes, or a
    dynamic batch (axis 0 of every input and output); the exports share one ``<stem>.io.npz``; the dynamo exports keep their weights inline (like the other dynamo
    fixtures) and have the machine paths of their recorded stack traces scrubbed.
    """
    import onnxscript
    import torch

    version = torch.__version__.split("+")[0]
    args = tuple(torch.from_numpy(v) for v in inputs.values())
    with torch.no_grad():
        out = model(*args)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    if len(outs) != len(output_names):
        raise RuntimeError(f"{stem}: {len(outs)} outputs, {len(output_names)} names")
    expected = {n: o.detach().numpy() for n, o in zip(output_names, outs)}
    entries, failures, written = [], [], set()
    for suffix, kind, opset, dynamic_batch in exports:
        name = f"{stem}_{suffix}"
        path = ARCH_DIR / f"{name}.onnx"
        try:
            with fc.quiet():
                if kind == "ts":
                    axes = {n: {0: "batch"} for n in [*inputs, *output_names]} if dynamic_batch else None
                    torch.onnx.export(model, args, str(path), dynamo=False, opset_version=opset,
                                      input_names=list(inputs), output_names=output_names, dynamic_axes=axes)
                    exporter = f"torch.onnx TorchScript {version} opset {opset}"
                else:
                    batch = torch.export.Dim("batch", min=1, max=64)
                    shapes = tuple({0: batch} for _ in inputs) if dynamic_batch else None  # by position: arg names vary
                    prog = torch.onnx.export(model, args, dynamo=True, verbose=False, input_names=list(inputs),
                                             output_names=output_names, dynamic_shapes=shapes)
                    strip_debug_metadata(prog.model)
                    prog.save(str(path), external_data=False)
                    exporter = f"torch.onnx dynamo {version} (onnxscript {onnxscript.__version__})"
            notes = ("dynamic batch" if dynamic_batch else "static shapes") + "; random weights"
            if kind == "dynamo":
                notes += ("; the exporter's per-node debug metadata (stack traces, fx node names, class hierarchy, "
                          "name scopes) removed to keep the file small (graph untouched)")
            entry = fc.finalize(path, inputs=inputs, expected=expected, exporter=exporter, source=source,
                                script=script, notes=notes, expected_from="torch eager (CPU)")
        except Exception as exc:  # noqa: BLE001 - an exporter failure is a corpus fact, recorded
            for f in (path, path.with_suffix(".io.npz"), path.with_name(path.name + ".data")):
                f.unlink(missing_ok=True)
            reason = first_line(exc)
            print(f"  {name}: NOT PRODUCED ({reason})")
            failures.append({"stem": name, "family": family, "arch": arch,
                             "exporter_kind": kind + ("+N" if dynamic_batch else ""), "opset": opset,
                             "reason": reason, "script": script})
            continue
        # every export of a model has the same input and framework output: one .io.npz per model
        (ARCH_DIR / entry["io"]).replace(ARCH_DIR / f"{stem}.io.npz")
        entry["io"] = f"{stem}.io.npz"
        entry = arch_entry(entry, family=family, exporter_kind=kind + ("+N" if dynamic_batch else ""), opset=entry["opset"],
                           arch=arch, config=config)
        entries.append(entry)
        written.update(Path(f).name for f in [entry["file"], entry["io"], *entry["data_files"]])
    return entries, failures, written


DEBUG_KEYS = ("pkg.torch.onnx.", "namespace")


def strip_debug_metadata(ir_model) -> None:
    """Drop the dynamo exporter's per-node debug strings (a third of a small model's file; they also hold
    machine paths). Only node metadata_props are touched, never the graph."""
    import onnx_ir as ir

    nodes = list(ir.traversal.RecursiveGraphIterator(ir_model.graph))
    for func in ir_model.functions.values():
        nodes.extend(func)
    for node in nodes:
        for key in [k for k in node.metadata_props if k.startswith(DEBUG_KEYS)]:
            del node.metadata_props[key]
    fc.scrub_ir_model(ir_model)  # whatever machine paths remain elsewhere


def randomize_batchnorm(model, seed: int) -> None:
    """Random BatchNorm statistics and affine parameters, so that BN is not an identity."""
    import torch
    import torch.nn as nn

    g = torch.Generator().manual_seed(seed)
    for mod in model.modules():
        if isinstance(mod, nn.modules.batchnorm._BatchNorm) and mod.running_mean is not None:
            n = mod.num_features
            with torch.no_grad():
                mod.running_mean.copy_(0.1 * torch.randn(n, generator=g))
                mod.running_var.copy_(1 + 0.2 * torch.rand(n, generator=g))
                if mod.affine:
                    mod.weight.copy_(1 + 0.1 * torch.randn(n, generator=g))
                    mod.bias.copy_(0.1 * torch.randn(n, generator=g))
