"""Read and write ONNX models: hostile-input checks, on-demand external data, atomic output.

Loading parses only the graph proto; external weights stay on disk until a tensor is
asked for (``read_tensor``). Saving writes to temporary files beside the destination
and renames them into place only once everything is written.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import shutil
import stat
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
import onnx
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from onnx import numpy_helper

from rewriter.atomic import Staging, temp_file
from rewriter.errors import BadModelError, UsageError

# Protobuf cannot parse a message of 2 GiB or more, so no saved model file may exceed this.
_PROTO_LIMIT = 2**31 - 1
# Weights moved out of an oversized model start on this boundary so runtimes can mmap them
# (64 KiB is Windows' allocation granularity and a multiple of every common page size).
_ALIGNMENT = 64 * 1024
# Untrusted names and texts are clipped to this many characters in messages.
_MAX_SHOWN = 200
# Field numbers of ModelProto.graph, GraphProto.node and GraphProto.initializer.
_MODEL_GRAPH, _GRAPH_NODE, _GRAPH_INITIALIZER = 7, 1, 5
# TensorProto.raw_data, .external_data, .data_location.
_TENSOR_RAW_DATA, _TENSOR_EXTERNAL_DATA, _TENSOR_DATA_LOCATION = 9, 13, 14
# Inline models at least this big are loaded lazily: initializers of at least _LAZY_TENSOR bytes stay in
# the file (described as external data pointing into the model file itself, marked with _INLINE_KEY) and
# are streamed back inline when the model is saved. The graph is all a pass needs.
_LAZY_FILE = 64 << 20
_LAZY_TENSOR = 1 << 20
_INLINE_KEY = "rewriter.inline"

# A piece of a message being written: serialized ordinary fields, or one entry of a
# length-delimited field (field number, message or nested pieces, payload size).
_Piece = Union[bytes, tuple[int, Union[Message, list["_Piece"], "_LazyPayload"], int]]


def model_dir(path: str | os.PathLike) -> Path:
    """Directory that the external data locations of the model at ``path`` are relative to."""
    return Path(os.path.abspath(path)).parent


def load_model(path: str | os.PathLike, *, load_weights: bool = False) -> onnx.ModelProto:
    """Parse and validate the binary ONNX model at ``path``.

    External data is checked (safe location, file present and long enough) but only read
    when ``load_weights`` is true. Every problem with the input raises a one-line
    ``BadModelError`` naming the file.
    """
    where = _show(os.fspath(path))
    model = _parse(_read_model_file(path, where, lazy=not load_weights), where)
    _check_structure(model, where)
    base_dir = model_dir(path)
    for tensor in [t for t in _tensors(model) if _is_external(t)]:
        if load_weights:
            tensor.raw_data = _read_external(tensor, base_dir, where)
            tensor.data_location = onnx.TensorProto.DEFAULT
            del tensor.external_data[:]
        else:
            _locate_external(tensor, base_dir, where)
    return model


def external_data_files(model: onnx.ModelProto) -> set[str]:
    """The ``location`` of every external tensor anywhere in ``model`` (subgraphs and functions included)."""
    return {
        entry.value
        for tensor in _tensors(model)
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
    where = _show(os.fspath(base_dir))
    if _is_external(tensor):
        inline = onnx.TensorProto()
        inline.CopyFrom(tensor)  # cheap: an external tensor carries no payload
        inline.raw_data = _read_external(tensor, base_dir, where)
        inline.data_location = onnx.TensorProto.DEFAULT
        del inline.external_data[:]
        tensor = inline
    try:
        return numpy_helper.to_array(tensor)
    except Exception as exc:  # malformed payloads surface as assorted numpy/onnx errors
        raise BadModelError(
            f"{where}: tensor '{_show(tensor.name)}' cannot be decoded ({_show(exc)})"
        ) from exc


class DataCopy:
    """Copies of a model's external data files, started early in background threads.

    The copy is the dominant cost of saving a model with external data and needs nothing from the
    rewrite, so it runs while the passes work; ``save_model(..., prestaged=...)`` then only renames.
    The copies are temporary files beside the output until then; ``discard`` removes them.
    """

    def __init__(self, model: onnx.ModelProto, out_path: str | os.PathLike, source_dir: str | os.PathLike) -> None:
        out_dir = os.path.dirname(os.path.abspath(out_path))
        external = [t for t in _tensors(model) if _is_external(t) and not _is_lazy_inline(t)]
        sources = dict.fromkeys(_locate_external(t, source_dir, _show(os.fspath(source_dir)))[0] for t in external)
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
    shown = _show(os.fspath(out_path))
    out_abs = os.path.abspath(out_path)
    out_dir, name = os.path.split(out_abs)
    if not os.path.isdir(out_dir):
        raise UsageError(f"cannot write {shown}: directory does not exist")
    if os.path.isdir(out_abs):
        raise UsageError(f"cannot write {shown}: is a directory")

    external = [t for t in _tensors(model) if _is_external(t) and not _is_lazy_inline(t)]
    lazy = [t for t in model.graph.initializer if _is_lazy_inline(t)]
    if (external or lazy) and source_dir is None:
        raise UsageError(
            f"cannot write {shown}: the model references external data but no source directory was given"
        )
    resolved = [_locate_external(t, source_dir, _show(os.fspath(source_dir)))[0] for t in external]
    sources = {source: i for i, source in enumerate(dict.fromkeys(resolved))}  # file -> copy index
    if len(sources) == 1:
        data_names = [f"{name}.data"]
    else:
        data_names = [f"{name}.{i}.data" for i in range(len(sources))]
    spill_name = f"{name}.data"
    new_locations = [data_names[sources[source]] for source in resolved]

    try:
        with Staging() as stage:  # data files first, the model last
            with _locations_replaced(external, new_locations):
                graph = model.graph
                nodes = [(node, node.ByteSize()) for node in graph.node]
                initializers = [_inline_item(t, source_dir) if _is_lazy_inline(t) else (t, t.ByteSize()) for t in graph.initializer]
                pieces, size = _model_pieces(model, nodes, initializers)
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
                    _spill(initializers, stage.staged(spill_path) or stage.file(spill_path), spill_name, size - _PROTO_LIMIT)
                    pieces, size = _model_pieces(model, nodes, initializers)
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
            raise UsageError(f"cannot write {shown}: {_reason(exc)}") from exc
        raise


# --- loading -------------------------------------------------------------------------


def _read_model_file(path: str | os.PathLike, where: str, lazy: bool = False) -> bytes:
    """Content of the model file, refusing anything but a non-empty regular file.

    With ``lazy``, a big file's large initializer payloads are left on disk (see ``_without_payloads``).
    """
    try:
        # O_NONBLOCK so that a FIFO (or a symlink to one) fails the checks below instead of hanging.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise BadModelError(f"{where}: file not found") from None
    except (OSError, ValueError) as exc:
        raise BadModelError(f"{where}: cannot open ({_reason(exc)})") from exc
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
                    return _without_payloads(view, os.path.basename(path))
            except (ValueError, IndexError, OSError):
                f.seek(0)  # not a well-formed protobuf: let the normal parse report it
        try:
            data = f.read()
        except OSError as exc:
            raise BadModelError(f"{where}: cannot read ({_reason(exc)})") from exc
        except MemoryError:
            raise BadModelError(f"{where}: file too large to load into memory") from None
    if not data:
        raise BadModelError(f"{where}: file is empty")
    return data


def _read_varint(buf: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(buf: memoryview, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(field number, wire type, start of the field's bytes, end) for each field in ``buf[start:end]``."""
    pos = start
    while pos < end:
        field_start = pos
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, pos = _read_varint(buf, pos)
        elif wire == 1:
            pos += 8
        elif wire == 2:
            length, pos = _read_varint(buf, pos)
            pos += length
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if pos > end:
            raise IndexError("truncated field")
        yield number, wire, field_start, pos


def _payload(buf: memoryview, field_start: int) -> int:
    """Offset of a length-delimited field's payload."""
    _, pos = _read_varint(buf, field_start)
    _, pos = _read_varint(buf, pos)
    return pos


def _entry(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _without_payloads(buf: memoryview, file_name: str) -> bytes:
    """The model's bytes with every main-graph initializer's raw_data of >= _LAZY_TENSOR bytes replaced by an
    external-data reference into the model file itself (offset/length of the payload, marked _INLINE_KEY).
    Only the graph structure is read; the payload pages are never touched."""
    out = bytearray()
    for number, wire, start, end in _fields(buf, 0, len(buf)):
        if number != _MODEL_GRAPH or wire != 2:
            out += buf[start:end]
            continue
        graph = bytearray()
        for g_number, g_wire, g_start, g_end in _fields(buf, _payload(buf, start), end):
            if g_number != _GRAPH_INITIALIZER or g_wire != 2:
                graph += buf[g_start:g_end]
                continue
            tensor = bytearray()
            payload_at = None
            t_begin = _payload(buf, g_start)
            for t_number, t_wire, t_start, t_end in _fields(buf, t_begin, g_end):
                raw_at = _payload(buf, t_start) if t_number == _TENSOR_RAW_DATA and t_wire == 2 else None
                if raw_at is not None and t_end - raw_at >= _LAZY_TENSOR:
                    payload_at = (raw_at, t_end - raw_at)
                    continue
                tensor += buf[t_start:t_end]
            if payload_at is not None:
                for key, value in (("location", file_name), ("offset", payload_at[0]), ("length", payload_at[1]), (_INLINE_KEY, "1")):
                    tensor += _entry(_TENSOR_EXTERNAL_DATA, _entry(1, key.encode()) + _entry(2, str(value).encode()))
                tensor += _varint(_TENSOR_DATA_LOCATION << 3) + _varint(onnx.TensorProto.EXTERNAL)
            graph += _entry(_GRAPH_INITIALIZER, bytes(tensor))
        out += _entry(_MODEL_GRAPH, bytes(graph))
    return bytes(out)


def _is_lazy_inline(tensor: onnx.TensorProto) -> bool:
    return _is_external(tensor) and any(e.key == _INLINE_KEY for e in tensor.external_data)


def _parse(data: bytes, where: str) -> onnx.ModelProto:
    """Binary protobuf parse whatever the file extension (onnx.load would pick JSON or text parsers by name)."""
    try:
        return onnx.load_model_from_string(data, format="protobuf")
    except Exception as exc:  # DecodeError, but also upb limits (size, nesting depth) and MemoryError
        raise BadModelError(f"{where}: not a valid ONNX protobuf file ({_show(exc)})") from exc


def _check_structure(model: onnx.ModelProto, where: str) -> None:
    """Cheap validation instead of onnx.checker, which is slow and wants the weights."""
    # Text or truncated files can parse "successfully" into a nearly empty proto.
    missing = [
        field
        for field, present in (
            ("ir_version", model.ir_version > 0),
            ("graph", model.HasField("graph")),
            ("opset_import", len(model.opset_import) > 0),
        )
        if not present
    ]
    if missing:
        raise BadModelError(f"{where}: not an ONNX model (missing {', '.join(missing)})")
    if model.ir_version > onnx.IR_VERSION:
        raise BadModelError(
            f"{where}: IR version {model.ir_version} is newer than this onnx supports ({onnx.IR_VERSION})"
        )

    max_opset = onnx.defs.onnx_opset_version()
    domains: set[str] = set()
    for opset in model.opset_import:
        domain = _canonical_domain(opset.domain)
        shown = f"'{_show(opset.domain)}'"
        if domain in domains:
            raise BadModelError(f"{where}: opset domain {shown} is imported twice")
        if opset.version < 1:
            raise BadModelError(f"{where}: opset domain {shown} has invalid version {opset.version}")
        if domain == "" and opset.version > max_opset:
            raise BadModelError(
                f"{where}: ai.onnx opset {opset.version} is unknown (this onnx supports up to {max_opset})"
            )
        domains.add(domain)

    for owner in _node_owners(_main_graphs(model)):
        for node in owner.node:
            _check_op_type(node, where)
            if _canonical_domain(node.domain) not in domains:
                raise BadModelError(
                    f"{where}: node '{_show(node.name)}' uses domain '{_show(node.domain)}'"
                    " which the model does not import"
                )
    # Function bodies import their own opsets; only their shape is checked here.
    for owner in _node_owners(model.functions):
        for node in owner.node:
            _check_op_type(node, where)


def _check_op_type(node: onnx.NodeProto, where: str) -> None:
    if not node.op_type.strip():
        raise BadModelError(f"{where}: node '{_show(node.name)}' has no op_type")


def _canonical_domain(domain: str) -> str:
    return "" if domain == "ai.onnx" else domain


# --- walking the model ---------------------------------------------------------------


def _main_graphs(model: onnx.ModelProto) -> list[onnx.GraphProto]:
    """The main graph and the training graphs, which all use the model's opset imports."""
    graphs = [model.graph]
    for info in model.training_info:
        graphs += [info.initialization, info.algorithm]
    return graphs


def _node_owners(
    roots: Iterable[onnx.GraphProto | onnx.FunctionProto],
) -> Iterator[onnx.GraphProto | onnx.FunctionProto]:
    """``roots`` and every subgraph nested in their nodes' attributes (If/Loop/Scan bodies...)."""
    pending = list(roots)
    while pending:  # iterative: hostile nesting must not hit Python's recursion limit
        owner = pending.pop()
        yield owner
        for node in owner.node:
            for attr in node.attribute:
                if attr.HasField("g"):
                    pending.append(attr.g)
                pending.extend(attr.graphs)


def _tensors(model: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    """Every TensorProto in ``model``: initializers, sparse parts and attribute tensors, at any depth."""
    for owner in _node_owners([*_main_graphs(model), *model.functions]):
        if isinstance(owner, onnx.GraphProto):
            yield from owner.initializer
            yield from _sparse_parts(owner.sparse_initializer)
        for node in owner.node:
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield attr.t
                yield from attr.tensors
                if attr.HasField("sparse_tensor"):
                    yield from _sparse_parts([attr.sparse_tensor])
                yield from _sparse_parts(attr.sparse_tensors)


def _sparse_parts(sparse: Iterable[onnx.SparseTensorProto]) -> Iterator[onnx.TensorProto]:
    for tensor in sparse:
        yield tensor.values
        yield tensor.indices


def _is_external(tensor: onnx.TensorProto) -> bool:
    return tensor.data_location == onnx.TensorProto.EXTERNAL


# --- external data -------------------------------------------------------------------


def _locate_external(
    tensor: onnx.TensorProto, base_dir: str | os.PathLike, where: str
) -> tuple[str, int, int | None]:
    """Resolved data file, offset and length of an external tensor, after every safety check."""
    what = f"{where}: tensor '{_show(tensor.name)}'"
    entries: dict[str, str] = {}
    for entry in tensor.external_data:
        if entry.key in entries:
            raise BadModelError(f"{what} repeats external data key '{_show(entry.key)}'")
        entries[entry.key] = entry.value
    location = entries.get("location", "")
    if not location or "\0" in location:
        raise BadModelError(f"{what} has no valid external data location")
    shown = f"external data '{_show(location)}'"
    if os.path.isabs(location):
        raise BadModelError(f"{what}: absolute {shown} refused")
    base = os.path.realpath(base_dir)
    resolved = os.path.realpath(os.path.join(base, location))
    if resolved == base or os.path.commonpath([base, resolved]) != base:
        raise BadModelError(f"{what}: {shown} is outside the model directory")
    try:
        offset = int(entries.get("offset", "0"))
        length = int(entries["length"]) if "length" in entries else None
    except ValueError:
        raise BadModelError(f"{what}: {shown} has a non-integer offset or length") from None
    if offset < 0 or (length is not None and length < 0):
        raise BadModelError(f"{what}: {shown} has a negative offset or length")
    try:
        info = os.stat(resolved)
    except FileNotFoundError:
        raise BadModelError(f"{what}: {shown} file is missing") from None
    except OSError as exc:
        raise BadModelError(f"{what}: {shown} cannot be accessed ({_reason(exc)})") from exc
    if not stat.S_ISREG(info.st_mode):
        raise BadModelError(f"{what}: {shown} is not a regular file")
    end = offset + (length or 0)
    if end > info.st_size:
        raise BadModelError(
            f"{what}: {shown} has {info.st_size} bytes, fewer than the {end} declared"
        )
    return resolved, offset, length


def _read_external(tensor: onnx.TensorProto, base_dir: str | os.PathLike, where: str) -> bytes:
    """Exactly the bytes of one external tensor."""
    path, offset, length = _locate_external(tensor, base_dir, where)
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read() if length is None else f.read(length)
    except OSError as exc:
        raise BadModelError(
            f"{where}: tensor '{_show(tensor.name)}': cannot read external data ({_reason(exc)})"
        ) from exc
    if length is not None and len(data) != length:  # the file shrank after the check
        raise BadModelError(f"{where}: tensor '{_show(tensor.name)}': external data is truncated")
    return data


# --- saving --------------------------------------------------------------------------


@contextlib.contextmanager
def _locations_replaced(tensors: Sequence[onnx.TensorProto], locations: Sequence[str]) -> Iterator[None]:
    """Point each tensor at a new location for the duration of the block.

    Done in place and undone afterwards rather than on a copy, which for an inline model
    would duplicate every weight.
    """
    entries = [next(e for e in t.external_data if e.key == "location") for t in tensors]
    previous = [entry.value for entry in entries]
    try:
        for entry, location in zip(entries, locations):
            entry.value = location
        yield
    finally:
        for entry, value in zip(entries, previous):
            entry.value = value


@dataclass(frozen=True)
class _LazyPayload:
    """An initializer whose raw_data is streamed from ``path`` when written (see ``_without_payloads``)."""

    stub: bytes  # the tensor's other fields, serialized
    path: str
    offset: int
    length: int


def _inline_item(tensor: onnx.TensorProto, source_dir: str | os.PathLike | None) -> tuple[_LazyPayload, int]:
    path, offset, length = _locate_external(tensor, source_dir or ".", _show(os.fspath(source_dir or ".")))
    stub = onnx.TensorProto()
    stub.CopyFrom(tensor)
    del stub.external_data[:]
    stub.ClearField("data_location")
    stub_bytes = stub.SerializeToString()
    assert length is not None
    return _LazyPayload(stub_bytes, path, offset, length), len(stub_bytes) + _entry_size(_TENSOR_RAW_DATA, length)


def _copy_range(source: str, offset: int, length: int, f: BinaryIO) -> None:
    with open(source, "rb") as src:
        src.seek(offset)
        while length > 0:
            chunk = src.read(min(length, 8 << 20))
            if not chunk:
                raise OSError(f"{source} is shorter than expected")
            f.write(chunk)
            length -= len(chunk)


def _spill(
    initializers: list[tuple[onnx.TensorProto, int]], path: str, location: str, excess: int
) -> None:
    """Move the largest raw-data initializers to the end of the file at ``path`` until ``excess`` bytes are saved.

    Replaces the moved entries of ``initializers`` (tensor, serialized size) with
    external-data stand-ins; the model itself is not modified.
    """
    candidates = sorted(
        (i for i, (t, _) in enumerate(initializers) if isinstance(t, onnx.TensorProto) and t.HasField("raw_data") and not _is_external(t)),
        key=lambda i: initializers[i][1],
        reverse=True,
    )
    with open(path, "r+b") as f:
        f.seek(0, os.SEEK_END)
        for i in candidates:
            if excess <= 0:
                break
            tensor, size = initializers[i]
            f.write(b"\0" * (-f.tell() % _ALIGNMENT))
            offset = f.tell()
            data = tensor.raw_data  # one tensor's bytes at a time
            f.write(data)
            stub = onnx.TensorProto()
            for field in tensor.DESCRIPTOR.fields:  # not ListFields(), which would copy raw_data again
                if field.name not in ("raw_data", "external_data", "data_location") and (
                    field.is_repeated or tensor.HasField(field.name)
                ):
                    _copy_field(stub, field, getattr(tensor, field.name))
            for key, value in (("location", location), ("offset", offset), ("length", len(data))):
                entry = stub.external_data.add()
                entry.key, entry.value = key, str(value)
            stub.data_location = onnx.TensorProto.EXTERNAL
            initializers[i] = (stub, stub.ByteSize())
            excess -= _entry_size(_GRAPH_INITIALIZER, size) - _entry_size(_GRAPH_INITIALIZER, initializers[i][1])


def _model_pieces(
    model: onnx.ModelProto,
    nodes: list[tuple[onnx.NodeProto, int]],
    initializers: list[tuple[onnx.TensorProto, int]],
) -> tuple[list[_Piece], int]:
    """Pieces that serialize ``model`` with the given main-graph nodes and initializers, and their total size.

    The output equals ``model.SerializeToString()`` (bar unknown fields of the model and
    main graph) but each node and initializer is serialized only when written, so big
    weights never exist twice in memory. (upb's ByteSize serializes too, hence the sizes
    are computed once by the caller.)
    """
    graph = _pieces(model.graph, {_GRAPH_NODE: nodes, _GRAPH_INITIALIZER: initializers})
    pieces = _pieces(model, {_MODEL_GRAPH: [(graph, sum(map(_piece_size, graph)))]})
    return pieces, sum(map(_piece_size, pieces))


def _pieces(
    message: Message, streamed: dict[int, Sequence[tuple[Message | list[_Piece], int]]]
) -> list[_Piece]:
    """Split ``message`` in field-number order, as protobuf encodes it, into serialized runs
    of ordinary fields and one entry per item of the ``streamed`` fields."""
    pieces: list[_Piece] = []
    run = type(message)()
    for field, value in message.ListFields():  # sorted by field number
        if field.number in streamed:
            pieces.append(run.SerializeToString())
            run.Clear()
            pieces.extend((field.number, item, size) for item, size in streamed[field.number])
        else:
            _copy_field(run, field, value)
    pieces.append(run.SerializeToString())
    return pieces


def _piece_size(piece: _Piece) -> int:
    if isinstance(piece, bytes):
        return len(piece)
    number, _, size = piece
    return _entry_size(number, size)


def _entry_size(number: int, size: int) -> int:
    """Encoded size of a length-delimited field entry with a ``size``-byte payload."""
    return len(_varint(number << 3 | 2)) + len(_varint(size)) + size


def _write_pieces(f: BinaryIO, pieces: list[_Piece]) -> None:
    for piece in pieces:
        if isinstance(piece, bytes):
            f.write(piece)
            continue
        number, item, size = piece
        f.write(_varint(number << 3 | 2) + _varint(size))
        if isinstance(item, list):
            _write_pieces(f, item)
        elif isinstance(item, _LazyPayload):
            f.write(item.stub + _varint(_TENSOR_RAW_DATA << 3 | 2) + _varint(item.length))
            _copy_range(item.path, item.offset, item.length, f)
        else:
            f.write(item.SerializeToString())


def _copy_field(target: Message, field: FieldDescriptor, value: object) -> None:
    if field.is_repeated:
        getattr(target, field.name).extend(value)
    elif field.message_type is not None:
        getattr(target, field.name).CopyFrom(value)
    else:
        setattr(target, field.name, value)


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


# --- messages ------------------------------------------------------------------------


def _show(value: object) -> str:
    """Untrusted text as one short line: control characters escaped, length clipped."""
    text = str(value)
    if len(text) > _MAX_SHOWN:
        text = text[:_MAX_SHOWN] + "..."
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _reason(exc: BaseException) -> str:
    """Short lower-case reason of an OSError ("permission denied"), without the repeated path."""
    text = getattr(exc, "strerror", None) or str(exc)
    return _show(text[:1].lower() + text[1:])
