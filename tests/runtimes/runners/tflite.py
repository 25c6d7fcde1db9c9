"""TFLite via onnx2tf: `onnx2tf.convert(...)` writes <stem>_float32.tflite (NHWC I/O for 4-D tensors), run with
the LiteRT Interpreter; the input is transposed to the .tflite's layout and the output back to the ONNX one."""
import os
import shutil
import sys

# this file's directory must not shadow the runtime's package (a runner is named like it)
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != HERE]
import importlib.util  # noqa: E402

_spec = importlib.util.spec_from_file_location("_common", os.path.join(HERE, "_common.py"))
sys.modules["_common"] = _common = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_common)
from _common import Rejected, main, stage, to_layout  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402
import onnx2tf  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402


def run_one(model_path, inputs, work, job):
    out_dir = os.path.join(work, "tf")
    shutil.rmtree(out_dir, ignore_errors=True)
    src = os.path.join(work, "m.onnx")
    shutil.copyfile(model_path, src)
    with stage("convert"):
        onnx2tf.convert(input_onnx_file_path=src, output_folder_path=out_dir, non_verbose=True)
    tfl = os.path.join(out_dir, "m_float32.tflite")
    if not os.path.exists(tfl):
        raise Rejected("convert", "onnx2tf wrote no float32 .tflite")
    with stage("load"):
        interp = Interpreter(model_path=tfl, num_threads=1)
        interp.allocate_tensors()
    with stage("run"):
        (inp,) = interp.get_input_details()
        x = inputs["X"]
        want = tuple(inp["shape"])
        if x.shape != want and x.ndim == 4 and x.transpose(0, 2, 3, 1).shape == want:
            x = x.transpose(0, 2, 3, 1)
        interp.set_tensor(inp["index"], np.ascontiguousarray(x, dtype=np.float32))
        interp.invoke()
        out = interp.get_output_details()[0]
        y = interp.get_tensor(out["index"])
    job["info"]["tflite_io"] = [[int(d) for d in want], [int(d) for d in y.shape]]
    return {"Y": to_layout(y, job["out_shape"])}


if __name__ == "__main__":
    main(run_one)
