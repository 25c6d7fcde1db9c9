"""Caffe translation of a Resize / Upsample that fix-resize kept for a fork flavor.

With ``--flavor interp`` (DeepLab / PSPNet Interp) or ``--flavor upsample`` (the YOLO-fork Upsample) the
resizes that a fork layer reproduces exactly stay Resize nodes; every other resize was already lowered to
BVLC layers by fix-resize, so BVLC Caffe never sees one.
"""

from __future__ import annotations

import numpy as np
import onnx

from rewriter.caffe.net import F32
from rewriter.caffe.ops import CAFFE_OPS
from rewriter.caffe.ops.conv import geometry
from rewriter.caffe.translator import Problem, Translator
from rewriter.targets import Target, make_target


def _no_fork_layer(node: onnx.NodeProto, t: Translator) -> str | None:
    if t.resize_sems.get(node.output[0]) is None or not _target(t).keeps_resize:
        return "BVLC Caffe has no resize layer (fix-resize should have lowered it)"
    return None


def _target(t: Translator) -> Target:
    return make_target("caffe", {"flavor": t.flavor})


@CAFFE_OPS.register(
    "Resize",
    "Upsample",
    becomes="lowered by fix-resize; with --flavor interp / upsample the fork's Interp / Upsample layer",
    precondition=_no_fork_layer,
)
def resize(t: Translator, node: onnx.NodeProto) -> None:
    sem = t.resize_sems[node.output[0]]
    prim = _target(t).runs_as(sem)
    axes = sem.resized_axes
    if prim is None or not axes:
        raise Problem(f"no {t.flavor} layer samples like this node")
    x = t.data(node.input[0])
    shape = t.net.shapes[x]
    out_shape = t.shape(node.output[0])
    if len(shape) != 4 or any(ax < 2 for ax in axes):
        raise Problem("fork resize layers take N x C x H x W and resize H, W only")
    out = node.output[0]
    if prim.op == "Interp":
        (top,) = t.net.add("Interp", [x], [out], t.lname(), {"height": int(out_shape[2]), "width": int(out_shape[3])})
    else:
        fh, fw = out_shape[2] // shape[2], out_shape[3] // shape[3]
        if fh == fw:
            (top,) = t.net.add("Upsample", [x], [out], t.lname(), {"scale": int(fh)})
        else:  # the fork layer has one scale: the same repetition as a ones-kernel Deconvolution (exact)
            c = shape[1]
            params: dict = {"num_output": c, "bias_term": False, "group": c}
            geometry(params, "kernel", [fh, fw], 0, 2)
            geometry(params, "stride", [fh, fw], 1, 2)
            (top,) = t.net.add(
                "Deconvolution", [x], [out], t.lname(), params, [np.ones((c, 1, fh, fw), dtype=F32)], frozen=True
            )
            t.warnings.append(
                f"{node.name or out}: factors {fh}x{fw} differ, the fork Upsample layer has one scale: written as a ones-kernel Deconvolution (exact)"
            )
    t.set(out, top)
