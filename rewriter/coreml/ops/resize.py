"""Core ML translation of a Resize / Upsample: the MIL op whose documented sampling grid equals the node's
ONNX Runtime weights for its actual lengths (``rewriter.targets.coreml``); fix-resize has
already lowered every resize no Core ML op reproduces.
"""

from __future__ import annotations

import numpy as np
import onnx

from rewriter.coreml.ops import COREML_OPS
from rewriter.coreml.translator import ResizePlan, Translator
from rewriter.errors import NotExactError
from rewriter.resize import ResizeSemantics, describe_node
from rewriter.targets import make_target


def scale_for_size(n: int, m: int) -> int | np.float32:
    """A Core ML scale factor whose output length floor(n * s) is exactly m.

    Integer ratios stay integers. Otherwise the smallest float32 not below m/n: the exact product n*s is
    then in [m, m + n*ulp) (far below m + 1), and rounding that product to float32 or float64 cannot drop
    below the representable m, so floor gives m in either precision. Being the float32 nearest to m/n from
    above, it also keeps a grid computed from 1/s within float32 rounding of the Xin/Xout grid.
    """
    if m % n == 0:
        return m // n
    s = np.float32(m / n)
    if float(s) * n < m:
        s = np.nextafter(s, np.float32(np.inf), dtype=np.float32)
    for _ in range(4):  # defensive: enforce floor(n*s) == m in float32 and float64
        if int(np.floor(np.float32(s) * np.float32(n))) >= m and int(np.floor(float(s) * n)) >= m:
            break
        s = np.nextafter(s, np.float32(np.inf), dtype=np.float32)
    if int(np.floor(float(s) * n)) != m or int(np.floor(np.float32(s) * np.float32(n))) != m:
        raise NotExactError(f"no float32 scale gives output length {m} from {n}")
    return np.float32(s)


def nn_builder_snaps(scale) -> bool:
    """coremltools' NeuralNetwork ``add_upsample`` stores a factor within 0.001 above an integer as that integer."""
    frac = float(scale) - np.floor(float(scale))
    return 0 < frac <= 0.001


@COREML_OPS.register(
    "Resize",
    becomes="upsample_nearest_neighbor / upsample_bilinear / resize_bilinear, chosen by weights;"
    " else fix-resize's exact lowering",
)
def resize(t: Translator, node: onnx.NodeProto):
    return emit_resize(t, node, describe_node(t.view, t.scope, node))


COREML_OPS.register("Upsample", becomes="as Resize (fix-resize upgrades it first)")(resize)


def emit_resize(t: Translator, node: onnx.NodeProto, sem: ResizeSemantics):
    """The MIL op whose documented grid equals the node's ONNX Runtime weights; its plan is recorded so the
    exporter can check the saved model against the same weights."""
    label = node.name or node.output[0]
    x = t.var(node.input[0])
    if not sem.resolved:
        raise NotExactError(f"{label}: Resize not static after fix-resize ({'; '.join(sem.problems)})")
    if not sem.resized_axes:
        t.plans.append(ResizePlan(label, node.output[0], node.output[0], "identity", "identity", {}, sem))
        return t.mb.identity(x=x, name=t.out_name(node))
    target = make_target("coreml", {"deployment_target": t.deployment_target, "model_format": t.model_format})
    usable = [p for p in target.primitives() if p.runs(sem)]
    if sem.rank < 3 or not usable:
        raise NotExactError(f"{label}: no Core ML {t.deployment_target} {t.model_format} op samples like this Resize ({sem.mode}/{sem.transform}); fix-resize should have lowered it")
    prim = usable[0]
    nh, nw = int(sem.axes_info[-2].n), int(sem.axes_info[-1].n)  # type: ignore[arg-type]
    mh, mw = int(sem.axes_info[-2].m), int(sem.axes_info[-1].m)  # type: ignore[arg-type]
    if t.model_format == "neuralnetwork" and prim.op == "upsample_bilinear" and (mh < nh or mw < nw):
        # A NeuralNetwork Upsample factor below 1 is outside what the proto describes (it "scales up");
        # a ResizeBilinear with the same grid, if one matches, states the target size directly.
        sized = [p for p in usable if p.op == "resize_bilinear"]
        if sized:
            prim = sized[0]
    name = t.out_name(node)
    if prim.op == "upsample_nearest_neighbor":
        params = {"scale_factor_height": mh // nh, "scale_factor_width": mw // nw}
        y = t.mb.upsample_nearest_neighbor(x=x, name=name, **params)
        op = "upsample_nearest_neighbor"
    elif prim.op == "upsample_bilinear":
        align = bool(prim.attr("align_corners"))
        sh, sw = scale_for_size(nh, mh), scale_for_size(nw, mw)
        if t.model_format == "neuralnetwork":
            for s, n, m in ((sh, nh, mh), (sw, nw, mw)):
                if nn_builder_snaps(s):
                    raise NotExactError(
                        f"{label}: the NeuralNetwork builder treats Upsample factor {float(s):.6g} ({m}/{n}) as the integer "
                        f"{int(np.floor(float(s)))} (it rounds factors within 0.001 of an integer), which would change the output "
                        "size; use --format mlprogram"
                    )
        if isinstance(sh, np.floating) or isinstance(sw, np.floating):
            sh, sw = np.float32(sh), np.float32(sw)
        params = {"scale_factor_height": sh, "scale_factor_width": sw, "align_corners": align}
        if t.model_format == "mlprogram" and t.ios >= 16:
            params["half_pixel_centers"] = not align
        y = t.mb.upsample_bilinear(x=x, name=name, **params)
        op = "upsample_bilinear"
        if t.model_format == "neuralnetwork" and ((mh < nh) or (mw < nw)):
            t.warnings.append(f"{label}: NeuralNetwork Upsample with a fractional factor below 1 (downsampling); the grid is documented, the runtime's acceptance of factors < 1 is unconfirmed")
    else:
        params = {"target_size_height": mh, "target_size_width": mw, "sampling_mode": prim.attr("sampling_mode")}
        y = t.mb.resize_bilinear(x=x, name=name, **params)
        op = "resize_bilinear"
    t.plans.append(ResizePlan(label, node.output[0], name, prim.name, op, params, sem))
    return y
