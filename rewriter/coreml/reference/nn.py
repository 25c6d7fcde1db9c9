"""Reference evaluator of NeuralNetwork specs (``.mlmodel`` -> ``spec.neuralNetwork``), layer by layer
(``NNModel``); the layers themselves are in ``nn_layers``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rewriter.coreml.kernels import UndocumentedError
from rewriter.coreml.reference.base import ReferenceModel, ResizeOp
from rewriter.coreml.reference.nn_layers import NN_LAYERS
from rewriter.coreml.reference.resizing import resize_bilinear_weights, upsample_weights


class NNModel(ReferenceModel):
    """The layers of a saved NeuralNetwork spec."""

    format = "neuralnetwork"

    def __init__(self, path: Path, spec) -> None:
        super().__init__(path, spec)
        self.layers = list(spec.neuralNetwork.layers)
        self.layer_types = [layer.WhichOneof("layer") for layer in self.layers]

    def _input_shapes(self) -> dict[str, tuple[int, ...]]:
        out = {}
        for i in self.spec.description.input:
            out[i.name] = tuple(int(s) for s in i.type.multiArrayType.shape)
        return out

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        env: dict[str, np.ndarray] = {}
        for name, shape in self._input_shapes().items():
            x = np.asarray(feeds[name], dtype=np.float32)
            if not self.accepts(name, x.shape):
                raise ValueError(f"input {name!r} has shape {x.shape}, the model wants {shape}")
            env[name] = x
        for layer in self.layers:
            kind = layer.WhichOneof("layer")
            impl = NN_LAYERS.get(kind)
            if impl is None:
                raise UndocumentedError(f"NeuralNetwork layer {kind!r} is not implemented by the reference evaluator")
            result = impl(layer, [env[n] for n in layer.input])
            results = result if isinstance(result, (list, tuple)) else [result]
            for name, r in zip(layer.output, results):
                env[name] = np.asarray(r, dtype=np.float32)  # NeuralNetwork blobs are float32 (or fp16 on device)
        return {name: env[name] for name in self.output_names}

    def resize_ops(self, input_shapes: dict[str, tuple[int, ...]] | None = None) -> list[ResizeOp]:
        """Upsample / ResizeBilinear layers with their matrices.

        NeuralNetwork specs do not store blob shapes: ``input_shapes`` gives a layer's input shape by layer
        name; without it the shapes come from running the reference on zeros.
        """
        shapes: dict[str, tuple[int, ...]] = {}
        if input_shapes is None:
            zeros = {name: np.zeros(shape, dtype=np.float32) for name, shape in self._input_shapes().items()}
            env_shapes: dict[str, tuple[int, ...]] = {}
            env = dict(zeros)
            for layer in self.layers:
                impl = NN_LAYERS.get(layer.WhichOneof("layer"))
                if impl is None:
                    raise UndocumentedError(f"NeuralNetwork layer {layer.WhichOneof('layer')!r} is not implemented by the reference evaluator")
                res = impl(layer, [env[n] for n in layer.input])
                for name, r in zip(layer.output, res if isinstance(res, (list, tuple)) else [res]):
                    env[name] = np.asarray(r, dtype=np.float32)
                    env_shapes[name] = env[name].shape
                shapes[layer.name] = env[layer.input[0]].shape if layer.input else ()
        else:
            shapes = dict(input_shapes)
        found = []
        for layer in self.layers:
            kind = layer.WhichOneof("layer")
            if kind not in ("upsample", "resizeBilinear"):
                continue
            if layer.name not in shapes:
                raise UndocumentedError(f"input shape of layer {layer.name!r} unknown")
            shape = tuple(shapes[layer.name])
            fn = upsample_weights if kind == "upsample" else resize_bilinear_weights
            wh, ww, params = fn(getattr(layer, kind), int(shape[-2]), int(shape[-1]))
            out = shape[:-2] + (wh.shape[0], ww.shape[0])
            found.append(ResizeOp(layer.name, f"NN {kind[0].upper()}{kind[1:]}", params, shape, out, wh, ww))
        return found
