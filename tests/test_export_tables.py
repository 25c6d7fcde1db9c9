"""The README's supported-op tables are the exporters' op registries, rendered."""

from __future__ import annotations

from pathlib import Path

from rewriter.caffe import supported_ops_markdown as caffe_table
from rewriter.coreml import supported_ops_markdown as coreml_table

README = Path(__file__).resolve().parents[1] / "README.md"


def _section(title_start: str) -> str:
    """The README text from the heading that starts with ``title_start`` to the next heading."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n### {title_start}")
    end = text.find("\n### ", start + 1)
    return text[start:end]


def _table(section: str, header: str) -> str:
    lines = section.split("\n")
    first = lines.index(header)
    rows = []
    for line in lines[first:]:
        if not line.startswith("|"):
            break
        rows.append(line)
    return "\n".join(rows)


def test_readme_coreml_table_is_the_registry() -> None:
    table = coreml_table()
    assert _table(_section("`rewriter export coreml"), table.split("\n")[0]) == table


def test_readme_caffe_table_is_the_registry() -> None:
    table = caffe_table()
    assert _table(_section("`rewriter export caffe"), table.split("\n")[0]) == table
