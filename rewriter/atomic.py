"""Atomic output: files and package directories are staged beside their destinations and renamed into
place together, so a reader sees the old outputs or all the new ones, and an error leaves nothing behind.

    with Staging() as stage:
        with open(stage.file(model_path), "wb") as f:
            f.write(...)
        stage.commit()

``file`` gives a temporary file beside the destination (made with mkstemp, so 0600 until ``commit`` gives
it the permissions a new file would get under the umask); ``slot`` gives a path inside a private temporary
directory beside the destination, for writers that create the output themselves (a file or a package
directory). ``commit`` renames everything in the order staged; leaving the ``with`` block without
committing (or failing half way) deletes whatever is still staged.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from rewriter.errors import UsageError


class Staging:
    """Temporary outputs waiting to be renamed over their destinations."""

    def __init__(self, *, sync: bool = False) -> None:
        self.sync = sync  # fsync staged files before the renames (durable once renamed)
        self._files: dict[str, str] = {}  # destination -> temporary file
        self._slots: dict[str, str] = {}  # destination -> path inside a private temporary directory

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.discard()

    def file(self, destination: str | os.PathLike) -> str:
        """A new empty temporary file beside ``destination`` that ``commit`` renames over it."""
        destination = os.fspath(destination)
        path = temp_file(os.path.dirname(destination) or ".", os.path.basename(destination))
        self._files[destination] = path
        return path

    def adopt(self, destination: str | os.PathLike, temp: str) -> None:
        """Stage a temporary file made elsewhere (e.g. copied in the background) for ``destination``."""
        self._files[os.fspath(destination)] = temp

    def staged(self, destination: str | os.PathLike) -> str | None:
        """The temporary file staged for ``destination``, if any."""
        return self._files.get(os.fspath(destination))

    def slot(self, destination: str | os.PathLike) -> Path:
        """A path (named like ``destination``) in a private temporary directory beside it: whatever is
        created there, file or directory, is moved over ``destination`` by ``commit``."""
        destination = Path(destination)
        directory = tempfile.mkdtemp(prefix=f".{destination.name}.", suffix=".tmp", dir=destination.parent)
        path = Path(directory) / destination.name
        self._slots[os.fspath(destination)] = os.fspath(path)
        return path

    def commit(self) -> None:
        """Rename every staged output over its destination, in the order staged."""
        if self._files:
            mode = 0o666 & ~_umask()  # mkstemp creates 0600 files; give the usual permissions
            for temp in self._files.values():
                if self.sync:
                    with open(temp, "rb+") as f:
                        os.fsync(f.fileno())
                os.chmod(temp, mode)
        for destination, temp in list(self._files.items()):
            os.replace(temp, destination)
            del self._files[destination]
        for destination, staged in list(self._slots.items()):
            _move_into_place(Path(staged), Path(destination))
            shutil.rmtree(os.path.dirname(staged), ignore_errors=True)
            del self._slots[destination]

    def discard(self) -> None:
        """Delete everything still staged."""
        for temp in self._files.values():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
        for staged in self._slots.values():
            shutil.rmtree(os.path.dirname(staged), ignore_errors=True)
        self._files, self._slots = {}, {}


def temp_file(directory: str, name: str) -> str:
    """A new empty file ``.<name>.*.tmp`` in ``directory`` (closed; the caller writes it by path)."""
    fd, path = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    os.close(fd)
    return path


def _umask() -> int:
    mask = os.umask(0)  # the only portable way to read it is to set it
    os.umask(mask)
    return mask


def _move_into_place(staged: Path, destination: Path) -> None:
    """Rename a finished file or package over ``destination`` (an existing package directory is swapped
    out first, restored if the rename fails, and removed after it succeeds)."""
    if staged.is_dir():
        backup = None
        if destination.exists() or destination.is_symlink():
            if not destination.is_dir():
                raise UsageError(f"output {str(destination)!r} exists and is not a directory")
            backup = destination.with_name(f".{destination.name}.{os.getpid()}.old")
            os.replace(destination, backup)
        try:
            os.replace(staged, destination)
        except BaseException:
            if backup is not None:
                os.replace(backup, destination)
            raise
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)
    else:
        if destination.is_dir():
            raise UsageError(f"output {str(destination)!r} is a directory")
        os.replace(staged, destination)


__all__ = ["Staging", "temp_file"]
