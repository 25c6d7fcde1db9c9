"""Reference evaluator of ML programs (``.mlpackage`` -> ``spec.mlProgram``): values read from the spec and
the package's ``weight.bin`` blobs, ops run in program order (``MILModel``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from rewriter.coreml.kernels import UndocumentedError
from rewriter.coreml.reference.base import ReferenceModel, ResizeOp
from rewriter.coreml.reference.mil_ops import MIL_OPS
from rewriter.coreml.reference.resizing import MIL_RESIZE_WEIGHTS

_MIL_DTYPES = {
    "BOOL": np.bool_, "STRING": object, "FLOAT16": np.float16, "FLOAT32": np.float32, "FLOAT64": np.float64,
    "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
    "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
}


def _package_root(path: Path) -> Path:
    """The directory ``@model_path`` refers to: where the package's root model file lives (Manifest.json)."""
    manifest = json.loads((path / "Manifest.json").read_text())
    root = manifest["rootModelIdentifier"]
    entry = manifest["itemInfoEntries"][root]
    return (path / "Data" / entry["path"]).parent


class MILModel(ReferenceModel):
    """The main function of a saved ML program."""

    format = "mlprogram"

    def __init__(self, path: Path, spec) -> None:
        super().__init__(path, spec)
        from coremltools.proto import MIL_pb2

        self._pb = MIL_pb2
        self.function = spec.mlProgram.functions["main"]
        self.opset = self.function.opset
        self.block = self.function.block_specializations[self.opset]
        self.weights_root = _package_root(path) if path.is_dir() else path.parent
        self._blobs: dict[str, Any] = {}
        self._consts: dict[str, Any] = {}
        self.op_types = [op.type for op in self.block.operations]

    # ------------------------------------------------------------------ values

    def _dtype(self, value_type) -> tuple[Any, tuple[int, ...] | None]:
        which = value_type.WhichOneof("type")
        if which != "tensorType":
            raise UndocumentedError(f"value type {which!r} is not evaluated")
        t = value_type.tensorType
        dtype = _MIL_DTYPES.get(self._pb.DataType.Name(t.dataType))
        if dtype is None:
            raise UndocumentedError(f"MIL data type {self._pb.DataType.Name(t.dataType)}")
        dims = self._dims(value_type)
        return dtype, (None if None in dims else dims)  # type: ignore[return-value]

    @staticmethod
    def _dims(value_type) -> tuple[int | None, ...]:
        """The declared dimensions, None for a flexible one (a symbolic batch)."""
        return tuple(int(d.constant.size) if d.WhichOneof("dimension") == "constant" else None
                     for d in value_type.tensorType.dimensions)

    @staticmethod
    def _fits(shape: tuple[int, ...], dims: tuple[int | None, ...]) -> bool:
        return len(shape) == len(dims) and all(d is None or d == n for n, d in zip(shape, dims))

    def _blob(self, file_name: str):
        from coremltools.libmilstoragepython import _BlobStorageReader

        rel = file_name.replace("@model_path/", "")
        full = str(self.weights_root / rel)
        if full not in self._blobs:
            self._blobs[full] = _BlobStorageReader(full)
        return self._blobs[full]

    def value(self, v) -> Any:
        dtype, shape = self._dtype(v.type)
        which = v.WhichOneof("value")
        if which == "immediateValue":
            imm = v.immediateValue
            if imm.WhichOneof("value") != "tensor":
                raise UndocumentedError("non-tensor immediate value")
            t = imm.tensor
            kind = t.WhichOneof("value")
            raw = getattr(t, kind).values
            if kind == "bytes":
                arr = np.frombuffer(raw, dtype=dtype)
            elif kind == "strings":
                arr = np.array(list(raw), dtype=object)
            else:
                arr = np.array(list(raw)).astype(dtype)
        elif which == "blobFileValue":
            reader = self._blob(v.blobFileValue.fileName)
            offset = v.blobFileValue.offset
            if dtype == np.float32:
                arr = np.asarray(reader.read_float_data(offset))
            elif dtype == np.float16:
                arr = np.frombuffer(np.asarray(reader.read_fp16_data(offset)).tobytes(), np.float16)
            elif dtype == np.int32:
                arr = np.asarray(reader.read_int32_data(offset))
            elif dtype == np.int8:
                arr = np.asarray(reader.read_int8_data(offset))
            elif dtype == np.uint8:
                arr = np.asarray(reader.read_uint8_data(offset))
            elif dtype == np.int16:
                arr = np.asarray(reader.read_int16_data(offset))
            elif dtype == np.uint16:
                arr = np.asarray(reader.read_uint16_data(offset))
            else:
                raise UndocumentedError(f"blob of {dtype}")
        else:
            raise UndocumentedError(f"value kind {which!r}")
        if shape is None:
            return arr
        if dtype is object and shape == ():
            return str(arr.reshape(-1)[0])
        return arr.reshape(shape)

    # ------------------------------------------------------------------ evaluation

    def _args(self, op, env: dict[str, Any]) -> dict[str, Any]:
        args: dict[str, Any] = {}
        for key, arg in op.inputs.items():
            vals = []
            for b in arg.arguments:
                which = b.WhichOneof("binding")
                vals.append(env[b.name] if which == "name" else self.value(b.value))
            args[key] = vals if len(vals) != 1 or key == "values" else vals[0]
        return args

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        env: dict[str, Any] = {}
        for inp in self.function.inputs:
            if inp.name not in feeds:
                raise KeyError(f"missing input {inp.name!r}")
            dtype, _ = self._dtype(inp.type)
            x = np.asarray(feeds[inp.name]).astype(dtype)
            if not (self._fits(x.shape, dims := self._dims(inp.type)) and self.accepts(inp.name, x.shape)):
                raise ValueError(f"input {inp.name!r} has shape {x.shape}, the model wants {dims}")
            env[inp.name] = x
        for op in self.block.operations:
            if op.type == "const":
                env[op.outputs[0].name] = self.value(op.attributes["val"])
                continue
            impl = MIL_OPS.get(op.type)
            if impl is None:
                raise UndocumentedError(f"MIL op {op.type!r} is not implemented by the reference evaluator")
            args = self._args(op, env)
            result = impl(args)
            results = result if isinstance(result, (list, tuple)) else [result]
            for out, r in zip(op.outputs, results):
                dtype, _ = self._dtype(out.type)
                r = np.asarray(r)
                if dtype is not object:
                    r = r.astype(dtype)
                if not self._fits(r.shape, dims := self._dims(out.type)):
                    raise UndocumentedError(f"{op.type} {out.name!r}: reference shape {r.shape} != declared {dims}")
                env[out.name] = r
        return {name: env[name] for name in self.block.outputs}

    def resize_ops(self, input_shapes: dict[str, tuple[int, ...]] | None = None) -> list[ResizeOp]:
        """Every resize op with its matrices, from the saved parameters (ML programs record every shape)."""
        shapes: dict[str, tuple[int | None, ...]] = {}
        for inp in self.function.inputs:
            shapes[inp.name] = self._dims(inp.type)
        found = []
        env: dict[str, Any] = {}
        for op in self.block.operations:
            for out in op.outputs:
                shapes[out.name] = self._dims(out.type)
            if op.type == "const":
                env[op.outputs[0].name] = self.value(op.attributes["val"])
                continue
            if op.type not in MIL_RESIZE_WEIGHTS:
                continue
            args: dict[str, Any] = {}
            for key, arg in op.inputs.items():
                b = arg.arguments[0]
                if b.WhichOneof("binding") == "value":
                    args[key] = self.value(b.value)
                elif key == "x":
                    args[key] = b.name
                elif b.name in env:
                    args[key] = env[b.name]
                else:
                    raise UndocumentedError(f"{op.type}: parameter {key!r} is not a constant")
            x_shape = shapes[args["x"]]
            if len(x_shape) < 2 or None in x_shape[-2:]:
                raise UndocumentedError(f"{op.type}: the spatial size of its input {args['x']!r} is not declared")
            params = {k: (v.item() if isinstance(v, np.ndarray) and v.ndim == 0 else v) for k, v in args.items() if k != "x"}
            wh, ww = MIL_RESIZE_WEIGHTS[op.type](params, int(x_shape[-2]), int(x_shape[-1]))
            name = self.value(op.attributes["name"]) if "name" in op.attributes else op.outputs[0].name
            found.append(ResizeOp(str(name), op.type, params, tuple(x_shape), shapes[op.outputs[0].name], wh, ww))
        return found
