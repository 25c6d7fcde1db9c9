"""Core ML translations of ONNX convolutions and pooling: Conv, ConvTranspose, MaxPool, AveragePool and
the global poolings.

ConvTranspose's output_padding, output_shape and auto_pad become explicit pads; where a pad is negative
(output padding past the computed region) the full output is cropped and zero-padded, the bias added
after. Pooling with ceil_mode is refused where it would change the output size (MIL pools round down).
"""

from __future__ import annotations

import numpy as np
import onnx

from rewriter.coreml.ops import COREML_OPS, NodeContext
from rewriter.coreml.translator import Translator
from rewriter.errors import UnsupportedOpError
from rewriter.exporting.onnx_readers import attribute, conv_padding
from rewriter.graph import Scope

_MIL_PAD_TYPES = {"SAME_UPPER": "same", "SAME_LOWER": "same_lower", "VALID": "valid"}


def _mil_padding(node: onnx.NodeProto, k: int) -> tuple[str, list[int]]:
    """MIL pad_type and, for "custom", the pads as (begin, end) per spatial axis."""
    padding = conv_padding(node, k)
    pads = [p for i in range(k) for p in (padding.pads[i], padding.pads[k + i])]
    return _MIL_PAD_TYPES.get(padding.auto_pad, "custom"), pads


def _computed_weights(node: onnx.NodeProto, ctx: NodeContext) -> str | None:
    if len(node.input) > 1 and not ctx.is_static(node.input[1]):
        return "weights computed at run time"
    return None


def _computed_weights_or_bias(node: onnx.NodeProto, ctx: NodeContext) -> str | None:
    reason = _computed_weights(node, ctx)
    if reason is None and len(node.input) > 2 and node.input[2] and not ctx.is_static(node.input[2]):
        return "bias computed at run time"
    return reason


def _ceil_mode_matters(scope: Scope, node: onnx.NodeProto) -> bool:
    """True when a pooling node's ceil_mode gives another output size than floor mode (or that is unknown)."""
    shape = scope.lookup_shape(node.input[0])
    kernel = list(attribute(node, "kernel_shape", []))
    if shape is None or not kernel or not all(isinstance(d, int) for d in shape[2:]):
        return True
    k = len(kernel)
    strides = list(attribute(node, "strides", [1] * k))
    padding = conv_padding(node, k)
    if padding.auto_pad not in ("NOTSET", "VALID"):
        return True
    pads = padding.pads
    for i in range(k):
        span = int(shape[2 + i]) + pads[i] + pads[k + i] - kernel[i]
        if span % strides[i]:
            return True
    return False


def _ceil_mode_refusal(node: onnx.NodeProto, ctx: NodeContext) -> str | None:
    if attribute(node, "ceil_mode", 0) and _ceil_mode_matters(ctx.scope, node):
        return "ceil_mode=1"
    return None


def _max_pool_refusal(node: onnx.NodeProto, ctx: NodeContext) -> str | None:
    if any(d != 1 for d in attribute(node, "dilations", [])):
        return "dilations"
    if len(node.output) > 1 and node.output[1]:
        return "Indices output"
    return _ceil_mode_refusal(node, ctx)


@COREML_OPS.register(
    "Conv",
    becomes="conv (1-D/2-D/3-D, groups, dilations, explicit or auto_pad)",
    precondition=_computed_weights,
)
def conv(t: Translator, node: onnx.NodeProto):
    x = t.var(node.input[0])
    w = t.need_const(node, 1, "weights").astype(np.float32)
    k = w.ndim - 2
    pad_type, pad = _mil_padding(node, k)
    kw = dict(
        x=x,
        weight=w.astype(t.np_dtype(x)),
        strides=list(attribute(node, "strides", [1] * k)),
        dilations=list(attribute(node, "dilations", [1] * k)),
        groups=int(attribute(node, "group", 1)),
        pad_type=pad_type,
        name=t.out_name(node),
    )
    if pad_type == "custom":
        kw["pad"] = pad
    if len(node.input) > 2 and node.input[2]:
        bias = t.const(node.input[2])
        if bias is None:
            kw["name"] = t.tmp_name(node, "conv")
            y = t.mb.conv(**kw)
            b = t.mb.reshape(x=t.var(node.input[2], x), shape=[1, -1] + [1] * k, name=t.tmp_name(node, "bias"))
            return t.mb.add(x=y, y=b, name=t.out_name(node))
        kw["bias"] = bias.astype(t.np_dtype(x))
    return t.mb.conv(**kw)


@COREML_OPS.register(
    "ConvTranspose",
    becomes="conv_transpose (+ slice / pad for output_padding, output_shape, auto_pad)",
    precondition=_computed_weights_or_bias,
)
def conv_transpose(t: Translator, node: onnx.NodeProto):
    x = t.var(node.input[0])
    w = t.need_const(node, 1, "weights").astype(t.np_dtype(x))
    k = w.ndim - 2
    xs = t.shape(node.input[0])
    group = int(attribute(node, "group", 1))
    strides = list(attribute(node, "strides", [1] * k))
    dil = list(attribute(node, "dilations", [1] * k))
    if t.model_format == "neuralnetwork" and any(d != 1 for d in dil):
        # NeuralNetwork.proto: dilationFactor "is ignored if isDeconvolution == true".
        raise UnsupportedOpError(f"unsupported ONNX ops for Core ML: ConvTranspose(dilations with --format neuralnetwork) ({node.name or node.output[0]})")
    out_pad = list(attribute(node, "output_padding", [0] * k))
    full = [(xs[2 + i] - 1) * strides[i] + (w.shape[2 + i] - 1) * dil[i] + 1 for i in range(k)]
    auto = attribute(node, "auto_pad", "NOTSET")
    out_shape = attribute(node, "output_shape", None)
    if out_shape is not None:
        out_shape = list(out_shape)[-k:]
        total = [full[i] + out_pad[i] - out_shape[i] for i in range(k)]
    elif auto in ("SAME_UPPER", "SAME_LOWER"):
        total = [full[i] + out_pad[i] - xs[2 + i] * strides[i] for i in range(k)]
    else:
        total = None
    if total is not None:
        begin = [n // 2 if auto != "SAME_LOWER" else n - n // 2 for n in total]
        if out_shape is not None and auto not in ("SAME_UPPER", "SAME_LOWER"):
            # ONNX: explicit output_shape pads like SAME_LOWER... unless auto_pad says otherwise
            begin = [n - n // 2 for n in total]
        end = [n - b for n, b in zip(total, begin)]
    else:
        pads = conv_padding(node, k).pads
        begin, end = pads[:k], pads[k:]
    bias = None
    if len(node.input) > 2 and node.input[2]:
        bias = t.need_const(node, 2, "bias").astype(t.np_dtype(x))
    # Output length per axis: full - begin - end + output_padding. Negative "end" (output padding past the
    # computed region) needs zeros after the crop, with the bias added afterwards.
    crop_end = [e - op for e, op in zip(end, out_pad)]
    simple = all(b >= 0 for b in begin) and all(c >= 0 for c in crop_end)
    if simple:
        kw = dict(x=x, weight=w, strides=strides, dilations=dil, groups=group, pad_type="custom",
                  pad=[p for i in range(k) for p in (begin[i], crop_end[i])], name=t.out_name(node))
        if bias is not None:
            kw["bias"] = bias
        return t.mb.conv_transpose(**kw)
    y = t.mb.conv_transpose(x=x, weight=w, strides=strides, dilations=dil, groups=group, pad_type="valid", name=t.tmp_name(node, "full"))
    rank = 2 + k
    lo = [max(b, 0) for b in begin]
    hi = [full[i] - max(crop_end[i], 0) for i in range(k)]
    y = t.mb.slice_by_index(x=y, begin=[0, 0] + lo, end=[xs[0], w.shape[1] * group] + hi, name=t.tmp_name(node, "crop"))
    extra = [p for i in range(k) for p in (max(-begin[i], 0), max(-crop_end[i], 0))]
    if any(extra):
        y = t.mb.pad(x=y, pad=extra, mode="constant", constant_val=np.float32(0), name=t.tmp_name(node, "zeros"))
    if bias is not None:
        return t.mb.add(x=y, y=bias.reshape([1, -1] + [1] * (rank - 2)), name=t.out_name(node))
    return t.mb.identity(x=y, name=t.out_name(node))


def _pool(t: Translator, node: onnx.NodeProto):
    op = "max_pool" if node.op_type == "MaxPool" else "avg_pool"
    x = t.var(node.input[0])
    kernel = list(attribute(node, "kernel_shape"))
    k = len(kernel)
    pad_type, pad = _mil_padding(node, k)
    strides = list(attribute(node, "strides", [1] * k))
    kw = dict(x=x, kernel_sizes=kernel, strides=strides, pad_type=pad_type, name=t.out_name(node))
    if pad_type == "custom":
        kw["pad"] = pad
    if op == "avg_pool":
        kw["exclude_padding_from_average"] = not bool(attribute(node, "count_include_pad", 0))
    return getattr(t.mb, op)(**kw)


COREML_OPS.register(
    "MaxPool",
    becomes="max_pool (no dilations, no Indices output; ceil_mode only where it does not change the size)",
    precondition=_max_pool_refusal,
)(_pool)
COREML_OPS.register(
    "AveragePool",
    becomes="avg_pool (count_include_pad -> exclude_padding_from_average; same ceil_mode rule)",
    precondition=_ceil_mode_refusal,
)(_pool)


@COREML_OPS.register("GlobalAveragePool", becomes="reduce_mean over the spatial axes")
def global_average_pool(t: Translator, node: onnx.NodeProto):
    rank = len(t.shape(node.input[0]))
    return t.mb.reduce_mean(x=t.var(node.input[0]), axes=list(range(2, rank)), keep_dims=True, name=t.out_name(node))


@COREML_OPS.register("GlobalMaxPool", becomes="reduce_max over the spatial axes")
def global_max_pool(t: Translator, node: onnx.NodeProto):
    rank = len(t.shape(node.input[0]))
    return t.mb.reduce_max(x=t.var(node.input[0]), axes=list(range(2, rank)), keep_dims=True, name=t.out_name(node))
