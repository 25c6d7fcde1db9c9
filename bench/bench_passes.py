"""Pass cost on big synthetic models vs the I/O floor measured in the same run.

The last column is the alternative design: a round trip through onnx-graphsurgeon's IR (import, export,
save; needs `pip install onnx-graphsurgeon`), which rewriter does not use (it edits the graph proto in
place and streams weights).

    python bench/bench_passes.py [--sizes 200M,1G,1Gx,4Gx] [--workdir DIR]

`x` marks external data. For each model: the floor (inline: onnx.load + onnx.save; external: a plain
copy of the data file), `rewriter fix-resize` with --verify none and --verify local, and `rewriter check`,
each in a fresh process; wall time and the process's peak RSS (getrusage). Prints one table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent


CHILD = """
import json, sys, time
t0 = time.perf_counter()
kind, args = sys.argv[1], sys.argv[2:]
code = 0
if kind == "load_save":
    import onnx
    onnx.save(onnx.load(args[0]), args[1])
elif kind == "copy":
    import shutil
    shutil.copyfile(args[0], args[1])
elif kind == "graphsurgeon":  # the alternative graph IR: import + export around the same save
    import os, shutil, onnx, onnx_graphsurgeon as gs
    external = os.path.exists(args[0] + ".data")
    model = gs.export_onnx(gs.import_onnx(onnx.load(args[0], load_external_data=not external)))
    onnx.save(model, args[1])
    if external:
        shutil.copyfile(args[0] + ".data", args[1] + ".data")
else:
    from rewriter.cli import main
    code = main(args)
# VmHWM is this process's own peak (ru_maxrss would include the parent's peak, kept across exec).
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({"seconds": time.perf_counter() - t0, "rss_mb": hwm / 1024, "code": code}))
"""


def measure(kind: str, *args: str) -> dict:
    # Start each run with no dirty pages from the previous one, or its writeback throttles this one.
    for leftover in WORK_OUTPUTS:
        leftover.unlink(missing_ok=True)
    os.sync()
    _drop_page_cache()
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, kind, *args], capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{kind} failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall"] = wall
    if result["code"] and not (kind == "cli" and args[0] == "check" and result["code"] == 1):
        raise SystemExit(f"{kind} exited {result['code']}: {proc.stderr.strip()}")
    return result


WORK_OUTPUTS: list[Path] = []


def _drop_page_cache() -> None:
    """Cold reads for every run when allowed (root on Linux): the page cache otherwise decides the winner."""
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        pass


def median(runs: list[dict]) -> dict:
    ordered = sorted(runs, key=lambda r: r["wall"])
    return ordered[len(ordered) // 2]


def parse_size(text: str) -> tuple[int, bool]:
    external = text.endswith("x")
    text = text.rstrip("x")
    unit = {"M": 1 << 20, "G": 1 << 30}[text[-1]]
    return int(float(text[:-1]) * unit), external


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="200M,1G,1Gx,4Gx")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (the median is shown)")
    opts = parser.parse_args()
    work = opts.workdir or Path(tempfile.mkdtemp(prefix="rewriter-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    WORK_OUTPUTS.extend(work / name for name in ("copy.data", "copy.onnx", "fixed.onnx", "fixed.onnx.data"))
    console = Console()
    table = Table(title=f"fix-resize / check vs the I/O floor (median of {opts.repeat} runs: wall seconds, peak RSS MB; a fresh process and a cold page cache each)")
    for col in ("model", "nodes / Resize", "floor", "fix-resize --verify none", "fix-resize --verify local", "verify cost", "check", "fix / floor", "graphsurgeon round trip"):
        table.add_column(col)
    try:
        for spec in opts.sizes.split(","):
            size, external = parse_size(spec)
            label = f"{size / 2**30:.1f} GB {'external' if external else 'inline'}"
            path = work / f"model_{spec}.onnx"
            console.print(f"building {label} ...")
            # In a child process, so that this process stays small (its peak would be inherited otherwise).
            subprocess.run([sys.executable, "-c", f"from bench.synthetic import write; from pathlib import Path; write(Path({str(path)!r}), {size}, {external})"], cwd=ROOT, check=True)
            import onnx

            graph = onnx.load(str(path), load_external_data=False).graph
            n_nodes, n_resize = len(graph.node), sum(n.op_type == "Resize" for n in graph.node)
            runs: dict[str, list[dict]] = {"floor": [], "none": [], "local": [], "check": [], "gs": []}
            for _ in range(opts.repeat):  # interleaved, so that drifting machine load hits all alike
                if external:
                    runs["floor"].append(measure("copy", str(path) + ".data", str(work / "copy.data")))
                else:
                    runs["floor"].append(measure("load_save", str(path), str(work / "copy.onnx")))
                runs["none"].append(measure("cli", "fix-resize", str(path), "-o", str(work / "fixed.onnx"), "--verify", "none"))
                runs["local"].append(measure("cli", "fix-resize", str(path), "-o", str(work / "fixed.onnx"), "--verify", "local"))
                runs["check"].append(measure("cli", "check", str(path)))
                runs["gs"].append(measure("graphsurgeon", str(path), str(work / "fixed.onnx")))
            floor, fix_none, fix_local, chk, gsr = (median(runs[k]) for k in ("floor", "none", "local", "check", "gs"))
            table.add_row(
                label,
                f"{n_nodes} / {n_resize}",
                f"{floor['wall']:.2f} s, {floor['rss_mb']:.0f} MB",
                f"{fix_none['wall']:.2f} s, {fix_none['rss_mb']:.0f} MB",
                f"{fix_local['wall']:.2f} s, {fix_local['rss_mb']:.0f} MB",
                f"{fix_local['wall'] - fix_none['wall']:+.2f} s",
                f"{chk['wall']:.2f} s, {chk['rss_mb']:.0f} MB",
                f"{fix_local['wall'] / floor['wall']:.2f}x",
                f"{gsr['wall']:.2f} s, {gsr['rss_mb']:.0f} MB",
            )
            for f in work.iterdir():
                f.unlink()
    finally:
        if opts.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    console.print(table)


if __name__ == "__main__":
    main()
