"""A flexible batch dimension for Core ML: axis 0 of the inputs whose batch the ONNX model leaves symbolic
becomes a ``RangeDim(1, max_batch)`` in the saved model instead of a refusal.

The translator works on static shapes (every Shape-derived value folded to a constant), so the program is
translated at batch 1, 2 and 3 while every constant the MIL builder creates is recorded. A constant that
differs between the three is a value computed from the batch (a Reshape target ``[N, C, -1]``, a Slice end,
Resize sizes...): it must come from the same op in all three programs and be ``base + N * delta``, or be one
row repeated N times (a class token expanded to the batch). The program is then translated once more with a
symbolic batch, and those constants are computed from the input's run-time shape (``shape`` ->
``slice_by_index`` -> ``mul``/``add``/``concat``; a repeated row: row + ``fill`` zeros of shape [N, ...]). Finally, every op of
the symbolic program must have, at batch 1, 2 and 3, exactly the shapes of the static programs. Anything else
(a different op sequence, a float constant or a constant whose shape depends on the batch, a value that is
not linear in it, an op that needs it at compile time) is refused naming the node, with ``--input-shape``
to pin the batch.

fix-resize itself runs on the symbolic model when it can (its rewrites then hold for any batch). When its
analysis needs the batch static (a shape lost through batch arithmetic), it runs at each probe size, each
translation reads its own fixed model, and the same comparison decides whether the result follows the batch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx

from rewriter.errors import UsageError, input_shape_option
from rewriter.scopes import shape_of

if TYPE_CHECKING:
    from rewriter.coreml.translator import Translation, Translator

SHAPE_LIKE_SIZE = 64  # larger or non-integer constants are compared by digest (weights are never copied)
PROBES = (1, 2, 3)  # batch sizes the program is translated at; two fix a line, the third checks it
DEFAULT_MAX_BATCH = 64  # ML programs need a finite upper bound for a flexible dimension


@dataclass(frozen=True)
class BatchAxis:
    """The inputs whose axis 0 is a flexible batch (with their shapes at batch 1), the ONNX name of that
    dimension, and its upper bound."""

    at_one: tuple[tuple[str, tuple[int, ...]], ...]
    label: str
    max_batch: int = DEFAULT_MAX_BATCH

    @property
    def inputs(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.at_one)

    def pin_advice(self) -> str:
        """The options that pin the batch (to 1: any size works)."""
        return " ".join(input_shape_option(name, shape) for name, shape in self.at_one)

    def shapes(self, static: dict[str, tuple[int, ...]], batch: Any) -> dict[str, tuple[Any, ...]]:
        """``static`` with axis 0 of the batch inputs set to ``batch`` (a size or a MIL symbol)."""
        return {name: ((batch, *shape[1:]) if name in self.inputs else shape) for name, shape in static.items()}


def batch_input(vi: onnx.ValueInfoProto) -> str | None:
    """The label of ``vi``'s batch axis when axis 0 is its only dimension that is not fixed (else None)."""
    dims = shape_of(vi) or ()
    if len(dims) < 2 or _fixed(dims[0]) or not all(_fixed(d) for d in dims[1:]):
        return None
    return dims[0] if isinstance(dims[0], str) else "?"


def _fixed(d: object) -> bool:
    return isinstance(d, int) and d > 0


def refusal(where: str, why: str, batch: BatchAxis) -> UsageError:
    return UsageError(f"Core ML flexible batch: {where}: {why}; pin the batch with {batch.pin_advice()}")


# ---------------------------------------------------------------------------------------------------
# Recording and replacing the MIL builder's constants


@dataclass
class _Const:
    """One recorded constant: its value when it may be a shape (a small integer tensor), else its digest."""

    value: np.ndarray | None
    digest: tuple
    row: bytes | None  # digest of row 0 when every row along axis 0 equals it (a tensor broadcast over the batch)
    node: str  # the ONNX node being translated when the constant was made

    @classmethod
    def of(cls, val: Any, node: str) -> _Const:
        array = np.asarray(val)
        small_int = array.dtype.kind in "iu" and array.size <= SHAPE_LIKE_SIZE
        digest = (array.shape, array.dtype.str, _digest(array))
        row = _digest(array[:1]) if array.ndim and array.shape[0] and (array == array[:1]).all() else None
        return cls(array.copy() if small_int else None, digest, row, node)


def _digest(array: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(array).tobytes(), digest_size=16).digest()


@dataclass(frozen=True)
class _Linear:
    base: np.ndarray  # the value at batch 0
    delta: np.ndarray  # added per batch element


class _Repeated:
    """A constant with one row per batch element, all equal (a class token expanded to the batch): that row
    broadcast over the run-time batch."""


class _Constants:
    """Every ``mb.const`` call in creation order; in replace mode, the batch-dependent ones are computed."""

    def __init__(self, translator: Callable[[], Translator | None], replace: dict[int, _Linear | _Repeated] | None = None,
                 batch_input: str | None = None) -> None:
        self.translator = translator
        self.replace = replace or {}
        self.batch_input = batch_input
        self.records: list[_Const] = []
        self.inserted: set[str] = set()  # names of the ops built to compute replaced constants
        self._batch = None
        self._busy = False

    def make(self, original, cls, kwargs: dict[str, Any]):
        if self._busy:
            return original(cls, **kwargs)
        index = len(self.records)
        translator = self.translator()
        node = translator.current if translator is not None else None
        self.records.append(_Const.of(kwargs["val"], (node.name or node.output[0]) if node is not None else "the inputs"))
        if index not in self.replace:
            return original(cls, **kwargs)
        self._busy = True
        try:
            name = kwargs.get("name") or f"batch_value_{index}"
            rule = self.replace[index]
            if isinstance(rule, _Repeated):
                return self._repeated(np.asarray(kwargs["val"]), name)
            return self._computed(rule, name)
        finally:
            self._busy = False

    def _repeated(self, row: np.ndarray, name: str):
        """``row`` (the value at batch 1) broadcast over the run-time batch: row + zeros([N, ...]). (MIL's tile and
        reshape would give axis 0 a new symbol; fill keeps the batch's, so later ops see the same N.)"""
        from coremltools.converters.mil import Builder as mb

        shape = self._op(mb.concat(values=[self._batch_var(), np.array(row.shape[1:], np.int32)], axis=0, name=f"{name}_shape"))
        zeros = self._op(mb.fill(shape=shape, value=row.dtype.type(0), name=f"{name}_zeros"))
        return self._op(mb.add(x=mb.const(val=row, name=f"{name}_row"), y=zeros, name=name))

    def _batch_var(self):
        """The run-time batch as a 1-element int32 tensor (made once, in the main block)."""
        from coremltools.converters.mil import Builder as mb
        from coremltools.converters.mil.mil.block import curr_block

        block = curr_block()
        if self._batch is None:
            translator = self.translator()
            inputs = block.inputs if isinstance(getattr(block, "inputs", None), dict) else {}
            source = inputs.get(translator.mil_inputs.get(self.batch_input, "")) if translator is not None else None
            if source is None:
                raise _Refused("a batch-dependent value inside a control-flow block")
            self._batch = self._op(mb.slice_by_index(x=self._op(mb.shape(x=source, name="flexible_batch_shape")),
                                                     begin=np.array([0], np.int32), end=np.array([1], np.int32), name="flexible_batch"))
        return self._batch

    def _computed(self, line: _Linear, name: str):
        """``base + N * delta`` from the input's run-time batch; an element with delta 0 stays a constant."""
        from coremltools.converters.mil import Builder as mb

        self._batch_var()
        base, delta = line.base.astype(np.int32), line.delta.astype(np.int32)
        flat_base, flat_delta = base.reshape(-1), delta.reshape(-1)
        pieces = []
        for i in range(flat_base.size):  # one piece per element keeps the symbolic value readable by reshape
            if flat_delta[i] == 0:
                pieces.append(np.array([flat_base[i]], np.int32))
                continue
            piece = self._batch
            if flat_delta[i] != 1:
                piece = self._op(mb.mul(x=piece, y=np.array([flat_delta[i]], np.int32), name=f"{name}_mul{i}"))
            if flat_base[i] != 0:
                piece = self._op(mb.add(x=piece, y=np.array([flat_base[i]], np.int32), name=f"{name}_add{i}"))
            pieces.append(piece)
        joined = self._op(mb.concat(values=pieces, axis=0, name=f"{name}_concat")) if len(pieces) > 1 else pieces[0]
        if base.ndim == 1 and len(pieces) > 1:
            return joined
        return self._op(mb.reshape(x=joined, shape=np.array(base.shape, np.int32) if base.ndim else np.zeros(0, np.int32), name=name))

    def _op(self, var):
        self.inserted.add(var.op.name)
        return var


class _Refused(Exception):
    pass


@contextmanager
def _constants(recorder: _Constants) -> Iterator[_Constants]:
    """Route every ``mb.const`` of the MIL builder through ``recorder`` (restored on exit)."""
    from collections import defaultdict

    from coremltools.converters.mil.mil import Builder

    original, counts = Builder.__dict__["const"], Builder.name_count

    def const(cls, **kwargs):
        return recorder.make(original.__func__, cls, kwargs)

    Builder.const = classmethod(const)
    Builder.name_count = defaultdict(int)  # the builder numbers unnamed ops globally: start each program alike
    try:
        yield recorder
    finally:
        Builder.const, Builder.name_count = original, counts


# ---------------------------------------------------------------------------------------------------
# The three static translations, their comparison, and the symbolic one


def translate_flexible(make: Callable[[Any], Translator], batch: BatchAxis) -> Translation:
    """The program of ``make(symbol)`` with a symbolic batch, checked against ``make(b)`` for b in PROBES.

    ``make(batch)`` returns a Translator whose batch inputs have ``batch`` on axis 0 (a size, or a MIL symbol:
    then values it folds are those of batch 1, and the batch-dependent ones are replaced here)."""
    from coremltools.converters.mil.mil import get_new_symbol

    static: list[tuple[Translation, list[_Const]]] = []
    for size in PROBES:
        holder: list[Translator] = []
        with _constants(_Constants(lambda: holder[0] if holder else None)) as recorder:
            holder.append(make(size))
            translation = holder[0].translate()
        static.append((translation, recorder.records))
    _same_ops(static, batch)
    replace = _batch_constants([records for _, records in static], batch)

    symbol = get_new_symbol()
    holder = []
    try:
        with _constants(_Constants(lambda: holder[0] if holder else None, replace, batch.inputs[0])) as recorder:
            holder.append(make(symbol))
            translation = holder[0].translate()
    except _Refused as e:
        raise refusal(_where(holder), str(e), batch) from None
    _same_shapes(translation, static, symbol, recorder.inserted, batch)
    return translation


def _where(holder: list) -> str:
    node = holder[0].current if holder else None
    return f"{node.op_type} ({node.name or node.output[0]})" if node is not None else "the graph"


def _ops(translation: Translation) -> list:
    return [op for op in translation.function.operations if op.op_type != "const"]


def _same_ops(static: list[tuple[Translation, list[_Const]]], batch: BatchAxis) -> None:
    first = [(op.op_type, op.name) for op in _ops(static[0][0])]
    for translation, records in static[1:]:
        other = [(op.op_type, op.name) for op in _ops(translation)]
        if other != first:
            at = next((i for i, (a, b) in enumerate(zip(first, other)) if a != b), min(len(first), len(other)))
            name = first[at][1] if at < len(first) else other[at][1]
            raise refusal(f"op {name}", "the program's ops change with the batch size", batch)
        if len(records) != len(static[0][1]):
            raise refusal("the graph", "the program's constants change with the batch size", batch)


def _batch_constants(runs: list[list[_Const]], batch: BatchAxis) -> dict[int, _Linear | _Repeated]:
    """index -> how to compute it, for every recorded constant whose value depends on the batch: ``base + N *
    delta`` (a shape-like integer vector), or one row repeated N times (a tensor broadcast over the batch)."""
    out: dict[int, _Linear | _Repeated] = {}
    for index, consts in enumerate(zip(*runs)):
        if all(c.digest == consts[0].digest for c in consts[1:]):
            continue
        node = consts[0].node
        if any(c.digest[:2] != consts[0].digest[:2] for c in consts[1:]):
            shapes = [c.digest[0] for c in consts]
            if (all(c.row is not None and c.row == consts[0].row for c in consts) and all(len(sh) == len(shapes[0]) for sh in shapes)
                    and all(sh == (size, *shapes[0][1:]) for size, sh in zip(PROBES, shapes))):
                out[index] = _Repeated()
                continue
            raise refusal(node, "a constant tensor whose shape depends on the batch size", batch)
        if consts[0].value is None:
            raise refusal(node, f"a {np.dtype(consts[0].digest[1])} constant whose value depends on the batch size", batch)
        v = [c.value.astype(np.int64) for c in consts]
        delta = (v[1] - v[0]) // (PROBES[1] - PROBES[0])
        base = v[0] - PROBES[0] * delta
        if not all(np.array_equal(base + size * delta, x) for size, x in zip(PROBES, v)):
            raise refusal(node, "a value that is not linear in the batch size", batch)
        out[index] = _Linear(base, delta)
    return out


def _same_shapes(translation: Translation, static: list[tuple[Translation, list[_Const]]], symbol, inserted: set[str],
                 batch: BatchAxis) -> None:
    """Every op of the symbolic program has, at each probe size, the output shapes of that static program."""
    symbolic = [op for op in _ops(translation) if op.name not in inserted]
    for size, (fixed, _) in zip(PROBES, static):
        ops = _ops(fixed)
        if [op.name for op in ops] != [op.name for op in symbolic]:
            raise refusal("the graph", "the symbolic program's ops differ from the static ones", batch)
        for mine, theirs in zip(symbolic, ops):
            for a, b in zip(mine.outputs, theirs.outputs):
                if _at(a.shape, symbol, size) != tuple(int(d) for d in b.shape):
                    raise refusal(f"op {mine.name} ({mine.op_type})",
                                  f"its output shape {a.shape} does not follow the batch (at batch {size}: {tuple(b.shape)})",
                                  batch)


def _at(shape, symbol, size: int) -> tuple[int, ...] | None:
    """``shape`` with the batch symbol set to ``size``; None when another unknown remains."""
    out = []
    for d in shape:
        if isinstance(d, (int, np.integer)):
            out.append(int(d))
            continue
        value = d.subs(symbol, size)
        if not value.is_Integer:
            return None
        out.append(int(value))
    return tuple(out)


__all__ = ["DEFAULT_MAX_BATCH", "PROBES", "BatchAxis", "batch_input", "refusal", "translate_flexible"]
