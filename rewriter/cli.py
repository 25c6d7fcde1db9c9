"""The `rewriter` command line. Errors are one line on stderr with exit code 1 (not exact) or 2 (bad input).

Start-up matters (a pre-commit gate runs this once per commit, scripts once per model): this module imports
only typer and rewriter's light modules; onnx, onnxruntime, rich tables, the exporters and matplotlib are
imported inside the commands that use them.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from rewriter import __version__
from rewriter.config import (
    DEFAULT_TARGETS,
    TARGET_NAMES,
    Config,
    Settings,
    check_atol,
    load_config,
    parse_input_shapes,
    parse_input_values,
)
from rewriter.errors import RewriterError, UsageError
from rewriter.output import FORMATS, check_format, emit

# The registry's choices, spelled here so that --help needs no import of the targets (tests keep them equal).
IOS_VERSIONS = ("iOS13", "iOS14", "iOS15", "iOS16", "iOS17", "iOS18")
LOWER_CHOICES = ("auto", "none", "deconv", "gather", "matmul")
COREML_FORMATS = ("mlprogram", "neuralnetwork")

# rich_markup_mode=None: help texts are plain text, so "rewriter[tf]" keeps its "[tf]".
app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Make ONNX Resize/Upsample give the same numbers on every runtime.",
)
export_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Export to another framework's model format, resizes made exact first.")
app.add_typer(export_app, name="export")

InputShapes = Annotated[
    list[str] | None,
    typer.Option("--input-shape", help="Static shape for a graph input, NAME=D0xD1x... (repeatable; beats the config file)."),
]
InputValues = Annotated[
    list[str] | None,
    typer.Option("--input-value", help="Pin a graph input (scales, sizes, roi...) to a constant, NAME=V1,V2,... (repeatable); the written model has it as a constant."),
]
DeploymentTarget = Annotated[str | None, typer.Option("--deployment-target", help="Core ML deployment target: " + ", ".join(IOS_VERSIONS) + " (default iOS15).")]
CaffeFlavor = Annotated[str | None, typer.Option("--flavor", help="Caffe flavor: bvlc (default), interp (Interp layer), upsample (fork Upsample layer).")]
Targets = Annotated[list[str] | None, typer.Option("--target", help=" | ".join(TARGET_NAMES) + " (repeatable).")]
OutputFormat = Annotated[
    str | None,
    typer.Option("--format", help=" | ".join(FORMATS) + ": what to print (default: table on a terminal, plain when piped)."),
]


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"rewriter {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[Path | None, typer.Option("--config", help="Settings file (default: the nearest rewriter.toml or pyproject.toml with [tool.rewriter]).")] = None,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    """Make ONNX Resize/Upsample give the same numbers on every runtime."""
    ctx.obj = {"config_path": config}


def _config(ctx: typer.Context) -> Config:
    state = ctx.find_root().obj
    if "config" not in state:
        state["config"] = load_config(state["config_path"])
    return state["config"]


def _settings(ctx: typer.Context, model: Path, **flags) -> Settings:
    """The model's settings: the config file's, with every flag given on the command line taking precedence."""
    if flags.get("atol") is not None:
        check_atol(flags["atol"])
    return _config(ctx).settings_for(model).overridden(**flags)


def _check_targets(names: list[str] | None) -> None:
    for name in names or ():
        if name not in TARGET_NAMES:
            raise UsageError(f"--target {name!r}: expected one of {', '.join(TARGET_NAMES)}")


def _options(settings: Settings) -> dict[str, str | None]:
    """Target options, validated by every target that reads them."""
    from rewriter.targets import make_target

    options = settings.options()
    for name in TARGET_NAMES:
        make_target(name, options)
    return options


def _warn(message: str) -> None:
    sys.stderr.write(f"warning: {message}\n")


@app.command("inspect")
def inspect_command(
    ctx: typer.Context,
    model: Annotated[Path, typer.Argument(help="ONNX model")],
    output_format: OutputFormat = None,
    as_json: Annotated[bool, typer.Option("--json", hidden=True, help="Deprecated: --format json.")] = False,
    target: Targets = None,
    input_shape: InputShapes = None,
    input_value: InputValues = None,
    deployment_target: DeploymentTarget = None,
    flavor: CaffeFlavor = None,
) -> None:
    """Describe every Resize/Upsample (subgraphs included) and say how each target runs it."""
    if as_json:
        _warn("--json is deprecated: use --format json")
    fmt = "json" if as_json else check_format(output_format)
    _check_targets(target)
    settings = _settings(ctx, model, input_shapes=parse_input_shapes(input_shape), input_values=parse_input_values(input_value), deployment_target=deployment_target, flavor=flavor)
    from rewriter.inspection import inspect
    from rewriter.listings import inspect_listing

    report = inspect(model, input_shapes=settings.input_shapes, input_values=settings.input_values, targets=tuple(target or DEFAULT_TARGETS), options=_options(settings))
    emit(inspect_listing(report), fmt)


@app.command("check")
def check_command(
    ctx: typer.Context,
    models: Annotated[list[Path], typer.Argument(help="ONNX model(s)")],
    target: Targets = None,
    input_shape: InputShapes = None,
    input_value: InputValues = None,
    deployment_target: DeploymentTarget = None,
    flavor: CaffeFlavor = None,
    output_format: OutputFormat = None,
) -> None:
    """Exit 0 if every Resize/Upsample already runs identically on each target, 1 if any does not, 2 on bad input.

    Targets, input shapes and target options come from the flags, else from the config file's entry for
    each model, else the defaults (target onnx).
    """
    fmt = check_format(output_format)
    _check_targets(target)
    shapes = parse_input_shapes(input_shape)
    values = parse_input_values(input_value)
    from rewriter.inspection import inspect
    from rewriter.listings import ModelCheck, check_listing

    checks: list[ModelCheck] = []
    for path in models:
        settings = _settings(ctx, path, targets=target, input_shapes=shapes, input_values=values, deployment_target=deployment_target, flavor=flavor)
        targets = settings.targets or ("onnx",)
        try:
            report = inspect(path, input_shapes=settings.input_shapes, input_values=settings.input_values, targets=targets, options=_options(settings))
        except RewriterError as e:
            if e.exit_code != 2:
                raise
            sys.stderr.write(f"rewriter: error: {e}\n")
            checks.extend(ModelCheck(str(path), t, error=str(e)) for t in targets)
            continue
        for t in report.targets:
            failing = [n for n in report.nodes if n.plans[t].verdict != "as-is"]
            checks.append(ModelCheck(str(path), t, report, failing=failing))
    emit(check_listing(checks), fmt)
    raise typer.Exit(2 if any(c.error for c in checks) else 1 if any(c.failing for c in checks) else 0)


def _default_beside(model: Path, suffix: str) -> Path:
    return model.with_name(model.name.removesuffix(".onnx") + suffix)


def _check_output_dir(*paths: Path | None) -> None:
    """Refuse (exit 2) an output whose directory does not exist, as fix-resize does: no command creates one."""
    for path in paths:
        if path is not None and not path.parent.is_dir():
            raise UsageError(f"cannot write {path}: directory does not exist")


def _load_inputs(path: Path | None):
    if path is None:
        return None
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError) as e:
        raise UsageError(f"--inputs {path}: cannot read ({e})") from None


@app.command("fix-resize")
def fix_resize_command(
    ctx: typer.Context,
    model: Annotated[Path, typer.Argument(help="ONNX model")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Output path (default: <stem>.fixed.onnx beside the input).")] = None,
    target: Annotated[str | None, typer.Option("--target", help=" | ".join(TARGET_NAMES) + " (default: the config file's first target, else onnx).")] = None,
    deployment_target: DeploymentTarget = None,
    lower: Annotated[str | None, typer.Option("--lower", help=" | ".join(LOWER_CHOICES) + ": a named form is that form or a refusal (default auto).")] = None,
    border: Annotated[str | None, typer.Option("--border", help="exact (default) | zero (the classic Caffe recipe, never exact).")] = None,
    input_shape: InputShapes = None,
    input_value: InputValues = None,
    verify: Annotated[str, typer.Option("--verify", help="local (each rewritten node) | full (whole model) | none")] = "local",
    atol: Annotated[float | None, typer.Option("--atol", help="Allowed error relative to the output magnitude (default 1e-5).")] = None,
    inputs: Annotated[Path | None, typer.Option("--inputs", help="An .npz of input tensors for --verify full.")] = None,
    report_json: Annotated[Path | None, typer.Option("--report-json", help="Also write the report as JSON to this file.")] = None,
    flavor: CaffeFlavor = None,
    output_format: OutputFormat = None,
) -> None:
    """Rewrite every Resize/Upsample so that TARGET runs it identically (exit 1 if a node cannot be made exact)."""
    fmt = check_format(output_format)
    settings = _settings(ctx, model, targets=[target] if target else None, input_shapes=parse_input_shapes(input_shape), input_values=parse_input_values(input_value),
                         deployment_target=deployment_target, flavor=flavor, atol=atol, lower=lower, border=border, inputs=inputs)
    _options(settings)
    from rewriter.fix import fix_resize, write_report_json
    from rewriter.listings import fix_listing

    out_path = output if output is not None else _default_beside(model, ".fixed.onnx")
    result = fix_resize(
        model,
        (settings.targets or ("onnx",))[0],
        out_path,
        deployment_target=settings.deployment_target,
        caffe_flavor=settings.flavor,
        lower=settings.lower or "auto",
        border=settings.border or "exact",
        input_shapes=settings.input_shapes, input_values=settings.input_values,
        verify=verify,
        atol=settings.atol if settings.atol is not None else 1e-5,
        inputs=_load_inputs(settings.inputs),
    )
    emit(fix_listing(result, out_path), fmt)
    if report_json is not None:
        write_report_json(result, report_json)


@app.command("report")
def report_command(
    ctx: typer.Context,
    model: Annotated[Path, typer.Argument(help="ONNX model")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="HTML file to write (default: <stem>.report.html beside the input).")] = None,
    target: Targets = None,
    input_shape: InputShapes = None,
    input_value: InputValues = None,
    deployment_target: DeploymentTarget = None,
    flavor: CaffeFlavor = None,
    output_format: OutputFormat = None,
) -> None:
    """A self-contained HTML page per model: each Resize's sampling grid, what naive converters get wrong, what rewriter emits."""
    fmt = check_format(output_format)
    _check_targets(target)
    settings = _settings(ctx, model, targets=target, input_shapes=parse_input_shapes(input_shape), input_values=parse_input_values(input_value), deployment_target=deployment_target, flavor=flavor)
    from rewriter.listings import report_listing
    from rewriter.report import write_report

    out_path = output if output is not None else _default_beside(model, ".report.html")
    written = write_report(model, out_path, targets=settings.targets or DEFAULT_TARGETS, input_shapes=settings.input_shapes, input_values=settings.input_values, options=_options(settings))
    emit(report_listing(written), fmt)


@export_app.command("caffe")
def export_caffe_command(
    ctx: typer.Context,
    model: Annotated[Path, typer.Argument(help="ONNX model")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Prototxt to write.")],
    weights: Annotated[Path | None, typer.Option("--weights", help="Caffemodel (default: OUT with .caffemodel).")] = None,
    flavor: CaffeFlavor = None,
    border: Annotated[str | None, typer.Option("--border", help="exact (default) | zero (classic zero-border Deconvolution, never exact).")] = None,
    input_shape: InputShapes = None,
    input_value: InputValues = None,
    output_format: OutputFormat = None,
) -> None:
    """ONNX -> Caffe prototxt + caffemodel (BVLC Caffe 1.0; Interp/Upsample fork layers on request)."""
    fmt = check_format(output_format)
    _check_output_dir(output, weights)
    settings = _settings(ctx, model, flavor=flavor, border=border, input_shapes=parse_input_shapes(input_shape), input_values=parse_input_values(input_value))
    from rewriter.caffe import export_caffe
    from rewriter.listings import caffe_listing

    r = export_caffe(model, output, weights, flavor=settings.flavor or "bvlc", border=settings.border or "exact", input_shapes=settings.input_shapes, input_values=settings.input_values)
    emit(caffe_listing(r), fmt)
    for w in r.warnings:
        _warn(w)


# coremltools imports torch and TensorFlow when they are installed, to offer their converters: seconds and
# ~1 GB on every call, where the exporter uses only the MIL builder. They are hidden during the export (its
# import guards take a failed import for "not installed"); TensorFlow stays visible for Keras input.
_TORCH_FAMILY = ("torch", "torchvision", "torchaudio", "torchao", "executorch")


@contextlib.contextmanager
def _hidden_modules(names: tuple[str, ...]) -> Iterator[None]:
    hidden = [name for name in names if name not in sys.modules]  # what is already imported stays usable
    sys.modules.update(dict.fromkeys(hidden))  # a None entry makes `import name` raise ImportError
    try:
        yield
    finally:
        for name in hidden:
            if sys.modules.get(name, False) is None:
                del sys.modules[name]


@export_app.command("coreml")
def export_coreml_command(
    ctx: typer.Context,
    model: Annotated[Path, typer.Argument(help="ONNX model, or a Keras model (.keras, .h5, SavedModel directory) with rewriter[tf]")],
    output: Annotated[Path, typer.Option("-o", "--output", help="OUT.mlpackage (mlprogram) or OUT.mlmodel (neuralnetwork).")],
    deployment_target: DeploymentTarget = None,
    model_format: Annotated[str | None, typer.Option("--model-format", help="mlprogram | neuralnetwork (default: from OUT's extension).")] = None,
    input_shape: InputShapes = None,
    input_value: InputValues = None,
    compute_precision: Annotated[str, typer.Option("--compute-precision", help="float32 | float16")] = "float32",
    max_batch: Annotated[int | None, typer.Option("--max-batch", help="Upper bound of a flexible batch (an input whose only dynamic dimension is axis 0; default 64).")] = None,
    verify: Annotated[bool, typer.Option("--verify", help="Compare with ONNX Runtime (Core ML itself on macOS; the reference evaluator everywhere).")] = False,
    output_format: Annotated[
        str | None,
        typer.Option("--format", help=" | ".join(FORMATS) + ": what to print (mlprogram / neuralnetwork still work here: deprecated spellings of --model-format)."),
    ] = None,
) -> None:
    """ONNX -> Core ML (.mlpackage / .mlmodel) with every Resize running exactly as in ONNX Runtime."""
    if output_format in COREML_FORMATS:
        _warn(f"--format {output_format} is deprecated: use --model-format {output_format} (--format says what to print)")
        model_format, output_format = model_format or output_format, None
    fmt = check_format(output_format)
    _check_output_dir(output)
    settings = _settings(ctx, model, deployment_target=deployment_target, input_shapes=parse_input_shapes(input_shape), input_values=parse_input_values(input_value))
    from rewriter.coreml import export_coreml
    from rewriter.keras_input import is_keras_path
    from rewriter.listings import coreml_listing

    with _hidden_modules(_TORCH_FAMILY + (() if is_keras_path(model) else ("tensorflow",))):
        r = export_coreml(
            model, output, deployment_target=settings.deployment_target or "iOS15",
            model_format=model_format or ("neuralnetwork" if output.suffix.lower() == ".mlmodel" else "mlprogram"),
            input_shapes=settings.input_shapes, input_values=settings.input_values, compute_precision=compute_precision, verify=verify,
            **({} if max_batch is None else {"max_batch": max_batch}),
        )
    emit(coreml_listing(r), fmt)
    for w in r.warnings:
        _warn(w)


def main(argv: list[str] | None = None) -> int:
    """Console entry point: one-line errors, never a traceback (REWRITER_DEBUG=1 shows it)."""
    try:
        # With standalone_mode=False click returns the code given to typer.Exit instead of raising.
        code = app(args=argv, standalone_mode=False)
        return code if isinstance(code, int) else 0
    except typer.Exit as e:
        return int(e.exit_code or 0)
    except SystemExit as e:  # click usage errors in standalone_mode=False still arrive here on some paths
        return int(e.code or 0)
    except RewriterError as e:
        sys.stderr.write(f"rewriter: error: {e}\n")
        return e.exit_code
    except (KeyboardInterrupt, BrokenPipeError):
        return 130
    except Exception as e:
        # Usage errors of the CLI framework (typer vendors click, older typer uses click itself).
        if hasattr(e, "show") and hasattr(e, "exit_code"):
            e.show()
            return int(e.exit_code)
        if type(e).__name__ == "Abort":
            return 130
        if os.environ.get("REWRITER_DEBUG"):
            raise
        first_line = (str(e).strip().splitlines() or [""])[0]
        sys.stderr.write(f"rewriter: internal error: {type(e).__name__}: {first_line} (set REWRITER_DEBUG=1 for details)\n")
        return 2
