"""Core ML translations of ONNX elementwise arithmetic: Add, Sub, Mul, Div, Pow, Max, Min.

MIL broadcasts like ONNX; constants are cast to the runtime operand's dtype (``Translator.operands``).
Variadic Max / Min are chained pairwise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import onnx

from rewriter.coreml.ops import COREML_OPS
from rewriter.coreml.translator import Translator


def _binary(op: str) -> Callable[[Translator, onnx.NodeProto], Any]:
    def handler(t: Translator, node: onnx.NodeProto):
        x, y = t.operands(node)[:2]
        return getattr(t.mb, op)(x=x, y=y, name=t.out_name(node))

    return handler


for _onnx_op, _mil_op in (("Add", "add"), ("Sub", "sub"), ("Mul", "mul")):
    COREML_OPS.register(_onnx_op, becomes=_mil_op)(_binary(_mil_op))


@COREML_OPS.register("Div", becomes="real_div (floor_div for integer tensors)")
def div(t: Translator, node: onnx.NodeProto):
    x, y = t.operands(node)[:2]
    op = "floor_div" if t.np_dtype(x).kind in "iu" else "real_div"
    return getattr(t.mb, op)(x=x, y=y, name=t.out_name(node))


@COREML_OPS.register("Pow", becomes="pow")
def pow_(t: Translator, node: onnx.NodeProto):
    x = t.var(node.input[0])
    e = t.const(node.input[1])
    if e is not None and e.size == 1 and e.ndim <= len(t.shape(node.input[0])):
        # A scalar exponent (a 0-d const trips coremltools' NeuralNetwork backend: it expects a float).
        return t.mb.pow(x=x, y=t.np_dtype(x).type(e.reshape(-1)[0]), name=t.out_name(node))
    y = t.var(node.input[1], x)
    return t.mb.pow(x=x, y=y, name=t.out_name(node))


def _chained(op: str) -> Callable[[Translator, onnx.NodeProto], Any]:
    def handler(t: Translator, node: onnx.NodeProto):
        vs = t.operands(node)
        if len(vs) == 1:
            return t.mb.identity(x=vs[0], name=t.out_name(node))
        acc = vs[0]
        for k, v in enumerate(vs[1:]):
            last = k == len(vs) - 2
            acc = getattr(t.mb, op)(x=acc, y=v, name=t.out_name(node) if last else t.tmp_name(node, str(k)))
        return acc

    return handler


for _onnx_op, _mil_op in (("Max", "maximum"), ("Min", "minimum")):
    COREML_OPS.register(_onnx_op, becomes=f"{_mil_op} (variadic: chained)")(_chained(_mil_op))
