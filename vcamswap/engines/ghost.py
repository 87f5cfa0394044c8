"""GHOST (sber-swap's AEI-Net, 1, 2 or 3 AAD blocks) as a swap model of the neural engine.

What the reference inference of ai-forever/ghost does, and what is done here:

* Alignment. The reference detects 5 keypoints (SCRFD) and warps the frame to a 224 px crop with
  insightface 0.2.1's `estimate_norm(kps, 224, mode='None')`: five pose templates (the 112 px "set 2" of
  insightface, scaled by 2), the one with the least residual wins, `cv2.warpAffine` bilinear, black border.
  The live pipeline aligns every frame to one fixed template, so only the frontal one of the five is used
  (`TEMPLATE_112`, FaceFusion's `arcface_112_v1`); a fixed template also keeps the crop from jumping when the
  head turns past the point where the reference would switch templates. The crop stays 224 px, as in the
  reference, so the model sees what it was trained on.
* Target input. The 224 crop is resized to 256 (`cv2.resize`, bilinear), BGR -> RGB, scaled to [0, 1], then
  (x - 0.5) / 0.5: a 1x3x256x256 float tensor in [-1, 1] (FaceFusion: mean 0.5, std 0.5).
* Output. The generator ends in tanh: 1x3x256x256 RGB in [-1, 1]. The reference maps it back with
  (y * 0.5 + 0.5) * 255, RGB -> BGR, truncates to uint8, and resizes the 256 px result to 224 before the
  paste-back; here the value is rounded instead of truncated (half a grey level brighter on average).
* Source identity. The reference feeds the generator the raw (not L2-normalised) 512-d output of its own
  ArcFace (an iresnet100: the 224 source crop, RGB, [-1, 1], halved to 112 px by F.interpolate bilinear with
  align_corners=True). Where `ghost_arcface_backbone.onnx` is installed (the default download with every
  GHOST model), the engine does exactly that (engines.ghost_arcface). Otherwise it follows FaceFusion: the
  raw w600k_r50 embedding the engine already computes goes through FaceFusion's `crossface_ghost` converter
  (`input` Nx512 -> Nx512), whose raw output is the `source`; that vector is FaceFusion's learned
  approximation of GHOST's ArcFace output, from another network (w600k_r50) on another crop (ArcFace's 112 px
  template), not the identity the generator was trained on. The start line says which path is in use.
* Paste-back. The reference builds its mask from a 106-point landmark model in the swapped crop (the face
  hull, eyebrows raised, eroded and blurred; kornia warps crop and mask back). Here the engine's own face
  oval (neural.face_mask over this model's template) and the compositor's paste-back are used, as for
  inswapper.

The ONNX exports (FaceFusion's `ghost_N_256.onnx`): inputs `target` 1x3x256x256 and `source` 1x512, one
output 1x3x256x256. Other public exports name the embedding input `source_embedding` and the output by a
number, so inputs are found by rank, not by name.

Pixel boost does not apply: it tiles a 128 px model over a larger crop, and GHOST already works at 256.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from vcamswap.choices import SwapModelName
from vcamswap.engines.neural import EMBED_SIZE, check_output

GHOST_MODELS: tuple[SwapModelName, ...] = ("ghost_1_256", "ghost_2_256", "ghost_3_256")
CONVERTER = "crossface_ghost"  # w600k_r50 embedding -> GHOST's ArcFace embedding (FaceFusion), the fallback
CROP_SIZE = 224  # the aligned crop, as in the reference
MODEL_SIZE = 256  # the generator's input and output side
# insightface 0.2.1's frontal "set 2" template for 112 px (the third of five pose templates).
TEMPLATE_112 = np.array(
    [[39.730, 51.138], [72.270, 51.138], [56.000, 68.493], [42.463, 87.010], [69.537, 87.010]], np.float32
)


class GhostInterfaceError(ValueError):
    """A file that does not have a GHOST generator's or converter's inputs and outputs."""


def ghost_template(size: int = CROP_SIZE) -> np.ndarray:
    """5 keypoints in a `size` crop: the frontal template scaled from 112 px."""
    return (TEMPLATE_112 * (size / 112.0)).astype(np.float32)


def to_blob(crop: np.ndarray) -> np.ndarray:
    """1x3x256x256 RGB in [-1, 1] from a BGR uint8 crop of any side (resized bilinearly, as the reference)."""
    if crop.shape[:2] != (MODEL_SIZE, MODEL_SIZE):
        crop = cv2.resize(crop, (MODEL_SIZE, MODEL_SIZE), interpolation=cv2.INTER_LINEAR)
    rgb = crop[..., ::-1].astype(np.float32) / np.float32(255.0)
    blob = (rgb - np.float32(0.5)) / np.float32(0.5)
    return np.ascontiguousarray(blob.transpose(2, 0, 1)[None])


def from_pred(pred: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """The generator's 1x3x256x256 RGB [-1, 1] output as a BGR uint8 crop of `size`."""
    rgb = pred[0].transpose(1, 2, 0) * np.float32(0.5) + np.float32(0.5)
    out = np.ascontiguousarray(np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)[..., ::-1])
    if size != MODEL_SIZE:
        out = cv2.resize(out, (size, size), interpolation=cv2.INTER_LINEAR)
    return out


def _inputs_by_rank(session: ort.InferenceSession) -> dict[int, str]:
    return {len(i.shape): i.name for i in session.get_inputs()}


class GhostGenerator:
    """One GHOST generator session: a 224 px aligned crop and a source embedding in, the swapped crop out."""

    def __init__(self, session: ort.InferenceSession, path: Path) -> None:
        ranks = _inputs_by_rank(session)
        inputs = {i.name: list(i.shape) for i in session.get_inputs()}
        ok = (len(inputs) == 2 and set(ranks) == {2, 4} and inputs[ranks[4]][1:] == [3, MODEL_SIZE, MODEL_SIZE]
              and inputs[ranks[2]][-1] == EMBED_SIZE and len(session.get_outputs()) >= 1)
        if not ok:
            raise GhostInterfaceError(f"{path} is not a GHOST 256 generator (inputs {inputs})")
        self.session, self.path = session, path
        self.target, self.source = ranks[4], ranks[2]
        self.output = session.get_outputs()[0].name

    def run(self, blob: np.ndarray, embedding: np.ndarray) -> np.ndarray:
        feed = {self.target: blob, self.source: np.ascontiguousarray(embedding, np.float32).reshape(1, EMBED_SIZE)}
        pred: np.ndarray = self.session.run([self.output], feed)[0]
        return pred

    def swap(self, crop: np.ndarray, embedding: np.ndarray) -> np.ndarray:
        """The swapped BGR crop, the side of `crop`; SwapOutputError for a NaN or flat output."""
        pred = self.run(to_blob(crop), embedding)
        check_output(pred)
        return from_pred(pred, crop.shape[0])


class GhostConverter:
    """FaceFusion's crossface_ghost: a raw w600k_r50 embedding -> the raw embedding GHOST's generator takes."""

    def __init__(self, session: ort.InferenceSession, path: Path) -> None:
        ins, outs = session.get_inputs(), session.get_outputs()
        if len(ins) != 1 or list(ins[0].shape)[-1] != EMBED_SIZE or not outs or outs[0].shape[-1] != EMBED_SIZE:
            raise GhostInterfaceError(f"{path} is not a 512 -> 512 embedding converter "
                                      f"(inputs {[(i.name, i.shape) for i in ins]})")
        self.session, self.input, self.output = session, ins[0].name, outs[0].name

    def convert(self, raw: np.ndarray) -> np.ndarray:
        """(1, 512) float32, not normalised, as the generator was trained on."""
        feed = {self.input: np.ascontiguousarray(raw, np.float32).reshape(1, EMBED_SIZE)}
        out = np.asarray(self.session.run([self.output], feed)[0], np.float32).reshape(1, EMBED_SIZE)
        if not np.isfinite(out).all() or float(np.abs(out).max()) < 1e-6:
            raise ValueError("the GHOST identity converter gave no usable embedding for this source face")
        return np.ascontiguousarray(out)
