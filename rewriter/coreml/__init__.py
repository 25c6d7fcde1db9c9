"""Core ML export with exact upsampling (``rewriter export coreml``) and a reference evaluator of saved models."""

from rewriter.coreml.coverage import SUPPORTED_OPS, supported_ops_markdown
from rewriter.coreml.exporter import CoreMLExport, export_coreml

__all__ = ["SUPPORTED_OPS", "CoreMLExport", "export_coreml", "supported_ops_markdown"]
