"""Progress on stderr for the steps that take more than a second on big models (TTY only)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from rich.progress import Progress

T = TypeVar("T")
_DELAY = 1.0  # seconds before a bar appears: quick steps stay silent


def enabled() -> bool:
    return sys.stderr.isatty() and not os.environ.get("REWRITER_NO_PROGRESS")


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Yield ``items``; once the loop has run for a second, show a transient bar on stderr."""
    if not enabled():
        yield from items
        return
    total = total if total is not None else (len(items) if hasattr(items, "__len__") else None)  # type: ignore[arg-type]
    start = time.monotonic()
    bar: Progress | None = None
    task = None
    done = 0
    try:
        for item in items:
            yield item
            done += 1
            if bar is None and time.monotonic() - start > _DELAY:
                bar = _bar()
                bar.start()
                task = bar.add_task(description, total=total, completed=done)
            elif bar is not None:
                bar.update(task, completed=done)  # type: ignore[arg-type]
    finally:
        if bar is not None:
            bar.stop()


def _bar() -> Progress:
    # rich.progress is imported only when a bar is shown: most runs finish before it would appear.
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=Console(stderr=True), transient=True)
