"""Core ML translations added for real architectures: each saved file, run by the reference evaluator,
equals ONNX Runtime on random inputs (<= 1e-5 relative)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper as oh
from onnx import numpy_helper as nh

pytest.importorskip("coremltools")

from rewriter.coreml import export_coreml  # noqa: E402
from tests.test_export_coreml import EXT, _compare_saved  # noqa: E402

_R = np.random.default_rng(5)


def _one(op: str, shape, inits=None, extra=(), opset: int = 17, **attrs) -> onnx.ModelProto:
    graph = oh.make_graph(
        [oh.make_node(op, ["x", *extra], ["y"], **attrs)],
        "g",
        [oh.make_tensor_value_info("x", TP.FLOAT, list(shape))],
        [oh.make_tensor_value_info("y", TP.FLOAT, None)],
        [nh.from_array(np.asarray(v), k) for k, v in (inits or {}).items()],
    )
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)])


def _vec(n: int) -> np.ndarray:
    return _R.standard_normal(n).astype(np.float32)


def _transposed_matmul() -> onnx.ModelProto:
    """x[1,6,4] -> Transpose(0,2,1) -> MatMul(W[6,3]): a channels-last linear layer (Segformer's decoder MLP), which
    coremltools fuses into matmul(transpose_x=True) and, as a NeuralNetwork, writes as transpose + batchedMatmul."""
    nodes = [oh.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 1]), oh.make_node("MatMul", ["t", "w"], ["y"])]
    graph = oh.make_graph(nodes, "g", [oh.make_tensor_value_info("x", TP.FLOAT, [1, 6, 4])],
                          [oh.make_tensor_value_info("y", TP.FLOAT, None)],
                          [nh.from_array(_R.standard_normal((6, 3)).astype(np.float32), "w")])
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)])


_CASES = {
    "layer_norm": _one("LayerNormalization", [2, 7, 6], {"g": _vec(6), "b": _vec(6)}, ["g", "b"]),
    "layer_norm_two_axes": _one("LayerNormalization", [2, 3, 6], {"g": _vec(6)}, ["g"], axis=1),
    "instance_norm": _one("InstanceNormalization", [2, 4, 5, 6], {"g": _vec(4), "b": _vec(4)}, ["g", "b"],
                          opset=11, epsilon=1e-3),
    "instance_norm_5d": _one("InstanceNormalization", [1, 3, 2, 4, 5], {"g": _vec(3), "b": _vec(3)}, ["g", "b"]),
    "expand_rank": _one("Expand", [3, 1, 5], {"s": np.array([2, 3, 4, 5])}, ["s"]),
    "expand_same_rank": _one("Expand", [1, 3, 1, 1], {"s": np.array([2, 1, 4, 4])}, ["s"]),
    "tile": _one("Tile", [1, 3, 2, 2], {"r": np.array([1, 1, 2, 3])}, ["r"]),
    "softmax_channels": _one("Softmax", [2, 3, 4, 5], axis=1),  # NeuralNetwork: the softmax layer (axis -3)
    "transposed_matmul": _transposed_matmul(),
}


@pytest.mark.parametrize("model_format,target", [("mlprogram", "iOS15"), ("neuralnetwork", "iOS14")])
@pytest.mark.parametrize("case", sorted(_CASES))
def test_translation_equals_onnx_runtime(case: str, model_format: str, target: str, tmp_path: Path) -> None:
    model = _CASES[case]
    x = model.graph.input[0]
    feeds = {"x": _R.standard_normal([d.dim_value for d in x.type.tensor_type.shape.dim]).astype(np.float32)}
    export = export_coreml(model, tmp_path / f"m{EXT[model_format]}", model_format=model_format,
                           deployment_target=target)
    assert _compare_saved(export, model, feeds) <= 1e-5


def _if_model(cond: onnx.NodeProto | None) -> onnx.ModelProto:
    """If(cond) with a Resize in one branch and Relu in the other; cond a constant, or Size(x) > 10."""
    then_b = oh.make_graph([oh.make_node("Resize", ["x", "", "sc"], ["t"], mode="linear")], "then", [],
                           [oh.make_tensor_value_info("t", TP.FLOAT, None)],
                           [nh.from_array(np.array([1, 1, 2, 2], np.float32), "sc")])
    else_b = oh.make_graph([oh.make_node("Relu", ["x"], ["e"])], "else", [],
                           [oh.make_tensor_value_info("e", TP.FLOAT, None)])
    nodes = [cond] if cond is not None else []
    nodes += [oh.make_node("If", ["c"], ["y"], name="if0", then_branch=then_b, else_branch=else_b)]
    inits = [] if cond is not None else [nh.from_array(np.array(True), "c")]
    if cond is not None:
        nodes.insert(0, oh.make_node("Size", ["x"], ["n"]))
        inits.append(nh.from_array(np.array(10, np.int64), "ten"))
    graph = oh.make_graph(nodes, "g", [oh.make_tensor_value_info("x", TP.FLOAT, [1, 2, 3, 4])],
                          [oh.make_tensor_value_info("y", TP.FLOAT, None)], inits)
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)])


@pytest.mark.parametrize("cond", [None, oh.make_node("Greater", ["n", "ten"], ["c"])], ids=["constant", "folded"])
def test_if_with_a_known_condition_becomes_its_branch(cond, tmp_path: Path) -> None:
    model = _if_model(cond)
    feeds = {"x": _R.standard_normal((1, 2, 3, 4)).astype(np.float32)}
    export = export_coreml(model, tmp_path / "m.mlpackage")
    assert _compare_saved(export, model, feeds) <= 1e-5
    assert [what.split("(")[0] for _, what in export.resize_ops] == ["upsample_bilinear"]  # the taken branch


def test_if_with_a_run_time_condition_is_refused(tmp_path: Path) -> None:
    from rewriter.errors import UnsupportedOpError
    from tests.conftest import MODELS

    with pytest.raises(UnsupportedOpError, match=r"If\(condition computed at run time\) \(If_0\)"):
        export_coreml(MODELS / "legacy_if_resize.onnx", tmp_path / "m.mlpackage")


def test_float16_input_at_an_early_target_names_the_flags(tmp_path: Path) -> None:
    from rewriter.errors import UsageError

    model = _one("Relu", [1, 2, 3, 3])
    model.graph.input[0].type.tensor_type.elem_type = TP.FLOAT16
    model.graph.output[0].type.tensor_type.elem_type = TP.FLOAT16
    with pytest.raises(UsageError, match="pass --deployment-target iOS16") as info:
        export_coreml(model, tmp_path / "m.mlpackage")
    assert "\n" not in str(info.value)
    export = export_coreml(model, tmp_path / "m16.mlpackage", deployment_target="iOS16")
    assert export.deployment_target == "iOS16"
