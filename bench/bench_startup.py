"""Start-up time of the CLI: median wall time per command, and its ratio to `python -c "import numpy"`.

Every command runs N times, round-robin with the baseline (so load drift on a busy machine hits all
of them alike); the table is Markdown, ready for the README.

    python bench/bench_startup.py [--runs N] [--model models/cnn_unet_ts17.onnx]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "python -c 'import numpy'"


def _rewriter() -> list[str]:
    script = Path(sys.executable).with_name("rewriter")
    return [str(script)] if script.exists() else [sys.executable, "-m", "rewriter"]


def commands(model: str) -> dict[str, list[str]]:
    rw = _rewriter()
    return {
        BASELINE: [sys.executable, "-c", "import numpy"],
        "python -c 'import onnx'": [sys.executable, "-c", "import onnx"],
        "rewriter --version": [*rw, "--version"],
        "rewriter --help": [*rw, "--help"],
        f"rewriter check {model}": [*rw, "check", model],
        f"rewriter inspect {model}": [*rw, "inspect", model, "--format", "json"],
    }


def wall(argv: list[str]) -> float:
    env = {**os.environ, "REWRITER_NO_PROGRESS": "1"}
    start = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=ROOT, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.decode()[-500:]}")
    return elapsed


def versions() -> str:
    names = ("numpy", "onnx", "ml_dtypes", "onnxruntime", "typer", "rich")
    found = []
    for name in names:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    return f"Python {platform.python_version()}, " + ", ".join(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--model", default="models/cnn_unet_ts17.onnx")
    args = parser.parse_args()
    cmds = commands(args.model)
    times: dict[str, list[float]] = {name: [] for name in cmds}
    for name, argv in cmds.items():  # warm the file cache and the byte-code caches
        wall(argv)
    for _ in range(args.runs):
        for name, argv in cmds.items():
            times[name].append(wall(argv))
    base = statistics.median(times[BASELINE])
    print(f"{versions()}; {os.cpu_count()} cores; median of {args.runs} runs\n")
    print("| command | median wall (s) | × import numpy |")
    print("|---|---|---|")
    for name, values in times.items():
        med = statistics.median(values)
        print(f"| `{name}` | {med:.3f} | {med / base:.1f} |")


if __name__ == "__main__":
    main()
