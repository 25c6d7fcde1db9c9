"""The subset of Caffe's protobuf schema that the exporter writes and the reference evaluator reads.

Built at import time with the protobuf package (a ``FileDescriptorProto`` in a private descriptor pool),
so no installed Caffe and no generated ``caffe_pb2`` is needed. Field numbers, types, labels and defaults
are copied from BVLC's ``src/caffe/proto/caffe.proto`` (the messages below are a subset of it, with the
same numbers: a file written with this schema is a valid ``caffe.NetParameter``); the two fork layer
parameters come from the forks that define them:

- ``InterpParameter`` (``interp_param = 163``): DeepLab / PSPNet (hszhao/PSPNet ``caffe.proto``;
  gpapan/caffe has the same six fields). Fields 1..6: height, width, zoom_factor, shrink_factor, pad_beg,
  pad_end.
- ``UpsampleParameter`` (``upsample_param = 150``): eric612/MobileNet-YOLO ``caffe.proto``; ``scale = 1``.

The LayerParameter number of a fork parameter differs between forks (Upsample is 149, 150 or 160 in
public forks), so the exporter writes layer parameters only into the text prototxt (where Caffe reads
them by name) and keeps the binary caffemodel to names, types, bottoms, tops and blobs, all BVLC fields.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto
_TYPES = {
    "string": _F.TYPE_STRING,
    "bool": _F.TYPE_BOOL,
    "float": _F.TYPE_FLOAT,
    "double": _F.TYPE_DOUBLE,
    "int32": _F.TYPE_INT32,
    "int64": _F.TYPE_INT64,
    "uint32": _F.TYPE_UINT32,
}
_LABELS = {"optional": _F.LABEL_OPTIONAL, "repeated": _F.LABEL_REPEATED}

# (label, type, name, number, default or None, packed). A type starting with an upper-case letter is a
# message or enum of this file ("Enum:" prefix for enums).
_ENUMS: dict[str, list[tuple[str, int]]] = {
    "Phase": [("TRAIN", 0), ("TEST", 1)],
}
_NESTED_ENUMS: dict[str, dict[str, list[tuple[str, int]]]] = {
    "FillerParameter": {"VarianceNorm": [("FAN_IN", 0), ("FAN_OUT", 1), ("AVERAGE", 2)]},
    "ParamSpec": {"DimCheckMode": [("STRICT", 0), ("PERMISSIVE", 1)]},
    "ConvolutionParameter": {"Engine": [("DEFAULT", 0), ("CAFFE", 1), ("CUDNN", 2)]},
    "PoolingParameter": {
        "PoolMethod": [("MAX", 0), ("AVE", 1), ("STOCHASTIC", 2)],
        "Engine": [("DEFAULT", 0), ("CAFFE", 1), ("CUDNN", 2)],
    },
    "ReductionParameter": {"ReductionOp": [("SUM", 1), ("ASUM", 2), ("SUMSQ", 3), ("MEAN", 4)]},
    "EltwiseParameter": {"EltwiseOp": [("PROD", 0), ("SUM", 1), ("MAX", 2)]},
    "ReLUParameter": {"Engine": [("DEFAULT", 0), ("CAFFE", 1), ("CUDNN", 2)]},
    "SigmoidParameter": {"Engine": [("DEFAULT", 0), ("CAFFE", 1), ("CUDNN", 2)]},
    "TanHParameter": {"Engine": [("DEFAULT", 0), ("CAFFE", 1), ("CUDNN", 2)]},
    "SoftmaxParameter": {"Engine": [("DEFAULT", 0), ("CAFFE", 1), ("CUDNN", 2)]},
}

_MESSAGES: dict[str, list[tuple]] = {
    "BlobShape": [("repeated", "int64", "dim", 1, None, True)],
    "BlobProto": [
        ("optional", "BlobShape", "shape", 7, None, False),
        ("repeated", "float", "data", 5, None, True),
        ("repeated", "float", "diff", 6, None, True),
        ("repeated", "double", "double_data", 8, None, True),
        ("repeated", "double", "double_diff", 9, None, True),
        ("optional", "int32", "num", 1, "0", False),
        ("optional", "int32", "channels", 2, "0", False),
        ("optional", "int32", "height", 3, "0", False),
        ("optional", "int32", "width", 4, "0", False),
    ],
    "FillerParameter": [
        ("optional", "string", "type", 1, "constant", False),
        ("optional", "float", "value", 2, "0", False),
        ("optional", "float", "min", 3, "0", False),
        ("optional", "float", "max", 4, "1", False),
        ("optional", "float", "mean", 5, "0", False),
        ("optional", "float", "std", 6, "1", False),
        ("optional", "int32", "sparse", 7, "-1", False),
        ("optional", "Enum:FillerParameter.VarianceNorm", "variance_norm", 8, "FAN_IN", False),
    ],
    "NetState": [
        ("optional", "Enum:Phase", "phase", 1, "TEST", False),
        ("optional", "int32", "level", 2, "0", False),
        ("repeated", "string", "stage", 3, None, False),
    ],
    "NetStateRule": [
        ("optional", "Enum:Phase", "phase", 1, None, False),
        ("optional", "int32", "min_level", 2, None, False),
        ("optional", "int32", "max_level", 3, None, False),
        ("repeated", "string", "stage", 4, None, False),
        ("repeated", "string", "not_stage", 5, None, False),
    ],
    "NetParameter": [
        ("optional", "string", "name", 1, None, False),
        ("repeated", "string", "input", 3, None, False),
        ("repeated", "BlobShape", "input_shape", 8, None, False),
        ("repeated", "int32", "input_dim", 4, None, False),
        ("optional", "bool", "force_backward", 5, "false", False),
        ("optional", "NetState", "state", 6, None, False),
        ("optional", "bool", "debug_info", 7, "false", False),
        ("repeated", "LayerParameter", "layer", 100, None, False),
    ],
    "ParamSpec": [
        ("optional", "string", "name", 1, None, False),
        ("optional", "Enum:ParamSpec.DimCheckMode", "share_mode", 2, None, False),
        ("optional", "float", "lr_mult", 3, "1", False),
        ("optional", "float", "decay_mult", 4, "1", False),
    ],
    "LayerParameter": [
        ("optional", "string", "name", 1, None, False),
        ("optional", "string", "type", 2, None, False),
        ("repeated", "string", "bottom", 3, None, False),
        ("repeated", "string", "top", 4, None, False),
        ("optional", "Enum:Phase", "phase", 10, None, False),
        ("repeated", "float", "loss_weight", 5, None, False),
        ("repeated", "ParamSpec", "param", 6, None, False),
        ("repeated", "BlobProto", "blobs", 7, None, False),
        ("repeated", "bool", "propagate_down", 11, None, False),
        ("repeated", "NetStateRule", "include", 8, None, False),
        ("repeated", "NetStateRule", "exclude", 9, None, False),
        ("optional", "BatchNormParameter", "batch_norm_param", 139, None, False),
        ("optional", "BiasParameter", "bias_param", 141, None, False),
        ("optional", "ConcatParameter", "concat_param", 104, None, False),
        ("optional", "ConvolutionParameter", "convolution_param", 106, None, False),
        ("optional", "CropParameter", "crop_param", 144, None, False),
        ("optional", "DropoutParameter", "dropout_param", 108, None, False),
        ("optional", "DummyDataParameter", "dummy_data_param", 109, None, False),
        ("optional", "EltwiseParameter", "eltwise_param", 110, None, False),
        ("optional", "ELUParameter", "elu_param", 140, None, False),
        ("optional", "ExpParameter", "exp_param", 111, None, False),
        ("optional", "FlattenParameter", "flatten_param", 135, None, False),
        ("optional", "InnerProductParameter", "inner_product_param", 117, None, False),
        ("optional", "InputParameter", "input_param", 143, None, False),
        ("optional", "LogParameter", "log_param", 134, None, False),
        ("optional", "ParameterParameter", "parameter_param", 145, None, False),
        ("optional", "PoolingParameter", "pooling_param", 121, None, False),
        ("optional", "PowerParameter", "power_param", 122, None, False),
        ("optional", "PReLUParameter", "prelu_param", 131, None, False),
        ("optional", "ReLUParameter", "relu_param", 123, None, False),
        ("optional", "ReshapeParameter", "reshape_param", 133, None, False),
        ("optional", "ScaleParameter", "scale_param", 142, None, False),
        ("optional", "SigmoidParameter", "sigmoid_param", 124, None, False),
        ("optional", "SoftmaxParameter", "softmax_param", 125, None, False),
        ("optional", "SliceParameter", "slice_param", 126, None, False),
        ("optional", "TanHParameter", "tanh_param", 127, None, False),
        ("optional", "TileParameter", "tile_param", 138, None, False),
        ("optional", "ReductionParameter", "reduction_param", 136, None, False),
        # Fork layers (see the module docstring): written to the prototxt only.
        ("optional", "UpsampleParameter", "upsample_param", 150, None, False),
        ("optional", "InterpParameter", "interp_param", 163, None, False),
    ],
    "BatchNormParameter": [
        ("optional", "bool", "use_global_stats", 1, None, False),
        ("optional", "float", "moving_average_fraction", 2, "0.999", False),
        ("optional", "float", "eps", 3, "1e-05", False),
    ],
    "BiasParameter": [
        ("optional", "int32", "axis", 1, "1", False),
        ("optional", "int32", "num_axes", 2, "1", False),
        ("optional", "FillerParameter", "filler", 3, None, False),
    ],
    "ConcatParameter": [
        ("optional", "int32", "axis", 2, "1", False),
        ("optional", "uint32", "concat_dim", 1, "1", False),
    ],
    "ConvolutionParameter": [
        ("optional", "uint32", "num_output", 1, None, False),
        ("optional", "bool", "bias_term", 2, "true", False),
        ("repeated", "uint32", "pad", 3, None, False),
        ("repeated", "uint32", "kernel_size", 4, None, False),
        ("repeated", "uint32", "stride", 6, None, False),
        ("repeated", "uint32", "dilation", 18, None, False),
        ("optional", "uint32", "pad_h", 9, "0", False),
        ("optional", "uint32", "pad_w", 10, "0", False),
        ("optional", "uint32", "kernel_h", 11, None, False),
        ("optional", "uint32", "kernel_w", 12, None, False),
        ("optional", "uint32", "stride_h", 13, None, False),
        ("optional", "uint32", "stride_w", 14, None, False),
        ("optional", "uint32", "group", 5, "1", False),
        ("optional", "FillerParameter", "weight_filler", 7, None, False),
        ("optional", "FillerParameter", "bias_filler", 8, None, False),
        ("optional", "Enum:ConvolutionParameter.Engine", "engine", 15, "DEFAULT", False),
        ("optional", "int32", "axis", 16, "1", False),
        ("optional", "bool", "force_nd_im2col", 17, "false", False),
    ],
    "CropParameter": [
        ("optional", "int32", "axis", 1, "2", False),
        ("repeated", "uint32", "offset", 2, None, False),
    ],
    "DropoutParameter": [("optional", "float", "dropout_ratio", 1, "0.5", False)],
    "DummyDataParameter": [
        ("repeated", "FillerParameter", "data_filler", 1, None, False),
        ("repeated", "BlobShape", "shape", 6, None, False),
        ("repeated", "uint32", "num", 2, None, False),
        ("repeated", "uint32", "channels", 3, None, False),
        ("repeated", "uint32", "height", 4, None, False),
        ("repeated", "uint32", "width", 5, None, False),
    ],
    "EltwiseParameter": [
        ("optional", "Enum:EltwiseParameter.EltwiseOp", "operation", 1, "SUM", False),
        ("repeated", "float", "coeff", 2, None, False),
        ("optional", "bool", "stable_prod_grad", 3, "true", False),
    ],
    "ELUParameter": [("optional", "float", "alpha", 1, "1", False)],
    "ExpParameter": [
        ("optional", "float", "base", 1, "-1", False),
        ("optional", "float", "scale", 2, "1", False),
        ("optional", "float", "shift", 3, "0", False),
    ],
    "FlattenParameter": [
        ("optional", "int32", "axis", 1, "1", False),
        ("optional", "int32", "end_axis", 2, "-1", False),
    ],
    "InnerProductParameter": [
        ("optional", "uint32", "num_output", 1, None, False),
        ("optional", "bool", "bias_term", 2, "true", False),
        ("optional", "FillerParameter", "weight_filler", 3, None, False),
        ("optional", "FillerParameter", "bias_filler", 4, None, False),
        ("optional", "int32", "axis", 5, "1", False),
        ("optional", "bool", "transpose", 6, "false", False),
    ],
    "InputParameter": [("repeated", "BlobShape", "shape", 1, None, False)],
    "LogParameter": [
        ("optional", "float", "base", 1, "-1", False),
        ("optional", "float", "scale", 2, "1", False),
        ("optional", "float", "shift", 3, "0", False),
    ],
    "ParameterParameter": [("optional", "BlobShape", "shape", 1, None, False)],
    "PoolingParameter": [
        ("optional", "Enum:PoolingParameter.PoolMethod", "pool", 1, "MAX", False),
        ("optional", "uint32", "pad", 4, "0", False),
        ("optional", "uint32", "pad_h", 9, "0", False),
        ("optional", "uint32", "pad_w", 10, "0", False),
        ("optional", "uint32", "kernel_size", 2, None, False),
        ("optional", "uint32", "kernel_h", 5, None, False),
        ("optional", "uint32", "kernel_w", 6, None, False),
        ("optional", "uint32", "stride", 3, "1", False),
        ("optional", "uint32", "stride_h", 7, None, False),
        ("optional", "uint32", "stride_w", 8, None, False),
        ("optional", "Enum:PoolingParameter.Engine", "engine", 11, "DEFAULT", False),
        ("optional", "bool", "global_pooling", 12, "false", False),
    ],
    "PowerParameter": [
        ("optional", "float", "power", 1, "1", False),
        ("optional", "float", "scale", 2, "1", False),
        ("optional", "float", "shift", 3, "0", False),
    ],
    "PReLUParameter": [
        ("optional", "FillerParameter", "filler", 1, None, False),
        ("optional", "bool", "channel_shared", 2, "false", False),
    ],
    "ReLUParameter": [
        ("optional", "float", "negative_slope", 1, "0", False),
        ("optional", "Enum:ReLUParameter.Engine", "engine", 2, "DEFAULT", False),
    ],
    "ReshapeParameter": [
        ("optional", "BlobShape", "shape", 1, None, False),
        ("optional", "int32", "axis", 2, "0", False),
        ("optional", "int32", "num_axes", 3, "-1", False),
    ],
    "ScaleParameter": [
        ("optional", "int32", "axis", 1, "1", False),
        ("optional", "int32", "num_axes", 2, "1", False),
        ("optional", "FillerParameter", "filler", 3, None, False),
        ("optional", "bool", "bias_term", 4, "false", False),
        ("optional", "FillerParameter", "bias_filler", 5, None, False),
    ],
    "SigmoidParameter": [("optional", "Enum:SigmoidParameter.Engine", "engine", 1, "DEFAULT", False)],
    "SoftmaxParameter": [
        ("optional", "Enum:SoftmaxParameter.Engine", "engine", 1, "DEFAULT", False),
        ("optional", "int32", "axis", 2, "1", False),
    ],
    "SliceParameter": [
        ("optional", "int32", "axis", 3, "1", False),
        ("repeated", "uint32", "slice_point", 2, None, False),
        ("optional", "uint32", "slice_dim", 1, "1", False),
    ],
    "TanHParameter": [("optional", "Enum:TanHParameter.Engine", "engine", 1, "DEFAULT", False)],
    "ReductionParameter": [
        ("optional", "Enum:ReductionParameter.ReductionOp", "operation", 1, "SUM", False),
        ("optional", "int32", "axis", 2, "0", False),
        ("optional", "float", "coeff", 3, "1", False),
    ],
    "TileParameter": [
        ("optional", "int32", "axis", 1, "1", False),
        ("optional", "int32", "tiles", 2, None, False),
    ],
    "InterpParameter": [
        ("optional", "int32", "height", 1, "0", False),
        ("optional", "int32", "width", 2, "0", False),
        ("optional", "int32", "zoom_factor", 3, "1", False),
        ("optional", "int32", "shrink_factor", 4, "1", False),
        ("optional", "int32", "pad_beg", 5, "0", False),
        ("optional", "int32", "pad_end", 6, "0", False),
    ],
    "UpsampleParameter": [("optional", "int32", "scale", 1, "1", False)],
}


def _build_file() -> descriptor_pb2.FileDescriptorProto:
    fdp = descriptor_pb2.FileDescriptorProto(name="rewriter_caffe_subset.proto", package="caffe", syntax="proto2")
    for name, values in _ENUMS.items():
        enum = fdp.enum_type.add(name=name)
        for value_name, number in values:
            enum.value.add(name=value_name, number=number)
    for msg_name, fields in _MESSAGES.items():
        msg = fdp.message_type.add(name=msg_name)
        for enum_name, values in _NESTED_ENUMS.get(msg_name, {}).items():
            enum = msg.enum_type.add(name=enum_name)
            for value_name, number in values:
                enum.value.add(name=value_name, number=number)
        for label, type_name, name, number, default, packed in fields:
            field = msg.field.add(name=name, number=number, label=_LABELS[label])
            if type_name.startswith("Enum:"):
                field.type = _F.TYPE_ENUM
                field.type_name = ".caffe." + type_name[5:]
            elif type_name in _TYPES:
                field.type = _TYPES[type_name]
            else:
                field.type = _F.TYPE_MESSAGE
                field.type_name = ".caffe." + type_name
            if default is not None:
                field.default_value = default
            if packed:
                field.options.packed = True
    return fdp


_POOL = descriptor_pool.DescriptorPool()
_FILE = _POOL.Add(_build_file())


def _message(name: str):
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"caffe.{name}"))


NetParameter = _message("NetParameter")
LayerParameter = _message("LayerParameter")
BlobProto = _message("BlobProto")
BlobShape = _message("BlobShape")
ParamSpec = _message("ParamSpec")
FillerParameter = _message("FillerParameter")

# Layer parameter field of LayerParameter per layer type that the exporter emits (None: no parameters).
PARAM_FIELD = {
    "Input": "input_param",
    "Convolution": "convolution_param",
    "Deconvolution": "convolution_param",
    "InnerProduct": "inner_product_param",
    "Pooling": "pooling_param",
    "BatchNorm": "batch_norm_param",
    "Scale": "scale_param",
    "Bias": "bias_param",
    "ReLU": "relu_param",
    "PReLU": "prelu_param",
    "Sigmoid": "sigmoid_param",
    "TanH": "tanh_param",
    "ELU": "elu_param",
    "AbsVal": None,
    "Exp": "exp_param",
    "Log": "log_param",
    "Power": "power_param",
    "Eltwise": "eltwise_param",
    "Concat": "concat_param",
    "Slice": "slice_param",
    "Split": None,
    "Silence": None,
    "Crop": "crop_param",
    "Reshape": "reshape_param",
    "Flatten": "flatten_param",
    "Softmax": "softmax_param",
    "Tile": "tile_param",
    "Reduction": "reduction_param",
    "Dropout": "dropout_param",
    "DummyData": "dummy_data_param",
    "Parameter": "parameter_param",
    "Interp": "interp_param",
    "Upsample": "upsample_param",
}
FORK_LAYERS = {"Interp": "interp", "Upsample": "upsample"}


def parse_prototxt(text: str):
    """A prototxt (text NetParameter) read with this schema; unknown fields are an error."""
    from google.protobuf import text_format

    net = NetParameter()
    text_format.Parse(text, net)
    return net


def parse_caffemodel(data: bytes):
    net = NetParameter()
    net.ParseFromString(data)
    return net


__all__ = [
    "FORK_LAYERS",
    "PARAM_FIELD",
    "BlobProto",
    "BlobShape",
    "FillerParameter",
    "LayerParameter",
    "NetParameter",
    "ParamSpec",
    "parse_caffemodel",
    "parse_prototxt",
]
