"""rewriter.atomic: staged outputs appear together, with the usual permissions, or not at all."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from rewriter.atomic import Staging


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_files_are_committed_together_with_umask_permissions(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("old")
    with Staging(sync=True) as stage:
        for name in ("a.txt", "b.bin"):
            with open(stage.file(tmp_path / name), "w") as f:
                f.write(f"new {name}")
        assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["a.txt"]
        stage.commit()
    assert (tmp_path / "a.txt").read_text() == "new a.txt" and (tmp_path / "b.bin").read_text() == "new b.bin"
    assert stat.S_IMODE((tmp_path / "b.bin").stat().st_mode) == 0o666 & ~_umask()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.bin"]


def test_an_error_before_commit_leaves_nothing_behind(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("old")
    with pytest.raises(RuntimeError), Staging() as stage:
        Path(stage.file(tmp_path / "a.txt")).write_text("partial")
        (stage.slot(tmp_path / "m.pkg") / "x").mkdir(parents=True)
        raise RuntimeError("boom")
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"] and (tmp_path / "a.txt").read_text() == "old"


def test_a_package_directory_replaces_the_previous_one(tmp_path: Path) -> None:
    for content in ("first", "second"):
        with Staging() as stage:
            package = stage.slot(tmp_path / "m.pkg")
            package.mkdir()
            (package / "data").write_text(content)
            stage.commit()
    assert (tmp_path / "m.pkg" / "data").read_text() == "second"
    assert [p.name for p in tmp_path.iterdir()] == ["m.pkg"]
