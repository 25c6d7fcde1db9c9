"""Legacy upgrade: Upsample-7/9 and Resize-10 become Resize (opset >= 11) with their real semantics spelled out.

Those ops have no coordinate_transformation_mode: ONNX Runtime runs them asymmetric (x = i / scale) with
its "simple" nearest rounding, truncation when upsampling and ceil when downsampling (x >= 0, so that is
floor resp. ceil). onnx's version converter instead leaves the Resize-11 defaults (half_pixel,
round_prefer_floor), which changes linear results (onnx/onnx#8480), so these nodes are never left to it.
The given float32 scales are kept: Resize-11 derives output sizes and coordinates from them exactly as
Resize-10 does. Axes that round differently (nearest, some up- and some downsampling) become one Resize
per rounding. Exact because the pipeline proves it: the chain's weights equal the node's on every axis.
"""

from __future__ import annotations

from rewriter.pipeline import RESPELL, NodeContext, NodeState, Pass
from rewriter.sampling import F32
from rewriter.spelling import Spelling


class LegacyUpgrade(Pass):
    name = "legacy-upgrade"
    kind = RESPELL

    def check(self, ctx: NodeContext) -> str | None:
        sem = ctx.original
        if sem.op_type == "Resize" and sem.opset >= 11:
            return f"already Resize-{sem.opset}"
        if not sem.resolved:
            return "shapes unresolved"
        return None

    def rewrite(self, ctx: NodeContext) -> NodeState:
        sem = ctx.original
        scales = [float(F32(a.scale)) for a in sem.axes_info]  # type: ignore[arg-type]
        if sem.mode != "nearest":
            return NodeState((Spelling(mode=sem.mode, transform="asymmetric", scales=tuple(scales)),))
        groups: dict[str, list[int]] = {}
        for axis in range(sem.rank):
            if F32(scales[axis]) != F32(1):
                groups.setdefault(sem.effective_nearest_mode(axis) or "floor", []).append(axis)
        chain = []
        for rounding, axes in groups.items():
            part = tuple(scales[a] if a in axes else 1.0 for a in range(sem.rank))
            chain.append(Spelling(mode="nearest", transform="asymmetric", nearest_mode=rounding, scales=part))
        return NodeState(tuple(chain))
