"""Architecture corpus, torch part: real torchvision / segmentation_models_pytorch / ultralytics networks and two
hand-built models, random weights, reduced widths, each exported by the TorchScript exporter at opsets 11 and 17
and by the dynamo exporter.

Made with torch 2.14.1 (CPU run), torchvision 0.29.1, segmentation-models-pytorch 0.6.0, timm 1.0.31,
ultralytics 8.4.190, onnx 1.23.2, onnxruntime 1.32.0, onnxscript 0.7.2, numpy 2.4:

    python models/make_arch_torch.py                  # every family
    python models/make_arch_torch.py smp ultralytics  # only these families

Writes ``architectures/<stem>_{ts11,ts17,dynamo}.onnx`` + ``.io.npz`` and this script's entries of
``architectures.json`` (not ``manifest.json``: see ``_arch_common.py``). Nothing is downloaded: the builders are
called without pretrained weights and any network connection raises. Exporter failures are recorded under
``not_produced`` in the manifest, not fatal.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import warnings
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.dont_write_bytecode = True  # keep the models/ folder free of __pycache__
os.environ["YOLO_OFFLINE"] = "true"  # ultralytics: no online check
_CONFIG_DIR = tempfile.TemporaryDirectory(prefix="ultralytics-cfg-")  # ultralytics writes a settings file there
os.environ["YOLO_CONFIG_DIR"] = _CONFIG_DIR.name
os.environ["HF_HUB_OFFLINE"] = "1"

import _arch_common as ac  # noqa: E402

ac.forbid_network()

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

SCRIPT = "make_arch_torch.py"
warnings.filterwarnings("ignore")
logging.getLogger("torch").setLevel(logging.ERROR)
logging.getLogger("torch.onnx").setLevel(logging.ERROR)


class FirstOutput(nn.Module):
    """torchvision segmentation models return {"out": ...}; FPN returns a dict of maps: export them as tensors."""

    def __init__(self, model, keys=("out",)):
        super().__init__()
        self.model, self.keys = model, keys

    def forward(self, image):
        out = self.model(image)
        return tuple(out[k] for k in self.keys) if len(self.keys) > 1 else out[self.keys[0]]


# --------------------------------------------------------------------------- torchvision
MBV3_WIDTH = 0.125


def narrow_mobilenet_v3_features(dilated: bool):
    """torchvision MobileNetV3-Large features at width 0.125 with the reduced tail (the builder's own options)."""
    from torchvision.models import mobilenet_v3_large

    features = mobilenet_v3_large(weights=None, width_mult=MBV3_WIDTH, reduced_tail=True, dilated=dilated).features
    # the strided blocks (C1..Cn-1), as torchvision's segmentation builders find them
    stages = [0] + [i for i, b in enumerate(features) if getattr(b, "_is_cn", False)] + [len(features) - 1]
    return features, stages


def tv_lraspp():
    from torchvision.models._utils import IntermediateLayerGetter
    from torchvision.models.segmentation.lraspp import LRASPP

    features, stages = narrow_mobilenet_v3_features(dilated=True)
    low, high = stages[-4], stages[-1]  # as _lraspp_mobilenetv3
    backbone = IntermediateLayerGetter(features, return_layers={str(low): "low", str(high): "high"})
    model = LRASPP(backbone, features[low].out_channels, features[high].out_channels, num_classes=3,
                   inter_channels=16)
    return FirstOutput(model)


def tv_deeplabv3():
    from torchvision.models._utils import IntermediateLayerGetter
    from torchvision.models.segmentation.deeplabv3 import ASPP, DeepLabV3

    features, stages = narrow_mobilenet_v3_features(dilated=True)
    out_pos = stages[-1]  # as _deeplabv3_mobilenetv3
    backbone = IntermediateLayerGetter(features, return_layers={str(out_pos): "out"})
    c = 16  # DeepLabHead with ASPP(out_channels=16) instead of 256
    head = nn.Sequential(ASPP(features[out_pos].out_channels, [12, 24, 36], out_channels=c),
                         nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, 3, 1))
    return FirstOutput(DeepLabV3(backbone, head))


def tv_fcn():
    from torchvision.models._utils import IntermediateLayerGetter
    from torchvision.models.segmentation.fcn import FCN, FCNHead

    features, stages = narrow_mobilenet_v3_features(dilated=True)
    out_pos = stages[-1]
    backbone = IntermediateLayerGetter(features, return_layers={str(out_pos): "out"})
    return FirstOutput(FCN(backbone, FCNHead(features[out_pos].out_channels, 3)))


def tv_fpn():
    from torchvision.models.detection.backbone_utils import BackboneWithFPN
    from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

    features, stages = narrow_mobilenet_v3_features(dilated=False)
    picked = stages[-4:]  # C2..C5 (strides 4, 8, 16, 32), as mobilenet_backbone(returned_layers=[1..4]) would
    model = BackboneWithFPN(features, {str(i): str(k) for k, i in enumerate(picked)},
                            [features[i].out_channels for i in picked], out_channels=16,
                            extra_blocks=LastLevelMaxPool())
    return FirstOutput(model, keys=("0", "1", "2", "3", "pool"))


class DetectionOutputs(nn.Module):
    """torchvision detection models take a list of images and return a list of dicts: one image in, tensors out."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, image):
        out = self.model([image[0]])[0]
        return out["boxes"], out["labels"], out["scores"]


def tv_fasterrcnn():
    """FasterRCNN (torchvision.models.detection) on the narrow MobileNetV3 + FPN, as fasterrcnn_mobilenet_v3_large_fpn
    (last two stages, anchor sizes (32, 64, 128) x 3 ratios per level), with a small box head. Its transform resizes
    the 80x80 image to min_size=96 (F.interpolate, bilinear, recompute_scale_factor=True) inside the graph."""
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import BackboneWithFPN
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

    features, stages = narrow_mobilenet_v3_features(dilated=False)
    picked = stages[-2:]
    backbone = BackboneWithFPN(features, {str(i): str(k) for k, i in enumerate(picked)},
                               [features[i].out_channels for i in picked], out_channels=16,
                               extra_blocks=LastLevelMaxPool())
    anchors = AnchorGenerator(((32, 64, 128),) * 3, ((0.5, 1.0, 2.0),) * 3)
    model = FasterRCNN(backbone, num_classes=None, rpn_anchor_generator=anchors, box_head=TwoMLPHead(16 * 7 * 7, 32),
                       box_predictor=FastRCNNPredictor(32, 3), min_size=96, max_size=96, rpn_pre_nms_top_n_test=50,
                       rpn_post_nms_top_n_test=20, box_detections_per_img=10, box_score_thresh=0.0)
    return DetectionOutputs(model)


# --------------------------------------------------------------------------- segmentation_models_pytorch
# timm's smallest EfficientNet configuration, at half its channels (27k parameters); extra keyword arguments of
# the smp constructors go to timm.create_model
SMP_ENCODER = {"encoder_name": "tu-test_efficientnet", "channel_multiplier": 0.5}
SMP = {  # arch: (constructor arguments, input side)
    "Unet": (dict(decoder_channels=(16, 16, 8, 8, 8)), 64),
    "UnetPlusPlus": (dict(decoder_channels=(16, 8, 8, 8, 8)), 64),
    "FPN": (dict(decoder_pyramid_channels=16, decoder_segmentation_channels=32), 64),  # GroupNorm(32 groups)
    "PSPNet": (dict(psp_out_channels=32), 96),  # pools the /8 map to 1, 2, 3, 6: TorchScript needs a multiple of 6
    "DeepLabV3": (dict(decoder_channels=16), 64),
    "DeepLabV3Plus": (dict(decoder_channels=16), 64),
    "PAN": (dict(decoder_channels=16), 128),  # its pyramid attention pools the /16 map 3 times: needs 8x8
    "Linknet": (dict(), 64),
    "MAnet": (dict(decoder_channels=(16, 8, 8, 8, 8), decoder_pab_channels=8), 64),
    "UPerNet": (dict(decoder_channels=16), 192),  # PSP pooling of the /32 map to 1, 2, 3, 6 (as PSPNet)
    "Segformer": (dict(decoder_segmentation_channels=16), 64),
    # DPT needs a ViT encoder: timm's test_vit with embed_dim 32 instead of 64 and img_size 64 (at another input
    # size timm resamples the position grid with bicubic antialias, which TorchScript cannot export)
    "DPT": (dict(encoder_name="tu-test_vit", embed_dim=32, img_size=64, decoder_intermediate_channels=(8, 8, 16, 16),
                 decoder_fusion_channels=8), 64),
}


def smp_kwargs(arch: str, **extra) -> dict:
    kwargs = {**SMP[arch][0], **extra}
    return kwargs if "encoder_name" in kwargs else {**SMP_ENCODER, **kwargs}


def smp_model(arch: str, **extra):
    import segmentation_models_pytorch as smp

    kwargs = smp_kwargs(arch, **extra)
    return getattr(smp, arch)(encoder_weights=None, in_channels=3, classes=3, **kwargs)


# --------------------------------------------------------------------------- ultralytics
YOLO_WIDTH = (0.0625, 256)  # width multiple, max channels (yolov8n/yolo11n: 0.25, 1024)
YOLO_REG_MAX = 8  # DFL bins (default 16): the box branch width is 4 * reg_max


def yolo_model(yaml_name: str):
    """Build from the package's own yaml (no weights, no download), then prepare it as its ONNX exporter does."""
    from ultralytics.nn.modules import C2f, Detect
    from ultralytics.nn.tasks import DetectionModel, PoseModel, SegmentationModel, yaml_model_load

    cfg = dict(yaml_model_load(yaml_name))
    depth = cfg["scales"]["n"][0]
    cfg.update(scales={"n": [depth, *YOLO_WIDTH]}, scale="n", nc=4, reg_max=YOLO_REG_MAX)
    if "kpt_shape" in cfg:
        cfg["kpt_shape"] = [5, 3]
    cls = SegmentationModel if "-seg" in yaml_name else PoseModel if "-pose" in yaml_name else DetectionModel
    with ac.fc.quiet():
        model = cls(cfg, ch=3, nc=4, verbose=False)
    ac.randomize_batchnorm(model, 7)
    model.eval()
    for p in model.parameters():
        p.requires_grad = False
    with ac.fc.quiet():
        model = model.fuse()  # Conv+BN folded, as ultralytics' exporter does
    for m in model.modules():  # ultralytics.engine.exporter.Exporter, format="onnx", dynamic=False
        if isinstance(m, Detect):
            m.dynamic, m.export, m.format, m.xyxy, m.shape = False, True, "onnx", False, None
        elif isinstance(m, C2f):
            m.forward = m.forward_split
    return model


YOLO = {  # stem: (yaml, output names)
    "yolov8n_detect": ("yolov8n.yaml", ["output0"]),
    "yolov8n_seg": ("yolov8n-seg.yaml", ["output0", "output1"]),
    "yolov8n_pose": ("yolov8n-pose.yaml", ["output0"]),
    "yolo11n_detect": ("yolo11n.yaml", ["output0"]),
    "yolo11n_seg": ("yolo11n-seg.yaml", ["output0", "output1"]),
    "yolo11n_pose": ("yolo11n-pose.yaml", ["output0"]),
}


# --------------------------------------------------------------------------- hand-built
def cbr(cin, cout, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class AlignCornersNet(nn.Module):
    """Encoder /8, decoder with bilinear align_corners=True x2 (scale_factor) twice, a bicubic align_corners=True
    x2, and a final bilinear align_corners=True resize to the input size (size=)."""

    def __init__(self, c=8):
        super().__init__()
        self.e1, self.e2, self.e3 = cbr(3, c, 2), cbr(c, 2 * c, 2), cbr(2 * c, 2 * c, 2)
        self.d2, self.d1 = cbr(4 * c, c), cbr(2 * c, c)
        self.head = nn.Conv2d(c, 2, 1)

    def forward(self, image):
        e1 = self.e1(image)
        e2 = self.e2(e1)
        e3 = self.e3(e2)
        up = F.interpolate(e3, scale_factor=2, mode="bilinear", align_corners=True)
        d2 = self.d2(torch.cat([up, e2], 1))
        d1 = self.d1(torch.cat([F.interpolate(d2, scale_factor=2, mode="bicubic", align_corners=True), e1], 1))
        d1 = F.interpolate(d1, scale_factor=2, mode="bilinear", align_corners=True)
        return F.interpolate(self.head(d1), size=image.shape[-2:], mode="bilinear", align_corners=True)


class SizeFromSkipNet(nn.Module):
    """Odd input (50x70): strided convs give 25x35, 13x18, 7x9; each decoder step resizes to the skip's size
    (ratios 13/7, 25/13, 2: not integers), bilinear and nearest, then back to the input size."""

    def __init__(self, c=8):
        super().__init__()
        self.e1, self.e2, self.e3 = cbr(3, c, 2), cbr(c, c, 2), cbr(c, 2 * c, 2)
        self.d2, self.d1 = cbr(3 * c, c), cbr(2 * c, c)
        self.head = nn.Conv2d(c, 2, 1)

    def forward(self, image):
        e1 = self.e1(image)
        e2 = self.e2(e1)
        e3 = self.e3(e2)
        d2 = self.d2(torch.cat([F.interpolate(e3, size=e2.shape[-2:], mode="bilinear"), e2], 1))
        d1 = self.d1(torch.cat([F.interpolate(d2, size=e1.shape[-2:], mode="nearest"), e1], 1))
        return F.interpolate(self.head(d1), size=image.shape[-2:], mode="bilinear")


# --------------------------------------------------------------------------- plan
def plan():
    """(family, stem, arch, builder, input shape, output names, source, config) for every model."""
    rows = [
        ("torchvision", "tv_lraspp_mbv3", "LRASPP", tv_lraspp, (1, 3, 64, 64), ["out"],
         f"torchvision LRASPP on mobilenet_v3_large(width_mult={MBV3_WIDTH}, reduced_tail=True, dilated=True) features "
         "(as _lraspp_mobilenetv3), inter_channels=16", "num_classes=3"),
        ("torchvision", "tv_deeplabv3_mbv3", "DeepLabV3", tv_deeplabv3, (1, 3, 64, 64), ["out"],
         f"torchvision DeepLabV3 on mobilenet_v3_large(width_mult={MBV3_WIDTH}, reduced_tail=True, dilated=True) C5 "
         "(as _deeplabv3_mobilenetv3), DeepLabHead layout with ASPP(out_channels=16)", "num_classes=3"),
        ("torchvision", "tv_fcn_mbv3", "FCN", tv_fcn, (1, 3, 64, 64), ["out"],
         f"torchvision FCN + FCNHead on mobilenet_v3_large(width_mult={MBV3_WIDTH}, reduced_tail=True, "
         "dilated=True) C5",
         "num_classes=3"),
        ("torchvision", "tv_fpn_mbv3", "FeaturePyramidNetwork", tv_fpn, (1, 3, 64, 64),
         ["p0", "p1", "p2", "p3", "pool"],
         "torchvision BackboneWithFPN (ops.FeaturePyramidNetwork, LastLevelMaxPool) on mobilenet_v3_large("
         f"width_mult={MBV3_WIDTH}, reduced_tail=True) C2..C5", "out_channels=16"),
        ("torchvision", "tv_fasterrcnn_mbv3_fpn", "FasterRCNN", tv_fasterrcnn, (1, 3, 80, 80),
         ["boxes", "labels", "scores"],
         f"torchvision FasterRCNN (GeneralizedRCNNTransform min_size=max_size=96, RPN, RoIAlign, NMS) on "
         f"mobilenet_v3_large(width_mult={MBV3_WIDTH}, reduced_tail=True) + FPN(16) as "
         "fasterrcnn_mobilenet_v3_large_fpn, TwoMLPHead(784, 32)", "num_classes=3, 10 detections"),
    ]
    def smp_row(stem, arch, side, note="", **extra):
        kwargs = smp_kwargs(arch, **extra)
        args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        return ("smp", stem, arch, lambda: smp_model(arch, **extra), (1, 3, side, side), ["mask"],
                f"segmentation_models_pytorch.{arch}({args}, encoder_weights=None, classes=3){note}", repr(kwargs))

    rows += [smp_row(f"smp_{arch.lower()}", arch, side) for arch, (_, side) in SMP.items()]
    rows.append(smp_row("smp_unet_samepad", "Unet", 64, " (TF 'SAME' padding, as timm's tf_* encoders)",
                        pad_type="same"))
    for stem, (yaml_name, outs) in YOLO.items():
        rows.append(("ultralytics", stem, yaml_name.removesuffix(".yaml"), lambda y=yaml_name: yolo_model(y),
                     (1, 3, 64, 64), outs,
                     f"ultralytics {yaml_name} built with nn.tasks from the package yaml, scales n=[depth, "
                     f"{YOLO_WIDTH[0]}, {YOLO_WIDTH[1]}], nc=4, reg_max={YOLO_REG_MAX}"
                     + (", kpt_shape=[5, 3]" if "pose" in stem else "") + "; fused and set to export mode as "
                     "ultralytics' ONNX exporter does", f"width={YOLO_WIDTH}, reg_max={YOLO_REG_MAX}, nc=4"))
    rows += [
        ("handbuilt", "hand_align_corners", "AlignCornersNet", AlignCornersNet, (1, 3, 48, 64), ["out"],
         "AlignCornersNet: bilinear/bicubic align_corners=True x2 by scale_factor, final size= to the input",
         "c=8"),
        ("handbuilt", "hand_size_from_skip", "SizeFromSkipNet", SizeFromSkipNet, (1, 3, 50, 70), ["out"],
         "SizeFromSkipNet: F.interpolate(size=skip.shape[-2:]) bilinear / nearest at non-integer ratios "
         "(7->13, 13->25), then to the input size", "c=8"),
    ]
    return rows


def main(argv: list[str]) -> None:
    import segmentation_models_pytorch
    import timm
    import torchvision
    import ultralytics

    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
          f"smp {segmentation_models_pytorch.__version__}, timm {timm.__version__}, "
          f"ultralytics {ultralytics.__version__}")
    rows = plan()
    families = set(argv) or {r[0] for r in rows}
    ac.ARCH_DIR.mkdir(exist_ok=True)
    entries, failures, written = [], [], set()
    for family, stem, arch, builder, shape, outs, source, config in rows:
        if family not in families:
            continue
        seed = zlib.crc32(stem.encode()) % 10_000  # per model: adding a model changes no other model
        torch.manual_seed(seed)
        try:
            model = builder()
            if family != "ultralytics":
                ac.randomize_batchnorm(model, seed + 100)
            model = model.eval()
        except Exception as exc:  # noqa: BLE001
            reason = ac.first_line(exc)
            print(f"  {stem}: NOT BUILT ({reason})")
            failures.append({"stem": stem, "family": family, "arch": arch, "exporter_kind": "build", "opset": None,
                             "reason": reason, "script": SCRIPT})
            continue
        inputs = ac.seeded_inputs({"image": shape}, seed + 200)
        e, f, w = ac.export_torch(model, inputs, outs, stem=stem, family=family, arch=arch, source=source,
                                  config=config, script=SCRIPT)
        entries += e
        failures += f
        written |= w
    prefixes = tuple(r[1] + sep for r in rows if r[0] in families for sep in ("_", "."))
    ac.remove_stale(prefixes, written)
    ac.write_arch_manifest(SCRIPT, entries, failures, families)


if __name__ == "__main__":
    main(sys.argv[1:])
