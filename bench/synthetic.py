"""Synthetic big models for the benchmarks: thousands of nodes, >= 100 Resize nodes of mixed flavours
(constant scales and sizes, dynamic Shape->Slice->Mul->Concat size subgraphs, pytorch_half_pixel,
tf_half_pixel_for_nn, nearest), and large "ballast" weights to reach a target file size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto
from onnx import helper as oh
from onnx import numpy_helper

CHANNELS = 8
SIDE = 16


def _resize_block(k: int, x: str, nodes: list, inits: list) -> str:
    """One upsample x2 of a flavour picked by k, then a MaxPool back to the working size."""
    up = f"up{k}"
    flavour = k % 5
    if flavour == 0:  # TorchScript bilinear: constant scales
        inits.append(oh.make_tensor(f"scales{k}", TensorProto.FLOAT, [4], [1, 1, 2, 2]))
        nodes.append(oh.make_node("Resize", [x, "", f"scales{k}"], [up], name=f"resize{k}", mode="linear", coordinate_transformation_mode="half_pixel"))
    elif flavour == 1:  # TorchScript size=: dynamic size subgraph
        nodes += [
            oh.make_node("Shape", [x], [f"shape{k}"], name=f"shape{k}"),
            oh.make_node("Slice", [f"shape{k}", "c0", "c2"], [f"nc{k}"], name=f"slice_nc{k}"),
            oh.make_node("Slice", [f"shape{k}", "c2", "c4"], [f"hw{k}"], name=f"slice_hw{k}"),
            oh.make_node("Mul", [f"hw{k}", "c22"], [f"hw2{k}"], name=f"mul{k}"),
            oh.make_node("Concat", [f"nc{k}", f"hw2{k}"], [f"sizes{k}"], name=f"concat{k}", axis=0),
            oh.make_node("Resize", [x, "", "", f"sizes{k}"], [up], name=f"resize{k}", mode="linear", coordinate_transformation_mode="pytorch_half_pixel"),
        ]
    elif flavour == 2:  # nearest
        inits.append(oh.make_tensor(f"scales{k}", TensorProto.FLOAT, [4], [1, 1, 2, 2]))
        nodes.append(oh.make_node("Resize", [x, "", f"scales{k}"], [up], name=f"resize{k}", mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor"))
    elif flavour == 3:  # tf2onnx half-pixel nearest
        inits.append(oh.make_tensor(f"scales{k}", TensorProto.FLOAT, [4], [1, 1, 2, 2]))
        nodes.append(oh.make_node("Resize", [x, "", f"scales{k}"], [up], name=f"resize{k}", mode="nearest", coordinate_transformation_mode="tf_half_pixel_for_nn", nearest_mode="floor"))
    else:  # align_corners to the odd size 2n-1
        inits.append(oh.make_tensor(f"sizes{k}", TensorProto.INT64, [4], [1, CHANNELS, 2 * SIDE - 1, 2 * SIDE - 1]))
        nodes.append(oh.make_node("Resize", [x, "", "", f"sizes{k}"], [up], name=f"resize{k}", mode="linear", coordinate_transformation_mode="align_corners"))
    down = f"down{k}"
    nodes.append(oh.make_node("MaxPool", [up], [down], name=f"pool{k}", kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1 if flavour == 4 else 0))
    return down


def build(total_bytes: int, *, blocks: int = 500, resizes: int = 120, seed: int = 0) -> onnx.ModelProto:
    """A model of about ``total_bytes`` of weights with ``blocks`` conv blocks and ``resizes`` Resize nodes."""
    rng = np.random.default_rng(seed)
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = [
        oh.make_tensor("c0", TensorProto.INT64, [1], [0]),
        oh.make_tensor("c2", TensorProto.INT64, [1], [2]),
        oh.make_tensor("c4", TensorProto.INT64, [1], [4]),
        oh.make_tensor("c22", TensorProto.INT64, [2], [2, 2]),
    ]
    x = "input"
    every = max(1, blocks // resizes)
    made = 0
    for b in range(blocks):
        w = (rng.standard_normal((CHANNELS, CHANNELS, 3, 3)) * 0.1).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{b}"))
        nodes.append(oh.make_node("Conv", [x, f"w{b}"], [f"conv{b}"], name=f"conv{b}", pads=[1, 1, 1, 1]))
        nodes.append(oh.make_node("Relu", [f"conv{b}"], [f"relu{b}"], name=f"relu{b}"))
        x = f"relu{b}"
        if b % every == 0 and made < resizes:
            x = _resize_block(made, x, nodes, inits)
            made += 1
    # Ballast: big weights that the pass never needs to read, folded into the output by a cheap reduction.
    ballast_total = max(0, total_bytes - sum(len(t.raw_data) for t in inits))
    chunk = 128 << 20
    acc = None
    k = 0
    while ballast_total > 0:
        size = min(chunk, ballast_total)
        name = f"ballast{k}"
        inits.append(numpy_helper.from_array(np.full(size // 4, 1e-9, dtype=np.float32), name))
        nodes.append(oh.make_node("ReduceMax", [name], [f"{name}_max"], name=f"{name}_reduce", keepdims=0))
        if acc is None:
            acc = f"{name}_max"
        else:
            nodes.append(oh.make_node("Add", [acc, f"{name}_max"], [f"acc{k}"], name=f"acc{k}"))
            acc = f"acc{k}"
        ballast_total -= size
        k += 1
    out = "output"
    if acc is not None:
        nodes.append(oh.make_node("Add", [x, acc], [out], name="add_ballast"))
    else:
        nodes.append(oh.make_node("Identity", [x], [out], name="out"))
    graph = oh.make_graph(
        nodes,
        "synthetic",
        [oh.make_tensor_value_info("input", TensorProto.FLOAT, [1, CHANNELS, SIDE, SIDE])],
        [oh.make_tensor_value_info(out, TensorProto.FLOAT, [1, CHANNELS, SIDE, SIDE])],
        inits,
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)], producer_name="rewriter-bench")
    model.ir_version = 8
    return model


def write(path: Path, total_bytes: int, external: bool, **kwargs) -> Path:
    model = build(total_bytes, **kwargs)
    if external:
        onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location=path.name + ".data", size_threshold=1 << 20)
    else:
        onnx.save(model, str(path))
    return path
