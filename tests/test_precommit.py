"""The pre-commit hook, run by the real pre-commit client on a repository of mixed models (no network)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tests.test_config import write_repo

PRE_COMMIT = Path(sys.executable).with_name("pre-commit")
REWRITER = Path(sys.executable).with_name("rewriter")

pytestmark = pytest.mark.skipif(not PRE_COMMIT.exists() or shutil.which("git") is None, reason="needs pre-commit (the [test] extra) and git")


def local_hook_config() -> str:
    """This checkout's hook definition as a local hook: the same id, files and args, run with the installed
    rewriter (``language: python`` would build a fresh environment from the network)."""
    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hook["entry"].split()[0] == "rewriter" and hook["language"] == "python"
    local = {**hook, "entry": hook["entry"].replace("rewriter", str(REWRITER), 1), "language": "system"}
    return yaml.safe_dump({"repos": [{"repo": "local", "hooks": [local]}]})


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def pre_commit(repo: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "cache"), "REWRITER_NO_PROGRESS": "1"}
    return subprocess.run([str(PRE_COMMIT), "run", "--all-files"], cwd=repo, env=env, capture_output=True, text=True, timeout=300, check=False)


def test_one_hook_gates_models_with_different_inputs_and_targets(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    paths = write_repo(repo)  # rewriter.toml: ios/** -> onnx + coreml (input "image"), npu/* -> caffe (input "data")
    (repo / ".pre-commit-config.yaml").write_text(local_hook_config())
    git(repo, "add", "-A")

    run = pre_commit(repo, tmp_path)
    assert run.returncode == 1, run.stdout + run.stderr
    failing = [line for line in run.stdout.splitlines() if "for caffe" in line]
    assert len(failing) == 1 and failing[0].startswith("npu/b.onnx: ") and "fix-resize can make it exact" in failing[0], run.stdout
    assert "ios/seg/a.onnx" not in run.stdout.replace("ios/seg/a.onnx: 1 resize node(s), all run identically", ""), run.stdout

    # The fix the message names, then the gate passes.
    fixed = subprocess.run([str(REWRITER), "fix-resize", "npu/b.onnx", "-o", "npu/b.onnx"], cwd=repo, capture_output=True, text=True, check=False)
    assert fixed.returncode == 0, fixed.stderr
    git(repo, "add", "-A")
    run = pre_commit(repo, tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert paths["npu"].exists()
