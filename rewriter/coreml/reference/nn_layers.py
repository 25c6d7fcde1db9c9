"""The NeuralNetwork layers of the reference evaluator, in numpy from the comments of NeuralNetwork.proto.

Only the layers the MIL NeuralNetwork backend emits for rewriter's op set are implemented; any other
layer raises ``UndocumentedError`` naming it. Layer semantics follow the proto comments (ValidPadding /
SamePadding output sizes, Add/Multiply ``alpha`` applying to a single input, BatchedMatMul weights as a
(rows=C_in, columns=C_out) row-major matrix, channel axis = -3 for Batchnorm / PReLU / Concat); the
Upsample and ResizeBilinear grids are in ``resizing``.

``NN_LAYERS`` maps a layer type to a function of (layer, input arrays) returning its output(s).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rewriter.coreml import kernels as K
from rewriter.coreml.kernels import UndocumentedError
from rewriter.coreml.reference.resizing import resize_bilinear_weights, upsample_weights


def weights(w, shape=None) -> np.ndarray:
    """WeightParams: floatValue (fp32) or float16Value (raw fp16 bytes)."""
    if len(w.floatValue):
        arr = np.asarray(w.floatValue, dtype=np.float32)
    elif len(w.float16Value):
        arr = np.frombuffer(w.float16Value, dtype=np.float16).astype(np.float32)
    elif len(w.rawValue) or len(w.int8RawValue) or w.HasField("quantization"):
        raise UndocumentedError("quantized NeuralNetwork weights are not evaluated by the reference")
    else:
        arr = np.zeros(0, dtype=np.float32)
    return arr.reshape(shape) if shape is not None else arr


def _valid_pads(valid, k: int = 2) -> list[tuple[int, int]]:
    amounts = list(valid.paddingAmounts.borderAmounts)
    if not amounts:
        return [(0, 0)] * k
    return [(int(a.startEdgeSize), int(a.endEdgeSize)) for a in amounts]


def _same_pads(same, spatial, kernel, strides, dilations) -> list[tuple[int, int]]:
    out = []
    for i in range(len(spatial)):
        eff = (kernel[i] - 1) * dilations[i] + 1
        o = -(-spatial[i] // strides[i])
        total = max(0, (o - 1) * strides[i] + eff - spatial[i])
        small = total // 2
        out.append((small, total - small) if same.asymmetryMode == 0 else (total - small, small))  # 0 = BOTTOM_RIGHT_HEAVY
    return out


# ---------------------------------------------------------------------------------------------------
# Layer implementations: (layer params, input arrays) -> output array(s)


def _conv(layer, xs):
    p = layer.convolution
    x = xs[0]
    kernel = [int(k) for k in p.kernelSize] or [3, 3]
    strides = [int(s) for s in p.stride] or [1, 1]
    dil = [int(d) for d in p.dilationFactor] or [1, 1]
    groups = int(p.nGroups) or 1
    bias = weights(p.bias) if p.hasBias else None
    cin = x.shape[-3]
    if x.ndim != 4:
        raise UndocumentedError(f"convolution on a rank-{x.ndim} blob")
    if p.isDeconvolution:
        dil = [1, 1]  # proto: dilationFactor "is ignored if isDeconvolution == true"
        w = weights(p.weights, (int(p.kernelChannels), int(p.outputChannels) // groups, *kernel))
        full = [(x.shape[2 + i] - 1) * strides[i] + (kernel[i] - 1) * dil[i] + 1 for i in range(2)]
        if len(p.outputShape):
            out = [int(o) for o in p.outputShape]
            pads = _valid_pads(p.valid) if p.WhichOneof("ConvolutionPaddingType") == "valid" else [(0, 0)] * 2
            pads = [(pads[i][0], full[i] - out[i] - pads[i][0]) for i in range(2)]
        elif p.WhichOneof("ConvolutionPaddingType") == "same":
            raise UndocumentedError("deconvolution with same padding and no outputShape: crop placement undocumented")
        else:
            pads = _valid_pads(p.valid)
            out = None
        return K.conv_transpose(x, w, bias, strides, pads, dil, groups, out)
    if len(xs) > 1:
        raise UndocumentedError("convolution with run-time weights")
    w = weights(p.weights, (int(p.outputChannels), cin // groups, *kernel))
    if p.WhichOneof("ConvolutionPaddingType") == "same":
        pads = _same_pads(p.same, x.shape[2:], kernel, strides, dil)
    else:
        pads = _valid_pads(p.valid)
    return K.conv(x, w, bias, strides, pads, dil, groups)


def _pooling(layer, xs):
    p = layer.pooling
    x = xs[0]
    kind = {0: "max", 1: "avg"}.get(p.type)
    if kind is None:
        raise UndocumentedError("L2 pooling")
    if p.globalPooling:
        axes = (-2, -1)
        return x.astype(np.float64).max(axis=axes, keepdims=True) if kind == "max" else x.astype(np.float64).mean(axis=axes, keepdims=True)
    kernel = [int(k) for k in p.kernelSize] or [3, 3]
    strides = [int(s) for s in p.stride] or [1, 1]
    which = p.WhichOneof("PoolingPaddingType")
    if which == "same":
        pads = _same_pads(p.same, x.shape[-2:], kernel, strides, [1, 1])
    elif which == "valid":
        pads = _valid_pads(p.valid)
    else:
        amounts = [int(a) for a in p.includeLastPixel.paddingAmounts] or [0, 0]
        pads = [(amounts[0], amounts[0]), (amounts[1], amounts[1])]
        for i in range(2):
            ceil_out = -(-(x.shape[-2 + i] + 2 * amounts[i] - kernel[i]) // strides[i]) + 1
            if amounts[i] > 0 and (ceil_out - 1) * strides[i] >= x.shape[-2 + i] + amounts[i]:
                ceil_out -= 1
            floor_out = (x.shape[-2 + i] + 2 * amounts[i] - kernel[i]) // strides[i] + 1
            if ceil_out != floor_out:
                raise UndocumentedError("includeLastPixel pooling with a partial last window")
    lead = x.shape[:-3]
    x4 = x.reshape((-1,) + x.shape[-3:]) if x.ndim != 4 else x
    y = K.pool(x4, kind, kernel, strides, pads, bool(p.avgPoolExcludePadding))
    return y.reshape(lead + y.shape[-3:]) if x.ndim != 4 else y


def _activation(layer, xs):
    a = layer.activation
    x = xs[0].astype(np.float64)
    kind = a.WhichOneof("NonlinearityType")
    p = getattr(a, kind)
    if kind == "ReLU":
        return np.maximum(x, 0)
    if kind == "leakyReLU":
        return np.where(x >= 0, x, x * p.alpha)
    if kind == "PReLU":
        alpha = weights(p.alpha).reshape([-1, 1, 1])
        return np.where(x >= 0, x, x * alpha)
    if kind == "sigmoid":
        return K.sigmoid(x)
    if kind == "tanh":
        return np.tanh(x)
    if kind == "linear":
        return p.alpha * x + p.beta
    if kind == "sigmoidHard":
        return np.clip(p.alpha * x + p.beta, 0, 1)
    if kind == "ELU":
        return np.where(x > 0, x, p.alpha * np.expm1(np.minimum(x, 0)))
    if kind == "softplus":
        return np.logaddexp(0, x)
    if kind == "scaledTanh":
        return p.alpha * np.tanh(p.beta * x)
    if kind == "thresholdedReLU":
        return np.where(x > p.alpha, x, 0)
    if kind == "softsign":
        return x / (1 + np.abs(x))
    raise UndocumentedError(f"activation {kind}")


def _batchnorm(layer, xs):
    p = layer.batchnorm
    x = xs[0].astype(np.float64)
    if p.computeMeanVar or p.instanceNormalization:
        raise UndocumentedError("batchnorm computing its own statistics")
    c = int(p.channels)
    shape = [c, 1, 1]
    g, b = weights(p.gamma, shape), weights(p.beta, shape)
    m, v = weights(p.mean, shape), weights(p.variance, shape)
    return g * (x - m) / np.sqrt(v + p.epsilon) + b


def _unary(layer, xs):
    p = layer.unary
    scale = p.scale if p.scale != 0 else 1.0
    x = xs[0].astype(np.float64) * scale + p.shift
    op = p.Operation.Name(p.type)
    if op == "SQRT":
        return np.sqrt(x)
    if op == "RSQRT":
        return 1 / np.sqrt(x + p.epsilon)
    if op == "INVERSE":
        return 1 / (x + p.epsilon)
    if op == "POWER":
        return np.power(x, p.alpha)
    if op == "EXP":
        return np.exp(x)
    if op == "LOG":
        return np.log(x + p.epsilon)
    if op == "ABS":
        return np.abs(x)
    if op == "THRESHOLD":
        return np.maximum(x, p.alpha)
    raise UndocumentedError(f"unary {op}")


def _add(layer, xs):
    if len(xs) == 1:
        return xs[0].astype(np.float64) + layer.add.alpha
    out = xs[0].astype(np.float64)
    for x in xs[1:]:
        out = out + x
    return out


def _multiply(layer, xs):
    if len(xs) == 1:
        return xs[0].astype(np.float64) * layer.multiply.alpha
    out = xs[0].astype(np.float64)
    for x in xs[1:]:
        out = out * x
    return out


def _batched_matmul(layer, xs):
    p = layer.batchedMatmul
    a = xs[0].astype(np.float64)
    if len(xs) == 2:
        if p.transposeA:
            a = np.swapaxes(a, -1, -2)
        b = xs[1].astype(np.float64)
        if p.transposeB:
            b = np.swapaxes(b, -1, -2)
        return a @ b
    # With a weight matrix the flags do not apply: coremltools writes the transposes out (a transpose layer before,
    # the weight stored transposed) and still sets the flags (its NN backend, op_mapping.matmul).
    # "Weight matrix representing shape [X1, X2]. Values are however stored in column major order."
    x1, x2 = int(p.weightMatrixFirstDimension), int(p.weightMatrixSecondDimension)
    w = weights(p.weights, (x2, x1)).T.astype(np.float64)
    y = a @ w
    if p.hasBias:
        y = y + weights(p.bias)
    return y


def _inner_product(layer, xs):
    p = layer.innerProduct
    x = xs[0].astype(np.float64)
    w = weights(p.weights, (int(p.outputChannels), int(p.inputChannels)))
    if x.ndim > 3:
        raise UndocumentedError(f"innerProduct on rank {x.ndim}")
    y = x @ w.T
    if p.hasBias:
        y = y + weights(p.bias)
    return y


def _slice_static(layer, xs):
    p = layer.sliceStatic
    x = xs[0]
    idx = []
    for d in range(x.ndim):
        b = 0 if p.beginMasks[d] else int(p.beginIds[d])
        e = x.shape[d] if p.endMasks[d] else int(p.endIds[d])
        s = int(p.strides[d]) if len(p.strides) else 1
        if len(p.squeezeMasks) and p.squeezeMasks[d]:
            idx.append(b)
        else:
            if s < 0:
                raise UndocumentedError("sliceStatic with a negative stride")
            idx.append(slice(b, e, s))
    return x[tuple(idx)]


def _padding(layer, xs):
    p = layer.padding
    x = xs[0]
    amounts = [(int(a.startEdgeSize), int(a.endEdgeSize)) for a in p.paddingAmounts.borderAmounts] or [(0, 0), (0, 0)]
    widths = [(0, 0)] * (x.ndim - 2) + amounts
    kind = p.WhichOneof("PaddingType")
    if kind == "constant":
        return np.pad(x, widths, constant_values=p.constant.value)
    if kind == "reflection":
        return np.pad(x, widths, mode="reflect")
    if kind == "replication":
        return np.pad(x, widths, mode="edge")
    raise UndocumentedError(f"padding {kind}")


def _constant_pad(layer, xs):
    p = layer.constantPad
    x = xs[0]
    if p.padToGivenOutputSizeMode:
        raise UndocumentedError("constantPad padToGivenOutputSizeMode")
    amounts = [int(a) for a in p.padAmounts]
    n = len(amounts) // 2
    widths = [(0, 0)] * (x.ndim - n) + [(amounts[2 * i], amounts[2 * i + 1]) for i in range(n)]
    return np.pad(x, widths, constant_values=p.value)


def _reduce(fn, field):
    def run(layer, xs):
        p = getattr(layer, field)
        x = xs[0].astype(np.float64)
        axes = tuple(range(x.ndim)) if p.reduceAll else tuple(int(a) % x.ndim for a in p.axes)
        return fn(x, axis=axes, keepdims=bool(p.keepDims))

    return run


def _gather(layer, xs):
    x, idx = xs
    axis = int(layer.gather.axis) % x.ndim
    idx = np.asarray(idx).astype(np.int64)
    idx = np.where(idx < 0, idx + x.shape[axis], idx)
    return np.take(x, idx, axis=axis)


def _load_constant_nd(layer, xs):
    p = layer.loadConstantND
    return weights(p.data, tuple(int(s) for s in p.shape))


def _concat(layer, xs):
    if layer.concat.sequenceConcat:
        raise UndocumentedError("sequence concat")
    return np.concatenate(xs, axis=-3)


def _concat_nd(layer, xs):
    p = layer.concatND
    if p.interleave:
        stacked = np.stack(xs, axis=(int(p.axis) % xs[0].ndim) + 1)
        shape = list(xs[0].shape)
        shape[int(p.axis) % xs[0].ndim] *= len(xs)
        return stacked.reshape(shape)
    return np.concatenate(xs, axis=int(p.axis))


def _split_nd(layer, xs):
    p = layer.splitND
    x = xs[0]
    axis = int(p.axis) % x.ndim
    sizes = [int(s) for s in p.splitSizes] or [x.shape[axis] // int(p.numSplits)] * int(p.numSplits)
    return np.split(x, np.cumsum(sizes)[:-1], axis=axis)


def _softmax_nd(layer, xs):
    return K.softmax(xs[0], int(layer.softmaxND.axis))


def _upsample(layer, xs):
    x = xs[0]
    wh, ww, _ = upsample_weights(layer.upsample, x.shape[-2], x.shape[-1])
    return K.resize_last2(x, wh, ww)


def _resize_bilinear(layer, xs):
    x = xs[0]
    wh, ww, _ = resize_bilinear_weights(layer.resizeBilinear, x.shape[-2], x.shape[-1])
    return K.resize_last2(x, wh, ww)


def _slice(layer, xs):
    """SliceLayerParams: [startIndex, endIndex) with stride along axis -3 / -2 / -1; negative index = N + index."""
    p = layer.slice
    x = xs[0]
    axis = {0: -3, 1: -2, 2: -1}[p.axis]
    n = x.shape[axis]
    start = int(p.startIndex) + (n if p.startIndex < 0 else 0)
    end = int(p.endIndex) + (n if p.endIndex < 0 else 0)
    if end == 0 and p.endIndex == 0:
        raise UndocumentedError("slice layer with endIndex 0")
    idx = [slice(None)] * x.ndim
    idx[axis] = slice(start, end, int(p.stride) or 1)
    return x[tuple(idx)]


def _reduce_inputs(fn):
    def run(layer, xs):
        out = xs[0].astype(np.float64)
        for x in xs[1:]:
            out = fn(out, x)
        return out

    return run


def _binary(fn):
    return lambda layer, xs: fn(xs[0].astype(np.float64), xs[1].astype(np.float64))


def _tile(layer, xs):
    """TileLayerParams: reps[i] copies along axis i (one rep per axis; other lengths are not evaluated)."""
    reps = [int(r) for r in layer.tile.reps]
    if len(reps) != xs[0].ndim:
        raise UndocumentedError(f"tile with {len(reps)} reps on a rank-{xs[0].ndim} input")
    return np.tile(xs[0], reps)


def _expand_dims(x, axes):
    rank = x.ndim + len(axes)
    for a in sorted(v % rank for v in axes):
        x = np.expand_dims(x, a)
    return x


NN_LAYERS: dict[str, Callable] = {
    "convolution": _conv,
    "pooling": _pooling,
    "activation": _activation,
    "batchnorm": _batchnorm,
    "unary": _unary,
    "add": _add,
    "multiply": _multiply,
    "addBroadcastable": _binary(np.add),
    "subtractBroadcastable": _binary(np.subtract),
    "multiplyBroadcastable": _binary(np.multiply),
    "divideBroadcastable": _binary(np.divide),
    "maxBroadcastable": _binary(np.maximum),
    "minBroadcastable": _binary(np.minimum),
    "powBroadcastable": _binary(np.power),
    "clip": lambda layer, xs: np.clip(xs[0].astype(np.float64), layer.clip.minVal, layer.clip.maxVal),
    "erf": lambda layer, xs: K.erf(xs[0]),
    "gelu": lambda layer, xs: K.gelu(xs[0], layer.gelu.GeluMode.Name(layer.gelu.mode)),
    "exp2": lambda layer, xs: np.exp2(xs[0].astype(np.float64)),
    "floor": lambda layer, xs: np.floor(xs[0]),
    "ceil": lambda layer, xs: np.ceil(xs[0]),
    "copy": lambda layer, xs: xs[0],
    "batchedMatmul": _batched_matmul,
    "innerProduct": _inner_product,
    "transpose": lambda layer, xs: np.transpose(xs[0], [int(a) for a in layer.transpose.axes]),
    "reshapeStatic": lambda layer, xs: xs[0].reshape([int(s) for s in layer.reshapeStatic.targetShape]),
    "rankPreservingReshape": lambda layer, xs: xs[0].reshape([xs[0].shape[k] if int(s) == 0 else int(s) for k, s in enumerate(layer.rankPreservingReshape.targetShape)]),
    "flattenTo2D": lambda layer, xs: xs[0].reshape(int(np.prod(xs[0].shape[: int(layer.flattenTo2D.axis) % max(xs[0].ndim, 1)])), -1),
    "squeeze": lambda layer, xs: np.squeeze(xs[0]) if layer.squeeze.squeezeAll else np.squeeze(xs[0], axis=tuple(int(a) for a in layer.squeeze.axes)),
    "expandDims": lambda layer, xs: _expand_dims(xs[0], [int(a) for a in layer.expandDims.axes]),
    "sliceStatic": _slice_static,
    "padding": _padding,
    "constantPad": _constant_pad,
    "reduceMean": _reduce(np.mean, "reduceMean"),
    "reduceSum": _reduce(np.sum, "reduceSum"),
    "reduceMax": _reduce(np.max, "reduceMax"),
    "gather": _gather,
    "slice": _slice,
    "max": _reduce_inputs(np.maximum),
    "min": _reduce_inputs(np.minimum),
    "loadConstantND": _load_constant_nd,
    "concat": _concat,
    "concatND": _concat_nd,
    "splitND": _split_nd,
    "softmaxND": _softmax_nd,
    "softmax": lambda layer, xs: K.softmax(xs[0], -3),  # NeuralNetwork.proto: along axis -3 (the channel axis)
    "getShape": lambda layer, xs: np.array(np.shape(xs[0]), np.float32),  # a shape, as every blob, in float
    "fillDynamic": lambda layer, xs: np.full(tuple(int(d) for d in xs[0]), layer.fillDynamic.value, np.float32),
    "reshapeDynamic": lambda layer, xs: xs[0].reshape([int(d) for d in xs[1]]),
    "upsample": _upsample,
    "resizeBilinear": _resize_bilinear,
    "tile": _tile,
}
