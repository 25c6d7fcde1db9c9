"""Hostile-input checks of ONNX models, for ``rewriter.model_io``.

The binary parse (never the JSON or text parsers a file name could pick), a cheap structural validation
instead of ``onnx.checker``, every tensor of a model at any depth, and external data locations: inside the
model directory, present and long enough. Untrusted text in messages goes through ``show``.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator

import onnx

from rewriter.errors import BadModelError

# Untrusted names and texts are clipped to this many characters in messages.
_MAX_SHOWN = 200


# --- parsing and structure ----------------------------------------------------------


def parse_model(data: bytes, where: str) -> onnx.ModelProto:
    """Binary protobuf parse whatever the file extension (onnx.load would pick JSON or text parsers by name)."""
    try:
        return onnx.load_model_from_string(data, format="protobuf")
    except Exception as exc:  # DecodeError, but also upb limits (size, nesting depth) and MemoryError
        raise BadModelError(f"{where}: not a valid ONNX protobuf file ({show(exc)})") from exc


def check_structure(model: onnx.ModelProto, where: str) -> None:
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
        shown = f"'{show(opset.domain)}'"
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
                    f"{where}: node '{show(node.name)}' uses domain '{show(node.domain)}'"
                    " which the model does not import"
                )
    # Function bodies import their own opsets; only their shape is checked here.
    for owner in _node_owners(model.functions):
        for node in owner.node:
            _check_op_type(node, where)


def _check_op_type(node: onnx.NodeProto, where: str) -> None:
    if not node.op_type.strip():
        raise BadModelError(f"{where}: node '{show(node.name)}' has no op_type")


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


def all_tensors(model: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
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


def is_external(tensor: onnx.TensorProto) -> bool:
    return tensor.data_location == onnx.TensorProto.EXTERNAL


# --- external data -------------------------------------------------------------------


def locate_external(
    tensor: onnx.TensorProto, base_dir: str | os.PathLike, where: str
) -> tuple[str, int, int | None]:
    """Resolved data file, offset and length of an external tensor, after every safety check."""
    what = f"{where}: tensor '{show(tensor.name)}'"
    entries: dict[str, str] = {}
    for entry in tensor.external_data:
        if entry.key in entries:
            raise BadModelError(f"{what} repeats external data key '{show(entry.key)}'")
        entries[entry.key] = entry.value
    location = entries.get("location", "")
    if not location or "\0" in location:
        raise BadModelError(f"{what} has no valid external data location")
    shown = f"external data '{show(location)}'"
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
        raise BadModelError(f"{what}: {shown} cannot be accessed ({reason(exc)})") from exc
    if not stat.S_ISREG(info.st_mode):
        raise BadModelError(f"{what}: {shown} is not a regular file")
    end = offset + (length or 0)
    if end > info.st_size:
        raise BadModelError(
            f"{what}: {shown} has {info.st_size} bytes, fewer than the {end} declared"
        )
    return resolved, offset, length


def read_external(tensor: onnx.TensorProto, base_dir: str | os.PathLike, where: str) -> bytes:
    """Exactly the bytes of one external tensor."""
    path, offset, length = locate_external(tensor, base_dir, where)
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read() if length is None else f.read(length)
    except OSError as exc:
        raise BadModelError(
            f"{where}: tensor '{show(tensor.name)}': cannot read external data ({reason(exc)})"
        ) from exc
    if length is not None and len(data) != length:  # the file shrank after the check
        raise BadModelError(f"{where}: tensor '{show(tensor.name)}': external data is truncated")
    return data


# --- messages ------------------------------------------------------------------------


def show(value: object) -> str:
    """Untrusted text as one short line: control characters escaped, length clipped."""
    text = str(value)
    if len(text) > _MAX_SHOWN:
        text = text[:_MAX_SHOWN] + "..."
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def reason(exc: BaseException) -> str:
    """Short lower-case reason of an OSError ("permission denied"), without the repeated path."""
    text = getattr(exc, "strerror", None) or str(exc)
    return show(text[:1].lower() + text[1:])
