"""The MIL ops of the reference evaluator, each implemented in numpy from its coremltools docstring
(``coremltools/converters/mil/mil/ops/defs``): ``MIL_OPS`` maps an op type to a function of the op's
arguments (name -> value) returning its output(s)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from rewriter.coreml import kernels as K
from rewriter.coreml.kernels import UndocumentedError
from rewriter.coreml.reference.resizing import MIL_RESIZE_WEIGHTS


def _resize_impl(kind):
    def run(a):
        x = a["x"]
        params = {k: v for k, v in a.items() if k != "x"}
        params = {k: (v.item() if isinstance(v, np.ndarray) and v.ndim == 0 else v) for k, v in params.items()}
        wh, ww = MIL_RESIZE_WEIGHTS[kind](params, x.shape[-2], x.shape[-1])
        return K.resize_last2(x, wh, ww)

    return run


def _f(x):
    return np.asarray(x, dtype=np.float64)


def _i(v, default=None):
    if v is None:
        return default
    return [int(t) for t in np.atleast_1d(v)]


def _s(v, default=None):
    if v is None:
        return default
    if isinstance(v, np.ndarray):
        return str(v.reshape(-1)[0])
    return str(v)


def _b(v, default=False):
    return default if v is None else bool(np.asarray(v).reshape(-1)[0])


def _scalar(v, default=None):
    return default if v is None else float(np.asarray(v).reshape(-1)[0])


def _mil_conv(a):
    x, w = a["x"], a["weight"]
    k = w.ndim - 2
    strides = _i(a.get("strides"), [1] * k)
    dil = _i(a.get("dilations"), [1] * k)
    pads = K.resolve_pads(_s(a.get("pad_type"), "valid"), _i(a.get("pad")), x.shape[2:], w.shape[2:], strides, dil)
    return K.conv(x, w, a.get("bias"), strides, pads, dil, int(_scalar(a.get("groups"), 1)))


def _mil_conv_transpose(a):
    x, w = a["x"], a["weight"]
    k = w.ndim - 2
    strides = _i(a.get("strides"), [1] * k)
    dil = _i(a.get("dilations"), [1] * k)
    pad_type = _s(a.get("pad_type"), "valid")
    out_shape = _i(a.get("output_shape"))
    if pad_type == "custom":
        pad = _i(a.get("pad"), [0] * 2 * k)
        pads = [(pad[2 * i], pad[2 * i + 1]) for i in range(k)]
    elif pad_type == "valid":
        pads = [(0, 0)] * k
    else:
        raise UndocumentedError(f"conv_transpose pad_type {pad_type!r}: crop placement undocumented")
    out_spatial = out_shape[2:] if out_shape is not None else None
    return K.conv_transpose(x, w, a.get("bias"), strides, pads, dil, int(_scalar(a.get("groups"), 1)), out_spatial)


def _mil_pool(kind):
    def run(a):
        x = a["x"]
        kernel = _i(a["kernel_sizes"])
        k = len(kernel)
        strides = _i(a.get("strides"), [1] * k)
        pads = K.resolve_pads(_s(a.get("pad_type"), "valid"), _i(a.get("pad")), x.shape[2:], kernel, strides, [1] * k)
        if _b(a.get("ceil_mode")):
            floor_out = [(x.shape[2 + i] + sum(pads[i]) - kernel[i]) // strides[i] + 1 for i in range(k)]
            ceil_out = [-(-(x.shape[2 + i] + sum(pads[i]) - kernel[i]) // strides[i]) + 1 for i in range(k)]
            if floor_out != ceil_out:
                raise UndocumentedError("pooling with ceil_mode changing the output size")
        return K.pool(x, kind, kernel, strides, pads, _b(a.get("exclude_padding_from_average")))

    return run


def _norm_axes(axes, rank):
    return tuple(sorted(int(v) % rank for v in np.atleast_1d(axes)))


def _mil_reduce(fn):
    def run(a):
        x = _f(a["x"])
        axes = a.get("axes")
        axes = tuple(range(x.ndim)) if axes is None else _norm_axes(axes, x.ndim)
        return fn(x, axis=axes, keepdims=_b(a.get("keep_dims"), False))

    return run


def _mil_batch_norm(a):
    x = _f(a["x"])
    shape = [1, -1] + [1] * (x.ndim - 2)
    mean, var = _f(a["mean"]).reshape(shape), _f(a["variance"]).reshape(shape)
    gamma = _f(a["gamma"]).reshape(shape) if a.get("gamma") is not None else 1.0
    beta = _f(a["beta"]).reshape(shape) if a.get("beta") is not None else 0.0
    eps = _scalar(a.get("epsilon"), 1e-5)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def _mil_instance_norm(a):
    x = _f(a["x"])
    axes = tuple(range(2, x.ndim))
    shape = [1, -1] + [1] * (x.ndim - 2)
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    gamma = _f(a["gamma"]).reshape(shape) if a.get("gamma") is not None else 1.0
    beta = _f(a["beta"]).reshape(shape) if a.get("beta") is not None else 0.0
    return (x - mean) / np.sqrt(var + _scalar(a.get("epsilon"), 1e-5)) * gamma + beta


def _mil_layer_norm(a):
    x = _f(a["x"])
    axes = _norm_axes(a["axes"], x.ndim) if a.get("axes") is not None else tuple(range(x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    y = (x - mean) / np.sqrt(var + _scalar(a.get("epsilon"), 1e-5))
    if a.get("gamma") is not None:
        y = y * _f(a["gamma"])
    if a.get("beta") is not None:
        y = y + _f(a["beta"])
    return y


def _mil_slice_by_index(a):
    x = a["x"]
    rank = x.ndim
    begin = _i(a["begin"])
    end = _i(a["end"])
    stride = _i(a.get("stride"), [1] * rank)
    bm = np.atleast_1d(a["begin_mask"]).astype(bool) if a.get("begin_mask") is not None else np.zeros(rank, bool)
    em = np.atleast_1d(a["end_mask"]).astype(bool) if a.get("end_mask") is not None else np.zeros(rank, bool)
    sq = np.atleast_1d(a["squeeze_mask"]).astype(bool) if a.get("squeeze_mask") is not None else np.zeros(rank, bool)
    idx = []
    for d in range(rank):
        if sq[d]:
            idx.append(begin[d])
            continue
        if stride[d] < 0 and (bm[d] or em[d]):
            raise UndocumentedError("slice_by_index masks with a negative stride")
        b = 0 if bm[d] else begin[d]
        e = x.shape[d] if em[d] else end[d]
        idx.append(slice(b, e, stride[d]))
    return x[tuple(idx)]


def _mil_slice_by_size(a):
    x = a["x"]
    begin = _i(a["begin"])
    size = _i(a["size"])
    idx = tuple(slice(b, x.shape[d] if s == -1 else b + s) for d, (b, s) in enumerate(zip(begin, size)))
    return x[idx]


def _mil_concat(a):
    values = a["values"]
    axis = int(_scalar(a["axis"]))
    if _b(a.get("interleave")):
        parts = [np.asarray(v) for v in values]
        rank = parts[0].ndim
        axis %= rank
        stacked = np.stack(parts, axis=axis + 1)
        shape = list(parts[0].shape)
        shape[axis] *= len(parts)
        return stacked.reshape(shape)
    return np.concatenate([np.asarray(v) for v in values], axis=axis)


def _mil_split(a):
    x = a["x"]
    axis = int(_scalar(a["axis"])) % x.ndim
    sizes = _i(a.get("split_sizes"))
    if sizes is None:
        n = int(_scalar(a["num_splits"]))
        sizes = [x.shape[axis] // n] * n
    return np.split(x, np.cumsum(sizes)[:-1], axis=axis)


def _mil_pad(a):
    x = a["x"]
    pad = _i(a["pad"])
    n = len(pad) // 2
    widths = [(0, 0)] * (x.ndim - n) + [(pad[2 * i], pad[2 * i + 1]) for i in range(n)]
    mode = _s(a.get("mode"), "constant")
    if mode == "constant":
        return np.pad(x, widths, constant_values=_scalar(a.get("constant_val"), 0.0))
    if mode == "reflect":
        return np.pad(x, widths, mode="reflect")
    if mode == "replicate":
        return np.pad(x, widths, mode="edge")
    raise UndocumentedError(f"pad mode {mode!r}")


def _mil_gather(a):
    x = a["x"]
    axis = int(_scalar(a.get("axis"), 0)) % x.ndim
    idx = np.asarray(a["indices"]).astype(np.int64)
    if int(_scalar(a.get("batch_dims"), 0)):
        raise UndocumentedError("gather with batch_dims")
    idx = np.where(idx < 0, idx + x.shape[axis], idx)  # documented: -D[axis] <= v < D[axis]
    return np.take(x, idx, axis=axis)


def _mil_gather_along_axis(a):
    x = a["x"]
    axis = int(_scalar(a.get("axis"), 0)) % x.ndim
    idx = np.asarray(a["indices"]).astype(np.int64)
    idx = np.where(idx < 0, idx + x.shape[axis], idx)
    return np.take_along_axis(x, idx, axis=axis)


def _mil_matmul(a):
    x, y = _f(a["x"]), _f(a["y"])
    if _b(a.get("transpose_x")):
        x = np.swapaxes(x, -1, -2)
    if _b(a.get("transpose_y")):
        y = np.swapaxes(y, -1, -2)
    return np.matmul(x, y)


def _mil_linear(a):
    y = _f(a["x"]) @ _f(a["weight"]).T
    if a.get("bias") is not None:
        y = y + _f(a["bias"])
    return y


def _mil_reshape(a):
    x = a["x"]
    shape = _i(a["shape"])
    shape = [x.shape[k] if d == 0 else d for k, d in enumerate(shape)]
    return x.reshape(shape)


def _mil_squeeze(a):
    x = a["x"]
    if a.get("axes") is None:
        return np.squeeze(x)
    return np.squeeze(x, axis=_norm_axes(a["axes"], x.ndim))


def _mil_expand_dims(a):
    x = a["x"]
    axes = _i(a["axes"])
    out_rank = x.ndim + len(axes)
    for ax in sorted(v % out_rank for v in axes):
        x = np.expand_dims(x, ax)
    return x


def _mil_cast(a):
    target = {"fp32": np.float32, "fp16": np.float16, "int32": np.int32, "bool": np.bool_, "int16": np.int16, "uint16": np.uint16, "int8": np.int8, "uint8": np.uint8}
    dtype = target.get(_s(a["dtype"]))
    if dtype is None:
        raise UndocumentedError(f"cast to {_s(a['dtype'])}")
    x = np.asarray(a["x"])
    if np.dtype(dtype).kind in "iu" and x.dtype.kind == "f":
        x = np.trunc(x)
    return x.astype(dtype)


def _mil_pixel_shuffle(a):
    x = a["x"]
    r = int(_scalar(a["upscale_factor"]))
    n, c, h, w = x.shape
    return x.reshape(n, c // (r * r), r, r, h, w).transpose(0, 1, 4, 2, 5, 3).reshape(n, c // (r * r), h * r, w * r)


def _binary(fn):
    return lambda a: fn(np.asarray(a["x"]), np.asarray(a["y"]))


def _unary(fn):
    return lambda a: fn(_f(a["x"]))


def _mil_real_div(x, y):
    return _f(x) / _f(y)


def _mil_floor_div(x, y):
    return np.floor_divide(x, y)


MIL_OPS: dict[str, Callable[[dict], Any]] = {
    "identity": lambda a: a["x"],
    "shape": lambda a: np.array(np.shape(a["x"]), np.int32),
    "fill": lambda a: np.full(tuple(int(d) for d in np.atleast_1d(a["shape"])), a.get("value", 0.0)),
    "conv": _mil_conv,
    "conv_transpose": _mil_conv_transpose,
    "max_pool": _mil_pool("max"),
    "avg_pool": _mil_pool("avg"),
    "batch_norm": _mil_batch_norm,
    "instance_norm": _mil_instance_norm,
    "layer_norm": _mil_layer_norm,
    "relu": _unary(lambda x: np.maximum(x, 0)),
    "relu6": _unary(lambda x: np.clip(x, 0, 6)),
    "leaky_relu": lambda a: np.where(_f(a["x"]) >= 0, _f(a["x"]), _f(a["x"]) * _scalar(a.get("alpha"), 0.01)),
    "prelu": lambda a: np.where(_f(a["x"]) >= 0, _f(a["x"]), _f(a["x"]) * _f(a["alpha"]).reshape([1, -1] + [1] * (np.ndim(a["x"]) - 2))),
    "elu": lambda a: np.where(_f(a["x"]) > 0, _f(a["x"]), _scalar(a.get("alpha"), 1.0) * np.expm1(np.minimum(_f(a["x"]), 0))),
    "sigmoid": _unary(K.sigmoid),
    "sigmoid_hard": lambda a: np.clip(_scalar(a.get("alpha"), 0.2) * _f(a["x"]) + _scalar(a.get("beta"), 0.5), 0, 1),
    "silu": _unary(lambda x: x * K.sigmoid(x)),
    "tanh": _unary(np.tanh),
    "softplus": _unary(lambda x: np.logaddexp(0, x)),
    "clip": lambda a: np.minimum(np.maximum(_f(a["x"]), _scalar(a["alpha"])), _scalar(a["beta"])),
    "gelu": lambda a: K.gelu(a["x"], _s(a.get("mode"), "EXACT")),
    "erf": _unary(K.erf),
    "sqrt": _unary(np.sqrt),
    "rsqrt": lambda a: 1.0 / np.sqrt(_f(a["x"]) + _scalar(a.get("epsilon"), 1e-12)),
    "exp": _unary(np.exp),
    "exp2": _unary(np.exp2),
    "log": lambda a: np.log(_f(a["x"]) + _scalar(a.get("epsilon"), 1e-45)),
    "abs": lambda a: np.abs(a["x"]),
    "inverse": lambda a: 1.0 / (_f(a["x"]) + _scalar(a.get("epsilon"), 1e-4)),
    "square": lambda a: np.square(a["x"]),
    "floor": _unary(np.floor),
    "ceil": _unary(np.ceil),
    "sign": lambda a: np.sign(a["x"]),
    "add": _binary(np.add),
    "sub": _binary(np.subtract),
    "mul": _binary(np.multiply),
    "real_div": _binary(_mil_real_div),
    "floor_div": _binary(_mil_floor_div),
    "pow": _binary(lambda x, y: np.power(_f(x), _f(y))),
    "maximum": _binary(np.maximum),
    "minimum": _binary(np.minimum),
    "greater": _binary(np.greater),
    "greater_equal": _binary(np.greater_equal),
    "less": _binary(np.less),
    "less_equal": _binary(np.less_equal),
    "equal": _binary(np.equal),
    "not_equal": _binary(np.not_equal),
    "select": lambda a: np.where(np.asarray(a["cond"]).astype(bool), a["a"], a["b"]),
    "concat": _mil_concat,
    "split": _mil_split,
    "slice_by_index": _mil_slice_by_index,
    "slice_by_size": _mil_slice_by_size,
    "pad": _mil_pad,
    "gather": _mil_gather,
    "gather_along_axis": _mil_gather_along_axis,
    "matmul": _mil_matmul,
    "linear": _mil_linear,
    "reshape": _mil_reshape,
    "transpose": lambda a: np.transpose(a["x"], _i(a["perm"])),
    "squeeze": _mil_squeeze,
    "expand_dims": _mil_expand_dims,
    "softmax": lambda a: K.softmax(a["x"], int(_scalar(a.get("axis"), -1))),
    "reduce_mean": _mil_reduce(np.mean),
    "reduce_sum": _mil_reduce(np.sum),
    "reduce_max": _mil_reduce(np.max),
    "reduce_min": _mil_reduce(np.min),
    "reduce_prod": _mil_reduce(np.prod),
    "cast": _mil_cast,
    "tile": lambda a: np.tile(a["x"], _i(a["reps"])),
    "pixel_shuffle": _mil_pixel_shuffle,
    "upsample_nearest_neighbor": _resize_impl("upsample_nearest_neighbor"),
    "upsample_bilinear": _resize_impl("upsample_bilinear"),
    "resize_bilinear": _resize_impl("resize_bilinear"),
    "resize_nearest_neighbor": _resize_impl("resize_nearest_neighbor"),
}
