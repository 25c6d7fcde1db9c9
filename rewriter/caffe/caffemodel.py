"""The caffemodel writer: a binary NetParameter streamed from numpy arrays.

The file holds names, types, bottoms, tops and blobs only, with BVLC's field numbers whatever the fork (a
fork's own parameters live in the prototxt). The bytes are what protobuf would serialize for the same
message; writing them directly keeps every weight out of per-float Python lists.
"""

from __future__ import annotations

from typing import BinaryIO

import numpy as np


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(number: int, wire: int) -> bytes:
    return _varint((number << 3) | wire)


def _len_field(number: int, payload_len: int) -> bytes:
    return _key(number, 2) + _varint(payload_len)


def _string_field(number: int, text: str) -> bytes:
    data = text.encode("utf-8")
    return _len_field(number, len(data)) + data


class _BlobPiece:
    """One BlobProto: packed float data (5) then shape (7) — field order, as protobuf serializes it."""

    def __init__(self, array: np.ndarray) -> None:
        self.data = np.array(array, dtype="<f4", order="C")
        dims = b"".join(_varint(int(d)) for d in array.shape)
        shape_body = (_len_field(1, len(dims)) + dims) if dims else b""
        self.head = _len_field(5, self.data.nbytes) if self.data.size else b""
        self.tail = _len_field(7, len(shape_body)) + shape_body
        self.size = len(self.head) + (self.data.nbytes if self.data.size else 0) + len(self.tail)

    def write(self, f: BinaryIO) -> None:
        f.write(self.head)
        if self.data.size:
            f.write(self.data.tobytes())
        f.write(self.tail)


def write_caffemodel(f: BinaryIO, net_name: str, layers, weights: dict[str, list[np.ndarray]]) -> None:
    """Binary NetParameter {name, layer: {name, type, bottom, top, blobs}} streamed to ``f``.

    A small encoder (bytes identical to protobuf's serialization of the same message) so that weights go
    from numpy to the file without a per-float Python list.
    """
    f.write(_string_field(1, net_name))
    for layer in layers:
        head = _string_field(1, layer.name) + _string_field(2, layer.type)
        head += b"".join(_string_field(3, b) for b in layer.bottom) + b"".join(_string_field(4, t) for t in layer.top)
        pieces = [_BlobPiece(a) for a in weights.get(layer.name, [])]
        body_len = len(head) + sum(len(_len_field(7, p.size)) + p.size for p in pieces)
        f.write(_len_field(100, body_len))
        f.write(head)
        for p in pieces:
            f.write(_len_field(7, p.size))
            p.write(f)


__all__ = ["write_caffemodel"]
