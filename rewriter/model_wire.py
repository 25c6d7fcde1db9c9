"""ONNX model files at the protobuf wire-format level, for ``rewriter.model_io``: big weights never exist
twice in memory.

Reading: ``without_payloads`` scans a big model file and leaves its large initializer payloads on disk,
described as external data pointing into the model file itself (``is_lazy_inline``). Writing:
``model_pieces`` splits a model into runs of serialized fields and one entry per node and initializer,
``write_pieces`` serializes them one at a time (streaming lazily loaded payloads back from their file) and
``spill`` moves the largest initializers to a data file when a model would exceed protobuf's 2 GiB limit.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO, Union

import onnx
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from rewriter.model_checks import is_external, locate_external, show

# Field numbers of ModelProto.graph, GraphProto.node and GraphProto.initializer.
_MODEL_GRAPH, _GRAPH_NODE, _GRAPH_INITIALIZER = 7, 1, 5
# TensorProto.raw_data, .external_data, .data_location.
_TENSOR_RAW_DATA, _TENSOR_EXTERNAL_DATA, _TENSOR_DATA_LOCATION = 9, 13, 14
# Marks the external-data entries of a payload left in the model file itself by ``without_payloads``.
_INLINE_KEY = "rewriter.inline"

# A piece of a message being written: serialized ordinary fields, or one entry of a
# length-delimited field (field number, message or nested pieces, payload size).
Piece = Union[bytes, tuple[int, Union[Message, list["Piece"], "LazyPayload"], int]]


# --- reading without the payloads ----------------------------------------------------


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


def without_payloads(buf: memoryview, file_name: str, min_payload: int) -> bytes:
    """The model's bytes with every main-graph initializer's raw_data of >= ``min_payload`` bytes replaced by an
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
                if raw_at is not None and t_end - raw_at >= min_payload:
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


def is_lazy_inline(tensor: onnx.TensorProto) -> bool:
    """An initializer whose payload ``without_payloads`` left in the model file (written back inline on save)."""
    return is_external(tensor) and any(e.key == _INLINE_KEY for e in tensor.external_data)


# --- writing piece by piece ----------------------------------------------------------


@contextlib.contextmanager
def locations_replaced(tensors: Sequence[onnx.TensorProto], locations: Sequence[str]) -> Iterator[None]:
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
class LazyPayload:
    """An initializer whose raw_data is streamed from ``path`` when written (see ``without_payloads``)."""

    stub: bytes  # the tensor's other fields, serialized
    path: str
    offset: int
    length: int


def inline_item(tensor: onnx.TensorProto, source_dir: str | os.PathLike | None) -> tuple[LazyPayload, int]:
    path, offset, length = locate_external(tensor, source_dir or ".", show(os.fspath(source_dir or ".")))
    stub = onnx.TensorProto()
    stub.CopyFrom(tensor)
    del stub.external_data[:]
    stub.ClearField("data_location")
    stub_bytes = stub.SerializeToString()
    assert length is not None
    return LazyPayload(stub_bytes, path, offset, length), len(stub_bytes) + _entry_size(_TENSOR_RAW_DATA, length)


def _copy_range(source: str, offset: int, length: int, f: BinaryIO) -> None:
    with open(source, "rb") as src:
        src.seek(offset)
        while length > 0:
            chunk = src.read(min(length, 8 << 20))
            if not chunk:
                raise OSError(f"{source} is shorter than expected")
            f.write(chunk)
            length -= len(chunk)


def spill(
    initializers: list[tuple[onnx.TensorProto, int]], path: str, location: str, excess: int, alignment: int
) -> None:
    """Move the largest raw-data initializers to the end of the file at ``path`` until ``excess`` bytes are saved,
    each starting on a multiple of ``alignment``.

    Replaces the moved entries of ``initializers`` (tensor, serialized size) with
    external-data stand-ins; the model itself is not modified.
    """
    candidates = sorted(
        (i for i, (t, _) in enumerate(initializers) if isinstance(t, onnx.TensorProto) and t.HasField("raw_data") and not is_external(t)),
        key=lambda i: initializers[i][1],
        reverse=True,
    )
    with open(path, "r+b") as f:
        f.seek(0, os.SEEK_END)
        for i in candidates:
            if excess <= 0:
                break
            tensor, size = initializers[i]
            f.write(b"\0" * (-f.tell() % alignment))
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


def model_pieces(
    model: onnx.ModelProto,
    nodes: list[tuple[onnx.NodeProto, int]],
    initializers: list[tuple[onnx.TensorProto, int]],
) -> tuple[list[Piece], int]:
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
    message: Message, streamed: dict[int, Sequence[tuple[Message | list[Piece], int]]]
) -> list[Piece]:
    """Split ``message`` in field-number order, as protobuf encodes it, into serialized runs
    of ordinary fields and one entry per item of the ``streamed`` fields."""
    pieces: list[Piece] = []
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


def _piece_size(piece: Piece) -> int:
    if isinstance(piece, bytes):
        return len(piece)
    number, _, size = piece
    return _entry_size(number, size)


def _entry_size(number: int, size: int) -> int:
    """Encoded size of a length-delimited field entry with a ``size``-byte payload."""
    return len(_varint(number << 3 | 2)) + len(_varint(size)) + size


def write_pieces(f: BinaryIO, pieces: list[Piece]) -> None:
    for piece in pieces:
        if isinstance(piece, bytes):
            f.write(piece)
            continue
        number, item, size = piece
        f.write(_varint(number << 3 | 2) + _varint(size))
        if isinstance(item, list):
            write_pieces(f, item)
        elif isinstance(item, LazyPayload):
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
