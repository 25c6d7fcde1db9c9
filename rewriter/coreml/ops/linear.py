"""Core ML translations of ONNX matrix products: MatMul and Gemm (a constant B folds alpha, transB and a
vector C into one ``linear``)."""

from __future__ import annotations

import numpy as np
import onnx

from rewriter.coreml.ops import COREML_OPS
from rewriter.coreml.translator import Translator
from rewriter.exporting.onnx_readers import attribute


@COREML_OPS.register("MatMul", becomes="matmul")
def matmul(t: Translator, node: onnx.NodeProto):
    x, y = t.operands(node)[:2]
    return t.mb.matmul(x=x, y=y, name=t.out_name(node))


@COREML_OPS.register("Gemm", becomes="linear (constant B) or matmul + mul + add")
def gemm(t: Translator, node: onnx.NodeProto):
    alpha, beta = float(attribute(node, "alpha", 1.0)), float(attribute(node, "beta", 1.0))
    ta, tb = bool(attribute(node, "transA", 0)), bool(attribute(node, "transB", 0))
    a = t.var(node.input[0])
    dt = t.np_dtype(a)
    b_const = t.const(node.input[1])
    c_const = t.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    has_c = len(node.input) > 2 and bool(node.input[2])
    if b_const is not None and not ta and (not has_c or c_const is not None):
        weight = (b_const if tb else b_const.T).astype(np.float64) * alpha
        out_dim = weight.shape[0]
        bias = np.zeros(out_dim)
        if has_c:
            c = np.asarray(c_const, dtype=np.float64) * beta
            if c.size in (1, out_dim) and (c.ndim <= 1 or c.shape[0] == 1):
                bias = np.broadcast_to(c.reshape(-1), (out_dim,)).copy()
            else:
                y = t.mb.linear(x=a, weight=weight.astype(dt), name=t.tmp_name(node, "linear"))
                return t.mb.add(x=y, y=c.astype(dt), name=t.out_name(node))
        return t.mb.linear(x=a, weight=weight.astype(dt), bias=bias.astype(dt), name=t.out_name(node))
    b = t.var(node.input[1], a)
    name = t.tmp_name(node, "matmul") if (alpha != 1 or has_c) else t.out_name(node)
    y = t.mb.matmul(x=a, y=b, transpose_x=ta, transpose_y=tb, name=name)
    if alpha != 1:
        y = t.mb.mul(x=y, y=dt.type(alpha), name=t.tmp_name(node, "alpha") if has_c else t.out_name(node))
    if has_c:
        c = t.var(node.input[2], a)
        if beta != 1:
            c = t.mb.mul(x=c, y=dt.type(beta), name=t.tmp_name(node, "beta"))
        y = t.mb.add(x=y, y=c, name=t.out_name(node))
    return y
