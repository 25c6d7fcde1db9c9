"""Caffe translations of ONNX products with a constant matrix: MatMul and Gemm.

A contraction along the last axis (or, for a constant left operand, the second-last) is an InnerProduct
with ``axis``; along an inner axis the tensor is reshaped so that axis is Caffe's channel axis and a 1x1
Convolution applies the matrix. Weights that fix-resize emitted (interpolation matrices) are frozen.
"""

from __future__ import annotations

import numpy as np
import onnx

from rewriter.caffe.net import F32, shape_msg
from rewriter.caffe.ops import CAFFE_OPS
from rewriter.caffe.translator import Problem, Translator
from rewriter.exporting.onnx_readers import attributes


def _matmul_axis(t: Translator, node: onnx.NodeProto, data_name: str, logical_axis: int, weight: np.ndarray) -> None:
    """y = x contracted along one axis with a constant (M x K) matrix ``weight``, in any layout."""
    v = t.val(data_name)
    j = v.perm.index(logical_axis)
    shape = t.net.shapes[v.blob]
    outer = int(np.prod(shape[:j], dtype=np.int64))
    k = shape[j]
    inner = int(np.prod(shape[j + 1 :], dtype=np.int64))
    m = weight.shape[0]
    out_shape = tuple(shape[:j]) + (m,) + tuple(shape[j + 1 :])
    out = node.output[0]
    if inner == 1:
        # InnerProduct(axis=j) flattens [j:] (= k values) and keeps [:j]
        last = j == len(shape) - 1
        frozen = (node.name or node.output[0]) in t.frozen_nodes
        (top,) = t.net.add(
            "InnerProduct",
            [v.blob],
            [out] if last else 1,
            t.lname() if last else t.lname("ip"),
            {"num_output": m, "bias_term": False, "axis": j},
            [weight],
            frozen=frozen,
        )
        if not last:
            (top,) = t.net.add("Reshape", [top], [out], t.lname(), {"shape": shape_msg(out_shape)})
    else:
        blob = v.blob
        if shape != (outer, k, inner, 1):
            (blob,) = t.net.add(
                "Reshape", [blob], 1, t.lname("to_channels"), {"shape": shape_msg((outer, k, inner, 1))}
            )
        frozen = {"frozen": (node.name or node.output[0]) in t.frozen_nodes}
        (conv,) = t.net.add(
            "Convolution",
            [blob],
            1,
            t.lname("matrix"),
            {"num_output": m, "bias_term": False, "kernel_size": [1]},
            [weight.reshape(m, k, 1, 1)],
            **frozen,
        )
        (top,) = t.net.add("Reshape", [conv], [out], t.lname(), {"shape": shape_msg(out_shape)})
    t.set(out, top, v.perm, v.via)


def _two_tensors(node: onnx.NodeProto, t: Translator) -> str | None:
    if t.is_const(node.input[0]) == t.is_const(node.input[1]):
        return "a product of two tensors (Caffe's InnerProduct needs constant weights)"
    return None


@CAFFE_OPS.register(
    "MatMul",
    becomes="InnerProduct (axis) or Reshape + 1x1 Convolution + Reshape (one constant operand)",
    precondition=_two_tensors,
)
def matmul(t: Translator, node: onnx.NodeProto) -> None:
    a_name, b_name = node.input[0], node.input[1]
    if t.is_const(b_name):
        b = np.asarray(t.const(b_name), dtype=F32)
        rank = len(t.shape(a_name))
        if b.ndim != 2 or rank < 2:
            raise Problem("needs a 2-D constant matrix and a tensor of rank >= 2")
        _matmul_axis(t, node, a_name, rank - 1, np.ascontiguousarray(b.T))
    else:
        a = np.asarray(t.const(a_name), dtype=F32)
        rank = len(t.shape(b_name))
        if a.ndim != 2 or rank < 2:
            raise Problem("needs a 2-D constant matrix and a tensor of rank >= 2")
        _matmul_axis(t, node, b_name, rank - 2, np.ascontiguousarray(a))


def _trans_a(node: onnx.NodeProto, t: Translator) -> str | None:
    return "transA=1" if attributes(node).get("transA", 0) else None


@CAFFE_OPS.register("Gemm", becomes="InnerProduct (constant B; alpha and beta folded in)", precondition=_trans_a)
def gemm(t: Translator, node: onnx.NodeProto) -> None:
    a = attributes(node)
    x = t.data(node.input[0])
    if len(t.net.shapes[x]) != 2:
        raise Problem("needs a 2-D input")
    w = np.asarray(t.const(node.input[1]), dtype=np.float64)
    w = w if a.get("transB", 0) else w.T
    w = (w * a.get("alpha", 1.0)).astype(F32)
    n = w.shape[0]
    c = t.opt_const(node, 2)
    blobs = [w]
    if c is not None:
        c = np.asarray(c, dtype=np.float64) * a.get("beta", 1.0)
        if c.size not in (1, n) or (c.ndim == 2 and c.shape[0] != 1):
            raise Problem("the bias must be a vector over the outputs")
        blobs.append(np.broadcast_to(c.reshape(-1), (n,)).astype(F32))
    (top,) = t.net.add(
        "InnerProduct", [x], [node.output[0]], t.lname(), {"num_output": n, "bias_term": c is not None}, blobs
    )
    t.set(node.output[0], top)
