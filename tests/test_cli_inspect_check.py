"""`rewriter inspect` and `rewriter check` through the real console entry point."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from rewriter.cli import main
from tests.conftest import MODELS
from tests.resize_cases import build_resize_model


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def inspect_json(path: Path, capsys, *extra: str) -> dict:
    code, out, err = run_cli(["inspect", str(path), "--json", *extra], capsys)
    assert code == 0, err
    return json.loads(out)


def test_inspect_json_schema(capsys) -> None:
    doc = inspect_json(MODELS / "cnn_unet_ts17.onnx", capsys)
    assert doc["opset"] == 17 and doc["model"].endswith("cnn_unet_ts17.onnx")
    assert doc["nodes"], "the U-Net has Resize nodes"
    for node in doc["nodes"]:
        for key in ("name", "op_type", "mode", "coordinate_transformation_mode", "nearest_mode", "input_shape", "output_shape", "scales"):
            assert key in node
        assert set(node["targets"]) == {"onnx", "coreml", "caffe"}
        for verdict in node["targets"].values():
            assert verdict["verdict"] in ("as-is", "rewrite", "inexact", "unresolved")


def test_inspect_legacy_upsample_is_asymmetric(capsys) -> None:
    (node,) = inspect_json(MODELS / "legacy_upsample9_linear.onnx", capsys)["nodes"]
    assert node["op_type"] == "Upsample" and node["coordinate_transformation_mode"] == "asymmetric"
    onnx_verdict = node["targets"]["onnx"]
    assert onnx_verdict["verdict"] == "rewrite" and "asymmetric" in onnx_verdict["how"]
    # onnx's version converter would make it half_pixel: the naive error is real and reported.
    assert onnx_verdict["naive_max_error"] > 0.1


def test_inspect_resolves_shape_subgraph_sizes(capsys) -> None:
    doc = inspect_json(MODELS / "legacy_shape_sizes_two_resizes.onnx", capsys)
    assert len(doc["nodes"]) == 2
    for node in doc["nodes"]:
        assert all(isinstance(d, int) for d in node["output_shape"][1:]), node
        assert node["targets"]["onnx"]["verdict"] != "unresolved"


def test_inspect_external_data_without_loading_weights(capsys, tmp_path: Path) -> None:
    for f in ("legacy_external.onnx", "legacy_external.onnx.data"):
        shutil.copy(MODELS / f, tmp_path / f)
    doc = inspect_json(tmp_path / "legacy_external.onnx", capsys)
    assert len(doc["nodes"]) == 1 and doc["nodes"][0]["targets"]["onnx"]["verdict"] == "as-is"


def test_inspect_finds_resize_in_subgraphs(capsys) -> None:
    doc = inspect_json(MODELS / "legacy_if_resize.onnx", capsys)
    assert len(doc["nodes"]) == 2 and all(n["graph"] for n in doc["nodes"])
    doc = inspect_json(MODELS / "legacy_loop_resize.onnx", capsys)
    assert len(doc["nodes"]) == 1 and doc["nodes"][0]["graph"]


def test_inspect_table_renders(capsys) -> None:
    code, out, _ = run_cli(["inspect", str(MODELS / "torch_ts17_bilinear_x2.onnx")], capsys)
    assert code == 0 and "half_pixel" in out and "as-is" in out


@pytest.mark.parametrize(
    ("fixture", "target", "code"),
    [
        ("torch_ts17_bilinear_x2.onnx", "onnx", 0),  # half_pixel linear, canonical
        ("torch_ts17_bilinear_x2.onnx", "coreml", 0),  # upsample_bilinear(align_corners=False)
        ("torch_ts17_bilinear_x2.onnx", "caffe", 1),  # BVLC Caffe has no resize layer: needs the deconv lowering
        ("legacy_upsample7_nearest.onnx", "onnx", 1),  # Upsample is not portable ONNX
        ("legacy_resize11_tf_half_pixel_for_nn.onnx", "onnx", 1),
        ("tf2onnx13_v1_bilinear_align_corners.onnx", "coreml", 0),
    ],
)
def test_check_exit_codes(fixture: str, target: str, code: int, capsys) -> None:
    got, out, err = run_cli(["check", "--target", target, str(MODELS / fixture)], capsys)
    assert got == code, out + err
    if code == 1:
        assert "fix-resize can make it exact" in out


def test_check_pytorch_half_pixel_size_one_needs_rewrite(capsys) -> None:
    got, out, _ = run_cli(["check", str(MODELS / "legacy_resize11_pytorch_half_pixel_size1.onnx")], capsys)
    assert got == 1 and "pytorch_half_pixel" in out


@pytest.mark.parametrize("content", [b"", b"this is not an onnx model\n", b"\x08\x07\x12\x05hello\xff\xff"])
def test_check_bad_input_is_one_line_exit_2(content: bytes, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(content)
    code, out, err = run_cli(["check", str(bad)], capsys)
    assert code == 2
    assert err.strip().count("\n") == 0 and "bad.onnx" in err and "Traceback" not in err


def test_check_truncated_and_missing(tmp_path: Path, capsys) -> None:
    data = (MODELS / "cnn_unet_ts17.onnx").read_bytes()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(data[: len(data) // 2])
    code, _, err = run_cli(["check", str(truncated), str(tmp_path / "missing.onnx")], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 2


def test_check_dynamic_sizes_need_input_shape(tmp_path: Path, capsys) -> None:
    model = build_resize_model((1, 3, 4, 5), 13, {"mode": "linear"}, scales=[1, 1, 2, 2], dynamic_input=True)
    path = tmp_path / "dyn.onnx"
    onnx.save(model, str(path))
    # Portable ONNX does not need the shape: an integer scale is canonical for any input length.
    code, out, _ = run_cli(["check", str(path)], capsys)
    assert code == 0, out
    # Core ML op selection does: the verdict says so, and --input-shape resolves it.
    code, out, _ = run_cli(["check", "--target", "coreml", str(path)], capsys)
    assert code == 1 and "unresolved" in out and "--input-shape" in out
    code, out, _ = run_cli(["check", "--target", "coreml", str(path), "--input-shape", "x=1x3x4x5"], capsys)
    assert code == 0, out


def test_bad_input_shape_is_usage_error(capsys) -> None:
    code, _, err = run_cli(["inspect", str(MODELS / "torch_ts17_bilinear_x2.onnx"), "--input-shape", "nope=1x2"], capsys)
    assert code == 2 and "nope" in err


def test_console_script_never_prints_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "x.onnx"
    bad.write_text("hello")
    proc = subprocess.run([sys.executable, "-m", "rewriter", "check", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
