"""`rewriter fix-resize` as users run it: output paths, exit codes, atomic writes, external data, idempotence."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import rewriter
from rewriter.cli import main
from tests.conftest import MODELS
from tests.resize_cases import build_resize_model


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def copy_fixture(name: str, tmp_path: Path) -> Path:
    for f in MODELS.glob(name + "*"):
        if not f.name.endswith(".io.npz"):
            shutil.copy(f, tmp_path / f.name)
    return tmp_path / name


def test_default_output_beside_input_and_input_untouched(tmp_path: Path, capsys) -> None:
    src = copy_fixture("legacy_upsample9_linear.onnx", tmp_path)
    before = src.read_bytes()
    code, out, err = run_cli(["fix-resize", str(src)], capsys)
    assert code == 0, err
    assert (tmp_path / "legacy_upsample9_linear.fixed.onnx").exists()
    assert src.read_bytes() == before
    assert "legacy-upgrade" in out


def test_overwrites_input_only_when_named(tmp_path: Path, capsys) -> None:
    src = copy_fixture("legacy_upsample9_linear.onnx", tmp_path)
    code, _, err = run_cli(["fix-resize", str(src), "-o", str(src)], capsys)
    assert code == 0, err
    assert onnx.load(str(src)).graph.node[0].op_type == "Resize"


def test_exit_1_writes_nothing(tmp_path: Path, capsys) -> None:
    src = copy_fixture("torch_ts17_bilinear_size_like_dyn.onnx", tmp_path)
    out = tmp_path / "out.onnx"
    code, stdout, err = run_cli(["fix-resize", str(src), "-o", str(out), "--target", "coreml"], capsys)
    assert code == 1 and not out.exists()
    assert err.count("\n") == 1 and "--input-shape" in err and "Traceback" not in err


def test_input_shape_makes_dynamic_model_exact(tmp_path: Path, capsys) -> None:
    src = copy_fixture("torch_ts17_bilinear_size_like_dyn.onnx", tmp_path)
    io = np.load(MODELS / "torch_ts17_bilinear_size_like_dyn.io.npz")
    names = [i.name for i in onnx.load(str(src)).graph.input]
    shapes = [f"{n}={'x'.join(map(str, io[n].shape))}" for n in names]
    out = tmp_path / "out.onnx"
    args = ["fix-resize", str(src), "-o", str(out), "--target", "caffe", "--verify", "full", "--inputs", str(MODELS / "torch_ts17_bilinear_size_like_dyn.io.npz")]
    for s in shapes:
        args += ["--input-shape", s]
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    dims = [d.dim_value for d in onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim]
    assert dims == list(io[names[0]].shape), "the static shape the rewrite relies on is written into the model"


@pytest.mark.parametrize("content", [b"", b"not a model", b"\x08\x07\x12\x05hello\xff"])
def test_bad_input_exit_2(content: bytes, tmp_path: Path, capsys) -> None:
    src = tmp_path / "bad.onnx"
    src.write_bytes(content)
    code, _, err = run_cli(["fix-resize", str(src)], capsys)
    assert code == 2 and err.count("\n") == 1 and not (tmp_path / "bad.fixed.onnx").exists()


@pytest.mark.parametrize("args", [["--target", "tensorrt"], ["--lower", "magic"], ["--border", "soft"], ["--verify", "maybe"], ["--deployment-target", "iOS9"], ["--input-shape", "x"]])
def test_usage_errors_exit_2(args: list[str], tmp_path: Path, capsys) -> None:
    src = copy_fixture("torch_ts17_bilinear_x2.onnx", tmp_path)
    code, _, err = run_cli(["fix-resize", str(src), *args], capsys)
    assert code == 2 and err.count("\n") == 1


def test_missing_output_directory_exit_2(tmp_path: Path, capsys) -> None:
    src = copy_fixture("legacy_upsample9_linear.onnx", tmp_path)
    code, _, err = run_cli(["fix-resize", str(src), "-o", str(tmp_path / "nope" / "out.onnx")], capsys)
    assert code == 2 and "nope" in err


def test_interrupted_write_leaves_no_file(tmp_path: Path, monkeypatch) -> None:
    src = copy_fixture("legacy_upsample9_linear.onnx", tmp_path)
    out = tmp_path / "out.onnx"
    import rewriter.model_io as model_io

    def explode(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(model_io, "_write_pieces", explode)
    with pytest.raises(KeyboardInterrupt):
        rewriter.fix_resize(src, "onnx", out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["legacy_upsample9_linear.onnx"]


def test_external_data_round_trip(tmp_path: Path) -> None:
    src = copy_fixture("torch_dynamo_conv_bilinear_x2_extdata.onnx", tmp_path)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "fixed.onnx"
    rewriter.fix_resize(src, "caffe", out)
    assert (out_dir / "fixed.onnx.data").exists()
    model = onnx.load(str(out), load_external_data=False)
    assert any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    io = np.load(MODELS / "torch_dynamo_conv_bilinear_x2_extdata.io.npz")
    feeds = {i.name: io[i.name] for i in model.graph.input}
    a = ort.InferenceSession(str(src)).run(None, feeds)[0]
    b = ort.InferenceSession(str(out)).run(None, feeds)[0]
    assert np.abs(a - b).max() < 1e-5


@pytest.mark.parametrize("target", ["onnx", "coreml", "caffe"])
@pytest.mark.parametrize("fixture", ["cnn_unet_ts17.onnx", "legacy_resize10_nearest_x0p6.onnx", "tf2onnx13_v1_nearest_half_pixel.onnx", "legacy_if_resize.onnx"])
def test_idempotent(fixture: str, target: str, tmp_path: Path) -> None:
    once = rewriter.fix_resize(MODELS / fixture, target, tmp_path / "once.onnx")
    twice = rewriter.fix_resize(tmp_path / "once.onnx", target, tmp_path / "twice.onnx")
    assert not twice.changed, [n.passes for n in twice.nodes]
    assert onnx.load(str(tmp_path / "twice.onnx")).graph == onnx.load(str(tmp_path / "once.onnx")).graph
    assert once.nodes


def test_everything_else_is_kept(tmp_path: Path) -> None:
    model = build_resize_model((1, 2, 4, 5), 10, {"mode": "linear"}, scales=[1, 1, 2, 2])
    model.doc_string = "my model"
    onnx.helper.set_model_props(model, {"author": "me"})
    model.graph.node[0].doc_string = "upsample the features"
    result = rewriter.fix_resize(model, "onnx")
    assert result.model.doc_string == "my model"
    assert {p.key: p.value for p in result.model.metadata_props} == {"author": "me"}
    assert result.model.graph.input[0].name == "x" and result.model.graph.output[0].name == "y"
    assert result.model.graph.node[0].name == "resize0"
    assert model.opset_import[0].version == 10, "the caller's model is not modified"


def test_report_json(tmp_path: Path, capsys) -> None:
    src = copy_fixture("cnn_unet_ts17.onnx", tmp_path)
    report = tmp_path / "report.json"
    code, _, err = run_cli(["fix-resize", str(src), "--target", "caffe", "--report-json", str(report)], capsys)
    assert code == 0, err
    doc = json.loads(report.read_text())
    assert doc["target"] == "caffe" and doc["nodes"]
    for node in doc["nodes"]:
        assert node["exact"] and node["max_error"] < 1e-5
        assert node["passes"][-1] == "lower-conv-transpose" and "ConvTranspose" in node["became"]


def test_python_api_typed_errors() -> None:
    with pytest.raises(rewriter.NotExactError):
        rewriter.fix_resize(MODELS / "torch_ts17_bilinear_size_like_dyn.onnx", "coreml")
    with pytest.raises(rewriter.UsageError):
        rewriter.fix_resize(MODELS / "torch_ts17_bilinear_x2.onnx", "tensorrt")
    with pytest.raises(rewriter.BadModelError):
        rewriter.fix_resize(MODELS / "manifest.json")
    assert issubclass(rewriter.NotExactError, rewriter.RewriterError)
