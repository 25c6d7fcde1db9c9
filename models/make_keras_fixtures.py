"""Generate ONNX Resize fixtures from TensorFlow / Keras 3 through tf2onnx.

Run in an environment with tensorflow-cpu==2.21.*, tf2onnx==1.17.*, onnxruntime and numpy:

    python models/make_keras_fixtures.py

Writes into the folder this script lives in: ``tf2onnx*.onnx``, ``keras_upsample_bilinear.keras``,
``cnn_keras_unet_tf2onnx13.onnx``, their ``.io.npz`` files and this script's entries of ``manifest.json``.
Deterministic: fixed seeds, fixed shapes. TF ops tf2onnx cannot convert are printed and recorded, not fatal.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # reproducible float results on CPU

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.dont_write_bytecode = True  # keep the models/ folder free of __pycache__

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402
import tf2onnx  # noqa: E402

import _fixture_common as fc  # noqa: E402

SCRIPT = "make_keras_fixtures.py"
warnings.filterwarnings("ignore")
tf.get_logger().setLevel(logging.ERROR)
logging.getLogger("tf2onnx").setLevel(logging.ERROR)
TF_VERSION = tf.__version__
EXPORTER = f"tf2onnx {tf2onnx.__version__} / TF {TF_VERSION} / Keras {keras.__version__}"

v1 = tf.compat.v1.image
X = (1, 5, 7, 2)  # NHWC


def rnd(shape, seed):
    return np.random.RandomState(seed).randn(*shape).astype(np.float32)


# --------------------------------------------------------------------------- tf.function cases
# name: (fn(x) -> tensor, input shape (None = dynamic), source text, notes)
FN_CASES = {
    "image_resize_bilinear_8x12": (lambda x: tf.image.resize(x, (8, 12), method="bilinear"), X,
                                   "tf.image.resize(x, (8, 12), method='bilinear')  # 5x7 -> 8x12", ""),
    "image_resize_bilinear_x2": (lambda x: tf.image.resize(x, (10, 14), method="bilinear"), X,
                                 "tf.image.resize(x, (10, 14), method='bilinear')", ""),
    "image_resize_bilinear_down_5x6": (lambda x: tf.image.resize(x, (5, 6), method="bilinear"), (1, 9, 11, 2),
                                       "tf.image.resize(x, (5, 6), method='bilinear')  # 9x11 -> 5x6, no antialias",
                                       ""),
    "image_resize_bilinear_3x6_to_5x10": (lambda x: tf.image.resize(x, (5, 10), method="bilinear"), (1, 3, 6, 2),
                                          "tf.image.resize(x, (5, 10), method='bilinear')  # 3x6 -> 5x10",
                                          "tf2onnx writes float32 scales 5/3 (rounds below 5/3): see the size-trap "
                                          "note"),
    "image_resize_nearest_8x12": (lambda x: tf.image.resize(x, (8, 12), method="nearest"), X,
                                  "tf.image.resize(x, (8, 12), method='nearest')", ""),
    "image_resize_bicubic_8x12": (lambda x: tf.image.resize(x, (8, 12), method="bicubic"), X,
                                  "tf.image.resize(x, (8, 12), method='bicubic')",
                                  "small deviation expected: TF bicubic looks the Keys weights up in a 1024-entry "
                                  "table (delta rounded to 1/1024), ORT computes them exactly"),
    "v1_bicubic_asymmetric": (lambda x: v1.resize_bicubic(x, (8, 12)), X,
                              "tf.compat.v1.image.resize_bicubic(x, (8, 12))  # legacy defaults",
                              "TF legacy bicubic (half_pixel_centers=False) uses Keys a=-0.75 with edge-clamped "
                              "taps; tf2onnx writes cubic_coeff_a=-0.5, exclude_outside=1 for every bicubic, so a "
                              "mismatch is expected"),
    "v1_bicubic_align_corners": (lambda x: v1.resize_bicubic(x, (8, 12), align_corners=True), X,
                                 "tf.compat.v1.image.resize_bicubic(x, (8, 12), align_corners=True)",
                                 "TF legacy bicubic uses Keys a=-0.75 with edge-clamped taps; tf2onnx writes "
                                 "cubic_coeff_a=-0.5, exclude_outside=1 -> mismatch expected"),
    "image_resize_area_3x4": (lambda x: tf.image.resize(x, (3, 4), method="area"), X,
                              "tf.image.resize(x, (3, 4), method='area')",
                              "tf2onnx maps ResizeArea to Resize mode=nearest: not an area average, so it does not "
                              "match TF"),
    "image_resize_bilinear_dynamic_x2": (lambda x: tf.image.resize(x, tf.shape(x)[1:3] * 2, method="bilinear"),
                                         (None, None, None, 2),
                                         "tf.image.resize(x, tf.shape(x)[1:3] * 2, method='bilinear')  # dynamic "
                                         "N,H,W", "size computed in the graph from Shape(x) -> Resize sizes"),
    "v1_bilinear_align_corners": (lambda x: v1.resize_bilinear(x, (8, 12), align_corners=True), X,
                                  "tf.compat.v1.image.resize_bilinear(x, (8, 12), align_corners=True)", ""),
    "v1_bilinear_half_pixel": (lambda x: v1.resize_bilinear(x, (8, 12), half_pixel_centers=True), X,
                               "tf.compat.v1.image.resize_bilinear(x, (8, 12), half_pixel_centers=True)", ""),
    "v1_bilinear_asymmetric": (lambda x: v1.resize_bilinear(x, (8, 12)), X,
                               "tf.compat.v1.image.resize_bilinear(x, (8, 12))  # align_corners=False, "
                               "half_pixel_centers=False (legacy)", ""),
    "v1_bilinear_asymmetric_x2": (lambda x: v1.resize_bilinear(x, (10, 14)), X,
                                  "tf.compat.v1.image.resize_bilinear(x, (10, 14))  # legacy asymmetric, x2", ""),
    "v1_nearest_half_pixel": (lambda x: v1.resize_nearest_neighbor(x, (8, 12), half_pixel_centers=True), X,
                              "tf.compat.v1.image.resize_nearest_neighbor(x, (8, 12), half_pixel_centers=True)", ""),
    "v1_nearest_align_corners": (lambda x: v1.resize_nearest_neighbor(x, (8, 12), align_corners=True), X,
                                 "tf.compat.v1.image.resize_nearest_neighbor(x, (8, 12), align_corners=True)", ""),
    "v1_nearest_asymmetric": (lambda x: v1.resize_nearest_neighbor(x, (8, 12)), X,
                              "tf.compat.v1.image.resize_nearest_neighbor(x, (8, 12))  # legacy defaults", ""),
    "crop_and_resize": (lambda x: tf.image.crop_and_resize(
        x, tf.constant([[0.1, 0.2, 0.8, 0.9], [-0.2, 0.0, 1.0, 1.3]]), tf.constant([0, 0]), (4, 6),
        extrapolation_value=-1.0), X,
        "tf.image.crop_and_resize(x, boxes=[[.1,.2,.8,.9],[-.2,0,1,1.3]], box_indices=[0,0], crop_size=(4,6), "
        "extrapolation_value=-1.0)",
        "Resize is inside a Loop body (one iteration per box); second box reaches outside the image"),
    "image_resize_bilinear_antialias": (lambda x: tf.image.resize(x, (3, 4), method="bilinear", antialias=True), X,
                                        "tf.image.resize(x, (3, 4), method='bilinear', antialias=True)", ""),
    "image_resize_lanczos3": (lambda x: tf.image.resize(x, (8, 12), method="lanczos3"), X,
                              "tf.image.resize(x, (8, 12), method='lanczos3')", ""),
}

# (case, opset)
FN_PLAN = [
    *[(c, 13) for c in FN_CASES],
    ("v1_nearest_half_pixel", 11), ("v1_bilinear_align_corners", 11), ("image_resize_bilinear_8x12", 11),
    ("image_resize_bilinear_8x12", 18), ("v1_nearest_half_pixel", 18), ("crop_and_resize", 18),
    ("v1_bilinear_asymmetric_x2", 9), ("v1_bilinear_asymmetric", 10), ("v1_nearest_asymmetric", 10),
    ("v1_bilinear_half_pixel", 10),
]


# --------------------------------------------------------------------------- Keras models
def keras_upsampling(interpolation: str, factor=2) -> keras.Model:
    inp = keras.Input((5, 7, 2), batch_size=1, name="x")
    out = keras.layers.UpSampling2D(factor, interpolation=interpolation, name="y")(inp)
    return keras.Model(inp, out, name=f"upsampling2d_{interpolation}")


def keras_conv_upsample() -> keras.Model:
    keras.utils.set_random_seed(1)
    inp = keras.Input((6, 8, 3), batch_size=1, name="x")
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inp)
    out = keras.layers.UpSampling2D(2, interpolation="bilinear", name="y")(h)
    return keras.Model(inp, out, name="conv_upsample_bilinear")


def _randomize_bn(model: keras.Model, seed: int):
    rs = np.random.RandomState(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([
                (1 + 0.1 * rs.randn(*gamma.shape)).astype(np.float32),
                (0.1 * rs.randn(*beta.shape)).astype(np.float32),
                (0.1 * rs.randn(*mean.shape)).astype(np.float32),
                (1 + 0.2 * rs.rand(*var.shape)).astype(np.float32),
            ])


def keras_unet() -> keras.Model:
    """Tiny U-Net, NHWC: 2 down (MaxPool) / 2 up (UpSampling2D bilinear) with skip concatenation."""
    keras.utils.set_random_seed(2)
    L = keras.layers

    def block(h, ch, name):
        h = L.Conv2D(ch, 3, padding="same", use_bias=False, name=f"{name}_conv")(h)
        h = L.BatchNormalization(name=f"{name}_bn")(h)
        return L.ReLU(name=f"{name}_relu")(h)

    inp = keras.Input((16, 16, 3), batch_size=1, name="image")
    e1 = block(inp, 8, "enc1")
    e2 = block(L.MaxPooling2D(2, name="pool1")(e1), 12, "enc2")
    b = block(L.MaxPooling2D(2, name="pool2")(e2), 16, "bottleneck")
    u2 = L.UpSampling2D(2, interpolation="bilinear", name="up2")(b)
    d2 = block(L.Concatenate(name="cat2")([u2, e2]), 12, "dec2")
    u1 = L.UpSampling2D(2, interpolation="bilinear", name="up1")(d2)
    d1 = block(L.Concatenate(name="cat1")([u1, e1]), 8, "dec1")
    out = L.Conv2D(1, 1, activation="sigmoid", name="mask")(d1)
    model = keras.Model(inp, out, name="tiny_unet")
    _randomize_bn(model, 3)
    return model


KERAS_PLAN = [
    # (file stem, model factory, opset, source, notes)
    ("tf2onnx13_keras_upsampling2d_bilinear_x2", lambda: keras_upsampling("bilinear"), 13,
     "keras.layers.UpSampling2D(2, interpolation='bilinear')", ""),
    ("tf2onnx13_keras_upsampling2d_bilinear_x3", lambda: keras_upsampling("bilinear", 3), 13,
     "keras.layers.UpSampling2D(3, interpolation='bilinear')", ""),
    ("tf2onnx13_keras_upsampling2d_nearest_x2", lambda: keras_upsampling("nearest"), 13,
     "keras.layers.UpSampling2D(2, interpolation='nearest')",
     "Keras 3 implements nearest UpSampling2D with ops.repeat, so the ONNX graph has NO Resize (Tile/Reshape)"),
    ("tf2onnx11_keras_upsampling2d_bilinear_x2", lambda: keras_upsampling("bilinear"), 11,
     "keras.layers.UpSampling2D(2, interpolation='bilinear')", ""),
    ("tf2onnx18_keras_upsampling2d_bilinear_x2", lambda: keras_upsampling("bilinear"), 18,
     "keras.layers.UpSampling2D(2, interpolation='bilinear')", ""),
    ("tf2onnx13_keras_conv_upsample_bilinear", keras_conv_upsample, 13,
     "Conv2D(4, 3, padding='same', relu) -> UpSampling2D(2, interpolation='bilinear')",
     "same model (same weights) as keras_upsample_bilinear.keras"),
    ("cnn_keras_unet_tf2onnx13", keras_unet, 13,
     "tiny Keras U-Net (NHWC): [Conv-BN-ReLU, MaxPool] x2, bottleneck, [UpSampling2D bilinear, Concatenate, "
     "Conv-BN-ReLU] x2, Conv1x1 + sigmoid",
     "real-CNN style fixture: Transpose pairs around every Resize"),
]



def unsupported_ops(model: onnx.ModelProto) -> list[str]:
    """Ops tf2onnx left unconverted (TF op types that are not ONNX ops)."""
    import onnx.defs

    bad = []
    for n in fc.iter_nodes(model.graph):
        if n.domain in ("", "ai.onnx") and not onnx.defs.has(n.op_type):
            bad.append(n.op_type)
    return sorted(set(bad))


def _dict_output(fn):
    def wrapped(x):
        return {"y": fn(x)}  # dict output -> the ONNX output is named "y"

    return wrapped


def main():
    entries, produced, skipped = [], set(), []
    ver_notes = {}

    print(f"tf.function cases ({EXPORTER})")
    for case, opset in FN_PLAN:
        fn, shape, source, notes = FN_CASES[case]
        stem = f"tf2onnx{opset}_{case}"
        path = HERE / f"{stem}.onnx"
        feed_shape = tuple(d if d is not None else s for d, s in zip(shape, X))
        x = rnd(feed_shape, seed=sum(map(ord, case)) % 10_000)
        spec = (tf.TensorSpec(shape, tf.float32, name="x"),)
        func = tf.function(_dict_output(fn), input_signature=spec)
        try:
            with fc.quiet():
                model, _ = tf2onnx.convert.from_function(func, input_signature=spec, opset=opset)
        except Exception as exc:  # noqa: BLE001
            msg = " ".join(str(exc).split())[:200]
            skipped.append(f"{stem}: tf2onnx error: {msg}")
            print(f"  SKIP {stem}: tf2onnx error: {msg}")
            continue
        bad = unsupported_ops(model)
        if bad:
            skipped.append(f"{stem}: tf2onnx leaves unconverted TF op(s) {bad}; ORT cannot load it")
            print(f"  SKIP {stem}: unconverted TF op(s) {bad}")
            continue
        onnx.save(model, str(path))
        expected = {"y": func(tf.constant(x))["y"].numpy()}
        entry = fc.finalize(path, inputs={"x": x}, expected=expected, exporter=f"{EXPORTER} opset {opset}",
                            source=source, script=SCRIPT, notes=notes, expected_from="TensorFlow eager")
        entries.append(entry)
        produced.update([path.name, f"{stem}.io.npz"])

    print("Keras models (tf2onnx.convert.from_keras)")
    for stem, factory, opset, source, notes in KERAS_PLAN:
        keras.utils.set_random_seed(0)
        model = factory()
        in_name = model.inputs[0].name
        shape = tuple(model.inputs[0].shape)
        x = rnd(shape, seed=sum(map(ord, stem)) % 10_000)
        path = HERE / f"{stem}.onnx"
        spec = (tf.TensorSpec(shape, tf.float32, name=in_name),)
        with fc.quiet():
            onnx_model, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=opset)
        onnx.save(onnx_model, str(path))
        out_name = onnx_model.graph.output[0].name
        expected = {out_name: np.asarray(model(x, training=False))}
        entry = fc.finalize(path, inputs={onnx_model.graph.input[0].name: x}, expected=expected,
                            exporter=f"{EXPORTER} opset {opset}", source=source, script=SCRIPT, notes=notes,
                            expected_from="Keras (model(x, training=False))")
        entries.append(entry)
        produced.update([path.name, f"{stem}.io.npz"])

        if stem == "tf2onnx13_keras_conv_upsample_bilinear":
            kpath = HERE / "keras_upsample_bilinear.keras"
            model.save(str(kpath))
            reloaded = keras.saving.load_model(str(kpath))
            diff = float(np.max(np.abs(np.asarray(reloaded(x)) - expected[out_name])))
            fc.save_io(kpath.with_suffix(""), {in_name: x}, {out_name: expected[out_name]})
            size = kpath.stat().st_size
            assert size < fc.MAX_FILE_BYTES, size
            print(f"  {kpath.name:48s} keras model file ({size} bytes), reload diff {diff:.3g}")
            entries.append({
                "file": kpath.name,
                "exporter": f"keras.Model.save (Keras {keras.__version__}, TF {TF_VERSION})",
                "source": "keras.Model([Conv2D(4, 3, padding='same', activation='relu'), "
                          "UpSampling2D(2, interpolation='bilinear')]).save(...)",
                "opset": None,
                "resize_nodes": 0,
                "external_data": False,
                "framework_max_abs_diff": None,
                "notes": "Keras 3 model file (not ONNX), input NHWC (1,6,8,3); for a Keras->ONNX path test. "
                         f"Its tf2onnx opset-13 conversion is {stem}.onnx; .io.npz holds the Keras output",
                "resize_attrs": [],
                "inputs": [in_name],
                "outputs": [out_name],
                "io": "keras_upsample_bilinear.io.npz",
                "data_files": [],
                "script": SCRIPT,
            })
            produced.update([kpath.name, "keras_upsample_bilinear.io.npz"])

    fc.remove_stale(("tf2onnx", "keras_", "cnn_keras_"), produced)
    fc.write_manifest(SCRIPT, entries)
    print(f"{len(entries)} fixtures written; not produced:")
    for s in skipped:
        print("  -", s)


if __name__ == "__main__":
    main()
