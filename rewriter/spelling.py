"""A Resize spelling: the attributes and constant inputs of one Resize node (opset >= 11).

Passes move a node from one spelling to another. The semantics of a spelling are never computed by
hand: a spelling is turned into a one-node model and described by the same parser as any input model,
so "is spelling B exact for node A" is the usual per-axis weight comparison.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

import numpy as np
import onnx
from onnx import TensorProto
from onnx import helper as oh

from rewriter.graph import Dim, ModelView
from rewriter.resize import ResizeSemantics, describe_node
from rewriter.sampling import AxisWeights


@dataclass(frozen=True)
class Spelling:
    mode: str
    transform: str
    nearest_mode: str = "round_prefer_floor"
    cubic_coeff_a: float = -0.75
    exclude_outside: bool = False
    extrapolation_value: float = 0.0
    antialias: bool = False
    scales: tuple[float, ...] | None = None  # full rank, float32 values
    sizes: tuple[int, ...] | None = None  # over `axes` when given, else full rank
    axes: tuple[int, ...] | None = None
    roi: tuple[float, ...] | None = None  # full rank starts then ends (tf_crop_and_resize only)

    def replace(self, **changes) -> Spelling:
        return replace(self, **changes)

    @property
    def min_opset(self) -> int:
        if self.transform == "half_pixel_symmetric":
            return 19
        if self.antialias or self.axes is not None:
            return 18
        return 11

    def attributes(self) -> dict:
        attrs: dict = {"mode": self.mode, "coordinate_transformation_mode": self.transform}
        if self.mode == "nearest":
            attrs["nearest_mode"] = self.nearest_mode
        if self.mode == "cubic":
            attrs["cubic_coeff_a"] = float(self.cubic_coeff_a)
        if self.exclude_outside:
            attrs["exclude_outside"] = 1
        if self.transform == "tf_crop_and_resize":
            attrs["extrapolation_value"] = float(self.extrapolation_value)
        if self.antialias:
            attrs["antialias"] = 1
        if self.axes is not None:
            attrs["axes"] = list(self.axes)
        return attrs

    def label(self) -> str:
        parts = [self.mode, self.transform]
        if self.mode == "nearest":
            parts.append(self.nearest_mode)
        if self.mode == "cubic":
            parts.append(f"a={self.cubic_coeff_a:g}" + (", exclude_outside" if self.exclude_outside else ""))
        if self.antialias:
            parts.append("antialias")
        if self.sizes is not None:
            parts.append("sizes=" + "x".join(map(str, self.sizes)) + (f" axes={list(self.axes)}" if self.axes else ""))
        elif self.scales is not None:
            parts.append("scales=" + ",".join(f"{s:g}" for s in self.scales))
        return "Resize(" + ", ".join(parts) + ")"


def spelling_inputs(spelling: Spelling, prefix: str, opset: int) -> tuple[list[str], list[onnx.TensorProto]]:
    """Input names (after X) and constant tensors for a Resize of this spelling at ``opset``."""
    tensors: list[onnx.TensorProto] = []
    roi_name = scales_name = sizes_name = ""
    if spelling.roi is not None:
        roi_name = f"{prefix}_roi"
        tensors.append(oh.make_tensor(roi_name, TensorProto.FLOAT, [len(spelling.roi)], list(spelling.roi)))
    elif opset < 13:
        roi_name = f"{prefix}_roi"
        tensors.append(oh.make_tensor(roi_name, TensorProto.FLOAT, [0], []))
    if spelling.scales is not None:
        scales_name = f"{prefix}_scales"
        tensors.append(oh.make_tensor(scales_name, TensorProto.FLOAT, [len(spelling.scales)], list(spelling.scales)))
    elif opset < 13:
        scales_name = f"{prefix}_scales"
        tensors.append(oh.make_tensor(scales_name, TensorProto.FLOAT, [0], []))
    if spelling.sizes is not None:
        sizes_name = f"{prefix}_sizes"
        tensors.append(oh.make_tensor(sizes_name, TensorProto.INT64, [len(spelling.sizes)], list(spelling.sizes)))
    names = [roi_name, scales_name, sizes_name]
    while names and not names[-1]:
        names.pop()
    return names, tensors


def resize_node(spelling: Spelling, x: str, y: str, name: str, opset: int) -> tuple[onnx.NodeProto, list[onnx.TensorProto]]:
    names, tensors = spelling_inputs(spelling, name, opset)
    return oh.make_node("Resize", [x, *names], [y], name=name, **spelling.attributes()), tensors


def single_node_model(
    nodes: list[onnx.NodeProto],
    tensors: list[onnx.TensorProto],
    input_shape: tuple[Dim, ...],
    opset: int,
    elem_type: int = TensorProto.FLOAT,
    x: str = "x",
    y: str = "y",
) -> onnx.ModelProto:
    dims = [d if d is not None else "unk" for d in input_shape]
    graph = oh.make_graph(
        nodes, "resize", [oh.make_tensor_value_info(x, elem_type, dims)], [oh.make_tensor_value_info(y, elem_type, None)], tensors
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)], producer_name="rewriter")
    model.ir_version = min(onnx.IR_VERSION, 10 if opset >= 21 else 9 if opset >= 19 else 8)
    return model


@functools.lru_cache(maxsize=4096)
def describe_spelling(spelling: Spelling, input_shape: tuple[Dim, ...], opset: int, elem_type: int = TensorProto.FLOAT) -> ResizeSemantics:
    """The semantics ORT gives a Resize of this spelling on an input of this shape (cached: the passes
    ask about the same spellings repeatedly, and each answer costs a shape inference)."""
    opset = max(opset, spelling.min_opset)
    node, tensors = resize_node(spelling, "x", "y", "probe", opset)
    view = ModelView.build(single_node_model([node], tensors, input_shape, opset, elem_type))
    scope = view.scopes[0]
    return describe_node(view, scope, scope.graph.node[0])


def chain_weights(sems: list[ResizeSemantics], axis: int) -> AxisWeights:
    """Weights along ``axis`` of resizes applied one after the other (they are separable)."""
    total: AxisWeights | None = None
    for sem in sems:
        w = sem.axis_weights(axis)
        if total is None:
            total = w
        else:
            total = AxisWeights(w.matrix @ total.matrix, w.outside | (np.abs(w.matrix) @ total.outside.astype(float) > 0))
    assert total is not None
    return total


def spelling_of(sem: ResizeSemantics) -> Spelling:
    """The node's own attributes as a (modern) spelling, with its resolved constant scales or sizes."""
    scales = sizes = None
    if sem.size_source == "sizes" and all(isinstance(a.m, int) for a in sem.axes_info):
        sizes = tuple(int(a.m) for a in sem.axes_info)  # type: ignore[arg-type]
    else:  # symbolic unchanged axes (e.g. a dynamic batch) can only be spelled with scale 1
        scales = tuple(float(a.scale) if a.scale is not None else 1.0 for a in sem.axes_info)
    return Spelling(
        mode=sem.mode,
        transform=sem.transform,
        nearest_mode=sem.nearest_mode if sem.nearest_mode not in (None, "simple") else "floor",
        cubic_coeff_a=sem.cubic_coeff_a,
        exclude_outside=sem.exclude_outside,
        extrapolation_value=sem.extrapolation_value,
        antialias=sem.antialias,
        scales=scales,
        sizes=sizes,
        roi=sem.roi if sem.transform == "tf_crop_and_resize" else None,
    )
