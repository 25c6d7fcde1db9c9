"""The same situation gets the same answer from every command: output paths, tolerances, opset messages, names."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli_helpers import copy_fixture, run_cli

UNNAMED = "legacy_upsample9_linear.onnx"  # one Upsample-9 node without a name, opset 9


@pytest.mark.parametrize(
    "command",
    [
        ["fix-resize", "{src}", "-o", "{missing}/out.onnx"],
        ["export", "caffe", "{src}", "-o", "{missing}/out.prototxt"],
        ["export", "coreml", "{src}", "-o", "{missing}/out.mlpackage"],
        ["report", "{src}", "-o", "{missing}/out.html"],
    ],
)
def test_missing_output_directory_is_exit_2_everywhere(command: list[str], tmp_path: Path, capsys) -> None:
    src = copy_fixture("torch_ts17_bilinear_x2.onnx", tmp_path)
    missing = tmp_path / "missing"
    code, _, err = run_cli([a.format(src=src, missing=missing) for a in command], capsys)
    assert code == 2 and err.endswith(": directory does not exist\n") and err.startswith("rewriter: error: cannot write ")
    assert not missing.exists(), "no command creates the directory"


@pytest.mark.parametrize("value", ["-1", "nan", "inf"])
def test_atol_must_be_finite_and_non_negative(value: str, tmp_path: Path, capsys) -> None:
    src = copy_fixture("torch_ts17_bilinear_x2.onnx", tmp_path)
    code, _, err = run_cli(["fix-resize", str(src), "--atol", value], capsys)
    assert code == 2 and "--atol" in err and "finite number >= 0" in err
    assert not (tmp_path / "torch_ts17_bilinear_x2.fixed.onnx").exists()


def test_opset_message_says_from_and_to(tmp_path: Path, capsys) -> None:
    src = copy_fixture(UNNAMED, tmp_path)
    code, out, err = run_cli(["fix-resize", str(src)], capsys)
    assert code == 0, err
    assert "model opset raised from 9 to 11" in out
    code, out, err = run_cli(["export", "coreml", str(src), "-o", str(tmp_path / "n.mlmodel"), "--deployment-target", "iOS14"], capsys)
    assert code == 0, err
    assert "model opset raised from 9 to 11" in out


def test_unnamed_nodes_print_the_same_everywhere(tmp_path: Path, capsys) -> None:
    src = copy_fixture(UNNAMED, tmp_path)
    commands = [
        ["inspect", str(src)],
        ["check", str(src)],
        ["fix-resize", str(src)],
        ["export", "caffe", str(src), "-o", str(tmp_path / "n.prototxt")],
        ["export", "coreml", str(src), "-o", str(tmp_path / "n.mlmodel"), "--deployment-target", "iOS14"],
    ]
    for command in commands:
        code, out, err = run_cli(command, capsys)
        assert code in (0, 1), err
        lines = out.splitlines()
        node_lines = [line for line in lines if not line.startswith(("wrote", "fix-resize", "models/", str(tmp_path) + " (")) and ":" in line]
        assert any(line.startswith("(unnamed)") or ": (unnamed) (" in line for line in lines), (command, out)
        assert not any(line.startswith(": ") for line in node_lines), (command, out)


def test_coreml_model_format_deprecated_spelling(tmp_path: Path, capsys) -> None:
    src = copy_fixture("torch_ts17_nearest_x2.onnx", tmp_path)
    code, out, err = run_cli(["export", "coreml", str(src), "-o", str(tmp_path / "m.mlmodel"), "--format", "neuralnetwork", "--deployment-target", "iOS14"], capsys)
    assert code == 0, err
    assert "deprecated" in err and "neuralnetwork" in out


def test_one_message_for_a_dynamic_input(tmp_path: Path, capsys) -> None:
    src = copy_fixture("torch_ts17_bilinear_x2_dynbatch.onnx", tmp_path)  # input x: N x 2 x 5 x 7
    expected = "rewriter: error: input 'x' has a dynamic shape Nx2x5x7: pass --input-shape x=1x2x5x7"
    # (export coreml keeps a dynamic batch flexible: tests/test_coreml_flexible_batch.py)
    commands = [
        ["export", "caffe", str(src), "-o", str(tmp_path / "m.prototxt")],
        ["fix-resize", str(src), "--verify", "full"],
    ]
    for command in commands:
        code, _, err = run_cli(command, capsys)
        assert code == 2 and err.startswith(expected), (command, err)
    assert err.strip() == expected + " or --inputs data.npz", "--verify full also takes input values"
