"""MNN: the converter's module (`_tools.mnnconvert`, what the `mnnconvert` script wraps, called directly:
the wrapper would `pip install -U aliyun-log-python-sdk` and send telemetry), then `MNN.nn.load_module_from_file`
on the CPU with high precision."""
import os

import _common  # noqa: E402 - from this directory (sys.path[0]), which then leaves the path:
_common.leave_runner_directory()  # a runner is named like its runtime's package
import _tools  # noqa: E402  (MNN's converter extension)
import MNN  # noqa: E402
import numpy as np  # noqa: E402
from _common import Rejected, main, stage  # noqa: E402

F = MNN.expr


def run_one(model_path, inputs, work, job):
    out = os.path.join(work, "model.mnn")
    if os.path.exists(out):
        os.remove(out)
    with stage("convert"):
        _tools.mnnconvert(["mnnconvert", "-f", "ONNX", "--modelFile", model_path, "--MNNModel", out, "--bizCode", "MNN"])
    if not os.path.exists(out) or os.path.getsize(out) == 0:
        raise Rejected("convert", "mnnconvert wrote no model")
    names = job["input_names"]
    out_names = job["output_names"]
    with stage("load"):
        config = {"backend": "CPU", "precision": "high", "numThread": 1}
        rt = MNN.nn.create_runtime_manager((config,))
        module = MNN.nn.load_module_from_file(out, names, out_names, runtime_manager=rt)
    with stage("run"):
        vars_in = []
        for n in names:
            x = np.ascontiguousarray(inputs[n], dtype=np.float32)
            v = F.const(x.flatten().tolist(), list(x.shape), F.NCHW, F.float)
            vars_in.append(v)
        outs = module.forward(vars_in)
        if not isinstance(outs, (list, tuple)):
            outs = [outs]
        if len(outs) < len(out_names):  # MNN prints "code=N in onForward" and returns nothing
            raise Rejected("run", "forward returned no output")
        result = {}
        for n, v in zip(out_names, outs):
            if v.data_format == F.NC4HW4:
                v = F.convert(v, F.NCHW)
            result[n] = np.array(v.read(), dtype=np.float32).reshape(v.shape)
    return result


if __name__ == "__main__":
    main(run_one, fresh_after_error=True)  # after a failed forward MNN's next model can abort
