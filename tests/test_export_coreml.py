"""`rewriter export coreml`: every fixture exported, read back from the saved file, evaluated by the reference
evaluator and compared with ONNX Runtime on the original model; the evaluator itself on programs whose
answer is known; the coremltools traps; unsupported ops; Keras input; atomic output."""

from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto as TP
from onnx import helper as oh
from onnx import numpy_helper as nh

pytest.importorskip("coremltools")

from rewriter.coreml import (
    SUPPORTED_OPS,
    export_coreml,
    reference,
    supported_ops_markdown,
)
from rewriter.coreml.kernels import UndocumentedError
from rewriter.errors import NotExactError, UnsupportedOpError, UsageError, VerificationError
from rewriter.model_io import load_model
from tests.conftest import MODELS, record_stats

MANIFEST = {e["file"]: e for e in json.loads((MODELS / "manifest.json").read_text())}
FIXTURES = sorted(f[:-5] for f in MANIFEST if f.endswith(".onnx"))
UNSUPPORTED = {
    "tf2onnx13_crop_and_resize": "unsupported ONNX ops for Core ML: Loop (CropAndResize)",
    "tf2onnx18_crop_and_resize": "unsupported ONNX ops for Core ML: Loop (CropAndResize)",
    "legacy_if_resize": "unsupported ONNX ops for Core ML: If(condition computed at run time) (If_0)",
    "legacy_loop_resize": "unsupported ONNX ops for Core ML: Loop (Loop_0)",
    # Upsampling spelled as GatherND / Expand / DepthToSpace is recognised as a Resize and exports; this one
    # (pixel shuffle of a whole-tensor repeat) is not an upsampling, and its DepthToSpace has no translation.
    "recog_dynamo_pixel_shuffle_repeat_not_upsampling": "unsupported ONNX ops for Core ML: DepthToSpace (node_pixel_shuffle)",
}
EXPORTABLE = [f for f in FIXTURES if f not in UNSUPPORTED]
# iOS17 mlprogram (iOS16+ MIL: explicit half_pixel_centers) on a representative subset: real CNNs, every
# native op and sampling mode that occurs, the lowerings, external data, Shape-derived sizes, legacy opsets.
SUBSET_IOS17 = [
    "cnn_deeplab_ts13", "cnn_fpn_dynamo", "cnn_unet_ts17", "cnn_keras_unet_tf2onnx13", "legacy_external",
    "legacy_resize10_linear_x1p5", "legacy_resize11_pytorch_half_pixel_size1", "legacy_resize18_axes_scales",
    "legacy_shape_sizes_two_resizes", "legacy_upsample7_linear", "tf2onnx13_image_resize_bilinear_down_5x6",
    "tf2onnx13_image_resize_bilinear_3x6_to_5x10", "tf2onnx13_v1_bilinear_asymmetric", "tf2onnx9_v1_bilinear_asymmetric_x2",
    "torch_dynamo_bicubic_aa_x0p5", "torch_dynamo_bilinear_ac_x1p5", "torch_dynamo_conv_bilinear_x2_extdata",
    "torch_dynamo_trilinear_x2", "torch_ts17_bilinear_rsf_x1p5_dynhw", "torch_ts17_linear1d_size11",
    "torch_ts17_nearest3d_x2", "torch_ts17_nearest_x1p5", "torch_ts17_bilinear_size1x1", "torch_ts13_bilinear_size_like_dyn",
]
EXT = {"mlprogram": ".mlpackage", "neuralnetwork": ".mlmodel"}


def _duplicate_graph(name: str) -> bool:
    """Same source model exported by another exporter version (TorchScript 11/13 or dynamo vs TorchScript 17,
    tf2onnx opset 11/18 vs 13): the NeuralNetwork run keeps one of each (REWRITER_COREML_ALL=1 runs all)."""
    for prefix, base in (("torch_dynamo_", "torch_ts17_"), ("torch_ts11_", "torch_ts17_"), ("torch_ts13_", "torch_ts17_"),
                         ("tf2onnx11_", "tf2onnx13_"), ("tf2onnx18_", "tf2onnx13_")):
        if name.startswith(prefix) and base + name[len(prefix):] in EXPORTABLE:
            return True
    return False


NN_FIXTURES = EXPORTABLE if os.environ.get("REWRITER_COREML_ALL") else [f for f in EXPORTABLE if not _duplicate_graph(f)]


def _feeds(name: str) -> dict[str, np.ndarray]:
    io = np.load(MODELS / MANIFEST[f"{name}.onnx"]["io"])
    return {k: io[k] for k in MANIFEST[f"{name}.onnx"]["inputs"]}


def _ort(model: str | Path | onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    proto = model if isinstance(model, onnx.ModelProto) else load_model(model, load_weights=True)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    a64, b64 = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a64.shape == b64.shape, (a64.shape, b64.shape)
    return float(np.abs(a64 - b64).max(initial=0.0)) / max(1.0, float(np.abs(a64).max(initial=0.0)))


def _compare_saved(export, model, feeds: dict[str, np.ndarray]) -> float:
    """Evaluate the SAVED file with the reference evaluator and compare with ORT on the original model."""
    saved = reference.load(export.path)
    got = saved.run({export.input_names[k]: v for k, v in feeds.items()})
    want = _ort(model, feeds)
    declared = {o.name: list(o.type.multiArrayType.shape) for o in saved.spec.description.output}
    for k, v in want.items():  # the saved description states the ONNX output shapes
        assert declared[export.output_names[k]] == list(v.shape), (k, declared, v.shape)
    return max(_relative(want[k], got[export.output_names[k]]) for k in want)


def _export_fixture(name: str, model_format: str, target: str, tmp_path: Path) -> None:
    feeds = _feeds(name)
    out = tmp_path / f"{name}{EXT[model_format]}"
    try:
        export = export_coreml(MODELS / f"{name}.onnx", out, model_format=model_format, deployment_target=target,
                               input_shapes={k: v.shape for k, v in feeds.items()})
    except NotExactError as e:  # only fix-resize may refuse (a node with no exact Core ML form)
        assert "cannot be made exact" in str(e), str(e)
        pytest.skip(f"fix-resize cannot make it exact: {e}")
    assert out.exists() and export.path == out
    worst = _compare_saved(export, MODELS / f"{name}.onnx", feeds)
    assert worst <= 1e-5, f"{name} {model_format} {target}: relative error {worst:.3g}"
    assert len(export.resize_ops) == len(export.fix.nodes)
    record_stats(f"coreml-export@{model_format}-{target}-{name}", {"cases": 1, "worst": worst})


@pytest.mark.parametrize("name", EXPORTABLE)
def test_fixture_mlprogram_ios15(name: str, tmp_path: Path) -> None:
    _export_fixture(name, "mlprogram", "iOS15", tmp_path)


@pytest.mark.parametrize("name", NN_FIXTURES)
def test_fixture_neuralnetwork_ios14(name: str, tmp_path: Path) -> None:
    _export_fixture(name, "neuralnetwork", "iOS14", tmp_path)


@pytest.mark.parametrize("name", SUBSET_IOS17)
def test_fixture_mlprogram_ios17(name: str, tmp_path: Path) -> None:
    _export_fixture(name, "mlprogram", "iOS17", tmp_path)


@pytest.mark.parametrize("name", sorted(UNSUPPORTED))
def test_fixture_with_unsupported_ops_is_refused_in_one_line(name: str, tmp_path: Path) -> None:
    out = tmp_path / "m.mlpackage"
    with pytest.raises(UnsupportedOpError) as info:
        export_coreml(MODELS / f"{name}.onnx", out, input_shapes={k: v.shape for k, v in _feeds(name).items()})
    assert str(info.value) == UNSUPPORTED[name]
    assert info.value.exit_code == 1
    assert not out.exists() and not list(tmp_path.iterdir())


def test_resize_mapping_summary(tmp_path: Path) -> None:
    """The report names the Core ML op (with its parameters) or the lowering for each Resize."""
    export = export_coreml(MODELS / "cnn_fpn_ts17.onnx", tmp_path / "fpn.mlpackage", input_shapes={"image": (1, 3, 32, 32)})
    assert [w for _, w in export.resize_ops] == [
        "upsample_nearest_neighbor(scale_factor_height=2, scale_factor_width=2)",
        "upsample_nearest_neighbor(scale_factor_height=2, scale_factor_width=2)",
        "upsample_bilinear(scale_factor_height=4, scale_factor_width=4, align_corners=False)",
    ]
    export = export_coreml(MODELS / "torch_ts17_bicubic_size8x12.onnx", tmp_path / "cubic.mlmodel", model_format="neuralnetwork", deployment_target="iOS14")
    assert export.resize_ops[0][1].startswith("lowered: MatMul")


# ---------------------------------------------------------------------------------------------------
# Every supported op, in one graph (and the opset variants), on every format.


def _ops_model(opset: int = 17) -> onnx.ModelProto:
    rng = np.random.default_rng(7)
    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []

    def c(name, arr):
        inits.append(nh.from_array(np.asarray(arr), name))
        return name

    def f(*shape, scale=0.3):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    def node(op, ins, outs, **kw):
        nodes.append(oh.make_node(op, ins, outs, name=f"{op}_{len(nodes)}", **kw))
        return outs[0]

    i64 = lambda *v: np.array(v, dtype=np.int64)
    c1 = node("Conv", ["x", c("w1", f(8, 4, 3, 3)), c("b1", f(8))], ["c1"], pads=[1, 1, 1, 1])
    bn = node("BatchNormalization", [c1, c("g", 1 + f(8)), c("be", f(8)), c("mu", f(8)), c("var", 1 + np.abs(f(8)))], ["bn"], epsilon=1e-3)
    pr = node("PRelu", [bn, c("slope", np.abs(f(8, 1, 1)))], ["pr"])
    lr = node("LeakyRelu", [pr], ["lr"], alpha=0.1)
    mp = node("MaxPool", [lr], ["mp"], kernel_shape=[2, 2], strides=[2, 2])
    ap = node("AveragePool", [mp], ["ap"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=0)
    ap2 = node("AveragePool", [mp], ["ap2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=1)
    s1 = node("Add", [ap, ap2], ["s1"])
    hs = node("HardSwish", [s1], ["hs"])
    hsg = node("HardSigmoid", [hs], ["hsg"], alpha=0.25, beta=0.4)
    m1 = node("Mul", [hs, hsg], ["m1"])
    cl = node("Clip", [m1, c("lo", np.float32(-0.5)), c("hi", np.float32(0.5))], ["cl"])
    el = node("Elu", [cl], ["el"], alpha=0.7)
    sp = node("Softplus", [el], ["sp"])
    er = node("Erf", [sp], ["er"])
    sg = node("Sigmoid", [er], ["sg"])
    th = node("Tanh", [sg], ["th"])
    d1 = node("Div", [th, c("two", np.float32(2.0))], ["d1"])
    sb = node("Sub", [d1, sg], ["sb"])
    pw = node("Pow", [sb, c("p2", np.float32(2.0))], ["pw"])
    ab = node("Abs", [sb], ["ab"])
    sq = node("Sqrt", [ab], ["sq"])
    ex = node("Exp", [sq], ["ex"])
    lg = node("Log", [ex], ["lg"])
    ng = node("Neg", [lg], ["ng"])
    mx = node("Max", [ng, pw, sb], ["mx"])
    mn = node("Min", [mx, th], ["mn"])
    relu = node("Relu", [mn], ["relu"])
    ct = node("ConvTranspose", [relu, c("wt", f(8, 4, 3, 3)), c("bt", f(4))], ["ct"], strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1])
    cat = node("Concat", [ct, "x"], ["cat"], axis=1)
    node("Split", [cat, c("split", i64(3, 5))], ["sa", "sbb"], axis=1)
    sl = node("Slice", ["sbb", c("st", i64(1)), c("en", i64(-1)), c("ax", i64(2))], ["sl"])
    rv = node("Slice", [sl, c("st2", i64(-1)), c("en2", i64(-100)), c("ax2", i64(3)), c("sp2", i64(-2))], ["rv"])
    pref = node("Pad", ["sa", c("pads_r", i64(0, 0, 1, 2, 0, 0, 2, 1))], ["pref"], mode="reflect")
    pedge = node("Pad", [pref, c("pads_e", i64(0, 1, 0, 0, 0, 2, 0, 0))], ["pedge"], mode="edge")
    pcon = node("Pad", [pedge, c("pads_c", i64(0, 0, 1, 0, 0, 0, 0, -2)), c("pv", np.float32(0.5))], ["pcon"], mode="constant")
    rm = node("ReduceMean", [pcon], ["rm"], axes=[2, 3], keepdims=1)
    rs = node("ReduceSum", [rv, c("rs_axes", i64(1))], ["rs"], keepdims=0)
    rmax = node("ReduceMax", [pcon], ["rmax"], axes=[1], keepdims=1)
    gap = node("GlobalAveragePool", [pcon], ["gap"])
    gmp = node("GlobalMaxPool", [pcon], ["gmp"])
    gsum = node("Add", [node("Add", [gap, gmp], ["gsum"]), rm], ["gsum2"])
    fl = node("Flatten", [gsum], ["fl"], axis=1)
    gm = node("Gemm", [fl, c("wg", f(10, 6)), c("bg", f(10))], ["gm"], transB=1, alpha=0.9, beta=0.5)
    bn2 = node("BatchNormalization", [gm, c("g2", 1 + f(10)), c("be2", f(10)), c("mu2", f(10)), c("var2", 1 + np.abs(f(10)))], ["bn2"])
    node("Softmax", [bn2], ["probs"], axis=1)
    shp = node("Shape", [rmax], ["shp"])
    hw = node("Gather", [shp, c("idx23", i64(2, 3))], ["hw"], axis=0)
    new_shape = node("Concat", [c("one", i64(1)), hw], ["new_shape"], axis=0)
    rs3 = node("Reshape", [rmax, new_shape], ["rs3"])
    tr = node("Transpose", [rs3], ["tr"], perm=[0, 2, 1])
    mm = node("MatMul", [tr, rs3], ["mm"])
    uq = node("Unsqueeze", [mm, c("uq_axes", i64(1))], ["uq"])
    sz = node("Concat", [c("nc", i64(1, 1)), c("hw17", i64(17, 17))], ["sz"], axis=0)
    up = node("Resize", [uq, "", "", sz], ["up"], mode="linear", coordinate_transformation_mode="align_corners")
    g1 = node("Gather", [up, c("gi", i64(0, 4, 16))], ["g1"], axis=3)
    g0 = node("Gather", [g1, c("gs", np.array(2, np.int64))], ["g0"], axis=2)
    node("Squeeze", [g0, c("sq_axes", i64(1))], ["sqz"])
    rsh = node("Reshape", [rs, c("shape0", i64(0, -1))], ["rsh"])
    node("Cast", [rsh], ["cst"], to=TP.FLOAT)
    nodes.append(oh.make_node("Identity", ["sqz"], ["ident"], name="ident_node"))
    outs = ["probs", "sqz", "cst", "ident"]
    graph = oh.make_graph(nodes, "ops", [oh.make_tensor_value_info("x", TP.FLOAT, [1, 4, 8, 8])],
                          [oh.make_tensor_value_info(o, TP.FLOAT, None) for o in outs], inits)
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)])


def _variants_model() -> onnx.ModelProto:
    """Opset-11 spellings: attribute axes/splits, Softmax's 2-D coercion, Clip/Pad as inputs, Gemm without constants."""
    inits = [nh.from_array(np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3), "wb"),
             nh.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads"),
             nh.from_array(np.float32(0.0), "zero")]
    nodes = [
        oh.make_node("Softmax", ["x"], ["sm"], axis=1, name="sm"),  # opset 11: over the flattened C*H*W
        oh.make_node("Squeeze", ["sm"], ["sq"], axes=[0], name="sq"),  # [2,3,4]
        oh.make_node("Split", ["sq"], ["a", "b"], axis=1, split=[1, 2], name="split"),
        oh.make_node("Unsqueeze", ["b"], ["b4"], axes=[0], name="uq"),  # [1,2,2,4]
        oh.make_node("Pad", ["b4", "pads", "zero"], ["pd"], mode="constant", name="pad"),
        oh.make_node("Clip", ["pd", "zero"], ["cl"], name="clip"),  # min only
        oh.make_node("ReduceMean", ["cl"], ["rm"], axes=[1], keepdims=0, name="rm"),  # [1,3,6]
        oh.make_node("Flatten", ["rm"], ["r2"], axis=2, name="fl"),  # [3,6]
        oh.make_node("Gemm", ["wb", "r2"], ["gm"], transA=1, alpha=0.5, name="gemm"),  # [3,6]
        oh.make_node("Max", ["gm"], ["mx"], name="max1"),
    ]
    graph = oh.make_graph(nodes, "variants", [oh.make_tensor_value_info("x", TP.FLOAT, [1, 2, 3, 4])],
                          [oh.make_tensor_value_info("mx", TP.FLOAT, None), oh.make_tensor_value_info("a", TP.FLOAT, None)], inits)
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 11)])


def _gelu_model() -> onnx.ModelProto:
    nodes = [oh.make_node("Gelu", ["x"], ["g0"], name="gelu_exact"),
             oh.make_node("Gelu", ["g0"], ["g1"], approximate="tanh", name="gelu_tanh"),
             oh.make_node("Split", ["g1"], ["s0", "s1"], axis=2, num_outputs=2, name="split18")]
    graph = oh.make_graph(nodes, "gelu", [oh.make_tensor_value_info("x", TP.FLOAT, [1, 2, 6, 3])],
                          [oh.make_tensor_value_info("s0", TP.FLOAT, None), oh.make_tensor_value_info("s1", TP.FLOAT, None)])
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 20)])


@pytest.mark.parametrize("model_format,target", [("mlprogram", "iOS15"), ("mlprogram", "iOS17"), ("neuralnetwork", "iOS14")])
@pytest.mark.parametrize("factory", [_ops_model, _variants_model, _gelu_model])
def test_every_supported_op(factory, model_format: str, target: str, tmp_path: Path) -> None:
    model = factory()
    x = next(vi for vi in model.graph.input)
    shape = tuple(d.dim_value for d in x.type.tensor_type.shape.dim)
    feeds = {x.name: np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
    export = export_coreml(model, tmp_path / f"m{EXT[model_format]}", model_format=model_format, deployment_target=target)
    worst = _compare_saved(export, model, feeds)
    assert worst <= 1e-5, worst
    record_stats(f"coreml-export@ops-{factory.__name__}-{model_format}-{target}", {"cases": 1, "worst": worst})


def test_supported_op_table_matches_the_issue() -> None:
    issue_ops = ["Conv", "ConvTranspose", "BatchNormalization", "Relu", "LeakyRelu", "PRelu", "Sigmoid", "Tanh", "Clip", "HardSigmoid", "HardSwish", "Elu", "Softplus", "Gelu", "Erf", "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Exp", "Log", "Neg", "Abs", "Max", "Min", "Concat", "Split", "Slice", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Gemm", "MatMul", "Flatten", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Softmax", "Pad", "ReduceMean", "ReduceSum", "ReduceMax", "Identity", "Constant", "Cast", "Gather", "Shape", "Resize", "Upsample"]
    assert set(issue_ops) <= set(SUPPORTED_OPS)
    table = supported_ops_markdown()
    assert all(f"| {op} |" in table for op in issue_ops)


def test_unsupported_ops_listed_in_one_line_before_any_work(tmp_path: Path, monkeypatch) -> None:
    x = oh.make_tensor_value_info("x", TP.FLOAT, [2, 2])
    nodes = [
        oh.make_node("Einsum", ["x", "x"], ["e1"], equation="ij,jk->ik", name="node_12"),
        oh.make_node("NonZero", ["e1"], ["nz"], name="nz"),
        oh.make_node("Cast", ["nz"], ["nzf"], to=TP.FLOAT, name="c"),
        oh.make_node("Einsum", ["e1", "x"], ["e2"], equation="ij,jk->ik", name="node_40"),
        oh.make_node("Sum", ["e2", "nzf"], ["y"], name="sum"),
    ]
    model = oh.make_model(oh.make_graph(nodes, "g", [x], [oh.make_tensor_value_info("y", TP.FLOAT, None)]),
                          opset_imports=[oh.make_opsetid("", 13)])

    def no_work(*a, **k):
        raise AssertionError("fix_resize ran before the coverage check")

    monkeypatch.setattr("rewriter.fix.fix_resize", no_work)
    with pytest.raises(UnsupportedOpError) as info:
        export_coreml(model, tmp_path / "m.mlpackage")
    assert str(info.value) == "unsupported ONNX ops for Core ML: Einsum (node_12, node_40); NonZero (nz); Sum (sum)"


# ---------------------------------------------------------------------------------------------------
# The reference evaluator on programs whose answer is known (coremltools docstring examples, proto text).


def _mil_resize_program(tmp_path: Path, op: str, width: int, model_format: str = "mlprogram", **params) -> reference.ReferenceModel:
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import Function, Program

    target = ct.target.iOS15 if model_format == "mlprogram" else ct.target.iOS14
    with Function({"x": mb.placeholder(shape=(1, 1, width))}, opset_version=target) as fn:
        fn.set_outputs([getattr(mb, op)(x=fn.inputs["x"], name="y", **params)])
    program = Program()
    program.add_function("main", fn)
    kwargs = {"compute_precision": ct.precision.FLOAT32} if model_format == "mlprogram" else {}
    model = ct.convert(program, convert_to=model_format, minimum_deployment_target=target, skip_model_load=True, **kwargs)
    path = tmp_path / f"p{EXT[model_format]}"
    model.save(str(path))
    return reference.load(path)


def _run1d(model: reference.ReferenceModel, values) -> list[float]:
    x = np.asarray(values, dtype=np.float32).reshape(1, 1, -1)
    return list(np.round(model.run({"x": x})["y"].reshape(-1).astype(np.float64), 6))


def test_reference_upsample_bilinear_half_pixel(tmp_path: Path) -> None:
    m = _mil_resize_program(tmp_path, "upsample_bilinear", 4, scale_factor_height=1, scale_factor_width=2, align_corners=False)
    assert _run1d(m, [0, 1, 2, 3]) == [0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3]
    m = _mil_resize_program(tmp_path, "upsample_bilinear", 4, scale_factor_height=1, scale_factor_width=2, align_corners=True)
    assert _run1d(m, [0, 1, 2, 3]) == list(np.round(np.arange(8) * 3 / 7, 6))


@pytest.mark.parametrize("model_format", ["mlprogram", "neuralnetwork"])
@pytest.mark.parametrize("mode,out5,out6", [
    # coremltools resize_bilinear docstring: Xin = 2, grid points for Xout = 5 and 6 (printed to 2 decimals).
    ("STRICT_ALIGN_CORNERS", [0, 0.25, 0.5, 0.75, 1], [0, 0.2, 0.4, 0.6, 0.8, 1]),
    ("ALIGN_CORNERS", [0, 0.25, 0.5, 0.75, 1], [0, 0.2, 0.4, 0.6, 0.8, 1]),
    ("DEFAULT", [0, 0.4, 0.8, 1, 1], [0, 0.33, 0.67, 1, 1, 1]),
    ("OFFSET_CORNERS", [0.1, 0.3, 0.5, 0.7, 0.9], [0.08, 0.25, 0.42, 0.58, 0.75, 0.92]),
    ("UNALIGN_CORNERS", [0, 0.1, 0.5, 0.9, 1], [0, 0, 0.33, 0.67, 1, 1]),
])
def test_reference_resize_bilinear_docstring_examples(mode, out5, out6, model_format, tmp_path: Path) -> None:
    if model_format == "neuralnetwork" and mode == "UNALIGN_CORNERS":
        pytest.skip("the NeuralNetwork backend has no UNALIGN_CORNERS")
    for width, expected in ((5, out5), (6, out6)):
        m = _mil_resize_program(tmp_path, "resize_bilinear", 2, model_format, target_size_height=1, target_size_width=width, sampling_mode=mode)
        np.testing.assert_allclose(_run1d(m, [0, 1]), expected, atol=0.005)


def test_reference_align_corners_single_output(tmp_path: Path) -> None:
    m = _mil_resize_program(tmp_path, "resize_bilinear", 5, target_size_height=1, target_size_width=1, sampling_mode="ALIGN_CORNERS")
    assert _run1d(m, [0, 1, 2, 3, 4]) == [2.0]  # (Xin - 1) / 2
    m = _mil_resize_program(tmp_path, "resize_bilinear", 5, target_size_height=1, target_size_width=1, sampling_mode="STRICT_ALIGN_CORNERS")
    assert _run1d(m, [0, 1, 2, 3, 4]) == [0.0]


def test_reference_neuralnetwork_upsample_modes(tmp_path: Path) -> None:
    m = _mil_resize_program(tmp_path, "upsample_bilinear", 4, "neuralnetwork", scale_factor_height=1, scale_factor_width=2, align_corners=False)
    layer = m.layers[0].upsample
    assert layer.linearUpsampleMode == 2 and list(layer.scalingFactor) == [1, 2]  # ALIGN_CORNERS_FALSE
    assert _run1d(m, [0, 1, 2, 3]) == [0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3]
    m = _mil_resize_program(tmp_path, "upsample_nearest_neighbor", 3, "neuralnetwork", scale_factor_height=1, scale_factor_width=2)
    assert _run1d(m, [5, 6, 7]) == [5, 5, 6, 6, 7, 7]


def test_reference_refuses_undocumented_nearest(tmp_path: Path) -> None:
    m = _mil_resize_program(tmp_path, "upsample_nearest_neighbor", 4, scale_factor_height=np.float32(1), scale_factor_width=np.float32(1.5))
    with pytest.raises(UndocumentedError, match="fractional"):
        m.run({"x": np.zeros((1, 1, 4), np.float32)})
    m = _mil_resize_program(tmp_path, "resize_nearest_neighbor", 4, target_size_height=1, target_size_width=6)
    with pytest.raises(UndocumentedError, match="not documented"):
        m.resize_ops()


def test_reference_reads_weights_from_the_package_blob(tmp_path: Path) -> None:
    export = export_coreml(MODELS / "torch_dynamo_conv_bilinear_x2_extdata.onnx", tmp_path / "m.mlpackage")
    saved = reference.load(export.path)
    blobs = [op for op in saved.block.operations if op.type == "const" and op.attributes["val"].WhichOneof("value") == "blobFileValue"]
    assert blobs, "the conv weights should live in weights/weight.bin"
    assert (export.path / "Data" / "com.apple.CoreML" / "weights" / "weight.bin").is_file()


# ---------------------------------------------------------------------------------------------------
# coremltools traps: nothing may change a result silently.


def _spec_upsample_layers(path: Path):
    return [layer.upsample for layer in reference.read_spec(path).neuralNetwork.layers if layer.WhichOneof("layer") == "upsample"]


@pytest.mark.parametrize("name", ["torch_ts17_nearest_x1p5", "legacy_resize10_nearest_x1p5", "torch_ts9_nearest_size8x12", "tf2onnx13_image_resize_nearest_8x12"])
def test_fractional_nearest_never_becomes_a_coreml_nearest_op(name: str, tmp_path: Path) -> None:
    feeds = _feeds(name)
    export = export_coreml(MODELS / f"{name}.onnx", tmp_path / "m.mlmodel", model_format="neuralnetwork", deployment_target="iOS14")
    for layer in _spec_upsample_layers(export.path):
        assert not len(layer.fractionalScalingFactor), layer  # the NN backend's silent align-corners bilinear fallback
        assert layer.mode == 0 or layer.linearUpsampleMode != 0
    assert all(w.startswith("lowered: Gather") for _, w in export.resize_ops), export.resize_ops
    assert _compare_saved(export, MODELS / f"{name}.onnx", feeds) == 0.0
    export = export_coreml(MODELS / f"{name}.onnx", tmp_path / "m.mlpackage")
    assert "upsample_nearest_neighbor" not in reference.load(export.path).op_types


def test_align_corners_and_half_pixel_centers_are_explicit(tmp_path: Path) -> None:
    for target in ("iOS15", "iOS16"):
        for name in ("torch_ts17_bilinear_x2", "torch_ts17_bilinear_ac_x2", "torch_ts17_bilinear_x5over3"):
            export = export_coreml(MODELS / f"{name}.onnx", tmp_path / f"{name}{target}.mlpackage", deployment_target=target)
            ops = [op for op in reference.load(export.path).block.operations if op.type == "upsample_bilinear"]
            assert ops
            for op in ops:
                assert "align_corners" in op.inputs
                assert ("half_pixel_centers" in op.inputs) == (target == "iOS16")
    export = export_coreml(MODELS / "torch_ts17_bilinear_x2.onnx", tmp_path / "nn.mlmodel", model_format="neuralnetwork", deployment_target="iOS14")
    assert [layer.linearUpsampleMode for layer in _spec_upsample_layers(export.path)] == [2]  # ALIGN_CORNERS_FALSE, never DEFAULT


def _patched_resize(monkeypatch, emit):
    """Replace the exporter's Resize mapping with a deliberately wrong spelling (what a name-based converter does)."""
    from rewriter.coreml.ops import resize

    original = resize.emit_resize

    def wrong(self, node, sem):
        original(self, node, sem)  # keeps the plan (the ONNX node's weights to reproduce)
        plan = self.plans[-1]
        self.used_names.discard(plan.mil_name)
        name = self.name(plan.mil_name + "_wrong")
        plan.mil_name = name
        return emit(self.mb, self.var(node.input[0]), name)

    monkeypatch.setattr(resize, "emit_resize", wrong)


def test_nn_integer_snapping_is_caught(monkeypatch, tmp_path: Path) -> None:
    # coremltools' NN backend turns a factor within 1e-4 of an integer into int(factor): 1.99995 -> 1.
    _patched_resize(monkeypatch, lambda mb, x, name: mb.upsample_nearest_neighbor(
        x=x, scale_factor_height=np.float32(1.99995), scale_factor_width=np.float32(1.99995), name=name))
    out = tmp_path / "m.mlmodel"
    with pytest.raises(NotExactError, match="samples axis"):
        export_coreml(MODELS / "torch_ts17_nearest_x2.onnx", out, model_format="neuralnetwork", deployment_target="iOS14")
    assert not out.exists() and not list(tmp_path.iterdir())


def test_nn_fractional_nearest_fallback_is_caught(monkeypatch, tmp_path: Path) -> None:
    # A fractional nearest factor silently becomes Upsample BILINEAR ALIGN_CORNERS_TRUE in the NN backend.
    _patched_resize(monkeypatch, lambda mb, x, name: mb.upsample_nearest_neighbor(
        x=x, scale_factor_height=np.float32(2.5), scale_factor_width=np.float32(2.5), name=name))
    with pytest.raises(NotExactError):
        export_coreml(MODELS / "torch_ts17_nearest_x2.onnx", tmp_path / "m.mlmodel", model_format="neuralnetwork", deployment_target="iOS14")


def test_default_align_corners_is_caught(monkeypatch, tmp_path: Path) -> None:
    # upsample_bilinear defaults to align_corners=True: leaving it out changes a half_pixel resize.
    _patched_resize(monkeypatch, lambda mb, x, name: mb.upsample_bilinear(x=x, scale_factor_height=2, scale_factor_width=2, name=name))
    with pytest.raises(NotExactError, match="samples axis 2 differently"):
        export_coreml(MODELS / "torch_ts17_bilinear_x2.onnx", tmp_path / "m.mlpackage")


def test_nn_builder_rounding_of_near_integer_factors_is_detected() -> None:
    # builder.add_upsample stores a factor f with f - floor(f) <= 0.001 as int(f): half_pixel 2000 -> 4001 would
    # be written as factor 2 (output 4000). The exporter refuses such a factor for --model-format neuralnetwork.
    from rewriter.coreml.ops.resize import nn_builder_snaps, scale_for_size

    assert nn_builder_snaps(scale_for_size(2000, 4001))
    assert not nn_builder_snaps(scale_for_size(1000, 2001))  # float32 rounds 2.001 up: stored as fractional
    assert not nn_builder_snaps(scale_for_size(5, 7)) and not nn_builder_snaps(scale_for_size(5, 10))


def test_scale_factor_gives_the_exact_output_length() -> None:
    from rewriter.coreml.ops.resize import scale_for_size

    for n in range(1, 60):
        for m in range(1, 4 * n + 3):
            s = scale_for_size(n, m)
            assert int(np.floor(float(s) * n)) == m and int(np.floor(np.float32(s) * np.float32(n))) == m, (n, m, s)


def test_conv_transpose_lowering_with_edge_padding(tmp_path: Path) -> None:
    """Inputs above 64 pixels: fix-resize lowers cubic x2 to Pad(edge) + grouped ConvTranspose."""
    x = oh.make_tensor_value_info("x", TP.FLOAT, [1, 2, 66, 70])
    scales = nh.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    node = oh.make_node("Resize", ["x", "", "scales"], ["y"], mode="cubic", name="rs")
    model = oh.make_model(oh.make_graph([node], "g", [x], [oh.make_tensor_value_info("y", TP.FLOAT, None)], [scales]),
                          opset_imports=[oh.make_opsetid("", 13)])
    feeds = {"x": np.random.default_rng(1).standard_normal((1, 2, 66, 70)).astype(np.float32)}
    for fmt, target in (("mlprogram", "iOS15"), ("neuralnetwork", "iOS14")):
        export = export_coreml(model, tmp_path / f"m{EXT[fmt]}", model_format=fmt, deployment_target=target)
        assert "ConvTranspose" in export.resize_ops[0][1]
        worst = _compare_saved(export, model, feeds)
        assert worst <= 1e-5
        record_stats(f"coreml-export@convtranspose-{fmt}", {"cases": 1, "worst": worst})


# ---------------------------------------------------------------------------------------------------
# API behaviour: options, names, metadata, verification, atomic output.


@pytest.mark.parametrize("kwargs,output,message", [
    ({}, "m.mlmodel", "*.mlpackage"),
    ({"model_format": "neuralnetwork", "deployment_target": "iOS14"}, "m.mlpackage", "*.mlmodel"),
    ({"deployment_target": "iOS14"}, "m.mlpackage", "iOS15 or later"),
    ({"model_format": "neuralnetwork", "deployment_target": "iOS16"}, "m.mlmodel", "iOS13/iOS14 format"),
    ({"compute_precision": "float16", "model_format": "neuralnetwork", "deployment_target": "iOS14"}, "m.mlmodel", "mlprogram only"),
    ({"deployment_target": "iOS9"}, "m.mlpackage", "expected one of"),
    ({"model_format": "caffe"}, "m.mlpackage", "expected mlprogram or neuralnetwork"),
])
def test_usage_errors(kwargs, output: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=message.replace("*", r"\*")) as info:
        export_coreml(MODELS / "torch_ts17_bilinear_x2.onnx", tmp_path / output, **kwargs)
    assert "\n" not in str(info.value)
    assert not list(tmp_path.iterdir())


def test_dynamic_shapes_need_input_shapes(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"input .x. has a dynamic shape Nx2xHxW: pass --input-shape x=1x2x1x1"):
        export_coreml(MODELS / "torch_ts17_bilinear_rsf_x1p5_dynhw.onnx", tmp_path / "m.mlpackage")
    export = export_coreml(MODELS / "torch_ts17_bilinear_rsf_x1p5_dynhw.onnx", tmp_path / "m.mlpackage", input_shapes={"x": (1, 2, 5, 7)})
    assert export.input_shapes == {"x": (1, 2, 5, 7)}
    assert reference.load(export.path).spec.description.output[0].type.multiArrayType.shape == [1, 2, 7, 10]


def test_names_shapes_and_metadata(tmp_path: Path) -> None:
    export = export_coreml(MODELS / "cnn_unet_ts17.onnx", tmp_path / "unet.mlpackage", input_shapes={"image": (1, 3, 16, 20)})
    saved = reference.load(export.path)
    assert saved.input_names == ["image"] and saved.output_names == ["out"]
    assert export.input_names == {"image": "image"} and export.output_names == {"out": "out"}
    assert list(saved.spec.description.input[0].type.multiArrayType.shape) == [1, 3, 16, 20]
    import rewriter

    assert saved.metadata["com.github.rewriter.source"] == "cnn_unet_ts17.onnx"
    assert saved.metadata["com.github.rewriter.version"] == rewriter.__version__
    assert "rewriter" in saved.spec.description.metadata.shortDescription
    # tf2onnx names like "x:0" are not identifiers: Core ML renames them, and the export says so.
    x = oh.make_tensor_value_info("in:0", TP.FLOAT, [1, 1, 2, 3])
    sizes = nh.from_array(np.array([1, 1, 4, 6], np.int64), "sizes")
    node = oh.make_node("Resize", ["in:0", "", "", "sizes"], ["out/0"], mode="nearest", nearest_mode="floor",
                        coordinate_transformation_mode="asymmetric", name="r")
    model = oh.make_model(oh.make_graph([node], "g", [x], [oh.make_tensor_value_info("out/0", TP.FLOAT, None)], [sizes]),
                          opset_imports=[oh.make_opsetid("", 13)])
    export = export_coreml(model, tmp_path / "renamed.mlpackage")
    assert export.input_names == {"in:0": "in_0"} and export.output_names == {"out/0": "out_0"}
    assert any("renamed input 'in:0' to 'in_0'" in w for w in export.warnings)
    assert reference.load(export.path).metadata["com.github.rewriter.source"] == "g"


def test_verify_uses_the_reference_on_linux(tmp_path: Path) -> None:
    feeds = _feeds("cnn_fpn_dynamo")
    export = export_coreml(MODELS / "cnn_fpn_dynamo.onnx", tmp_path / "m.mlpackage", verify=True, inputs=feeds)
    assert export.max_error is not None and export.max_error <= 1e-5
    if sys.platform != "darwin":
        assert export.verified_with == ["reference"]
        assert any("needs macOS" in w for w in export.warnings)


def test_verify_failure_writes_nothing(monkeypatch, tmp_path: Path) -> None:
    out = tmp_path / "m.mlpackage"
    export_coreml(MODELS / "torch_ts17_bilinear_x2.onnx", out)
    before = sorted(p.name for p in out.rglob("*"))
    original = reference.MILModel.run
    monkeypatch.setattr(reference.MILModel, "run", lambda self, feeds: {k: v + 1e-3 for k, v in original(self, feeds).items()})
    with pytest.raises(VerificationError, match="differs from ONNX Runtime"):
        export_coreml(MODELS / "torch_ts17_bilinear_ac_x2.onnx", out, verify=True)
    assert sorted(p.name for p in out.rglob("*")) == before  # the previous package is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["m.mlpackage"]  # no temporary left behind


def test_output_is_replaced_atomically(tmp_path: Path) -> None:
    for fmt, target in (("mlprogram", "iOS15"), ("neuralnetwork", "iOS14")):
        out = tmp_path / f"m{EXT[fmt]}"
        export_coreml(MODELS / "torch_ts17_nearest_x2.onnx", out, model_format=fmt, deployment_target=target)
        export_coreml(MODELS / "torch_ts17_bilinear_x2.onnx", out, model_format=fmt, deployment_target=target)
        assert reference.load(out).metadata["com.github.rewriter.source"] == "torch_ts17_bilinear_x2.onnx"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.mlmodel", "m.mlpackage"]


def test_float16_compute_precision(tmp_path: Path) -> None:
    feeds = _feeds("cnn_unet_ts17")
    export = export_coreml(MODELS / "cnn_unet_ts17.onnx", tmp_path / "m.mlpackage", deployment_target="iOS16",
                           compute_precision="float16", verify=True, inputs=feeds)
    assert export.max_error is not None and 0 < export.max_error <= 1e-2
    assert "cast" in reference.load(export.path).op_types


# ---------------------------------------------------------------------------------------------------
# Keras -> tf2onnx -> fix -> Core ML.


def _fake_tf(monkeypatch, calls: list):
    """TensorFlow / tf2onnx stand-ins: the tf2onnx call path without TensorFlow installed."""
    converted = onnx.load(str(MODELS / "tf2onnx13_keras_conv_upsample_bilinear.onnx"))

    class Tensor:
        shape = (1, 6, 8, 3)
        dtype = "float32"
        name = "x:0"

    class KerasModel:
        inputs = (Tensor(),)

    tf = types.SimpleNamespace(
        keras=types.SimpleNamespace(models=types.SimpleNamespace(load_model=lambda path, compile=False: calls.append(("load", Path(path).name)) or KerasModel())),
        TensorSpec=lambda shape, dtype, name: ("spec", shape, dtype, name),
    )

    def from_keras(model, input_signature=None, opset=None):
        calls.append(("from_keras", input_signature, opset))
        return converted, None

    tf2onnx = types.SimpleNamespace(convert=types.SimpleNamespace(from_keras=from_keras))
    monkeypatch.setattr("rewriter.keras_input._import_tf", lambda: (tf, tf2onnx))


def test_keras_path_through_tf2onnx_without_tensorflow(monkeypatch, tmp_path: Path) -> None:
    calls: list = []
    _fake_tf(monkeypatch, calls)
    export = export_coreml(MODELS / "keras_upsample_bilinear.keras", tmp_path / "k.mlpackage", verify=True)
    assert calls == [("load", "keras_upsample_bilinear.keras"), ("from_keras", (("spec", (1, 6, 8, 3), "float32", "x"),), 13)]
    assert export.resize_ops[0][1] == "upsample_bilinear(scale_factor_height=2, scale_factor_width=2, align_corners=False)"
    assert reference.load(export.path).metadata["com.github.rewriter.source"] == "keras_upsample_bilinear.keras"
    io = np.load(MODELS / "keras_upsample_bilinear.io.npz")
    got = reference.load(export.path).run({"x": io["x"]})["y"]
    assert _relative(io["out_y"], got) <= 1e-5  # Keras's own output (the model file's recorded result)


def test_keras_without_tensorflow_says_what_to_install(monkeypatch, tmp_path: Path) -> None:
    import builtins

    real_import = builtins.__import__

    def no_tf(name, *a, **k):
        if name.split(".")[0] in ("tensorflow", "tf2onnx"):
            raise ImportError(f"No module named {name!r}", name=name)
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_tf)
    with pytest.raises(UsageError, match=r"install rewriter\[tf\]") as info:
        export_coreml(MODELS / "keras_upsample_bilinear.keras", tmp_path / "k.mlpackage")
    assert "\n" not in str(info.value)


def test_keras_real_tensorflow(tmp_path: Path) -> None:
    pytest.importorskip("tensorflow")
    pytest.importorskip("tf2onnx")
    export = export_coreml(MODELS / "keras_upsample_bilinear.keras", tmp_path / "k.mlpackage", verify=True)
    io = np.load(MODELS / "keras_upsample_bilinear.io.npz")
    got = reference.load(export.path).run({export.input_names[next(iter(export.input_names))]: io["x"]})
    worst = _relative(io["out_y"], next(iter(got.values())))
    assert worst <= 1e-5
    record_stats("coreml-export@keras-tensorflow", {"cases": 1, "worst": worst})


def test_saved_model_directory_is_recognised(tmp_path: Path) -> None:
    from rewriter.keras_input import is_keras_path

    (tmp_path / "sm").mkdir()
    (tmp_path / "sm" / "saved_model.pb").write_bytes(b"")
    assert is_keras_path(tmp_path / "sm") and is_keras_path("m.h5") and not is_keras_path(MODELS / "cnn_unet_ts17.onnx")


def test_align_corners_at_256_keeps_the_native_op_within_orts_own_rounding(tmp_path: Path) -> None:
    """At 256 px ORT's float32 align_corners grid is 3e-5 from the exact one (over the 2e-6 weight tolerance): the
    documented Core ML grid is accepted within that bound, and the saved model still verifies against ORT."""
    from tests.resize_cases import build_resize_model

    model = build_resize_model((1, 2, 256, 256), 13, {"mode": "linear", "coordinate_transformation_mode": "align_corners"}, sizes=[1, 2, 512, 512])
    export = export_coreml(model, tmp_path / "ac.mlpackage", verify=True)
    assert export.resize_ops == [("resize0", "upsample_bilinear(scale_factor_height=2, scale_factor_width=2, align_corners=True)")]
    assert 1e-5 < export.grid_bound < 1e-4
    assert export.max_error is not None and export.max_error <= 1e-5 + export.grid_bound
