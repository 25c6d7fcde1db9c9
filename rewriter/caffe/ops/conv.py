"""Caffe translations of ONNX convolutions and pooling: Conv, ConvTranspose, MaxPool, AveragePool and the
global poolings (also ReduceMean / ReduceMax over H and W).

Geometry Caffe lacks is rebuilt exactly: Caffe pads symmetrically, so an asymmetric Conv pad becomes zero
DummyData concatenated at the end (or a Slice of the extra begin rows), an asymmetric ConvTranspose pad a
Slice of the Deconvolution output, and the extra pooled rows of Caffe's ceil rounding are sliced off. Where
Caffe's average-pooling divisor differs from ONNX Runtime's (measured on ones) a constant Scale fixes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from rewriter.caffe import proto
from rewriter.caffe.net import F32, fill, shape_msg
from rewriter.caffe.ops import CAFFE_OPS
from rewriter.caffe.ops.normalization import reduce_block
from rewriter.caffe.reference import forward_layer, pooled_size
from rewriter.caffe.translator import Problem, Translator
from rewriter.exporting.onnx_readers import attributes, conv_padding, reduce_axes
from rewriter.ort_runtime import session


def geometry(params: dict, key: str, values: list[int], default: int, nsp: int) -> None:
    """pad / kernel / stride / dilation fields: one value when equal, *_h/*_w for 2-D, else repeated."""
    if all(v == default for v in values) and key != "kernel":
        return
    field = "kernel_size" if key == "kernel" else key
    if len(set(values)) == 1:
        params[field] = [int(values[0])]
    elif nsp == 2 and key != "dilation":
        params[f"{key}_h"] = int(values[0])
        params[f"{key}_w"] = int(values[1])
    else:
        params[field] = [int(v) for v in values]


@dataclass
class _ConvOperands:
    """A Conv / ConvTranspose node's input blob (ONNX layout), constant weights and geometry attributes."""

    x: str
    w: np.ndarray
    bias: np.ndarray | None
    spatial: tuple[int, ...]
    kernel: list[int]
    strides: list[int]
    dilations: list[int]
    group: int

    @property
    def nsp(self) -> int:
        return len(self.spatial)

    def layer(self, num_output: int, pads: list[int]) -> tuple[dict, list[np.ndarray]]:
        """Convolution / Deconvolution parameters with symmetric ``pads`` (one per spatial axis), and blobs."""
        nsp = self.nsp
        params: dict = {"num_output": num_output, "bias_term": self.bias is not None}
        geometry(params, "pad", pads, 0, nsp)
        geometry(params, "kernel", self.kernel, 0, nsp)
        geometry(params, "stride", self.strides, 1, nsp)
        geometry(params, "dilation", self.dilations, 1, nsp)
        if self.group != 1:
            params["group"] = self.group
        if nsp != 2:
            params["engine"] = "CAFFE"  # cuDNN convolution is 2-D only
        blobs = [self.w] + ([np.asarray(self.bias, dtype=F32).reshape(-1)] if self.bias is not None else [])
        return params, blobs


def _conv_operands(t: Translator, node: onnx.NodeProto) -> _ConvOperands:
    a = attributes(node)
    x = t.data(node.input[0])
    w = np.asarray(t.const(node.input[1]), dtype=F32)
    bias = t.opt_const(node, 2)
    nsp = w.ndim - 2
    spatial = t.net.shapes[x][2:]
    if nsp < 1 or len(spatial) != nsp:
        raise Problem("needs an N x C x spatial input")
    return _ConvOperands(
        x,
        w,
        bias,
        tuple(spatial),
        list(w.shape[2:]),
        list(a.get("strides", [1] * nsp)),
        list(a.get("dilations", [1] * nsp)),
        int(a.get("group", 1)),
    )


@CAFFE_OPS.register(
    "Conv", becomes="Convolution (asymmetric pads: zero DummyData + Concat, or a Slice of the extra rows)"
)
def conv(t: Translator, node: onnx.NodeProto) -> None:
    c = _conv_operands(t, node)
    x, nsp, spatial, kernel, strides, dil = c.x, c.nsp, c.spatial, c.kernel, c.strides, c.dilations
    pads = conv_padding(node, nsp).explicit(spatial, kernel, strides, dil)
    onnx_out = t.shape(node.output[0])[2:]
    for i in range(nsp):
        ext = dil[i] * (kernel[i] - 1) + 1
        caffe = (spatial[i] + 2 * pads[i] - ext) // strides[i] + 1
        if caffe < onnx_out[i]:  # a larger end pad than begin pad that Caffe's symmetric pad cannot give
            x = t.zero_extend(x, 2 + i, pads[nsp + i] - pads[i])
    params, blobs = c.layer(int(c.w.shape[0]), pads[:nsp])
    xs = t.net.shapes[x][2:]
    caffe_out = [(xs[i] + 2 * pads[i] - (dil[i] * (kernel[i] - 1) + 1)) // strides[i] + 1 for i in range(nsp)]
    crops = [i for i in range(nsp) if caffe_out[i] > onnx_out[i]]  # a begin pad larger than the end pad
    (top,) = t.net.add(
        "Convolution",
        [x],
        [node.output[0]] if not crops else 1,
        t.lname() if not crops else t.lname("conv"),
        params,
        blobs,
    )
    for k, i in enumerate(crops):
        top = t.slice_range(top, 2 + i, 0, onnx_out[i], top=node.output[0] if k == len(crops) - 1 else None)
    t.set(node.output[0], top)


@CAFFE_OPS.register("ConvTranspose", becomes="Deconvolution (pad = the smaller pad, a Slice for the rest)")
def conv_transpose(t: Translator, node: onnx.NodeProto) -> None:
    c = _conv_operands(t, node)
    nsp = c.nsp
    a = attributes(node)
    if "output_shape" in a or a.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID", ""):
        raise Problem("output_shape / SAME auto_pad: give explicit pads")
    pads = conv_padding(node, nsp).pads
    out_pad = list(a.get("output_padding", [0] * nsp))
    begin = pads[:nsp]
    end = [pads[nsp + i] - out_pad[i] for i in range(nsp)]
    if any(e < 0 for e in end):
        raise Problem("output_padding beyond the end pad adds rows only the bias reaches")
    caffe_pad = [min(b, e) for b, e in zip(begin, end)]
    params, blobs = c.layer(int(c.w.shape[1] * c.group), caffe_pad)
    frozen = (node.name or node.output[0]) in t.frozen_nodes
    needs_crop = [i for i in range(nsp) if begin[i] != end[i]]
    (top,) = t.net.add(
        "Deconvolution",
        [c.x],
        [node.output[0]] if not needs_crop else 1,
        t.lname() if not needs_crop else t.lname("deconv"),
        params,
        blobs,
        frozen=frozen,
    )
    for k, i in enumerate(needs_crop):
        length = t.net.shapes[top][2 + i]
        start = begin[i] - caffe_pad[i]
        stop = length - (end[i] - caffe_pad[i])
        top = t.slice_range(top, 2 + i, start, stop, top=node.output[0] if k == len(needs_crop) - 1 else None)
    t.set(node.output[0], top)


@CAFFE_OPS.register(
    "MaxPool",
    "AveragePool",
    becomes="Pooling (the extra row of Caffe's ceil rounding is sliced off; AVE divisors unlike ONNX's get a Scale)",
)
def pool(t: Translator, node: onnx.NodeProto) -> None:
    op = node.op_type
    a = attributes(node)
    x = t.data(node.input[0])
    shape = t.net.shapes[x]
    if len(shape) != 4:
        raise Problem("Caffe's Pooling layer is 2-D (N x C x H x W) only")
    if len(node.output) > 1 and node.output[1]:
        raise Problem("the Indices output")
    kernel = list(a["kernel_shape"])
    strides = list(a.get("strides", [1, 1]))
    if any(d != 1 for d in a.get("dilations", [1, 1])):
        raise Problem("dilated pooling")
    pads = conv_padding(node, 2).explicit(shape[2:], kernel, strides, [1, 1])
    onnx_out = t.shape(node.output[0])[2:]
    for i in range(2):
        if pads[i] and pads[i] >= kernel[i]:
            raise Problem(f"pad {pads[i]} >= kernel {kernel[i]} (Caffe requires pad < kernel)")
        if pooled_size(shape[2 + i], kernel[i], strides[i], pads[i]) < onnx_out[i]:
            raise Problem(
                f"pads {pads[i]}/{pads[2 + i]} along axis {2 + i}: the end pad is larger than Caffe's symmetric pad can give"
            )
    is_max = op == "MaxPool"
    params: dict = {"pool": "MAX" if is_max else "AVE"}
    if kernel[0] == kernel[1]:
        params["kernel_size"] = kernel[0]
    else:
        params["kernel_h"], params["kernel_w"] = kernel
    if strides[0] == strides[1]:
        if strides[0] != 1:
            params["stride"] = strides[0]
    else:
        params["stride_h"], params["stride_w"] = strides
    if pads[0] or pads[1]:
        if pads[0] == pads[1]:
            params["pad"] = pads[0]
        else:
            params["pad_h"], params["pad_w"] = pads[0], pads[1]
    out = node.output[0]
    caffe_out = [pooled_size(shape[2 + i], kernel[i], strides[i], pads[i]) for i in range(2)]
    factor = None if is_max else _ave_divisor_correction(t, node, shape, params, onnx_out)
    extra = [i for i in range(2) if caffe_out[i] > onnx_out[i]]
    final_is_pool = not extra and factor is None
    (top,) = t.net.add(
        "Pooling", [x], [out] if final_is_pool else 1, t.lname() if final_is_pool else t.lname("pool"), params
    )
    for k, i in enumerate(extra):  # Caffe rounds the pooled size up: drop the rows ONNX (floor) does not have
        last = k == len(extra) - 1 and factor is None
        top = t.slice_range(top, 2 + i, 0, onnx_out[i], top=out if last else None, hint="floor")
    if factor is not None:
        (top,) = t.net.add("Scale", [top], [out], t.lname(), {"axis": 2, "num_axes": 2}, [factor])
    t.set(out, top)


def _ave_divisor_correction(t: Translator, node: onnx.NodeProto, shape, params: dict, onnx_out) -> np.ndarray | None:
    """ONNX Runtime's AveragePool divisor vs Caffe's, measured on an all-ones input: None if they agree."""
    probe_in = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 1, shape[2], shape[3]])
    probe_out = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)
    single = onnx.helper.make_node(node.op_type, ["x"], ["y"], **attributes(node))
    model = onnx.helper.make_model(
        onnx.helper.make_graph([single], "probe", [probe_in], [probe_out]),
        opset_imports=[onnx.helper.make_opsetid("", max(t.g.opset, 7))],
    )
    ones = np.ones((1, 1, shape[2], shape[3]), dtype=F32)
    onnx_ones = session(model).run(None, {"x": ones})[0][0, 0]
    layer = proto.LayerParameter(name="probe", type="Pooling")
    fill(layer.pooling_param, params)
    caffe_ones = forward_layer(layer, [ones], [])[0][0, 0, : onnx_out[0], : onnx_out[1]]
    factor = (onnx_ones.astype(np.float64) / caffe_ones.astype(np.float64)).astype(F32)
    return None if np.all(factor == 1) else factor


@CAFFE_OPS.register("GlobalAveragePool", "GlobalMaxPool", becomes="Pooling (global_pooling)")
def global_pool(t: Translator, node: onnx.NodeProto) -> None:
    x = t.data(node.input[0])
    if len(t.net.shapes[x]) != 4:
        raise Problem("Caffe's Pooling layer is 2-D (N x C x H x W) only")
    pool = "MAX" if node.op_type in ("GlobalMaxPool", "ReduceMax") else "AVE"
    out = node.output[0]
    keep = tuple(t.shape(out)) == (t.net.shapes[x][0], t.net.shapes[x][1], 1, 1)
    (top,) = t.net.add(
        "Pooling",
        [x],
        [out] if keep else 1,
        t.lname() if keep else t.lname("pool"),
        {"pool": pool, "global_pooling": True},
    )
    if not keep:
        (top,) = t.net.add("Reshape", [top], [out], t.lname(), {"shape": shape_msg(t.shape(out))})
    t.set(out, top)


@CAFFE_OPS.register(
    "ReduceMean",
    "ReduceMax",
    becomes="Pooling (global_pooling) over H and W; ReduceMean of another block of axes as ReduceSum (MEAN)",
)
def reduce(t: Translator, node: onnx.NodeProto) -> None:
    rank = len(t.shape(node.input[0]))
    axes = reduce_axes(node, t.g.opset, t.const_input(node))
    axes = sorted(ax + rank if ax < 0 else ax for ax in (axes or []))
    if (rank != 4 or axes != [2, 3]) and node.op_type == "ReduceMean":
        reduce_block(t, node, mean=True)
        return
    if rank != 4 or axes != [2, 3]:
        raise Problem("only a reduction over H and W of an N x C x H x W tensor (global pooling) maps to Caffe")
    global_pool(t, node)
