"""`rewriter report`: a self-contained HTML page with the grid and error-map pictures of every node,
rendered by a real headless Chromium when one is installed."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from rewriter.cli import main
from rewriter.report.figures import sampled_positions
from rewriter.sampling import AxisWeights, lerp_weights
from rewriter.targets.caffe import caffe_classic_deconv
from tests.conftest import MODELS

pytest.importorskip("matplotlib")
CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


def images(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)]


@pytest.mark.parametrize(("fixture", "nodes"), [("cnn_unet_ts17.onnx", 2), ("legacy_upsample9_linear.onnx", 1), ("torch_ts17_nearest3d_x2.onnx", 1)])
def test_report_has_pictures_for_every_node(fixture: str, nodes: int, tmp_path: Path, capsys) -> None:
    out = tmp_path / "report.html"
    code = main(["report", str(MODELS / fixture), "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    assert capsys.readouterr().out.startswith(f"wrote {out}\n")
    html = out.read_text()
    assert html.count("<h2>") == nodes and len(images(html)) == 2 * nodes
    assert "http" not in html.replace("http-equiv", ""), "self-contained: no external resource"
    for target in ("onnx", "coreml", "caffe"):
        assert f"<td>{target}</td>" in html
    assert "measured error" in html
    assert main(["report", str(MODELS / fixture), "-o", str(out), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["output"] == str(out) and len(doc["nodes"]) == nodes and all(n["pictures"] for n in doc["nodes"])


def test_naive_caffe_deconvolution_differs_at_the_borders_only(tmp_path: Path) -> None:
    """The picture's data: the classic recipe samples like half_pixel inside and against zeros at the edges."""
    n, f = 8, 2
    half_pixel = AxisWeights(lerp_weights((np.arange(n * f) + 0.5) / f - 0.5, n))
    classic = caffe_classic_deconv(n, f)
    rows = np.abs(classic.matrix - half_pixel.matrix).sum(axis=1)
    assert rows[0] > 0.1 and rows[-1] > 0.1 and np.allclose(rows[1:-1], 0)
    assert np.allclose(sampled_positions(half_pixel)[1:-1], sampled_positions(classic)[1:-1])


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (Debian: apt-get install chromium)")
def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    assert main(["report", str(MODELS / "cnn_unet_ts17.onnx"), "-o", str(out), "--target", "coreml", "--target", "caffe"]) == 0
    shot = tmp_path / "shot.png"
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
             "--hide-scrollbars", "--window-size=1000,1400", f"--screenshot={shot}", out.as_uri()],
            capture_output=True, timeout=120, check=False,
        )
    assert shot.exists(), "Chromium wrote no screenshot"
    from matplotlib.image import imread

    rgb = imread(shot)[..., :3] * 255  # float RGB(A) in [0, 1]
    assert rgb.shape[:2] == (1400, 1000)
    dark = (rgb.sum(axis=2) < 200).mean()
    colored = ((rgb.max(axis=2) - rgb.min(axis=2)) > 60).mean()
    assert dark > 0.002, "text was rendered"
    assert colored > 0.005, "the plots' colours (lines, error maps) were rendered"
