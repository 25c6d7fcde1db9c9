"""Start-up: each command imports only what it uses (bench/bench_startup.py measures the times)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import MODELS, ROOT

HEAVY = ("onnx", "onnxruntime", "rich.table", "matplotlib", "coremltools", "torch", "tensorflow", "pydantic")


def imported_by(args: list[str]) -> set[str]:
    code = (
        "import sys, json\nfrom rewriter.cli import main\ncode = main(sys.argv[1:])\n"
        f"sys.stdout.write('\\n' + json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))\nsys.exit(code)"
    )
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT, timeout=120,
                          env={**os.environ, "REWRITER_NO_PROGRESS": "1"}, check=False)
    assert done.returncode in (0, 1), done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_version_and_help_import_no_model_library() -> None:
    assert imported_by(["--version"]) == set()
    assert imported_by(["--help"]) == set()
    assert imported_by(["check", "--help"]) == set()


def test_check_imports_onnx_only() -> None:
    assert imported_by(["check", str(MODELS / "cnn_unet_ts17.onnx")]) == {"onnx"}


def test_export_coreml_does_not_import_an_installed_torch(tmp_path: Path) -> None:
    pytest.importorskip("coremltools")
    fake = tmp_path / "site" / "torch"
    fake.mkdir(parents=True)
    marker = tmp_path / "torch-was-imported"
    # Stands in for an installed torch: coremltools imports it when it can (seconds, ~1 GB for the real one).
    (fake / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n__version__ = '2.13.0'\n")
    env = {**os.environ, "PYTHONPATH": f"{fake.parent}{os.pathsep}{ROOT}", "REWRITER_NO_PROGRESS": "1"}
    subprocess.run([sys.executable, "-c", "import coremltools"], env=env, capture_output=True, timeout=120, check=False)
    assert marker.exists(), "the stand-in is what coremltools imports"
    marker.unlink()
    out = tmp_path / "m.mlpackage"
    done = subprocess.run([sys.executable, "-m", "rewriter", "export", "coreml", str(MODELS / "torch_ts17_bilinear_x2.onnx"), "-o", str(out)],
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert out.exists() and not marker.exists()
