"""`rewriter export caffe`: the written prototxt + caffemodel, read back with the schema and run through the
numpy reference evaluator of Caffe's layers, must equal ONNX Runtime on the original model.

- every fixture: exported and exact (<= 1e-5 relative), or refused with one clear line;
- the fork flavors (Interp, Upsample) on the fixtures they apply to;
- the caffemodel bytes decode with the schema and re-encode identically;
- the evaluator's layers on tiny known cases (Caffe's own definitions);
- the layer translations (pads, pooling rounding, layouts, broadcasting) on small hand-built graphs;
- --border zero: the classic recipe's measured error, never called exact.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto as TP
from onnx import helper as oh
from onnx import numpy_helper as nh

from rewriter.caffe import export_caffe, measure_error, proto
from rewriter.caffe.reference import (
    CaffeNet,
    CaffeReferenceError,
    array_to_blob,
    forward_layer,
    layer_shapes,
    load,
    pooled_size,
)
from rewriter.errors import NotExactError, UnsupportedOpError, UsageError
from rewriter.sampling import bilinear_filler_kernel, conv_transpose_matrix
from tests.conftest import MODELS, record_stats

MANIFEST = {e["file"]: e for e in json.loads((MODELS / "manifest.json").read_text())}
FIXTURES = sorted(f for f in MANIFEST if f.endswith(".onnx"))
TOL = 1e-5
# Every fixture the bvlc export refuses, and why (anything else must export exactly).
REFUSED = {
    "legacy_if_resize.onnx": (UnsupportedOpError, "If (y)"),
    "legacy_loop_resize.onnx": (UnsupportedOpError, "Loop (y)"),
    "recog_dynamo_pixel_shuffle_repeat_not_upsampling.onnx": (UnsupportedOpError, "DepthToSpace (node_pixel_shuffle)"),
    "tf2onnx13_crop_and_resize.onnx": (NotExactError, "computed at run time"),
    "tf2onnx18_crop_and_resize.onnx": (NotExactError, "computed at run time"),
}
BVLC_TYPES = {
    "Input",
    "Convolution",
    "Deconvolution",
    "InnerProduct",
    "Pooling",
    "BatchNorm",
    "Scale",
    "Bias",
    "ReLU",
    "PReLU",
    "Sigmoid",
    "TanH",
    "ELU",
    "AbsVal",
    "Exp",
    "Log",
    "Power",
    "Eltwise",
    "Concat",
    "Slice",
    "Split",
    "Silence",
    "Crop",
    "Reshape",
    "Flatten",
    "Softmax",
    "Tile",
    "Reduction",
    "Dropout",
    "DummyData",
    "Parameter",
}


def _ort(model, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))


def _compare(result, model, feeds: dict[str, np.ndarray]) -> float:
    """Reference evaluator on the WRITTEN files vs ORT on the original; worst relative error."""
    want = _ort(model, feeds)
    caffe_feeds = {
        k: np.transpose(v, result.io_permutations[k]) if k in result.io_permutations else v for k, v in feeds.items()
    }
    got = load(result.prototxt, result.caffemodel).forward(caffe_feeds)
    assert sorted(got) == sorted(result.outputs) == sorted(want), (sorted(got), sorted(want))
    worst = 0.0
    for name, value in want.items():
        if name in result.io_permutations:
            value = np.transpose(value, result.io_permutations[name])
        assert got[name].shape == value.shape, (name, got[name].shape, value.shape)
        diff = float(np.abs(got[name].astype(np.float64) - value.astype(np.float64)).max(initial=0.0))
        worst = max(worst, diff / max(1.0, float(np.abs(value).max(initial=0.0))))
    return worst


def _roundtrip(result) -> None:
    data = Path(result.caffemodel).read_bytes()
    decoded = proto.parse_caffemodel(data)
    assert decoded.SerializeToString() == data
    text = proto.parse_prototxt(Path(result.prototxt).read_text())
    assert [layer.name for layer in decoded.layer] == [layer.name for layer in text.layer]
    assert all(len(layer.blobs) == 0 for layer in text.layer)  # weights only in the caffemodel


def _feeds(fixture: str) -> dict[str, np.ndarray]:
    entry = MANIFEST[fixture]
    io = np.load(MODELS / entry["io"])
    return {name: io[name] for name in entry["inputs"]}


# ------------------------------------------------------------------------------------------------
# Fixtures


@pytest.mark.parametrize("fixture", FIXTURES)
def test_fixture_exports_exactly_or_is_refused(fixture: str, tmp_path: Path) -> None:
    feeds = _feeds(fixture)
    prototxt = tmp_path / "net.prototxt"
    shapes = {k: v.shape for k, v in feeds.items()}
    if fixture in REFUSED:
        kind, needle = REFUSED[fixture]
        with pytest.raises(kind) as info:
            export_caffe(MODELS / fixture, prototxt, input_shapes=shapes)
        assert "\n" not in str(info.value) and needle in str(info.value), str(info.value)
        assert list(tmp_path.iterdir()) == []  # nothing written, no temp files left
        record_stats(f"caffe-export-refused@{fixture}", {"cases": 1})
        return
    result = export_caffe(MODELS / fixture, prototxt, input_shapes=shapes)
    assert result.caffemodel == prototxt.with_suffix(".caffemodel") and result.caffemodel.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.caffemodel", "net.prototxt"]
    assert set(result.layers) <= BVLC_TYPES, result.layers
    assert all(n.exact for n in result.fix.nodes) and result.border_error is None
    _roundtrip(result)
    worst = _compare(result, MODELS / fixture, feeds)
    assert worst <= TOL, f"{fixture}: {worst:.3g}"
    record_stats(f"caffe-export@{fixture}", {"cases": 1, "worst": worst})


def test_resize_layers_are_frozen_deconvolutions(tmp_path: Path) -> None:
    result = export_caffe(
        MODELS / "cnn_unet_ts17.onnx", tmp_path / "unet.prototxt", input_shapes={"image": (1, 3, 16, 20)}
    )
    net = proto.parse_prototxt(result.prototxt.read_text())
    deconvs = [layer for layer in net.layer if layer.type == "Deconvolution"]
    assert deconvs and all(not d.convolution_param.bias_term and [p.lr_mult for p in d.param] == [0.0] for d in deconvs)
    assert all(d.convolution_param.group == d.convolution_param.num_output for d in deconvs)
    assert set(result.resize_layers) == {"/Resize", "/Resize_1"}
    assert all("Deconvolution" in v and "Slice" in v for v in result.resize_layers.values()), result.resize_layers
    weights = {layer.name: layer for layer in proto.parse_caffemodel(result.caffemodel.read_bytes()).layer}
    for d in deconvs:
        (blob,) = weights[d.name].blobs
        assert list(blob.shape.dim)[:2] == [d.convolution_param.num_output, 1]


def test_tf2onnx_transposes_are_removed(tmp_path: Path) -> None:
    feeds = _feeds("cnn_keras_unet_tf2onnx13.onnx")
    result = export_caffe(MODELS / "cnn_keras_unet_tf2onnx13.onnx", tmp_path / "k.prototxt")
    assert result.io_permutations == {"image": (0, 3, 1, 2)}  # NHWC input declared as NCHW
    assert result.inputs == {"image": (1, 3, 16, 16)}
    assert any("np.transpose(x, [0, 3, 1, 2])" in w for w in result.warnings)
    assert _compare(result, MODELS / "cnn_keras_unet_tf2onnx13.onnx", feeds) <= TOL
    # tf2onnx's Transpose -> Resize -> Transpose: the output stays in the Caffe (NCHW) layout
    result = export_caffe(MODELS / "tf2onnx13_image_resize_bilinear_x2.onnx", tmp_path / "t.prototxt")
    assert result.io_permutations == {"x": (0, 3, 1, 2), "y": (0, 3, 1, 2)}
    assert (
        _compare(
            result,
            MODELS / "tf2onnx13_image_resize_bilinear_x2.onnx",
            _feeds("tf2onnx13_image_resize_bilinear_x2.onnx"),
        )
        <= TOL
    )


def test_dynamic_shapes_need_input_shape(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--input-shape x="):
        export_caffe(MODELS / "torch_ts17_bilinear_x2_dynbatch.onnx", tmp_path / "d.prototxt")
    assert list(tmp_path.iterdir()) == []


def test_bad_options(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--flavor"):
        export_caffe(MODELS / "torch_ts17_bilinear_x2.onnx", tmp_path / "a.prototxt", flavor="ssd")
    with pytest.raises(UsageError, match="--border"):
        export_caffe(MODELS / "torch_ts17_bilinear_x2.onnx", tmp_path / "a.prototxt", border="reflect")
    with pytest.raises(UsageError, match="does not exist"):
        export_caffe(MODELS / "torch_ts17_bilinear_x2.onnx", tmp_path / "missing" / "a.prototxt")


def test_refusal_keeps_existing_files(tmp_path: Path) -> None:
    prototxt = tmp_path / "net.prototxt"
    prototxt.write_text("old")
    with pytest.raises(UnsupportedOpError):
        export_caffe(MODELS / "legacy_if_resize.onnx", prototxt)
    assert prototxt.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["net.prototxt"]


# ------------------------------------------------------------------------------------------------
# Fork flavors


@pytest.mark.parametrize(
    "fixture",
    [
        "tf2onnx13_v1_bilinear_align_corners.onnx",
        "torch_ts17_bilinear_ac_x2.onnx",
        "torch_ts17_bilinear_ac_size8x12.onnx",
        "cnn_deeplab_ts13.onnx",
    ],
)
def test_interp_flavor(fixture: str, tmp_path: Path) -> None:
    feeds = _feeds(fixture)
    result = export_caffe(
        MODELS / fixture, tmp_path / "i.prototxt", flavor="interp", input_shapes={k: v.shape for k, v in feeds.items()}
    )
    assert result.layers.get("Interp", 0) >= 1
    if fixture == "cnn_deeplab_ts13.onnx":  # both align_corners resizes are Interp; the learned ConvTranspose stays
        assert result.layers["Interp"] == 2 and result.layers["Deconvolution"] == 1
    else:
        assert set(result.layers) <= {"Input", "Interp"}
    text = result.prototxt.read_text()
    assert "interp_param" in text and "Interp layer" in text  # the header says a fork is needed
    net = proto.parse_prototxt(text)
    for layer in net.layer:
        if layer.type == "Interp":
            p = layer.interp_param
            assert p.HasField("height") and p.HasField("width") and not p.HasField("zoom_factor")
    _roundtrip(result)
    worst = _compare(result, MODELS / fixture, feeds)
    assert worst <= TOL
    record_stats(f"caffe-export-interp@{fixture}", {"cases": 1, "worst": worst})


@pytest.mark.parametrize(
    "fixture",
    [
        "torch_ts17_nearest_x2.onnx",
        "torch_dynamo_nearest_x3.onnx",
        "cnn_fpn_ts17.onnx",
        "torch_ts9_nearest_x2.onnx",
        "legacy_upsample7_nearest.onnx",
    ],
)
def test_upsample_flavor(fixture: str, tmp_path: Path) -> None:
    feeds = _feeds(fixture)
    result = export_caffe(
        MODELS / fixture,
        tmp_path / "u.prototxt",
        flavor="upsample",
        input_shapes={k: v.shape for k, v in feeds.items()},
    )
    net = proto.parse_prototxt(result.prototxt.read_text())
    ups = [layer for layer in net.layer if layer.type == "Upsample"]
    if fixture == "legacy_upsample7_nearest.onnx":  # factors 2 x 3: one-scale Upsample cannot, a ones-kernel deconv can
        assert not ups and result.layers["Deconvolution"] == 1 and any("ones-kernel" in w for w in result.warnings)
    else:
        assert ups and all(u.upsample_param.scale in (2, 3) for u in ups)
    worst = _compare(result, MODELS / fixture, feeds)
    assert worst <= TOL
    record_stats(f"caffe-export-upsample@{fixture}", {"cases": 1, "worst": worst})


def test_flavor_without_a_matching_node_is_plain_bvlc(tmp_path: Path) -> None:
    result = export_caffe(MODELS / "torch_ts17_bilinear_x2.onnx", tmp_path / "h.prototxt", flavor="interp")
    assert "Interp" not in result.layers and set(result.layers) <= BVLC_TYPES  # half_pixel is not Interp's grid


# ------------------------------------------------------------------------------------------------
# --border zero: the classic recipe, measured


def _resize_model(f: int, h: int = 8, w: int = 9) -> onnx.ModelProto:
    scales = nh.from_array(np.array([1, 1, f, f], dtype=np.float32), "scales")
    node = oh.make_node(
        "Resize", ["x", "", "scales"], ["y"], mode="linear", coordinate_transformation_mode="half_pixel"
    )
    graph = oh.make_graph(
        [node],
        "up",
        [oh.make_tensor_value_info("x", TP.FLOAT, [1, 3, h, w])],
        [oh.make_tensor_value_info("y", TP.FLOAT, None)],
        [scales],
    )
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)])


@pytest.mark.parametrize("f", [2, 3, 4])
def test_border_zero_is_measured_and_never_exact(f: int, tmp_path: Path) -> None:
    model = _resize_model(f)
    exact = export_caffe(model, tmp_path / "e.prototxt")
    exact_error, exact_relative = measure_error(model, exact)
    classic = export_caffe(model, tmp_path / "z.prototxt", border="zero")
    assert classic.border_error is not None and classic.border_error > 0.1 and exact_error < 1e-5
    assert not all(n.exact for n in classic.fix.nodes)
    assert any("not exact" in w for w in classic.warnings)
    net = proto.parse_prototxt(classic.prototxt.read_text())
    k = 2 * f - f % 2
    kernels = []  # one 2-D or two separable 1-D Deconvolutions, kernel 2f - f%2, stride f, pad ceil((f-1)/2)
    for layer in net.layer:
        if layer.type == "Deconvolution":
            p = layer.convolution_param
            kh, kw = (p.kernel_h, p.kernel_w) if p.HasField("kernel_h") else (p.kernel_size[0], p.kernel_size[0])
            sh, sw = (p.stride_h, p.stride_w) if p.HasField("stride_h") else (p.stride[0], p.stride[0])
            ph, pw = (p.pad_h, p.pad_w) if p.HasField("pad_h") else ((p.pad[0], p.pad[0]) if p.pad else (0, 0))
            kernels += [(kh, sh, ph), (kw, sw, pw)]
    assert sorted(set(kernels) - {(1, 1, 0)}) == [(k, f, f // 2)], kernels
    assert "Slice" not in classic.layers  # no edge replication, no crop
    record_stats(f"caffe-border@x{f}", {"cases": 1, "worst": exact_relative, "classic_max_abs": classic.border_error})


# ------------------------------------------------------------------------------------------------
# Reference evaluator: Caffe's definitions on tiny known cases


def _layer(type_: str, params: dict | None = None, bottoms=("x",), tops=("y",)):
    from rewriter.caffe.net import fill

    layer = proto.LayerParameter(name="l", type=type_)
    layer.bottom.extend(bottoms)
    layer.top.extend(tops)
    if params:
        fill(getattr(layer, proto.PARAM_FIELD[type_]), params)
    return layer


def test_deconvolution_output_size_and_values() -> None:
    layer = _layer(
        "Deconvolution", {"num_output": 1, "bias_term": False, "kernel_size": [4], "stride": [2], "pad": [1]}
    )
    assert layer_shapes(layer, [(1, 1, 5, 6)])[0] == [(1, 1, 10, 12)]  # 2*(n-1) + 4 - 2*1
    dil = _layer(
        "Deconvolution",
        {"num_output": 2, "bias_term": True, "kernel_size": [3], "stride": [2], "dilation": [2], "pad": [1]},
    )
    assert layer_shapes(dil, [(1, 1, 5, 5)]) == ([(1, 2, 11, 11)], [(1, 2, 3, 3), (2,)])  # 2*(5-1) + ext 5 - 2
    # values: a 1-D transposed convolution (y[o] = sum_i x[i] k[o + p - i s]) per axis
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 1, 5, 6)).astype(np.float32)
    kernel = rng.standard_normal(4)
    w = np.outer(kernel, kernel).reshape(1, 1, 4, 4).astype(np.float32)
    (y,) = forward_layer(layer, [x], [w])
    mh = conv_transpose_matrix(kernel.astype(np.float32), 2, 1, 1, 5)
    mw = conv_transpose_matrix(kernel.astype(np.float32), 2, 1, 1, 6)
    np.testing.assert_allclose(y[0, 0], mh @ x[0, 0].astype(np.float64) @ mw.T, atol=1e-5)


@pytest.mark.parametrize("f", [2, 3, 4])
def test_bilinear_filler_deconv_is_zero_border_half_pixel_upsampling(f: int) -> None:
    """Caffe's documented recipe equals skimage.transform.rescale(img, f, order=1, mode='constant', cval=0)."""
    img = np.array([[1.0, 2.0, 4.0, -1.0], [0.5, -2.0, 3.0, 1.0], [2.0, 0.0, 1.0, 5.0]], dtype=np.float32)

    def zero_border(v: np.ndarray) -> np.ndarray:  # half-pixel linear interpolation against zeros outside
        n = len(v)
        padded = np.concatenate([[0.0], v, [0.0]])
        x = (np.arange(f * n) + 0.5) / f - 0.5
        lo = np.floor(x).astype(int)
        frac = x - lo
        return (1 - frac) * padded[lo + 1] + frac * padded[lo + 2]

    expected = np.apply_along_axis(zero_border, 0, np.apply_along_axis(zero_border, 1, img.astype(np.float64)))
    k = 2 * f - f % 2
    layer = _layer(
        "Deconvolution",
        {
            "num_output": 1,
            "group": 1,
            "bias_term": False,
            "kernel_size": [k],
            "stride": [f],
            "pad": [int(np.ceil((f - 1) / 2))],
        },
    )
    taps = bilinear_filler_kernel(k)
    (y,) = forward_layer(layer, [img[None, None]], [np.outer(taps, taps)[None, None].astype(np.float32)])
    np.testing.assert_allclose(y[0, 0], expected, atol=1e-6)
    if f == 2:  # a hand-computed row: [1, 2, 4] -> [.75, 1.25, 1.75, 2.5, 3.5, 3]
        np.testing.assert_allclose(zero_border(np.array([1.0, 2.0, 4.0])), [0.75, 1.25, 1.75, 2.5, 3.5, 3.0])


def test_pooling_rounds_up_and_clips_the_last_window() -> None:
    assert pooled_size(10, 3, 2, 0) == 5  # ceil(7 / 2) + 1 (ONNX floor: 4)
    assert pooled_size(5, 2, 2, 1) == 3  # ceil(5 / 2) + 1 = 4, but the 4th window would start in the padding
    assert pooled_size(7, 3, 2, 1) == 4
    x = np.arange(25, dtype=np.float32).reshape(1, 1, 5, 5)
    mx = _layer("Pooling", {"pool": "MAX", "kernel_size": 2, "stride": 2})
    (y,) = forward_layer(mx, [x], [])
    np.testing.assert_array_equal(y[0, 0], [[6, 8, 9], [16, 18, 19], [21, 23, 24]])  # last window clipped
    ave = _layer("Pooling", {"pool": "AVE", "kernel_size": 3, "stride": 2, "pad": 1})
    (y,) = forward_layer(ave, [np.ones((1, 1, 4, 4), dtype=np.float32)], [])
    # 3 windows per axis: [-1, 2), [1, 4), [3, 6) clipped to size + pad = 5 for the divisor (3, 3, 2) and to
    # the image for the sum (2, 3, 1 ones)
    per_axis = np.array([2 / 3, 1.0, 1 / 2])
    np.testing.assert_allclose(y[0, 0], np.outer(per_axis, per_axis), rtol=1e-6)
    g = _layer("Pooling", {"pool": "AVE", "global_pooling": True})
    (y,) = forward_layer(g, [x], [])
    assert y.shape == (1, 1, 1, 1) and y[0, 0, 0, 0] == 12.0
    with pytest.raises(CaffeReferenceError, match="4 axes"):
        layer_shapes(mx, [(1, 1, 5)])


def test_batchnorm_uses_the_scale_factor_blob() -> None:
    x = np.array([[[[1.0]], [[4.0]]]], dtype=np.float32)  # N=1, C=2, 1x1
    layer = _layer("BatchNorm", {"use_global_stats": True, "eps": 0.0})
    assert layer_shapes(layer, [x.shape])[1] == [(2,), (2,), (1,)]
    (y,) = forward_layer(
        layer, [x], [np.array([2.0, 4.0], np.float32), np.array([8.0, 2.0], np.float32), np.array([2.0], np.float32)]
    )
    np.testing.assert_allclose(y.ravel(), [(1 - 1) / 2, (4 - 2) / 1])  # mean/s, var/s with s = 2
    (y,) = forward_layer(
        _layer("BatchNorm", {"eps": 1.0}),
        [x],
        [np.ones(2, np.float32), np.ones(2, np.float32), np.zeros(1, np.float32)],
    )
    np.testing.assert_allclose(y.ravel(), [1.0, 4.0])  # s == 0: factor 0 (mean 0, var 0)


def test_interp_and_upsample_layers() -> None:
    x = np.array([[[[0.0, 1.0], [2.0, 3.0]]]], dtype=np.float32)
    (y,) = forward_layer(_layer("Interp", {"height": 3, "width": 3}), [x], [])
    np.testing.assert_allclose(y[0, 0], [[0, 0.5, 1], [1, 1.5, 2], [2, 2.5, 3]])
    (y,) = forward_layer(_layer("Interp", {"zoom_factor": 3}), [x], [])
    assert y.shape == (1, 1, 4, 4)
    np.testing.assert_allclose(y[0, 0, 0], [0, 1 / 3, 2 / 3, 1], rtol=1e-6)
    (y,) = forward_layer(_layer("Interp", {"height": 2, "width": 2}), [x], [])
    np.testing.assert_array_equal(y, x)  # same size: a copy
    (y,) = forward_layer(_layer("Interp", {"height": 1, "width": 3}), [x], [])
    np.testing.assert_allclose(y[0, 0], [[0, 0.5, 1]])  # one output row samples x = 0
    with pytest.raises(CaffeReferenceError, match="either by zoom"):
        layer_shapes(_layer("Interp", {"height": 3, "width": 3, "zoom_factor": 2}), [x.shape])
    (y,) = forward_layer(_layer("Upsample", {"scale": 2}), [x], [])
    np.testing.assert_array_equal(y[0, 0], [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]])


def test_shape_layers() -> None:
    x = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    tops = forward_layer(_layer("Slice", {"axis": 2, "slice_point": [1, 3]}, tops=("a", "b", "c")), [x], [])
    assert [t.shape[2] for t in tops] == [1, 2, 1]
    np.testing.assert_array_equal(forward_layer(_layer("Concat", {"axis": 2}, bottoms=("a", "b", "c")), tops, [])[0], x)
    assert layer_shapes(_layer("Reshape", {"shape": {"dim": [0, -1]}}), [x.shape])[0] == [(2, 12)]
    assert layer_shapes(_layer("Reshape", {"shape": {"dim": [3, 1]}, "axis": 1, "num_axes": 1}), [x.shape])[0] == [
        (2, 3, 1, 4)
    ]
    assert layer_shapes(_layer("Flatten", {"axis": 1}), [(2, 3, 4, 5)])[0] == [(2, 60)]
    (y,) = forward_layer(_layer("Tile", {"axis": 1, "tiles": 2}), [x], [])
    np.testing.assert_array_equal(y, np.tile(x, (1, 2, 1)))
    ref = np.zeros((2, 2, 2), np.float32)
    (y,) = forward_layer(_layer("Crop", {"axis": 1, "offset": [1, 2]}, bottoms=("x", "r")), [x, ref], [])
    np.testing.assert_array_equal(y, x[:, 1:3, 2:4])
    with pytest.raises(CaffeReferenceError, match="evenly divide"):
        layer_shapes(_layer("Slice", {"axis": 1}, tops=("a", "b")), [x.shape])


def test_arithmetic_layers() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    s = rng.standard_normal((4, 5)).astype(np.float32)
    (y,) = forward_layer(_layer("Scale", {"axis": 2, "num_axes": 2}), [x], [s])
    np.testing.assert_allclose(y, x * s)
    (y,) = forward_layer(_layer("Scale", {"axis": 0}, bottoms=("x", "s")), [x, x[:, :, 0, 0].copy()], [])
    np.testing.assert_allclose(y, x * x[:, :, :1, :1])
    (y,) = forward_layer(_layer("Bias", {"axis": 1}), [x], [s[:3, 0].copy()])
    np.testing.assert_allclose(y, x + s[:3, 0].reshape(1, 3, 1, 1))
    (y,) = forward_layer(
        _layer("Eltwise", {"operation": "SUM", "coeff": [1.0, -2.0]}, bottoms=("a", "b")), [x, x * 2], []
    )
    np.testing.assert_allclose(y, -3 * x, rtol=1e-6)
    (y,) = forward_layer(_layer("Power", {"power": 2.0, "scale": 0.5, "shift": 1.0}), [x], [])
    np.testing.assert_allclose(y, (1 + 0.5 * x) ** 2, rtol=1e-5)
    (y,) = forward_layer(_layer("PReLU"), [x], [np.array([0.1, 0.2, 0.3], np.float32)])
    np.testing.assert_allclose(
        y, np.where(x > 0, x, x * np.array([0.1, 0.2, 0.3], np.float32).reshape(1, 3, 1, 1)), rtol=1e-6
    )
    ip = _layer("InnerProduct", {"num_output": 6, "axis": 3, "bias_term": False})
    w = rng.standard_normal((6, 5)).astype(np.float32)
    assert layer_shapes(ip, [x.shape]) == ([(2, 3, 4, 6)], [(6, 5)])
    np.testing.assert_allclose(forward_layer(ip, [x], [w])[0], x @ w.T, rtol=1e-5, atol=1e-6)


def test_net_checks_weight_shapes_like_caffe() -> None:
    net = proto.NetParameter(name="n")
    inp = net.layer.add(name="data", type="Input", top=["data"])
    inp.input_param.shape.add().dim.extend([1, 2, 3, 3])
    conv = net.layer.add(name="conv", type="Convolution", bottom=["data"], top=["out"])
    conv.convolution_param.num_output = 4
    conv.convolution_param.kernel_size.append(3)
    weights = proto.NetParameter(name="n")
    trained = weights.layer.add(name="conv", type="Convolution")
    array_to_blob(np.zeros((4, 2, 3, 3), np.float32), trained.blobs.add())
    with pytest.raises(CaffeReferenceError, match="Incompatible number of blobs"):
        CaffeNet(net, weights)
    array_to_blob(np.zeros((4, 2, 3, 2), np.float32), trained.blobs.add())
    with pytest.raises(CaffeReferenceError, match="shape mismatch"):
        CaffeNet(net, weights)
    del trained.blobs[1]
    array_to_blob(np.ones(4, np.float32), trained.blobs.add())
    out = CaffeNet(net, weights).forward({"data": np.zeros((1, 2, 3, 3), np.float32)})
    np.testing.assert_array_equal(out["out"], np.ones((1, 4, 1, 1)))


# ------------------------------------------------------------------------------------------------
# Layer translations on hand-built graphs


def _model(nodes, inputs, outputs, inits=None, opset: int = 13) -> onnx.ModelProto:
    graph = oh.make_graph(
        nodes,
        "g",
        [oh.make_tensor_value_info(n, TP.FLOAT, s) for n, s in inputs],
        [oh.make_tensor_value_info(n, TP.FLOAT, None) for n in outputs],
        [nh.from_array(np.asarray(v), k) for k, v in (inits or {}).items()],
    )
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)])


def _check(model: onnx.ModelProto, tmp_path: Path, **kwargs):
    rng = np.random.default_rng(0)
    init = {t.name for t in model.graph.initializer}
    feeds = {
        i.name: rng.standard_normal([d.dim_value for d in i.type.tensor_type.shape.dim]).astype(np.float32)
        for i in model.graph.input
        if i.name not in init
    }
    result = export_caffe(model, tmp_path / "m.prototxt", **kwargs)
    _roundtrip(result)
    worst = _compare(result, model, feeds)
    assert worst <= TOL, worst
    return result


_R = np.random.default_rng(7)
_W = _R.standard_normal((4, 3, 3, 3)).astype(np.float32)
_CASES = {
    # Caffe pads symmetrically: SAME (0/1) pads -> zero DummyData at the end; a larger begin pad -> Slice
    "conv_same_upper": (
        _model(
            [oh.make_node("Conv", ["x", "W"], ["y"], kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER")],
            [("x", [1, 3, 16, 15])],
            ["y"],
            {"W": _W},
        ),
        {"DummyData", "Convolution"},
    ),
    "conv_begin_pad": (
        _model(
            [oh.make_node("Conv", ["x", "W"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[2, 1, 0, 0])],
            [("x", [1, 3, 9, 10])],
            ["y"],
            {"W": _W},
        ),
        {"Convolution", "Slice"},
    ),
    "conv1d_group": (
        _model(
            [oh.make_node("Conv", ["x", "W"], ["y"], kernel_shape=[3], pads=[1, 1], group=3, dilations=[2])],
            [("x", [2, 3, 9])],
            ["y"],
            {"W": _R.standard_normal((6, 1, 3)).astype(np.float32)},
        ),
        {"Convolution"},
    ),
    # ONNX pooled sizes round down, Caffe's up: the extra row/column is sliced off
    "maxpool_floor": (
        _model(
            [oh.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])],
            [("x", [1, 3, 10, 11])],
            ["y"],
        ),
        {"Pooling", "Slice"},
    ),
    "maxpool_ceil": (
        _model(
            [oh.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)],
            [("x", [1, 3, 10, 11])],
            ["y"],
        ),
        {"Pooling"},
    ),
    # count_include_pad=0 at padded borders: Caffe divides by the padded window, a constant Scale fixes it
    "avgpool_exclude_pad": (
        _model(
            [oh.make_node("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])],
            [("x", [1, 3, 10, 11])],
            ["y"],
        ),
        {"Pooling", "Scale"},
    ),
    "avgpool_same": (
        _model(
            [oh.make_node("AveragePool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2], auto_pad="SAME_UPPER")],
            [("x", [1, 3, 9, 11])],
            ["y"],
        ),
        {"Pooling"},
    ),
    "global_and_reduce": (
        _model(
            [
                oh.make_node("GlobalMaxPool", ["x"], ["g"]),
                oh.make_node("ReduceMean", ["x"], ["r"], axes=[2, 3], keepdims=0),
                oh.make_node("Flatten", ["g"], ["f"]),
                oh.make_node("Add", ["f", "r"], ["y"]),
            ],
            [("x", [2, 3, 5, 7])],
            ["y"],
        ),
        {"Pooling", "Eltwise"},
    ),
    "conv_transpose_asymmetric": (
        _model(
            [
                oh.make_node(
                    "ConvTranspose",
                    ["x", "W", "B"],
                    ["y"],
                    kernel_shape=[3, 3],
                    strides=[2, 2],
                    pads=[0, 1, 2, 2],
                    output_padding=[1, 0],
                )
            ],
            [("x", [1, 3, 5, 6])],
            ["y"],
            {"W": _R.standard_normal((3, 2, 3, 3)).astype(np.float32), "B": _R.standard_normal(2).astype(np.float32)},
        ),
        {"Deconvolution", "Slice"},
    ),
    "batchnorm_activations": (
        _model(
            [
                oh.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["a"], epsilon=1e-3),
                oh.make_node("PRelu", ["a", "sl"], ["p"]),
                oh.make_node("LeakyRelu", ["p"], ["l"], alpha=0.2),
                oh.make_node("Elu", ["l"], ["e"], alpha=0.7),
                oh.make_node("Sigmoid", ["e"], ["s1"]),
                oh.make_node("Tanh", ["s1"], ["y"]),
            ],
            [("x", [2, 3, 4, 5])],
            ["y"],
            {
                "s": _R.random(3).astype(np.float32) + 0.5,
                "b": _R.standard_normal(3).astype(np.float32),
                "m": _R.standard_normal(3).astype(np.float32),
                "v": _R.random(3).astype(np.float32) + 0.5,
                "sl": _R.random((3, 1, 1)).astype(np.float32),
            },
        ),
        {"BatchNorm", "Scale", "PReLU", "ReLU", "ELU", "Sigmoid", "TanH"},
    ),
    "prelu_shared_slope": (
        _model(
            [oh.make_node("PRelu", ["x", "sl"], ["y"])],
            [("x", [2, 3, 4, 5])],
            ["y"],
            {"sl": np.array([0.3], np.float32)},
        ),
        {"PReLU"},
    ),
    "broadcast_arithmetic": (
        _model(
            [
                oh.make_node("Mul", ["x", "c1"], ["a"]),
                oh.make_node("Add", ["a", "c2"], ["b"]),
                oh.make_node("Sub", ["c3", "b"], ["c"]),
                oh.make_node("Div", ["c", "c4"], ["d"]),
                oh.make_node("Sub", ["d", "x"], ["e"]),
                oh.make_node("Max", ["e", "x"], ["f"]),
                oh.make_node("Min", ["f", "d"], ["g"]),
                oh.make_node("Sum", ["g", "x", "a"], ["y"]),
            ],
            [("x", [2, 3, 4, 5])],
            ["y"],
            {
                "c1": np.float32(2.5),
                "c2": _R.standard_normal((3, 1, 1)).astype(np.float32),
                "c3": _R.standard_normal((1, 5)).astype(np.float32),
                "c4": _R.standard_normal((4, 1)).astype(np.float32) + 3,
            },
        ),
        {"Power", "Bias", "Scale", "Eltwise"},
    ),
    "squeeze_excite": (
        _model(
            [
                oh.make_node("GlobalAveragePool", ["x"], ["p"]),
                oh.make_node("Sigmoid", ["p"], ["s"]),
                oh.make_node("Mul", ["x", "s"], ["y"]),
            ],
            [("x", [2, 3, 4, 5])],
            ["y"],
        ),
        {"Pooling", "Reshape", "Scale"},
    ),
    "gemm_softmax": (
        _model(
            [
                oh.make_node("Flatten", ["x"], ["f"]),
                oh.make_node("Gemm", ["f", "gw", "gb"], ["g"], transB=1, alpha=0.5),
                oh.make_node("Softmax", ["g"], ["y"], axis=1),
            ],
            [("x", [2, 3, 2, 2])],
            ["y"],
            {"gw": _R.standard_normal((7, 12)).astype(np.float32), "gb": _R.standard_normal(7).astype(np.float32)},
        ),
        {"Flatten", "InnerProduct", "Softmax"},
    ),
    "softmax_opset11_flattens": (
        _model([oh.make_node("Softmax", ["x"], ["y"], axis=1)], [("x", [2, 3, 2, 2])], ["y"], opset=11),
        {"Reshape", "Softmax"},
    ),
    "shape_ops": (
        _model(
            [
                oh.make_node("Split", ["x", "sp"], ["a", "b"], axis=1),
                oh.make_node("Concat", ["b", "a", "x"], ["c"], axis=1),
                oh.make_node("Slice", ["c", "st", "en", "ax"], ["d"]),
                oh.make_node("Pad", ["d", "pads"], ["e"], mode="constant"),
                oh.make_node("Pad", ["e", "pads"], ["f"], mode="edge"),
                oh.make_node("Tile", ["f", "reps"], ["g"]),
                oh.make_node("Reshape", ["g", "shp"], ["y"]),
            ],
            [("x", [1, 3, 4, 5])],
            ["y"],
            {
                "sp": np.array([1, 2], np.int64),
                "st": np.array([1, 0], np.int64),
                "en": np.array([4, -1], np.int64),
                "ax": np.array([2, 3], np.int64),
                "pads": np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64),
                "reps": np.array([1, 2, 1, 1], np.int64),
                "shp": np.array([2, -1], np.int64),
            },
        ),
        {"Slice", "Concat", "DummyData", "Tile", "Reshape"},
    ),
    # tf2onnx-style NHWC graph: every Transpose pair cancels, the Caffe graph is NCHW throughout
    "nhwc_transpose_pairs": (
        _model(
            [
                oh.make_node("Transpose", ["x"], ["t1"], perm=[0, 3, 1, 2]),
                oh.make_node("Conv", ["t1", "W3"], ["c1"], kernel_shape=[1, 1]),
                oh.make_node("Transpose", ["c1"], ["t2"], perm=[0, 2, 3, 1]),
                oh.make_node("Relu", ["t2"], ["r"]),
                oh.make_node("Add", ["r", "bias"], ["r2"]),
                oh.make_node("Transpose", ["r2"], ["t3"], perm=[0, 3, 1, 2]),
                oh.make_node("Conv", ["t3", "W3"], ["c2"], kernel_shape=[1, 1]),
                oh.make_node("Transpose", ["c2"], ["y"], perm=[0, 2, 3, 1]),
            ],
            [("x", [1, 4, 5, 3])],
            ["y"],
            {
                "W3": _R.standard_normal((3, 3, 1, 1)).astype(np.float32),
                "bias": _R.standard_normal(3).astype(np.float32),
            },
        ),
        {"Convolution", "ReLU", "Bias"},
    ),
    # a constant matrix along any axis of a permuted blob: InnerProduct(axis) on the last blob axis, else
    # Reshape (axis -> channels) + 1x1 Convolution + Reshape
    "matmul_in_nhwc_layout": (
        _model(
            [
                oh.make_node("Relu", ["x"], ["r"]),
                oh.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 3, 1]),
                oh.make_node("MatMul", ["mw", "t"], ["m"]),
                oh.make_node("Relu", ["m"], ["y"]),
                oh.make_node("MatMul", ["t", "mc"], ["y2"]),
            ],
            [("x", [1, 3, 4, 5])],
            ["y", "y2"],
            {"mw": _R.standard_normal((6, 5)).astype(np.float32), "mc": _R.standard_normal((3, 2)).astype(np.float32)},
        ),
        {"InnerProduct", "Reshape", "Convolution"},
    ),
    "size1_permutation_is_a_reshape": (
        _model(
            [
                oh.make_node("Relu", ["x"], ["r"]),
                oh.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 3, 1]),
                oh.make_node("Flatten", ["t"], ["y"]),
            ],
            [("x", [1, 1, 4, 5])],
            ["y"],
        ),
        {"Reshape"},
    ),
    "shape_subgraph_folds": (
        _model(
            [
                oh.make_node("Shape", ["x"], ["s"]),
                oh.make_node("Gather", ["s", "i0"], ["n"], axis=0),
                oh.make_node("Unsqueeze", ["n", "a0"], ["nu"]),
                oh.make_node("Concat", ["nu", "m1"], ["shp"], axis=0),
                oh.make_node("Reshape", ["x", "shp"], ["y"]),
            ],
            [("x", [2, 3, 4, 5])],
            ["y"],
            {"i0": np.array(0, np.int64), "a0": np.array([0], np.int64), "m1": np.array([-1], np.int64)},
        ),
        {"Reshape"},
    ),
    "outputs_sharing_blobs": (
        _model(
            [
                oh.make_node("Identity", ["x"], ["y"]),
                oh.make_node("Relu", ["x"], ["y2"]),
                oh.make_node("Relu", ["y2"], ["y3"]),
            ],
            [("x", [1, 3, 4, 5])],
            ["y", "y2", "y3"],
        ),
        {"Split", "ReLU"},
    ),
    "resize_between_transposes": (
        _model(
            [
                oh.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]),
                oh.make_node("Resize", ["t", "", "sc"], ["r"], mode="linear"),
                oh.make_node("Transpose", ["r"], ["y"], perm=[0, 2, 3, 1]),
            ],
            [("x", [1, 4, 5, 3])],
            ["y"],
            {"sc": np.array([1, 1, 2, 2], np.float32)},
        ),
        {"Deconvolution", "Slice", "Concat"},
    ),
}


@pytest.mark.parametrize("case", sorted(_CASES))
def test_translation(case: str, tmp_path: Path) -> None:
    model, layers = _CASES[case]
    result = _check(model, tmp_path)
    assert layers <= set(result.layers), result.layers
    assert set(result.layers) <= BVLC_TYPES


def test_real_permutation_is_refused_in_one_line(tmp_path: Path) -> None:
    model = _model(
        [
            oh.make_node("Relu", ["x"], ["r"]),
            oh.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 3, 1]),
            oh.make_node("Flatten", ["t"], ["y"]),
        ],
        [("x", [1, 3, 4, 5])],
        ["y"],
    )
    with pytest.raises(UnsupportedOpError) as info:
        export_caffe(model, tmp_path / "p.prototxt")
    message = str(info.value)
    assert "\n" not in message and "Flatten (y)" in message and "Transpose t" in message and "no Permute" in message
    assert list(tmp_path.iterdir()) == []


def test_unsupported_ops_are_listed_together(tmp_path: Path) -> None:
    model = _model(
        [
            oh.make_node("GatherND", ["x", "idx"], ["g"]),
            oh.make_node("Relu", ["g"], ["r"]),
            oh.make_node("Erf", ["r"], ["y"]),
            oh.make_node("Softsign", ["x"], ["y2"]),
            oh.make_node("Div", ["x", "x"], ["y3"]),
        ],
        [("x", [1, 3, 4, 5])],
        ["y", "y2", "y3"],
        {"idx": np.array([0, 2], np.int64)},
    )
    with pytest.raises(UnsupportedOpError) as info:
        export_caffe(model, tmp_path / "u.prototxt")
    message = str(info.value)
    assert message.count("\n") == 0
    assert (
        "unsupported ONNX ops: GatherND (g), Erf (y), Softsign (y2)" in message
        and "Div (y3): tensor / tensor" in message
    )
    assert info.value.exit_code == 1


def test_schema_field_numbers_are_bvlc() -> None:
    """The numbers that make the files readable by Caffe (BVLC caffe.proto; forks for Interp / Upsample)."""
    expected = {
        "NetParameter": {"name": 1, "layer": 100, "input": 3, "input_shape": 8},
        "LayerParameter": {
            "name": 1,
            "type": 2,
            "bottom": 3,
            "top": 4,
            "param": 6,
            "blobs": 7,
            "include": 8,
            "phase": 10,
            "convolution_param": 106,
            "pooling_param": 121,
            "inner_product_param": 117,
            "batch_norm_param": 139,
            "scale_param": 142,
            "bias_param": 141,
            "relu_param": 123,
            "prelu_param": 131,
            "eltwise_param": 110,
            "concat_param": 104,
            "slice_param": 126,
            "crop_param": 144,
            "reshape_param": 133,
            "flatten_param": 135,
            "softmax_param": 125,
            "power_param": 122,
            "elu_param": 140,
            "tile_param": 138,
            "reduction_param": 136,
            "input_param": 143,
            "dummy_data_param": 109,
            "parameter_param": 145,
            "interp_param": 163,
            "upsample_param": 150,
        },
        "BlobProto": {
            "shape": 7,
            "data": 5,
            "diff": 6,
            "double_data": 8,
            "num": 1,
            "channels": 2,
            "height": 3,
            "width": 4,
        },
        "BlobShape": {"dim": 1},
        "ConvolutionParameter": {
            "num_output": 1,
            "bias_term": 2,
            "pad": 3,
            "kernel_size": 4,
            "group": 5,
            "stride": 6,
            "pad_h": 9,
            "kernel_h": 11,
            "stride_h": 13,
            "engine": 15,
            "axis": 16,
            "dilation": 18,
        },
        "PoolingParameter": {
            "pool": 1,
            "kernel_size": 2,
            "stride": 3,
            "pad": 4,
            "kernel_h": 5,
            "stride_h": 7,
            "pad_h": 9,
            "global_pooling": 12,
        },
        "SliceParameter": {"slice_point": 2, "axis": 3},
        "ReductionParameter": {"operation": 1, "axis": 2, "coeff": 3},
        "InterpParameter": {"height": 1, "width": 2, "zoom_factor": 3, "shrink_factor": 4, "pad_beg": 5, "pad_end": 6},
        "UpsampleParameter": {"scale": 1},
    }
    pool = proto.NetParameter.DESCRIPTOR.file.pool
    for message, fields in expected.items():
        descriptor = pool.FindMessageTypeByName(f"caffe.{message}")
        assert {name: descriptor.fields_by_name[name].number for name in fields} == fields, message
    assert proto.BlobProto.DESCRIPTOR.fields_by_name["data"].is_packed
    assert proto.BlobShape.DESCRIPTOR.fields_by_name["dim"].is_packed
    assert not pool.FindMessageTypeByName("caffe.ConvolutionParameter").fields_by_name["pad"].is_packed


def test_caffemodel_encoder_matches_protobuf() -> None:
    import io

    from rewriter.caffe.caffemodel import write_caffemodel

    layers = [
        proto.LayerParameter(name="a", type="Input", top=["x"]),
        proto.LayerParameter(name="b/c", type="Scale", bottom=["x"], top=["y"]),
    ]
    weights = {
        "b/c": [
            np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5,
            np.array(7.0, np.float32),
            np.zeros((0,), np.float32),
        ]
    }
    buffer = io.BytesIO()
    write_caffemodel(buffer, "net", layers, weights)
    reference = proto.NetParameter(name="net")
    for layer in layers:
        copy = reference.layer.add()
        copy.CopyFrom(layer)
        for array in weights.get(layer.name, []):
            blob = array_to_blob(array, copy.blobs.add())
            blob.shape.SetInParent()
    assert buffer.getvalue() == reference.SerializeToString()
