"""Per-model settings: rewriter.toml and [tool.rewriter], globs, precedence, and the commands that read them."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

from rewriter.cli import main
from rewriter.config import Settings, check_atol, find_config, glob_pattern, load_config
from rewriter.errors import UsageError
from tests.resize_cases import build_resize_model

CONFIG = """
targets = ["onnx"]
atol = 1e-4

[[models]]
paths = ["ios/**/*.onnx"]
targets = ["onnx", "coreml"]
deployment-target = "iOS16"
input-shapes = { image = "1x3x4x5" }

[[models]]
paths = ["npu/*.onnx", "legacy.onnx"]
targets = "caffe"
flavor = "interp"
input-shapes = { data = [1, 1, 4, 4] }
"""


def renamed_model(input_name: str, shape: tuple[int, ...], mode: str) -> onnx.ModelProto:
    """A one-Resize model with a dynamic input called ``input_name`` (the fixtures all call theirs "x")."""
    model = build_resize_model(shape, 13, {"mode": mode}, scales=[1, 1, 2, 2], dynamic_input=True)
    model.graph.input[0].name = input_name
    for node in model.graph.node:
        node.input[:] = [input_name if i == "x" else i for i in node.input]
    return model


def write_repo(root: Path) -> dict[str, Path]:
    """A repository of models with different input names, each needing its own target and shapes."""
    (root / ".git").mkdir(exist_ok=True)
    (root / "rewriter.toml").write_text(CONFIG)
    paths = {"ios": root / "ios" / "seg" / "a.onnx", "npu": root / "npu" / "b.onnx", "plain": root / "c.onnx"}
    for p in paths.values():
        p.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(renamed_model("image", (1, 3, 4, 5), "linear"), str(paths["ios"]))
    onnx.save(renamed_model("data", (1, 1, 4, 4), "nearest"), str(paths["npu"]))
    onnx.save(renamed_model("input", (1, 2, 3, 3), "linear"), str(paths["plain"]))
    return paths


def test_glob_patterns() -> None:
    assert glob_pattern("ios/**/*.onnx").fullmatch("ios/a.onnx")
    assert glob_pattern("ios/**/*.onnx").fullmatch("ios/x/y/a.onnx")
    assert not glob_pattern("npu/*.onnx").fullmatch("npu/x/b.onnx")
    assert glob_pattern("**/*.onnx").fullmatch("a.onnx")
    assert not glob_pattern("m?.onnx").fullmatch("m/.onnx")


def test_settings_merge_in_file_order(tmp_path: Path) -> None:
    paths = write_repo(tmp_path)
    config = load_config(tmp_path / "rewriter.toml")
    ios = config.settings_for(paths["ios"])
    assert ios.targets == ("onnx", "coreml") and ios.deployment_target == "iOS16" and ios.input_shapes == {"image": (1, 3, 4, 5)}
    assert ios.atol == 1e-4, "top-level keys are the defaults"
    npu = config.settings_for(paths["npu"])
    assert npu.targets == ("caffe",) and npu.flavor == "interp" and npu.input_shapes == {"data": (1, 1, 4, 4)}
    assert config.settings_for(paths["plain"]) == Settings(targets=("onnx",), atol=1e-4)
    assert config.settings_for(tmp_path.parent / "elsewhere.onnx").targets == ("onnx",)
    flags = ios.overridden(targets=["caffe"], input_shapes={}, deployment_target=None)
    assert flags.targets == ("caffe",) and flags.input_shapes == {"image": (1, 3, 4, 5)}, "a flag beats the file; absent flags do not"


def test_found_from_subdirectory_and_pyproject(tmp_path: Path, monkeypatch) -> None:
    write_repo(tmp_path)
    monkeypatch.chdir(tmp_path / "ios" / "seg")
    assert find_config() == tmp_path / "rewriter.toml"
    (tmp_path / "rewriter.toml").unlink()
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.rewriter]\ntargets = ["caffe"]\n')
    assert find_config() == tmp_path / "pyproject.toml"
    assert load_config().settings_for(tmp_path / "c.onnx").targets == ("caffe",)
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert find_config() is None, "a pyproject.toml without [tool.rewriter] is not a config; the search stops at .git"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("target = 'tensorrt'", "expected target names"),
        ("atol = -1.0", "finite number >= 0"),
        ("atol = nan", "finite number >= 0"),
        ("tagets = ['onnx']", "unknown key 'tagets'"),
        ("[[models]]\ntargets = ['onnx']", "'paths' must be"),
        ("[[models]]\npaths = ['*.onnx']\ninput-shapes = { x = '1xAx3' }", "input-shapes.x"),
        ("targets = [", "not valid TOML"),
    ],
)
def test_bad_config_is_usage_error(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "rewriter.toml").write_text(text)
    with pytest.raises(UsageError, match=message):
        load_config(tmp_path / "rewriter.toml")


def test_check_atol() -> None:
    assert check_atol(0) == 0.0 and check_atol(1e-3) == 1e-3
    for bad in (-1.0, float("nan"), float("inf"), True):
        with pytest.raises(UsageError):
            check_atol(bad)


def test_check_serves_a_repository_of_mixed_models(tmp_path: Path, monkeypatch, capsys) -> None:
    paths = write_repo(tmp_path)
    monkeypatch.chdir(tmp_path)
    args = ["check", *(str(p.relative_to(tmp_path)) for p in paths.values()), "--format", "json"]
    code = main(args)
    doc = json.loads(capsys.readouterr().out)
    pairs = {(c["model"], c["target"]): c for c in doc["checks"]}
    assert set(pairs) == {("ios/seg/a.onnx", "onnx"), ("ios/seg/a.onnx", "coreml"), ("npu/b.onnx", "caffe"), ("c.onnx", "onnx")}
    assert pairs[("ios/seg/a.onnx", "coreml")]["ok"], "the config's input shape resolved the Core ML verdict"
    assert not pairs[("npu/b.onnx", "caffe")]["ok"] and pairs[("npu/b.onnx", "caffe")]["failing"][0]["fixable"]
    assert code == 1
    # Without the config, one --input-shape cannot serve models whose inputs have different names.
    code = main(["--config", str(tmp_path / "missing.toml"), "check", "ios/seg/a.onnx"])
    assert code == 2 and "cannot read" in capsys.readouterr().err


def test_fix_resize_reads_target_and_tolerance(tmp_path: Path, monkeypatch, capsys) -> None:
    paths = write_repo(tmp_path)
    monkeypatch.chdir(tmp_path)
    code = main(["fix-resize", "npu/b.onnx", "--format", "json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["target"] == "caffe", "the file's target for npu/*.onnx"
    assert main(["fix-resize", "npu/b.onnx", "--target", "onnx", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["target"] == "onnx", "a flag beats the file"
    assert paths["npu"].exists()
