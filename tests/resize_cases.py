"""Seeded generator of single-Resize/Upsample ONNX models covering the whole parameter space.

Used by the semantics-core proof (weights vs ONNX Runtime) and by the fix-resize fuzz tests. Every case
generated here is one ONNX Runtime accepts (its documented kernel restrictions are respected).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto
from onnx import helper as oh

OPSETS = (7, 9, 10, 11, 13, 18, 19)
TRANSFORMS_BY_OPSET = {
    11: ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_half_pixel_for_nn", "tf_crop_and_resize"),
    13: ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_crop_and_resize", "tf_half_pixel_for_nn"),
    18: ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_crop_and_resize"),
    19: ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_crop_and_resize", "half_pixel_symmetric"),
}
NEAREST = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


@dataclass
class ResizeCase:
    """One generated model plus a description for test ids and failure messages."""

    model: onnx.ModelProto
    input_shape: tuple[int, ...]
    label: str
    params: dict = field(default_factory=dict)

    def random_input(self, seed: int = 0, dtype=np.float32) -> np.ndarray:
        return np.random.default_rng(seed).standard_normal(self.input_shape).astype(dtype)


def build_resize_model(
    input_shape: tuple[int, ...],
    opset: int,
    attrs: dict,
    *,
    scales: list[float] | None = None,
    sizes: list[int] | None = None,
    roi: list[float] | None = None,
    op_type: str = "Resize",
    elem_type: int = TensorProto.FLOAT,
    dynamic_input: bool = False,
) -> onnx.ModelProto:
    """A one-node model in the input layout the given opset requires."""
    inits: list[onnx.TensorProto] = []
    inputs = ["x"]
    attrs = dict(attrs)
    if op_type == "Upsample" and opset < 9:
        attrs["scales"] = [float(s) for s in scales or []]
    elif op_type == "Upsample" or opset == 10:
        inputs.append("scales")
        inits.append(oh.make_tensor("scales", TensorProto.FLOAT, [len(scales or [])], scales or []))
    else:
        roi_name = scales_name = sizes_name = ""
        if roi is not None or opset == 11:
            roi_name = "roi"
            inits.append(oh.make_tensor("roi", TensorProto.FLOAT, [len(roi or [])], roi or []))
        if scales is not None or opset == 11:
            scales_name = "scales"
            inits.append(oh.make_tensor("scales", TensorProto.FLOAT, [len(scales or [])], scales or []))
        if sizes is not None:
            sizes_name = "sizes"
            inits.append(oh.make_tensor("sizes", TensorProto.INT64, [len(sizes)], sizes))
        inputs += [roi_name, scales_name, sizes_name]
        while inputs[-1] == "":
            inputs.pop()
    node = oh.make_node(op_type, inputs, ["y"], name=f"{op_type.lower()}0", **attrs)
    in_dims = [f"d{k}" for k in range(len(input_shape))] if dynamic_input else list(input_shape)
    graph = oh.make_graph(
        [node],
        "resize_case",
        [oh.make_tensor_value_info("x", elem_type, in_dims)],
        [oh.make_tensor_value_info("y", elem_type, None)],
        inits,
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)], producer_name="rewriter-tests")
    model.ir_version = 8 if opset >= 13 else 7
    return model


def _length_pair(rng: np.random.Generator) -> tuple[int, int]:
    """(n, m) mixing integer factors, fractional ratios, downsampling, identity and length 1."""
    kind = rng.choice(["int_up", "frac_up", "down", "one", "same", "from_one"], p=[0.3, 0.25, 0.2, 0.08, 0.07, 0.1])
    if kind == "int_up":
        n = int(rng.integers(1, 9))
        return n, n * int(rng.integers(2, 6))
    if kind == "frac_up":
        n = int(rng.integers(2, 9))
        return n, int(rng.integers(n + 1, 3 * n + 2))
    if kind == "down":
        n = int(rng.integers(3, 13))
        return n, int(rng.integers(1, n))
    if kind == "one":
        n = int(rng.integers(2, 9))
        return n, 1
    if kind == "from_one":
        return 1, int(rng.integers(1, 6))
    n = int(rng.integers(1, 9))
    return n, n


def _scale_for(rng: np.random.Generator, n: int, m: int, allow_free: bool) -> float:
    """A float32 scale giving output m (m/n, or a 'free' non-ratio scale like 1.5 or 0.6)."""
    if allow_free and rng.random() < 0.35:
        return float(np.float32(rng.choice([0.5, 0.6, 0.75, 1.25, 1.5, 1.7, 2.5, 3.0, 0.3, 2.0, 1.0, 4.0])))
    return float(np.float32(m / n))


def generate_cases(count: int, seed: int = 20261125) -> list[ResizeCase]:
    rng = np.random.default_rng(seed)
    cases: list[ResizeCase] = []
    while len(cases) < count:
        case = _one_case(rng, len(cases))
        if case is not None:
            cases.append(case)
    return cases


def _one_case(rng: np.random.Generator, k: int) -> ResizeCase | None:
    opset = int(rng.choice(OPSETS, p=[0.06, 0.08, 0.1, 0.18, 0.2, 0.2, 0.18]))
    legacy = opset <= 10
    op_type = "Upsample" if opset in (7, 9) else "Resize"
    modes = ["nearest", "linear"] if legacy else ["nearest", "linear", "cubic"]
    mode = str(rng.choice(modes))

    # Layout the ORT kernels accept: linear on rank 2/3/4/5 (outer scales 1 on 4/5-D, or NHWC), cubic on 2/4.
    if mode == "nearest":
        rank = int(rng.choice([1, 2, 3, 4, 5], p=[0.08, 0.12, 0.1, 0.6, 0.1]))
    elif mode == "linear":
        rank = int(rng.choice([2, 3, 4, 5], p=[0.12, 0.12, 0.66, 0.1]))
    else:
        rank = int(rng.choice([2, 4], p=[0.25, 0.75]))
    resizable = list(range(rank))
    if rank == 4 and mode != "nearest":
        resizable = [1, 2] if (rng.random() < 0.1 and mode == "linear") else [2, 3]
    if rank == 5 and mode == "linear":
        resizable = [2, 3, 4]
    if rank >= 4 and mode == "nearest" and rng.random() < 0.7:
        resizable = list(range(2, rank))

    shape = [int(rng.integers(1, 4)) for _ in range(rank)]
    out = list(shape)
    for a in resizable:
        n, m = _length_pair(rng)
        if legacy or op_type == "Upsample":
            m = max(m, n)  # Upsample requires scales >= 1; keep Resize-10 mostly upsampling too
            if opset == 10 and rng.random() < 0.3:
                m = max(1, n - int(rng.integers(0, n)))
        shape[a], out[a] = n, m

    attrs: dict = {"mode": mode}
    use_sizes = not legacy and rng.random() < 0.45
    antialias = False
    transform = "asymmetric"
    if not legacy:
        transform = str(rng.choice(TRANSFORMS_BY_OPSET[min(opset, 19) if opset in TRANSFORMS_BY_OPSET else 13]))
        if transform == "tf_half_pixel_for_nn" and mode != "nearest" and rng.random() < 0.5:
            transform = "half_pixel"
        attrs["coordinate_transformation_mode"] = transform
        if mode == "nearest":
            attrs["nearest_mode"] = str(rng.choice(NEAREST))
        if mode == "cubic":
            attrs["cubic_coeff_a"] = float(np.float32(rng.choice([-0.75, -0.5, -0.6])))
            attrs["exclude_outside"] = int(rng.random() < 0.4)
        if opset >= 18 and mode != "nearest" and rng.random() < 0.3:
            antialias = True
            attrs["antialias"] = 1
            if mode == "linear" and rng.random() < 0.4:
                attrs["exclude_outside"] = 1
        if transform == "tf_crop_and_resize":
            attrs["extrapolation_value"] = float(np.float32(rng.choice([0.0, -1.0, 2.5])))

    if mode == "cubic" and rank == 4 and resizable == [2, 3] and not antialias:
        pass
    scales = [1.0] * rank
    for a in resizable:
        scales[a] = _scale_for(rng, shape[a], out[a], allow_free=not use_sizes)
        if op_type == "Upsample" or (opset == 10 and scales[a] < 1 and out[a] >= shape[a]):
            scales[a] = max(scales[a], 1.0)
        if np.float32(scales[a]) * np.float32(shape[a]) < 1:  # a zero-length output is not a resize
            scales[a] = float(np.float32(1.0 / shape[a]) * np.float32(1.0001))
    if mode == "cubic" and rank == 4 and antialias is False and any(scales[a] < 1 for a in (1, 2) if a in resizable and resizable == [1, 2]):
        return None

    axes = None
    if opset >= 18 and rng.random() < 0.25 and len(resizable) < rank:
        axes = list(resizable)
        if rng.random() < 0.5:
            axes = axes[::-1]
        attrs["axes"] = axes
    if opset >= 18 and use_sizes and axes is None and rng.random() < 0.1 and rank == 4:
        attrs["keep_aspect_ratio_policy"] = str(rng.choice(["not_larger", "not_smaller"]))
        axes = [2, 3]
        attrs["axes"] = axes

    roi = None
    if transform == "tf_crop_and_resize":
        starts = [0.0] * rank
        ends = [1.0] * rank
        for a in resizable:
            starts[a] = float(np.float32(rng.choice([0.0, 0.1, -0.2, 0.25])))
            ends[a] = float(np.float32(rng.choice([1.0, 0.8, 1.3, 0.6])))
        if axes is not None:
            roi = [starts[a] for a in axes] + [ends[a] for a in axes]
        else:
            roi = starts + ends

    sel = axes if axes is not None else list(range(rank))
    if use_sizes:
        size_arg = [out[a] for a in sel]
        model = build_resize_model(tuple(shape), opset, attrs, sizes=size_arg, roi=roi, op_type=op_type)
        params = dict(sizes=size_arg)
    else:
        scale_arg = [scales[a] for a in sel]
        model = build_resize_model(tuple(shape), opset, attrs, scales=scale_arg, roi=roi, op_type=op_type)
        params = dict(scales=scale_arg)
    params.update(attrs)
    params["opset"] = opset
    label = f"{k:04d}-{op_type}{opset}-{mode}-{transform}-{'x'.join(map(str, shape))}"
    return ResizeCase(model=model, input_shape=tuple(shape), label=label, params=params)
