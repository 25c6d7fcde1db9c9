"""The configuration grid: single-node Resize / Upsample models, each with a stable id.

Dimensions (``Config``): op/opset (Upsample-9, Resize-10, 11, 13, 18, 19), mode (nearest, linear, cubic),
coordinate_transformation_mode (half_pixel, pytorch_half_pixel, align_corners, asymmetric,
tf_half_pixel_for_nn [11 only], half_pixel_symmetric [19], tf_crop_and_resize [with roi]), nearest_mode (4),
scale (x2, x3, x1.5, x0.5, x0.6, H x2 / W x1.5, and sizes to an output length of 1), given as ``scales`` or
``sizes``, layout NCHW or NHWC (resizing axes 1, 2 of a 4-D tensor), input size (5x7, 16x16), and for
Resize-18/19 the ``axes`` attribute and ``antialias``.

The full product is large; ``grid()`` keeps a core that has every mode x transform x rounding triple on
a fixed set of scales (at the opset where the transform exists), plus the legacy ops, plus a deterministic
sample of everything else selected by a hash of the id (so ids and the selection never depend on the order
of enumeration or on the Python version).

    python tests/runtimes/grid.py            # summary
    python tests/runtimes/grid.py --list     # every id
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
from collections import Counter
from dataclasses import dataclass

import numpy as np

MODES = ("nearest", "linear", "cubic")
TRANSFORMS = (
    "half_pixel",
    "pytorch_half_pixel",
    "align_corners",
    "asymmetric",
    "tf_half_pixel_for_nn",
    "half_pixel_symmetric",
    "tf_crop_and_resize",
)
ROUNDINGS = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")
ROUNDING_ABBR = {"round_prefer_floor": "rpf", "round_prefer_ceil": "rpc", "floor": "floor", "ceil": "ceil", None: ""}
# name -> (H factor, W factor); "to1" = sizes H 1, W 3 (an output length of 1)
SCALES = {
    "x2": (2.0, 2.0),
    "x3": (3.0, 3.0),
    "x1.5": (1.5, 1.5),
    "x0.5": (0.5, 0.5),
    "x0.6": (0.6, 0.6),
    "x2h1.5w": (2.0, 1.5),
    "to1": None,
}
INPUTS = {"5x7": (5, 7), "16x16": (16, 16)}
OPSETS = (9, 10, 11, 13, 18, 19)
ROI = ((0.2, 0.1), (0.9, 1.2))  # tf_crop_and_resize: (starts H, W), (ends H, W); W extrapolates past 1
EXTRAPOLATION = -1.0
CHANNELS = 2
SAMPLE_PER_MILLE = 12  # share of the non-core product kept


@dataclass(frozen=True)
class Config:
    opset: int
    mode: str
    ctm: str | None  # None: Upsample-9 / Resize-10 (no attribute; ORT: asymmetric)
    nearest_mode: str | None
    scale: str
    source: str  # "scales" or "sizes"
    layout: str = "nchw"
    input: str = "5x7"
    axes: bool = False  # Resize-18+: spatial axes given with the `axes` attribute, 2-element scales/sizes
    antialias: bool = False

    @property
    def op(self) -> str:
        return "Upsample" if self.opset == 9 else "Resize"

    @property
    def id(self) -> str:
        parts = [f"{'up' if self.opset == 9 else 'rs'}{self.opset}", self.mode]
        if self.ctm:
            parts.append(self.ctm)
        if self.nearest_mode:
            parts.append(ROUNDING_ABBR[self.nearest_mode])
        parts.append(self.scale + ("s" if self.source == "scales" else "z"))
        parts += [self.input, self.layout]
        if self.axes:
            parts.append("axes")
        if self.antialias:
            parts.append("aa")
        return "-".join(parts)

    def spatial_in(self) -> tuple[int, int]:
        return INPUTS[self.input]

    def input_shape(self) -> tuple[int, ...]:
        h, w = self.spatial_in()
        return (1, CHANNELS, h, w) if self.layout == "nchw" else (1, h, w, CHANNELS)

    def spatial_axes(self) -> tuple[int, int]:
        return (2, 3) if self.layout == "nchw" else (1, 2)

    def factors(self) -> tuple[np.float32, np.float32] | None:
        f = SCALES[self.scale]
        return None if f is None else (np.float32(f[0]), np.float32(f[1]))

    def spatial_out(self) -> tuple[int, int]:
        """ORT's output size: floor(n * s) in float32 for `scales`; the same numbers are given as `sizes`."""
        if self.scale == "to1":
            return (1, 3)
        h, w = self.spatial_in()
        fh, fw = self.factors()
        return int(np.floor(np.float32(h) * fh)), int(np.floor(np.float32(w) * fw))

    def output_shape(self) -> tuple[int, ...]:
        shape = list(self.input_shape())
        for axis, m in zip(self.spatial_axes(), self.spatial_out()):
            shape[axis] = m
        return tuple(shape)


def valid(c: Config) -> bool:
    legacy = c.opset in (9, 10)
    if legacy:
        if c.ctm or c.nearest_mode or c.mode == "cubic" or c.source != "scales" or c.axes or c.antialias:
            return False
        if c.scale == "to1" or (c.opset == 9 and min(SCALES[c.scale]) < 1):  # Upsample: scales >= 1
            return False
    else:
        if c.ctm is None:
            return False
        if c.ctm == "tf_half_pixel_for_nn" and c.opset != 11:
            return False
        if c.ctm == "half_pixel_symmetric" and c.opset < 19:
            return False
        if (c.mode == "nearest") != (c.nearest_mode is not None):
            return False
    if c.scale == "to1" and c.source != "sizes":
        return False
    if (c.axes or c.antialias) and c.opset < 18:
        return False
    if c.antialias and c.mode == "nearest":  # antialias only changes linear / cubic
        return False
    return True


def full_product():
    for opset, mode, ctm, rounding, scale, source, layout, inp, axes, aa in itertools.product(
        OPSETS, MODES, (None,) + TRANSFORMS, (None,) + ROUNDINGS, SCALES, ("scales", "sizes"),
        ("nchw", "nhwc"), INPUTS, (False, True), (False, True),
    ):
        c = Config(opset, mode, ctm, rounding, scale, source, layout, inp, axes, aa)
        if valid(c):
            yield c


def home_opset(ctm: str | None) -> int:
    return {"tf_half_pixel_for_nn": 11, "half_pixel_symmetric": 19}.get(ctm, 13)


CORE_SCALES = (("x2", "scales"), ("x3", "scales"), ("x1.5", "scales"), ("x1.5", "sizes"), ("x0.5", "scales"),
               ("x0.6", "scales"), ("x0.6", "sizes"), ("x2h1.5w", "sizes"), ("to1", "sizes"))


def _core() -> list[Config]:
    out = []
    for mode, ctm, rounding in itertools.product(MODES, TRANSFORMS, (None,) + ROUNDINGS):
        for scale, source in CORE_SCALES:
            c = Config(home_opset(ctm), mode, ctm, rounding, scale, source)
            if valid(c):
                out.append(c)
    for opset, mode, scale in itertools.product((9, 10), ("nearest", "linear"), ("x2", "x3", "x1.5", "x0.5", "x2h1.5w")):
        c = Config(opset, mode, None, None, scale, "scales")
        if valid(c):
            out.append(c)
    # every opset that has a Resize version, and both layouts, for the most common exported spellings
    for opset, layout, (mode, ctm, rounding) in itertools.product(
        (11, 13, 18, 19), ("nchw", "nhwc"),
        (("nearest", "asymmetric", "floor"), ("nearest", "half_pixel", "round_prefer_floor"),
         ("linear", "half_pixel", None), ("linear", "align_corners", None), ("cubic", "half_pixel", None)),
    ):
        for scale, axes, aa in (("x2", False, False), ("x0.5", opset >= 18, opset >= 18 and mode != "nearest")):
            c = Config(opset, mode, ctm, rounding, scale, "scales", layout, "5x7", axes, aa)
            if valid(c):
                out.append(c)
    return out


def _sampled(c: Config) -> bool:
    h = int.from_bytes(hashlib.sha1(c.id.encode()).digest()[:4], "big")
    return h % 1000 < SAMPLE_PER_MILLE


def grid() -> list[Config]:
    seen: dict[str, Config] = {}
    for c in _core():
        seen.setdefault(c.id, c)
    for c in full_product():
        if c.id not in seen and _sampled(c):
            seen[c.id] = c
    return sorted(seen.values(), key=lambda c: c.id)


# ----------------------------------------------------------------------------------------------------------------
# model building

def build_model(c: Config):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits = []
    inputs = ["X"]
    attrs: dict = {"mode": c.mode}
    rank = 4
    axes = c.spatial_axes()
    n_par = 2 if c.axes else rank

    def full(values_by_axis, fill):
        if c.axes:
            return [values_by_axis[a] for a in axes]
        return [values_by_axis.get(a, fill) for a in range(rank)]

    if c.opset in (9, 10):
        fh, fw = c.factors()
        inits.append(numpy_helper.from_array(np.array(full({axes[0]: fh, axes[1]: fw}, 1.0), np.float32), "scales"))
        inputs.append("scales")
    else:
        attrs["coordinate_transformation_mode"] = c.ctm
        if c.nearest_mode:
            attrs["nearest_mode"] = c.nearest_mode
        if c.ctm == "tf_crop_and_resize":
            attrs["extrapolation_value"] = EXTRAPOLATION
            starts = full({axes[0]: ROI[0][0], axes[1]: ROI[0][1]}, 0.0)
            ends = full({axes[0]: ROI[1][0], axes[1]: ROI[1][1]}, 1.0)
            inits.append(numpy_helper.from_array(np.array(starts + ends, np.float32), "roi"))
            inputs.append("roi")
        elif c.opset == 11:
            inits.append(numpy_helper.from_array(np.zeros(0, np.float32), "roi"))
            inputs.append("roi")
        else:
            inputs.append("")
        if c.source == "scales":
            fh, fw = c.factors()
            inits.append(numpy_helper.from_array(np.array(full({axes[0]: fh, axes[1]: fw}, 1.0), np.float32), "scales"))
            inputs.append("scales")
        else:
            if c.opset == 11:
                inits.append(numpy_helper.from_array(np.zeros(0, np.float32), "scales"))
                inputs.append("scales")
            else:
                inputs.append("")
            mh, mw = c.spatial_out()
            shape = c.input_shape()
            sizes = full({axes[0]: mh, axes[1]: mw}, None)
            sizes = [shape[a] if v is None else v for a, v in zip(range(rank) if not c.axes else axes, sizes)]
            inits.append(numpy_helper.from_array(np.array(sizes, np.int64), "sizes"))
            inputs.append("sizes")
        if c.axes:
            attrs["axes"] = list(axes)
        if c.antialias:
            attrs["antialias"] = 1
    assert len(inits[-1].dims) == 1 and inits[-1].dims[0] in (n_par, 2 * n_par, 0)
    node = helper.make_node(c.op, inputs, ["Y"], name=c.op.lower(), **attrs)
    graph = helper.make_graph(
        [node], c.id.replace(".", "_"),
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, list(c.input_shape()))],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, list(c.output_shape()))],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", c.opset)], producer_name="rewriter-grid")
    model.ir_version = min(model.ir_version, 8 if c.opset < 19 else 9)
    onnx.checker.check_model(model)
    return model


def make_input(c: Config) -> np.ndarray:
    """Seeded N(0, 1) input, the seed derived from the input shape only (same data for every model of a shape)."""
    shape = c.input_shape()
    seed = int.from_bytes(hashlib.sha1(repr(shape).encode()).digest()[:4], "big")
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def summary(configs: list[Config]) -> str:
    lines = [f"{len(configs)} models"]
    for field in ("opset", "mode", "ctm", "nearest_mode", "scale", "source", "layout", "input", "axes", "antialias"):
        cnt = Counter(getattr(c, field) for c in configs)
        lines.append(f"  {field}: " + ", ".join(f"{k}={v}" for k, v in sorted(cnt.items(), key=lambda kv: str(kv[0]))))
    triples = {(c.mode, c.ctm, c.nearest_mode) for c in configs}
    lines.append(f"  mode x transform x rounding triples: {len(triples)}")
    return "\n".join(lines)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args()
    g = grid()
    if args.list:
        print("\n".join(c.id for c in g))
    else:
        print(summary(g))
        print(f"  full product: {sum(1 for _ in full_product())}")
