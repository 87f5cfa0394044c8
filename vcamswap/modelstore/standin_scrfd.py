"""A det_10g.onnx stand-in that finds real faces: the embedded BlazeFace network inside SCRFD's interface.

Interface exactly SCRFD-10G's (standins.scrfd_model has the same): input `input.1` 1x3xHxW, as insightface's
SCRFD feeds it (RGB, (pixel - 127.5) / 128, the image in the top-left corner of a black square); nine rank-2
outputs in insightface's order, scores (n, 1), box distances (n, 4) and keypoint offsets (n, 10) for strides
8, 16 and 32, rows per cell of the H/s x W/s grid in row-major order, two anchors per cell side by side.

What the graph does:

1. Undoes SCRFD's normalisation into BlazeFace's ([-1, 1], x * 128 / 127.5), pads the input to a square with
   black, resizes it to 640 (linear) and averages 5x5 blocks to 128x128 (area resampling, as
   faces.detector's INTER_AREA: bilinear alone would alias small faces away), to NHWC.
2. Runs mediapipe's short-range BlazeFace (the product's own face_detection_short_range.onnx, its nodes and
   weights copied in under the prefix `bf/`).
3. Decodes its best face as faces.detector does: the anchors' boxes and 6 keypoints, and the score-weighted
   mean of every box that overlaps the best one by IoU > NMS_IOU among those scoring at least BF_THRESHOLD
   (the first cluster of mediapipe's weighted NMS). The 5 points are eyes, nose and the mouth corners that
   faces.detector.kps5_from_blazeface derives (a fixed linear map of the 6).
4. Writes that one face at every SCRFD anchor: the score is the BlazeFace score times a Gaussian of the
   anchor's distance to the box centre (sigma half the box width), so it peaks at the anchor nearest the face;
   the box and keypoints are the same absolute ones, expressed as SCRFD's distances from the anchor divided by
   the stride. insightface's decoding gives the same box from every anchor and its NMS keeps one.

One face per frame (the best). On a frame without a face BlazeFace's score stays under the threshold at
every anchor.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import onnx
from onnx import TensorProto, compose, helper

from vcamswap.faces.detector import DETECTOR_MODEL, INPUT_SIZE, MOUTH_HALF_WIDTH, NMS_IOU, ssd_anchors
from vcamswap.modelstore.onnxgraph import build_model, const
from vcamswap.modelstore.standins import SCRFD_OUTPUTS, STRIDES
from vcamswap.paths import embedded_model

SCRFD_INPUT = "input.1"
FINE = 640  # the square the input is resized to before 5x5 averaging down to BlazeFace's 128
BF_THRESHOLD = 0.5  # BlazeFaceDetector's default score threshold: who joins the best face's cluster
PREFIX = "bf/"


def kps6_to_kps5() -> np.ndarray:
    """(5, 6) matrix: kps5 = M @ kps6 is faces.detector.kps5_from_blazeface (eyes, nose, mouth -/+ h x eye
    vector) for any 6 BlazeFace points."""
    h = MOUTH_HALF_WIDTH
    return np.array([
        [1, 0, 0, 0, 0, 0],
        [0, 1, 0, 0, 0, 0],
        [0, 0, 1, 0, 0, 0],
        [h, -h, 0, 1, 0, 0],
        [-h, h, 0, 1, 0, 0],
    ], np.float32)


class _Graph:
    """Nodes and initializers under construction; each node's output is named after the node."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def const(self, name: str, value: Any, dtype: type = np.float32) -> str:
        self.inits.append(const(name, np.asarray(value, dtype)))
        return name

    def op(self, op: str, inputs: list[str], out: str, **attrs: Any) -> str:
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def columns(self, x: str, start: int, end: int, out: str) -> str:
        """x[:, start:end] of a rank-2 tensor."""
        bounds = [self.const(f"{out}_{k}", [v], np.int64) for k, v in (("from", start), ("to", end), ("axis", 1))]
        return self.op("Slice", [x, *bounds], out)


def _blazeface(g: _Graph, nhwc: str) -> tuple[str, str]:
    """Copies the embedded BlazeFace into `g`, fed by `nhwc`; its (regressors, classificators) outputs."""
    bf = compose.add_prefix(onnx.load(str(embedded_model(DETECTOR_MODEL))), PREFIX)
    (bf_input,) = [i.name for i in bf.graph.input]
    g.op("Identity", [nhwc], bf_input)
    g.nodes += list(bf.graph.node)
    g.inits += list(bf.graph.initializer)
    outs = {o.name[len(PREFIX):]: o.name for o in bf.graph.output}
    return outs["regressors"], outs["classificators"]


def _preprocess(g: _Graph) -> tuple[str, str, str, str]:
    """SCRFD's input -> BlazeFace's NHWC 128x128 input; also the input's height and width ([1] int64 each)
    and the side of the padded square over 128 ([1] float: BlazeFace pixels -> input pixels)."""
    shape = g.op("Shape", [SCRFD_INPUT], "in_shape")
    height = g.op("Gather", [shape, g.const("i2", [2], np.int64)], "in_h", axis=0)
    width = g.op("Gather", [shape, g.const("i3", [3], np.int64)], "in_w", axis=0)
    side = g.op("Max", [height, width], "in_side")
    pads = g.op("Concat", [g.const("zeros6", [0] * 6, np.int64), g.op("Sub", [side, height], "pad_h"),
                           g.op("Sub", [side, width], "pad_w")], "pads", axis=0)
    unit = g.op("Mul", [SCRFD_INPUT, g.const("to_unit", 128.0 / 127.5)], "unit")  # (p - 127.5) / 127.5
    square = g.op("Pad", [unit, pads, g.const("black", -1.0)], "square", mode="constant")
    fine = g.op("Resize", [square, "", "", g.const("fine_size", [1, 3, FINE, FINE], np.int64)], "fine",
                mode="linear", coordinate_transformation_mode="half_pixel")
    k = FINE // INPUT_SIZE
    small = g.op("AveragePool", [fine], "small", kernel_shape=[k, k], strides=[k, k])
    nhwc = g.op("Transpose", [small], "nhwc", perm=[0, 2, 3, 1])
    side_f = g.op("Cast", [side], "side_f", to=TensorProto.FLOAT)
    per_px = g.op("Mul", [side_f, g.const("inv_bf", 1.0 / INPUT_SIZE)], "per_px")
    return nhwc, height, width, per_px


def _best_face(g: _Graph, regressors: str, classificators: str) -> tuple[str, str, str]:
    """BlazeFace's best face in its 128 px frame: score [1], box [1, 4] (x1 y1 x2 y2), 5 keypoints [5, 2]."""
    n = len(ssd_anchors())
    reg = g.op("Reshape", [regressors, g.const("reg_shape", [n, 16], np.int64)], "reg")
    logit = g.op("Reshape", [classificators, g.const("flat", [-1], np.int64)], "logit")
    clipped = g.op("Clip", [logit, g.const("lo", -100.0), g.const("hi", 100.0)], "logit_clip")
    score = g.op("Sigmoid", [clipped], "bf_score")
    anchors = g.const("anchors", ssd_anchors() * INPUT_SIZE)
    centre = g.op("Add", [g.columns(reg, 0, 2, "reg_c"), anchors], "bf_centre")
    half = g.op("Mul", [g.columns(reg, 2, 4, "reg_wh"), g.const("half", 0.5)], "bf_half")
    lo = g.op("Sub", [centre, half], "bf_lo")
    hi = g.op("Add", [centre, half], "bf_hi")
    boxes = g.op("Concat", [lo, hi], "bf_boxes", axis=1)
    kps6 = g.op("Reshape", [g.columns(reg, 4, 16, "reg_kps"), g.const("kps_shape", [n, 6, 2], np.int64)], "reg_kps6")
    anchors3 = g.op("Reshape", [anchors, g.const("anc3", [n, 1, 2], np.int64)], "anchors3")
    kps = g.op("Add", [kps6, anchors3], "bf_kps")
    # The best anchor, and IoU of every box with its box.
    best = g.op("ArgMax", [score], "best", axis=0, keepdims=1)
    best_score = g.op("Gather", [score, best], "best_score", axis=0)
    best_lo = g.op("Gather", [lo, best], "best_lo", axis=0)
    best_hi = g.op("Gather", [hi, best], "best_hi", axis=0)
    zero = g.const("zero", 0.0)
    inter_wh = g.op("Max", [g.op("Sub", [g.op("Min", [hi, best_hi], "i_hi"), g.op("Max", [lo, best_lo], "i_lo")],
                                 "i_span"), zero], "i_wh")
    inter = g.op("ReduceProd", [inter_wh], "inter", axes=[1], keepdims=0)
    area = g.op("ReduceProd", [g.op("Max", [g.op("Sub", [hi, lo], "span"), zero], "wh")], "area", axes=[1],
                keepdims=0)
    best_area = g.op("Gather", [area, best], "best_area", axis=0)
    union = g.op("Sub", [g.op("Add", [area, best_area], "areas"), inter], "union")
    iou = g.op("Div", [inter, g.op("Max", [union, g.const("tiny", 1e-12)], "union_pos")], "iou")
    # Members: overlap the best and pass the threshold (the best itself always, even under it).
    member = g.op("Cast", [g.op("Greater", [iou, g.const("nms_iou", NMS_IOU)], "overlaps")], "member",
                  to=TensorProto.FLOAT)
    gate = g.op("Min", [best_score, g.const("bf_thr", BF_THRESHOLD)], "gate")
    passes = g.op("Cast", [g.op("GreaterOrEqual", [score, gate], "passes_b")], "passes", to=TensorProto.FLOAT)
    weight = g.op("Mul", [g.op("Mul", [score, member], "w_member"), passes], "weight")
    total = g.op("Max", [g.op("ReduceSum", [weight], "w_sum", keepdims=1), g.const("w_tiny", 1e-12)], "w_total")
    axis0 = g.const("axis0", [0], np.int64)
    w2 = g.op("Reshape", [weight, g.const("col2", [n, 1], np.int64)], "w2")
    box_sum = g.op("ReduceSum", [g.op("Mul", [boxes, w2], "w_boxes"), axis0], "box_sum", keepdims=1)
    box = g.op("Div", [box_sum, total], "bf_box")
    w3 = g.op("Reshape", [weight, g.const("col3", [n, 1, 1], np.int64)], "w3")
    kps_sum = g.op("ReduceSum", [g.op("Mul", [kps, w3], "w_kps"), axis0], "kps_sum", keepdims=0)
    kps6_mean = g.op("Div", [kps_sum, total], "bf_kps6")
    kps5 = g.op("MatMul", [g.const("kps6_to_5", kps6_to_kps5()), kps6_mean], "bf_kps5")
    return best_score, box, kps5


class _Face(NamedTuple):
    """Graph tensors of the face found, in input pixels."""

    score: str  # [1]
    box: str  # [1, 4] x1 y1 x2 y2
    kps: str  # [1, 10] x y of the 5 points
    centre: str  # [1, 2]
    inv_2var: str  # [1, 1] -1 / (2 sigma^2) of the score's fall-off with distance


def _to_input(g: _Graph, points: str, per_px: str, out: str) -> str:
    """BlazeFace coordinates (edge-based, 0..128) -> input pixel-centre coordinates."""
    return g.op("Sub", [g.op("Mul", [points, per_px], f"{out}_edge"), g.const(f"{out}_c", 0.5)], out)


def _level(g: _Graph, s: int, height: str, width: str, face: _Face) -> tuple[str, str, str]:
    """Scores (2n, 1), box distances (2n, 4) and keypoint offsets (2n, 10) at stride `s`."""
    score, box, kps10, centre, inv_2var = face
    scalar = g.const(f"scalar{s}", np.zeros(0), np.int64)

    def steps(size: str, axis: str) -> str:
        cells = g.op("Div", [size, g.const(f"s{s}_{axis}", [s], np.int64)], f"n{axis}{s}")
        count = g.op("Reshape", [g.op("Cast", [cells], f"n{axis}{s}_f", to=TensorProto.FLOAT), scalar], f"c{axis}{s}")
        ramp = g.op("Range", [g.const(f"r0_{axis}{s}", 0.0), count, g.const(f"r1_{axis}{s}", 1.0)], f"r{axis}{s}")
        return g.op("Mul", [ramp, g.const(f"stride{s}_{axis}", float(s))], f"{axis}{s}")

    xs, ys = steps(width, "x"), steps(height, "y")
    row = g.op("Reshape", [xs, g.const(f"row{s}", [1, -1], np.int64)], f"xrow{s}")
    col = g.op("Reshape", [ys, g.const(f"col{s}", [-1, 1], np.int64)], f"ycol{s}")
    zero_grid = g.op("Add", [g.op("Mul", [row, g.const(f"z{s}", 0.0)], f"zr{s}"),
                             g.op("Mul", [col, g.const(f"zc{s}", 0.0)], f"zc{s}m")], f"zgrid{s}")
    flat = g.const(f"flat{s}", [-1, 1], np.int64)
    ax = g.op("Reshape", [g.op("Add", [zero_grid, row], f"ax_grid{s}"), flat], f"ax{s}")
    ay = g.op("Reshape", [g.op("Add", [zero_grid, col], f"ay_grid{s}"), flat], f"ay{s}")
    anchor = g.op("Concat", [ax, ay], f"anchor{s}", axis=1)  # (n, 2) x y, row-major cells as insightface
    d = g.op("Sub", [anchor, centre], f"d{s}")
    d2 = g.op("ReduceSum", [g.op("Mul", [d, d], f"dd{s}"), g.const(f"ax1_{s}", [1], np.int64)], f"d2_{s}",
              keepdims=1)
    falloff = g.op("Exp", [g.op("Mul", [d2, inv_2var], f"z2_{s}")], f"fall{s}")
    cell_score = g.op("Mul", [falloff, score], f"cell_score{s}")
    inv_s = g.const(f"inv_s{s}", 1.0 / s)
    a4 = g.op("Concat", [anchor, anchor], f"a4_{s}", axis=1)
    signed = g.op("Mul", [g.op("Sub", [a4, box], f"ab{s}"), g.const(f"sign{s}", [1.0, 1.0, -1.0, -1.0])], f"ltrb{s}")
    dist = g.op("Mul", [signed, inv_s], f"dist{s}")
    a10 = g.op("Concat", [anchor] * 5, f"a10_{s}", axis=1)
    offs = g.op("Mul", [g.op("Sub", [kps10, a10], f"ka{s}"), inv_s], f"offs{s}")

    def pair(x: str, width_: int, out: str) -> str:
        both = g.op("Concat", [x, x], f"{out}_2", axis=1)  # both anchors of a cell next to each other
        return g.op("Reshape", [both, g.const(f"{out}_shape", [-1, width_], np.int64)], out)

    return pair(cell_score, 1, f"score{s}"), pair(dist, 4, f"box{s}"), pair(offs, 10, f"kps{s}")


def scrfd_face_model() -> onnx.ModelProto:
    g = _Graph()
    nhwc, height, width, per_px = _preprocess(g)
    regressors, classificators = _blazeface(g, nhwc)
    score, box128, kps128 = _best_face(g, regressors, classificators)
    box = _to_input(g, box128, per_px, "face_box")  # (1, 4)
    kps = g.op("Reshape", [_to_input(g, kps128, per_px, "face_kps5"), g.const("kps10", [1, 10], np.int64)],
               "face_kps")
    lo, hi = g.columns(box, 0, 2, "face_lo"), g.columns(box, 2, 4, "face_hi")
    centre = g.op("Mul", [g.op("Add", [lo, hi], "face_lohi"), g.const("mid", 0.5)], "face_centre")
    span = g.op("Sub", [hi, lo], "face_span")
    box_w = g.op("Max", [g.columns(span, 0, 1, "face_w0"), g.const("min_w", 1.0)], "face_w")
    # sigma = width / 2: exp(-d^2 / (2 sigma^2)) = exp(d^2 * (-2 / width^2))
    inv_2var = g.op("Div", [g.const("neg2", -2.0), g.op("Mul", [box_w, box_w], "face_w2")], "inv_2var")
    face = _Face(score, box, kps, centre, inv_2var)
    levels = [_level(g, s, height, width, face) for s in STRIDES]
    internal = [lv[0] for lv in levels] + [lv[1] for lv in levels] + [lv[2] for lv in levels]
    outputs = []
    for name, out, w in zip(internal, SCRFD_OUTPUTS, [1] * 3 + [4] * 3 + [10] * 3, strict=True):
        g.op("Identity", [name], out)
        outputs.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, [f"n_{out}", w]))
    x = helper.make_tensor_value_info(SCRFD_INPUT, TensorProto.FLOAT, [1, 3, "?", "?"])
    return build_model(g.nodes, [x], outputs, g.inits, "scrfd_blazeface_standin", "vcamswap-standin")
