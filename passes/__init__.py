"""The fix-resize passes, one rule per module, in their schedule order.

Respelling passes (the node stays a Resize, spelled differently) run first, then the lowering passes,
each trying one exact form in the order a target prefers them when it leaves the choice to --lower auto.
``rewriter.pipeline.PassManager`` validates the order against each pass's declared ``runs_after``.
Before any of them, the graph-level step ``passes.recognize_upsampling`` turns upsampling written without
Resize (Tile/Expand/Reshape, Gather/GatherND, DepthToSpace) into a Resize node that then enters this ladder.
"""

from __future__ import annotations

from passes.canonicalize import Canonicalize
from passes.fold_sizes import FoldSizes
from passes.legacy_upgrade import LegacyUpgrade
from passes.lower_conv_transpose import LowerToConvTranspose
from passes.lower_gather import LowerToGather
from passes.lower_matmul import LowerToMatMul
from rewriter.pipeline import Pass

SCHEDULE: tuple[type[Pass], ...] = (LegacyUpgrade, FoldSizes, Canonicalize, LowerToConvTranspose, LowerToGather, LowerToMatMul)
