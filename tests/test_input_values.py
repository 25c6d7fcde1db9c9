"""--input-value: a run-time input (scales, sizes, roi) pinned to a constant, on every command and in the API."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto
from onnx import helper as oh

from rewriter.caffe import export_caffe, measure_error
from rewriter.cli import main
from rewriter.coreml import export_coreml
from rewriter.ort_runtime import relative_error, session


def _runtime_scales(path: Path) -> Path:
    graph = oh.make_graph(
        [oh.make_node("Resize", ["x", "", "scales"], ["y"], name="up", mode="linear")],
        "g",
        [oh.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 5]), oh.make_tensor_value_info("scales", TensorProto.FLOAT, [4])],
        [oh.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_cli_check_says_a_value_is_missing_and_input_value_supplies_it(tmp_path: Path, capsys) -> None:
    model = _runtime_scales(tmp_path / "m.onnx")
    assert main(["check", "--target", "coreml", str(model)]) == 1
    out = capsys.readouterr().out
    assert "value supplied at run time" in out and "--input-shape" not in out
    # With the value known, the node is analysable: fix-resize can make it exact (writing the value as a constant).
    assert main(["check", "--target", "coreml", str(model), "--input-value", "scales=1,1,2,2"]) == 1
    assert "fix-resize can make it exact" in capsys.readouterr().out
    fixed = tmp_path / "fixed.onnx"
    assert main(["fix-resize", str(model), "--target", "coreml", "--input-value", "scales=1,1,2,2", "-o", str(fixed)]) == 0
    assert main(["check", "--target", "coreml", str(fixed)]) == 0


def test_cli_fix_resize_writes_the_pinned_input_as_a_constant(tmp_path: Path) -> None:
    model = _runtime_scales(tmp_path / "m.onnx")
    out = tmp_path / "fixed.onnx"
    assert main(["fix-resize", str(model), "--target", "caffe", "--input-value", "scales=1,1,2,2", "-o", str(out)]) == 0
    fixed = onnx.load(str(out))
    assert [vi.name for vi in fixed.graph.input] == ["x"]
    x = np.random.default_rng(0).standard_normal((1, 2, 4, 5)).astype(np.float32)
    expected = session(onnx.load(str(model))).run(None, {"x": x, "scales": np.array([1, 1, 2, 2], np.float32)})[0]
    assert relative_error(expected, session(fixed).run(None, {"x": x})[0]) <= 1e-6


def test_cli_bad_input_value_is_a_usage_error(tmp_path: Path, capsys) -> None:
    model = _runtime_scales(tmp_path / "m.onnx")
    assert main(["check", str(model), "--input-value", "scales=one,two"]) == 2
    assert main(["check", str(model), "--input-value", "nope=1,2"]) == 2
    assert "nope" in capsys.readouterr().err


def test_exporters_take_input_values(tmp_path: Path) -> None:
    model = _runtime_scales(tmp_path / "m.onnx")
    pinned = {"scales": [1, 1, 2, 2]}
    caffe = export_caffe(model, tmp_path / "m.prototxt", input_values=pinned)
    assert measure_error(model, caffe, inputs={"scales": np.array([1, 1, 2, 2], np.float32)})[1] <= 1e-6
    coreml = export_coreml(model, tmp_path / "m.mlpackage", input_values=pinned, verify=True)
    assert list(coreml.input_names) == ["x"] and coreml.max_error <= 1e-5
