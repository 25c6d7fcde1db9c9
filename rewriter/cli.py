"""The `rewriter` command line. Errors are one line on stderr with exit code 1 (not exact) or 2 (bad input)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from rewriter.errors import RewriterError, UsageError
from rewriter.inspection import ModelReport, check, inspect
from rewriter.plan import AS_IS, INEXACT, REWRITE
from rewriter.targets import LOWER_CHOICES, TARGET_NAMES, make_target
from rewriter.targets.coreml import IOS_VERSIONS

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Make ONNX Resize/Upsample give the same numbers on every runtime.",
)
# Piped output (CI logs, files) gets a wide table instead of rich's 80-column default.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, soft_wrap=True)

InputShapes = Annotated[
    Optional[list[str]],
    typer.Option("--input-shape", help="Static shape for a graph input, NAME=D0xD1x... (repeatable)."),
]
DeploymentTarget = Annotated[str, typer.Option("--deployment-target", help="Core ML deployment target: " + ", ".join(IOS_VERSIONS))]
CaffeFlavor = Annotated[str, typer.Option("--flavor", help="Caffe flavor: bvlc, interp (Interp layer), upsample (fork Upsample layer)")]
TargetName = Annotated[str, typer.Option("--target", help=" | ".join(TARGET_NAMES))]


def parse_input_shapes(specs: list[str] | None) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for spec in specs or []:
        name, sep, dims = spec.rpartition("=")
        try:
            values = tuple(int(d) for d in dims.lower().split("x"))
        except ValueError:
            values = ()
        if not sep or not name or not values:
            raise UsageError(f"--input-shape {spec!r}: expected NAME=D0xD1x..., e.g. input=1x3x224x224")
        shapes[name] = values
    return shapes


def _options(deployment_target: str, flavor: str) -> dict[str, str | None]:
    """Target options as given on the command line, validated by every target that reads them."""
    options: dict[str, str | None] = {"deployment_target": deployment_target, "flavor": flavor}
    for name in TARGET_NAMES:
        make_target(name, options)
    return options


def _fmt_shape(shape) -> str:
    return "x".join("?" if d is None else str(d) for d in shape) or "?"


def _fmt_scales(scales) -> str:
    return ", ".join("?" if s is None else f"{s:.6g}" for s in scales)


_STYLE = {AS_IS: "green", REWRITE: "yellow", INEXACT: "red"}


def render_report(report: ModelReport) -> None:
    table = Table(title=f"{report.path} (opset {report.opset}): {len(report.nodes)} resize node(s)", show_lines=True)
    for column in ("node", "op", "mode", "transform", "nearest", "shape", "scales", *report.targets):
        table.add_column(column, overflow="fold")
    for node in report.nodes:
        s = node.semantics
        cells = []
        for t in report.targets:
            v = node.plans[t]
            extra = f" (naive mapping error {v.naive_max_error:.3g})" if v.naive_max_error else ""
            cells.append(f"[{_STYLE.get(v.verdict, 'magenta')}]{v.verdict}[/]: {v.how}{extra}")
        table.add_row(
            s.qualified_name,
            f"{s.op_type}-{s.opset}",
            s.mode + (" +antialias" if s.antialias else ""),
            s.transform,
            s.nearest_mode or "",
            f"{_fmt_shape(s.input_shape)} → {_fmt_shape(s.output_shape)}",
            _fmt_scales(s.scales),
            *cells,
        )
    out.print(table)


@app.command("inspect")
def inspect_command(
    model: Annotated[Path, typer.Argument(help="ONNX model")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document to stdout.")] = False,
    input_shape: InputShapes = None,
    deployment_target: DeploymentTarget = "iOS15",
    flavor: CaffeFlavor = "bvlc",
) -> None:
    """Describe every Resize/Upsample (subgraphs included) and say how each target runs it."""
    report = inspect(model, input_shapes=parse_input_shapes(input_shape), options=_options(deployment_target, flavor))
    if as_json:
        sys.stdout.write(json.dumps(report.to_json(), indent=2) + "\n")
    else:
        render_report(report)


@app.command("check")
def check_command(
    models: Annotated[list[Path], typer.Argument(help="ONNX model(s)")],
    target: TargetName = "onnx",
    input_shape: InputShapes = None,
    deployment_target: DeploymentTarget = "iOS15",
    flavor: CaffeFlavor = "bvlc",
) -> None:
    """Exit 0 if every Resize/Upsample already runs identically on TARGET, 1 if any does not, 2 on bad input."""
    options = _options(deployment_target, flavor)
    make_target(target, options)
    shapes = parse_input_shapes(input_shape)
    worst = 0
    for path in models:
        try:
            result = check(path, target, input_shapes=shapes, options=options)
        except RewriterError as e:
            err.print(f"rewriter: error: {e}", markup=False, highlight=False)
            worst = 2
            continue
        for node in result.failing:
            s = node.semantics
            v = node.plans[target]
            fixable = "fix-resize can make it exact" if v.verdict == REWRITE else "fix-resize cannot make it exact"
            print(f"{path}: {s.qualified_name} ({s.op_type}-{s.opset} {s.mode}/{s.transform}): {v.verdict} for {target}: {v.how}; {fixable}")
        if result.failing:
            worst = max(worst, 1)
        else:
            print(f"{path}: {len(result.report.nodes)} resize node(s), all run identically on {target}")
    raise typer.Exit(worst)


def render_fix(result, output: Path) -> None:
    table = Table(title=f"fix-resize --target {result.target} → {output}", show_lines=True)
    for column in ("node", "was", "became", "passes", "max error"):
        table.add_column(column, overflow="fold")
    for n in result.nodes:
        error = "" if n.max_error is None else f"{n.max_error:.2g}"
        if not n.exact:
            error = f"[red]{error} (inexact: --border zero)[/]"
        table.add_row(n.qualified_name, n.was, n.became, ", ".join(n.passes) or "-", error)
    out.print(table)
    if result.opset_upgraded_from is not None:
        out.print(f"model opset raised from {result.opset_upgraded_from} to {result.opset_upgraded_to} for the rewritten nodes (whole model verified)")


@app.command("fix-resize")
def fix_resize_command(
    model: Annotated[Path, typer.Argument(help="ONNX model")],
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Output path (default: <stem>.fixed.onnx beside the input).")] = None,
    target: TargetName = "onnx",
    deployment_target: DeploymentTarget = "iOS15",
    lower: Annotated[str, typer.Option("--lower", help=" | ".join(LOWER_CHOICES) + ": a named form is that form or a refusal")] = "auto",
    border: Annotated[str, typer.Option("--border", help="exact | zero (the classic Caffe recipe, never exact)")] = "exact",
    input_shape: InputShapes = None,
    verify: Annotated[str, typer.Option("--verify", help="local (each rewritten node) | full (whole model) | none")] = "local",
    atol: Annotated[float, typer.Option("--atol", help="Allowed error relative to the output magnitude.")] = 1e-5,
    inputs: Annotated[Optional[Path], typer.Option("--inputs", help="An .npz of input tensors for --verify full.")] = None,
    report_json: Annotated[Optional[Path], typer.Option("--report-json", help="Write the report as JSON here.")] = None,
    flavor: CaffeFlavor = "bvlc",
) -> None:
    """Rewrite every Resize/Upsample so that TARGET runs it identically (exit 1 if a node cannot be made exact)."""
    from rewriter.fix import fix_resize, write_report_json

    _options(deployment_target, flavor)
    out_path = output if output is not None else model.with_name(model.name.removesuffix(".onnx") + ".fixed.onnx")
    feeds = None
    if inputs is not None:
        try:
            with np_load(inputs) as data:
                feeds = {k: data[k] for k in data.files}
        except (OSError, ValueError) as e:
            raise UsageError(f"--inputs {inputs}: cannot read ({e})") from None
    result = fix_resize(
        model,
        target,
        out_path,
        deployment_target=deployment_target,
        caffe_flavor=flavor,
        lower=lower,
        border=border,
        input_shapes=parse_input_shapes(input_shape),
        verify=verify,
        atol=atol,
        inputs=feeds,
    )
    render_fix(result, out_path)
    if report_json is not None:
        write_report_json(result, report_json)


export_app = typer.Typer(no_args_is_help=True, help="Export to another framework's model format, resizes made exact first.")
app.add_typer(export_app, name="export")


@export_app.command("caffe")
def export_caffe_command(
    model: Annotated[Path, typer.Argument(help="ONNX model")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Prototxt to write.")],
    weights: Annotated[Optional[Path], typer.Option("--weights", help="Caffemodel (default: OUT with .caffemodel).")] = None,
    flavor: CaffeFlavor = "bvlc",
    border: Annotated[str, typer.Option("--border", help="exact | zero (classic zero-border Deconvolution, never exact)")] = "exact",
    input_shape: InputShapes = None,
) -> None:
    """ONNX -> Caffe prototxt + caffemodel (BVLC Caffe 1.0; Interp/Upsample fork layers on request)."""
    from rewriter.caffe import export_caffe

    r = export_caffe(model, output, weights, flavor=flavor, border=border, input_shapes=parse_input_shapes(input_shape))
    out.print(f"wrote {r.prototxt} + {r.caffemodel}: " + ", ".join(f"{t} x{n}" for t, n in sorted(r.layers.items())), markup=False, highlight=False)
    for name, became in r.resize_layers.items():
        out.print(f"  {name}: {became}", markup=False, highlight=False)
    if r.border_error is not None:
        out.print(f"  --border zero: max |Caffe - ONNX Runtime| = {r.border_error:.3g} (NOT exact)", markup=False)
    for w in r.warnings:
        err.print(f"warning: {w}", markup=False, highlight=False)


@export_app.command("coreml")
def export_coreml_command(
    model: Annotated[Path, typer.Argument(help="ONNX model, or a Keras model (.keras, .h5, SavedModel directory) with rewriter[tf]")],
    output: Annotated[Path, typer.Option("-o", "--output", help="OUT.mlpackage (mlprogram) or OUT.mlmodel (neuralnetwork).")],
    deployment_target: DeploymentTarget = "iOS15",
    model_format: Annotated[str, typer.Option("--format", help="mlprogram | neuralnetwork")] = "mlprogram",
    input_shape: InputShapes = None,
    compute_precision: Annotated[str, typer.Option("--compute-precision", help="float32 | float16")] = "float32",
    verify: Annotated[bool, typer.Option("--verify", help="Compare with ONNX Runtime (Core ML itself on macOS; the reference evaluator everywhere).")] = False,
) -> None:
    """ONNX -> Core ML (.mlpackage / .mlmodel) with every Resize running exactly as in ONNX Runtime."""
    from rewriter.coreml import export_coreml

    r = export_coreml(
        model, output, deployment_target=deployment_target, model_format=model_format,
        input_shapes=parse_input_shapes(input_shape), compute_precision=compute_precision, verify=verify,
    )
    out.print(f"wrote {r.path} ({r.model_format}, {r.deployment_target})", markup=False, highlight=False)
    for node, became in r.resize_ops:
        out.print(f"  {node}: {became}", markup=False, highlight=False)
    if r.verified_with:
        out.print(f"  verified with {', '.join(r.verified_with)}: max error {r.max_error:.3g} (relative)", markup=False)
    for w in r.warnings:
        err.print(f"warning: {w}", markup=False, highlight=False)


def np_load(path: Path):
    import numpy as np

    return np.load(path, allow_pickle=False)


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
        err.print(f"rewriter: error: {e}", markup=False, highlight=False)
        return e.exit_code
    except (KeyboardInterrupt, BrokenPipeError):
        return 130
    except Exception as e:  # noqa: BLE001 - the promise is: no traceback, ever
        # Usage errors of the CLI framework (typer vendors click, older typer uses click itself).
        if hasattr(e, "show") and hasattr(e, "exit_code"):
            e.show()
            return int(e.exit_code)
        if type(e).__name__ == "Abort":
            return 130
        if os.environ.get("REWRITER_DEBUG"):
            raise
        first_line = (str(e).strip().splitlines() or [""])[0]
        err.print(f"rewriter: internal error: {type(e).__name__}: {first_line} (set REWRITER_DEBUG=1 for details)", markup=False, highlight=False)
        return 2
