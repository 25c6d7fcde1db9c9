"""Generate fixtures of nearest upsampling that PyTorch's dynamo exporter writes without a Resize node.

Run in an environment with torch==2.13.0 (CPU), onnx, onnxruntime, onnxscript and numpy:

    python models/make_recognize_fixtures.py

Writes into the folder this script lives in: ``recog_*.onnx``, ``recog_*.io.npz`` and this script's entries
of ``manifest.json``. Deterministic: fixed seeds, fixed shapes. Each model is one upsampling idiom
(``F.interpolate(mode="nearest-exact")`` exported without the exporter's optimizer, so its index arithmetic
stays in the graph; ``repeat_interleave``; indexing with an index tensor; ``pixel_shuffle`` of a channel-
repeated tensor) that fix-resize recognises as a Resize, plus one look-alike that is not an upsampling
(``pixel_shuffle`` of ``x.repeat``, which mixes channels) and must be left as it is.
"""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.dont_write_bytecode = True  # keep the models/ folder free of __pycache__

import onnxscript  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.export import Dim  # noqa: E402

import _fixture_common as fc  # noqa: E402

SCRIPT = "make_recognize_fixtures.py"
TORCH_VERSION = torch.__version__.split("+")[0]
warnings.filterwarnings("ignore")
logging.getLogger("torch").setLevel(logging.ERROR)
logging.getLogger("torch.onnx").setLevel(logging.ERROR)


class Lambda(nn.Module):
    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


# name: (function, source text, export options)
CASES = {
    "nearest_exact_x2_dynbatch_noopt": (
        lambda x: F.interpolate(x, scale_factor=2, mode="nearest-exact"),
        'F.interpolate(x, scale_factor=2, mode="nearest-exact"), dynamic batch, optimize=False (index arithmetic + GatherND)',
        {"optimize": False, "dynamic_shapes": {"x": {0: Dim("N", min=1, max=64)}}},
    ),
    "repeat_interleave_x2": (
        lambda x: x.repeat_interleave(2, dim=-1).repeat_interleave(2, dim=-2),
        "x.repeat_interleave(2, dim=-1).repeat_interleave(2, dim=-2) (Unsqueeze/Expand/Reshape)",
        {},
    ),
    "index_gather_x2": (
        lambda x: x[:, :, torch.arange(x.shape[2] * 2) // 2][:, :, :, torch.arange(x.shape[3] * 2) // 2],
        "x[:, :, arange(2H) // 2][:, :, :, arange(2W) // 2] (Transpose/GatherND)",
        {},
    ),
    "pixel_shuffle_interleave_x2": (
        lambda x: F.pixel_shuffle(x.repeat_interleave(4, dim=1), 2),
        "F.pixel_shuffle(x.repeat_interleave(4, dim=1), 2): nearest x2 (Unsqueeze/Expand/Reshape/DepthToSpace)",
        {},
    ),
    "pixel_shuffle_repeat_not_upsampling": (
        lambda x: F.pixel_shuffle(x.repeat(1, 4, 1, 1), 2),
        "F.pixel_shuffle(x.repeat(1, 4, 1, 1), 2): mixes channels, NOT an upsampling (Expand/Tile/DepthToSpace)",
        {},
    ),
}


def main() -> None:
    entries: list[dict] = []
    produced: set[str] = set()
    for name, (fn, source, options) in CASES.items():
        torch.manual_seed(0)
        x = torch.randn(1, 2, 5, 7)
        path = HERE / f"recog_dynamo_{name}.onnx"
        with fc.quiet():
            prog = torch.onnx.export(Lambda(fn).eval(), (x,), dynamo=True, verbose=False, input_names=["x"], output_names=["y"], **options)
        fc.scrub_ir_model(prog.model)  # machine paths in the recorded stack traces only
        prog.save(str(path))
        with torch.no_grad():
            expected = {"y": fn(x).numpy()}
        notes = "absolute file paths in the recorded stack-trace metadata replaced by relative ones (graph untouched)"
        entry = fc.finalize(path, inputs={"x": x.numpy()}, expected=expected, script=SCRIPT, source=source, notes=notes,
                            exporter=f"torch.onnx dynamo {TORCH_VERSION} (onnxscript {onnxscript.__version__})",
                            expected_from="torch eager (CPU)")
        entries.append(entry)
        produced.update([path.name, path.with_suffix("").name + ".io.npz"])
    fc.remove_stale(("recog_",), produced)
    fc.write_manifest(SCRIPT, entries)


if __name__ == "__main__":
    main()
