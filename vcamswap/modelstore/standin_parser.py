"""A stand-in for the optional face parser (`bisenet_resnet_34.onnx`) with its exact interface.

`input` Nx3x512x512 (NCHW, RGB, ImageNet mean/std) -> `output` Nx19x512x512 logits over the CelebAMask-HQ
classes. It parses by colour, in the graph, so that it segments real photos in a way a test can reason about:

* skin (1): a pixel whose chromaticity and lightness are near the mean of the image's central square (the
  nose and inner cheeks of a face-aligned crop), logit PARSER_GAIN * (1 - z2) as the occluder stand-in's;
* hair (17): a pixel darker than DARK_SHARE of that mean lightness (hair, glasses frames, brows, pupils,
  shadows: the stand-in cannot tell them apart, and hands them all to "not face"), logit
  HAIR_GAIN * (DARK_SHARE - lightness / face lightness);
* background (0): logit 0, so whatever is neither (a white helmet, a blue mug) is background;
* every other class: a constant OTHER_LOGIT far below, never chosen.

A real BiSeNet knows a brow from a fringe and a lens from a cheek; this one only knows colours, so it is
a test of the plumbing around the parser, not of what a parser can see. See `expected_labels`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from vcamswap.modelstore.onnxgraph import build_model, const

PARSER_INPUT, PARSER_OUTPUT = "input", "output"
PARSER_SIZE = 512
PARSER_CLASSES = 19
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)  # RGB
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
PARSER_PATCH = (192, 320)  # rows and columns of the central square whose mean colour is "the skin"
CHROMA_RADIUS = 0.08  # chromaticity distance of a pixel that is half skin
LIGHT_RADIUS = 0.6  # lightness distance (0..1) of the same
PARSER_GAIN = 6.0
DARK_SHARE = 0.5  # a pixel darker than this share of the skin's mean lightness is "hair"
HAIR_GAIN = 20.0
OTHER_LOGIT = -30.0
SKIN_CLASS, HAIR_CLASS = 1, 17


def _node(op: str, inputs: list[str], output: str, **attrs: Any) -> onnx.NodeProto:
    return helper.make_node(op, inputs, [output], name=output, **attrs)


def parser_model() -> onnx.ModelProto:
    side = PARSER_SIZE
    x = helper.make_tensor_value_info(PARSER_INPUT, TensorProto.FLOAT, ["batch_size", 3, side, side])
    y = helper.make_tensor_value_info(PARSER_OUTPUT, TensorProto.FLOAT, ["batch_size", PARSER_CLASSES, side, side])
    lo, hi = PARSER_PATCH
    inits = [
        const("std", IMAGENET_STD.reshape(1, 3, 1, 1)),
        const("mean", IMAGENET_MEAN.reshape(1, 3, 1, 1)),
        const("patch_starts", np.array([lo, lo], np.int64)),
        const("patch_ends", np.array([hi, hi], np.int64)),
        const("patch_axes", np.array([2, 3], np.int64)),
        const("channel_axis", np.array([1], np.int64)),
        const("eps", np.array(1e-3, np.float32)),
        const("third", np.array(1.0 / 3.0, np.float32)),
        const("inv_chroma2", np.array(1.0 / CHROMA_RADIUS**2, np.float32)),
        const("inv_light2", np.array(1.0 / LIGHT_RADIUS**2, np.float32)),
        const("one", np.array(1.0, np.float32)),
        const("gain", np.array(PARSER_GAIN, np.float32)),
        const("dark_share", np.array(DARK_SHARE, np.float32)),
        const("hair_gain", np.array(HAIR_GAIN, np.float32)),
        const("zero", np.array(0.0, np.float32)),
        const("other", np.array(OTHER_LOGIT, np.float32)),
    ]
    nodes = [
        _node("Mul", [PARSER_INPUT, "std"], "scaled"),
        _node("Add", ["scaled", "mean"], "rgb"),  # back to RGB 0..1
        _node("ReduceSum", ["rgb", "channel_axis"], "total", keepdims=1),
        _node("Add", ["total", "eps"], "total_eps"),
        _node("Div", ["rgb", "total_eps"], "chroma"),
        _node("Mul", ["total", "third"], "light"),
    ]
    for name in ("chroma", "light"):
        nodes += [
            _node("Slice", [name, "patch_starts", "patch_ends", "patch_axes"], f"{name}_patch"),
            _node("ReduceMean", [f"{name}_patch"], f"{name}_face", axes=[2, 3], keepdims=1),
            _node("Sub", [name, f"{name}_face"], f"{name}_diff"),
            _node("Mul", [f"{name}_diff", f"{name}_diff"], f"{name}_diff2"),
            _node("ReduceSum", [f"{name}_diff2", "channel_axis"], f"{name}_dist2", keepdims=1),
        ]
    nodes += [
        _node("Mul", ["chroma_dist2", "inv_chroma2"], "chroma_z2"),
        _node("Mul", ["light_dist2", "inv_light2"], "light_z2"),
        _node("Add", ["chroma_z2", "light_z2"], "z2"),
        _node("Sub", ["one", "z2"], "margin"),
        _node("Mul", ["margin", "gain"], "skin"),
        _node("Add", ["light_face", "eps"], "face_eps"),
        _node("Div", ["light", "face_eps"], "relative"),
        _node("Sub", ["dark_share", "relative"], "darker"),
        _node("Mul", ["darker", "hair_gain"], "hair"),
        _node("Mul", ["skin", "zero"], "background"),
        _node("Add", ["background", "other"], "rest"),
    ]
    channels = ["rest"] * PARSER_CLASSES
    channels[0], channels[SKIN_CLASS], channels[HAIR_CLASS] = "background", "skin", "hair"
    nodes.append(_node("Concat", channels, PARSER_OUTPUT, axis=1))
    return build_model(nodes, [x], [y], inits, "bisenet_standin", "vcamswap-standin")


def expected_labels(rgb01: np.ndarray) -> np.ndarray:
    """The stand-in's class per pixel (argmax) for one 512x512x3 RGB [0,1] image, in numpy."""
    lo, hi = PARSER_PATCH
    total = rgb01.sum(-1, keepdims=True)
    chroma, light = rgb01 / (total + 1e-3), total[..., 0] / 3.0
    d_chroma = ((chroma - chroma[lo:hi, lo:hi].reshape(-1, 3).mean(0)) ** 2).sum(-1)
    face_light = light[lo:hi, lo:hi].mean()
    skin = PARSER_GAIN * (1.0 - d_chroma / CHROMA_RADIUS**2 - (light - face_light) ** 2 / LIGHT_RADIUS**2)
    hair = HAIR_GAIN * (DARK_SHARE - light / (face_light + 1e-3))
    logits = np.stack([np.zeros_like(skin), skin, hair])
    return np.array([0, SKIN_CLASS, HAIR_CLASS], np.uint8)[logits.argmax(0)]
