"""Small stand-in ONNX models with the exact interfaces of the neural engine's real models.

The real weights cannot ship (non-commercial licences, hundreds of MB), so tests build these at test time:

* `det_10g.onnx` (SCRFD-10G): input `input.1` 1x3x?x?, nine rank-2 outputs in insightface's order (scores,
  boxes, keypoints for strides 8/16/32, two anchors per cell, same output names as the real file). It is a
  bright-blob detector: at stride 32 the score of an anchor is high when the 64x64 window centred on it is
  white, so a white square of 64 px (in the detector's input) on a dark image is found at a box and 5
  keypoints the test knows (see `expected_detection`). Strides 8 and 16 never fire. standin_scrfd.py builds
  one that finds real faces, the embedded BlazeFace inside the same interface; standin_set.py writes the set.
* `w600k_r50.onnx` (ArcFace): `input.1` Nx3x112x112 -> `683` Nx512, a fixed random projection of the
  8x8 average-pooled image, so the embedding depends on the aligned crop.
* `inswapper_128.onnx`: `target` 1x3x128x128 (RGB, [0,1]) + `source` 1x512 -> `output` 1x3x128x128, with a
  512x512 orthogonal `emap` as the last initializer (unused by the graph, as in the real model). The output
  is `(1 - ALPHA) * target + ALPHA * colour`, colour = sigmoid(COLOUR_GAIN * source[:3]) per RGB channel, so a
  test can tell the swap ran and that the source latent was `embedding @ emap` (see `expected_swap`).
  mode="nan" makes every output NaN, mode="constant" a flat grey image, mode="identity" returns `target` as
  it came (the source unused), so any tiling around the model must give the crop back bit for bit.

The optional models:

* `xseg_3.onnx` (occluder): `input` Nx256x256x3 (NHWC, BGR, [0,1]) -> `output` Nx256x256x1 in [0,1], 1 = the
  face. A face-colour segmenter: a pixel is face when its chromaticity and lightness are near the mean of the
  crop's central 64x64 (nose and inner cheeks of an aligned crop), with a soft edge; anything of another
  colour in front of the face (an object, a sleeve, a microphone) comes out 0. See `expected_occluder`.
* `gfpgan_1.4.onnx` (enhancer): `input` 1x3x512x512 (NCHW, RGB, [-1,1]) -> `output` the same. It sharpens
  (unsharp mask, gain ENHANCE_GAIN over a 5x5 mean) inside the square ENHANCE_BOX only and leaves every
  other pixel exactly as it came, so a test knows where an enhanced crop may differ. See `expected_enhance`.
* `bisenet_resnet_34.onnx` (parser): in standin_parser.py.

    python models/make_standins.py OUT_DIR [--blob-detector]

The script writes the face-finding det_10g.onnx (a real clip is swapped); --blob-detector the blob one that
make_all writes by default (the tests that know the blob's exact box).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnx
from onnx import TensorProto, helper

from vcamswap.modelstore.onnxgraph import build_model, const
from vcamswap.modelstore.standin_parser import parser_model

SCRFD_OUTPUTS = ("448", "471", "494", "451", "474", "497", "454", "477", "500")  # names in det_10g.onnx
STRIDES = (8, 16, 32)
BLOB = 64  # side of the square the stand-in detects, in detector-input pixels
BOX_HALF = 1.0  # box half-side at stride 32, in strides: a 64 px box
# Keypoints around the anchor, in strides (x, y), insightface order: eyes, nose, mouth corners.
KPS_OFFSETS = np.array([[-0.35, -0.2], [0.35, -0.2], [0.0, 0.15], [-0.28, 0.5], [0.28, 0.5]], np.float32)

ARCFACE_INPUT, ARCFACE_OUTPUT = "input.1", "683"
ALPHA = 0.6
COLOUR_GAIN = 40.0
SwapMode = Literal["blend", "nan", "constant", "identity"]


def _model(nodes: list[onnx.NodeProto], inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto],
           inits: list[onnx.TensorProto], name: str) -> onnx.ModelProto:
    return build_model(nodes, inputs, outputs, inits, name, "vcamswap-standin")


# ------------------------------------------------------------------------------------------------- SCRFD


def scrfd_model() -> onnx.ModelProto:
    x = helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, "?", "?"])
    inits = [
        const("zero", np.zeros((), np.float32)),
        const("gain", np.array(12.0, np.float32)),
        const("bias", np.array(-4.8, np.float32)),
        const("col", np.array([-1, 1], np.int64)),
        const("box_far", np.full((1, 4), 0.0, np.float32)),
        const("box_32", np.full((1, 4), BOX_HALF, np.float32)),
        const("kps_far", np.zeros((1, 10), np.float32)),
        const("kps_32", KPS_OFFSETS.reshape(1, 10)),
    ]
    nodes = [helper.make_node("ReduceMean", ["input.1"], ["gray"], axes=[1], keepdims=1, name="gray")]
    scores, boxes, kpss = [], [], []
    for s in STRIDES:
        if s == 32:
            # Window [32i-32, 32i+32) centred on anchor i: pads (32 before, 31 after) keep H/32 cells.
            nodes.append(helper.make_node(
                "AveragePool", ["gray"], ["pool32"], kernel_shape=[64, 64], strides=[32, 32],
                pads=[32, 32, 31, 31], count_include_pad=1, name="pool32"))
            nodes += [
                helper.make_node("Mul", ["pool32", "gain"], ["lin32"], name="lin32"),
                helper.make_node("Add", ["lin32", "bias"], ["logit32"], name="logit32"),
                helper.make_node("Sigmoid", ["logit32"], ["cell32"], name="cell32"),
            ]
        else:
            nodes.append(helper.make_node(
                "AveragePool", ["gray"], [f"pool{s}"], kernel_shape=[s, s], strides=[s, s], name=f"pool{s}"))
            nodes.append(helper.make_node("Mul", [f"pool{s}", "zero"], [f"cell{s}"], name=f"cell{s}"))
        # Rows are (cell, anchor) with both anchors of a cell next to each other, as SCRFD decodes them.
        nodes += [
            helper.make_node("Reshape", [f"cell{s}", "col"], [f"col{s}"], name=f"col{s}"),
            helper.make_node("Concat", [f"col{s}", f"col{s}"], [f"pair{s}"], axis=1, name=f"pair{s}"),
            helper.make_node("Reshape", [f"pair{s}", "col"], [f"score{s}"], name=f"score{s}"),
            helper.make_node("Mul", [f"score{s}", "zero"], [f"nil{s}"], name=f"nil{s}"),
        ]
        level = "32" if s == 32 else "far"
        nodes.append(helper.make_node("Add", [f"nil{s}", f"box_{level}"], [f"box{s}"], name=f"box{s}"))
        nodes.append(helper.make_node("Add", [f"nil{s}", f"kps_{level}"], [f"kps{s}"], name=f"kps{s}"))
        scores.append(f"score{s}")
        boxes.append(f"box{s}")
        kpss.append(f"kps{s}")
    outputs = []
    for internal, name, width in zip(scores + boxes + kpss, SCRFD_OUTPUTS, [1] * 3 + [4] * 3 + [10] * 3, strict=True):
        nodes.append(helper.make_node("Identity", [internal], [name], name=f"out_{name}"))
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [f"n_{name}", width]))
    return _model(nodes, [x], outputs, inits, "scrfd_standin")


def expected_detection(center_xy: tuple[float, float], det_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Box (4,) and keypoints (5, 2) in image pixels for a blob centred at `center_xy` (image pixels).

    det_scale is the detector's resize factor (detector input / image), e.g. 320 / 640 for a 640-wide frame.
    """
    c = np.asarray(center_xy, np.float32)
    half = BOX_HALF * 32 / det_scale
    box = np.array([c[0] - half, c[1] - half, c[0] + half, c[1] + half], np.float32)
    return box, c + KPS_OFFSETS * 32 / det_scale


def blob_image(width: int, height: int, center_xy: tuple[int, int], det_size: int) -> np.ndarray:
    """A dark BGR frame with the white square the stand-in detector finds at `det_size`."""
    scale = det_size / max(width, height)
    side = int(round(BLOB / scale))
    img = np.full((height, width, 3), 20, np.uint8)
    x0, y0 = center_xy[0] - side // 2, center_xy[1] - side // 2
    img[y0:y0 + side, x0:x0 + side] = 255
    return img


# ------------------------------------------------------------------------------------------------- ArcFace


def arcface_weights(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((192, 512)) / np.sqrt(192)).astype(np.float32)


def arcface_model(seed: int = 0) -> onnx.ModelProto:
    x = helper.make_tensor_value_info(ARCFACE_INPUT, TensorProto.FLOAT, ["None", 3, 112, 112])
    y = helper.make_tensor_value_info(ARCFACE_OUTPUT, TensorProto.FLOAT, ["None", 512])
    # Node names avoid "Sub"/"Mul": insightface reads such leading nodes as in-graph normalisation.
    nodes = [
        helper.make_node("AveragePool", [ARCFACE_INPUT], ["pooled"], kernel_shape=[14, 14], strides=[14, 14],
                         name="pool"),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1, name="flatten"),
        helper.make_node("MatMul", ["flat", "proj_w"], [ARCFACE_OUTPUT], name="proj"),
    ]
    return _model(nodes, [x], [y], [const("proj_w", arcface_weights(seed))], "arcface_standin")


def arcface_reference(blob: np.ndarray, seed: int = 0) -> np.ndarray:
    """What the stand-in computes for a normalised Nx3x112x112 blob, in numpy."""
    pooled = blob.reshape(blob.shape[0], 3, 8, 14, 8, 14).mean(axis=(3, 5)).reshape(blob.shape[0], -1)
    return pooled @ arcface_weights(seed)


# ------------------------------------------------------------------------------------------------- inswapper


def emap_matrix(seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((512, 512)))
    return q.astype(np.float32)


def inswapper_model(mode: SwapMode = "blend", seed: int = 1) -> onnx.ModelProto:
    target = helper.make_tensor_value_info("target", TensorProto.FLOAT, [1, 3, 128, 128])
    source = helper.make_tensor_value_info("source", TensorProto.FLOAT, [1, 512])
    output = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 128, 128])
    if mode == "identity":
        node = helper.make_node("Identity", ["target"], ["output"], name="identity")
        return _model([node], [target, source], [output], [const("emap", emap_matrix(seed))], "inswapper_standin_id")
    inits = [
        const("starts", np.array([0], np.int64)),
        const("ends", np.array([3], np.int64)),
        const("axes", np.array([1], np.int64)),
        const("colour_gain", np.array(COLOUR_GAIN, np.float32)),
        const("keep", np.array(1.0 - ALPHA, np.float32)),
        const("alpha", np.array(ALPHA, np.float32)),
        const("chw", np.array([1, 3, 1, 1], np.int64)),
        const("extra", np.array(np.nan if mode == "nan" else 0.0, np.float32)),
        const("flat", np.array(0.0 if mode == "constant" else 1.0, np.float32)),
    ]
    nodes = [
        helper.make_node("Slice", ["source", "starts", "ends", "axes"], ["rgb_latent"]),
        helper.make_node("Mul", ["rgb_latent", "colour_gain"], ["rgb_logit"]),
        helper.make_node("Sigmoid", ["rgb_logit"], ["rgb"]),
        helper.make_node("Reshape", ["rgb", "chw"], ["colour"]),
        helper.make_node("Mul", ["colour", "alpha"], ["tint"]),
        helper.make_node("Mul", ["target", "keep"], ["kept"]),
        helper.make_node("Mul", ["kept", "flat"], ["kept_or_zero"]),
        helper.make_node("Add", ["kept_or_zero", "tint"], ["blend"]),
        helper.make_node("Add", ["blend", "extra"], ["output"]),
    ]
    inits.append(const("emap", emap_matrix(seed)))  # last initializer, as insightface reads it
    return _model(nodes, [target, source], [output], inits, f"inswapper_standin_{mode}")


def latent_of(embedding: np.ndarray, seed: int = 1) -> np.ndarray:
    """The source input the real engine feeds: L2-normalised (normalised embedding @ emap)."""
    e = np.asarray(embedding, np.float32).reshape(1, -1)
    e = e / np.linalg.norm(e)
    lat = e @ emap_matrix(seed)
    return (lat / np.linalg.norm(lat)).astype(np.float32)


def expected_swap(target_rgb01: np.ndarray, latent: np.ndarray) -> np.ndarray:
    """The stand-in's output for a 3x128x128 RGB [0,1] target (mode 'blend')."""
    colour = 1.0 / (1.0 + np.exp(-COLOUR_GAIN * latent.reshape(-1)[:3]))
    return (1.0 - ALPHA) * target_rgb01 + ALPHA * colour[:, None, None]


# ------------------------------------------------------------------------------------------------- occluder

OCCLUDER_INPUT, OCCLUDER_OUTPUT = "input", "output"
OCCLUDER_SIZE = 256
OCCLUDER_PATCH = (96, 160)  # rows and columns of the central patch whose mean colour is "the face"
CHROMA_RADIUS = 0.08  # chromaticity distance (b, g, r shares of their sum) of a pixel that is half face
LIGHT_RADIUS = 0.6  # lightness distance (0..1) of the same: shading moves lightness far more than chroma
OCCLUDER_GAIN = 6.0  # steepness of the face map's edge


def occluder_model() -> onnx.ModelProto:
    side = OCCLUDER_SIZE
    x = helper.make_tensor_value_info(OCCLUDER_INPUT, TensorProto.FLOAT, ["batch", side, side, 3])
    y = helper.make_tensor_value_info(OCCLUDER_OUTPUT, TensorProto.FLOAT, ["batch", side, side, 1])
    lo, hi = OCCLUDER_PATCH
    inits = [
        const("patch_starts", np.array([lo, lo], np.int64)),
        const("patch_ends", np.array([hi, hi], np.int64)),
        const("patch_axes", np.array([2, 3], np.int64)),
        const("channel_axis", np.array([1], np.int64)),
        const("eps", np.array(1e-3, np.float32)),
        const("third", np.array(1.0 / 3.0, np.float32)),
        const("inv_chroma2", np.array(1.0 / CHROMA_RADIUS**2, np.float32)),
        const("inv_light2", np.array(1.0 / LIGHT_RADIUS**2, np.float32)),
        const("one", np.array(1.0, np.float32)),
        const("gain", np.array(OCCLUDER_GAIN, np.float32)),
    ]

    def node(op: str, inputs: list[str], output: str, **attrs: Any) -> onnx.NodeProto:
        return helper.make_node(op, inputs, [output], name=output, **attrs)

    nodes = [
        node("Transpose", [OCCLUDER_INPUT], "nchw", perm=[0, 3, 1, 2]),
        node("ReduceSum", ["nchw", "channel_axis"], "total", keepdims=1),
        node("Add", ["total", "eps"], "total_eps"),
        node("Div", ["nchw", "total_eps"], "chroma"),
        node("Mul", ["total", "third"], "light"),
    ]
    for name in ("chroma", "light"):
        nodes += [
            node("Slice", [name, "patch_starts", "patch_ends", "patch_axes"], f"{name}_patch"),
            node("ReduceMean", [f"{name}_patch"], f"{name}_face", axes=[2, 3], keepdims=1),
            node("Sub", [name, f"{name}_face"], f"{name}_diff"),
            node("Mul", [f"{name}_diff", f"{name}_diff"], f"{name}_diff2"),
            node("ReduceSum", [f"{name}_diff2", "channel_axis"], f"{name}_dist2", keepdims=1),
        ]
    nodes += [
        node("Mul", ["chroma_dist2", "inv_chroma2"], "chroma_z2"),
        node("Mul", ["light_dist2", "inv_light2"], "light_z2"),
        node("Add", ["chroma_z2", "light_z2"], "z2"),
        node("Sub", ["one", "z2"], "margin"),
        node("Mul", ["margin", "gain"], "logit"),
        node("Sigmoid", ["logit"], "face"),
        node("AveragePool", ["face"], "soft", kernel_shape=[5, 5], pads=[2, 2, 2, 2], count_include_pad=0),
        node("Transpose", ["soft"], OCCLUDER_OUTPUT, perm=[0, 2, 3, 1]),
    ]
    return _model(nodes, [x], [y], inits, "xseg_standin")


def expected_occluder(bgr01: np.ndarray) -> np.ndarray:
    """The stand-in's 256x256 face map for one 256x256x3 BGR [0,1] input, before its 5x5 smoothing."""
    lo, hi = OCCLUDER_PATCH
    total = bgr01.sum(-1, keepdims=True)
    chroma, light = bgr01 / (total + 1e-3), total[..., 0] / 3.0
    d_chroma = ((chroma - chroma[lo:hi, lo:hi].reshape(-1, 3).mean(0)) ** 2).sum(-1)
    d_light = (light - light[lo:hi, lo:hi].mean()) ** 2
    z2 = d_chroma / CHROMA_RADIUS**2 + d_light / LIGHT_RADIUS**2
    return 1.0 / (1.0 + np.exp(-np.clip(OCCLUDER_GAIN * (1.0 - z2), -60.0, 60.0)))


# ------------------------------------------------------------------------------------------------- enhancer

ENHANCER_INPUT, ENHANCER_OUTPUT = "input", "output"
ENHANCER_SIZE = 512
ENHANCE_BOX = (160, 352)  # rows and columns (of the 512 input) that the stand-in sharpens
ENHANCE_GAIN = 1.5


def enhancer_model() -> onnx.ModelProto:
    shape = [1, 3, ENHANCER_SIZE, ENHANCER_SIZE]
    x = helper.make_tensor_value_info(ENHANCER_INPUT, TensorProto.FLOAT, shape)
    y = helper.make_tensor_value_info(ENHANCER_OUTPUT, TensorProto.FLOAT, shape)
    box = np.zeros((1, 1, ENHANCER_SIZE, ENHANCER_SIZE), np.float32)
    lo, hi = ENHANCE_BOX
    box[..., lo:hi, lo:hi] = ENHANCE_GAIN
    inits = [const("box_gain", box), const("lo", np.array(-1.0, np.float32)), const("hi", np.array(1.0, np.float32))]
    nodes = [
        helper.make_node("AveragePool", [ENHANCER_INPUT], ["blur"], kernel_shape=[5, 5], pads=[2, 2, 2, 2],
                         count_include_pad=0),
        helper.make_node("Sub", [ENHANCER_INPUT, "blur"], ["high"]),
        helper.make_node("Mul", ["high", "box_gain"], ["boost"]),
        helper.make_node("Add", [ENHANCER_INPUT, "boost"], ["sharp"]),
        helper.make_node("Clip", ["sharp", "lo", "hi"], [ENHANCER_OUTPUT]),
    ]
    return _model(nodes, [x], [y], inits, "gfpgan_standin")


def enhance_region(size: int, margin: int = 0) -> tuple[slice, slice]:
    """Where, in a `size` crop resized to and from the stand-in's 512, its output may differ from the input;
    `margin` pixels wider on each side (resampling spreads an edge by a pixel or two)."""
    lo, hi = (int(v * size / ENHANCER_SIZE) for v in ENHANCE_BOX)
    span = slice(max(0, lo - margin), min(size, hi + margin))
    return span, span  # the box is square: the same span of rows and of columns


# ------------------------------------------------------------------------------------------------- files


def save(model: onnx.ModelProto, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def make_all(out_dir: Path, swap_mode: SwapMode = "blend") -> dict[str, Path]:
    """det_10g.onnx (the blob detector), w600k_r50.onnx and inswapper_128.onnx stand-ins in `out_dir`."""
    return {
        "det_10g": save(scrfd_model(), out_dir / "det_10g.onnx"),
        "w600k_r50": save(arcface_model(), out_dir / "w600k_r50.onnx"),
        "inswapper_128": save(inswapper_model(swap_mode), out_dir / "inswapper_128.onnx"),
    }


def make_optional(out_dir: Path) -> dict[str, Path]:
    """xseg_3.onnx (occluder), gfpgan_1.4.onnx (enhancer) and bisenet_resnet_34.onnx (parser, see
    standin_parser) stand-ins in `out_dir`."""
    return {
        "xseg_3": save(occluder_model(), out_dir / "xseg_3.onnx"),
        "gfpgan_1.4": save(enhancer_model(), out_dir / "gfpgan_1.4.onnx"),
        "bisenet_resnet_34": save(parser_model(), out_dir / "bisenet_resnet_34.onnx"),
    }
