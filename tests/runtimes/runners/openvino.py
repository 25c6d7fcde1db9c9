"""OpenVINO: reads the ONNX file directly (its ONNX frontend), CPU plugin, f32 inference precision."""

import _common  # noqa: E402 - from this directory (sys.path[0]), which then leaves the path:
_common.leave_runner_directory()  # a runner is named like its runtime's package
import openvino as ov  # noqa: E402
from _common import main, stage  # noqa: E402

CORE = ov.Core()


def run_one(model_path, inputs, work, job):
    with stage("load"):
        model = CORE.read_model(model_path)
    with stage("compile"):
        compiled = CORE.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    with stage("run"):
        result = compiled(inputs)
    named = {}
    for out in compiled.outputs:
        names = out.get_names()
        name = next((n for n in job.get("output_names") or [] if n in names), out.get_any_name())
        named[name] = result[out]
    return named


if __name__ == "__main__":
    main(run_one)
