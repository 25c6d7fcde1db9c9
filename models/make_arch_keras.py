"""Architecture corpus, Keras part: a U-Net and a DeepLabV3+ (MobileNetV2 backbone from keras.applications, no
weights), random weights, converted by tf2onnx at opset 13.

Made with tensorflow-cpu 2.21.0, Keras 3.15.1, tf2onnx 1.17.0, onnx 1.23.2, onnxruntime 1.32.0, numpy 2.4:

    python models/make_arch_keras.py

Writes ``architectures/keras_*_tf2onnx13{,_dynbatch}.onnx`` + ``.io.npz`` and this script's entries of
``architectures.json`` (not ``manifest.json``: see ``_arch_common.py``). Nothing is downloaded (any network
connection raises).
"""

from __future__ import annotations

import itertools
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

import _arch_common as ac  # noqa: E402

ac.forbid_network()

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402
import tf2onnx  # noqa: E402

SCRIPT = "make_arch_keras.py"
FAMILY = "keras"
OPSET = 13
warnings.filterwarnings("ignore")
tf.get_logger().setLevel(logging.ERROR)
logging.getLogger("tf2onnx").setLevel(logging.ERROR)
EXPORTER = f"tf2onnx {tf2onnx.__version__} / TF {tf.__version__} / Keras {keras.__version__}"
L = keras.layers


def conv_bn_relu(h, filters, name, kernel=3, dilation=1):
    h = L.Conv2D(filters, kernel, padding="same", dilation_rate=dilation, use_bias=False, name=f"{name}_conv")(h)
    h = L.BatchNormalization(name=f"{name}_bn")(h)
    return L.ReLU(name=f"{name}_relu")(h)


def unet(side=64, filters=(8, 16, 32, 64), classes=3) -> keras.Model:
    """The classic U-Net layout: [2x Conv-BN-ReLU, MaxPool] per level, bottleneck, [UpSampling2D(bilinear),
    Concatenate with the skip, 2x Conv-BN-ReLU] per level, 1x1 Conv + softmax."""
    inp = keras.Input((side, side, 3), batch_size=1, name="image")
    h, skips = inp, []
    for i, f in enumerate(filters[:-1]):
        h = conv_bn_relu(conv_bn_relu(h, f, f"down{i}a"), f, f"down{i}b")
        skips.append(h)
        h = L.MaxPooling2D(2, name=f"pool{i}")(h)
    h = conv_bn_relu(conv_bn_relu(h, filters[-1], "mid_a"), filters[-1], "mid_b")
    for i, f in reversed(list(enumerate(filters[:-1]))):
        h = L.UpSampling2D(2, interpolation="bilinear", name=f"up{i}")(h)
        h = L.Concatenate(name=f"cat{i}")([h, skips[i]])
        h = conv_bn_relu(conv_bn_relu(h, f, f"dec{i}a"), f, f"dec{i}b")
    out = L.Conv2D(classes, 1, activation="softmax", name="logits")(h)
    return keras.Model(inp, out, name="unet")


def deeplabv3plus(side=96, filters=16, classes=3) -> keras.Model:
    """DeepLabV3+ as in the keras.io example (dilated spatial pyramid pooling with an image-pooling branch
    upsampled back by UpSampling2D(bilinear), decoder x4 bilinear + low-level skip, final x4 bilinear), on a
    keras.applications MobileNetV2(alpha=0.35, weights=None) backbone instead of ResNet50."""
    inp = keras.Input((side, side, 3), batch_size=1, name="image")
    backbone = keras.applications.MobileNetV2(input_tensor=inp, alpha=0.35, include_top=False, weights=None)
    high = backbone.get_layer("block_13_expand_relu").output  # stride 16
    low = backbone.get_layer("block_3_expand_relu").output  # stride 4

    dims = high.shape
    pool = L.AveragePooling2D(pool_size=(dims[-3], dims[-2]), name="aspp_pool")(high)
    pool = conv_bn_relu(pool, filters, "aspp_pool", kernel=1)
    pool = L.UpSampling2D(size=(dims[-3], dims[-2]), interpolation="bilinear", name="aspp_pool_up")(pool)
    branches = [pool, conv_bn_relu(high, filters, "aspp_1", kernel=1)]
    branches += [conv_bn_relu(high, filters, f"aspp_d{r}", dilation=r) for r in (6, 12, 18)]
    x = conv_bn_relu(L.Concatenate(name="aspp_cat")(branches), filters, "aspp_out", kernel=1)

    x = L.UpSampling2D(size=(low.shape[1] // x.shape[1], low.shape[2] // x.shape[2]), interpolation="bilinear",
                       name="dec_up")(x)
    low = conv_bn_relu(low, filters // 2, "dec_low", kernel=1)
    x = L.Concatenate(name="dec_cat")([x, low])
    x = conv_bn_relu(conv_bn_relu(x, filters, "dec_a"), filters, "dec_b")
    x = L.UpSampling2D(size=(side // x.shape[1], side // x.shape[2]), interpolation="bilinear", name="out_up")(x)
    out = L.Conv2D(classes, 1, name="logits")(x)
    return keras.Model(inp, out, name="deeplabv3plus")


def randomize_batchnorm(model: keras.Model, seed: int) -> None:
    """Random moving statistics and affine parameters, so that BN is not an identity."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            n = gamma.shape
            layer.set_weights([1 + 0.1 * rng.standard_normal(n), 0.1 * rng.standard_normal(n),
                               0.1 * rng.standard_normal(n), 1 + 0.2 * rng.random(n)])


PLAN = [  # stem, arch, builder, source
    ("keras_unet", "U-Net", unet,
     "Keras U-Net (NHWC 1x64x64x3): filters (8, 16, 32, 64), [2x Conv-BN-ReLU, MaxPool] x3, [UpSampling2D(2, "
     "bilinear), Concatenate, 2x Conv-BN-ReLU] x3, Conv1x1 softmax"),
    ("keras_deeplabv3plus", "DeepLabV3Plus", deeplabv3plus,
     "Keras DeepLabV3+ (keras.io example layout, NHWC 1x96x96x3) on keras.applications.MobileNetV2(alpha=0.35, "
     "weights=None) block_13/block_3 features, 16 filters: image pooling + UpSampling2D(6x6, bilinear), "
     "dilated 6/12/18 branches, decoder UpSampling2D(4, bilinear) + low-level skip, final UpSampling2D(4, bilinear)"),
]


def main() -> None:
    print(EXPORTER)
    ac.ARCH_DIR.mkdir(exist_ok=True)
    entries, failures, written = [], [], set()
    # every model twice: batch 1, and a dynamic batch (a None batch in the signature, as a Keras model is usually saved)
    for (seed, (stem, arch, builder, source)), dynamic_batch in itertools.product(enumerate(PLAN), (False, True)):
        keras.utils.set_random_seed(seed)
        model = builder()
        randomize_batchnorm(model, seed + 100)
        name = f"{stem}_tf2onnx{OPSET}" + ("_dynbatch" if dynamic_batch else "")
        kind = "tf2onnx+N" if dynamic_batch else "tf2onnx"
        path = ac.ARCH_DIR / f"{name}.onnx"
        shape = tuple(model.inputs[0].shape)
        x = ac.seeded_inputs({"image": shape}, seed + 200)["image"]
        spec = (tf.TensorSpec((None, *shape[1:]) if dynamic_batch else shape, tf.float32, name="image"),)
        try:
            with ac.fc.quiet():
                onnx_model, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=OPSET)
            onnx.save(onnx_model, str(path))
            expected = {onnx_model.graph.output[0].name: np.asarray(model(x, training=False))}
            entry = ac.fc.finalize(path, inputs={onnx_model.graph.input[0].name: x}, expected=expected,
                                   exporter=f"{EXPORTER} opset {OPSET}", source=source, script=SCRIPT,
                                   notes=("dynamic batch" if dynamic_batch else "static shapes") + "; random weights",
                                   expected_from="Keras (model(x, training=False))")
        except Exception as exc:  # noqa: BLE001
            path.unlink(missing_ok=True)
            reason = ac.first_line(exc)
            print(f"  {name}: NOT PRODUCED ({reason})")
            failures.append({"stem": name, "family": FAMILY, "arch": arch, "exporter_kind": kind,
                             "opset": OPSET, "reason": reason, "script": SCRIPT})
            continue
        entry = ac.arch_entry(entry, family=FAMILY, exporter_kind=kind, opset=OPSET, arch=arch,
                              config=f"params={model.count_params()}")
        entries.append(entry)
        written.update(Path(f).name for f in [entry["file"], entry["io"]])
    ac.remove_stale(tuple(p[0] + "_" for p in PLAN), written)
    ac.write_arch_manifest(SCRIPT, entries, failures, {FAMILY})


if __name__ == "__main__":
    main()
