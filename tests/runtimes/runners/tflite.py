"""TFLite via onnx2tf: `onnx2tf.convert(...)` writes <stem>_float32.tflite (NHWC I/O for 4-D tensors), run with
the LiteRT Interpreter; the inputs are transposed to the .tflite's layout and the outputs back to the ONNX one
(inputs and outputs matched by name: onnx2tf keeps the ONNX names, their order can change).

When every input is a 3-channel image, onnx2tf loads a sample-image file for its own check of the conversion from
the working directory, else downloads it from GitHub: the runner writes a seeded random one there first, so
converting needs no network (the file only feeds onnx2tf's check, not the model)."""
import os
import shutil

import _common  # noqa: E402 - from this directory (sys.path[0]), which then leaves the path:
_common.leave_runner_directory()  # a runner is named like its runtime's package
from _common import Rejected, main, output_shape, stage, to_layout  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402
import onnx2tf  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402

SAMPLE = "calibration_image_sample_data_20x128x128x3_float32.npy"  # onnx2tf.utils.common_functions.download_test_image_data


def run_one(model_path, inputs, work, job):
    out_dir = os.path.join(work, "tf")
    shutil.rmtree(out_dir, ignore_errors=True)
    src = os.path.join(work, "m.onnx")
    shutil.copyfile(model_path, src)
    os.chdir(os.path.dirname(os.path.abspath(work)))  # one sample file for every job of the batch
    if not os.path.exists(SAMPLE):
        np.save(SAMPLE, np.random.default_rng(0).random((20, 128, 128, 3), dtype=np.float32))
    with stage("convert"):
        onnx2tf.convert(input_onnx_file_path=src, output_folder_path=out_dir, non_verbose=True)
    tfl = os.path.join(out_dir, "m_float32.tflite")
    if not os.path.exists(tfl):
        raise Rejected("convert", "onnx2tf wrote no float32 .tflite")
    with stage("load"):
        interp = Interpreter(model_path=tfl, num_threads=1)
        interp.allocate_tensors()
    names = job.get("input_names") or ["X"]
    out_names = job.get("output_names") or ["Y"]
    with stage("run"):
        sigs = interp.get_signature_list()
        # the signature keeps the ONNX names (the output tensors are PartitionedCall:N, not always in graph order)
        runner = interp.get_signature_runner() if len(sigs) == 1 else None
        if runner and not set(names) <= set(runner.get_input_details()):
            runner = None  # names the signature spells otherwise: by position
        in_details = runner.get_input_details() if runner else dict(zip(names, interp.get_input_details()))
        feeds = {}
        for name in names:
            inp = in_details[name]
            x = inputs[name]
            want = tuple(inp["shape"])
            if x.shape != want and x.ndim == 4 and x.transpose(0, 2, 3, 1).shape == want:
                x = x.transpose(0, 2, 3, 1)
            feeds[name] = np.ascontiguousarray(x, dtype=inp["dtype"])
        if runner:
            outs = runner(**feeds)
            if not set(out_names) <= set(outs) and len(outs) == len(out_names):
                outs = dict(zip(out_names, [outs[n] for n in sigs["serving_default" if "serving_default" in sigs else next(iter(sigs))]["outputs"]]))
        else:
            for name, x in feeds.items():
                interp.set_tensor(in_details[name]["index"], x)
            interp.invoke()
            outs = {n: interp.get_tensor(d["index"]) for n, d in zip(out_names, interp.get_output_details())}
        result = {}
        for i, name in enumerate(out_names):
            if name not in outs:
                raise Rejected("run", f"no output named {name} in the .tflite ({sorted(outs)})")
            y = outs[name]
            result[name] = to_layout(y, output_shape(job, name, i) or y.shape)
    job["info"]["tflite_io"] = [[int(d) for d in want], [int(d) for d in y.shape]]
    return result


if __name__ == "__main__":
    main(run_one)
