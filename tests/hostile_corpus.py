"""Generator of hostile and broken inputs for the CLI (see tests/test_hostile.py).

    python tests/hostile_corpus.py OUT_DIR    # writes the corpus and prints one line per case

Each case is a file (or a set of files) plus the command-line arguments, the expected exit code and a
fragment the one-line error must contain. Files are generated, not committed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper
from onnx import helper as oh

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.resize_cases import build_resize_model  # noqa: E402


@dataclass
class HostileCase:
    name: str
    model: str  # file name inside the corpus directory
    args: list[str]  # extra arguments after `fix-resize MODEL`
    exit_code: int
    message: str  # fragment of the one-line error (empty: success expected)
    check_exit: int | None = None  # expected `rewriter check` exit, when it differs from fix-resize's
    setup: Callable[[Path], None] | None = field(default=None, repr=False)


def _save(model: onnx.ModelProto, path: Path) -> None:
    onnx.save(model, str(path))


def _with_conv_external(directory: Path, name: str, location: str, create_data: bool = True) -> None:
    w = numpy_helper.from_array(np.ones((2, 2, 1, 1), dtype=np.float32), "w")
    graph = oh.make_graph(
        [oh.make_node("Conv", ["x", "w"], ["c"]), oh.make_node("Resize", ["c", "", "s"], ["y"], name="up", mode="nearest")],
        "g",
        [oh.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
        [oh.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [w, oh.make_tensor("s", TensorProto.FLOAT, [4], [1, 1, 2, 2])],
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)])
    model.ir_version = 8
    tensor = model.graph.initializer[0]
    raw = tensor.raw_data or np.ones(4, dtype=np.float32).tobytes()
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(len(raw)))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    if create_data and not location.startswith(("/", "..")):
        (directory / location).write_bytes(raw)
    _save(model, directory / name)


def _custom_op_model(path: Path) -> None:
    graph = oh.make_graph(
        [
            oh.make_node("Resize", ["x", "", "", "sizes"], ["r"], name="up", mode="linear", coordinate_transformation_mode="pytorch_half_pixel"),
            oh.make_node("MyOp", ["r"], ["y"], name="custom", domain="com.example"),
        ],
        "g",
        [oh.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 5])],
        [oh.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [oh.make_tensor("sizes", TensorProto.INT64, [4], [1, 2, 8, 10])],
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13), oh.make_opsetid("com.example", 1)])
    model.ir_version = 8
    _save(model, path)


def _dynamic_sizes_model(path: Path) -> None:
    nodes = [
        oh.make_node("Shape", ["x"], ["shape"]),
        oh.make_node("Slice", ["shape", "c2", "c4"], ["hw"]),
        oh.make_node("Mul", ["hw", "c22"], ["hw2"]),
        oh.make_node("Concat", ["c11", "hw2"], ["sizes"], axis=0),
        oh.make_node("Resize", ["x", "", "", "sizes"], ["y"], name="up", mode="linear"),
    ]
    inits = [
        oh.make_tensor("c2", TensorProto.INT64, [1], [2]),
        oh.make_tensor("c4", TensorProto.INT64, [1], [4]),
        oh.make_tensor("c22", TensorProto.INT64, [2], [2, 2]),
        oh.make_tensor("c11", TensorProto.INT64, [2], [1, 3]),
    ]
    graph = oh.make_graph(nodes, "g", [oh.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, "H", "W"])], [oh.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)])
    model.ir_version = 8
    _save(model, path)


def _if_model(path: Path) -> None:
    def branch(name: str, scale: float) -> onnx.GraphProto:
        return oh.make_graph(
            [oh.make_node("Resize", ["x", "", f"{name}_s"], [f"{name}_y"], name=f"{name}_up", mode="linear", coordinate_transformation_mode="pytorch_half_pixel")],
            name,
            [],
            [oh.make_tensor_value_info(f"{name}_y", TensorProto.FLOAT, None)],
            [oh.make_tensor(f"{name}_s", TensorProto.FLOAT, [4], [1, 1, scale, scale])],
        )

    graph = oh.make_graph(
        [oh.make_node("If", ["cond"], ["y"], then_branch=branch("then", 2.0), else_branch=branch("else", 3.0))],
        "g",
        [oh.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4]), oh.make_tensor_value_info("cond", TensorProto.BOOL, [])],
        [oh.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)])
    model.ir_version = 8
    _save(model, path)


def build_corpus(directory: Path) -> list[HostileCase]:
    """Write every hostile input into ``directory``; return the cases."""
    d = directory
    cases: list[HostileCase] = []
    good = build_resize_model((1, 2, 4, 5), 13, {"mode": "linear"}, scales=[1, 1, 2, 2])
    good_bytes = good.SerializeToString()

    (d / "text.onnx").write_text("this is a README, not a model\n" * 20)
    cases.append(HostileCase("text file named .onnx", "text.onnx", [], 2, "not"))
    (d / "truncated.onnx").write_bytes(good_bytes[: len(good_bytes) * 2 // 3])
    cases.append(HostileCase("truncated model", "truncated.onnx", [], 2, "truncated.onnx"))
    (d / "empty.onnx").write_bytes(b"")
    cases.append(HostileCase("zero-byte file", "empty.onnx", [], 2, "empty"))
    (d / "random.onnx").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    cases.append(HostileCase("random bytes", "random.onnx", [], 2, "random.onnx"))
    cases.append(HostileCase("missing file", "does_not_exist.onnx", [], 2, "not found"))

    _with_conv_external(d, "missing_data.onnx", "missing_data.bin", create_data=False)
    cases.append(HostileCase("external data file missing", "missing_data.onnx", [], 2, "missing"))
    _with_conv_external(d, "escape.onnx", "../../etc/passwd")
    cases.append(HostileCase("external data escaping the model directory", "escape.onnx", [], 2, "outside the model directory"))
    _with_conv_external(d, "absolute.onnx", "/etc/passwd")
    cases.append(HostileCase("absolute external data location", "absolute.onnx", [], 2, "absolute"))

    _custom_op_model(d / "custom_op.onnx")
    cases.append(HostileCase("custom-domain op next to a Resize (Resize rewritten, rest kept)", "custom_op.onnx", [], 0, "", check_exit=1))

    _dynamic_sizes_model(d / "dynamic.onnx")
    cases.append(HostileCase("sizes not constant without --input-shape (caffe)", "dynamic.onnx", ["--target", "caffe"], 1, "--input-shape"))
    cases.append(HostileCase("--input-shape contradicting the model", "dynamic.onnx", ["--input-shape", "x=1x4x8x8"], 2, "dimension 1 is 3"))
    cases.append(HostileCase("--input-shape naming no input", "dynamic.onnx", ["--input-shape", "image=1x3x8x8"], 2, "no graph input named"))

    _save(build_resize_model((1, 1, 3000, 8), 13, {"mode": "linear"}, sizes=[1, 1, 6001, 8]), d / "huge_matrix.onnx")
    cases.append(HostileCase("sizes that would make the MatMul lowering allocate gigabytes", "huge_matrix.onnx", ["--target", "caffe"], 1, "MiB"))

    for label, value in (("zero", 0.0), ("negative", -2.0), ("nan", float("nan"))):
        _save(build_resize_model((1, 1, 4, 4), 13, {"mode": "linear"}, scales=[1, 1, value, 2]), d / f"scales_{label}.onnx")
        cases.append(HostileCase(f"scales {label}", f"scales_{label}.onnx", [], 2, "must be finite and > 0"))
    _save(build_resize_model((1, 1, 0, 4), 13, {"mode": "linear"}, scales=[1, 1, 2, 2]), d / "empty_axis.onnx")
    cases.append(HostileCase("0-length axis", "empty_axis.onnx", [], 2, "length 0"))

    _save(build_resize_model((1, 2, 4, 5), 13, {"mode": "linear"}, sizes=[1, 2, 7, 9], elem_type=TensorProto.UINT8), d / "uint8_linear.onnx")
    cases.append(HostileCase("uint8 linear Resize (no float lowering) for caffe", "uint8_linear.onnx", ["--target", "caffe"], 1, "cannot be made exact for caffe"))
    _save(build_resize_model((1, 2, 4, 5), 13, {"mode": "nearest", "coordinate_transformation_mode": "tf_half_pixel_for_nn"}, sizes=[1, 2, 7, 9], elem_type=TensorProto.INT8), d / "int8_nearest.onnx")
    cases.append(HostileCase("int8 nearest Resize: canonicalized exactly", "int8_nearest.onnx", [], 0, "", check_exit=1))
    _save(build_resize_model((1, 2, 4, 5), 13, {"mode": "linear", "coordinate_transformation_mode": "pytorch_half_pixel"}, sizes=[1, 2, 8, 10], elem_type=TensorProto.FLOAT16), d / "fp16.onnx")
    cases.append(HostileCase("fp16 model", "fp16.onnx", ["--target", "caffe"], 0, "", check_exit=1))
    _save(build_resize_model((1, 2, 4, 5), 13, {"mode": "linear", "coordinate_transformation_mode": "pytorch_half_pixel"}, sizes=[1, 2, 8, 10], elem_type=TensorProto.BFLOAT16), d / "bf16.onnx")
    cases.append(HostileCase("bf16 model", "bf16.onnx", [], 0, "", check_exit=1))

    _if_model(d / "if_body.onnx")
    cases.append(HostileCase("Resize inside If bodies", "if_body.onnx", ["--target", "caffe"], 0, "", check_exit=1))

    _save(good, d / "good.onnx")
    cases.append(HostileCase("output directory missing", "good.onnx", ["-o", str(d / "no_such_dir" / "out.onnx")], 2, "does not exist", check_exit=0))
    return cases


if __name__ == "__main__":
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for case in build_corpus(out):
        print(f"{case.model:28} exit {case.exit_code}  {case.name}")
