"""Caffe translations of ONNX normalizations: BatchNormalization (inference form) and Softmax."""

from __future__ import annotations

import numpy as np
import onnx

from rewriter.caffe.net import F32, shape_msg
from rewriter.caffe.ops import CAFFE_OPS
from rewriter.caffe.translator import Translator
from rewriter.exporting.onnx_readers import attributes, softmax_axis


def _training_mode(node: onnx.NodeProto, t: Translator) -> str | None:
    if attributes(node).get("training_mode", 0) or any(o for o in node.output[1:]):
        return "training mode"
    return None


@CAFFE_OPS.register(
    "BatchNormalization",
    becomes="BatchNorm (use_global_stats, scale factor 1) + Scale (gamma, beta)",
    precondition=_training_mode,
)
def batchnorm(t: Translator, node: onnx.NodeProto) -> None:
    a = attributes(node)
    x = t.data(node.input[0])
    gamma, beta, mean, var = (np.asarray(t.const(n), dtype=F32).reshape(-1) for n in node.input[1:5])
    eps = float(a.get("epsilon", 1e-5))
    (normed,) = t.net.add(
        "BatchNorm", [x], 1, t.lname("bn"), {"use_global_stats": True, "eps": eps}, [mean, var, np.ones(1, dtype=F32)]
    )
    (top,) = t.net.add("Scale", [normed], [node.output[0]], t.lname(), {"bias_term": True}, [gamma, beta])
    t.set(node.output[0], top)


@CAFFE_OPS.register("Softmax", becomes="Softmax (opset < 13: Reshape to 2-D, Softmax, Reshape back)")
def softmax(t: Translator, node: onnx.NodeProto) -> None:
    shape = t.shape(node.input[0])
    axis, flattened = softmax_axis(node, t.g.opset, shape)
    if not flattened:
        v = t.val(node.input[0])
        (top,) = t.net.add("Softmax", [v.blob], [node.output[0]], t.lname(), {"axis": v.perm.index(axis)})
        t.set(node.output[0], top, v.perm, v.via)
        return
    # Softmax-1/11 normalizes over the flattened block [axis:].
    x = t.data(node.input[0])
    outer, inner = int(np.prod(shape[:axis], dtype=np.int64)), int(np.prod(shape[axis:], dtype=np.int64))
    (flat,) = t.net.add("Reshape", [x], 1, t.lname("flatten"), {"shape": shape_msg((outer, inner))})
    (sm,) = t.net.add("Softmax", [flat], 1, t.lname("softmax"), {"axis": 1})
    (top,) = t.net.add("Reshape", [sm], [node.output[0]], t.lname(), {"shape": shape_msg(shape)})
    t.set(node.output[0], top)
