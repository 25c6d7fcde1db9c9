"""The Core ML translator core: ONNX graph -> MIL program, node by node, with coremltools' MIL builder.

Static shapes throughout: every graph input has a concrete shape, Shape-derived subgraphs and other
constant subgraphs are folded to numpy constants first (``ModelView.value``), and every attribute or
input that Core ML needs as a compile-time constant (Reshape shape, Slice bounds, pads, axes...) is read
as one. Each remaining node goes to the handler registered for its op type (``rewriter.coreml.ops``);
the environment maps every ONNX tensor to a MIL Var or a numpy constant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx

from rewriter.errors import UnsupportedOpError, UsageError
from rewriter.exporting.onnx_readers import ConstInput, attribute
from rewriter.exporting.registry import OpRegistry
from rewriter.graph import ModelView, Scope, fresh_name

if TYPE_CHECKING:
    from rewriter.resize import ResizeSemantics


@dataclass
class ResizePlan:
    """What one ONNX Resize becomes: the MIL op, its parameters, and the weights it must reproduce."""

    onnx_name: str
    output: str  # the ONNX node's output tensor (how fix-resize's provenance names it)
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
    """The MIL function, the ONNX names of its inputs and outputs, and how each Resize was spelled."""

    function: Any
    input_names: list[str]
    output_names: list[str]
    resize_plans: list[ResizePlan] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


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


class Translator:
    """One MIL function from the main graph of a ModelView (see the module docstring)."""

    def __init__(self, view: ModelView, ops: OpRegistry, input_shapes: dict[str, tuple[Any, ...]],
                 deployment_target: str, model_format: str, opset_version: Any, batch_symbol: Any = None) -> None:
        from coremltools.converters.mil import Builder as mb

        self.mb = mb
        self.view = view
        self.ops = ops
        self.scope: Scope = view.scopes[0]
        self.graph = self.scope.source if self.scope.source is not None else view.model.graph
        self.input_shapes = input_shapes
        # A symbolic batch (rewriter.coreml.batch): ``view`` holds the values of batch 1, so shapes read as batch 1
        # too; the values that depend on it are computed at run time by the caller.
        self.batch_symbol = batch_symbol
        self.deployment_target = deployment_target
        self.ios = int(deployment_target.removeprefix("iOS"))
        self.model_format = model_format
        self.opset_version = opset_version
        self.env: dict[str, Any] = {}
        self.const_vars: dict[str, Any] = {}
        self.used_names: set[str] = set()
        self.warnings: list[str] = []
        self.plans: list[ResizePlan] = []  # filled by the Resize handler
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
        """The constant value of ``node.input[k]``; a value computed at run time is refused."""
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
        if self.batch_symbol is not None:
            shape = tuple(d if isinstance(d, (int, np.integer)) else d.subs(self.batch_symbol, 1) for d in shape)
            shape = tuple(int(d) if isinstance(d, (int, np.integer)) or d.is_Integer else d for d in shape)
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
                raise UsageError(f"input {vi.name!r} is float16: Core ML takes float16 inputs from iOS16 on, in mlprogram; pass --deployment-target iOS16 (or later) --format mlprogram")
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
        start = attribute(node, "start", 0)
        end = attribute(node, "end", None)
        return np.array(shape[slice(start, end)], dtype=np.int64)

    def node(self, node: onnx.NodeProto) -> None:
        self.current = node
        if self.fold(node):
            return
        entry = self.ops.lookup(node)
        if entry is None:
            raise UnsupportedOpError(f"unsupported ONNX ops for Core ML: {node.op_type} ({node.name or node.output[0]})")
        result = entry.handler(self, node)
        outs = [o for o in node.output]
        if not isinstance(result, (list, tuple)):
            result = [result]
        for o, r in zip(outs, result):
            if o:
                self.env[o] = r

    def const_input(self, node: onnx.NodeProto) -> ConstInput:
        """``node``'s constant inputs for the ONNX readers (a computed one is refused)."""
        return lambda k, what: self.need_const(node, k, what)

    def out_name(self, node: onnx.NodeProto, k: int = 0) -> str:
        out = node.output[k]
        if out in self.graph_outputs and sanitize(out) not in self.claimed:
            self.claimed.add(sanitize(out))
            return sanitize(out)
        return self.name(out)

    def tmp_name(self, node: onnx.NodeProto, what: str) -> str:
        return self.name(f"{node.output[0]}_{what}")


__all__ = ["Translation", "Translator", "sanitize"]
