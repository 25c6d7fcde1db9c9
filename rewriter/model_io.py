"""Read and write ONNX models: hostile-input checks, on-demand external data, atomic output.

Loading parses only the graph proto; external weights stay on disk until a tensor is
asked for (``read_tensor``). Saving writes to temporary files beside the destination
and renames them into place only once everything is written. The checks themselves are in
``rewriter.model_checks``, the byte-level reading and writing in ``rewriter.model_wire``.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import shutil
import stat
import threading
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from rewriter.atomic import Staging, temp_file
from rewriter.errors import BadModelError, UsageError
from rewriter.model_checks import (
    all_tensors,
    check_structure,
    locate_external,
    parse_model,
    read_external,
    reason,
    show,
)

# Private names here: the tests call model_io._is_external and patch model_io._write_pieces.
from rewriter.model_checks import is_external as _is_external
from rewriter.model_wire import (
    inline_item,
    is_lazy_inline,
    locations_replaced,
    model_pieces,
    spill,
    without_payloads,
)
from rewriter.model_wire import write_pieces as _write_pieces

# Protobuf cannot parse a message of 2 GiB or more, so no saved model file may exceed this.
_PROTO_LIMIT = 2**31 - 1
# Weights moved out of an oversized model start on this boundary so runtimes can mmap them
# (64 KiB is Windows' allocation granularity and a multiple of every common page size).
_ALIGNMENT = 64 * 1024
# Inline models at least this big are loaded lazily: initializers of at least _LAZY_TENSOR bytes stay in
# the file (described as external data pointing into the model file itself) and are streamed back inline
# when the model is saved. The graph is all a pass needs.
_LAZY_FILE = 64 << 20
_LAZY_TENSOR = 1 << 20


def model_dir(path: str | os.PathLike) -> Path:
    """Directory that the external data locations of the model at ``path`` are relative to."""
    return Path(os.path.abspath(path)).parent


def load_model(path: str | os.PathLike, *, load_weights: bool = False) -> onnx.ModelProto:
    """Parse and validate the binary ONNX model at ``path``.

    External data is checked (safe location, file present and long enough) but only read
    when ``load_weights`` is true. Every problem with the input raises a one-line
    ``BadModelError`` naming the file.
    """
    where = show(os.fspath(path))
    model = parse_model(_read_model_file(path, where, lazy=not load_weights), where)
    check_structure(model, where)
    base_dir = model_dir(path)
    for tensor in [t for t in all_tensors(model) if _is_external(t)]:
        if load_weights:
            tensor.raw_data = read_external(tensor, base_dir, where)
            tensor.data_location = onnx.TensorProto.DEFAULT
            del tensor.external_data[:]
        else:
            locate_external(tensor, base_dir, where)
    return model


def external_data_files(model: onnx.ModelProto) -> set[str]:
    """The ``location`` of every external tensor anywhere in ``model`` (subgraphs and functions included)."""
    return {
        entry.value
        for tensor in all_tensors(model)
        if _is_external(tensor)
        for entry in tensor.external_data
        if entry.key == "location"
    }


def read_tensor(
    model: onnx.ModelProto, tensor: onnx.TensorProto, base_dir: str | os.PathLike
) -> np.ndarray:
    """Value of ``tensor``, reading only its own bytes if stored externally.

    ``base_dir`` is the directory external locations are relative to (``model_dir`` of the
    model file); a location that leaves it is refused with ``BadModelError``. ``model``,
    the model owning ``tensor``, is part of the agreed signature but not needed.
    """
    where = show(os.fspath(base_dir))
    if _is_external(tensor):
        inline = onnx.TensorProto()
        inline.CopyFrom(tensor)  # cheap: an external tensor carries no payload
        inline.raw_data = read_external(tensor, base_dir, where)
        inline.data_location = onnx.TensorProto.DEFAULT
        del inline.external_data[:]
        tensor = inline
    try:
        return numpy_helper.to_array(tensor)
    except Exception as exc:  # malformed payloads surface as assorted numpy/onnx errors
        raise BadModelError(
            f"{where}: tensor '{show(tensor.name)}' cannot be decoded ({show(exc)})"
        ) from exc


class DataCopy:
    """Copies of a model's external data files, started early in background threads.

    The copy is the dominant cost of saving a model with external data and needs nothing from the
    rewrite, so it runs while the passes work; ``save_model(..., prestaged=...)`` then only renames.
    The copies are temporary files beside the output until then; ``discard`` removes them.
    """

    def __init__(self, model: onnx.ModelProto, out_path: str | os.PathLike, source_dir: str | os.PathLike) -> None:
        out_dir = os.path.dirname(os.path.abspath(out_path))
        external = [t for t in all_tensors(model) if _is_external(t) and not is_lazy_inline(t)]
        sources = dict.fromkeys(locate_external(t, source_dir, show(os.fspath(source_dir)))[0] for t in external)
        self.temps: dict[str, str] = {}
        self._errors: list[BaseException] = []
        self._threads: list[threading.Thread] = []
        if not os.path.isdir(out_dir):
            return  # save_model reports the missing directory
        for source in sources:
            temp = temp_file(out_dir, os.path.basename(source))
            self.temps[source] = temp
            thread = threading.Thread(target=self._copy, args=(source, temp), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _copy(self, source: str, temp: str) -> None:
        try:
            shutil.copyfile(source, temp)
        except BaseException as exc:  # reported by wait()
            self._errors.append(exc)

    def wait(self) -> dict[str, str]:
        for thread in self._threads:
            thread.join()
        if self._errors:
            raise self._errors[0]
        return self.temps

    def discard(self) -> None:
        for thread in self._threads:
            thread.join()
        for temp in self.temps.values():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
        self.temps = {}


def save_model(
    model: onnx.ModelProto,
    out_path: str | os.PathLike,
    *,
    source_dir: str | os.PathLike | None = None,
    prestaged: DataCopy | None = None,
) -> None:
    """Atomically write ``model`` to ``out_path`` as binary protobuf.

    External data files (found in ``source_dir``) are copied beside ``out_path`` as
    ``<name>.data`` or ``<name>.<i>.data`` and the saved locations point at the copies.
    If the model would not fit protobuf's 2 GiB limit, its largest initializers are moved
    to ``<name>.data``. Nothing is left behind on failure; output path problems raise
    ``UsageError``. ``model`` is unchanged afterwards, but is briefly modified while
    writing, so it must not be used concurrently.
    """
    shown = show(os.fspath(out_path))
    out_abs = os.path.abspath(out_path)
    out_dir, name = os.path.split(out_abs)
    if not os.path.isdir(out_dir):
        raise UsageError(f"cannot write {shown}: directory does not exist")
    if os.path.isdir(out_abs):
        raise UsageError(f"cannot write {shown}: is a directory")

    external = [t for t in all_tensors(model) if _is_external(t) and not is_lazy_inline(t)]
    lazy = [t for t in model.graph.initializer if is_lazy_inline(t)]
    if (external or lazy) and source_dir is None:
        raise UsageError(
            f"cannot write {shown}: the model references external data but no source directory was given"
        )
    resolved = [locate_external(t, source_dir, show(os.fspath(source_dir)))[0] for t in external]
    sources = {source: i for i, source in enumerate(dict.fromkeys(resolved))}  # file -> copy index
    if len(sources) == 1:
        data_names = [f"{name}.data"]
    else:
        data_names = [f"{name}.{i}.data" for i in range(len(sources))]
    spill_name = f"{name}.data"
    new_locations = [data_names[sources[source]] for source in resolved]

    try:
        with Staging() as stage:  # data files first, the model last
            with locations_replaced(external, new_locations):
                graph = model.graph
                nodes = [(node, node.ByteSize()) for node in graph.node]
                initializers = [inline_item(t, source_dir) if is_lazy_inline(t) else (t, t.ByteSize()) for t in graph.initializer]
                pieces, size = model_pieces(model, nodes, initializers)
                for source, data_name in zip(sources, data_names):
                    final = os.path.join(out_dir, data_name)
                    # Appending spilled weights needs a private copy even of a file already in place.
                    if os.path.realpath(final) != source or (size > _PROTO_LIMIT and data_name == spill_name):
                        early = prestaged.wait().pop(source, None) if prestaged is not None else None
                        if early is not None and os.path.dirname(early) == out_dir:
                            stage.adopt(final, early)
                        else:
                            shutil.copyfile(source, stage.file(final))
                if size > _PROTO_LIMIT:
                    spill_path = os.path.join(out_dir, spill_name)
                    spill(initializers, stage.staged(spill_path) or stage.file(spill_path), spill_name, size - _PROTO_LIMIT, _ALIGNMENT)
                    pieces, size = model_pieces(model, nodes, initializers)
                    if size > _PROTO_LIMIT:
                        raise UsageError(
                            f"cannot write {shown}: the model exceeds protobuf's 2 GiB limit"
                            " even with its initializers stored externally"
                        )
                with open(stage.file(out_abs), "wb") as f:
                    _write_pieces(f, pieces)
            stage.commit()
    except BaseException as exc:
        if prestaged is not None:
            prestaged.discard()
        if isinstance(exc, OSError):
            raise UsageError(f"cannot write {shown}: {reason(exc)}") from exc
        raise


# --- loading -------------------------------------------------------------------------


def _read_model_file(path: str | os.PathLike, where: str, lazy: bool = False) -> bytes:
    """Content of the model file, refusing anything but a non-empty regular file.

    With ``lazy``, a big file's large initializer payloads are left on disk (see ``model_wire.without_payloads``).
    """
    try:
        # O_NONBLOCK so that a FIFO (or a symlink to one) fails the checks below instead of hanging.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise BadModelError(f"{where}: file not found") from None
    except (OSError, ValueError) as exc:
        raise BadModelError(f"{where}: cannot open ({reason(exc)})") from exc
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise BadModelError(f"{where}: is a directory, not an ONNX file")
        if not stat.S_ISREG(mode):
            raise BadModelError(f"{where}: not a regular file")
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as f:
        if lazy and os.fstat(f.fileno()).st_size >= _LAZY_FILE:
            try:
                with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped, memoryview(mapped) as view:
                    return without_payloads(view, os.path.basename(path), _LAZY_TENSOR)
            except (ValueError, IndexError, OSError):
                f.seek(0)  # not a well-formed protobuf: let the normal parse report it
        try:
            data = f.read()
        except OSError as exc:
            raise BadModelError(f"{where}: cannot read ({reason(exc)})") from exc
        except MemoryError:
            raise BadModelError(f"{where}: file too large to load into memory") from None
    if not data:
        raise BadModelError(f"{where}: file is empty")
    return data
