"""How often a bilinear Resize keeps a native Core ML op, per deployment target (prints one table).

For align_corners and half_pixel linear resizes by x2, x4 and x8 (sizes m = f * n on both spatial axes) over
input lengths 8..1024: the share that ``--target coreml`` runs as a native op (the rest is lowered). A native
op is accepted when its documented grid is within ONNX Runtime's own float32 rounding of ORT's weights
(``rewriter.sampling.grid_conditioning``); the last column is the largest such bound met.

    python bench/bench_native_rate.py [--step 1]
"""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from rewriter.spelling import Spelling, describe_spelling
from rewriter.targets import make_target
from rewriter.targets.coreml import IOS_VERSIONS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--step", type=int, default=1, help="stride over the input lengths 8..1024")
    opts = parser.parse_args()
    lengths = range(8, 1025, opts.step)
    targets = [make_target("coreml", {"deployment_target": ios}) for ios in IOS_VERSIONS]
    table = Table(title=f"native Core ML op rate, linear resize x f on N x C x n x n, n = 8..1024 (step {opts.step})")
    for column in ("transform", "factor", *(t.label for t in targets), "largest bound"):
        table.add_column(column)
    for transform in ("align_corners", "half_pixel"):
        for factor in (2, 4, 8):
            native = [0] * len(targets)
            bound = 0.0
            for n in lengths:
                sem = describe_spelling(Spelling(mode="linear", transform=transform, sizes=(1, 1, factor * n, factor * n)), (1, 1, n, n), 13)
                bound = max(bound, *(sem.grid_slack(a) for a in sem.resized_axes))
                for k, target in enumerate(targets):
                    native[k] += target.accepts(sem) is None
            table.add_row(transform, f"x{factor}", *(f"{100 * c / len(lengths):.0f} %" for c in native), f"{bound:.2g}")
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
