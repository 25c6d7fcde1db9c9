"""The report's pictures (matplotlib, Agg, no pyplot state): where output pixels sample the input, and the
error a naive converter's mapping makes on a test image.

Both pictures come from the per-axis weight matrices (``rewriter.sampling``): the node's, as ONNX Runtime
computes them, and each target's ``naive_weights``, what a converter that maps by attribute names computes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from rewriter.sampling import AxisWeights

_COLORS = ("#d62728", "#1f77b4", "#9467bd", "#ff7f0e", "#8c564b")
_EDGE = 12  # outputs shown at each end of a long axis: borders are where mappings differ most


@dataclass
class Mapping:
    """One way of resizing the picture's two axes: the node's own, or a target's naive converter's."""

    label: str
    rows: AxisWeights | None  # None: the converter refuses the node
    cols: AxisWeights | None

    @property
    def available(self) -> bool:
        return self.rows is not None and self.cols is not None


def sampled_positions(w: AxisWeights) -> np.ndarray:
    """Where each output pixel samples the input: the weighted mean of its taps (NaN where it extrapolates)."""
    total = w.matrix.sum(axis=1)
    pos = w.matrix @ np.arange(w.shape[1], dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(np.abs(total) > 1e-12, pos / total, np.nan)
    out[w.outside] = np.nan
    return out


def sample_image(h: int, w: int) -> np.ndarray:
    """A [-1, 1] image with smooth gradients, a hard-edged square and a fine checkerboard corner."""
    y, x = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    img = 0.6 * np.sin(2 * np.pi * (1.5 * x + 0.5 * y)) * np.cos(2 * np.pi * y)
    img[(x > 0.55) & (x < 0.85) & (y > 0.2) & (y < 0.5)] = 1.0
    checker = ((np.arange(h)[:, None] + np.arange(w)[None, :]) % 2) * 2.0 - 1.0
    corner = (x < 0.3) & (y > 0.7)
    img[corner] = checker[corner]
    return np.clip(img, -1.0, 1.0)


def apply(mapping: Mapping, img: np.ndarray) -> np.ndarray:
    return mapping.rows.matrix @ img @ mapping.cols.matrix.T  # type: ignore[union-attr]


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return buf.getvalue()


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def grid_png(axis_name: str, mappings: list[Mapping]) -> bytes:
    """Sampled input position per output pixel along the picture's horizontal axis, one line per mapping."""
    node = mappings[0].cols
    assert node is not None
    m, n = node.shape
    spans = [np.arange(m)] if m <= 2 * _EDGE + 8 else [np.arange(_EDGE), np.arange(m - _EDGE, m)]
    fig = _figure(4.2 * len(spans) + 1.2, 3.2)
    axes = fig.subplots(1, len(spans), squeeze=False)[0]
    for ax, span in zip(axes, spans):
        for k, mp in enumerate(mappings):
            if mp.cols is None or mp.cols.shape != node.shape:
                continue
            style = {"linestyle": "-", "linewidth": 2.2, "marker": "o"} if k == 0 else {"linestyle": "--", "linewidth": 1.4, "marker": "x"}
            ax.plot(span, sampled_positions(mp.cols)[span], color=_COLORS[k % len(_COLORS)], label=mp.label, markersize=5, **style)
        ax.set_xlabel(f"output pixel ({axis_name}, {m} outputs)")
        ax.set_ylabel(f"input position sampled (0..{n - 1})")
        ax.grid(True, alpha=0.3)
        if len(spans) > 1:
            ax.set_title("first outputs" if span[0] == 0 else "last outputs", fontsize=9)
    axes[0].legend(fontsize=8, loc="upper left")
    return _png(fig)


def error_png(mappings: list[Mapping], img: np.ndarray) -> tuple[bytes, dict[str, float]]:
    """The test image, the node's output, and |naive - node| for each naive mapping; also the worst errors."""
    exact = apply(mappings[0], img)
    others = mappings[1:]
    fig = _figure(3.1 * (2 + len(others)), 3.0)
    axes = fig.subplots(1, 2 + len(others), squeeze=False)[0]
    axes[0].imshow(img, cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
    axes[0].set_title(f"test image {img.shape[0]}x{img.shape[1]}", fontsize=9)
    axes[1].imshow(exact, cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
    axes[1].set_title(f"{mappings[0].label} {exact.shape[0]}x{exact.shape[1]}", fontsize=9)
    worst: dict[str, float] = {}
    for ax, mp in zip(axes[2:], others):
        if not mp.available or mp.rows.shape[0] != exact.shape[0] or mp.cols.shape[0] != exact.shape[1]:  # type: ignore[union-attr]
            ax.text(0.5, 0.5, "no naive mapping\n(not converted,\nor refused)", ha="center", va="center", fontsize=10)
            ax.set_title(mp.label, fontsize=9)
            continue
        err = np.abs(apply(mp, img) - exact)
        worst[mp.label] = float(err.max(initial=0.0))
        shown = ax.imshow(err, cmap="magma", vmin=0, vmax=max(worst[mp.label], 1e-6), interpolation="nearest")
        ax.set_title(f"|{mp.label} − node|, max {worst[mp.label]:.3g}", fontsize=9)
        fig.colorbar(shown, ax=ax, shrink=0.8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    return _png(fig), worst
