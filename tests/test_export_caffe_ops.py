"""The Caffe compositions of ops BVLC has no single layer for: each exported file, run by the reference
evaluator, equals ONNX Runtime on random inputs (<= 1e-5 relative, float32 rounding)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper as oh

from rewriter.caffe import export_caffe
from rewriter.errors import UnsupportedOpError
from tests.test_export_caffe import BVLC_TYPES, _check, _model

_R = np.random.default_rng(11)
_G = _R.standard_normal(5).astype(np.float32)
_B = _R.standard_normal(5).astype(np.float32)


def _one(op: str, shape, inits=None, extra_inputs=(), opset: int = 13, **attrs) -> onnx.ModelProto:
    node = oh.make_node(op, ["x", *extra_inputs], ["y"], **attrs)
    return _model([node], [("x", list(shape))], ["y"], inits, opset=opset)


_CASES = {
    "hard_sigmoid": (_one("HardSigmoid", [2, 3, 4, 5], alpha=0.3, beta=0.4), {"Power", "ReLU", "Eltwise"}),
    "hard_swish": (_one("HardSwish", [1, 3, 8, 8], opset=14), {"Eltwise", "DummyData"}),
    "relu6": (_one("Clip", [1, 3, 4, 5], {"lo": np.float32(0), "hi": np.float32(6)}, ["lo", "hi"]), {"ReLU"}),
    "clip_both": (_one("Clip", [1, 3, 4, 5], {"lo": np.float32(-0.5), "hi": np.float32(0.7)}, ["lo", "hi"]),
                  {"Eltwise", "DummyData"}),
    "clip_opset6": (_one("Clip", [1, 3, 4, 5], opset=6, min=-1.0, max=1.0), {"Eltwise"}),
    "instance_norm": (
        _one("InstanceNormalization", [2, 5, 6, 7], {"g": _G, "b": _B}, ["g", "b"], epsilon=1e-3),
        {"Reduction", "Scale", "Bias"},
    ),
    "layer_norm": (
        _one("LayerNormalization", [2, 7, 5], {"g": _G, "b": _B}, ["g", "b"], opset=17), {"Reduction", "Scale"}
    ),
    "layer_norm_two_axes": (
        _one("LayerNormalization", [2, 4, 5], {"g": _G}, ["g"], opset=17, axis=-2), {"Reduction", "Scale"}
    ),
    "layer_norm_channels_last": (
        _model(
            [
                oh.make_node("Relu", ["x"], ["r"]),
                oh.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 3, 1]),
                oh.make_node("LayerNormalization", ["t", "g", "b"], ["n"]),
                oh.make_node("Transpose", ["n"], ["y"], perm=[0, 3, 1, 2]),
            ],
            [("x", [2, 5, 3, 4])],
            ["y"],
            {"g": _G, "b": _B},
            opset=17,
        ),
        {"Convolution", "Tile", "Eltwise", "Scale"},
    ),
    "reduce_sum_trailing": (_one("ReduceSum", [2, 3, 4, 5], {"a": np.array([2, 3])}, ["a"]), {"Reduction"}),
    "reduce_sum_channels": (
        _one("ReduceSum", [2, 3, 4, 5], {"a": np.array([1])}, ["a"], keepdims=0), {"Convolution", "Reshape"}
    ),
    "reduce_sum_all": (_one("ReduceSum", [2, 3, 4]), {"Reduction"}),
    "reduce_mean_tokens": (_one("ReduceMean", [2, 6, 5], axes=[-1], keepdims=1), {"Reduction", "Reshape"}),
    "reduce_mean_channels": (_one("ReduceMean", [2, 6, 4, 3], axes=[1]), {"Convolution"}),
    "expand_rank": (_one("Expand", [3, 1, 5], {"s": np.array([2, 3, 4, 5])}, ["s"]), {"Reshape", "Tile"}),
    "expand_same_rank": (_one("Expand", [1, 3, 1, 1], {"s": np.array([2, 3, 4, 4])}, ["s"]), {"Tile"}),
    "gather_runs": (
        _one("Gather", [2, 6, 4], {"i": np.array([4, 5, 0, 1, 1, -1])}, ["i"], axis=1), {"Slice", "Concat"}
    ),
    "gather_scalar": (_one("Gather", [2, 6, 4], {"i": np.array(2)}, ["i"], axis=2), {"Slice", "Reshape"}),
    "gather_matrix": (_one("Gather", [6, 4], {"i": np.array([[0, 3], [5, 5]])}, ["i"]), {"Slice", "Reshape"}),
}


@pytest.mark.parametrize("case", sorted(_CASES))
def test_composition_equals_onnx_runtime(case: str, tmp_path: Path) -> None:
    model, layers = _CASES[case]
    result = _check(model, tmp_path)
    assert layers <= set(result.layers), result.layers
    assert set(result.layers) <= BVLC_TYPES


def test_clamps_are_exact_at_the_bounds(tmp_path: Path) -> None:
    """The bounds themselves and values beyond them come out exactly (no 1 - (1 - x) rounding)."""
    model = _one("HardSigmoid", [1, 1, 1, 7], alpha=1.0, beta=0.0)
    result = export_caffe(model, tmp_path / "h.prototxt")
    from rewriter.caffe.reference import load

    x = np.array([-2, -0.0, 1e-8, 0.3, 1 - 1e-7, 1, 3], np.float32).reshape(1, 1, 1, 7)
    got = load(result.prototxt, result.caffemodel).forward({"x": x})["y"]
    np.testing.assert_array_equal(got, np.clip(x, 0, 1))


def test_a_product_of_two_tensors_is_refused_with_the_reason(tmp_path: Path) -> None:
    model = _model([oh.make_node("MatMul", ["x", "x"], ["m"])], [("x", [1, 3, 3, 3])], ["m"])
    with pytest.raises(UnsupportedOpError) as info:
        export_caffe(model, tmp_path / "r.prototxt")
    assert "MatMul (m): a product of two tensors" in str(info.value)


def test_layout_change_is_reported_in_json_and_prototxt(tmp_path: Path) -> None:
    """tf2onnx's NHWC graph: the Caffe blobs keep the ONNX names in NCHW, and every result says so."""
    import json

    from tests.conftest import MODELS

    result = export_caffe(MODELS / "tf2onnx13_image_resize_bilinear_x2.onnx", tmp_path / "t.prototxt")
    doc = json.loads(json.dumps(result.to_json()))
    assert doc["io_permutations"] == {"x": [0, 3, 1, 2], "y": [0, 3, 1, 2]}
    changes = {c["tensor"]: c for c in doc["layout_changes"]}
    assert changes["x"]["role"] == "input" and changes["x"]["convert"] == "np.transpose(x, [0, 3, 1, 2])"
    assert changes["y"]["role"] == "output" and changes["y"]["convert"] == "np.transpose(y, [0, 2, 3, 1])"
    header = [line for line in result.prototxt.read_text().splitlines() if line.startswith("# layout:")]
    assert len(header) == 2 and "feed np.transpose(x, [0, 3, 1, 2])" in header[0]
    plain = export_caffe(_one("Relu", [1, 3, 4, 4]), tmp_path / "p.prototxt")
    assert plain.to_json()["layout_changes"] == [] and "# layout:" not in plain.prototxt.read_text()
