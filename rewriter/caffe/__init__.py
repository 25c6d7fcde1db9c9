"""Caffe export: ONNX -> prototxt + caffemodel with exact upsampling (``export_caffe``), the Caffe protobuf
schema subset it writes (``rewriter.caffe.proto``) and a numpy reference evaluator of the layers it emits
(``rewriter.caffe.reference``)."""

from rewriter.caffe.exporter import BORDERS, CaffeExport, export_caffe, measure_error
from rewriter.caffe.ops import supported_ops_markdown
from rewriter.targets.caffe import FLAVORS

__all__ = ["BORDERS", "FLAVORS", "CaffeExport", "export_caffe", "measure_error", "supported_ops_markdown"]
