"""onnx2torch: `onnx2torch.convert(model)` to a torch.fx GraphModule, run in float32 on the CPU. The converter's
warnings (it announces some semantic substitutions) are recorded in the result."""
import sys
import warnings

import _common  # noqa: E402 - from this directory (sys.path[0]), which then leaves the path:
_common.leave_runner_directory()  # a runner is named like its runtime's package
import types  # noqa: E402

import torch  # noqa: E402
from _common import main, ordered_inputs, stage  # noqa: E402

# onnx2torch imports torchvision for its NonMaxSuppression / RoiAlign converters only. The torchvision wheel that
# matches torch 2.13 on the package index is a CUDA build that cannot load next to the CPU torch, so the
# environment has none and these two converters get a stand-in (no grid model uses them).
if "torchvision" not in sys.modules:
    try:
        import torchvision  # noqa: F401
    except Exception:  # noqa: BLE001
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        tv = types.ModuleType("torchvision")
        tv.ops = types.ModuleType("torchvision.ops")

        def _missing(*a, **k):
            raise NotImplementedError("torchvision is not installed in this environment")

        tv.ops.nms = tv.ops.box_convert = tv.ops.roi_align = _missing
        sys.modules["torchvision"], sys.modules["torchvision.ops"] = tv, tv.ops

from onnx2torch import convert  # noqa: E402

torch.set_num_threads(1)


def run_one(model_path, inputs, work, job):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with stage("convert"):
            module = convert(model_path)
        with stage("run"), torch.no_grad():
            y = module(*[torch.from_numpy(x) for x in ordered_inputs(inputs, job)])
    notes = sorted({str(w.message).splitlines()[0][:200] for w in caught if "onnx2torch" in (w.filename or "") or "interpolat" in str(w.message).lower()})
    if notes:
        job["info"]["warnings"] = notes
    ys = list(y) if isinstance(y, (list, tuple)) else [y]
    return {name: t.numpy() for name, t in zip(job.get("output_names") or ["Y"], ys)}


if __name__ == "__main__":
    main(run_one)
