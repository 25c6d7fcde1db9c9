"""tract: its ONNX loader with the input facts set to the inputs given (a dynamic batch made concrete, as a tract
user does), typed model (declutter + optimisation by into_runnable), run on the CPU."""

import _common  # noqa: E402 - from this directory (sys.path[0]), which then leaves the path:
_common.leave_runner_directory()  # a runner is named like its runtime's package
import tract  # noqa: E402
from _common import main, stage  # noqa: E402

ONNX = tract.onnx()
_TYPES = {"float32": "f32", "float16": "f16", "int64": "i64", "int32": "i32", "bool": "bool"}


def run_one(model_path, inputs, work, job):
    with stage("load"):
        inference_model = ONNX.load(model_path)
        names = [inference_model.output_name(i) for i in range(inference_model.output_count())]
        order = [inference_model.input_name(i) for i in range(inference_model.input_count())]
        for i, name in enumerate(order):  # the input's concrete shape, as a tract user sets it (a dynamic batch)
            x = inputs[name]
            inference_model.set_input_fact(i, ",".join(map(str, x.shape)) + "," + _TYPES[x.dtype.name])
        model = inference_model.into_model()
        runnable = model.into_runnable()
    with stage("run"):
        outs = runnable.run([inputs[n] for n in order])
    return {n: o.to_numpy() for n, o in zip(names, outs)}


if __name__ == "__main__":
    main(run_one)
