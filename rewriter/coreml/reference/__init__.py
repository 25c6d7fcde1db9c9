"""Reference evaluator of saved Core ML models, in numpy, from Apple's documented semantics.

Core ML cannot predict on Linux, so the numbers of an exported model are checked here: ``load(path)``
reads the SAVED file back (``.mlpackage`` -> ``spec.mlProgram`` plus the package's ``weight.bin`` blobs;
``.mlmodel`` -> ``spec.neuralNetwork``) and ``run(feeds)`` evaluates it op by op / layer by layer.

Independence: nothing here imports the exporter. Each MIL op is implemented from its coremltools
docstring (``coremltools/converters/mil/mil/ops/defs``), each NeuralNetwork layer from the comments of
NeuralNetwork.proto; resize grids are transcribed in ``rewriter.coreml.kernels``. Behaviour Apple does
not document (a fractional nearest-neighbour factor, Upsample with an undefined grid...) raises
``UndocumentedError`` instead of guessing.

``resize_ops()`` lists every resizing op of the saved model with its per-axis weight matrices for the
lengths it will see, so an exporter can assert that what was saved samples exactly like the ONNX node.

Modules: ``base`` (``read_spec``, the ``ReferenceModel`` interface, ``ResizeOp``), ``resizing`` (the documented
grids of every resizing op and layer as per-axis matrices), ``mil`` / ``mil_ops`` (ML programs and their ops)
and ``nn`` / ``nn_layers`` (NeuralNetwork specs and their layers).
"""

from __future__ import annotations

import os
from pathlib import Path

from rewriter.coreml.kernels import UndocumentedError
from rewriter.coreml.reference.base import ReferenceModel, ResizeOp, read_spec
from rewriter.coreml.reference.mil import MILModel
from rewriter.coreml.reference.nn import NNModel


def load(path: str | os.PathLike) -> ReferenceModel:
    """The evaluator of the saved model at ``path``, by the model type its spec declares."""
    path = Path(path)
    spec = read_spec(path)
    kind = spec.WhichOneof("Type")
    if kind == "mlProgram":
        return MILModel(path, spec)
    if kind == "neuralNetwork":
        return NNModel(path, spec)
    raise UndocumentedError(f"{path}: model type {kind!r} is not evaluated by the reference")


__all__ = ["MILModel", "ReferenceModel", "ResizeOp", "UndocumentedError", "load", "read_spec"]
