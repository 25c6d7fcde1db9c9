"""Static shapes and shape-derived values: one forward pass over every graph, without reading weights.

onnx's shape inference propagates values only through a few ops (Shape, Gather, Slice, Concat, Add/Sub/Mul,
Cast...) and stops at the first one it cannot fold, so a Pad, Slice, Split or Reshape fed from Div, Ceil, Max,
Where, Range... loses its output shape, and so does everything after it. Here every node is visited once, in
graph order (ONNX requires topological order):

- its outputs get a value when its inputs are all known and small: evaluated with onnx's reference kernels,
  or element by element (``SymVector``) when a vector holds symbolic dims;
- an output whose inferred shape is not static is inferred again from the node alone, with the values now
  known materialised as initializers (onnx shape inference on a one-node model), or taken from its value.

Initializers and Constant nodes are read only when a node needs their value and every other input is known;
those above ``MAX_ELEMENTS`` never are, nor are graph inputs (unless pinned), and external data is read only
when a value is asked for (``StaticValues.value``), never by the pass itself.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Union

import numpy as np
import onnx
from onnx import numpy_helper

from rewriter.errors import BadModelError
from rewriter.scopes import Dim, Scope, shape_of

# A value known at rewrite time: a full numpy array, or a 1-D vector of dims (e.g. derived from Shape).
Value = Union[np.ndarray, "SymVector"]

# Values and initializers above this many elements are never materialised: shape arithmetic is small.
MAX_ELEMENTS = 1 << 16
# Inputs whose value decides the output shape (beyond the input shapes): the only constants read for inference.
SHAPE_INPUTS = {
    "Reshape": (1,), "Expand": (1,), "Tile": (1,), "ConstantOfShape": (0,), "Range": (0, 1, 2), "Pad": (1, 2, 3),
    "Slice": (1, 2, 3, 4), "Split": (1,), "Squeeze": (1,), "Unsqueeze": (1,), "Resize": (1, 2, 3), "Upsample": (1,),
    "OneHot": (1,), "TopK": (1,), "CenterCropPad": (1,), "Compress": (1,), "MaxUnpool": (2,), "AffineGrid": (1,),
    "ReduceSum": (1,), "ReduceMean": (1,), "ReduceMax": (1,), "ReduceMin": (1,), "ReduceProd": (1,), "ReduceL1": (1,),
    "ReduceL2": (1,), "ReduceLogSum": (1,), "ReduceLogSumExp": (1,), "ReduceSumSquare": (1,), "Col2Im": (1, 2),
    "DFT": (1,), "STFT": (1, 3), "HannWindow": (0,), "HammingWindow": (0,), "BlackmanWindow": (0,), "MelWeightMatrix": (0, 1),
}
# Ops whose output shape depends on the data itself (bounded by their input's size).
DATA_SHAPED = {"NonZero", "Unique", "NonMaxSuppression", "Compress", "StringSplit"}
# Ops whose result is not a function of their inputs, or that run subgraphs: never folded.
NOT_FOLDED = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli", "If", "Loop", "Scan", "SequenceMap"}


@dataclass(frozen=True)
class SymVector:
    """A 1-D integer vector whose elements may be symbolic (a dim_param) or unknown."""

    items: tuple[Dim, ...]

    def known(self) -> np.ndarray | None:
        if all(isinstance(v, int) for v in self.items):
            return np.array(self.items, dtype=np.int64)
        return None


def is_static(shape: tuple[Dim, ...] | None) -> bool:
    return shape is not None and all(isinstance(d, int) for d in shape)


def evaluate_node(node: onnx.NodeProto, inputs: list[np.ndarray | None], opset: int) -> list[np.ndarray | None]:
    """One node on constant inputs with onnx's reference evaluator (None for an unnamed, optional output)."""
    version = max(opset, 7)
    kernel = _kernel(node.op_type, version) if node.domain in ("", "ai.onnx") and not has_subgraph(node) else None
    if kernel is not None:
        # The kernel alone: a ReferenceEvaluator costs ~1.5 ms to build per node, the kernel ~10 us.
        from onnx.reference import ReferenceEvaluator

        params = {"log": lambda *args: None, "verbose": 0, "new_ops": None, "existing_functions": {}, "evaluator_cls": ReferenceEvaluator, "opsets": {"": version}}
        try:
            results = kernel(node, params).run(*inputs)  # one result per output position
        except Exception:  # the whole evaluator decides (it may handle what the bare kernel does not)
            results = ()
        if len(results) >= len(node.output):
            return [np.asarray(r) if o else None for o, r in zip(node.output, results)]
    results = iter(_evaluate_in_model(node, inputs, version))  # results of the named outputs, in order
    return [np.asarray(next(results)) if o else None for o in node.output]


def has_subgraph(node: onnx.NodeProto) -> bool:
    return any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute)


@functools.cache
def _kernel(op_type: str, version: int):
    from onnx.reference import ReferenceEvaluator
    from onnx.reference.op_run import OpRunExpand
    from onnx.reference.ops import load_op

    try:
        kernel = load_op("", op_type, version, evaluator_cls=ReferenceEvaluator)
    except Exception:  # context-dependent or function-defined ops need the whole evaluator
        return None
    return None if not isinstance(kernel, type) or issubclass(kernel, OpRunExpand) else kernel


def _evaluate_in_model(node: onnx.NodeProto, inputs: list[np.ndarray | None], version: int) -> list[np.ndarray]:
    from onnx.reference import ReferenceEvaluator

    single = _isolated(node)
    feeds = {n: v for n, v in zip(single.input, inputs) if n and v is not None}
    inputs_info = [onnx.helper.make_tensor_value_info(n, onnx.helper.np_dtype_to_tensor_dtype(v.dtype), v.shape) for n, v in feeds.items()]
    model = onnx.helper.make_model(_one_node_graph(single, inputs_info), opset_imports=[onnx.helper.make_opsetid("", version)])
    return ReferenceEvaluator(model).run(None, feeds)


def _isolated(node: onnx.NodeProto) -> onnx.NodeProto:
    """A copy of ``node`` reading ``in<k>`` and writing ``out<k>`` (empty optional names kept empty)."""
    single = onnx.NodeProto()
    single.CopyFrom(node)
    del single.input[:]
    single.input.extend(f"in{k}" if n else "" for k, n in enumerate(node.input))
    del single.output[:]
    single.output.extend(f"out{k}" if o else "" for k, o in enumerate(node.output))
    return single


def _one_node_graph(single: onnx.NodeProto, inputs: list[onnx.ValueInfoProto], initializers: list[onnx.TensorProto] | None = None) -> onnx.GraphProto:
    outputs = [onnx.helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None) for o in single.output if o]
    return onnx.helper.make_graph([single], "node", inputs, outputs, initializers)


class StaticValues:
    """Values and refined shapes of every tensor of a model, computed once (see the module docstring).

    Shapes are refined in place in each ``Scope.shapes`` / ``Scope.elem_types``; values are kept here.
    ``failures`` records, per node output, why a node with known inputs still gave no value or shape.
    """

    def __init__(self, scopes: list[Scope], model: onnx.ModelProto, read: Callable[[onnx.TensorProto], np.ndarray], pinned: dict[str, np.ndarray]) -> None:
        self.model = model
        self.opset = next((int(i.version) for i in model.opset_import if i.domain in ("", "ai.onnx")), 0)
        self._read = read
        self._values: dict[int, dict[str, Value]] = {id(s): {} for s in scopes}
        self._inputs = {id(s): {vi.name for vi in (s.source or s.graph).input} for s in scopes}
        self.failures: dict[str, str] = {}
        self._improved: set[str] = set()  # tensors known better here than by whole-model inference
        self._fresh = itertools.count()
        # Nodes that need external data, evaluated only when their value is asked for (never by the pass).
        self._deferred: dict[str, tuple[Scope, onnx.NodeProto]] = {}
        self._passing = True
        if scopes:
            self._values[id(scopes[0])].update(pinned)
        for scope in scopes:  # enclosing graphs come before their subgraphs
            for node in scope.graph.node:
                self._visit(scope, node)
        self._passing = False

    # ------------------------------------------------------------------ lookups

    def owner(self, scope: Scope, name: str) -> Scope | None:
        """The scope that defines ``name`` as seen from ``scope`` (node output, initializer or graph input)."""
        # A plain loop, not Scope.chain(): this is the forward pass's hottest lookup (the generator cost 13 % of
        # ModelView.build on YOLO11-seg).
        s: Scope | None = scope
        while s is not None:
            if name in s.producers or name in s.initializers or name in self._inputs[id(s)] or name in self._values[id(s)]:
                return s
            s = s.parent
        return None

    def value(self, scope: Scope, name: str, read: bool = True) -> Value | None:
        """The known value of ``name``. A small initializer or Constant is read (once) only when ``read``."""
        owner = self.owner(scope, name) if name else None
        if owner is None:
            return None
        values = self._values[id(owner)]
        if name not in values and read and name in self._deferred and not self._passing:
            self._visit(*self._deferred.pop(name))
        elif name not in values and read and self.readable(scope, name):
            node = owner.producers.get(name)
            values[name] = self._read(owner.initializers[name]) if node is None else _constant(node)  # type: ignore[assignment]
        return values.get(name)

    def constant_elements(self, scope: Scope, name: str) -> int | None:
        """Element count of the initializer or Constant node holding ``name`` (None if neither does)."""
        owner = self.owner(scope, name)
        if owner is None:
            return None
        node = owner.producers.get(name)
        if node is None:
            init = owner.initializers.get(name)
            return None if init is None else elements(init.dims)
        return _constant_elements(node) if node.op_type == "Constant" and node.domain in ("", "ai.onnx") else None

    def readable(self, scope: Scope, name: str) -> bool:
        """A small initializer or Constant whose value can be read when needed (weights never are)."""
        count = self.constant_elements(scope, name)
        return count is not None and count <= MAX_ELEMENTS and not (self._passing and self._external(scope, name))

    def on_request(self, name: str) -> bool:
        """A value computed from small external constants: not by the pass, but when ``value`` asks for it."""
        return name in self._deferred

    def _readable_later(self, scope: Scope, name: str) -> bool:
        """A small external constant (read on request, never by the pass), or computed from one."""
        count = self.constant_elements(scope, name)
        return name in self._deferred or (count is not None and count <= MAX_ELEMENTS and self._external(scope, name))

    def _external(self, scope: Scope, name: str) -> bool:
        owner = self.owner(scope, name)
        init = owner.initializers.get(name) if owner is not None and name not in owner.producers else None
        return init is not None and init.data_location == onnx.TensorProto.EXTERNAL

    # ------------------------------------------------------------------ the pass

    def _visit(self, scope: Scope, node: onnx.NodeProto) -> None:
        pending = [o for o in node.output if o and not is_static(scope.shapes.get(o))]
        if pending:  # shapes first: a result too big to keep is then never computed
            self._refine_shapes(scope, node, pending)
        try:
            outputs = self._evaluate(scope, node)
        except BadModelError:
            raise
        except Exception as exc:  # a kernel that rejects these inputs: the outputs are just unknown
            outputs = None
            for o in node.output:
                self.failures[o] = f"{node.op_type} cannot be evaluated on its constant inputs ({type(exc).__name__})"
        values = self._values[id(scope)]
        for name, v in zip(node.output, outputs or ()):
            if not name or v is None:
                continue
            if isinstance(v, np.ndarray) and v.dtype == object:  # a sequence or map, not a tensor
                continue
            if isinstance(v, np.ndarray) and v.size > MAX_ELEMENTS:
                self.failures[name] = f"its value has {v.size} elements, more than the {MAX_ELEMENTS} kept statically"
                self._set_shape(scope, name, tuple(int(d) for d in v.shape))
                continue
            values[name] = v
            self._improved.add(name)
            if isinstance(v, np.ndarray):
                self._set_shape(scope, name, tuple(int(d) for d in v.shape))
                scope.elem_types[name] = onnx.helper.np_dtype_to_tensor_dtype(v.dtype)
            elif name not in scope.shapes:
                scope.shapes[name] = (len(v.items),)

    def _evaluate(self, scope: Scope, node: onnx.NodeProto) -> list[Value | None] | None:
        op = node.op_type
        if node.domain not in ("", "ai.onnx") or op in NOT_FOLDED:
            return None
        if op == "Constant":
            return None  # read when a node needs it: Constant nodes may hold weights
        if op in ("Shape", "Size"):
            shape = scope.lookup_shape(node.input[0])
            if shape is None:
                return None
            if op == "Size":
                return [np.array(elements(shape), dtype=np.int64) if is_static(shape) else None]
            dims = list(shape)[slice(_attr(node, "start", 0), _attr(node, "end", None))]
            return [_normalize(SymVector(tuple(dims)))]
        # Check every input before reading any initializer: a node on activations reads nothing.
        # (After the pass, a value asked for resolves the external constants it needs, through any chain.)
        missing = [n for n in node.input if n and self.value(scope, n, read=not self._passing and self.on_request(n)) is None
                   and not self.readable(scope, n)]
        if missing:
            if self._passing and all(self._readable_later(scope, n) for n in missing):
                self._deferred.update((o, (scope, node)) for o in node.output if o)
            return None
        inputs = [_normalize(self.value(scope, n)) if n else None for n in node.input]
        if any(isinstance(v, SymVector) for v in inputs):
            return [_eval_symbolic(node, inputs)] + [None] * (len(node.output) - 1)
        if any(isinstance(v, np.ndarray) and v.size > MAX_ELEMENTS for v in inputs):
            return None
        # Only results known to be small are computed (Expand, Tile, ConstantOfShape... can be huge); the
        # data-dependent ops have no static shape but stay within their input's size.
        if op not in DATA_SHAPED:
            for o in filter(None, node.output):
                shape = scope.shapes.get(o)
                if not is_static(shape):
                    return None
                if elements(shape) > MAX_ELEMENTS:  # type: ignore[arg-type]
                    self.failures[o] = f"its value would have {elements(shape)} elements, more than the {MAX_ELEMENTS} kept statically"  # type: ignore[arg-type]
                    return None
        return evaluate_node(node, inputs, self.opset)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ shapes

    def _set_shape(self, scope: Scope, name: str, shape: tuple[Dim, ...]) -> None:
        old = scope.shapes.get(name)
        merged = _merge(old, shape)
        if merged != old:
            scope.shapes[name] = merged
            self._improved.add(name)

    def _refine_shapes(self, scope: Scope, node: onnx.NodeProto, pending: list[str]) -> None:
        if node.domain in ("", "ai.onnx") and node.output[0] in pending:
            own = _shape_from_value_input(node, lambda k: scope.lookup_shape(node.input[k]) if len(node.input) > k and node.input[k] else None,
                                          lambda k: self.value(scope, node.input[k]) if len(node.input) > k and node.input[k] else None)
            if own is not None:
                self._set_shape(scope, node.output[0], own)
                pending = [o for o in pending if not is_static(scope.shapes.get(o))]
        # Worth a one-node inference when an input is known better than whole-model inference knew it, or that
        # inference gave no shape at all (it stopped, or failed on the model) while the inputs have shapes.
        inputs = [n for n in node.input if n]
        better = any(n in self._improved or self.readable(scope, n) for n in inputs)
        missed = any(o not in scope.shapes for o in pending) and any(scope.lookup_shape(n) is not None for n in inputs)
        if pending and (better or missed) and not has_subgraph(node):
            for name, (shape, elem_type) in self._infer_alone(scope, node).items():
                if name in pending and shape is not None:
                    self._set_shape(scope, name, shape)
                if elem_type and not scope.lookup_elem_type(name):
                    scope.elem_types[name] = elem_type

    def _infer_alone(self, scope: Scope, node: onnx.NodeProto) -> dict[str, tuple[tuple[Dim, ...] | None, int]]:
        """onnx shape inference on ``node`` alone, its known values given as initializers."""
        inputs, inits, symbols = [], [], set()
        for k, name in enumerate(node.input):
            if not name:
                continue
            v = self.value(scope, name, read=k in SHAPE_INPUTS.get(node.op_type, ()))
            if isinstance(v, np.ndarray) and v.size <= MAX_ELEMENTS and v.dtype != object:
                inits.append(numpy_helper.from_array(v, f"in{k}"))
                continue
            elem_type = scope.lookup_elem_type(name)
            if not elem_type:
                return {}
            shape = scope.lookup_shape(name)
            symbols.update(d for d in shape or () if isinstance(d, str))
            inputs.append(onnx.helper.make_tensor_value_info(f"in{k}", elem_type, None if shape is None else [d if d is not None else "" for d in shape]))
        try:
            model = onnx.helper.make_model(_one_node_graph(_isolated(node), inputs, inits), opset_imports=list(self.model.opset_import),
                                           ir_version=max(self.model.ir_version, 4))
            model.functions.extend(self.model.functions)
            inferred = onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False, data_prop=True)
        except Exception:  # inference is best effort: the shape stays as it was
            return {}
        found = {}
        fresh: dict[str, str] = {}
        for vi in [*inferred.graph.value_info, *inferred.graph.output]:
            if not vi.name.startswith("out") or not vi.type.HasField("tensor_type"):
                continue
            shape = shape_of(vi)
            if shape is not None:  # a symbol the one-node model invented names a new unknown, not the model's
                shape = tuple(fresh.setdefault(d, f"unk__static{next(self._fresh)}") if isinstance(d, str) and d not in symbols else d for d in shape)
            found[node.output[int(vi.name[3:])]] = (shape, vi.type.tensor_type.elem_type)
        return found


# ---------------------------------------------------------------------- value helpers


def elements(dims) -> int:
    return math.prod(int(d) for d in dims)


def _attr(node: onnx.NodeProto, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _constant(node: onnx.NodeProto) -> np.ndarray | None:
    for a in node.attribute:
        if a.name == "value":
            return numpy_helper.to_array(a.t)
        if a.name == "value_int":
            return np.array(a.i, dtype=np.int64)
        if a.name == "value_ints":
            return np.array(list(a.ints), dtype=np.int64)
        if a.name == "value_float":
            return np.array(a.f, dtype=np.float32)
        if a.name == "value_floats":
            return np.array(list(a.floats), dtype=np.float32)
    return None


def _constant_elements(node: onnx.NodeProto) -> int | None:
    """Size of a Constant's value; None for the kinds not read here (external or sparse tensors, strings)."""
    for a in node.attribute:
        if a.name == "value":
            return None if a.t.data_location == onnx.TensorProto.EXTERNAL else elements(a.t.dims)
        if a.name in ("value_int", "value_float"):
            return 1
        if a.name in ("value_ints", "value_floats"):
            return len(a.ints) + len(a.floats)
    return None


def _normalize(v: Value | None) -> Value | None:
    """A symbolic vector whose elements all became known is just an array."""
    if isinstance(v, SymVector):
        known = v.known()
        return known if known is not None else v
    return v


def _eval_symbolic(node: onnx.NodeProto, inputs: list[Value | None]) -> Value | None:
    """Element bookkeeping for vectors that contain symbolic dims (Gather/Slice/Concat/arithmetic...)."""
    op = node.op_type
    data = inputs[0]
    if op in ("Identity", "Cast", "Unsqueeze", "Ceil", "Floor") and isinstance(data, SymVector):
        return data  # Unsqueeze of a (1-item) vector; Ceil/Floor of integral dims
    if op == "Reshape" and isinstance(data, SymVector) and isinstance(inputs[1], np.ndarray) and inputs[1].size == 1:
        return data
    if op == "Gather" and isinstance(data, SymVector) and isinstance(inputs[1], np.ndarray):
        idx = inputs[1]
        picked = [data.items[int(k)] for k in np.atleast_1d(idx)]
        return SymVector(tuple(picked)) if idx.ndim else _scalar(picked[0])
    if op == "Slice" and isinstance(data, SymVector):
        starts, ends = inputs[1], inputs[2]
        steps = inputs[4] if len(inputs) > 4 and inputs[4] is not None else np.array([1])
        if not all(isinstance(v, np.ndarray) for v in (starts, ends, steps)):
            return None
        return SymVector(tuple(list(data.items)[slice(int(starts[0]), _clip_end(int(ends[0])), int(steps[0]))]))
    if op == "Concat":
        items: list[Dim] = []
        for v in inputs:
            if isinstance(v, SymVector):
                items.extend(v.items)
            elif isinstance(v, np.ndarray) and v.ndim <= 1:
                items.extend(int(x) for x in np.atleast_1d(v))
            else:
                return None
        return SymVector(tuple(items))
    if op == "Squeeze" and isinstance(data, SymVector) and len(data.items) == 1:
        return _scalar(data.items[0])
    if op in _ARITH and len(inputs) == 2 and all(v is not None for v in inputs):
        a, b = (_as_items(v) for v in inputs)
        if a is None or b is None:
            return None
        if len(a) == 1 and len(b) > 1:
            a = a * len(b)
        if len(b) == 1 and len(a) > 1:
            b = b * len(a)
        if len(a) != len(b):
            return None
        return _normalize(SymVector(tuple(_arith(op, x, y) for x, y in zip(a, b))))
    return None


_ARITH = ("Mul", "Div", "Add", "Sub", "Max", "Min")


def _arith(op: str, x: Dim, y: Dim) -> Dim:
    """One element of integer arithmetic on dims; a symbol survives only the identities (x*1, x+0, max(x, x)...)."""
    if isinstance(x, int) and isinstance(y, int):
        if op == "Div":
            return x // y if y and x % y == 0 else None
        return {"Mul": x * y, "Add": x + y, "Sub": x - y, "Max": max(x, y), "Min": min(x, y)}[op]
    if op == "Mul" and (x == 1 or y == 1):
        return y if x == 1 else x
    if (op == "Div" and y == 1) or (op in ("Add", "Sub") and y == 0) or (op in ("Max", "Min") and x == y):
        return x
    if op == "Add" and x == 0:
        return y
    return None


def _clip_end(end: int) -> int | None:
    return None if end >= (1 << 62) else end


def _scalar(d: Dim) -> Value:
    return np.array(d, dtype=np.int64) if isinstance(d, int) else SymVector((d,))


def _as_items(v: Value) -> list[Dim] | None:
    if isinstance(v, SymVector):
        return list(v.items)
    if isinstance(v, np.ndarray) and v.ndim <= 1:
        return [int(x) if float(x).is_integer() else None for x in np.atleast_1d(v)]
    return None


# ---------------------------------------------------------------------- shapes from value inputs


def _merge(old: tuple[Dim, ...] | None, new: tuple[Dim, ...]) -> tuple[Dim, ...]:
    """Per dim the most precise of two shapes (int over symbol over unknown); on a conflict the old one."""
    if old is None:
        return new
    if len(old) != len(new):
        return old
    rank = {int: 2, str: 1}
    return tuple(n if rank.get(type(n), 0) > rank.get(type(o), 0) else o for o, n in zip(old, new))


def _shape_from_value_input(node: onnx.NodeProto, shape_of, value_of) -> tuple[Dim, ...] | None:
    """Output shapes that a known (possibly symbolic) shape vector decides, beyond what onnx infers symbolically."""
    op = node.op_type
    if op == "Resize":
        return _resize_sizes(node, shape_of, value_of)
    if op not in ("Reshape", "Expand", "ConstantOfShape"):
        return None
    v = value_of(0 if op == "ConstantOfShape" else 1)
    target = _as_items(v) if v is not None else None
    if target is None:
        return None
    if op == "ConstantOfShape":
        return tuple(target)
    data = shape_of(0)
    if data is None:
        return None
    if op == "Expand":
        return _broadcast(data, tuple(target))  # type: ignore[arg-type]
    return _reshape(data, target, bool(_attr(node, "allowzero", 0)))  # type: ignore[arg-type]


def _resize_sizes(node: onnx.NodeProto, shape_of, value_of) -> tuple[Dim, ...] | None:
    """A Resize's output shape is its ``sizes`` (a symbolic batch kept: sizes [N, C, 2H, 2W] from Shape arithmetic),
    on its ``axes`` when it has them; other aspect-ratio policies than stretch are left to shape inference."""
    if len(node.input) < 4 or not node.input[3] or _attr(node, "keep_aspect_ratio_policy", b"stretch") not in (b"stretch", "stretch"):
        return None
    v = value_of(3)
    sizes = _as_items(v) if v is not None else None
    if sizes is None:
        return None
    axes = _attr(node, "axes", None)
    if axes is None:
        return tuple(sizes)
    data = shape_of(0)
    if data is None or len(axes) != len(sizes):
        return None
    out = list(data)
    for axis, size in zip(axes, sizes):
        out[int(axis) % len(out)] = size
    return tuple(out)


def _broadcast(a: tuple[Dim, ...], b: tuple[Dim, ...]) -> tuple[Dim, ...]:
    rank = max(len(a), len(b))
    a, b = (1,) * (rank - len(a)) + a, (1,) * (rank - len(b)) + b
    return tuple(y if x == 1 else x if y == 1 or x == y else None for x, y in zip(a, b))


def _reshape(data: tuple[Dim, ...], target: list[Dim], allowzero: bool) -> tuple[Dim, ...]:
    out = [data[k] if t == 0 and not allowzero and k < len(data) else t for k, t in enumerate(target)]
    if out.count(-1) != 1:
        return tuple(out)
    # The -1 dim: total / product of the others, cancelling symbols (N*C*H*W / (N*G) = C*H*W/G).
    total, rest = _factor(data), _factor([d for d in out if d != -1])
    hole: Dim = None
    if total is not None and rest is not None:
        (num, num_syms), (den, den_syms) = total, rest
        left, missing = num_syms - den_syms, den_syms - num_syms
        if not missing and den and num % den == 0:
            q = num // den
            if not left:
                hole = q
            elif q == 1 and sum(left.values()) == 1:
                hole = next(iter(left))
    return tuple(hole if d == -1 else d for d in out)


def _factor(dims) -> tuple[int, Counter] | None:
    """A product of dims as (integer part, multiset of symbols); None if a dim is unknown."""
    n, syms = 1, Counter()
    for d in dims:
        if isinstance(d, int):
            n *= d
        elif isinstance(d, str):
            syms[d] += 1
        else:
            return None
    return n, syms
