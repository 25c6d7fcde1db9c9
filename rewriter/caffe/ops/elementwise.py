"""Caffe translations of ONNX elementwise arithmetic: Add, Sub, Mul, Div, Max, Min, Sum, Mean.

Two tensors of one shape become an Eltwise layer; a tensor and a constant become Power (one number) or
Scale / Bias (a block of the tensor's axes, in its layout); a tensor broadcast against a smaller tensor
becomes Scale / Bias with the smaller one as a second bottom. Caffe has no division of tensors, no
elementwise minimum (built as -max(-a, -b)) and no clamp.
"""

from __future__ import annotations

import numpy as np
import onnx

from rewriter.caffe.net import F32, shape_msg
from rewriter.caffe.ops import CAFFE_OPS
from rewriter.caffe.translator import Problem, Translator


def _span(shape: tuple[int, ...]) -> tuple[int, int]:
    nz = [i for i, d in enumerate(shape) if d != 1]
    return (nz[0], nz[-1] + 1) if nz else (0, 0)


def _const_operand(t: Translator, value: np.ndarray, out_shape: tuple[int, ...], perm: tuple[int, ...]):
    """A constant broadcast against a tensor of ``out_shape`` (layout ``perm``): (axis, blob) for Scale/Bias,
    or None when it is one number."""
    value = np.asarray(value, dtype=F32)
    if value.size == 1:
        return None
    rank = len(out_shape)
    if value.ndim > rank:
        raise Problem("the constant has more axes than the tensor")
    full = value.reshape((1,) * (rank - value.ndim) + value.shape)
    if any(d not in (1, o) for d, o in zip(full.shape, out_shape)):
        raise Problem(f"the constant {value.shape} broadcasts the tensor {out_shape} to a larger shape")
    blob_value = np.transpose(full, perm)
    blob_shape = tuple(out_shape[p] for p in perm)
    a, b = _span(blob_value.shape)
    block = np.broadcast_to(blob_value, blob_value.shape[:a] + blob_shape[a:b] + blob_value.shape[b:])
    return a, np.ascontiguousarray(block.reshape(blob_shape[a:b]))


@CAFFE_OPS.register(
    "Add",
    "Sub",
    "Mul",
    "Div",
    becomes="Eltwise SUM / PROD (same shapes), Scale / Bias (broadcast, constant blocks), Power (one constant)",
)
def binary(t: Translator, node: onnx.NodeProto) -> None:
    op = node.op_type
    x_name, y_name = node.input[0], node.input[1]
    out = node.output[0]
    out_shape = t.shape(out)
    cx, cy = t.is_const(x_name), t.is_const(y_name)
    if not cx and not cy:
        _binary_tensors(t, op, x_name, y_name, out, out_shape)
        return
    tensor, c, const_first = (y_name, t.const(x_name), True) if cx else (x_name, t.const(y_name), False)
    if t.shape(tensor) != out_shape:
        raise Problem(f"the constant {c.shape} broadcasts the tensor {t.shape(tensor)} to {out_shape}")
    v = t.val(tensor)
    c = np.asarray(c, dtype=np.float64)
    if op in ("Max", "Min"):
        if c.size == 1 and float(c.ravel()[0]) == 0.0 and op == "Max":
            (top,) = t.net.add("ReLU", [v.blob], [out], t.lname())
            t.set(out, top, v.perm, v.via)
            return
        raise Problem(f"{op} with a constant: BVLC Caffe has no clamp layer")
    if op == "Div":
        if const_first:
            raise Problem("constant / tensor: Caffe has no elementwise division")
        c = 1.0 / c
        op = "Mul"
    negate_tensor = op == "Sub" and const_first
    if op == "Sub" and not const_first:
        c, op = -c, "Add"
    if op == "Sub":  # c - x = (-x) + c
        op = "Add"
    operand = _const_operand(t, c, out_shape, v.perm)
    blob = v.blob
    if operand is None:
        value = float(c.ravel()[0])
        params = {"scale": value} if op == "Mul" else {"shift": value}
        if negate_tensor:
            params["scale"] = -1.0
        (top,) = t.net.add("Power", [blob], [out], t.lname(), params)
        t.set(out, top, v.perm, v.via)
        return
    if negate_tensor:
        (blob,) = t.net.add("Power", [blob], 1, t.lname("negate"), {"scale": -1.0})
    axis, block = operand
    kind = "Scale" if op == "Mul" else "Bias"
    (top,) = t.net.add(kind, [blob], [out], t.lname(), {"axis": axis, "num_axes": block.ndim}, [block])
    t.set(out, top, v.perm, v.via)


def _binary_tensors(t: Translator, op: str, x_name, y_name, out, out_shape) -> None:
    sx, sy = t.shape(x_name), t.shape(y_name)
    if sx == sy == out_shape:
        (bx, by), perm = t.same_layout([x_name, y_name])
        if op in ("Add", "Sub", "Mul", "Max"):
            params = {"operation": {"Add": "SUM", "Sub": "SUM", "Mul": "PROD", "Max": "MAX"}[op]}
            if op == "Sub":
                params["coeff"] = [1.0, -1.0]
            (top,) = t.net.add("Eltwise", [bx, by], [out], t.lname(), params)
        elif op == "Min":  # min(a, b) = -max(-a, -b), exactly
            (nx,) = t.net.add("Power", [bx], 1, t.lname("neg_a"), {"scale": -1.0})
            (ny,) = t.net.add("Power", [by], 1, t.lname("neg_b"), {"scale": -1.0})
            (mx,) = t.net.add("Eltwise", [nx, ny], 1, t.lname("max"), {"operation": "MAX"})
            (top,) = t.net.add("Power", [mx], [out], t.lname(), {"scale": -1.0})
        else:
            raise Problem("tensor / tensor: Caffe has no elementwise division")
        t.set(out, top, perm)
        return
    if op not in ("Add", "Mul", "Sub"):
        raise Problem(f"broadcasting {op}: Caffe's Scale/Bias broadcast only products and sums")
    big, small = (x_name, y_name) if sx == out_shape else (y_name, x_name)
    if t.shape(big) != out_shape:
        raise Problem("both operands are broadcast")
    rank = len(out_shape)
    small_shape = (1,) * (rank - len(t.shape(small))) + tuple(t.shape(small))
    a, b = _span(small_shape)
    if a == b or any(small_shape[i] != out_shape[i] for i in range(a, b)):
        raise Problem(f"{small_shape} is not a contiguous block of {out_shape} (what Caffe's Scale/Bias broadcast)")
    bblob = t.data(big)
    sblob = t.data(small)
    if t.net.shapes[sblob] != tuple(out_shape[a:b]):
        (sblob,) = t.net.add("Reshape", [sblob], 1, t.lname("operand"), {"shape": shape_msg(out_shape[a:b])})
    negate_result = False
    if op == "Sub":
        if small == y_name:  # big - small = big + (-small)
            (sblob,) = t.net.add("Power", [sblob], 1, t.lname("negate"), {"scale": -1.0})
        else:  # small - big = -(big - small)
            (sblob,) = t.net.add("Power", [sblob], 1, t.lname("negate"), {"scale": -1.0})
            negate_result = True
    kind = "Scale" if op == "Mul" else "Bias"
    if negate_result:
        (mid,) = t.net.add(kind, [bblob, sblob], 1, t.lname("bias"), {"axis": a})
        (top,) = t.net.add("Power", [mid], [out], t.lname(), {"scale": -1.0})
    else:
        (top,) = t.net.add(kind, [bblob, sblob], [out], t.lname(), {"axis": a})
    t.set(out, top)


@CAFFE_OPS.register("Mean", becomes="Eltwise SUM with coefficients 1/n")
def variadic(t: Translator, node: onnx.NodeProto) -> None:
    names = [n for n in node.input if n]
    if len(names) == 1:
        t.alias(node.output[0], node.input[0])
        return
    if any(t.shape(n) != t.shape(node.output[0]) for n in names) or any(t.is_const(n) for n in names):
        raise Problem("broadcasting or constant operands")
    blobs, perm = t.same_layout(names)
    if node.op_type == "Max":
        params = {"operation": "MAX"}
    else:
        params = {"operation": "SUM"}
        if node.op_type == "Mean":
            params["coeff"] = [1.0 / len(names)] * len(names)
    (top,) = t.net.add("Eltwise", blobs, [node.output[0]], t.lname(), params)
    t.set(node.output[0], top, perm)


@CAFFE_OPS.register(
    "Max", "Min", "Sum", becomes="Eltwise MAX / SUM (Min as -max(-a, -b)); Max with 0 -> ReLU"
)
def binary_or_variadic(t: Translator, node: onnx.NodeProto) -> None:
    if len([n for n in node.input if n]) == 2:
        binary(t, node)
    else:
        variadic(t, node)
