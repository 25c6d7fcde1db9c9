"""Generate ONNX Resize/Upsample fixtures with torch.onnx.export (TorchScript and dynamo exporters).

Run in an environment with torch==2.13.0 (CPU), onnx, onnxruntime, onnxscript and numpy:

    python models/make_torch_fixtures.py

Writes into the folder this script lives in: ``torch_*.onnx`` (+ one ``.onnx.data``), ``torch_*.io.npz`` and
this script's entries of ``manifest.json``.  Deterministic: fixed seeds, fixed shapes.
Export failures (e.g. operators an exporter does not support) are printed and recorded in the notes of
the related fixture; they are not errors.
"""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.dont_write_bytecode = True  # keep the models/ folder free of __pycache__

import onnx  # noqa: E402
import onnxscript  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.export import Dim  # noqa: E402

import _fixture_common as fc  # noqa: E402

SCRIPT = "make_torch_fixtures.py"
TORCH_VERSION = torch.__version__.split("+")[0]
warnings.filterwarnings("ignore")
logging.getLogger("torch").setLevel(logging.ERROR)
logging.getLogger("torch.onnx").setLevel(logging.ERROR)


# --------------------------------------------------------------------------- modules
class Interp(nn.Module):
    """y = F.interpolate(x, **kw)"""

    def __init__(self, **kw):
        super().__init__()
        self.kw = kw

    def forward(self, x):
        return F.interpolate(x, **self.kw)


class InterpLike(nn.Module):
    """y = F.interpolate(x, size=ref.shape[2:], ...): size taken from another tensor's shape."""

    def __init__(self, **kw):
        super().__init__()
        self.kw = kw

    def forward(self, x, ref):
        return F.interpolate(x, size=ref.shape[2:], **self.kw)


class UpsampleModule(nn.Module):
    def __init__(self, **kw):
        super().__init__()
        self.up = nn.Upsample(**kw)

    def forward(self, x):
        return self.up(x)


class ConvUp(nn.Module):
    """Conv (so there is weight data) followed by a bilinear x2 upsampling and a 1x1 conv."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(4, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 4, 1)

    def forward(self, x):
        y = torch.relu(self.conv1(x))
        y = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)
        return self.conv2(y)


# --------------------------------------------------------------------------- fixture table
def rnd(*shape, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g)


X = (1, 2, 5, 7)  # default NCHW input
C = {
    # key: (module factory, input shapes, source text)
    "bilinear_x2": (lambda: Interp(scale_factor=2, mode="bilinear", align_corners=False), {"x": X},
                    "F.interpolate(x, scale_factor=2, mode='bilinear', align_corners=False)"),
    "bilinear_ac_x2": (lambda: Interp(scale_factor=2, mode="bilinear", align_corners=True), {"x": X},
                       "F.interpolate(x, scale_factor=2, mode='bilinear', align_corners=True)"),
    "nearest_x2": (lambda: Interp(scale_factor=2, mode="nearest"), {"x": X},
                   "F.interpolate(x, scale_factor=2, mode='nearest')"),
    "nearest_x3": (lambda: Interp(scale_factor=3, mode="nearest"), {"x": X},
                   "F.interpolate(x, scale_factor=3, mode='nearest')"),
    "nearest_x1p5": (lambda: Interp(scale_factor=1.5, mode="nearest"), {"x": X},
                     "F.interpolate(x, scale_factor=1.5, mode='nearest')"),
    "nearest_x0p5": (lambda: Interp(scale_factor=0.5, mode="nearest"), {"x": (1, 2, 9, 11)},
                     "F.interpolate(x, scale_factor=0.5, mode='nearest')  # 9x11 -> 4x5"),
    "bicubic_x2": (lambda: Interp(scale_factor=2, mode="bicubic", align_corners=False), {"x": X},
                   "F.interpolate(x, scale_factor=2, mode='bicubic', align_corners=False)"),
    "bicubic_ac_x2": (lambda: Interp(scale_factor=2, mode="bicubic", align_corners=True), {"x": X},
                      "F.interpolate(x, scale_factor=2, mode='bicubic', align_corners=True)"),
    "bilinear_x3": (lambda: Interp(scale_factor=3, mode="bilinear", align_corners=False), {"x": X},
                    "F.interpolate(x, scale_factor=3, mode='bilinear', align_corners=False)"),
    "bilinear_x1p5": (lambda: Interp(scale_factor=1.5, mode="bilinear", align_corners=False), {"x": X},
                      "F.interpolate(x, scale_factor=1.5, mode='bilinear', align_corners=False)  # 5x7 -> 7x10"),
    "bilinear_x5over3": (lambda: Interp(scale_factor=5 / 3, mode="bilinear", align_corners=False), {"x": (1, 2, 3, 6)},
                         "F.interpolate(x, scale_factor=5/3, mode='bilinear', align_corners=False)  # 3x6 -> 5x10"),
    "bilinear_ac_x1p5": (lambda: Interp(scale_factor=1.5, mode="bilinear", align_corners=True), {"x": X},
                         "F.interpolate(x, scale_factor=1.5, mode='bilinear', align_corners=True)  # 5x7 -> 7x10"),
    "bilinear_x0p5": (lambda: Interp(scale_factor=0.5, mode="bilinear", align_corners=False), {"x": (1, 2, 9, 11)},
                      "F.interpolate(x, scale_factor=0.5, mode='bilinear', align_corners=False)  # 9x11 -> 4x5"),
    "bilinear_size8x12": (lambda: Interp(size=(8, 12), mode="bilinear", align_corners=False), {"x": X},
                          "F.interpolate(x, size=(8, 12), mode='bilinear', align_corners=False)  # 5x7 -> 8x12"),
    "bilinear_ac_size8x12": (lambda: Interp(size=(8, 12), mode="bilinear", align_corners=True), {"x": X},
                             "F.interpolate(x, size=(8, 12), mode='bilinear', align_corners=True)  # 5x7 -> 8x12"),
    "nearest_size8x12": (lambda: Interp(size=(8, 12), mode="nearest"), {"x": X},
                         "F.interpolate(x, size=(8, 12), mode='nearest')  # 5x7 -> 8x12"),
    "bicubic_size8x12": (lambda: Interp(size=(8, 12), mode="bicubic", align_corners=False), {"x": X},
                         "F.interpolate(x, size=(8, 12), mode='bicubic', align_corners=False)  # 5x7 -> 8x12"),
    "bilinear_size_like": (lambda: InterpLike(mode="bilinear", align_corners=False),
                           {"x": X, "ref": (1, 1, 8, 12)},
                           "F.interpolate(x, size=ref.shape[2:], mode='bilinear', align_corners=False)"),
    "nearest_size_like": (lambda: InterpLike(mode="nearest"), {"x": X, "ref": (1, 1, 10, 14)},
                          "F.interpolate(x, size=ref.shape[2:], mode='nearest')"),
    "bilinear_rsf_x1p5": (lambda: Interp(scale_factor=1.5, mode="bilinear", align_corners=False,
                                         recompute_scale_factor=True), {"x": X},
                          "F.interpolate(x, scale_factor=1.5, mode='bilinear', align_corners=False, "
                          "recompute_scale_factor=True)"),
    "bilinear_size1x1": (lambda: Interp(size=(1, 1), mode="bilinear", align_corners=False), {"x": X},
                         "F.interpolate(x, size=(1, 1), mode='bilinear', align_corners=False)"),
    "bilinear_ac_size1x1": (lambda: Interp(size=(1, 1), mode="bilinear", align_corners=True), {"x": X},
                            "F.interpolate(x, size=(1, 1), mode='bilinear', align_corners=True)"),
    "bicubic_size1x1": (lambda: Interp(size=(1, 1), mode="bicubic", align_corners=False), {"x": X},
                        "F.interpolate(x, size=(1, 1), mode='bicubic', align_corners=False)"),
    "linear1d_x2": (lambda: Interp(scale_factor=2, mode="linear", align_corners=False), {"x": (1, 2, 7)},
                    "F.interpolate(x, scale_factor=2, mode='linear', align_corners=False)  # 3-D input"),
    "linear1d_size11": (lambda: Interp(size=11, mode="linear", align_corners=False), {"x": (1, 2, 7)},
                        "F.interpolate(x, size=11, mode='linear', align_corners=False)  # 3-D input"),
    "trilinear_x2": (lambda: Interp(scale_factor=2, mode="trilinear", align_corners=False), {"x": (1, 1, 3, 4, 5)},
                     "F.interpolate(x, scale_factor=2, mode='trilinear', align_corners=False)  # 5-D input"),
    "nearest3d_x2": (lambda: Interp(scale_factor=2, mode="nearest"), {"x": (1, 1, 3, 4, 5)},
                     "F.interpolate(x, scale_factor=2, mode='nearest')  # 5-D input"),
    "upsample_module_bilinear_x2": (lambda: UpsampleModule(scale_factor=2, mode="bilinear"), {"x": X},
                                    "nn.Upsample(scale_factor=2, mode='bilinear')(x)  # align_corners default None"),
    "upsample_module_nearest_size": (lambda: UpsampleModule(size=(6, 8), mode="nearest"), {"x": X},
                                     "nn.Upsample(size=(6, 8), mode='nearest')(x)"),
    "nearest_exact_x2": (lambda: Interp(scale_factor=2, mode="nearest-exact"), {"x": X},
                         "F.interpolate(x, scale_factor=2, mode='nearest-exact')"),
    "nearest_exact_size8x12": (lambda: Interp(size=(8, 12), mode="nearest-exact"), {"x": X},
                               "F.interpolate(x, size=(8, 12), mode='nearest-exact')"),
    "bilinear_aa_x0p5": (lambda: Interp(scale_factor=0.5, mode="bilinear", antialias=True), {"x": (1, 2, 9, 11)},
                         "F.interpolate(x, scale_factor=0.5, mode='bilinear', align_corners=False, antialias=True)"),
    "bilinear_aa_size4x5": (lambda: Interp(size=(4, 5), mode="bilinear", antialias=True), {"x": (1, 2, 9, 11)},
                            "F.interpolate(x, size=(4, 5), mode='bilinear', align_corners=False, antialias=True)"),
    "bicubic_aa_x0p5": (lambda: Interp(scale_factor=0.5, mode="bicubic", antialias=True), {"x": (1, 2, 9, 11)},
                        "F.interpolate(x, scale_factor=0.5, mode='bicubic', align_corners=False, antialias=True)"),
    "bicubic_aa_size4x5": (lambda: Interp(size=(4, 5), mode="bicubic", antialias=True), {"x": (1, 2, 9, 11)},
                           "F.interpolate(x, size=(4, 5), mode='bicubic', align_corners=False, antialias=True)"),
    "conv_bilinear_x2_extdata": (ConvUp, {"x": (1, 4, 6, 8)},
                                 "conv1(3x3, 4->16) -> relu -> F.interpolate(scale_factor=2, mode='bilinear') -> "
                                 "conv2(1x1, 16->4)"),
}

# TorchScript: which cases per opset, and which get dynamic axes
# dynamic axis specs: "N" = batch only; "NHW" = batch + spatial of x; "like" = for the two-input case
TS_PLAN = {
    9: ["nearest_x2", "bilinear_x2", "nearest_size8x12", "bilinear_ac_x2", ("nearest_x2", "N")],
    10: ["nearest_x2", "bilinear_x2", "bilinear_x1p5", "nearest_size8x12", "bilinear_size8x12",
         "bilinear_ac_x2", "bicubic_x2", ("nearest_x2", "N")],
    11: ["bilinear_x2", "bilinear_ac_x2", "nearest_x2", "nearest_x3", "bicubic_x2", "bilinear_size8x12",
         ("nearest_x2", "N"), ("bilinear_size_like", "like")],
    13: ["bilinear_x2", "nearest_x2", "bicubic_ac_x2", "bilinear_x1p5", "bilinear_size1x1",
         ("bilinear_x2", "N"), ("bilinear_size_like", "like")],
    17: ["bilinear_x2", "bilinear_ac_x2", "nearest_x2", "nearest_x3", "nearest_x1p5", "nearest_x0p5",
         "bicubic_x2", "bicubic_ac_x2", "bilinear_x3", "bilinear_x1p5", "bilinear_x5over3", "bilinear_ac_x1p5",
         "bilinear_x0p5",
         "bilinear_size8x12", "bilinear_ac_size8x12", "nearest_size8x12", "bicubic_size8x12",
         ("bilinear_size_like", "like"), ("nearest_size_like", "like"), ("bilinear_rsf_x1p5", "NHW"),
         "bilinear_size1x1", "bilinear_ac_size1x1", "bicubic_size1x1", "linear1d_x2", "linear1d_size11",
         "trilinear_x2", "nearest3d_x2", "upsample_module_bilinear_x2", "upsample_module_nearest_size",
         ("bilinear_x2", "N"), "nearest_exact_x2", "bilinear_aa_x0p5", "bicubic_aa_size4x5"],
}

# dynamo: default opset (whatever torch 2.13 picks), plus one at an explicit opset 18
DYNAMO_PLAN = [
    "bilinear_x2", "bilinear_ac_x2", "nearest_x2", "nearest_x3", "nearest_x1p5", "nearest_x0p5", "bicubic_x2",
    "bicubic_ac_x2", "bilinear_x1p5", "bilinear_x5over3", "bilinear_ac_x1p5", "bilinear_x0p5", "bilinear_size8x12",
    "nearest_size8x12", "bicubic_size8x12", ("bilinear_size_like", "like"), ("bilinear_rsf_x1p5", "NHW"),
    "bilinear_rsf_x1p5", "bilinear_size1x1", "bicubic_size1x1", "linear1d_x2", "linear1d_size11", "trilinear_x2",
    "nearest3d_x2",
    "upsample_module_bilinear_x2", ("bilinear_x2", "N"), "nearest_exact_x2", "nearest_exact_size8x12",
    "bilinear_aa_x0p5", "bilinear_aa_size4x5", "bicubic_aa_x0p5", "bicubic_aa_size4x5",
    ("conv_bilinear_x2_extdata", "ext"), ("bilinear_x2", "opset18"),
]

# Keep a dynamo fixture only if the exporter emitted a Resize, except for these (asked for even without one)
KEEP_WITHOUT_RESIZE = {"nearest_exact_x2", "nearest_exact_size8x12"}

NOTES = {
    "bilinear_x2@ts9": "Upsample-9 has no coordinate mode (asymmetric in ORT); eager align_corners=False is half_pixel, "
                       "so values differ by design of the old opset (exporter warns)",
    "bilinear_x2@ts10": "Resize-10 has no coordinate mode (asymmetric in ORT); eager is half_pixel -> mismatch expected",
    "bilinear_x1p5@ts10": "Resize-10 (asymmetric in ORT) vs eager half_pixel -> mismatch expected",
    "bilinear_size8x12@ts10": "size given, exporter converts it to float scales out/in for Resize-10; asymmetric "
                              "vs eager half_pixel -> mismatch expected",
    "bilinear_rsf_x1p5": "recompute_scale_factor=True: output size floor(H*1.5) then sizes (grid uses out/in); "
                         "with dynamic H/W the graph computes it (TorchScript: Shape/Gather/Cast/Mul/Cast/Floor; "
                         "dynamo: Shape/Squeeze/Cast/Mul/Cast), with static shapes it is folded to constant sizes",
    "bilinear_x5over3": "float32 scales 5/3 (rounds below 5/3): see the size-trap note; eager grid uses 1/(5/3) in "
                        "double",
    "bicubic_size1x1": "output size 1 (see facts sheet: pytorch_half_pixel vs half_pixel matters for cubic)",
    "bilinear_aa_x0p5": "KNOWN DEVIATION: dynamo exports antialias with scale_factor as sizes (4x5), so ORT uses "
                        "s=4/9, 5/11 while eager uses the given 0.5 -> outputs differ; the size=(4,5) variant matches",
    "bicubic_aa_x0p5": "KNOWN DEVIATION: dynamo exports antialias with scale_factor as sizes (4x5), so ORT uses "
                       "s=4/9, 5/11 while eager uses the given 0.5 -> outputs differ; the size=(4,5) variant matches",
    "nearest_exact_x2": "torch nearest-exact",
    "nearest_exact_size8x12": "torch nearest-exact",
    "conv_bilinear_x2_extdata": "weights stored as external data (<file>.data)",
}


def case_inputs(case_key: str, shapes: dict[str, tuple]) -> dict[str, torch.Tensor]:
    seed = sum(map(ord, case_key)) % 10_000
    return {name: rnd(*shape, seed=seed + i) for i, (name, shape) in enumerate(shapes.items())}


def ts_dynamic_axes(spec, in_names):
    if spec is None:
        return None
    if spec == "N":
        return {"x": {0: "N"}, "y": {0: "N"}}
    if spec == "NHW":
        return {"x": {0: "N", 2: "H", 3: "W"}, "y": {0: "N", 2: "H2", 3: "W2"}}
    if spec == "like":
        return {"x": {0: "N"}, "ref": {2: "H", 3: "W"}, "y": {0: "N", 2: "H", 3: "W"}}
    raise ValueError(spec)


def dynamo_dynamic_shapes(spec, in_names):
    if spec == "N":
        return {"x": {0: Dim("N", min=1, max=64)}}
    if spec == "NHW":
        return {"x": {0: Dim("N", min=1, max=64), 2: Dim("H", min=2, max=512), 3: Dim("W", min=2, max=512)}}
    if spec == "like":
        return {"x": {0: Dim("N", min=1, max=64)}, "ref": {2: Dim("H", min=2, max=512), 3: Dim("W", min=2, max=512)}}
    return None


def short_err(exc: Exception) -> str:
    msg = " ".join(str(exc).split())
    for marker in ("Exporting the operator", "Unsupported:", "ONNX export of"):
        i = msg.find(marker)
        if i >= 0:
            msg = msg[i:]
            break
    msg = msg.split(". Please feel free")[0].split(" [Caused by")[0]
    return f"{type(exc).__name__}: {msg[:200]}"



def remove_outputs(path: Path):
    for p in (path, path.with_name(path.name + ".data")):
        if p.exists():
            p.unlink()


def main():
    entries: list[dict] = []
    produced: set[str] = set()
    failures: dict[str, list[str]] = {}  # case key -> notes about other exporters
    skipped: list[str] = []

    def record_failure(case, what):
        failures.setdefault(case, []).append(what)
        skipped.append(f"{case} [{what}]")
        print(f"  SKIP {case}: {what}")

    pending: list[tuple] = []  # (path, inputs, expected, exporter, source, notes_key, case)

    # ---------------- TorchScript
    for opset, cases in TS_PLAN.items():
        print(f"TorchScript exporter, opset {opset}")
        for item in cases:
            case, dyn = (item, None) if isinstance(item, str) else item
            factory, shapes, source = C[case]
            torch.manual_seed(0)
            model = factory().eval()
            inputs = case_inputs(case, shapes)
            name = f"torch_ts{opset}_{case}" + ({"N": "_dynbatch", "NHW": "_dynhw", "like": "_dyn"}.get(dyn, ""))
            path = HERE / f"{name}.onnx"
            in_names = list(shapes)
            try:
                with fc.quiet():
                    torch.onnx.export(model, tuple(inputs.values()), str(path), dynamo=False, opset_version=opset,
                                      input_names=in_names, output_names=["y"],
                                      dynamic_axes=ts_dynamic_axes(dyn, in_names))
            except Exception as exc:  # noqa: BLE001
                remove_outputs(path)
                record_failure(case, f"TorchScript opset {opset}: {short_err(exc)}")
                continue
            with torch.no_grad():
                expected = {"y": model(*inputs.values()).numpy()}
            notes = [NOTES.get(f"{case}@ts{opset}", NOTES.get(case, ""))]
            if dyn:
                notes.append(f"dynamic axes: {ts_dynamic_axes(dyn, in_names)}")
            pending.append((path, inputs, expected, f"torch.onnx TorchScript {TORCH_VERSION} opset {opset}",
                            source, "; ".join(n for n in notes if n), case))

    # ---------------- dynamo
    print(f"dynamo exporter (torch {TORCH_VERSION}, onnxscript {onnxscript.__version__})")
    for item in DYNAMO_PLAN:
        case, dyn = (item, None) if isinstance(item, str) else item
        factory, shapes, source = C[case]
        torch.manual_seed(0)
        model = factory().eval()
        inputs = case_inputs(case, shapes)
        suffix = {"N": "_dynbatch", "NHW": "_dynhw", "like": "_dyn", "opset18": "_opset18"}.get(dyn, "")
        name = f"torch_dynamo_{case}{suffix}"
        path = HERE / f"{name}.onnx"
        kwargs = dict(dynamo=True, verbose=False, input_names=list(shapes), output_names=["y"])
        if dyn == "opset18":
            kwargs["opset_version"] = 18
        ds = dynamo_dynamic_shapes(dyn, list(shapes))
        if ds is not None:
            kwargs["dynamic_shapes"] = ds
        remove_outputs(path)
        try:
            with fc.quiet():
                prog = torch.onnx.export(model, tuple(inputs.values()), **kwargs)
        except Exception as exc:  # noqa: BLE001
            record_failure(case, f"dynamo: {short_err(exc)}")
            continue
        fc.scrub_ir_model(prog.model)  # machine paths in the recorded stack traces only
        prog.save(str(path), external_data=(dyn == "ext"))
        m = onnx.load(str(path), load_external_data=False)
        n_resize = len(fc.resize_nodes(m))
        ops = sorted({n.op_type for n in fc.iter_nodes(m.graph)})
        if n_resize == 0 and case not in KEEP_WITHOUT_RESIZE:
            remove_outputs(path)
            record_failure(case, f"dynamo exports it without Resize (ops: {', '.join(ops)}); fixture dropped")
            continue
        with torch.no_grad():
            expected = {"y": model(*inputs.values()).numpy()}
        notes = [NOTES.get(case, ""), "absolute file paths in the recorded stack-trace metadata replaced by "
                 "relative ones (graph untouched)"]
        if n_resize == 0:
            notes.append(f"dynamo emits NO Resize for this (decomposed; ops: {', '.join(ops)})")
        if ds is not None:
            notes.append(f"dynamic_shapes: {ds}")
        pending.append((path, inputs, expected, f"torch.onnx dynamo {TORCH_VERSION} (onnxscript "
                        f"{onnxscript.__version__})", source, "; ".join(n for n in notes if n), case))

    # ---------------- finalize (after all exports so failures of one exporter can be noted on the other's files)
    print("checking / running in onnxruntime")
    for path, inputs, expected, exporter, source, notes, case in pending:
        extra = [f"not exportable elsewhere: {w}" for w in failures.get(case, []) if "fixture dropped" not in w]
        all_notes = "; ".join(n for n in [notes] + extra if n)
        feeds = {k: v.numpy() for k, v in inputs.items()}
        entry = fc.finalize(path, inputs=feeds, expected=expected, exporter=exporter, source=source,
                            script=SCRIPT, notes=all_notes, expected_from="torch eager (CPU)")
        entries.append(entry)
        produced.update([path.name, path.with_suffix("").name + ".io.npz", *entry["data_files"]])

    fc.remove_stale(("torch_",), produced)
    fc.write_manifest(SCRIPT, entries)
    print(f"{len(entries)} fixtures written; not produced:")
    for s in skipped:
        print("  -", s)


if __name__ == "__main__":
    main()
