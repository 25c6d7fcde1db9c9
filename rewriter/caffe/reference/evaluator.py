"""A whole TEST-phase Caffe net for the reference evaluator: layers filtered by phase, shapes checked
layer by layer, weights copied like ``Net::CopyTrainedLayersFrom`` (``CaffeNet``), and ``load`` / ``run``
on the written prototxt and caffemodel."""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from rewriter.caffe import proto
from rewriter.caffe.reference.blobs import F32, blob_to_array, check
from rewriter.caffe.reference.forward import forward_layer
from rewriter.caffe.reference.shapes import layer_shapes


class CaffeNet:
    """A TEST-phase Caffe net: layers from ``net`` (a NetParameter), weights copied from ``weights``."""

    def __init__(self, net, weights=None) -> None:
        self.net = net
        self.layers = [layer for layer in net.layer if _included(layer)]
        self.params: dict[str, list[np.ndarray]] = {}
        trained = {layer.name: layer for layer in (weights.layer if weights is not None else [])}
        self.shapes: dict[str, tuple[int, ...]] = {}
        consumed: set[str] = set()
        produced: list[str] = []
        names = set()
        for layer in self.layers:
            check(layer.name not in names, f"duplicate layer name {layer.name!r}")
            names.add(layer.name)
            for b in layer.bottom:
                check(
                    b in self.shapes,
                    f"Unknown bottom blob '{b}' (layer '{layer.name}', bottom index {list(layer.bottom).index(b)})",
                )
                consumed.add(b)
            tops, blob_shapes = layer_shapes(layer, [self.shapes[b] for b in layer.bottom])
            check(len(tops) == len(layer.top), f"{layer.name}: {len(layer.top)} tops for {len(tops)} outputs")
            for name, shape in zip(layer.top, tops):
                self.shapes[name] = tuple(int(d) for d in shape)
                produced.append(name)
            source = trained.get(layer.name)
            if blob_shapes:
                check(
                    source is not None and len(source.blobs) == len(blob_shapes),
                    f"Incompatible number of blobs for layer {layer.name}",
                )
                arrays = [blob_to_array(b) for b in source.blobs]
                for k, (a, s) in enumerate(zip(arrays, blob_shapes)):
                    check(
                        tuple(a.shape) == tuple(s),
                        f"Cannot copy param {k} weights from layer '{layer.name}'; shape mismatch. Source param shape is {a.shape}; target param shape is {tuple(s)}",
                    )
                self.params[layer.name] = arrays
            elif source is not None:
                check(len(source.blobs) == 0, f"Incompatible number of blobs for layer {layer.name}")
        self.outputs = [n for n in dict.fromkeys(produced) if n not in consumed]
        self.inputs = [t for layer in self.layers if layer.type == "Input" for t in layer.top]

    def forward(self, inputs: Mapping[str, np.ndarray], keep_all: bool = False) -> dict[str, np.ndarray]:
        blobs: dict[str, np.ndarray] = {}
        for layer in self.layers:
            if layer.type == "Input":
                for name in layer.top:
                    check(name in inputs, f"missing input {name!r}")
                    value = np.asarray(inputs[name], dtype=F32)
                    check(
                        value.shape == self.shapes[name],
                        f"input {name!r} has shape {value.shape}, the net expects {self.shapes[name]}",
                    )
                    blobs[name] = value
                continue
            tops = forward_layer(layer, [blobs[b] for b in layer.bottom], self.params.get(layer.name, []))
            for name, value in zip(layer.top, tops):
                check(
                    tuple(value.shape) == self.shapes[name],
                    f"{layer.name}: computed {value.shape}, expected {self.shapes[name]}",
                )
                blobs[name] = value
        return blobs if keep_all else {n: blobs[n] for n in self.outputs}


def _included(layer) -> bool:
    """NetStateRule filtering for phase TEST (the only state the exporter targets)."""
    if layer.HasField("phase") and layer.phase != 1:
        return False
    if layer.include:
        return any(not r.HasField("phase") or r.phase == 1 for r in layer.include)
    if layer.exclude:
        return not any(not r.HasField("phase") or r.phase == 1 for r in layer.exclude)
    return True


def load(prototxt: str | os.PathLike, caffemodel: str | os.PathLike | None) -> CaffeNet:
    """Parse the written files with the schema and build the evaluator (what ``caffe.Net(..., TEST)`` does)."""
    with open(prototxt, encoding="utf-8") as f:
        net = proto.parse_prototxt(f.read())
    weights = None
    if caffemodel is not None:
        with open(caffemodel, "rb") as f:
            weights = proto.parse_caffemodel(f.read())
    return CaffeNet(net, weights)


def run(
    prototxt: str | os.PathLike, caffemodel: str | os.PathLike | None, inputs: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """The net's outputs for ``inputs`` (``load`` then ``CaffeNet.forward``)."""
    return load(prototxt, caffemodel).forward(inputs)
