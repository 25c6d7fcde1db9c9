"""Running the CLI in-process for tests: exit code, stdout and stderr."""

from __future__ import annotations

import shutil
from pathlib import Path

from rewriter.cli import main
from tests.conftest import MODELS


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def copy_fixture(name: str, tmp_path: Path) -> Path:
    shutil.copy(MODELS / name, tmp_path / name)
    return tmp_path / name
