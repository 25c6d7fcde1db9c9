"""The semantics core on real exporter output: every Resize/Upsample in models/ is parsed into weights that
reproduce what ONNX Runtime computes for that node inside the real model, on the fixture's recorded input."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from rewriter.graph import ModelView
from rewriter.resize import describe_model, find_resizes
from tests.conftest import MODELS, record_stats

MANIFEST = {e["file"]: e for e in json.loads((MODELS / "manifest.json").read_text())}
FIXTURES = sorted(f for f in MANIFEST if f.endswith(".onnx"))


def _expose(model: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    existing = {o.name for o in exposed.graph.output}
    for name in names:
        if name not in existing:
            exposed.graph.output.append(onnx.ValueInfoProto(name=name))
    return exposed


@pytest.mark.parametrize("fixture", FIXTURES)
def test_resize_nodes_match_onnxruntime_in_context(fixture: str) -> None:
    entry = MANIFEST[fixture]
    path = MODELS / fixture
    model = onnx.load(str(path))
    io = np.load(MODELS / entry["io"])
    feeds = {name: io[name] for name in entry["inputs"]}
    view = ModelView.build(model, str(MODELS), {k: tuple(v.shape) for k, v in feeds.items()})
    found = find_resizes(view)
    assert len(found) == entry["resize_nodes"], f"{fixture}: found {len(found)} Resize/Upsample nodes"

    sems = describe_model(view)
    main_graph = [(sem, node) for sem, (scope, node) in zip(sems, found) if not scope.path]
    names = [n for _, node in main_graph for n in (node.input[0], node.output[0])]
    session = ort.InferenceSession(_expose(model, names).SerializeToString(), providers=["CPUExecutionProvider"])
    outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
    worst = 0.0
    for sem, node in main_graph:
        assert sem.resolved, f"{fixture}/{sem.name}: {sem.problems}"
        x, expected = outputs[node.input[0]], outputs[node.output[0]]
        assert sem.output_shape == expected.shape, f"{fixture}/{sem.name}: {sem.output_shape} vs {expected.shape}"
        actual = sem.apply(x)
        err = float(np.abs(actual - expected).max(initial=0.0)) / max(1.0, float(np.abs(expected).max(initial=0.0)))
        worst = max(worst, err)
        assert err <= 1e-6, f"{fixture}/{sem.name}: relative error {err:.3g}"
    record_stats(f"fixtures-in-context@{fixture}", {"cases": len(main_graph), "worst": worst})


EXPECTED = {
    # file: (op_type, opset, mode, effective transform, effective nearest_mode, size_source)
    "legacy_upsample7_linear.onnx": ("Upsample", 7, "linear", "asymmetric", None, "attribute"),
    "legacy_upsample9_nearest.onnx": ("Upsample", 9, "nearest", "asymmetric", "simple", "scales"),
    "legacy_resize10_linear_x1p5.onnx": ("Resize", 10, "linear", "asymmetric", None, "scales"),
    "legacy_resize11_tf_half_pixel_for_nn.onnx": ("Resize", 11, "nearest", "tf_half_pixel_for_nn", None, None),
    "legacy_resize19_half_pixel_symmetric.onnx": ("Resize", 19, "linear", "half_pixel_symmetric", None, "scales"),
    "torch_ts17_bilinear_x2.onnx": ("Resize", 13, "linear", "half_pixel", None, "scales"),
    "torch_ts17_nearest_x2.onnx": ("Resize", 13, "nearest", "asymmetric", "floor", "scales"),
    "torch_ts17_bilinear_ac_x2.onnx": ("Resize", 13, "linear", "align_corners", None, None),
    "torch_ts17_bilinear_size_like_dyn.onnx": ("Resize", 13, "linear", "half_pixel", None, "sizes"),
    "tf2onnx13_v1_nearest_half_pixel.onnx": ("Resize", 13, "nearest", "tf_half_pixel_for_nn", None, None),
    "tf2onnx13_v1_bilinear_align_corners.onnx": ("Resize", 13, "linear", "align_corners", None, None),
}


@pytest.mark.parametrize("fixture", sorted(EXPECTED))
def test_effective_semantics(fixture: str) -> None:
    op_type, opset, mode, transform, nearest, source = EXPECTED[fixture]
    (sem,) = describe_model(ModelView.build(onnx.load(str(MODELS / fixture), load_external_data=False), str(MODELS)))
    assert (sem.op_type, sem.opset, sem.mode, sem.transform) == (op_type, opset, mode, transform)
    if nearest is not None:
        assert sem.nearest_mode == nearest
    if source is not None:
        assert sem.size_source == source
