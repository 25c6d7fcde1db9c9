"""``--target openvino``: OpenVINO's ONNX frontend (``Core.read_model``) and its CPU plugin in float32.

OpenVINO reads ONNX directly: a Resize becomes ``Interpolate-11`` with the same mode, coordinate transform and
rounding (``src/frontends/onnx/frontend/src/op/resize.cpp``), and the CPU plugin implements the ONNX formulas.
Where the rules come from (measured with ``tests/runtimes`` on the 593-model grid, OpenVINO 2026.4):
- ``half_pixel_symmetric`` and ``tf_crop_and_resize`` are rejected by the frontend (resize.cpp accepts the other
  five transforms only);
- antialiased downsampling uses another filter than ORT's (20 of 29 antialias models differ; upsampling,
  where antialias changes nothing, is exact);
- cubic on an N x H x W x C layout (resized axes 1, 2) gives wrong values (half_pixel: garbage, up to 1e24;
  asymmetric and pytorch_half_pixel: some cases), so cubic is accepted on the last two axes only;
- coordinates are computed in correctly rounded float32 (``x = i / s``...), so a nearest ``round_prefer_*``
  coordinate that lands on a .5 tie in exact arithmetic rounds like the float32 value; ORT's compiled
  arithmetic sometimes lands on the other side (asymmetric + round_prefer_ceil 7 -> 4 as ``sizes``,
  x = 3.5: OpenVINO takes 3, ORT 4). ``float32_weights`` models that, and other runtimes that compute the
  ONNX formulas in float32 share it;
- every other native spelling and every lowering (MatMul, Gather, Pad/Slice + ConvTranspose) is exact.
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

import numpy as np

from rewriter.resize import ResizeSemantics
from rewriter.sampling import F32, AxisWeights, ort_coordinates, ort_round, pick_weights
from rewriter.targets.runtime import RuntimeTarget, spatial_nchw, weights_as


def float32_weights(sem: ResizeSemantics, **changes: object) -> dict[int, AxisWeights]:
    """ORT's weights for the node (with ``changes`` to its rule, as ``weights_as``), except that nearest
    ``round_prefer_*`` coordinates are rounded from correctly rounded float32 arithmetic: a runtime that
    implements the ONNX formulas in float32 agrees with ORT everywhere except at the .5 ties ORT's compiled
    code does not round that way."""
    out = weights_as(sem, **changes)
    if sem.mode != "nearest":
        return out
    for axis in out:
        rule = replace(sem.axis_rule(axis), **changes)  # type: ignore[arg-type]
        info = sem.axes_info[axis]
        (n, m), s = sem.lengths(axis), F32(info.scale)  # type: ignore[arg-type]
        if not rule.nearest_mode.startswith("round") or s == F32(1):
            continue
        x = ort_coordinates(rule, n, m, s)
        outside = (x < 0) | (x > F32(n - 1)) if rule.extrapolates else np.zeros(m, dtype=bool)
        matrix = pick_weights(ort_round(x, rule.nearest_mode, bool(s < F32(1))), n)
        matrix[outside] = 0.0
        out[axis] = AxisWeights(matrix, outside)
    return out


def downsamples(sem: ResizeSemantics) -> bool:
    return any(sem.axes_info[a].m < sem.axes_info[a].n for a in sem.resized_axes)  # type: ignore[operator]


class OpenVINOTarget(RuntimeTarget):
    name: ClassVar[str] = "openvino"
    summary: ClassVar[str] = "OpenVINO (ONNX frontend, Interpolate-11, CPU float32)"
    converter: ClassVar[str] = "OpenVINO"

    def computes(self, sem: ResizeSemantics) -> dict[int, AxisWeights] | str:
        if sem.transform in ("half_pixel_symmetric", "tf_crop_and_resize"):
            return f"OpenVINO's ONNX frontend rejects coordinate_transformation_mode={sem.transform}"
        if sem.antialias and sem.mode != "nearest" and downsamples(sem):
            return "OpenVINO's antialiased downsampling filter differs from ORT's"
        if sem.mode == "cubic" and not spatial_nchw(sem):
            return "OpenVINO's cubic Interpolate gives wrong values when the resized axes are not the last two"
        return float32_weights(sem)
