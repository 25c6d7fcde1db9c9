"""ONNX graph -> MIL program, op by op, with coremltools' MIL builder.

Static shapes throughout: every graph input has a concrete shape, Shape-derived subgraphs and other
constant subgraphs are folded to numpy constants first (``ModelView.value``), and every attribute or
input that Core ML needs as a compile-time constant (Reshape shape, Slice bounds, pads, axes...) is read
as one. Resize nodes are mapped by the semantics core: the Core ML primitive whose documented grid equals
the node's ORT weights for its actual lengths (``rewriter.targets.coreml``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from rewriter.errors import NotExactError, UnsupportedOpError, UsageError
from rewriter.graph import ModelView, Scope, fresh_name
from rewriter.resize import ResizeSemantics, describe_node
from rewriter.targets import make_target

# Primitive name (rewriter.targets) -> how it is spelled in MIL.
_BILINEAR_ALIGN = {
    "upsample_bilinear(align_corners=False)": False,
    "upsample_bilinear(align_corners=True)": True,
}
_RESIZE_BILINEAR_MODES = {
    "resize_bilinear(sampling_mode=STRICT_ALIGN_CORNERS)": "STRICT_ALIGN_CORNERS",
    "resize_bilinear(sampling_mode=ALIGN_CORNERS)": "ALIGN_CORNERS",
    "resize_bilinear(sampling_mode=DEFAULT)": "DEFAULT",
    "resize_bilinear(sampling_mode=OFFSET_CORNERS)": "OFFSET_CORNERS",
    "resize_bilinear(sampling_mode=UNALIGN_CORNERS)": "UNALIGN_CORNERS",
}
_NEAREST = "upsample_nearest_neighbor(integer scale)"


@dataclass
class ResizePlan:
    """What one ONNX Resize becomes: the MIL op, its parameters, and the weights it must reproduce."""

    onnx_name: str
    mil_name: str
    primitive: str
    op: str
    params: dict[str, Any]
    sem: ResizeSemantics

    def describe(self) -> str:
        inner = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.op}({inner})"


@dataclass
class Translation:
    function: Any
    input_names: list[str]
    output_names: list[str]
    resize_plans: list[ResizePlan] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _attr(node: onnx.NodeProto, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            v = onnx.helper.get_attribute_value(a)
            return v.decode() if isinstance(v, bytes) else v
    return default


def scale_for_size(n: int, m: int) -> int | np.float32:
    """A Core ML scale factor whose output length floor(n * s) is exactly m.

    Integer ratios stay integers. Otherwise the smallest float32 not below m/n: the exact product n*s is
    then in [m, m + n*ulp) (far below m + 1), and rounding that product to float32 or float64 cannot drop
    below the representable m, so floor gives m in either precision. Being the float32 nearest to m/n from
    above, it also keeps a grid computed from 1/s within float32 rounding of the Xin/Xout grid.
    """
    if m % n == 0:
        return m // n
    s = np.float32(m / n)
    if float(s) * n < m:
        s = np.nextafter(s, np.float32(np.inf), dtype=np.float32)
    for _ in range(4):  # defensive: enforce floor(n*s) == m in float32 and float64
        if int(np.floor(np.float32(s) * np.float32(n))) >= m and int(np.floor(float(s) * n)) >= m:
            break
        s = np.nextafter(s, np.float32(np.inf), dtype=np.float32)
    if int(np.floor(float(s) * n)) != m or int(np.floor(np.float32(s) * np.float32(n))) != m:
        raise NotExactError(f"no float32 scale gives output length {m} from {n}")
    return np.float32(s)


_RESERVED = {"any", "bool", "program", "func", "tensor", "list", "dict", "tuple", "true", "false", "string", "bf16",
             "fp16", "fp32", "fp64", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "state"}


def sanitize(name: str) -> str:
    """Core ML's identifier rule (coremltools sanitizes names on save otherwise, breaking name lookups)."""
    out = re.sub("[^a-zA-Z0-9_]", "_", name)
    if re.match("[^a-zA-Z_]", out):
        out = "_" + out
    if out in _RESERVED:
        out += "_workaround"
    return out


def nn_builder_snaps(scale) -> bool:
    """coremltools' NeuralNetwork ``add_upsample`` stores a factor within 0.001 above an integer as that integer."""
    frac = float(scale) - np.floor(float(scale))
    return 0 < frac <= 0.001


class Translator:
    def __init__(self, view: ModelView, input_shapes: dict[str, tuple[int, ...]], deployment_target: str,
                 model_format: str, opset_version: Any) -> None:
        from coremltools.converters.mil import Builder as mb

        self.mb = mb
        self.view = view
        self.scope: Scope = view.scopes[0]
        self.graph = self.scope.source if self.scope.source is not None else view.model.graph
        self.input_shapes = input_shapes
        self.deployment_target = deployment_target
        self.ios = int(deployment_target.removeprefix("iOS"))
        self.model_format = model_format
        self.opset_version = opset_version
        self.env: dict[str, Any] = {}
        self.const_vars: dict[str, Any] = {}
        self.used_names: set[str] = set()
        self.warnings: list[str] = []
        self.plans: list[ResizePlan] = []
        self.opset = view.opset
        self.graph_outputs = [o.name for o in self.graph.output]
        self.mil_inputs: dict[str, str] = {}
        self.claimed: set[str] = set()
        self.current: onnx.NodeProto | None = None  # the node being translated (for error messages)
        self.used_names.update(sanitize(o) for o in self.graph_outputs)  # reserved for the ops producing them

    # ------------------------------------------------------------------ names and values

    def name(self, base: str) -> str:
        """A unique MIL name that Core ML keeps as is ([A-Za-z_][A-Za-z0-9_]*, not a reserved word)."""
        return fresh_name(sanitize(base or "op"), self.used_names)

    def is_const(self, name: str) -> bool:
        v = self.env.get(name)
        return isinstance(v, np.ndarray)

    def const(self, name: str) -> np.ndarray | None:
        if not name:
            return None
        v = self.env.get(name)
        if isinstance(v, np.ndarray):
            return v
        if v is not None and getattr(v, "val", None) is not None:
            return np.asarray(v.val)
        return None

    def need_const(self, node: onnx.NodeProto, k: int, what: str) -> np.ndarray:
        v = self.const(node.input[k]) if len(node.input) > k else None
        if v is None:
            raise UnsupportedOpError(f"unsupported ONNX ops for Core ML: {node.op_type}({what} computed at run time) ({node.name or node.output[0]})")
        return v

    @staticmethod
    def mil_array(a: np.ndarray) -> np.ndarray:
        a = np.asarray(a)
        if a.dtype == np.float64:
            return a.astype(np.float32)
        if a.dtype.kind in "iu" and a.dtype != np.int32:
            if a.size and (a.max() > np.iinfo(np.int32).max or a.min() < np.iinfo(np.int32).min):
                a = np.clip(a, np.iinfo(np.int32).min, np.iinfo(np.int32).max)
            return a.astype(np.int32)
        return a

    def var(self, name: str, like=None):
        """The MIL Var for ONNX tensor ``name`` (constants become const ops, cast to ``like``'s dtype)."""
        v = self.env[name]
        if isinstance(v, np.ndarray):
            arr = self.mil_array(v)
            if like is not None:
                arr = arr.astype(self.np_dtype(like))
            key = f"{name}|{arr.dtype}"
            if key not in self.const_vars:
                self.const_vars[key] = self.mb.const(val=arr, name=self.name(name))
            return self.const_vars[key]
        return v

    @staticmethod
    def np_dtype(v) -> np.dtype:
        from coremltools.converters.mil.mil import types

        return np.dtype(types.nptype_from_builtin(v.dtype))

    def shape(self, name: str) -> tuple[int, ...]:
        v = self.env[name]
        if isinstance(v, np.ndarray):
            return tuple(v.shape)
        shape = tuple(v.shape)
        if not all(isinstance(d, (int, np.integer)) for d in shape):
            raise UsageError(f"tensor {name!r} has a dynamic shape {shape} in Core ML: pass static input shapes")
        return tuple(int(d) for d in shape)

    def operands(self, node: onnx.NodeProto):
        """Runtime operands of an elementwise op: Vars, with constants cast to the runtime dtype."""
        runtime = [self.env[n] for n in node.input if n and not self.is_const(n)]
        like = runtime[0] if runtime else None
        return [self.var(n, like) for n in node.input if n]

    # ------------------------------------------------------------------ driver

    def translate(self) -> Translation:
        from coremltools.converters.mil.mil import Function, types

        initializers = {t.name for t in self.graph.initializer}
        specs = {}
        input_names = []
        for vi in self.graph.input:
            if vi.name in initializers:
                continue
            shape = self.input_shapes[vi.name]
            elem = vi.type.tensor_type.elem_type
            dtype = {onnx.TensorProto.FLOAT: types.fp32, onnx.TensorProto.FLOAT16: types.fp16}.get(elem)
            if dtype is None:
                raise UsageError(f"input {vi.name!r} is {onnx.TensorProto.DataType.Name(elem)}: the Core ML exporter takes float32 (or float16, iOS16+) inputs")
            if dtype == types.fp16 and (self.model_format != "mlprogram" or self.ios < 16):
                raise UsageError(f"input {vi.name!r} is float16: Core ML needs mlprogram and iOS16+ for float16 inputs")
            mil_name = self.name(vi.name)
            specs[mil_name] = self.mb.placeholder(shape=shape, dtype=dtype)
            input_names.append(vi.name)
            self.mil_inputs[vi.name] = mil_name
        with Function(specs, opset_version=self.opset_version) as func:
            for name in input_names:
                self.env[name] = func.inputs[self.mil_inputs[name]]
            for init in self.graph.initializer:
                if init.name not in self.env:
                    self.env[init.name] = self.view.tensor_value(init)
            for node in self.graph.node:
                self.node(node)
            outputs = []
            for name in self.graph_outputs:
                v = self.env[name]
                if isinstance(v, np.ndarray):
                    raise UsageError(f"output {name!r} is a constant: Core ML models need outputs computed from the inputs")
                if v.name != sanitize(name) or name in input_names or v.name in [o.name for o in outputs]:
                    if sanitize(name) not in self.claimed:
                        self.claimed.add(sanitize(name))
                        v = self.mb.identity(x=v, name=sanitize(name))
                    else:
                        v = self.mb.identity(x=v, name=self.name(name))
                outputs.append(v)
            func.set_outputs(outputs)
        return Translation(func, input_names, list(self.graph_outputs), self.plans, self.warnings)

    def fold(self, node: onnx.NodeProto) -> bool:
        """Replace a node whose outputs are known statically by numpy constants."""
        ins = [n for n in node.input if n]
        if node.op_type not in ("Shape", "Size", "Constant") and not all(self.is_const(n) for n in ins):
            return False
        values = []
        for out in node.output:
            if not out:
                values.append(None)
                continue
            v = self.view.value(self.scope, out)
            if v is None and node.op_type in ("Shape", "Size"):
                v = self._shape_value(node)
            if not isinstance(v, np.ndarray):
                return False
            values.append(v)
        for out, v in zip(node.output, values):
            if out:
                self.env[out] = v
        return True

    def _shape_value(self, node: onnx.NodeProto) -> np.ndarray | None:
        shape = self.shape(node.input[0])
        if node.op_type == "Size":
            return np.array(int(np.prod(shape)), dtype=np.int64)
        start = _attr(node, "start", 0)
        end = _attr(node, "end", None)
        return np.array(shape[slice(start, end)], dtype=np.int64)

    def node(self, node: onnx.NodeProto) -> None:
        self.current = node
        if self.fold(node):
            return
        handler = getattr(self, f"op_{node.op_type}", None)
        if handler is None or node.domain not in ("", "ai.onnx"):
            raise UnsupportedOpError(f"unsupported ONNX ops for Core ML: {node.op_type} ({node.name or node.output[0]})")
        result = handler(node)
        outs = [o for o in node.output]
        if not isinstance(result, (list, tuple)):
            result = [result]
        for o, r in zip(outs, result):
            if o:
                self.env[o] = r

    def out_name(self, node: onnx.NodeProto, k: int = 0) -> str:
        out = node.output[k]
        if out in self.graph_outputs and sanitize(out) not in self.claimed:
            self.claimed.add(sanitize(out))
            return sanitize(out)
        return self.name(out)

    def tmp_name(self, node: onnx.NodeProto, what: str) -> str:
        return self.name(f"{node.output[0]}_{what}")

    # ------------------------------------------------------------------ elementwise

    def _unary(self, op: str, node: onnx.NodeProto, **kw):
        return getattr(self.mb, op)(x=self.var(node.input[0]), name=self.out_name(node), **kw)

    def op_Relu(self, node):
        return self._unary("relu", node)

    def op_Sigmoid(self, node):
        return self._unary("sigmoid", node)

    def op_Tanh(self, node):
        return self._unary("tanh", node)

    def op_Sqrt(self, node):
        return self._unary("sqrt", node)

    def op_Exp(self, node):
        return self._unary("exp", node)

    def op_Log(self, node):
        return self._unary("log", node)

    def op_Abs(self, node):
        return self._unary("abs", node)

    def op_Erf(self, node):
        return self._unary("erf", node)

    def op_Softplus(self, node):
        return self._unary("softplus", node)

    def op_Neg(self, node):
        x = self.var(node.input[0])
        return self.mb.mul(x=x, y=self.np_dtype(x).type(-1), name=self.out_name(node))

    def op_LeakyRelu(self, node):
        return self._unary("leaky_relu", node, alpha=np.float32(_attr(node, "alpha", 0.01)))

    def op_Elu(self, node):
        return self._unary("elu", node, alpha=np.float32(_attr(node, "alpha", 1.0)))

    def op_HardSigmoid(self, node):
        return self._unary("sigmoid_hard", node, alpha=np.float32(_attr(node, "alpha", 0.2)), beta=np.float32(_attr(node, "beta", 0.5)))

    def op_HardSwish(self, node):
        x = self.var(node.input[0])
        gate = self.mb.sigmoid_hard(x=x, alpha=np.float32(1 / 6), beta=np.float32(0.5), name=self.tmp_name(node, "gate"))
        return self.mb.mul(x=x, y=gate, name=self.out_name(node))

    def op_Gelu(self, node):
        mode = "TANH_APPROXIMATION" if _attr(node, "approximate", "none") == "tanh" else "EXACT"
        return self._unary("gelu", node, mode=mode)

    def op_PRelu(self, node):
        x = self.var(node.input[0])
        slope = self.const(node.input[1])
        xs = self.shape(node.input[0])
        if slope is not None and len(xs) >= 3 and xs[1] > 1 and slope.size == xs[1] and (slope.ndim == 1 or slope.shape[0] == xs[1]):
            return self.mb.prelu(x=x, alpha=slope.reshape(-1).astype(np.float32), name=self.out_name(node))
        if slope is not None and slope.size == 1:
            return self.mb.leaky_relu(x=x, alpha=np.float32(slope.reshape(-1)[0]), name=self.out_name(node))
        pos = self.mb.relu(x=x, name=self.tmp_name(node, "pos"))
        neg = self.mb.minimum(x=x, y=self.np_dtype(x).type(0), name=self.tmp_name(node, "neg"))
        scaled = self.mb.mul(x=neg, y=self.var(node.input[1], x), name=self.tmp_name(node, "scaled"))
        return self.mb.add(x=pos, y=scaled, name=self.out_name(node))

    def op_Clip(self, node):
        x = self.var(node.input[0])
        if self.opset < 11:
            lo, hi = _attr(node, "min", None), _attr(node, "max", None)
        else:
            lo_a = self.const(node.input[1]) if len(node.input) > 1 and node.input[1] else None
            hi_a = self.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
            if (len(node.input) > 1 and node.input[1] and lo_a is None) or (len(node.input) > 2 and node.input[2] and hi_a is None):
                raise UnsupportedOpError(f"unsupported ONNX ops for Core ML: Clip(bounds computed at run time) ({node.name})")
            lo = None if lo_a is None else float(lo_a)
            hi = None if hi_a is None else float(hi_a)
        dt = self.np_dtype(x)
        name = self.out_name(node)
        if lo is not None and hi is not None:
            if lo == 0 and hi == 6:
                return self.mb.relu6(x=x, name=name)
            return self.mb.clip(x=x, alpha=np.float32(lo), beta=np.float32(hi), name=name)
        if lo is not None:
            if lo == 0:
                return self.mb.relu(x=x, name=name)
            return self.mb.maximum(x=x, y=dt.type(lo), name=name)
        if hi is not None:
            return self.mb.minimum(x=x, y=dt.type(hi), name=name)
        return self.mb.identity(x=x, name=name)

    def _binary(self, op: str, node: onnx.NodeProto):
        x, y = self.operands(node)[:2]
        return getattr(self.mb, op)(x=x, y=y, name=self.out_name(node))

    def op_Add(self, node):
        return self._binary("add", node)

    def op_Sub(self, node):
        return self._binary("sub", node)

    def op_Mul(self, node):
        return self._binary("mul", node)

    def op_Div(self, node):
        x, y = self.operands(node)[:2]
        op = "floor_div" if self.np_dtype(x).kind in "iu" else "real_div"
        return getattr(self.mb, op)(x=x, y=y, name=self.out_name(node))

    def op_Pow(self, node):
        x = self.var(node.input[0])
        e = self.const(node.input[1])
        if e is not None and e.size == 1 and e.ndim <= len(self.shape(node.input[0])):
            # A scalar exponent (a 0-d const trips coremltools' NeuralNetwork backend: it expects a float).
            return self.mb.pow(x=x, y=self.np_dtype(x).type(e.reshape(-1)[0]), name=self.out_name(node))
        y = self.var(node.input[1], x)
        return self.mb.pow(x=x, y=y, name=self.out_name(node))

    def _variadic(self, op: str, node: onnx.NodeProto):
        vs = self.operands(node)
        if len(vs) == 1:
            return self.mb.identity(x=vs[0], name=self.out_name(node))
        acc = vs[0]
        for k, v in enumerate(vs[1:]):
            last = k == len(vs) - 2
            acc = getattr(self.mb, op)(x=acc, y=v, name=self.out_name(node) if last else self.tmp_name(node, str(k)))
        return acc

    def op_Max(self, node):
        return self._variadic("maximum", node)

    def op_Min(self, node):
        return self._variadic("minimum", node)

    # ------------------------------------------------------------------ conv / pool / norm

    @staticmethod
    def _conv_pads(node: onnx.NodeProto, k: int) -> tuple[str, list[int]]:
        auto = _attr(node, "auto_pad", "NOTSET")
        if auto == "SAME_UPPER":
            return "same", [0] * 2 * k
        if auto == "SAME_LOWER":
            return "same_lower", [0] * 2 * k
        if auto == "VALID":
            return "valid", [0] * 2 * k
        pads = list(_attr(node, "pads", [0] * 2 * k))
        return "custom", [p for i in range(k) for p in (pads[i], pads[k + i])]

    def op_Conv(self, node):
        x = self.var(node.input[0])
        w = self.need_const(node, 1, "weights").astype(np.float32)
        k = w.ndim - 2
        pad_type, pad = self._conv_pads(node, k)
        kw = dict(
            x=x,
            weight=w.astype(self.np_dtype(x)),
            strides=list(_attr(node, "strides", [1] * k)),
            dilations=list(_attr(node, "dilations", [1] * k)),
            groups=int(_attr(node, "group", 1)),
            pad_type=pad_type,
            name=self.out_name(node),
        )
        if pad_type == "custom":
            kw["pad"] = pad
        if len(node.input) > 2 and node.input[2]:
            bias = self.const(node.input[2])
            if bias is None:
                kw["name"] = self.tmp_name(node, "conv")
                y = self.mb.conv(**kw)
                b = self.mb.reshape(x=self.var(node.input[2], x), shape=[1, -1] + [1] * k, name=self.tmp_name(node, "bias"))
                return self.mb.add(x=y, y=b, name=self.out_name(node))
            kw["bias"] = bias.astype(self.np_dtype(x))
        return self.mb.conv(**kw)

    def op_ConvTranspose(self, node):
        x = self.var(node.input[0])
        w = self.need_const(node, 1, "weights").astype(self.np_dtype(x))
        k = w.ndim - 2
        xs = self.shape(node.input[0])
        group = int(_attr(node, "group", 1))
        strides = list(_attr(node, "strides", [1] * k))
        dil = list(_attr(node, "dilations", [1] * k))
        if self.model_format == "neuralnetwork" and any(d != 1 for d in dil):
            # NeuralNetwork.proto: dilationFactor "is ignored if isDeconvolution == true".
            raise UnsupportedOpError(f"unsupported ONNX ops for Core ML: ConvTranspose(dilations with --format neuralnetwork) ({node.name or node.output[0]})")
        out_pad = list(_attr(node, "output_padding", [0] * k))
        full = [(xs[2 + i] - 1) * strides[i] + (w.shape[2 + i] - 1) * dil[i] + 1 for i in range(k)]
        auto = _attr(node, "auto_pad", "NOTSET")
        out_shape = _attr(node, "output_shape", None)
        if out_shape is not None:
            out_shape = list(out_shape)[-k:]
            total = [full[i] + out_pad[i] - out_shape[i] for i in range(k)]
        elif auto in ("SAME_UPPER", "SAME_LOWER"):
            total = [full[i] + out_pad[i] - xs[2 + i] * strides[i] for i in range(k)]
        else:
            total = None
        if total is not None:
            begin = [t // 2 if auto != "SAME_LOWER" else t - t // 2 for t in total]
            if out_shape is not None and auto not in ("SAME_UPPER", "SAME_LOWER"):
                begin = [t - t // 2 for t in total]  # ONNX: explicit output_shape pads like SAME_LOWER... unless auto_pad says otherwise
            end = [t - b for t, b in zip(total, begin)]
        else:
            pads = list(_attr(node, "pads", [0] * 2 * k))
            begin, end = pads[:k], pads[k:]
        bias = None
        if len(node.input) > 2 and node.input[2]:
            bias = self.need_const(node, 2, "bias").astype(self.np_dtype(x))
        # Output length per axis: full - begin - end + output_padding. Negative "end" (output padding past the
        # computed region) needs zeros after the crop, with the bias added afterwards.
        crop_end = [e - op for e, op in zip(end, out_pad)]
        simple = all(b >= 0 for b in begin) and all(c >= 0 for c in crop_end)
        if simple:
            kw = dict(x=x, weight=w, strides=strides, dilations=dil, groups=group, pad_type="custom",
                      pad=[p for i in range(k) for p in (begin[i], crop_end[i])], name=self.out_name(node))
            if bias is not None:
                kw["bias"] = bias
            return self.mb.conv_transpose(**kw)
        y = self.mb.conv_transpose(x=x, weight=w, strides=strides, dilations=dil, groups=group, pad_type="valid", name=self.tmp_name(node, "full"))
        rank = 2 + k
        lo = [max(b, 0) for b in begin]
        hi = [full[i] - max(crop_end[i], 0) for i in range(k)]
        y = self.mb.slice_by_index(x=y, begin=[0, 0] + lo, end=[xs[0], w.shape[1] * group] + hi, name=self.tmp_name(node, "crop"))
        extra = [p for i in range(k) for p in (max(-begin[i], 0), max(-crop_end[i], 0))]
        if any(extra):
            y = self.mb.pad(x=y, pad=extra, mode="constant", constant_val=np.float32(0), name=self.tmp_name(node, "zeros"))
        if bias is not None:
            return self.mb.add(x=y, y=bias.reshape([1, -1] + [1] * (rank - 2)), name=self.out_name(node))
        return self.mb.identity(x=y, name=self.out_name(node))

    def op_BatchNormalization(self, node):
        x = self.var(node.input[0])
        dt = self.np_dtype(x)
        gamma, beta, mean, var = (self.need_const(node, k, "statistics").astype(dt) for k in (1, 2, 3, 4))
        rank = len(self.shape(node.input[0]))
        if rank not in (3, 4, 5):  # batch_norm takes rank 3..5: spell out y = x * scale + shift
            eps = float(_attr(node, "epsilon", 1e-5))
            scale = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + eps)
            shift = beta.astype(np.float64) - mean.astype(np.float64) * scale
            shape = [-1] + [1] * (rank - 2) if rank >= 2 else [-1]
            y = self.mb.mul(x=x, y=scale.reshape(shape).astype(dt), name=self.tmp_name(node, "scale"))
            return self.mb.add(x=y, y=shift.reshape(shape).astype(dt), name=self.out_name(node))
        return self.mb.batch_norm(x=x, mean=mean, variance=var, gamma=gamma, beta=beta,
                                  epsilon=np.float32(_attr(node, "epsilon", 1e-5)), name=self.out_name(node))

    def _pool(self, op: str, node: onnx.NodeProto):
        x = self.var(node.input[0])
        kernel = list(_attr(node, "kernel_shape"))
        k = len(kernel)
        pad_type, pad = self._conv_pads(node, k)
        kw = dict(x=x, kernel_sizes=kernel, strides=list(_attr(node, "strides", [1] * k)), pad_type=pad_type, name=self.out_name(node))
        if pad_type == "custom":
            kw["pad"] = pad
        if op == "avg_pool":
            kw["exclude_padding_from_average"] = not bool(_attr(node, "count_include_pad", 0))
        return getattr(self.mb, op)(**kw)

    def op_MaxPool(self, node):
        return self._pool("max_pool", node)

    def op_AveragePool(self, node):
        return self._pool("avg_pool", node)

    def op_GlobalAveragePool(self, node):
        rank = len(self.shape(node.input[0]))
        return self.mb.reduce_mean(x=self.var(node.input[0]), axes=list(range(2, rank)), keep_dims=True, name=self.out_name(node))

    def op_GlobalMaxPool(self, node):
        rank = len(self.shape(node.input[0]))
        return self.mb.reduce_max(x=self.var(node.input[0]), axes=list(range(2, rank)), keep_dims=True, name=self.out_name(node))

    # ------------------------------------------------------------------ linear algebra

    def op_MatMul(self, node):
        x, y = self.operands(node)[:2]
        return self.mb.matmul(x=x, y=y, name=self.out_name(node))

    def op_Gemm(self, node):
        alpha, beta = float(_attr(node, "alpha", 1.0)), float(_attr(node, "beta", 1.0))
        ta, tb = bool(_attr(node, "transA", 0)), bool(_attr(node, "transB", 0))
        a = self.var(node.input[0])
        dt = self.np_dtype(a)
        b_const = self.const(node.input[1])
        c_const = self.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        has_c = len(node.input) > 2 and bool(node.input[2])
        if b_const is not None and not ta and (not has_c or c_const is not None):
            weight = (b_const if tb else b_const.T).astype(np.float64) * alpha
            out_dim = weight.shape[0]
            bias = np.zeros(out_dim)
            if has_c:
                c = np.asarray(c_const, dtype=np.float64) * beta
                if c.size in (1, out_dim) and (c.ndim <= 1 or c.shape[0] == 1):
                    bias = np.broadcast_to(c.reshape(-1), (out_dim,)).copy()
                else:
                    y = self.mb.linear(x=a, weight=weight.astype(dt), name=self.tmp_name(node, "linear"))
                    return self.mb.add(x=y, y=c.astype(dt), name=self.out_name(node))
            return self.mb.linear(x=a, weight=weight.astype(dt), bias=bias.astype(dt), name=self.out_name(node))
        b = self.var(node.input[1], a)
        y = self.mb.matmul(x=a, y=b, transpose_x=ta, transpose_y=tb, name=self.tmp_name(node, "matmul") if (alpha != 1 or has_c) else self.out_name(node))
        if alpha != 1:
            y = self.mb.mul(x=y, y=dt.type(alpha), name=self.tmp_name(node, "alpha") if has_c else self.out_name(node))
        if has_c:
            c = self.var(node.input[2], a)
            if beta != 1:
                c = self.mb.mul(x=c, y=dt.type(beta), name=self.tmp_name(node, "beta"))
            y = self.mb.add(x=y, y=c, name=self.out_name(node))
        return y

    # ------------------------------------------------------------------ shapes

    def _reshape(self, node: onnx.NodeProto, shape: list[int]):
        x = self.var(node.input[0])
        if list(self.shape(node.input[0])) == list(shape):
            return self.mb.identity(x=x, name=self.out_name(node))
        if not shape:
            return self.mb.squeeze(x=x, name=self.out_name(node))
        return self.mb.reshape(x=x, shape=np.array(shape, dtype=np.int32), name=self.out_name(node))

    def op_Reshape(self, node):
        xs = self.shape(node.input[0])
        if self.opset < 5:
            target = list(_attr(node, "shape"))
        else:
            target = [int(d) for d in self.need_const(node, 1, "shape")]
        allowzero = bool(_attr(node, "allowzero", 0))
        out = [xs[i] if (d == 0 and not allowzero) else d for i, d in enumerate(target)]
        if -1 in out:
            known = int(np.prod([d for d in out if d != -1]))
            out[out.index(-1)] = int(np.prod(xs)) // known if known else 0
        return self._reshape(node, out)

    def op_Flatten(self, node):
        xs = self.shape(node.input[0])
        axis = int(_attr(node, "axis", 1))
        axis = axis + len(xs) if axis < 0 else axis
        return self._reshape(node, [int(np.prod(xs[:axis])), int(np.prod(xs[axis:]))])

    def op_Squeeze(self, node):
        xs = self.shape(node.input[0])
        if self.opset >= 13:
            axes = self.const(node.input[1]) if len(node.input) > 1 and node.input[1] else None
            if len(node.input) > 1 and node.input[1] and axes is None:
                self.need_const(node, 1, "axes")
        else:
            axes = _attr(node, "axes", None)
        if axes is None:
            out = [d for d in xs if d != 1]
        else:
            drop = {int(a) % len(xs) for a in np.atleast_1d(axes)}
            out = [d for i, d in enumerate(xs) if i not in drop]
        return self._reshape(node, out)

    def op_Unsqueeze(self, node):
        xs = list(self.shape(node.input[0]))
        axes = [int(a) for a in np.atleast_1d(self.need_const(node, 1, "axes"))] if self.opset >= 13 else list(_attr(node, "axes"))
        rank = len(xs) + len(axes)
        axes = sorted(a % rank for a in axes)
        out = xs
        for a in axes:
            out.insert(a, 1)
        return self._reshape(node, out)

    def op_Transpose(self, node):
        rank = len(self.shape(node.input[0]))
        perm = list(_attr(node, "perm", list(range(rank))[::-1]))
        return self.mb.transpose(x=self.var(node.input[0]), perm=perm, name=self.out_name(node))

    def op_Concat(self, node):
        vs = self.operands(node)
        axis = int(_attr(node, "axis"))
        if len(vs) == 1:
            return self.mb.identity(x=vs[0], name=self.out_name(node))
        return self.mb.concat(values=vs, axis=axis, name=self.out_name(node))

    def op_Split(self, node):
        xs = self.shape(node.input[0])
        axis = int(_attr(node, "axis", 0)) % len(xs)
        n_out = len(node.output)
        if self.opset >= 13 and len(node.input) > 1 and node.input[1]:
            sizes = [int(s) for s in self.need_const(node, 1, "split")]
        elif self.opset < 13 and _attr(node, "split", None) is not None:
            sizes = list(_attr(node, "split"))
        else:
            n = int(_attr(node, "num_outputs", n_out))
            chunk = -(-xs[axis] // n)
            sizes = [min(chunk, xs[axis] - chunk * i) for i in range(n)]
        names = [self.name(o or f"{node.output[0]}_unused{k}") for k, o in enumerate(node.output)]
        if len(sizes) == 1:
            return [self.mb.identity(x=self.var(node.input[0]), name=names[0])]
        # split names its outputs <name>_0, <name>_1...: slice instead so each output keeps its ONNX name.
        outs = []
        start = 0
        x = self.var(node.input[0])
        for k, s in enumerate(sizes):
            begin = [0] * len(xs)
            end = list(xs)
            begin[axis], end[axis] = start, start + s
            outs.append(self.mb.slice_by_index(x=x, begin=begin, end=end, name=names[k]))
            start += s
        return outs

    def op_Slice(self, node):
        xs = self.shape(node.input[0])
        rank = len(xs)
        if self.opset < 10:
            starts, ends = list(_attr(node, "starts")), list(_attr(node, "ends"))
            axes = list(_attr(node, "axes", list(range(len(starts)))))
            steps = [1] * len(starts)
        else:
            starts = [int(v) for v in self.need_const(node, 1, "starts")]
            ends = [int(v) for v in self.need_const(node, 2, "ends")]
            axes = [int(v) for v in self.need_const(node, 3, "axes")] if len(node.input) > 3 and node.input[3] else list(range(len(starts)))
            steps = [int(v) for v in self.need_const(node, 4, "steps")] if len(node.input) > 4 and node.input[4] else [1] * len(starts)
        begin, end, stride = [0] * rank, list(xs), [1] * rank
        gathers = []
        for s, e, a, st in zip(starts, ends, axes, steps):
            a = a % rank
            s = int(np.clip(s, -(2**62), 2**62))
            e = int(np.clip(e, -(2**62), 2**62))
            lo, hi, step = slice(s, e, st).indices(xs[a])
            if step < 0:
                gathers.append((a, np.arange(lo, hi, step)))
                continue
            begin[a], end[a], stride[a] = lo, max(hi, lo), step
        x = self.var(node.input[0])
        if not gathers:
            return self.mb.slice_by_index(x=x, begin=begin, end=end, stride=stride, name=self.out_name(node))
        if begin != [0] * rank or end != list(xs) or stride != [1] * rank:
            x = self.mb.slice_by_index(x=x, begin=begin, end=end, stride=stride, name=self.tmp_name(node, "slice"))
        for k, (a, idx) in enumerate(gathers):
            last = k == len(gathers) - 1
            x = self.mb.gather(x=x, indices=idx.astype(np.int32), axis=a, name=self.out_name(node) if last else self.tmp_name(node, f"rev{a}"))
        return x

    def op_Gather(self, node):
        xs = self.shape(node.input[0])
        axis = int(_attr(node, "axis", 0)) % len(xs)
        x = self.var(node.input[0])
        idx = self.const(node.input[1])
        if idx is None:
            indices = self.var(node.input[1])
            if self.np_dtype(indices).kind != "i":
                raise UnsupportedOpError(f"unsupported ONNX ops for Core ML: Gather(non-integer indices) ({node.name})")
            return self.mb.gather(x=x, indices=indices, axis=axis, name=self.out_name(node))
        idx = np.asarray(idx).astype(np.int64)
        idx = np.where(idx < 0, idx + xs[axis], idx).astype(np.int32)
        if idx.ndim == 0:
            y = self.mb.gather(x=x, indices=idx.reshape(1), axis=axis, name=self.tmp_name(node, "gather"))
            out = list(xs[:axis]) + list(xs[axis + 1:])
            if not out:
                return self.mb.squeeze(x=y, name=self.out_name(node))
            return self.mb.reshape(x=y, shape=np.array(out, dtype=np.int32), name=self.out_name(node))
        return self.mb.gather(x=x, indices=idx, axis=axis, name=self.out_name(node))

    def op_Softmax(self, node):
        xs = self.shape(node.input[0])
        rank = len(xs)
        axis = int(_attr(node, "axis", -1 if self.opset >= 13 else 1)) % rank
        x = self.var(node.input[0])
        if self.opset >= 13 or axis == rank - 1:
            return self.mb.softmax(x=x, axis=axis, name=self.out_name(node))
        flat = self.mb.reshape(x=x, shape=np.array([int(np.prod(xs[:axis])), int(np.prod(xs[axis:]))], dtype=np.int32), name=self.tmp_name(node, "2d"))
        y = self.mb.softmax(x=flat, axis=1, name=self.tmp_name(node, "softmax"))
        return self.mb.reshape(x=y, shape=np.array(xs, dtype=np.int32), name=self.out_name(node))

    def _reduce(self, op: str, node: onnx.NodeProto):
        xs = self.shape(node.input[0])
        keep = bool(_attr(node, "keepdims", 1))
        axes_from_input = (node.op_type == "ReduceSum" and self.opset >= 13) or self.opset >= 18
        if axes_from_input:
            axes = self.const(node.input[1]) if len(node.input) > 1 and node.input[1] else None
            if len(node.input) > 1 and node.input[1] and axes is None:
                self.need_const(node, 1, "axes")
        else:
            axes = _attr(node, "axes", None)
        if axes is None or np.size(axes) == 0:
            if axes_from_input and _attr(node, "noop_with_empty_axes", 0):
                return self.mb.identity(x=self.var(node.input[0]), name=self.out_name(node))
            axes = list(range(len(xs)))
        axes = sorted({int(a) % len(xs) for a in np.atleast_1d(axes)})
        return getattr(self.mb, op)(x=self.var(node.input[0]), axes=axes, keep_dims=keep, name=self.out_name(node))

    def op_ReduceMean(self, node):
        return self._reduce("reduce_mean", node)

    def op_ReduceSum(self, node):
        return self._reduce("reduce_sum", node)

    def op_ReduceMax(self, node):
        return self._reduce("reduce_max", node)

    def op_Pad(self, node):
        xs = self.shape(node.input[0])
        rank = len(xs)
        mode = _attr(node, "mode", "constant")
        if self.opset < 11:
            pads = list(_attr(node, "pads"))
            value = float(_attr(node, "value", 0.0))
        else:
            pads = [int(p) for p in self.need_const(node, 1, "pads")]
            value = 0.0
            if len(node.input) > 2 and node.input[2]:
                value = float(np.asarray(self.need_const(node, 2, "constant_value")).reshape(-1)[0])
            if len(node.input) > 3 and node.input[3]:
                axes = [int(a) % rank for a in self.need_const(node, 3, "axes")]
                full = [0] * 2 * rank
                for k, a in enumerate(axes):
                    full[a], full[rank + a] = pads[k], pads[len(axes) + k]
                pads = full
        before, after = pads[:rank], pads[rank:]
        x = self.var(node.input[0])
        # Negative pads crop: slice first.
        if any(p < 0 for p in pads):
            begin = [max(-b, 0) for b in before]
            end = [xs[i] - max(-after[i], 0) for i in range(rank)]
            x = self.mb.slice_by_index(x=x, begin=begin, end=end, name=self.tmp_name(node, "crop"))
            xs = tuple(e - b for b, e in zip(begin, end))
            before, after = [max(b, 0) for b in before], [max(a, 0) for a in after]
        if not any(before) and not any(after):
            return self.mb.identity(x=x, name=self.out_name(node))
        padded_axes = [i for i in range(rank) if before[i] or after[i]]
        mil_mode = {"constant": "constant", "reflect": "reflect", "edge": "replicate"}[mode]
        first = min(padded_axes)
        native_ok = mode == "constant" or (
            first >= rank - 2 and all(max(before[i], after[i]) <= (xs[i] if mode == "edge" else xs[i] - 1) for i in padded_axes)
        )
        if self.model_format == "neuralnetwork" and mode != "constant" and rank < 3:
            native_ok = False
        if native_ok:
            start = first if mode == "constant" else rank - 2
            pad = [p for i in range(start, rank) for p in (before[i], after[i])]
            kw = dict(x=x, pad=np.array(pad, dtype=np.int32), mode=mil_mode, name=self.out_name(node))
            if mode == "constant":
                kw["constant_val"] = self.np_dtype(x).type(value)
            return self.mb.pad(**kw)
        # Edge / reflect padding Core ML's pad cannot express: gather of a constant index table per axis.
        for k, a in enumerate(padded_axes):
            n = xs[a]
            pos = np.arange(-before[a], n + after[a])
            if mode == "edge":
                idx = np.clip(pos, 0, n - 1)
            else:
                period = 2 * (n - 1) if n > 1 else 1
                r = np.mod(pos, period)
                idx = np.where(r < n, r, period - r)
            last = k == len(padded_axes) - 1
            x = self.mb.gather(x=x, indices=idx.astype(np.int32), axis=a, name=self.out_name(node) if last else self.tmp_name(node, f"pad{a}"))
        return x

    # ------------------------------------------------------------------ misc

    def op_Identity(self, node):
        v = self.env[node.input[0]]
        if node.output[0] in self.graph_outputs:
            return self.mb.identity(x=self.var(node.input[0]), name=self.out_name(node))
        return v

    def op_Constant(self, node):  # only reached when view.value could not evaluate it
        raise UnsupportedOpError(f"unsupported ONNX ops for Core ML: Constant(sparse or string) ({node.name})")

    def op_Cast(self, node):
        to = int(_attr(node, "to"))
        x = self.var(node.input[0])
        target = {
            onnx.TensorProto.FLOAT: "fp32",
            onnx.TensorProto.DOUBLE: "fp32",
            onnx.TensorProto.FLOAT16: "fp16",
            onnx.TensorProto.INT32: "int32",
            onnx.TensorProto.INT64: "int32",
            onnx.TensorProto.BOOL: "bool",
        }.get(to)
        if target is None:
            raise UnsupportedOpError(f"unsupported ONNX ops for Core ML: Cast(to {onnx.TensorProto.DataType.Name(to)}) ({node.name})")
        if to == onnx.TensorProto.DOUBLE:
            self.warnings.append(f"{node.name or node.output[0]}: Cast to float64 becomes float32 in Core ML")
        current = {np.dtype(np.float32): "fp32", np.dtype(np.float16): "fp16", np.dtype(np.int32): "int32", np.dtype(bool): "bool"}.get(self.np_dtype(x))
        if current == target:
            return self.mb.identity(x=x, name=self.out_name(node))
        return self.mb.cast(x=x, dtype=target, name=self.out_name(node))

    # ------------------------------------------------------------------ Resize

    def op_Resize(self, node):
        sem = describe_node(self.view, self.scope, node)
        return self._resize(node, sem)

    def op_Upsample(self, node):
        sem = describe_node(self.view, self.scope, node)
        return self._resize(node, sem)

    def _resize(self, node: onnx.NodeProto, sem: ResizeSemantics):
        label = node.name or node.output[0]
        x = self.var(node.input[0])
        if not sem.resolved:
            raise NotExactError(f"{label}: Resize not static after fix-resize ({'; '.join(sem.problems)})")
        axes = sem.resized_axes
        if not axes:
            self.plans.append(ResizePlan(label, node.output[0], "identity", "identity", {}, sem))
            return self.mb.identity(x=x, name=self.out_name(node))
        target = make_target("coreml", {"deployment_target": self.deployment_target, "model_format": self.model_format})
        candidates = [p for p in target.primitives() if p.runs(sem)]
        usable = [p for p in candidates if p.name == _NEAREST or p.name in _BILINEAR_ALIGN or p.name in _RESIZE_BILINEAR_MODES]
        if sem.rank < 3 or not usable:
            raise NotExactError(f"{label}: no Core ML {self.deployment_target} {self.model_format} op samples like this Resize ({sem.mode}/{sem.transform}); fix-resize should have lowered it")
        prim = usable[0]
        nh, nw = int(sem.axes_info[-2].n), int(sem.axes_info[-1].n)  # type: ignore[arg-type]
        mh, mw = int(sem.axes_info[-2].m), int(sem.axes_info[-1].m)  # type: ignore[arg-type]
        if self.model_format == "neuralnetwork" and prim.name in _BILINEAR_ALIGN and (mh < nh or mw < nw):
            # A NeuralNetwork Upsample factor below 1 is outside what the proto describes (it "scales up");
            # a ResizeBilinear with the same grid, if one matches, states the target size directly.
            sized = [p for p in usable if p.name in _RESIZE_BILINEAR_MODES]
            if sized:
                prim = sized[0]
        name = self.out_name(node)
        if prim.name == _NEAREST:
            params = {"scale_factor_height": mh // nh, "scale_factor_width": mw // nw}
            y = self.mb.upsample_nearest_neighbor(x=x, name=name, **params)
            op = "upsample_nearest_neighbor"
        elif prim.name in _BILINEAR_ALIGN:
            align = _BILINEAR_ALIGN[prim.name]
            sh, sw = scale_for_size(nh, mh), scale_for_size(nw, mw)
            if self.model_format == "neuralnetwork":
                for s, n, m in ((sh, nh, mh), (sw, nw, mw)):
                    if nn_builder_snaps(s):
                        raise NotExactError(
                            f"{label}: the NeuralNetwork builder treats Upsample factor {float(s):.6g} ({m}/{n}) as the integer "
                            f"{int(np.floor(float(s)))} (it rounds factors within 0.001 of an integer), which would change the output "
                            "size; use --format mlprogram"
                        )
            if isinstance(sh, np.floating) or isinstance(sw, np.floating):
                sh, sw = np.float32(sh), np.float32(sw)
            params = {"scale_factor_height": sh, "scale_factor_width": sw, "align_corners": align}
            if self.model_format == "mlprogram" and self.ios >= 16:
                params["half_pixel_centers"] = not align
            y = self.mb.upsample_bilinear(x=x, name=name, **params)
            op = "upsample_bilinear"
            if self.model_format == "neuralnetwork" and ((mh < nh) or (mw < nw)):
                self.warnings.append(f"{label}: NeuralNetwork Upsample with a fractional factor below 1 (downsampling); the grid is documented, the runtime's acceptance of factors < 1 is unconfirmed")
        else:
            params = {"target_size_height": mh, "target_size_width": mw, "sampling_mode": _RESIZE_BILINEAR_MODES[prim.name]}
            y = self.mb.resize_bilinear(x=x, name=name, **params)
            op = "resize_bilinear"
        self.plans.append(ResizePlan(label, name, prim.name, op, params, sem))
        return y


__all__ = ["ResizePlan", "Translation", "Translator", "scale_for_size"]
