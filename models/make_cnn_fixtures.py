"""Small "real" segmentation-style CNN fixtures with several Resize nodes (torch.onnx export).

Run in an environment with torch==2.13.0 (CPU), onnx, onnxruntime, onnxscript and numpy:

    python models/make_cnn_fixtures.py

Writes ``cnn_unet_*``, ``cnn_fpn_*`` and ``cnn_deeplab_*`` (.onnx + .io.npz) and this script's entries of
``manifest.json`` into the folder this script lives in. Weights are random with fixed seeds; BatchNorm running
statistics are randomised too so BN folding (if a consumer does it) is not a no-op.
"""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.dont_write_bytecode = True  # keep the models/ folder free of __pycache__

import onnxscript  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import _fixture_common as fc  # noqa: E402

SCRIPT = "make_cnn_fixtures.py"
TORCH_VERSION = torch.__version__.split("+")[0]
warnings.filterwarnings("ignore")
logging.getLogger("torch").setLevel(logging.ERROR)


def conv_bn_relu(cin, cout, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


def bn_relu_conv(cin, cout):
    """Pre-activation block (BN directly after a Concat): exporters cannot fold this BN into a Conv."""
    return nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(inplace=True), nn.Conv2d(cin, cout, 3, padding=1))


class TinyUNet(nn.Module):
    """2 down (MaxPool) / 2 up (bilinear x2, align_corners=False) with skip concatenation, sigmoid mask.
    Encoder Conv-BN-ReLU (BN gets folded into the Conv by the exporters), decoder BN-ReLU-Conv after the Concat
    (BatchNormalization stays in the ONNX graph)."""

    def __init__(self, cin=3, c=8, n_out=1):
        super().__init__()
        self.enc1 = conv_bn_relu(cin, c)
        self.enc2 = conv_bn_relu(c, 2 * c)
        self.mid = conv_bn_relu(2 * c, 2 * c)
        self.dec2 = bn_relu_conv(4 * c, c)
        self.dec1 = bn_relu_conv(2 * c, c)
        self.head = nn.Conv2d(c, n_out, 1)

    def forward(self, image):
        e1 = self.enc1(image)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        m = self.mid(F.max_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([F.interpolate(m, scale_factor=2, mode="bilinear", align_corners=False), e2], 1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, scale_factor=2, mode="bilinear", align_corners=False), e1], 1))
        return torch.sigmoid(self.head(d1))


class TinyFPN(nn.Module):
    """Backbone C2..C4, lateral 1x1 convs, top-down nearest x2 + Add, head, final bilinear to the input size."""

    def __init__(self, cin=3, c=8, n_cls=3):
        super().__init__()
        self.stem = conv_bn_relu(cin, c, stride=2)  # /2
        self.c2 = conv_bn_relu(c, c)  # after maxpool: /4
        self.c3 = conv_bn_relu(c, 2 * c, stride=2)  # /8
        self.c4 = conv_bn_relu(2 * c, 2 * c, stride=2)  # /16
        self.lat2 = nn.Conv2d(c, c, 1)
        self.lat3 = nn.Conv2d(2 * c, c, 1)
        self.lat4 = nn.Conv2d(2 * c, c, 1)
        self.smooth = conv_bn_relu(c, c)
        self.cls = nn.Conv2d(c, n_cls, 1)

    def forward(self, image):
        c2 = self.c2(F.max_pool2d(self.stem(image), 2))
        c3 = self.c3(c2)
        c4 = self.c4(c3)
        p4 = self.lat4(c4)
        p3 = self.lat3(c3) + F.interpolate(p4, scale_factor=2, mode="nearest")
        p2 = self.lat2(c2) + F.interpolate(p3, scale_factor=2, mode="nearest")
        logits = self.cls(self.smooth(p2))
        return F.interpolate(logits, size=image.shape[-2:], mode="bilinear", align_corners=False)


class TinyDeepLab(nn.Module):
    """DeepLab-v3-ish: strided backbone, two dilated branches + image pooling branch (bilinear align_corners=True
    back to the feature size, as in many DeepLab ports), a ConvTranspose x2 decoder step and a final bilinear
    align_corners=True upsampling to the input size."""

    def __init__(self, cin=3, c=8, n_cls=2):
        super().__init__()
        self.backbone = nn.Sequential(conv_bn_relu(cin, c, 2), conv_bn_relu(c, 2 * c, 2), conv_bn_relu(2 * c, 2 * c, 2))
        self.b1 = nn.Sequential(nn.Conv2d(2 * c, c, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU())
        self.b2 = nn.Sequential(nn.Conv2d(2 * c, c, 3, padding=2, dilation=2, bias=False), nn.BatchNorm2d(c),
                                nn.ReLU())
        self.pool_conv = nn.Sequential(nn.Conv2d(2 * c, c, 1), nn.ReLU())
        self.project = conv_bn_relu(3 * c, c)
        self.up = nn.ConvTranspose2d(c, c, 2, stride=2)
        self.cls = nn.Conv2d(c, n_cls, 1)

    def forward(self, image):
        f = self.backbone(image)
        pooled = self.pool_conv(F.adaptive_avg_pool2d(f, 1))
        pooled = F.interpolate(pooled, size=f.shape[-2:], mode="bilinear", align_corners=True)
        y = self.project(torch.cat([self.b1(f), self.b2(f), pooled], 1))
        y = self.cls(F.relu(self.up(y)))
        return F.interpolate(y, size=image.shape[-2:], mode="bilinear", align_corners=True)


def build(cls, seed):
    torch.manual_seed(seed)
    m = cls()
    g = torch.Generator().manual_seed(seed + 100)
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            n = mod.num_features
            mod.running_mean.copy_(0.1 * torch.randn(n, generator=g))
            mod.running_var.copy_(1 + 0.2 * torch.rand(n, generator=g))
            mod.weight.data.copy_(1 + 0.1 * torch.randn(n, generator=g))
            mod.bias.data.copy_(0.1 * torch.randn(n, generator=g))
    return m.eval()


# (stem, class, seed, input shape, exporter, opset, dynamic, source)
PLAN = [
    ("cnn_unet_ts17", TinyUNet, 1, (1, 3, 16, 20), "ts", 17, None,
     "TinyUNet: [Conv-BN-ReLU, MaxPool] x2, [F.interpolate(scale_factor=2, mode='bilinear', align_corners=False), "
     "cat skip, BN-ReLU-Conv] x2, Conv1x1, sigmoid"),
    ("cnn_unet_dynamo", TinyUNet, 1, (1, 3, 16, 20), "dynamo", None, None,
     "TinyUNet (same weights as cnn_unet_ts17) exported with dynamo"),
    ("cnn_fpn_ts17", TinyFPN, 2, (1, 3, 32, 32), "ts", 17, {"image": {0: "N", 2: "H", 3: "W"}},
     "TinyFPN: lateral 1x1 + F.interpolate(scale_factor=2, mode='nearest') adds, head, "
     "F.interpolate(size=image.shape[-2:], mode='bilinear') (x4)"),
    ("cnn_fpn_dynamo", TinyFPN, 2, (1, 3, 32, 32), "dynamo", None, None,
     "TinyFPN (same weights as cnn_fpn_ts17) exported with dynamo, static shapes"),
    ("cnn_deeplab_ts13", TinyDeepLab, 3, (1, 3, 24, 32), "ts", 13, {"image": {0: "N"}},
     "TinyDeepLab: image-pool branch F.interpolate(size=f.shape[-2:], bilinear, align_corners=True), ConvTranspose "
     "x2, final F.interpolate(size=image.shape[-2:], bilinear, align_corners=True)"),
]



def main():
    entries, produced = [], set()
    for stem, cls, seed, shape, kind, opset, dyn, source in PLAN:
        model = build(cls, seed)
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(seed + 200))
        path = HERE / f"{stem}.onnx"
        with fc.quiet():
            if kind == "ts":
                dyn_axes = None
                if dyn:
                    dyn_axes = {**dyn, "out": {0: "N"}}
                torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=opset, input_names=["image"],
                                  output_names=["out"], dynamic_axes=dyn_axes)
                exporter = f"torch.onnx TorchScript {TORCH_VERSION} opset {opset}"
            else:
                prog = torch.onnx.export(model, (x,), dynamo=True, verbose=False, input_names=["image"],
                                         output_names=["out"])
                fc.scrub_ir_model(prog.model)  # machine paths in the recorded stack traces only
                prog.save(str(path), external_data=False)
                exporter = f"torch.onnx dynamo {TORCH_VERSION} (onnxscript {onnxscript.__version__})"
        with torch.no_grad():
            expected = {"out": model(x).numpy()}
        notes = f"dynamic axes {dyn}" if dyn else ""
        if kind == "dynamo":
            notes = "absolute file paths in the recorded stack-trace metadata replaced by relative ones (graph untouched)"
        entry = fc.finalize(path, inputs={"image": x.numpy()}, expected=expected, exporter=exporter, source=source,
                            script=SCRIPT, notes=notes, expected_from="torch eager (CPU)")
        entries.append(entry)
        produced.update([path.name, f"{stem}.io.npz"])
    fc.remove_stale(("cnn_unet", "cnn_fpn", "cnn_deeplab"), produced)
    fc.write_manifest(SCRIPT, entries)


if __name__ == "__main__":
    main()
