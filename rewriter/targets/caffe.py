"""``--target caffe``: BVLC Caffe 1.0 and the fork layers NPU toolchains add.

Where the rules come from:
- BVLC Caffe has no resize layer at all (caffe.proto: no Interp/Upsample), no Pad and no Gather layer: every
  Resize is lowered to an edge replication made of Slice + Concat layers and a grouped Deconvolution
  (one 2-D kernel: the form Caffe-based NPU toolchains know, measured exact in a real CPU build), or to
  constant interpolation matrices (MatMul, exported as InnerProduct / 1x1 Convolution);
- ``--flavor interp``: the Interp layer of the DeepLab / PSPNet forks (``interp.cpp``: align-corners grid
  r = (n-1)/(m-1), taps int(x) and int(x)+1), on N x C x H x W only;
- ``--flavor upsample``: the fork Upsample layer (YOLO forks: integer nearest repetition, one scale);
- the naive mapping is the classic "Deconvolution with bilinear filler" recipe (kernel 2f - f%2, stride f,
  pad ceil((f-1)/2), zero borders) for linear, integer repetition for nearest.
"""

from __future__ import annotations

from typing import ClassVar

from rewriter.lowering import caffe_classic_deconv
from rewriter.resize import ResizeSemantics
from rewriter.sampling import AxisWeights
from rewriter.targets.base import (
    CONV_TRANSPOSE,
    MATMUL,
    Option,
    Primitive,
    Target,
    integer_repeat,
    strict_align_corners,
)
from rewriter.targets.onnx import PortableFallback

FLAVORS = ("bvlc", "interp", "upsample")
_FORK_LAYERS = {
    "interp": Primitive("Interp (align-corners bilinear)", "Interp", strict_align_corners),
    "upsample": Primitive("Upsample (integer nearest)", "Upsample", integer_repeat),
}


class CaffeTarget(PortableFallback, Target):
    name: ClassVar[str] = "caffe"
    summary: ClassVar[str] = "Caffe (BVLC: no resize layer, everything lowered; or a fork's Interp / Upsample layer)"
    options: ClassVar[dict[str, Option]] = {"flavor": Option("--flavor", FLAVORS, "bvlc")}
    lowerings: ClassVar[tuple[str, ...]] = (CONV_TRANSPOSE, MATMUL)  # no Gather layer
    edge_replication: ClassVar[str] = "slices"  # no Pad layer
    separable_deconv: ClassVar[bool] = False  # the toolchains expect the classic single 2-D Deconvolution
    matmul_below: ClassVar[int | None] = None

    @property
    def flavor(self) -> str:
        return str(self.settings["flavor"])

    @property
    def label(self) -> str:
        return "BVLC Caffe" if self.flavor == "bvlc" else f"Caffe ({self.flavor} flavor)"

    @property
    def keeps_resize(self) -> bool:
        return self.flavor != "bvlc"

    def primitives(self) -> tuple[Primitive, ...]:
        return (_FORK_LAYERS[self.flavor],) if self.flavor in _FORK_LAYERS else ()

    def accepts(self, sem: ResizeSemantics) -> str | None:
        if self.flavor == "bvlc":
            return "BVLC Caffe has no Resize layer"
        if (reason := self.common_refusal(sem)) is not None:
            return reason
        if sem.rank != 4 or self.runs_as(sem) is None:
            return f"no {self.flavor} layer samples like this node"
        return None

    def naive_weights(self, sem: ResizeSemantics, axis: int) -> AxisWeights | None:
        n, m = sem.lengths(axis)
        if sem.mode == "nearest":
            return integer_repeat(n, m)
        if sem.mode == "linear" and m % n == 0:
            return caffe_classic_deconv(n, m // n)
        return None
