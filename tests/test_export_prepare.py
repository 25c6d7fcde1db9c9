"""Exporters work on one prepared model: the file is read once and the model's shapes inferred at most twice
(once to analyse it, once after fix-resize rewrote it), whatever the exporter."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

import rewriter.model_io as model_io
from rewriter.caffe import export_caffe
from rewriter.coreml import export_coreml
from tests.conftest import MODELS


@pytest.fixture
def counted(monkeypatch) -> dict[str, int]:
    """Count reads of the model file and shape inferences of the model's own graph (not of the one-node
    models the semantics core builds to describe a spelling)."""
    counts = {"reads": 0, "inferences": 0}
    read, infer = model_io._read_model_file, onnx.shape_inference.infer_shapes

    def counting_read(path, *args, **kwargs):
        counts["reads"] += 1
        return read(path, *args, **kwargs)

    def counting_infer(model, *args, **kwargs):
        if len(model.graph.node) > 8:
            counts["inferences"] += 1
        return infer(model, *args, **kwargs)

    monkeypatch.setattr(model_io, "_read_model_file", counting_read)
    monkeypatch.setattr(onnx.shape_inference, "infer_shapes", counting_infer)
    return counts


FIXTURE = MODELS / "cnn_unet_ts17.onnx"


def test_export_caffe_reads_once_and_infers_at_most_twice(counted: dict[str, int], tmp_path: Path) -> None:
    export_caffe(FIXTURE, tmp_path / "unet.prototxt")
    assert counted["reads"] == 1
    assert 1 <= counted["inferences"] <= 2


def test_export_coreml_reads_once_and_infers_at_most_twice(counted: dict[str, int], tmp_path: Path) -> None:
    export_coreml(FIXTURE, tmp_path / "unet.mlpackage", verify=True)
    assert counted["reads"] == 1
    assert 1 <= counted["inferences"] <= 2
