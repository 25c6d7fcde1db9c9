"""Keras / TensorFlow models as input: converted to ONNX through tf2onnx (the ``[tf]`` extra).

``is_keras_path`` recognises ``.keras`` / ``.h5`` / ``.hdf5`` files and SavedModel directories;
``keras_to_onnx`` loads them with TensorFlow and converts with ``tf2onnx.convert.from_keras`` (Keras
models) or ``tf2onnx.convert.from_function`` (a SavedModel's ``serving_default`` signature), opset 13 by
default. Without TensorFlow / tf2onnx it raises a one-line ``UsageError`` saying what to install.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from pathlib import Path

import onnx

from rewriter.errors import BadModelError, UsageError

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
DEFAULT_OPSET = 13
_INSTALL = "install rewriter[tf] (pip install 'rewriter[tf]': tensorflow-cpu + tf2onnx)"


def is_saved_model_dir(path: str | os.PathLike) -> bool:
    p = Path(path)
    return p.is_dir() and (p / "saved_model.pb").is_file()


def is_keras_path(path: str | os.PathLike) -> bool:
    p = Path(path)
    return p.suffix.lower() in KERAS_SUFFIXES or is_saved_model_dir(p)


def _import_tf():
    try:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        with contextlib.redirect_stderr(io.StringIO()):
            import tensorflow as tf
            import tf2onnx
            import tf2onnx.convert
    except ImportError as e:
        raise UsageError(f"reading a Keras/TensorFlow model needs TensorFlow and tf2onnx ({e.name} is missing): {_INSTALL}") from None
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    tf.get_logger().setLevel(logging.ERROR)
    return tf, tf2onnx


def _one_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else type(e).__name__


def keras_to_onnx(path: str | os.PathLike, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """Load a Keras file or SavedModel directory and convert it to ONNX with tf2onnx."""
    p = Path(path)
    if not p.exists():
        raise BadModelError(f"{p}: no such file or directory")
    tf, tf2onnx = _import_tf()
    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            if is_saved_model_dir(p):
                loaded = tf.saved_model.load(str(p))
                signatures = getattr(loaded, "signatures", {})
                if "serving_default" not in signatures:
                    raise UsageError(f"{p}: the SavedModel has no 'serving_default' signature to convert")
                fn = signatures["serving_default"]
                spec = tuple(fn.structured_input_signature[1].values())
                model, _ = tf2onnx.convert.from_function(fn, input_signature=spec, opset=opset)
            else:
                keras_model = tf.keras.models.load_model(str(p), compile=False)
                spec = tuple(
                    tf.TensorSpec(tuple(t.shape), t.dtype, name=t.name.split(":")[0]) for t in keras_model.inputs
                )
                model, _ = tf2onnx.convert.from_keras(keras_model, input_signature=spec, opset=opset)
    except (UsageError, BadModelError):
        raise
    except Exception as e:  # noqa: BLE001 - unreadable file, layers tf2onnx cannot convert...
        raise BadModelError(f"{p}: TensorFlow/tf2onnx could not convert it: {_one_line(e)}") from None
    return model


__all__ = ["KERAS_SUFFIXES", "is_keras_path", "is_saved_model_dir", "keras_to_onnx"]
