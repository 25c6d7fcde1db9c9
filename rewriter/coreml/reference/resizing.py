"""The documented grids of every resizing MIL op and NeuralNetwork layer, as per-axis weight matrices.

MIL ops follow their coremltools docstrings (``ops/defs/iOS15/image_resizing.py``), NeuralNetwork layers
the comments of UpsampleLayerParams and SamplingMode in NeuralNetwork.proto; a grid Apple does not document
raises ``UndocumentedError``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from rewriter.coreml import kernels as K
from rewriter.coreml.kernels import UndocumentedError
from rewriter.sampling import AxisWeights

# ------------------------------------------------------------------ MIL ops: (parameters, Hin, Win) -> matrices


def _mil_upsample_nearest(p: dict[str, Any], nh: int, nw: int) -> tuple[AxisWeights, AxisWeights]:
    sh, sw = p.get("scale_factor_height", 1), p.get("scale_factor_width", 1)
    # Documented: "by integer scale factors"; the index formula for fractional factors is not documented.
    for s in (sh, sw):
        if float(s) != int(float(s)):
            raise UndocumentedError(f"upsample_nearest_neighbor with a fractional scale factor {s}: index formula undocumented")
    return K.integer_nearest_weights(nh, int(sh)), K.integer_nearest_weights(nw, int(sw))


def _mil_upsample_bilinear(p: dict[str, Any], nh: int, nw: int) -> tuple[AxisWeights, AxisWeights]:
    sh, sw = p.get("scale_factor_height", 1), p.get("scale_factor_width", 1)
    align = bool(p.get("align_corners", True))  # documented default: True
    hpc = p.get("half_pixel_centers", None)
    hpc = (not align) if hpc is None else bool(hpc)  # iOS16: defaults to !align_corners
    mh, mw = K.output_length(nh, sh), K.output_length(nw, sw)
    if align and not hpc:
        grid = K.grid_align_corners
    elif not align and hpc:
        grid = K.grid_half_pixel
    else:
        raise UndocumentedError(f"upsample_bilinear(align_corners={align}, half_pixel_centers={hpc}) is not documented")
    return K.bilinear_weights(grid(nh, mh), nh), K.bilinear_weights(grid(nw, mw), nw)


_SAMPLING_GRIDS: dict[str, Callable[[int, int], np.ndarray]] = {
    "STRICT_ALIGN_CORNERS": K.grid_align_corners,
    "ALIGN_CORNERS": K.grid_align_endpoints,
    "DEFAULT": K.grid_default,
    "OFFSET_CORNERS": K.grid_offset_corners,
    "UNALIGN_CORNERS": K.grid_half_pixel,
}


def _mil_resize_bilinear(p: dict[str, Any], nh: int, nw: int) -> tuple[AxisWeights, AxisWeights]:
    mh, mw = int(p.get("target_size_height", 1)), int(p.get("target_size_width", 1))
    mode = str(p.get("sampling_mode", "DEFAULT"))
    grid = _SAMPLING_GRIDS.get(mode)
    if grid is None:
        raise UndocumentedError(f"resize_bilinear sampling_mode {mode!r}")
    return K.bilinear_weights(grid(nh, mh), nh), K.bilinear_weights(grid(nw, mw), nw)


def _mil_resize_nearest(p: dict[str, Any], nh: int, nw: int) -> tuple[AxisWeights, AxisWeights]:
    raise UndocumentedError("resize_nearest_neighbor: the index formula is not documented")


MIL_RESIZE_WEIGHTS: dict[str, Callable[[dict[str, Any], int, int], tuple[AxisWeights, AxisWeights]]] = {
    "upsample_nearest_neighbor": _mil_upsample_nearest,
    "upsample_bilinear": _mil_upsample_bilinear,
    "resize_bilinear": _mil_resize_bilinear,
    "resize_nearest_neighbor": _mil_resize_nearest,
}


# ------------------------------------------------------------------ NeuralNetwork layers: (layer params, Hin, Win)


def upsample_weights(p, nh: int, nw: int) -> tuple[AxisWeights, AxisWeights, dict]:
    """Matrices of an Upsample layer for an ``nh`` x ``nw`` input, and its parameters as ``ResizeOp`` shows them."""
    mode = "BILINEAR" if p.mode == 1 else "NN"
    lmode = {0: "DEFAULT", 1: "ALIGN_CORNERS_TRUE", 2: "ALIGN_CORNERS_FALSE"}[p.linearUpsampleMode]
    params: dict[str, Any] = {"mode": mode}
    if len(p.fractionalScalingFactor):
        factors: list[Any] = [np.float32(f) for f in p.fractionalScalingFactor]
        params["fractionalScalingFactor"] = factors
    else:
        factors = [int(f) for f in p.scalingFactor] or [1, 1]
        params["scalingFactor"] = factors
    if mode == "BILINEAR":
        params["linearUpsampleMode"] = lmode
    if mode == "NN":
        if "fractionalScalingFactor" in params:
            raise UndocumentedError(f"Upsample NN with fractional factors {factors}: not a documented nearest-neighbour layer")
        return K.integer_nearest_weights(nh, factors[0]), K.integer_nearest_weights(nw, factors[1]), params
    if "fractionalScalingFactor" in params:
        # Output size for fractional factors is not written in the proto; floor(X * f) as in MIL type inference.
        mh, mw = K.output_length(nh, factors[0]), K.output_length(nw, factors[1])
        if lmode == "DEFAULT":
            raise UndocumentedError("Upsample BILINEAR DEFAULT with fractional factors is not allowed")
    else:
        mh, mw = nh * factors[0], nw * factors[1]
    grid = {"DEFAULT": K.grid_asymmetric, "ALIGN_CORNERS_TRUE": K.grid_align_corners, "ALIGN_CORNERS_FALSE": K.grid_half_pixel}[lmode]
    return K.bilinear_weights(grid(nh, mh), nh), K.bilinear_weights(grid(nw, mw), nw), params


_SAMPLING = {0: ("STRICT_ALIGN_ENDPOINTS_MODE", K.grid_align_corners), 1: ("ALIGN_ENDPOINTS_MODE", K.grid_align_endpoints),
             2: ("UPSAMPLE_MODE", K.grid_default), 3: ("ROI_ALIGN_MODE", K.grid_offset_corners)}


def resize_bilinear_weights(p, nh: int, nw: int) -> tuple[AxisWeights, AxisWeights, dict]:
    """Matrices of a ResizeBilinear layer for an ``nh`` x ``nw`` input, and its parameters as ``ResizeOp`` shows them."""
    target = [int(t) for t in p.targetSize] or [1, 1]
    name, grid = _SAMPLING[p.mode.samplingMethod]
    params = {"targetSize": target, "mode": name}
    return K.bilinear_weights(grid(nh, target[0]), nh), K.bilinear_weights(grid(nw, target[1]), nw), params
