"""Recognise upsampling that is not spelled as Resize, and rewrite it as the canonical Resize.

Exporters write nearest upsampling in other ops: Keras ``UpSampling2D`` through tf2onnx as
Unsqueeze/Tile/Reshape (NHWC), PyTorch ``nearest-exact`` through the dynamo exporter as Transpose/GatherND
of computed indices, ``repeat_interleave`` as Tile/Expand + Reshape or Gather of constant indices, a
channel-repeated tensor through DepthToSpace. This graph-level step runs before the per-Resize ladder (so
``inspect``, ``check`` and ``fix-resize`` see the same nodes) and replaces each such region of the main
graph by one Resize, which every later pass and exporter then handles like any other.

Nothing is decided from op names (``rewriter.regions`` only collects candidates: data-movement ops between
one tensor x and one tensor y, static parameters, no intermediate used elsewhere). A candidate is rewritten
only when, in order:
1. ONNX Runtime, running the region alone on an index-coded input, shows every output element is a copy of
   one input element and the copy map is one index table per axis (a symbolic dimension, e.g. the batch,
   is run at two lengths and must be copied through unchanged);
2. every axis grows or stays the identity, and one canonical nearest spelling (``canonical_rules``, in the
   onnx target's order of preference) has exactly those index tables as its ORT weights;
3. the Resize of that spelling, described by the same parser as any input model (``describe_spelling``),
   has the tables' one-hot matrices as its weights on every axis (the proof every rewrite passes);
4. that Resize and the region, both run in ONNX Runtime on the index-coded input and seeded random inputs,
   give identical outputs.
Exact because a nearest Resize is a per-axis copy map, and the two maps were shown equal element by element.
Models below opset 11 (no Resize-11) and regions inside subgraphs are left as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from rewriter.graph import ModelView, fresh_name
from rewriter.ort_runtime import SEEDS, random_input, relative_error, session
from rewriter.regions import Region, concrete, find_regions, index_map, region_model, separable_tables
from rewriter.sampling import F32, AxisWeights, ort_axis_weights, pick_weights, scaled_lengths
from rewriter.spelling import Spelling, describe_spelling, resize_node, single_node_model
from rewriter.splice import RULE_KEY, SOURCE_KEY, drop_dead_producers, unique_names
from rewriter.targets.onnx import canonical_rules

RECOGNIZE = "recognize-upsampling"
SYMBOL_LENGTHS = (2, 3)  # a symbolic dimension is tried at two lengths: the copy map must not depend on it


@dataclass(frozen=True)
class Recognition:
    """One region rewritten as a Resize: what it was, the spelling proved for it, and its measured error."""

    region: Region
    spelling: Spelling
    resize_name: str
    tensors: tuple[str, ...]  # the Resize's constant inputs
    max_error: float

    @property
    def was(self) -> str:
        return f"recognised upsampling: {self.region.description}"

    def to_json(self) -> dict:
        return {"ops": [n.op_type for n in self.region.nodes], "nodes": list(self.region.node_names), "resize": self.spelling.label()}


def recognize_upsampling(view: ModelView, input_shapes: dict[str, tuple[int, ...]] | None = None, *,
                         copy: bool = False) -> tuple[ModelView, dict[str, Recognition]]:
    """Rewrite every provable upsampling region of ``view.model`` (of a copy with ``copy``) as a Resize.

    Returns the view of the rewritten model (``view`` itself when nothing was recognised) and the
    recognitions by the output tensor of their Resize node.
    """
    if view.opset < 11:
        return view, {}
    proved: list[tuple[Region, Spelling, float]] = []
    used: set[int] = set()
    for region in find_regions(view):
        if used & set(region.positions):
            continue
        outcome = recognize_region(view, region)
        if isinstance(outcome, tuple):
            proved.append((region, *outcome))
            used.update(region.positions)
    if not proved:
        return view, {}
    model = view.model
    if copy:
        model = onnx.ModelProto()
        model.CopyFrom(view.model)
    found = _splice(view, model, proved)
    return ModelView.build(model, view.base_dir, input_shapes, view.input_values or None), found


def recognize_region(view: ModelView, region: Region) -> tuple[Spelling, float] | str:
    """The canonical spelling the region computes and its measured error (0.0), or why it is not one."""
    symbols = sorted({str(d) for d in region.x_shape if isinstance(d, str)})
    tables: list[np.ndarray] | None = None
    for length in SYMBOL_LENGTHS if symbols else (0,):
        lengths = {s: length for s in symbols}
        found = _tables(view, region, lengths)
        if isinstance(found, str):
            return found
        for axis, d in enumerate(region.x_shape):
            if isinstance(d, str) and not np.array_equal(found[axis], np.arange(length)):
                return f"axis {axis} ({d}) is not copied through unchanged"
        if tables is not None and not all(np.array_equal(a, b) for a, b, d in zip(tables, found, region.x_shape) if isinstance(d, int)):
            return "the copy map depends on a symbolic dimension"
        tables = found
    assert tables is not None
    spelling = _canonical(region, tables)
    if isinstance(spelling, str):
        return spelling
    if (reason := _prove(view, region, spelling, tables)) is not None:
        return f"rejected: {reason}"
    return _measure(view, region, spelling, {s: SYMBOL_LENGTHS[0] for s in symbols})


def _tables(view: ModelView, region: Region, lengths: dict[str, int]) -> list[np.ndarray] | str:
    model = region_model(view, region, lengths)
    if model is None:
        return "a parameter of the region is not static"
    x_shape = concrete(region.x_shape, lengths)
    source = index_map(model, x_shape)
    if isinstance(source, str):
        return source
    if source.shape != concrete(region.y_shape, lengths):
        return f"the region's output shape {source.shape} is not the analysed one"
    return separable_tables(source, x_shape)


def _changed_axes(region: Region, tables: list[np.ndarray]) -> list[int] | str:
    changed = []
    for axis, (n, m) in enumerate(zip(region.x_shape, region.y_shape)):
        if not isinstance(n, int) or n == m:
            if isinstance(n, int) and not np.array_equal(tables[axis], np.arange(n)):
                return f"axis {axis} is permuted, not resized"
            continue
        changed.append(axis)
    return changed


def _canonical(region: Region, tables: list[np.ndarray]) -> Spelling | str:
    """The most portable canonical nearest spelling whose ORT index tables are the region's, with its sizes."""
    changed = _changed_axes(region, tables)
    if isinstance(changed, str):
        return changed
    lengths = {a: (int(region.x_shape[a]), int(region.y_shape[a])) for a in changed}  # type: ignore[arg-type]
    wanted = {a: AxisWeights(pick_weights(tables[a], lengths[a][0])) for a in changed}
    rule = next((r for r in canonical_rules("nearest")
                 if all(ort_axis_weights(r, n, m, float(F32(m) / F32(n))).same_as(wanted[a]) for a, (n, m) in lengths.items())), None)
    if rule is None:
        return "no canonical nearest Resize copies the same elements"
    spelling = Spelling("nearest", rule.transform, rule.nearest_mode)
    if all(isinstance(d, int) for d in region.y_shape):
        return spelling.replace(sizes=tuple(int(d) for d in region.y_shape))  # type: ignore[arg-type]
    scales = []
    for axis in range(len(region.x_shape)):
        if axis not in lengths:
            scales.append(1.0)
            continue
        n, m = lengths[axis]
        if scaled_lengths(n, F32(m) / F32(n)) != (m, m):
            return "no portable scale gives the output length"
        scales.append(float(F32(m) / F32(n)))
    return spelling.replace(scales=tuple(scales))


def _opset(view: ModelView, spelling: Spelling) -> int:
    return max(view.opset, spelling.min_opset)


def _prove(view: ModelView, region: Region, spelling: Spelling, tables: list[np.ndarray]) -> str | None:
    """The Resize's own weights (the parser every input model goes through) against the index tables."""
    sem = describe_spelling(spelling, region.x_shape, _opset(view, spelling), region.elem_type)
    if tuple(sem.output_shape) != tuple(region.y_shape):
        return f"output shape {sem.output_shape} != {region.y_shape}"
    for axis, (n, m) in enumerate(zip(region.x_shape, region.y_shape)):
        if not isinstance(n, int) or n == m:
            if axis in sem.resized_axes:
                return f"it resizes axis {axis}, which the region copies unchanged"
            continue
        if not sem.axis_weights(axis).same_as(AxisWeights(pick_weights(tables[axis], n))):
            return f"axis {axis} weights differ"
    return None


def _measure(view: ModelView, region: Region, spelling: Spelling, lengths: dict[str, int]) -> tuple[Spelling, float] | str:
    """Region and Resize in ONNX Runtime on the index-coded and seeded random inputs: they must agree exactly."""
    opset = _opset(view, spelling)
    x_shape = concrete(region.x_shape, lengths)
    node, tensors = resize_node(spelling, "x", "y", "resize", opset)
    resize = single_node_model([node], tensors, x_shape, opset)
    before = region_model(view, region, lengths)
    assert before is not None  # it ran for the tables
    feeds = [np.arange(int(np.prod(x_shape)), dtype=np.float32).reshape(x_shape)]
    feeds += [random_input(x_shape, onnx.TensorProto.FLOAT, seed) for seed in SEEDS]
    try:
        a, b = session(before, optimize=False), session(resize, optimize=False)
        worst = max(relative_error(a.run(None, {region.x: x})[0], b.run(None, {"x": x})[0]) for x in feeds)
    except Exception as e:  # noqa: BLE001 - ORT refused the Resize: not rewritten
        return f"ONNX Runtime cannot run the Resize ({(str(e).strip().splitlines() or [type(e).__name__])[0]})"
    return (spelling, worst) if worst == 0.0 else f"rejected: the Resize differs from the region by {worst:.3g} in ONNX Runtime"


def _splice(view: ModelView, model: onnx.ModelProto, proved: list[tuple[Region, Spelling, float]]) -> dict[str, Recognition]:
    """Each region's nodes -> one Resize at the place of its last node; then what only fed them goes."""
    graph = model.graph
    taken = unique_names(view)
    at_last: dict[int, Recognition] = {}
    emitted: dict[int, tuple[onnx.NodeProto, list[onnx.TensorProto]]] = {}
    removed: set[int] = set()
    params: list[str] = []
    for region, spelling, error in proved:
        last = region.positions[-1]
        name = fresh_name(f"{graph.node[last].name or region.y}/resize", taken)
        node, tensors = resize_node(spelling, region.x, region.y, name, _opset(view, spelling))
        for tensor in tensors:
            fresh = fresh_name(tensor.name, taken)
            node.input[list(node.input).index(tensor.name)] = fresh
            tensor.name = fresh
        for key, value in ((RULE_KEY, RECOGNIZE), (SOURCE_KEY, ",".join(region.node_names))):
            entry = node.metadata_props.add()
            entry.key, entry.value = key, value
        emitted[last] = (node, tensors)
        at_last[last] = Recognition(region, spelling, name, tuple(t.name for t in tensors), error)
        removed.update(region.positions)
        params.extend(region.params)
    kept: list[onnx.NodeProto] = []
    for k, node in enumerate(graph.node):
        if k in emitted:
            kept.append(emitted[k][0])
            graph.initializer.extend(emitted[k][1])
        elif k not in removed:
            copy = onnx.NodeProto()
            copy.CopyFrom(node)  # the field is cleared below: keep no reference into it
            kept.append(copy)
    del graph.node[:]
    graph.node.extend(kept)
    drop_dead_producers(graph, params)
    return {r.region.y: r for r in at_last.values()}
