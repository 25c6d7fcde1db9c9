"""A dynamic batch stays flexible in the saved Core ML model (RangeDim 1..max_batch), and the saved file, run by
the reference evaluator at several batch sizes, equals ONNX Runtime on the original model; what cannot follow
the batch is refused in one line whose advice (pin the batch with --input-shape) works."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper as oh
from onnx import numpy_helper as nh

pytest.importorskip("coremltools")

from rewriter import fix_resize  # noqa: E402
from rewriter.coreml import export_coreml, reference  # noqa: E402
from rewriter.errors import NotExactError, UsageError  # noqa: E402
from tests.cli_helpers import run_cli  # noqa: E402
from tests.conftest import MODELS  # noqa: E402
from tests.test_export_coreml import EXT, _ort, _relative  # noqa: E402

# real exports with a dynamic batch: TorchScript (dynamic_axes) and dynamo (Dim), Resize and Upsample forms
DYNAMIC_BATCH = ["cnn_deeplab_ts13", "torch_ts17_bilinear_x2_dynbatch", "torch_ts9_nearest_x2_dynbatch",
                 "torch_dynamo_bilinear_x2_dynbatch", "legacy_shape_sizes_two_resizes",
                 "recog_dynamo_nearest_exact_x2_dynbatch_noopt"]


def _input(model: onnx.ModelProto) -> onnx.ValueInfoProto:
    initializers = {t.name for t in model.graph.initializer}
    return next(i for i in model.graph.input if i.name not in initializers)


def _at_batches(export, path: Path, batches=(1, 2, 5)) -> float:
    """The saved file (reference evaluator) against ORT on the original, at each batch size."""
    saved = reference.load(export.path)
    vi = _input(onnx.load(path))
    rest = [d.dim_value for d in vi.type.tensor_type.shape.dim][1:]
    worst = 0.0
    for n in batches:
        feeds = {vi.name: np.random.default_rng(n).uniform(-1, 1, (n, *rest)).astype(np.float32)}
        got = saved.run({export.input_names[k]: v for k, v in feeds.items()})
        want = _ort(path, feeds)
        for k, v in want.items():
            assert got[export.output_names[k]].shape == v.shape
            worst = max(worst, _relative(v, got[export.output_names[k]]))
    return worst


@pytest.mark.parametrize("model_format,target", [("mlprogram", "iOS15"), ("neuralnetwork", "iOS14")])
@pytest.mark.parametrize("name", DYNAMIC_BATCH)
def test_dynamic_batch_stays_flexible(name: str, model_format: str, target: str, tmp_path: Path) -> None:
    path = MODELS / f"{name}.onnx"
    export = export_coreml(path, tmp_path / f"m{EXT[model_format]}", model_format=model_format, deployment_target=target,
                           verify=True)
    assert export.flexible_batch is not None and export.flexible_batch.max_batch == 64
    spec = reference.load(export.path).spec
    ranges = spec.description.input[0].type.multiArrayType.shapeRange.sizeRanges
    assert (ranges[0].lowerBound, ranges[0].upperBound) == (1, 64)
    assert all(r.lowerBound == r.upperBound for r in ranges[1:])
    assert _at_batches(export, path) <= 1e-5


def test_input_shape_pins_the_batch(tmp_path: Path) -> None:
    path = MODELS / "cnn_deeplab_ts13.onnx"
    export = export_coreml(path, tmp_path / "m.mlpackage", input_shapes={"image": (2, 3, 24, 32)})
    assert export.flexible_batch is None
    array = reference.load(export.path).spec.description.input[0].type.multiArrayType
    assert list(array.shape) == [2, 3, 24, 32] and not array.shapeRange.sizeRanges
    assert _at_batches(export, path, batches=(2,)) <= 1e-5


def test_max_batch_bounds_the_range(tmp_path: Path) -> None:
    path = MODELS / "cnn_deeplab_ts13.onnx"
    export = export_coreml(path, tmp_path / "m.mlpackage", max_batch=4, verify=True)
    ranges = reference.load(export.path).spec.description.input[0].type.multiArrayType.shapeRange.sizeRanges
    assert (ranges[0].lowerBound, ranges[0].upperBound) == (1, 4)
    with pytest.raises(ValueError, match="wants"):
        _at_batches(export, path, batches=(5,))
    assert export.to_json()["flexible_batch"] == {"inputs": ["image"], "dimension": "N", "range": [1, 4]}


def _batch_model(nodes: list, inits: list, y_shape: list | None = None) -> onnx.ModelProto:
    """x[N, 2, 5, 7] -> ``nodes`` -> y, opset 13."""
    graph = oh.make_graph(nodes, "g", [oh.make_tensor_value_info("x", TP.FLOAT, ["N", 2, 5, 7])],
                          [oh.make_tensor_value_info("y", TP.FLOAT, y_shape)], inits)
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)])


def _flatten_by_batch() -> onnx.ModelProto:
    """x[N,2,5,7] -> Resize x2 -> Reshape to [N, -1] computed from Shape (as x.view(x.shape[0], -1) exports)."""
    nodes = [
        oh.make_node("Resize", ["x", "", "scales"], ["r"], mode="linear"),
        oh.make_node("Shape", ["r"], ["s"]),
        oh.make_node("Gather", ["s", "zero"], ["n"], axis=0),
        oh.make_node("Unsqueeze", ["n", "axes"], ["n1"]),
        oh.make_node("Concat", ["n1", "minus_one"], ["target"], axis=0),
        oh.make_node("Reshape", ["r", "target"], ["y"]),
    ]
    inits = [nh.from_array(np.array([1, 1, 2, 2], np.float32), "scales"), nh.from_array(np.array(0, np.int64), "zero"),
             nh.from_array(np.array([0], np.int64), "axes"), nh.from_array(np.array([-1], np.int64), "minus_one")]
    return _batch_model(nodes, inits, ["N", 280])


def test_batch_dependent_reshape_is_computed_at_run_time(tmp_path: Path) -> None:
    path = tmp_path / "flatten.onnx"
    onnx.save(_flatten_by_batch(), path)
    export = export_coreml(path, tmp_path / "m.mlpackage", verify=True)
    assert export.flexible_batch is not None
    assert _at_batches(export, path, batches=(1, 3, 7)) <= 1e-5  # a baked [1, -1] would fail at batch 3


def _batch_index_constant() -> onnx.ModelProto:
    """x[N,2,5,7] + Range(0, N) per sample: a float tensor that differs from row to row, which Core ML would get as
    a constant of N rows (a row repeated N times, like an expanded class token, is computed at run time)."""
    nodes = [oh.make_node("Shape", ["x"], ["s"]), oh.make_node("Gather", ["s", "zero"], ["n"], axis=0),
             oh.make_node("Range", ["zero", "n", "one"], ["r"]), oh.make_node("Cast", ["r"], ["rf"], to=TP.FLOAT),
             oh.make_node("Reshape", ["rf", "column"], ["c"]), oh.make_node("Add", ["x", "c"], ["a"]),
             oh.make_node("Resize", ["a", "", "scales"], ["y"], mode="nearest")]
    inits = [nh.from_array(np.array(0, np.int64), "zero"), nh.from_array(np.array(1, np.int64), "one"),
             nh.from_array(np.array([-1, 1, 1, 1], np.int64), "column"), nh.from_array(np.array([1, 1, 2, 2], np.float32), "scales")]
    return _batch_model(nodes, inits)


def _expanded_token() -> onnx.ModelProto:
    """A learned row expanded to the batch and concatenated (ViT's class token): computed from the run-time batch."""
    nodes = [oh.make_node("Shape", ["x"], ["s"]), oh.make_node("Gather", ["s", "zero"], ["n"], axis=0),
             oh.make_node("Unsqueeze", ["n", "axes"], ["n1"]), oh.make_node("Concat", ["n1", "rest"], ["target"], axis=0),
             oh.make_node("Expand", ["token", "target"], ["t"]), oh.make_node("Concat", ["t", "x"], ["c"], axis=1),
             oh.make_node("Resize", ["c", "", "scales"], ["y"], mode="linear")]
    inits = [nh.from_array(np.array(0, np.int64), "zero"), nh.from_array(np.array([0], np.int64), "axes"),
             nh.from_array(np.array([1, 5, 7], np.int64), "rest"),
             nh.from_array(np.random.default_rng(1).standard_normal((1, 1, 5, 7)).astype(np.float32), "token"),
             nh.from_array(np.array([1, 1, 2, 2], np.float32), "scales")]
    return _batch_model(nodes, inits)


def test_a_row_expanded_to_the_batch_is_computed_at_run_time(tmp_path: Path) -> None:
    path = tmp_path / "token.onnx"
    onnx.save(_expanded_token(), path)
    export = export_coreml(path, tmp_path / "m.mlpackage", verify=True)
    assert export.flexible_batch is not None
    assert _at_batches(export, path, batches=(1, 4)) <= 1e-5


def test_what_cannot_follow_the_batch_is_refused_and_the_advice_works(tmp_path: Path, capsys) -> None:
    path = tmp_path / "const.onnx"
    onnx.save(_batch_index_constant(), path)
    out = tmp_path / "m.mlpackage"
    with pytest.raises(UsageError) as info:
        export_coreml(path, out)
    message = str(info.value)
    assert "\n" not in message and "depends on the batch size" in message and message.endswith("pin the batch with --input-shape x=1x2x5x7")
    assert not out.exists()
    code, stdout, stderr = run_cli(["export", "coreml", str(path), "-o", str(out), "--input-shape", "x=1x2x5x7", "--verify"], capsys)
    assert code == 0, stderr
    assert out.exists()


def test_cli_says_the_batch_is_flexible(tmp_path: Path, capsys) -> None:
    code, stdout, stderr = run_cli(["export", "coreml", str(MODELS / "cnn_deeplab_ts13.onnx"), "-o", str(tmp_path / "m.mlpackage"),
                                    "--max-batch", "8", "--format", "plain"], capsys)
    assert code == 0, stderr
    assert "flexible batch 1..8 (dimension 'N') on input image" in stdout


def _batch_lost_in_arithmetic() -> onnx.ModelProto:
    """x[N,2,5,7] reshaped to [max(N, 1), 2, 5, 7], then resized to sizes [max(N, 1), 2, 10, 14]: static analysis loses
    the batch at the Max of a symbol, so the Resize cannot be analysed for any batch."""
    nodes = [oh.make_node("Shape", ["x"], ["s"]), oh.make_node("Gather", ["s", "zero"], ["n"], axis=0),
             oh.make_node("Max", ["n", "one"], ["m"]), oh.make_node("Unsqueeze", ["m", "axes"], ["m1"]),
             oh.make_node("Concat", ["m1", "rest"], ["target"], axis=0), oh.make_node("Reshape", ["x", "target"], ["r"]),
             oh.make_node("Concat", ["m1", "spatial"], ["sizes"], axis=0),
             oh.make_node("Resize", ["r", "", "", "sizes"], ["y"], mode="linear", coordinate_transformation_mode="align_corners")]
    inits = [nh.from_array(np.array(0, np.int64), "zero"), nh.from_array(np.array(1, np.int64), "one"),
             nh.from_array(np.array([0], np.int64), "axes"), nh.from_array(np.array([2, 5, 7], np.int64), "rest"),
             nh.from_array(np.array([2, 10, 14], np.int64), "spatial")]
    return _batch_model(nodes, inits)


def test_fix_resize_at_each_probe_batch_when_the_shape_is_lost(tmp_path: Path) -> None:
    path = tmp_path / "lost.onnx"
    onnx.save(_batch_lost_in_arithmetic(), path)
    with pytest.raises(NotExactError, match="symbolic"):  # fix-resize cannot analyse it for any batch ...
        fix_resize(path, "coreml")
    export = export_coreml(path, tmp_path / "m.mlpackage", verify=True)  # ... so the export fixes it per probe batch
    assert export.flexible_batch is not None
    assert _at_batches(export, path, batches=(1, 2, 6)) <= 1e-5


# Real architectures exported with a dynamic batch: a Segformer decoder (sizes from batch arithmetic), a class token
# expanded to the batch (ViT encoder), a Split of qkv across the batch.
@pytest.mark.parametrize("name", ["smp_segformer_ts17_dynbatch", "smp_dpt_ts17_dynbatch", "yolov8n_detect_ts17_dynbatch"])
def test_real_architectures_keep_a_flexible_batch(name: str, tmp_path: Path) -> None:
    path = MODELS / "architectures" / f"{name}.onnx"
    export = export_coreml(path, tmp_path / "m.mlpackage")
    assert export.flexible_batch is not None
    assert _at_batches(export, path, batches=(1, 2)) <= 1e-5


def test_flexible_batch_as_a_neuralnetwork(tmp_path: Path) -> None:
    """The NeuralNetwork form of the run-time batch (getShape, fillDynamic layers), by the reference evaluator."""
    path = MODELS / "architectures" / "smp_dpt_ts17_dynbatch.onnx"
    export = export_coreml(path, tmp_path / "m.mlmodel", model_format="neuralnetwork", deployment_target="iOS14", verify=True)
    assert export.flexible_batch is not None
    assert _at_batches(export, path, batches=(1, 3)) <= 1e-5


def test_a_model_the_reference_cannot_run_is_not_written(tmp_path: Path, monkeypatch) -> None:
    from rewriter.coreml.reference.mil import MILModel
    from rewriter.errors import VerificationError

    def refuse(self, feeds):
        raise ValueError("an op it does not know")

    monkeypatch.setattr(MILModel, "run", refuse)
    out = tmp_path / "m.mlpackage"
    with pytest.raises(VerificationError, match="reference evaluator cannot run the saved mlprogram model.*nothing was written"):
        export_coreml(MODELS / "cnn_deeplab_ts13.onnx", out, verify=True)
    assert not out.exists()
