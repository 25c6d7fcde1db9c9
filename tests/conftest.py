"""Shared pytest configuration: numeric summaries that the closing report quotes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import onnxruntime as ort
import pytest

ort.set_default_logger_severity(3)  # tf_half_pixel_for_nn at opset >= 13 logs a deprecation warning per session

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
# One directory per test session (the controller picks it and its xdist workers inherit it), so two sessions running
# at once do not clear each other's summaries.
os.environ.setdefault("REWRITER_STATS_DIR", str(ROOT / ".pytest_cache" / f"rewriter-stats-{os.getpid()}"))
STATS_DIR = Path(os.environ["REWRITER_STATS_DIR"])


def record_stats(name: str, stats: dict) -> None:
    """Store a summary (one file per test chunk, so it works under pytest-xdist)."""
    STATS_DIR.mkdir(parents=True, exist_ok=True)
    (STATS_DIR / f"{name}.json").write_text(json.dumps(stats))


def pytest_sessionstart(session: pytest.Session) -> None:
    if not hasattr(session.config, "workerinput") and STATS_DIR.exists():
        for f in STATS_DIR.glob("*.json"):
            f.unlink()


def pytest_sessionfinish(session: pytest.Session) -> None:
    if hasattr(session.config, "workerinput"):
        return

    def _remove_later() -> None:  # after the terminal summary has read it
        import shutil

        shutil.rmtree(STATS_DIR, ignore_errors=True)

    session.config.add_cleanup(_remove_later)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not STATS_DIR.exists():
        return
    groups: dict[str, dict] = {}
    for f in sorted(STATS_DIR.glob("*.json")):
        group = f.stem.split("@")[0]
        data = json.loads(f.read_text())
        g = groups.setdefault(group, {"cases": 0, "worst": 0.0, "reference_checked": 0, "counts": {}})
        g["cases"] += data.get("cases", 0)
        g["reference_checked"] += data.get("reference_checked", 0)
        g["worst"] = max(g["worst"], data.get("worst", 0.0))
        for target, counts in data.get("counts", {}).items():
            mine = g["counts"].setdefault(target, {})
            for k, v in counts.items():
                mine[k] = mine.get(k, 0) + v
    if groups:
        terminalreporter.section("rewriter numeric summary")
        for name, g in groups.items():
            line = f"{name}: {g['cases']} cases vs onnxruntime, worst relative error {g['worst']:.3g}"
            if g["reference_checked"]:
                line += f"; {g['reference_checked']} also vs onnx.reference"
            for target, counts in sorted(g["counts"].items()):
                line += f"; {target}: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
            terminalreporter.write_line(line)
