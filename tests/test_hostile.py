"""Hostile and broken input: one clear line, the right exit code, no traceback, no output file, input untouched."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hostile_corpus import HostileCase, build_corpus

ROOT = Path(__file__).resolve().parent.parent


def _cases() -> list[HostileCase]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return build_corpus(Path(tmp))


CASES = _cases()


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "rewriter", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("hostile")
    build_corpus(directory)
    return directory


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_fix_resize_on_hostile_input(case: HostileCase, corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.onnx"
    args = ["fix-resize", str(corpus / case.model), *case.args]
    if "-o" not in case.args:
        args += ["-o", str(out)]
    before = _snapshot(corpus)
    proc = _run(args, tmp_path)
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    assert proc.returncode == case.exit_code, proc.stderr + proc.stdout
    assert _snapshot(corpus) == before, "the input directory is untouched"
    if case.exit_code:
        assert proc.stderr.count("\n") == 1, proc.stderr
        assert case.message in proc.stderr, proc.stderr
        assert not out.exists() and not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*"))
    else:
        assert out.exists()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_check_on_hostile_input(case: HostileCase, corpus: Path, tmp_path: Path) -> None:
    target = case.args[case.args.index("--target") + 1] if "--target" in case.args else "onnx"
    shapes = [a for i, a in enumerate(case.args) if i and case.args[i - 1] == "--input-shape"]
    args = ["check", str(corpus / case.model), "--target", target, *(x for s in shapes for x in ("--input-shape", s))]
    proc = _run(args, tmp_path)
    assert "Traceback" not in proc.stderr
    expected = case.check_exit if case.check_exit is not None else case.exit_code
    assert proc.returncode == expected, proc.stderr + proc.stdout
    if expected == 2:
        assert proc.stderr.count("\n") == 1, proc.stderr
