"""What the commands print: --format on every command, tables fitted to 80 and 200 columns, help text, version."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest

import rewriter
from rewriter import cli
from rewriter.config import TARGET_NAMES
from rewriter.inspection import inspect
from rewriter.listings import fix_listing, inspect_listing
from rewriter.output import Column, Listing, break_tokens, emit, fit_columns
from tests.cli_helpers import copy_fixture, run_cli
from tests.conftest import MODELS, ROOT

UNET = MODELS / "cnn_unet_ts17.onnx"
UNNAMED = MODELS / "legacy_upsample9_linear.onnx"  # one Upsample-9 node without a name


def rendered(listing: Listing, width: int) -> str:
    buf = io.StringIO()
    emit(listing, "table", width=width, file=buf)
    return buf.getvalue()


def words(text: str) -> set[str]:
    """Alphanumeric runs: what must never be split across lines."""
    return set(re.findall(r"[A-Za-z0-9]+", text))


def assert_fits_whole_words(listing: Listing, width: int) -> str:
    out = rendered(listing, width)
    assert max(len(line) for line in out.splitlines()) <= width
    shown, _ = fit_columns(listing.columns, listing.rows, width)
    for row in listing.rows:
        for k in shown:
            missing = words(row[k]) - words(out)
            assert not missing, f"split across lines at width {width}: {missing}"
    return out


def test_inspect_table_fits_80_and_200_columns() -> None:
    for model in (UNET, UNNAMED, MODELS / "legacy_resize10_nearest_x1p5.onnx", MODELS / "cnn_fpn_dynamo.onnx", MODELS / "legacy_if_resize.onnx"):
        listing = inspect_listing(inspect(model))
        narrow = assert_fits_whole_words(listing, 80)
        wide = assert_fits_whole_words(listing, 200)
        assert "scales" in wide and "transform" in wide, "a wide terminal shows every column"
        assert "not shown" in narrow and "scales" in narrow.split("not shown")[0].splitlines()[-1]


def test_fix_table_fits_80_and_200_columns(tmp_path: Path) -> None:
    from rewriter.fix import fix_resize

    for name, target in (("cnn_unet_ts17.onnx", "caffe"), ("legacy_upsample9_linear.onnx", "onnx")):
        out = tmp_path / f"{name}.{target}.onnx"
        listing = fix_listing(fix_resize(copy_fixture(name, tmp_path), target, out), out)
        for width in (80, 200):
            assert "became" in assert_fits_whole_words(listing, width)


def test_table_follows_the_terminal_width(monkeypatch, capsys) -> None:
    for columns in (80, 200):
        monkeypatch.setenv("COLUMNS", str(columns))
        code, out, _ = run_cli(["inspect", str(UNET), "--format", "table"], capsys)
        assert code == 0 and max(len(line) for line in out.splitlines()) <= columns
        assert ("┃ scales" in out) == (columns == 200)


def test_long_tokens_break_after_separators_only() -> None:
    assert break_tokens("lower-conv-transpose: ConvTranspose(axis", 14).splitlines() == ["lower-conv-", "transpose: ConvTranspose(", "axis"]
    listing = Listing("t", [Column("node"), Column("extra", 1)], [["/encoder/very_long_block_name/up/Resize", "x" * 30]], {})
    out = assert_fits_whole_words(listing, 30)
    assert "extra" not in out.splitlines()[1], "the optional column is dropped first"


@pytest.mark.parametrize("command", [["inspect", str(UNET)], ["check", str(UNET), "--target", "caffe"], ["check", str(UNET)]])
def test_every_format(command: list[str], capsys) -> None:
    code, out, _ = run_cli([*command, "--format", "json"], capsys)
    assert code in (0, 1) and json.loads(out)
    code2, out, _ = run_cli([*command, "--format", "csv"], capsys)
    rows = list(csv.reader(io.StringIO(out)))
    assert code2 == code and len(rows) >= 2 and len({len(r) for r in rows}) == 1
    code3, out, _ = run_cli([*command, "--format", "plain"], capsys)
    assert code3 == code and "\x1b[" not in out and "┃" not in out
    code4, piped, _ = run_cli(command, capsys)
    assert code4 == code and piped == out, "piped output is the plain format"


def test_fix_resize_and_export_caffe_formats(tmp_path: Path, capsys) -> None:
    src = copy_fixture("cnn_unet_ts17.onnx", tmp_path)
    code, out, err = run_cli(["fix-resize", str(src), "--target", "caffe", "--format", "json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["target"] == "caffe" and doc["output"].endswith("cnn_unet_ts17.fixed.onnx") and len(doc["nodes"]) == 2
    code, out, err = run_cli(["export", "caffe", str(src), "-o", str(tmp_path / "n.prototxt"), "--format", "csv"], capsys)
    assert code == 0, err
    assert out.splitlines()[0] == "node,became" and len(out.splitlines()) == 3


def test_bad_format_is_usage_error(capsys) -> None:
    code, _, err = run_cli(["inspect", str(UNET), "--format", "yaml"], capsys)
    assert code == 2 and "--format 'yaml'" in err


def test_inspect_json_flag_still_works(capsys) -> None:
    code, out, err = run_cli(["inspect", str(UNET), "--json"], capsys)
    assert code == 0 and json.loads(out)["nodes"] and "deprecated" in err


def test_help_keeps_brackets(capsys) -> None:
    code, out, _ = run_cli(["export", "coreml", "--help"], capsys)
    assert code == 0 and "rewriter[tf]" in out
    for command in (["--help"], ["check", "--help"], ["inspect", "--help"], ["fix-resize", "--help"], ["report", "--help"], ["export", "caffe", "--help"]):
        code, out, _ = run_cli(command, capsys)
        assert code == 0 and "--" in out


def test_version_is_written_once(capsys) -> None:
    code, out, _ = run_cli(["--version"], capsys)
    assert code == 0 and out == f"rewriter {rewriter.__version__}\n"
    assert re.fullmatch(r"\d+\.\d+\.\d+", rewriter.__version__)
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject and 'attr = "rewriter.__version__"' in pyproject
    assert f"rev: v{rewriter.__version__}" in (ROOT / "README.md").read_text(), "the README's pre-commit rev names this version's tag"


def test_cli_choices_equal_the_registry() -> None:
    from rewriter.targets import DEFAULT_TARGETS as LISTED
    from rewriter.targets import LOWER_CHOICES
    from rewriter.targets import TARGET_NAMES as REGISTRY
    from rewriter.targets.coreml import IOS_VERSIONS

    assert TARGET_NAMES == REGISTRY and cli.DEFAULT_TARGETS == LISTED and cli.LOWER_CHOICES == LOWER_CHOICES and cli.IOS_VERSIONS == IOS_VERSIONS
