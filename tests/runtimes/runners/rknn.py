"""RKNN (rknn-toolkit2) x86 simulator: config(target_platform='rk3588'), load_onnx, build(do_quantization=False),
init_runtime() with no target (= the simulator), inference with the model's own layout. The simulator computes
non-quantized models in fp16, so the driver compares with a looser tolerance. Its converter can segfault
(process exit -11): the driver records that as crashed and restarts the runner."""

import _common  # noqa: E402 - from this directory (sys.path[0]), which then leaves the path:
_common.leave_runner_directory()  # a runner is named like its runtime's package
from _common import Rejected, main, ordered_inputs, stage  # noqa: E402
from rknn.api import RKNN  # noqa: E402


def _dynamic(model_path: str) -> bool:
    """Whether a graph input has a dimension that is not a fixed size."""
    import onnx

    model = onnx.load(model_path, load_external_data=False)
    initializers = {t.name for t in model.graph.initializer}
    return any(not d.HasField("dim_value") or d.dim_value <= 0
               for vi in model.graph.input if vi.name not in initializers for d in vi.type.tensor_type.shape.dim)


def run_one(model_path, inputs, work, job):
    rknn = RKNN(verbose=False)
    try:
        with stage("config"):
            if rknn.config(target_platform="rk3588") != 0:
                raise Rejected("config", "config() failed")
        with stage("load"):
            # a dynamic input (a symbolic batch) is fixed to the input given, as RKNN's own message asks
            names = job.get("input_names") or ["X"]
            sizes = {"inputs": names, "input_size_list": [list(inputs[n].shape) for n in names]} if _dynamic(model_path) else {}
            if rknn.load_onnx(model=model_path, **sizes) != 0:
                raise Rejected("load", "load_onnx() failed")
        with stage("build"):
            if rknn.build(do_quantization=False) != 0:
                raise Rejected("build", "build() failed")
        with stage("init_runtime"):
            if rknn.init_runtime() != 0:
                raise Rejected("init_runtime", "init_runtime() failed")
        with stage("run"):
            outs = rknn.inference(inputs=ordered_inputs(inputs, job), data_format="nchw")
        if outs is None:
            raise Rejected("run", "inference() returned nothing")
        return dict(zip(job.get("output_names") or ["Y"], outs))
    finally:
        rknn.release()


if __name__ == "__main__":
    main(run_one)
