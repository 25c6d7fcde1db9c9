"""What the Core ML and Caffe exporters share: the per-op translator registry and opset-normalised ONNX readers."""
