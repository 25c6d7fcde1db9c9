"""Hand-built ONNX Resize/Upsample fixtures (onnx.helper) covering old opsets and rare attributes.

Needs only onnx, onnxruntime and numpy (either fixture environment works):

    python models/make_legacy_fixtures.py

Writes ``legacy_*.onnx`` (+ ``legacy_external.onnx.data``), ``legacy_*.io.npz`` and this script's entries of
``manifest.json`` into the folder this script lives in. Deterministic (fixed seeds).
There is no framework here: ``out_*`` in the .io.npz is the onnxruntime output, ``ref_*`` the output of
``onnx.reference.ReferenceEvaluator`` (when it can run the model), and framework_max_abs_diff in the manifest
is max|ORT - reference|.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.dont_write_bytecode = True  # keep the models/ folder free of __pycache__

import numpy as np  # noqa: E402
import onnx  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

import _fixture_common as fc  # noqa: E402

SCRIPT = "make_legacy_fixtures.py"
EXPORTER = f"onnx.helper (onnx {onnx.__version__})"
F = TensorProto.FLOAT


def f32(*v):
    return np.array(v, dtype=np.float32)


def i64(*v):
    return np.array(v, dtype=np.int64)


def init(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def vi(name, shape, elem=F):
    return helper.make_tensor_value_info(name, elem, shape)


def model(graph, opset):
    opsets = [helper.make_opsetid("", opset)]
    m = helper.make_model(graph, opset_imports=opsets, producer_name="rewriter-fixtures",
                          producer_version="1")
    # the lowest IR version that supports this opset, so old-opset files look like old files
    m.ir_version = helper.find_min_ir_version_for(opsets, ignore_unknown=True)
    return m


def single(op_node, x_shape, y_shape, inits, opset, extra_inputs=()):
    g = helper.make_graph([op_node], "g", [vi("x", x_shape), *extra_inputs], [vi("y", y_shape)], inits)
    return model(g, opset)


def resize(inputs, **attrs):
    return helper.make_node("Resize", inputs, ["y"], **attrs)


EMPTY_F = np.zeros((0,), np.float32)
X4 = [1, 2, 5, 7]


# --------------------------------------------------------------------------- the fixtures
def build():
    """Yield (stem, ModelProto, inputs dict, source, notes, save kwargs)."""
    # Upsample-7: scales attribute
    yield ("legacy_upsample7_nearest",
           single(helper.make_node("Upsample", ["x"], ["y"], mode="nearest", scales=[1.0, 1.0, 2.0, 3.0]),
                  X4, [1, 2, 10, 21], [], 7),
           "Upsample-7(x) mode='nearest', scales=[1,1,2,3] (attribute)", "", {})
    yield ("legacy_upsample7_linear",
           single(helper.make_node("Upsample", ["x"], ["y"], mode="linear", scales=[1.0, 1.0, 2.0, 2.0]),
                  X4, [1, 2, 10, 14], [], 7),
           "Upsample-7(x) mode='linear', scales=[1,1,2,2] (attribute)", "no coordinate mode: asymmetric in ORT", {})
    # Upsample-9: scales input
    yield ("legacy_upsample9_nearest",
           single(helper.make_node("Upsample", ["x", "scales"], ["y"], mode="nearest"), X4, [1, 2, 10, 14],
                  [init("scales", f32(1, 1, 2, 2))], 9),
           "Upsample-9(x, scales=[1,1,2,2]) mode='nearest'", "", {})
    yield ("legacy_upsample9_linear",
           single(helper.make_node("Upsample", ["x", "scales"], ["y"], mode="linear"), X4, [1, 2, 10, 14],
                  [init("scales", f32(1, 1, 2, 2))], 9),
           "Upsample-9(x, scales=[1,1,2,2]) mode='linear'", "no coordinate mode: asymmetric in ORT", {})
    yield ("legacy_upsample9_linear_x1p5",
           single(helper.make_node("Upsample", ["x", "scales"], ["y"], mode="linear"), X4, [1, 2, 7, 10],
                  [init("scales", f32(1, 1, 1.5, 1.5))], 9),
           "Upsample-9(x, scales=[1,1,1.5,1.5]) mode='linear'  # 5x7 -> 7x10", "", {})
    # Resize-10: (X, scales)
    for mode in ("nearest", "linear"):
        yield (f"legacy_resize10_{mode}_x2",
               single(resize(["x", "scales"], mode=mode), X4, [1, 2, 10, 14], [init("scales", f32(1, 1, 2, 2))], 10),
               f"Resize-10(x, scales=[1,1,2,2]) mode='{mode}'", "Resize-10: asymmetric in ORT", {})
        yield (f"legacy_resize10_{mode}_x1p5",
               single(resize(["x", "scales"], mode=mode), X4, [1, 2, 7, 10],
                      [init("scales", f32(1, 1, 1.5, 1.5))], 10),
               f"Resize-10(x, scales=[1,1,1.5,1.5]) mode='{mode}'  # 5x7 -> 7x10", "", {})
        yield (f"legacy_resize10_{mode}_x0p6",
               single(resize(["x", "scales"], mode=mode), [1, 2, 8, 10], [1, 2, 4, 6],
                      [init("scales", f32(1, 1, 0.6, 0.6))], 10),
               f"Resize-10(x, scales=[1,1,0.6,0.6]) mode='{mode}'  # 8x10 -> 4x6 (downsampling)",
               "ORT nearest for opset<=10 uses ceil when downsampling (facts sheet 1.3)" if mode == "nearest" else "",
               {})
    # Resize-11
    yield ("legacy_resize11_tf_half_pixel_for_nn",
           single(resize(["x", "roi", "scales"], mode="nearest", coordinate_transformation_mode="tf_half_pixel_for_nn",
                         nearest_mode="floor"),
                  X4, [1, 2, 7, 10], [init("roi", EMPTY_F), init("scales", f32(1, 1, 1.5, 1.5))], 11),
           "Resize-11(x, roi=[], scales=[1,1,1.5,1.5]) mode='nearest', ctm='tf_half_pixel_for_nn', "
           "nearest_mode='floor'", "", {})
    yield ("legacy_resize11_tf_crop_and_resize",
           single(resize(["x", "roi", "scales", "sizes"], mode="linear",
                         coordinate_transformation_mode="tf_crop_and_resize", extrapolation_value=-1.0),
                  [1, 2, 6, 8], [1, 2, 5, 7],
                  [init("roi", f32(0, 0, -0.2, 0.1, 1, 1, 0.9, 1.2)), init("scales", EMPTY_F),
                   init("sizes", i64(1, 2, 5, 7))], 11),
           "Resize-11(x, roi=[0,0,-0.2,0.1, 1,1,0.9,1.2], scales=[], sizes=[1,2,5,7]) mode='linear', "
           "ctm='tf_crop_and_resize', extrapolation_value=-1",
           "roi reaches outside the image on both spatial axes -> some outputs are the extrapolation value", {})
    yield ("legacy_resize11_pytorch_half_pixel_size1",
           single(resize(["x", "roi", "scales", "sizes"], mode="linear",
                         coordinate_transformation_mode="pytorch_half_pixel"),
                  X4, [1, 2, 1, 1], [init("roi", EMPTY_F), init("scales", EMPTY_F), init("sizes", i64(1, 2, 1, 1))],
                  11),
           "Resize-11(x, roi=[], scales=[], sizes=[1,2,1,1]) mode='linear', ctm='pytorch_half_pixel'",
           "output size 1: pytorch_half_pixel gives x=0 (first pixel); ORT and reference agree for linear", {})
    yield ("legacy_resize11_pytorch_half_pixel_cubic_size1",
           single(resize(["x", "roi", "scales", "sizes"], mode="cubic",
                         coordinate_transformation_mode="pytorch_half_pixel", cubic_coeff_a=-0.75),
                  [1, 1, 4, 4], [1, 1, 1, 1],
                  [init("roi", EMPTY_F), init("scales", EMPTY_F), init("sizes", i64(1, 1, 1, 1))], 11),
           "Resize-11(x, roi=[], scales=[], sizes=[1,1,1,1]) mode='cubic', ctm='pytorch_half_pixel'",
           "output size 1 with cubic: ORT uses x=0, onnx.reference x=-0.5 (onnx/onnx#4275) -> they differ", {})
    yield ("legacy_resize11_align_corners",
           single(resize(["x", "roi", "scales", "sizes"], mode="linear",
                         coordinate_transformation_mode="align_corners"),
                  X4, [1, 2, 8, 12],
                  [init("roi", EMPTY_F), init("scales", EMPTY_F), init("sizes", i64(1, 2, 8, 12))], 11),
           "Resize-11(x, roi=[], scales=[], sizes=[1,2,8,12]) mode='linear', ctm='align_corners'", "", {})
    yield ("legacy_resize11_align_corners_scales_x1p5",
           single(resize(["x", "roi", "scales"], mode="linear", coordinate_transformation_mode="align_corners"),
                  X4, [1, 2, 7, 10], [init("roi", EMPTY_F), init("scales", f32(1, 1, 1.5, 1.5))], 11),
           "Resize-11(x, roi=[], scales=[1,1,1.5,1.5]) mode='linear', ctm='align_corners'",
           "align_corners with scales and non-integer n*s: ORT uses the integer output size, onnx.reference the "
           "float n*s (facts sheet 1.2) -> they differ", {})
    # Resize-13: empty-string roi / scales
    yield ("legacy_resize13_sizes_empty_names",
           single(resize(["x", "", "", "sizes"], mode="linear", coordinate_transformation_mode="half_pixel"),
                  X4, [1, 2, 8, 12], [init("sizes", i64(1, 2, 8, 12))], 13),
           "Resize-13(x, '', '', sizes=[1,2,8,12]) mode='linear', ctm='half_pixel'", "", {})
    yield ("legacy_resize13_nearest_round_prefer_ceil",
           single(resize(["x", "", "", "sizes"], mode="nearest", coordinate_transformation_mode="half_pixel",
                         nearest_mode="round_prefer_ceil"),
                  X4, [1, 2, 8, 12], [init("sizes", i64(1, 2, 8, 12))], 13),
           "Resize-13(x, '', '', sizes=[1,2,8,12]) mode='nearest', ctm='half_pixel', nearest_mode='round_prefer_ceil'",
           "= PyTorch nearest-exact / TF half_pixel_centers nearest", {})
    yield ("legacy_resize13_cubic_scales",
           single(resize(["x", "", "scales"], mode="cubic", coordinate_transformation_mode="half_pixel",
                         cubic_coeff_a=-0.5, exclude_outside=1),
                  X4, [1, 2, 10, 14], [init("scales", f32(1, 1, 2, 2))], 13),
           "Resize-13(x, '', scales=[1,1,2,2]) mode='cubic', cubic_coeff_a=-0.5, exclude_outside=1", "", {})
    # Resize-18
    yield ("legacy_resize18_axes",
           single(resize(["x", "", "", "sizes"], mode="linear", axes=[2, 3]),
                  X4, [1, 2, 8, 12], [init("sizes", i64(8, 12))], 18),
           "Resize-18(x, '', '', sizes=[8,12]) mode='linear', axes=[2,3]", "", {})
    yield ("legacy_resize18_axes_scales",
           single(resize(["x", "", "scales"], mode="nearest", axes=[3, 2], nearest_mode="floor",
                         coordinate_transformation_mode="asymmetric"),
                  X4, [1, 2, 10, 21], [init("scales", f32(3, 2))], 18),
           "Resize-18(x, '', scales=[3,2]) mode='nearest', axes=[3,2] (W first), asymmetric, floor", "", {})
    yield ("legacy_resize18_antialias_linear_down",
           single(resize(["x", "", "", "sizes"], mode="linear", antialias=1, axes=[2, 3]),
                  [1, 2, 9, 11], [1, 2, 4, 5], [init("sizes", i64(4, 5))], 18),
           "Resize-18(x, '', '', sizes=[4,5]) mode='linear', antialias=1, axes=[2,3]  # 9x11 -> 4x5", "", {})
    yield ("legacy_resize18_keep_aspect_not_larger",
           single(resize(["x", "", "", "sizes"], mode="linear", keep_aspect_ratio_policy="not_larger", axes=[2, 3]),
                  X4, [1, 2, 6, 8], [init("sizes", i64(8, 8))], 18),
           "Resize-18(x, '', '', sizes=[8,8]) mode='linear', keep_aspect_ratio_policy='not_larger', axes=[2,3]",
           "scale = min(8/5, 8/7) = 8/7 on both axes -> output round(5*8/7) x 8 = 6x8", {})
    # Resize-19
    yield ("legacy_resize19_half_pixel_symmetric",
           single(resize(["x", "", "scales"], mode="linear", coordinate_transformation_mode="half_pixel_symmetric"),
                  X4, [1, 2, 7, 10], [init("scales", f32(1, 1, 1.5, 1.5))], 19),
           "Resize-19(x, '', scales=[1,1,1.5,1.5]) mode='linear', ctm='half_pixel_symmetric'  # 5x7 -> 7x10", "", {})

    # If with Resize in both branches
    then_g = helper.make_graph(
        [helper.make_node("Resize", ["x", "", "sc_then"], ["y_then"], mode="nearest",
                          coordinate_transformation_mode="asymmetric", nearest_mode="floor")],
        "then_branch", [], [vi("y_then", [1, 2, 10, 14])], [init("sc_then", f32(1, 1, 2, 2))])
    else_g = helper.make_graph(
        [helper.make_node("Resize", ["x", "", "sc_else"], ["y_else"], mode="linear",
                          coordinate_transformation_mode="half_pixel")],
        "else_branch", [], [vi("y_else", [1, 2, 10, 14])], [init("sc_else", f32(1, 1, 2, 2))])
    g = helper.make_graph([helper.make_node("If", ["cond"], ["y"], then_branch=then_g, else_branch=else_g)],
                          "g", [vi("x", X4), vi("cond", [], TensorProto.BOOL)], [vi("y", [1, 2, 10, 14])])
    yield ("legacy_if_resize", model(g, 13),
           "If(cond) then Resize-13(x, scales x2, nearest asymmetric floor) else Resize-13(x, scales x2, linear "
           "half_pixel)", "Resize nodes in both subgraphs; the .io.npz feeds cond=False (else branch)", {})

    # Loop with a Resize in the body (scan output stacks the three iterations)
    body = helper.make_graph(
        [helper.make_node("Resize", ["x", "", "sc_body"], ["r"], mode="linear",
                          coordinate_transformation_mode="half_pixel"),
         helper.make_node("Cast", ["i"], ["i_f"], to=F),
         helper.make_node("Add", ["r", "i_f"], ["scan_out"]),
         helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "loop_body", [vi("i", [], TensorProto.INT64), vi("cond_in", [], TensorProto.BOOL)],
        [vi("cond_out", [], TensorProto.BOOL), vi("scan_out", [1, 2, 10, 14])],
        [init("sc_body", f32(1, 1, 2, 2))])
    g = helper.make_graph(
        [helper.make_node("Loop", ["trip", "cond0"], ["y"], body=body)],
        "g", [vi("x", X4)], [vi("y", [3, 1, 2, 10, 14])],
        [init("trip", np.array(3, np.int64)), init("cond0", np.array(True))])
    yield ("legacy_loop_resize", model(g, 13),
           "Loop(trip=3) body: Resize-13(x, scales x2, linear half_pixel) + i -> scan output", "Resize in a Loop body",
           {})

    # External data: Conv with a 16x16x3x3 weight before a Resize-13
    rs = np.random.RandomState(7)
    w = (rs.randn(16, 16, 3, 3) * 0.1).astype(np.float32)
    b = (rs.randn(16) * 0.1).astype(np.float32)
    g = helper.make_graph(
        [helper.make_node("Conv", ["x", "conv_w", "conv_b"], ["c"], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
         helper.make_node("Relu", ["c"], ["r"]),
         helper.make_node("Resize", ["r", "", "scales"], ["y"], mode="linear",
                          coordinate_transformation_mode="half_pixel")],
        "g", [vi("x", [1, 16, 6, 8])], [vi("y", [1, 16, 12, 16])],
        [init("conv_w", w), init("conv_b", b), init("scales", f32(1, 1, 2, 2))])
    yield ("legacy_external", model(g, 13),
           "Conv(16->16, 3x3) -> Relu -> Resize-13(scales x2, linear half_pixel); conv weight as external data",
           "conv_w (9 KB) stored in legacy_external.onnx.data",
           {"save_as_external_data": True, "all_tensors_to_one_file": True,
            "location": "legacy_external.onnx.data", "size_threshold": 1024})

    # Two Resizes whose sizes come from a Shape -> Slice -> Concat subgraph; symbolic batch
    nodes = [
        helper.make_node("Shape", ["x"], ["x_shape"]),
        helper.make_node("Slice", ["x_shape", "s0", "s2"], ["nc"]),
        helper.make_node("Slice", ["x_shape", "s2", "s4"], ["hw"]),
        helper.make_node("Mul", ["hw", "two"], ["hw2"]),
        helper.make_node("Concat", ["nc", "hw2"], ["sizes1"], axis=0),
        helper.make_node("Resize", ["x", "", "", "sizes1"], ["y1"], mode="linear",
                         coordinate_transformation_mode="half_pixel"),
        helper.make_node("Shape", ["y1"], ["y1_shape"]),
        helper.make_node("Slice", ["y1_shape", "s0", "s2"], ["nc1"]),
        helper.make_node("Concat", ["nc1", "hw_fixed"], ["sizes2"], axis=0),
        helper.make_node("Resize", ["y1", "", "", "sizes2"], ["y2"], mode="nearest",
                         coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
    ]
    g = helper.make_graph(nodes, "g", [vi("x", ["N", 2, 5, 7])],
                          [vi("y1", ["N", 2, 10, 14]), vi("y2", ["N", 2, 15, 21])],
                          [init("s0", i64(0)), init("s2", i64(2)), init("s4", i64(4)), init("two", i64(2, 2)),
                           init("hw_fixed", i64(15, 21))])
    yield ("legacy_shape_sizes_two_resizes", model(g, 13),
           "sizes1 = Concat(Slice(Shape(x),0:2), Slice(Shape(x),2:4)*2); y1 = Resize(x, sizes1, linear); "
           "sizes2 = Concat(Slice(Shape(y1),0:2), [15,21]); y2 = Resize(y1, sizes2, nearest)",
           "symbolic batch N; sizes are computed from shapes at run time; the .io.npz uses N=2", {})


def feeds_for(stem: str, m: onnx.ModelProto) -> dict[str, np.ndarray]:
    rs = np.random.RandomState(sum(map(ord, stem)) % 10_000)
    feeds = {}
    init_names = {i.name for i in m.graph.initializer}
    for inp in m.graph.input:
        if inp.name in init_names:
            continue
        tt = inp.type.tensor_type
        if tt.elem_type == TensorProto.BOOL:
            feeds[inp.name] = np.array(False)
            continue
        shape = [d.dim_value if d.HasField("dim_value") else 2 for d in tt.shape.dim]
        feeds[inp.name] = rs.randn(*shape).astype(np.float32)
    return feeds


def main():
    entries, produced = [], set()
    print(f"hand-built models ({EXPORTER})")
    for stem, m, source, notes, save_kw in build():
        path = HERE / f"{stem}.onnx"
        data = HERE / f"{stem}.onnx.data"
        if data.exists():
            data.unlink()
        onnx.save(m, str(path), **save_kw)
        feeds = feeds_for(stem, m)
        try:
            ref = ReferenceEvaluator(str(path)).run(None, feeds)
            reference = {o.name: np.asarray(v) for o, v in zip(m.graph.output, ref)}
            if stem == "legacy_loop_resize" and reference["y"].shape == (3, 2, 10, 14):
                # onnx.reference's Loop uses np.vstack on scan outputs: for a per-iteration output of rank >= 2
                # that concatenates along axis 0 instead of stacking on a new axis as the spec / ORT do.
                reference["y"] = reference["y"].reshape(3, 1, 2, 10, 14)
                notes += ("; onnx.reference Loop returns shape (3,2,10,14) (np.vstack concatenates the rank-4 "
                          "scan outputs) where the spec/ORT stack to (3,1,2,10,14); ref_y is reshaped to the "
                          "stacked shape")
        except Exception as exc:  # noqa: BLE001
            reference = None
            msg = " ".join(str(exc).split())[:160]
            notes = "; ".join(n for n in [notes, f"onnx.reference cannot run it ({type(exc).__name__}: {msg})"] if n)
        entry = fc.finalize(path, inputs=feeds, expected=None, reference=reference, exporter=EXPORTER,
                            source=source, script=SCRIPT, notes=notes)
        entries.append(entry)
        produced.update([path.name, f"{stem}.io.npz", *entry["data_files"]])
    fc.remove_stale(("legacy_",), produced)
    fc.write_manifest(SCRIPT, entries)


if __name__ == "__main__":
    main()
