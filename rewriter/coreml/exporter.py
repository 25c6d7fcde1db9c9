"""`rewriter export coreml`: ONNX (or Keras via tf2onnx) -> Core ML with exactly the ONNX upsampling.

Pipeline: op coverage check (before any work) -> ``fix_resize(..., "coreml")`` (every Resize left equals a
Core ML primitive for its shapes; the rest is lowered exactly) -> MIL program built with coremltools' MIL
builder (``rewriter.coreml.translator`` running the handlers of ``rewriter.coreml.ops``) ->
``ct.convert(program)`` -> saved into a temporary directory beside the output -> the SAVED file is read back
and every resize op in it is checked against the ONNX node's weights with the documented Core ML grids
(``rewriter.coreml.reference``), so no coremltools backend rewrite (fractional nearest turned into
align-corners bilinear, 1e-4 integer snapping, default align_corners) can change a result silently ->
optional numeric verification -> atomic rename (``rewriter.atomic``).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from rewriter.atomic import Staging
from rewriter.coreml.batch import (
    DEFAULT_MAX_BATCH,
    PROBES,
    BatchAxis,
    batch_input,
    refusal,
    translate_flexible,
)
from rewriter.errors import (
    NotExactError,
    RewriterError,
    UnsupportedOpError,
    UsageError,
    VerificationError,
    dynamic_input_error,
)
from rewriter.fix import FixResult
from rewriter.graph import ModelView
from rewriter.ort_runtime import relative_error, session
from rewriter.targets import make_target
from rewriter.targets.base import native_tolerance

FORMATS = {"mlprogram": ".mlpackage", "neuralnetwork": ".mlmodel"}
PRECISIONS = ("float32", "float16")
VERIFY_RTOL = 1e-5
VERIFY_RTOL_FP16 = 1e-2  # float16 compute: every op rounds to 11 bits
VERIFY_BATCH = 3  # a flexible batch is verified at batch 1 and at this size
METADATA_SOURCE = "com.github.rewriter.source"
METADATA_VERSION = "com.github.rewriter.version"
METADATA_TARGET = "com.github.rewriter.deployment_target"


@dataclass
class CoreMLExport:
    """What ``export_coreml`` wrote and how each Resize was expressed."""

    path: Path
    fix: FixResult
    resize_ops: list[tuple[str, str]]  # (ONNX node name, what it is in Core ML)
    warnings: list[str] = field(default_factory=list)
    model_format: str = "mlprogram"
    deployment_target: str = "iOS15"
    input_names: dict[str, str] = field(default_factory=dict)  # ONNX name -> Core ML name
    output_names: dict[str, str] = field(default_factory=dict)
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    flexible_batch: BatchAxis | None = None  # inputs whose axis 0 is a RangeDim(1, max_batch) in the saved model
    verified_with: list[str] = field(default_factory=list)  # "reference", "coreml" (macOS predict)
    max_error: float | None = None
    # The largest amount by which a native op's documented grid may differ from ORT's weights (ORT's own float32
    # rounding of the grid, summed over the resized axes): the verification allows it on top of its tolerance.
    grid_bound: float = 0.0

    @property
    def native_count(self) -> int:
        return sum(1 for _, what in self.resize_ops if not what.startswith(("lowered", "removed")))

    def to_json(self) -> dict:
        return {
            "path": str(self.path),
            "format": self.model_format,
            "deployment_target": self.deployment_target,
            "resize_ops": [{"node": n, "coreml": w} for n, w in self.resize_ops],
            "warnings": self.warnings,
            "inputs": self.input_names,
            "outputs": self.output_names,
            "flexible_batch": None if self.flexible_batch is None else {
                "inputs": list(self.flexible_batch.inputs), "dimension": self.flexible_batch.label, "range": [1, self.flexible_batch.max_batch]},
            "verified_with": self.verified_with,
            "max_error": self.max_error,
            "grid_bound": self.grid_bound,
        }


# ---------------------------------------------------------------------------------------------------
# coremltools access (quiet: it prints import warnings and progress bars on stderr)


@contextlib.contextmanager
def _quiet(messages: list[str] | None = None):
    """Silence coremltools' stderr/stdout chatter; keep its logger warnings as messages."""
    handler = None
    logger = logging.getLogger("coremltools")
    if messages is not None:

        class _Collect(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if record.levelno >= logging.WARNING:
                    messages.append(record.getMessage())

        handler = _Collect()
        logger.addHandler(handler)
    old_propagate = logger.propagate
    logger.propagate = False
    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.propagate = old_propagate
        if handler is not None:
            logger.removeHandler(handler)


def _coremltools():
    try:
        with _quiet():
            import coremltools as ct
            from coremltools.converters.mil import Builder  # noqa: F401
    except ImportError:
        raise UsageError("rewriter export coreml needs coremltools: pip install 'rewriter[coreml]'") from None
    return ct


# ---------------------------------------------------------------------------------------------------
# Options


def _check_options(output: Path, deployment_target: str, model_format: str, compute_precision: str) -> None:
    make_target("coreml", {"deployment_target": deployment_target, "model_format": model_format})  # the target validates its options
    if compute_precision not in PRECISIONS:
        raise UsageError(f"--compute-precision {compute_precision!r}: expected float32 or float16")
    if compute_precision == "float16" and model_format == "neuralnetwork":
        raise UsageError("--compute-precision float16 applies to mlprogram only (NeuralNetwork models pick their precision at run time)")
    want = FORMATS[model_format]
    if output.suffix.lower() != want:
        raise UsageError(f"output {str(output)!r}: a {model_format} model is saved as *{want} (got {output.suffix or 'no extension'!r})")


def _resolve_shapes(model: onnx.ModelProto, input_shapes: dict[str, tuple[int, ...]] | None,
                    max_batch: int) -> tuple[dict[str, tuple[int, ...]], BatchAxis | None]:
    """Every graph input's static shape (batch 1 on a flexible batch axis), and that axis if there is one: the
    inputs whose only dynamic dimension is axis 0, all with the same label. Any other dynamic dimension needs
    ``--input-shape``."""
    from rewriter.graph import check_input_shapes

    given = {k: tuple(int(d) for d in v) for k, v in (input_shapes or {}).items()}
    if given:
        check_input_shapes(model, given)
    initializers = {t.name for t in model.graph.initializer}
    shapes: dict[str, tuple[int, ...]] = {}
    batch_inputs: dict[str, str] = {}
    for vi in model.graph.input:
        if vi.name in initializers:
            continue
        if vi.name in given:
            shapes[vi.name] = given[vi.name]
            continue
        dims = []
        ok = vi.type.tensor_type.HasField("shape")
        for d in vi.type.tensor_type.shape.dim if ok else []:
            if d.HasField("dim_value") and d.dim_value > 0:
                dims.append(int(d.dim_value))
            else:
                ok = False
                dims.append(d.dim_param or "?")
        label = batch_input(vi)
        if label is not None and label == next(iter(batch_inputs.values()), label):
            batch_inputs[vi.name] = label
            shapes[vi.name] = (1, *dims[1:])
            continue
        if not ok:
            raise dynamic_input_error(vi.name, dims)
        shapes[vi.name] = tuple(dims)  # type: ignore[arg-type]
    if not batch_inputs:
        return shapes, None
    return shapes, BatchAxis(tuple((name, shapes[name]) for name in batch_inputs), next(iter(batch_inputs.values())), max_batch)


def _source_name(model: Any) -> str:
    if isinstance(model, onnx.ModelProto):
        return model.graph.name or "<onnx.ModelProto>"
    return Path(model).name


# ---------------------------------------------------------------------------------------------------
# The export


def export_coreml(
    model: str | os.PathLike | onnx.ModelProto,
    output: str | os.PathLike,
    *,
    deployment_target: str = "iOS15",
    model_format: str = "mlprogram",
    input_shapes: dict[str, tuple[int, ...]] | None = None,
    input_values: dict[str, object] | None = None,
    compute_precision: str = "float32",
    verify: bool = False,
    inputs: dict[str, np.ndarray] | None = None,
    max_batch: int = DEFAULT_MAX_BATCH,
) -> CoreMLExport:
    """Convert ``model`` (ONNX path or ModelProto, or a Keras .keras/.h5/SavedModel path) to Core ML at ``output``.

    Every Resize/Upsample is first made exact for Core ML by ``fix_resize``; the remaining ones become the
    MIL op whose documented grid equals their ONNX Runtime weights. ``verify=True`` compares the saved model
    with ONNX Runtime on the original model (``inputs`` or seeded random data): on macOS with
    ``MLModel.predict``, on every OS with rewriter's reference evaluator of the saved file; above 1e-5
    relative (to max(1, max|ORT output|)) it raises ``VerificationError`` and writes nothing.

    An input whose only dynamic dimension is its batch (axis 0) keeps it flexible: ``RangeDim(1, max_batch)``
    in the saved model (``rewriter.coreml.batch``); ``input_shapes`` pins it instead.
    """
    from rewriter.coreml.coverage import check_coverage
    from rewriter.fix import fix_model, fix_options
    from rewriter.keras_input import is_keras_path, keras_to_onnx
    from rewriter.model_io import load_model
    from rewriter.regions import find_regions

    output = Path(output)
    _check_options(output, deployment_target, model_format, compute_precision)
    if max_batch < 1:
        raise UsageError(f"--max-batch {max_batch}: expected a positive batch size")
    source = _source_name(model)

    # 1. Read the model once, weights included (Keras through tf2onnx); check op coverage before anything else.
    if not isinstance(model, onnx.ModelProto) and is_keras_path(model):
        model = keras_to_onnx(model)
    original = model if isinstance(model, onnx.ModelProto) else load_model(model, load_weights=True)
    working = onnx.ModelProto()
    working.CopyFrom(original)  # fix-resize rewrites this copy in place; the original is what --verify compares with
    view = ModelView.build(working, None, input_shapes or None, input_values)
    check_coverage(view, frozenset(name for region in find_regions(view) for name in region.node_names))
    resolved, batch = _resolve_shapes(original, {**(input_shapes or {}), **{n: a.shape for n, a in view.input_values.items()}}, max_batch)
    shapes = {k: v for k, v in resolved.items() if k not in view.input_values}  # pinned inputs are constants in the Core ML model
    options = fix_options("coreml", deployment_target=deployment_target, coreml_format=model_format)
    ct = _coremltools()

    # 2. fix-resize for Core ML (same deployment target and format), on the analysis already made; a flexible batch
    #    stays symbolic there (fix-resize keeps it so: scales, not sizes).
    fixed_shapes = {k: v for k, v in shapes.items() if batch is None or k not in batch.inputs}
    fixed_at: dict[int, FixResult] = {}  # a flexible batch that fix-resize needs static: fixed at each probe size
    try:
        fix = fix_model(view, options, input_shapes=fixed_shapes, original=original)
    except NotExactError:
        if batch is None:
            raise
        for size in PROBES:
            copy = onnx.ModelProto()
            copy.CopyFrom(original)
            at = batch.shapes(shapes, size)
            fixed_at[size] = fix_model(ModelView.build(copy, None, at, input_values), options, input_shapes=at, original=original)
        fix = fixed_at[PROBES[0]]

    # 3. ONNX -> MIL.
    from coremltools.converters.mil.mil import Program

    from rewriter.coreml.ops import COREML_OPS
    from rewriter.coreml.translator import Translator

    ios = int(deployment_target.removeprefix("iOS"))
    opset_version = getattr(ct.target, f"iOS{ios}") if model_format == "mlprogram" else getattr(ct.target, f"iOS{min(ios, 14)}")
    translators: list[Translator] = []
    views: dict[int | None, ModelView] = {}  # by batch size: the symbolic translation reads batch 1's

    def translator_at(size: Any) -> Translator:
        """The translator with the batch inputs at ``size``: a batch size, or a MIL symbol (then it reads the model
        at batch 1 and the batch-dependent values are computed at run time: rewriter.coreml.batch)."""
        symbolic = batch is not None and not isinstance(size, int)
        at = 1 if symbolic else size
        static = shapes if batch is None else batch.shapes(shapes, at)
        if at not in views:
            views[at] = ModelView.build(fixed_at[at].model if fixed_at else fix.model, None, static)
        declared = batch.shapes(shapes, size) if symbolic else static
        translators.append(Translator(views[at], COREML_OPS, declared, deployment_target, model_format, opset_version,
                                      batch_symbol=size if symbolic else None))
        return translators[-1]

    try:
        with _quiet():
            translation = translator_at(None).translate() if batch is None else translate_flexible(translator_at, batch)
    except RewriterError:
        raise
    except Exception as e:  # noqa: BLE001 - MIL type inference refused an op: name it, in one line
        node = translators[-1].current if translators else None
        where = f"{node.op_type} ({node.name or node.output[0]})" if node is not None else "the graph"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if batch is not None and len(translators) > len(PROBES):
            raise refusal(where, f"coremltools: {first}", batch) from None
        raise UnsupportedOpError(f"unsupported ONNX ops for Core ML: {where}: coremltools: {first}") from None
    program = Program()
    program.add_function("main", translation.function)

    # 4. Convert, label, save to a temporary directory beside the output.
    messages: list[str] = []
    kwargs: dict[str, Any] = dict(convert_to=model_format, minimum_deployment_target=opset_version, skip_model_load=True)
    if model_format == "mlprogram":
        kwargs["compute_precision"] = ct.precision.FLOAT16 if compute_precision == "float16" else ct.precision.FLOAT32
    if batch is not None:
        kwargs["inputs"] = _input_types(ct, translation, shapes, batch)
    try:
        with _quiet(messages):
            mlmodel = ct.convert(program, **kwargs)
    except RewriterError:
        raise
    except Exception as e:  # noqa: BLE001 - coremltools refuses something about the program: one line, no traceback
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UsageError(f"coremltools could not convert the program: {first}") from None
    from rewriter import __version__

    if model_format == "neuralnetwork":
        # The NeuralNetwork backend leaves output shapes out of the description: record the static ones.
        spec = mlmodel.get_spec()
        for desc, var in zip(spec.description.output, translation.function.outputs):
            shape = [int(d) if isinstance(d, (int, np.integer)) else 1 for d in var.shape]  # a flexible batch: its default
            if desc.type.WhichOneof("Type") == "multiArrayType" and not len(desc.type.multiArrayType.shape) and shape:
                desc.type.multiArrayType.shape.extend(shape)
        with _quiet(messages):
            mlmodel = ct.models.MLModel(spec, skip_model_load=True)
    mlmodel.short_description = f"{source} converted by rewriter {__version__} (exact Resize mapping, {model_format} {deployment_target})"
    mlmodel.user_defined_metadata[METADATA_SOURCE] = source
    mlmodel.user_defined_metadata[METADATA_VERSION] = __version__
    mlmodel.user_defined_metadata[METADATA_TARGET] = deployment_target

    output.parent.mkdir(parents=True, exist_ok=True)
    with Staging() as stage:
        staged = stage.slot(output)
        with _quiet(messages):
            mlmodel.save(str(staged))
        export = CoreMLExport(path=output, fix=fix, resize_ops=[], model_format=model_format, deployment_target=deployment_target,
                              input_shapes=shapes, flexible_batch=batch)
        export.warnings.extend(translation.warnings)
        export.warnings.extend(_relevant(messages))

        # 5. Read the saved file back: names, and every resize op checked against its ONNX node.
        from rewriter.coreml.reference import load as load_reference

        ref = load_reference(staged)
        _check_io_names(export, translation, ref)
        _check_saved_resizes(export, translation, ref, fix)

        # 6. Numbers.
        if verify:
            feeds = _feeds(shapes, {**view.input_values, **(inputs or {})})
            if batch is not None and batch.max_batch > 1:  # the flexible batch at another size too
                feeds += _feeds(batch.shapes(shapes, min(VERIFY_BATCH, batch.max_batch)), dict(view.input_values))
            _verify(export, original, ref, staged, feeds, compute_precision)

        stage.commit()
    return export


def _input_types(ct, translation, shapes: dict[str, tuple[int, ...]], batch: BatchAxis) -> list:
    """coremltools input types for ``ct.convert``: a RangeDim(1, max_batch) on axis 0 of the batch inputs."""
    types = []
    for name, var in zip(translation.input_names, translation.function.inputs.values()):
        shape = shapes[name]
        if name in batch.inputs:
            shape = (ct.RangeDim(1, batch.max_batch, 1), *shape[1:])
        types.append(ct.TensorType(name=var.name, shape=shape, dtype=_np_dtype(var)))
    return types


def _np_dtype(var) -> type:
    from coremltools.converters.mil.mil import types

    return types.nptype_from_builtin(var.dtype)


def _relevant(messages: list[str]) -> list[str]:
    """coremltools warnings worth repeating (not the Linux 'cannot load the model' notices)."""
    skip = ("Failed to load", "libcoremlpython", "not supported on Linux", "skip_model_load", "macOS")
    out = []
    for m in messages:
        line = m.strip().splitlines()[0] if m.strip() else ""
        if line and not any(s in line for s in skip) and line not in out:
            out.append(f"coremltools: {line}")
    return out


def _check_io_names(export: CoreMLExport, translation, ref) -> None:
    """Core ML may sanitize input/output names; map them (by position) and say so."""
    for kind, onnx_names, coreml_names, target in (
        ("input", translation.input_names, ref.input_names, export.input_names),
        ("output", translation.output_names, ref.output_names, export.output_names),
    ):
        if len(onnx_names) != len(coreml_names):
            raise NotExactError(f"the saved Core ML model has {len(coreml_names)} {kind}s, the ONNX model {len(onnx_names)}")
        for a, b in zip(onnx_names, coreml_names):
            target[a] = b
            if a != b:
                export.warnings.append(f"Core ML renamed {kind} {a!r} to {b!r} (names must be identifiers)")


def _check_saved_resizes(export: CoreMLExport, translation, ref, fix: FixResult) -> None:
    """Every Resize the program uses must, as saved, apply the ONNX node's weights on both spatial axes."""
    from rewriter.coreml.kernels import UndocumentedError

    hints = {p.mil_name: tuple(int(d) for d in p.sem.input_shape) for p in translation.resize_plans}  # type: ignore[arg-type]
    try:
        ops = ref.resize_ops(hints)
    except UndocumentedError as e:
        raise NotExactError(f"the saved Core ML model resizes in a way Apple does not document ({e}); refusing to write it") from None
    saved = {op.name: op for op in ops}
    real_plans = [p for p in translation.resize_plans if p.op != "identity"]
    by_position = dict(zip([p.mil_name for p in real_plans], ops)) if len(ops) == len(real_plans) else {}
    described: dict[str, str] = {}  # ONNX output tensor of each Resize -> what it is in the saved model
    for plan in translation.resize_plans:
        if plan.op == "identity":
            described[plan.output] = "removed (identity)"
            continue
        # coremltools keeps op names, except that fp16 compute appends "_cast_fp16"; else match by position.
        op = saved.get(plan.mil_name) or saved.get(f"{plan.mil_name}_cast_fp16") or by_position.get(plan.mil_name)
        if op is None:
            raise NotExactError(f"{plan.onnx_name}: the saved Core ML model has no resize op named {plan.mil_name!r} (coremltools changed the program)")
        sem = plan.sem
        export.grid_bound = max(export.grid_bound, sum(sem.grid_slack(a) for a in sem.resized_axes))
        for axis, theirs in ((sem.rank - 2, op.weights_h), (sem.rank - 1, op.weights_w)):
            mine = sem.axis_weights(axis)
            if mine.difference(theirs) > native_tolerance(sem, axis):
                raise NotExactError(
                    f"{plan.onnx_name}: saved as {op.describe()}, which samples axis {axis} differently from the ONNX node "
                    f"(worst-case difference {mine.difference(theirs):.3g}); refusing to write it"
                )
        described[plan.output] = op.describe()
    # fix-resize's provenance says which Resize nodes each original node became (none when lowered).
    for node in fix.nodes:
        if node.graph and not (node.resize_nodes and all(output in described for output, _ in node.resize_nodes)):
            continue  # a branch of an If the exporter did not take (or a lowered node inside one)
        if node.state.kind == "removed":
            export.resize_ops.append((node.name, "removed (identity)"))
        elif node.state.kind == "lowered":
            export.resize_ops.append((node.name, f"lowered: {node.became}"))
        else:
            export.resize_ops.append((node.name, " -> ".join(described[output] for output, _ in node.resize_nodes)))


def _feeds(shapes: dict[str, tuple[int, ...]], given: dict[str, Any]) -> list[dict[str, np.ndarray]]:
    """One set of inputs: ``given`` ones as they are, seeded random data for the rest."""
    rng = np.random.default_rng(0)
    feeds = {k: np.asarray(v, dtype=np.float32) for k, v in given.items()}
    for name, shape in shapes.items():
        feeds.setdefault(name, rng.uniform(-1, 1, size=shape).astype(np.float32))
    return [feeds]


def _verify(export: CoreMLExport, original: onnx.ModelProto, ref, staged: Path, feed_sets: list[dict[str, np.ndarray]],
            compute_precision: str) -> None:
    ort_session = session(original)
    rtol = (VERIFY_RTOL_FP16 if compute_precision == "float16" else VERIFY_RTOL) + export.grid_bound
    mlmodel = None
    if platform.system() == "Darwin":
        ct = _coremltools()
        try:
            with _quiet():
                mlmodel = ct.models.MLModel(str(staged))
        except Exception as e:  # noqa: BLE001 - e.g. an OS older than the deployment target
            export.warnings.append(f"verify: Core ML could not load the model on this Mac ({_first_line(e)}); checked with the reference evaluator only")
    else:
        export.warnings.append("verify: Core ML prediction needs macOS; checked with rewriter's reference evaluator of the saved file")
    export.verified_with.append("reference")
    worst = 0.0
    for feeds in feed_sets:
        onnx_out = dict(zip([o.name for o in ort_session.get_outputs()], ort_session.run(None, feeds)))
        coreml_feeds = {export.input_names[k]: v for k, v in feeds.items() if k in export.input_names}
        try:
            results = {"reference": ref.run(coreml_feeds)}
        except Exception as e:  # noqa: BLE001 - an op or layer the evaluator cannot run: not verified, not written
            raise VerificationError(f"verify (reference): rewriter's reference evaluator cannot run the saved {export.model_format} "
                                    f"model ({type(e).__name__}: {_first_line(e)}); nothing was written") from None
        if mlmodel is not None:
            try:
                with _quiet():
                    results["coreml"] = mlmodel.predict(coreml_feeds)
                if "coreml" not in export.verified_with:
                    export.verified_with.append("coreml")
            except Exception as e:  # noqa: BLE001 - e.g. an OS older than the deployment target
                export.warnings.append(f"verify: MLModel.predict failed on this Mac ({_first_line(e)}); checked with the reference evaluator only")
                mlmodel = None
        batch = "" if len(feed_sets) == 1 else f" at input shapes {', '.join('x'.join(map(str, v.shape)) for v in feeds.values())}"
        for who, out in results.items():
            for onnx_name, coreml_name in export.output_names.items():
                a = np.asarray(onnx_out[onnx_name], dtype=np.float64)
                b = np.asarray(out[coreml_name], dtype=np.float64)
                if a.shape != b.shape:
                    raise VerificationError(f"verify ({who}): output {onnx_name!r} has shape {b.shape} in Core ML, {a.shape} in ONNX Runtime{batch}")
                error = relative_error(a, b)
                worst = max(worst, error)
                if not error <= rtol:
                    raise VerificationError(f"verify ({who}): output {onnx_name!r} differs from ONNX Runtime by {error:.3g} (relative, limit {rtol:g}){batch}")
    export.max_error = worst


def _first_line(e: Exception) -> str:
    return str(e).splitlines()[0] if str(e) else type(e).__name__


__all__ = ["FORMATS", "CoreMLExport", "export_coreml"]
