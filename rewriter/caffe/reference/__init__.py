"""A numpy evaluator of the Caffe layers the exporter emits, written from Caffe's own definitions.

It reads a NetParameter (the parsed prototxt) plus the weights of a second NetParameter (the parsed
caffemodel, matched by layer name and checked blob by blob like ``Net::CopyTrainedLayersFrom``) and runs
the TEST-phase forward pass. Shapes follow the layer sources, not ONNX:

- Convolution / Deconvolution (``base_conv_layer.cpp``, ``conv_layer.cpp``, ``deconv_layer.cpp``): ``axis``
  is the channel axis, the axes after it are spatial (N-D); output ``(in + 2p - ext) / s + 1`` (integer
  division) and ``s (in - 1) + ext - 2p`` with ``ext = d (k - 1) + 1``; weights ``[out, in/g, k...]`` and
  ``[in, out/g, k...]``; symmetric padding only.
- Pooling (``pooling_layer.cpp``): 4-D only; pooled size ``ceil((in + 2p - k) / s) + 1``, minus one when the
  last window would start in the padding; MAX windows are clipped to the image, AVE windows to
  ``[start, min(start + k, in + p))`` for the divisor and to the image for the sum; global pooling.
- BatchNorm (``batch_norm_layer.cpp``): three blobs (mean, variance, scale factor s); with global stats
  ``y = (x - mean/s) / sqrt(var/s + eps)`` (s == 0 gives factor 0).
- Scale / Bias (``scale_layer.cpp``, ``bias_layer.cpp``): the second operand (bottom[1] or a blob) spans
  ``shape[axis : axis + num_axes]`` and broadcasts over the other axes.
- InnerProduct: ``axis`` and the ``transpose`` flag; Slice / Concat / Crop / Reshape (0 = copy, -1 = infer,
  axis / num_axes) / Flatten / Tile / Softmax / Eltwise (SUM with coeff, PROD, MAX) / Power / Exp / Log /
  ReLU (negative_slope) / PReLU / ELU / Sigmoid / TanH / AbsVal / Dropout / Silence / Split / DummyData
  (constant filler) / Parameter / Input.
- Interp (DeepLab / PSPNet ``interp_layer.cpp`` + ``util/interp.cpp``): align-corners grid in float32,
  ``r = (n - 1) / (m - 1)`` (0 for m == 1), ``x = r * i``, taps ``int(x)`` and the next one unless at the
  end, plain copy when both sizes are unchanged.
- Upsample (eric612/MobileNet-YOLO ``upsample_layer.cpp``): ``scale`` on the last two axes, ``src = dst / scale``.

Arithmetic: blobs are float32 like Caffe's; convolutions, inner products and sums accumulate in float64
and round once (Caffe's BLAS summation order cannot be reproduced anyway, so the tests use a relative
tolerance).

Modules: ``blobs`` (float32 blobs, the error and the checks), ``spatial`` (Convolution / Deconvolution /
Pooling / Interp geometry and kernels), ``shapes`` (``layer_shapes``), ``forward`` (``forward_layer``) and
``evaluator`` (``CaffeNet``, ``load``, ``run``).
"""

from rewriter.caffe.reference.blobs import CaffeReferenceError, array_to_blob, blob_to_array
from rewriter.caffe.reference.evaluator import CaffeNet, load, run
from rewriter.caffe.reference.forward import forward_layer
from rewriter.caffe.reference.shapes import layer_shapes
from rewriter.caffe.reference.spatial import conv_geometry, pooled_size

__all__ = [
    "CaffeNet",
    "CaffeReferenceError",
    "array_to_blob",
    "blob_to_array",
    "conv_geometry",
    "forward_layer",
    "layer_shapes",
    "load",
    "pooled_size",
    "run",
]
