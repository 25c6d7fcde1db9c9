"""What the commands print: one ``Listing`` (title, columns, rows, notes, a JSON document) in four formats.

- ``table``: a rich table fitted to the terminal: every column gets at least its longest word, so cells wrap
  between words and never inside one; when the columns do not fit side by side, the least important ones are
  left out (and named in a note), and if that is not enough, over-long tokens (paths, ``a_b_c=d`` spellings)
  are broken after a separator such as ``/`` or ``_``, never between two letters of a word.
- ``plain``: one line per row, ``column: value`` pairs; no colour, no width dependence (the default when
  stdout is not a terminal, so logs and ``grep`` see the same lines everywhere).
- ``json``: one document; ``csv``: the columns and rows, all of them, as comma-separated values.

rich is imported only when a table is printed: the plain, JSON and CSV paths stay cheap at start-up.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from typing import Any

from rewriter.errors import UsageError

FORMATS = ("table", "plain", "json", "csv")
# Table chrome per column with show_lines=True and the default box: one space of padding on each side and
# one rule character, plus one for the table's closing edge.
_COLUMN_CHROME = 3


@dataclass
class Column:
    name: str
    priority: int = 0  # 0: always shown; higher numbers are dropped first in narrow terminals


@dataclass
class Listing:
    """A command's result, before it is rendered in the chosen format."""

    title: str
    columns: list[Column]
    rows: list[list[str]]
    document: Any  # the JSON form
    notes: list[str] = field(default_factory=list)  # lines after the table / plain rows
    styles: dict[str, str] = field(default_factory=dict)  # word -> rich style, for table cells only
    plain: list[str] | None = None  # the plain-format lines, when the generic "column: value" form is not the one


def default_format() -> str:
    return "table" if sys.stdout.isatty() else "plain"


def check_format(value: str | None) -> str:
    if value is None:
        return default_format()
    if value not in FORMATS:
        raise UsageError(f"--format {value!r}: expected one of {', '.join(FORMATS)}")
    return value


def terminal_width() -> int:
    """The width tables are fitted to: COLUMNS if set, else the terminal's, else 80."""
    return shutil.get_terminal_size((80, 24)).columns


def emit(listing: Listing, fmt: str, *, width: int | None = None, file=None) -> None:
    """Print ``listing`` in ``fmt`` to ``file`` (stdout)."""
    file = file if file is not None else sys.stdout
    if fmt == "json":
        file.write(json.dumps(listing.document, indent=2) + "\n")
    elif fmt == "csv":
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow([c.name for c in listing.columns])
        writer.writerows(listing.rows)
    elif fmt == "plain":
        for line in plain_lines(listing):
            file.write(line + "\n")
    else:
        print_table(listing, width or terminal_width(), file)


def plain_lines(listing: Listing) -> list[str]:
    if listing.plain is not None:
        return listing.plain + listing.notes
    lines = [listing.title]
    for row in listing.rows:
        head, *rest = row
        pairs = "; ".join(f"{c.name}: {v}" for c, v in zip(listing.columns[1:], rest) if v)
        lines.append(f"{head}: {pairs}" if pairs else head)
    return lines + listing.notes


_SEPARATORS = "/_.,(-:="  # a token too long for its column is broken after one of these, never inside a word


def _longest_word(text: str) -> int:
    return max((len(w) for w in text.split()), default=0)


def _longest_line(text: str) -> int:
    return max((len(line) for line in text.splitlines()), default=0)


def fit_columns(columns: list[Column], rows: list[list[str]], width: int) -> tuple[list[int], int | None]:
    """Which columns to show at ``width`` (indices), and the longest token length they can afford (None: any).

    Columns are dropped by decreasing priority number (latest first among equals) while their longest words
    do not fit side by side; priority-0 columns always stay. If the rest still does not fit, tokens longer
    than the returned limit are broken after a separator (``break_tokens``).
    """
    minimum = [max(_longest_word(c.name), *(_longest_word(r[k]) for r in rows), 1) for k, c in enumerate(columns)]
    shown = list(range(len(columns)))
    droppable = sorted((k for k, c in enumerate(columns) if c.priority), key=lambda k: (columns[k].priority, k))

    def needed(limit: int | None) -> int:
        return sum(min(minimum[k], limit or minimum[k]) + _COLUMN_CHROME for k in shown) + 1

    while needed(None) > width and droppable:
        shown.remove(droppable.pop())
    if needed(None) <= width:
        return shown, None
    limit = max(minimum[k] for k in shown)
    while limit > 1 and needed(limit) > width:
        limit -= 1
    return shown, limit


def break_tokens(text: str, limit: int) -> str:
    """``text`` with every whitespace-separated token longer than ``limit`` broken into lines after separators."""
    lines = []
    for line in text.splitlines() or [""]:
        words = []
        for word in line.split(" "):
            while len(word) > limit:
                cut = max((word.rfind(c, 0, limit) for c in _SEPARATORS), default=-1) + 1
                cut = cut or limit  # no separator: a word longer than the column cannot be kept whole
                words.append(word[:cut] + "\n")
                word = word[cut:]
            words.append(word + " ")
        lines.append("".join(words).rstrip(" ").replace("\n ", "\n"))
    return "\n".join(lines)


def column_widths(cells: list[list[str]], width: int) -> list[int] | None:
    """Explicit column widths that fill ``width``: each column its longest word, the rest shared by need.

    None when every column fits at its natural width (rich then sizes them itself).
    """
    longest = [max(_longest_line(c) for c in col) for col in cells]
    words = [max(_longest_word(c) for c in col) for col in cells]
    room = width - _COLUMN_CHROME * len(cells) - 1
    if sum(longest) <= room:
        return None
    widths = list(words)
    want = [lo - w for lo, w in zip(longest, words)]
    spare = room - sum(widths)
    total = sum(want) or 1
    for k, need in enumerate(want):
        widths[k] += min(need, spare * need // total)
    return widths


def print_table(listing: Listing, width: int, file) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    shown, limit = fit_columns(listing.columns, listing.rows, width)
    headers = [listing.columns[k].name for k in shown]
    rows = [[row[k] if limit is None else break_tokens(row[k], limit) for k in shown] for row in listing.rows]
    widths = column_widths([[h, *(r[i] for r in rows)] for i, h in enumerate(headers)], width)
    color = file is sys.stdout and sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    console = Console(file=file, width=width, no_color=not color, highlight=False, emoji=False, force_terminal=color or None)
    table = Table(title=Text(listing.title), show_lines=True, title_justify="left")
    for i, header in enumerate(headers):
        table.add_column(header, width=widths[i] if widths else None, overflow="fold")
    for row in rows:
        table.add_row(*(_styled(cell, listing.styles) for cell in row))
    console.print(table)
    dropped = [c.name for k, c in enumerate(listing.columns) if k not in shown]
    if dropped:
        console.print(Text(f"(narrow terminal: {', '.join(dropped)} not shown; --format plain or a wider terminal shows every column)"))
    for note in listing.notes:
        console.print(Text(note))


def _styled(cell: str, styles: dict[str, str]):
    from rich.text import Text

    text = Text(cell)
    for word, style in styles.items():
        text.highlight_words([word], style)
    return text

