"""ncnn through pnnx's ONNX frontend: `pnnx model.onnx inputshape=[...] fp16=0` (fp16=0 keeps constants in
float32; pnnx's default rounds them to float16), then the ncnn Python binding on the CPU with fp16/bf16
storage and arithmetic off. The emitted ncnn layer types are recorded in the result."""
import importlib.util
import os
import shutil
import subprocess

import _common  # noqa: E402 - from this directory (sys.path[0]), which then leaves the path:
_common.leave_runner_directory()  # a runner is named like its runtime's package
import ncnn  # noqa: E402
import numpy as np  # noqa: E402
from _common import Rejected, first_error_line, main, ordered_inputs, stage  # noqa: E402

# the converter executable inside the pnnx package (its console script would start Python and import torch first)
PNNX = os.path.join(importlib.util.find_spec("pnnx").submodule_search_locations[0], "pnnx")


def _layers(param: str) -> list[str]:
    with open(param) as f:
        lines = f.read().splitlines()[2:]
    return [ln.split()[0] + (" " + " ".join(t for t in ln.split()[6:] if t.split("=")[0] in ("0", "6", "3", "4", "1", "2")) if ln.split()[0] == "Interp" else "")
            for ln in lines if ln.strip()]


def run_one(model_path, inputs, work, job):
    for f in os.listdir(work):
        if f != "log.txt":
            p = os.path.join(work, f)
            shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)
    src = os.path.join(work, "m.onnx")
    shutil.copyfile(model_path, src)
    xs = ordered_inputs(inputs, job)
    shape = ",".join("[" + ",".join(str(d) for d in x.shape) + "]" for x in xs)
    param, binf = os.path.join(work, "m.ncnn.param"), os.path.join(work, "m.ncnn.bin")
    with stage("convert"):
        p = subprocess.run([PNNX, src, f"inputshape={shape}", "fp16=0", f"ncnnparam={param}", f"ncnnbin={binf}",
                            f"ncnnpy={os.path.join(work, 'm_ncnn.py')}", f"pnnxparam={os.path.join(work, 'm.pnnx.param')}",
                            f"pnnxbin={os.path.join(work, 'm.pnnx.bin')}", f"pnnxpy={os.path.join(work, 'm_pnnx.py')}",
                            f"pnnxonnx={os.path.join(work, 'm.pnnx.onnx')}"],
                           cwd=work, capture_output=True, text=True, timeout=90)
        with open(os.path.join(work, "pnnx.log"), "w") as f:
            f.write(p.stdout + p.stderr)
        if p.returncode != 0 or not os.path.exists(param):
            raise Rejected("convert", f"pnnx exit {p.returncode}: " + (first_error_line(os.path.join(work, "pnnx.log")) or "no ncnn model written"))
    job["info"]["layers"] = _layers(param)
    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.use_fp16_packed = False
    net.opt.use_fp16_storage = False
    net.opt.use_fp16_arithmetic = False
    net.opt.use_bf16_storage = False
    net.opt.num_threads = 1
    with stage("load"):
        if net.load_param(param) != 0:
            raise Rejected("load", "ncnn load_param failed")
        if net.load_model(binf) != 0:
            raise Rejected("load", "ncnn load_model failed")
    with stage("run"):
        ex = net.create_extractor()
        for i, x in enumerate(xs):  # pnnx names the inputs in0, in1, ... and the outputs out0, ... in graph order
            ex.input(f"in{i}", ncnn.Mat(np.ascontiguousarray(x[0])))  # ncnn has no batch axis
        result = {}
        for i, name in enumerate(job.get("output_names") or ["Y"]):
            ret, out = ex.extract(f"out{i}")
            if ret != 0:
                raise Rejected("run", f"ncnn extract out{i} returned {ret}")
            result[name] = np.array(out)[None]
    return result


if __name__ == "__main__":
    main(run_one)
