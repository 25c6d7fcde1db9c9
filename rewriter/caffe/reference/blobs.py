"""Blobs and checks shared by every layer of the Caffe reference evaluator: float32 arrays to and from
``BlobProto``, ``CaffeReferenceError`` (what Caffe's CHECKs abort on) and the axis / count helpers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rewriter.caffe import proto

F32 = np.float32


class CaffeReferenceError(Exception):
    """The net is not valid for Caffe (what Caffe's CHECKs would abort on)."""


def check(cond: bool, msg: str) -> None:
    """One of Caffe's CHECKs: ``CaffeReferenceError(msg)`` unless ``cond``."""
    if not cond:
        raise CaffeReferenceError(msg)


def canonical_axis(axis: int, rank: int) -> int:
    """``axis`` in ``[0, rank)``, negative axes counted from the end (Blob::CanonicalAxisIndex)."""
    check(-rank <= axis < rank, f"axis {axis} out of range for rank {rank}")
    return axis + rank if axis < 0 else axis


def element_count(shape: Sequence[int], start: int = 0, end: int | None = None) -> int:
    """Product of ``shape[start:end]``, 1 for no axes (Blob::count)."""
    return int(np.prod(shape[start:end], dtype=np.int64)) if shape[start:end] else 1


def blob_to_array(blob) -> np.ndarray:
    """BlobProto -> ndarray (shape field, or the legacy 4-D num/channels/height/width)."""
    if blob.HasField("shape"):
        shape = tuple(int(d) for d in blob.shape.dim)
    elif blob.num or blob.channels or blob.height or blob.width:
        shape = (blob.num, blob.channels, blob.height, blob.width)
    else:
        shape = ()
    data = np.asarray(blob.double_data if len(blob.double_data) else blob.data, dtype=np.float64)
    check(data.size == element_count(shape), f"blob has {data.size} values for shape {shape}")
    return data.astype(F32).reshape(shape)


def array_to_blob(array: np.ndarray, blob=None):
    blob = proto.BlobProto() if blob is None else blob
    array = np.array(array, dtype=F32, order="C")
    blob.shape.dim.extend(int(d) for d in array.shape)
    blob.data.extend(array.ravel().tolist())
    return blob
