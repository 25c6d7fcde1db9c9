"""OpenVINO: reads the ONNX file directly (its ONNX frontend), CPU plugin, f32 inference precision."""
import os
import sys

# this file's directory must not shadow the runtime's package (a runner is named like it)
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != HERE]
import importlib.util  # noqa: E402

_spec = importlib.util.spec_from_file_location("_common", os.path.join(HERE, "_common.py"))
sys.modules["_common"] = _common = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_common)
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
