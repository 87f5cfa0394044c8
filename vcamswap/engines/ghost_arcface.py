"""GHOST's own ArcFace: the identity the generators were trained on, fed exactly as the reference feeds it.

The reference (ai-forever/ghost, utils/inference/core.py `model_inference`) computes the source identity as

    source_curr = normalize_and_torch(crop224_rgb)       # /255 (the crop is uint8), (x - 0.5) / 0.5, NCHW
    netArc(F.interpolate(source_curr, scale_factor=0.5, mode='bilinear', align_corners=True))

where crop224_rgb is the 224 px aligned source crop (`crop_face`: insightface 0.2.1's estimate_norm, then
`cv2.warpAffine` bilinear with a black border) flipped BGR -> RGB, and netArc is an iresnet100
(arcface_model/backbone.pth, released with GHOST). Its raw 512-d output, not normalised, is the generator's
`source`. (Training resized 256 px faces to 112 with align_corners=False; inference is what is matched here.)

F.interpolate, bilinear, align_corners=True, 224 -> 112: output index i samples the input at i * 223 / 111,
linearly between its two neighbours, separably in y and x (`interpolation_matrix`). That is not cv2.resize's
INTER_LINEAR, which samples at (i + 0.5) * 2 - 0.5 (align_corners=False).

The ONNX file is `ghost_arcface_backbone.onnx`, the export of that backbone other projects ship (first in
harisreedhar/Face-Swappers-ONNX, then Rope, VisoMaster): one input Nx3x112x112 (RGB, [-1, 1]; its name is not
published, so it is taken by position as those projects do) and one output Nx512, the raw embedding. Those
projects feed it a 112 px crop made directly with insightface's ArcFace template (x / 127.5 - 1, RGB, output
not normalised, not flipped); the engine feeds it as the reference does instead.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from vcamswap.compose.align import similarity
from vcamswap.engines.ghost import CROP_SIZE, GhostInterfaceError, ghost_template
from vcamswap.engines.neural import EMBED_SIZE

GHOST_ARCFACE = "ghost_arcface"  # the manifest name of GHOST's own ArcFace
ARCFACE_FILE = "ghost_arcface_backbone.onnx"  # its file, named as the projects that ship it name it
ARCFACE_SIDE = 112  # the backbone's input side: the 224 crop halved


def interpolation_matrix(n_in: int, n_out: int, align_corners: bool) -> np.ndarray:
    """(n_out, n_in) weights of torch's 1-d linear interpolation: row i holds the two weights of the input
    samples around i's source position (align_corners: i * (n_in - 1) / (n_out - 1); else the half-pixel
    (i + 0.5) * n_in / n_out - 0.5, clamped at 0, as torch does)."""
    i = np.arange(n_out, dtype=np.float64)
    if align_corners:
        pos = i * ((n_in - 1) / (n_out - 1)) if n_out > 1 else np.zeros(n_out)
    else:
        pos = np.maximum((i + 0.5) * (n_in / n_out) - 0.5, 0.0)
    lo = np.minimum(np.floor(pos).astype(np.int64), n_in - 1)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = pos - lo
    w = np.zeros((n_out, n_in), np.float64)
    np.add.at(w, (np.arange(n_out), lo), 1.0 - frac)
    np.add.at(w, (np.arange(n_out), hi), frac)
    return w


def halve(blob: np.ndarray) -> np.ndarray:
    """F.interpolate(blob, scale_factor=0.5, mode='bilinear', align_corners=True) of an NCHW float32 blob."""
    h, w = blob.shape[2:]
    wy = interpolation_matrix(h, h // 2, True)
    wx = interpolation_matrix(w, w // 2, True)
    out = np.einsum("yh,nchw,xw->ncyx", wy, blob.astype(np.float64), wx, optimize=True)
    return np.ascontiguousarray(out, np.float32)


def source_crop(image: np.ndarray, kps: np.ndarray) -> np.ndarray:
    """The 224 px source crop as the reference makes it: bilinear warp onto GHOST's template, black border."""
    m = similarity(np.asarray(kps, np.float32), ghost_template(CROP_SIZE))
    return cv2.warpAffine(image, m, (CROP_SIZE, CROP_SIZE), flags=cv2.INTER_LINEAR, borderValue=0.0)


def arcface_blob(crop: np.ndarray) -> np.ndarray:
    """1x3x112x112: the BGR uint8 224 crop as RGB, /255, (x - 0.5) / 0.5, then halved (normalize_and_torch and
    F.interpolate, in the reference's order)."""
    rgb = crop[..., ::-1].astype(np.float32) / np.float32(255.0)
    blob = ((rgb - np.float32(0.5)) / np.float32(0.5)).transpose(2, 0, 1)[None]
    return halve(blob)


class GhostArcFace:
    """GHOST's iresnet100 as ONNX: a 224 px aligned source crop in, the raw (1, 512) source out."""

    def __init__(self, session: ort.InferenceSession, path: Path) -> None:
        ins, outs = session.get_inputs(), session.get_outputs()
        shape = list(ins[0].shape) if len(ins) == 1 else []
        fixed = [d for d in shape[1:] if isinstance(d, int)]
        ok = (len(shape) == 4 and shape[1] == 3 and all(d == ARCFACE_SIDE for d in fixed[1:])
              and len(outs) >= 1 and outs[0].shape[-1] == EMBED_SIZE)
        if not ok:
            raise GhostInterfaceError(f"{path} is not GHOST's ArcFace (inputs {[(i.name, i.shape) for i in ins]})")
        self.session, self.input, self.output = session, ins[0].name, outs[0].name

    def embed(self, crop: np.ndarray) -> np.ndarray:
        """(1, 512) float32, raw: the generator's source for this 224 px crop."""
        out = np.asarray(self.session.run([self.output], {self.input: arcface_blob(crop)})[0], np.float32)
        out = out.reshape(1, EMBED_SIZE)
        if not np.isfinite(out).all() or float(np.abs(out).max()) < 1e-6:
            raise ValueError("GHOST's ArcFace gave no usable embedding for this source face")
        return np.ascontiguousarray(out)
