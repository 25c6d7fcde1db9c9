"""Which ONNX ops the Core ML exporter translates, and the one-line refusal for everything else.

The check runs on the graph structure only (no weights, no fix-resize, no coremltools): a model with an op
outside the table is refused before any work is done, with every offending op type and the nodes using it.
Nodes whose outputs are known statically (Shape / Size arithmetic, constant subgraphs) are folded to
constants by the exporter, so their op type does not matter.
"""

from __future__ import annotations

import onnx

from rewriter.errors import UnsupportedOpError
from rewriter.graph import ModelView, Scope, subgraphs

# ONNX op -> what it becomes in the MIL program (before coremltools' own graph passes fuse things).
SUPPORTED_OPS: dict[str, str] = {
    "Conv": "conv (1-D/2-D/3-D, groups, dilations, explicit or auto_pad)",
    "ConvTranspose": "conv_transpose (+ slice / pad for output_padding, output_shape, auto_pad)",
    "BatchNormalization": "batch_norm (inference form, constant statistics)",
    "Relu": "relu",
    "LeakyRelu": "leaky_relu",
    "PRelu": "prelu (one slope per channel) or relu + minimum + mul",
    "Sigmoid": "sigmoid",
    "Tanh": "tanh",
    "Clip": "clip / relu / relu6 / maximum / minimum",
    "HardSigmoid": "sigmoid_hard",
    "HardSwish": "mul(x, sigmoid_hard(x, 1/6, 1/2))",
    "Elu": "elu",
    "Softplus": "softplus",
    "Gelu": "gelu (EXACT or TANH_APPROXIMATION)",
    "Erf": "erf",
    "Add": "add",
    "Sub": "sub",
    "Mul": "mul",
    "Div": "real_div (floor_div for integer tensors)",
    "Pow": "pow",
    "Sqrt": "sqrt",
    "Exp": "exp",
    "Log": "log",
    "Neg": "mul(x, -1)",
    "Abs": "abs",
    "Max": "maximum (variadic: chained)",
    "Min": "minimum (variadic: chained)",
    "Concat": "concat",
    "Split": "slice_by_index per output (each keeps its ONNX name)",
    "Slice": "slice_by_index (gather for negative steps); static starts/ends/axes/steps",
    "MaxPool": "max_pool (no dilations, no Indices output; ceil_mode only where it does not change the size)",
    "AveragePool": "avg_pool (count_include_pad -> exclude_padding_from_average; same ceil_mode rule)",
    "GlobalAveragePool": "reduce_mean over the spatial axes",
    "GlobalMaxPool": "reduce_max over the spatial axes",
    "Gemm": "linear (constant B) or matmul + mul + add",
    "MatMul": "matmul",
    "Flatten": "reshape (static shape)",
    "Reshape": "reshape (static shape)",
    "Transpose": "transpose",
    "Squeeze": "reshape (static shape)",
    "Unsqueeze": "reshape (static shape)",
    "Softmax": "softmax (opset < 13: 2-D coercion through reshape)",
    "Pad": "pad (constant / reflect / replicate); gather of an index table where Core ML's pad cannot (edge/reflect beyond the last two axes); negative pads -> slice",
    "ReduceMean": "reduce_mean",
    "ReduceSum": "reduce_sum",
    "ReduceMax": "reduce_max",
    "Identity": "(aliased; identity when it names a graph output)",
    "Constant": "const",
    "Cast": "cast (int64 -> int32, float64 -> fp32)",
    "Gather": "gather",
    "Shape": "folded to a constant (static shapes)",
    "Size": "folded to a constant (static shapes)",
    "Resize": "upsample_nearest_neighbor / upsample_bilinear / resize_bilinear, chosen by weights; else fix-resize's exact lowering",
    "Upsample": "as Resize (fix-resize upgrades it first)",
}


def _attr(node: onnx.NodeProto, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _ceil_mode_matters(scope: Scope, node: onnx.NodeProto) -> bool:
    """True when a pooling node's ceil_mode gives another output size than floor mode (or that is unknown)."""
    shape = scope.lookup_shape(node.input[0])
    kernel = list(_attr(node, "kernel_shape", []))
    if shape is None or not kernel or not all(isinstance(d, int) for d in shape[2:]):
        return True
    k = len(kernel)
    strides = list(_attr(node, "strides", [1] * k))
    pads = list(_attr(node, "pads", [0] * 2 * k))
    if _attr(node, "auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"VALID", "VALID"):
        return True
    for i in range(k):
        span = int(shape[2 + i]) + pads[i] + pads[k + i] - kernel[i]
        if span % strides[i]:
            return True
    return False


def variant_problem(scope: Scope, node: onnx.NodeProto, is_static) -> str | None:
    """Why a node of a supported op type still cannot be translated (a variant Core ML has no op for)."""
    op = node.op_type
    if op == "MaxPool":
        if any(d != 1 for d in _attr(node, "dilations", [])):
            return "dilations"
        if len(node.output) > 1 and node.output[1]:
            return "Indices output"
    if op in ("MaxPool", "AveragePool") and _attr(node, "ceil_mode", 0) and _ceil_mode_matters(scope, node):
        return "ceil_mode=1"
    if op == "BatchNormalization" and _attr(node, "training_mode", 0):
        return "training_mode=1"
    if op in ("Conv", "ConvTranspose") and len(node.input) > 1 and not is_static(node.input[1]):
        return "weights computed at run time"
    if op == "ConvTranspose" and len(node.input) > 2 and node.input[2] and not is_static(node.input[2]):
        return "bias computed at run time"
    if op == "BatchNormalization" and not all(is_static(n) for n in node.input[1:5]):
        return "statistics computed at run time"
    if op == "Pad":
        mode = _attr(node, "mode", b"constant")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        if mode not in ("constant", "reflect", "edge"):
            return f"mode={mode}"
    return None


def check_coverage(view: ModelView) -> None:
    """Raise ``UnsupportedOpError`` listing every op (with its nodes) the exporter cannot translate."""
    scope = view.scopes[0]
    problems: dict[str, list[str]] = {}

    # Tensors that depend on input DATA (not just on input shapes): anything else is a constant once the
    # input shapes are static (Shape/Size arithmetic), and the exporter folds it whatever its op type.
    graph = scope.source if scope.source is not None else view.model.graph  # scope.graph: a weight-free copy
    initializers = {t.name for t in graph.initializer}
    data = {vi.name for vi in graph.input if vi.name not in initializers}
    for node in graph.node:
        if node.op_type.startswith("Random") or node.op_type in ("Bernoulli", "Multinomial") or node.op_type not in ("Shape", "Size") and any(i in data for i in node.input if i) or any(_reads_outer(sub, data) for _, sub in subgraphs(node)):
            data.update(o for o in node.output if o)

    def is_static(name: str) -> bool:
        return not name or name not in data

    for k, node in enumerate(graph.node):
        label = node.name or f"{node.op_type}_{k}"
        domain = node.domain if node.domain not in ("", "ai.onnx") else ""
        key = None
        if domain:
            key = f"{domain}.{node.op_type}"
        elif node.op_type not in SUPPORTED_OPS:
            outputs = [o for o in node.output if o]
            if not outputs or any(o in data for o in outputs) or list(subgraphs(node)):
                key = node.op_type
        else:
            variant = variant_problem(scope, node, is_static)
            if variant is not None:
                key = f"{node.op_type}({variant})"
        if key is not None:
            problems.setdefault(key, []).append(label)
    if problems:
        parts = [f"{op} ({', '.join(nodes)})" for op, nodes in problems.items()]
        raise UnsupportedOpError("unsupported ONNX ops for Core ML: " + "; ".join(parts))


def _reads_outer(graph: onnx.GraphProto, names: set[str]) -> bool:
    """Whether a subgraph (If/Loop body) reads one of ``names`` from the enclosing scope."""
    for node in graph.node:
        if any(i in names for i in node.input):
            return True
        if any(_reads_outer(sub, names) for _, sub in subgraphs(node)):
            return True
    return False


def supported_ops_markdown() -> str:
    """The README table of supported ops."""
    lines = ["| ONNX op | Core ML (MIL) |", "|---|---|"]
    lines += [f"| {op} | {what} |" for op, what in SUPPORTED_OPS.items()]
    return "\n".join(lines)


__all__ = ["SUPPORTED_OPS", "check_coverage", "subgraphs", "supported_ops_markdown"]
