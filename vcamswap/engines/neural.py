"""The swap model's interface, shared by the local neural engine, the swap server and the remote client:
the 128 px template, masks, the model's input and output, the source latent from ArcFace and `emap`.

Alignment follows insightface's `norm_crop` for a 128 px crop: the 112 px ArcFace template unscaled,
shifted 8 px right, which is what inswapper_128 was trained on.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from vcamswap.compose.align import similarity
from vcamswap.compose.blend import feather
from vcamswap.engines import EngineError
from vcamswap.faces.landmarks import ARCFACE_112, LIPS_OUTER
from vcamswap.presets import Preset
from vcamswap.types import FaceGeometry

SWAP_SIZE = 128
EMBED_SIZE = 512
DET_THRESHOLD = 0.5
ARCFACE_DST = ARCFACE_112  # the 112 px template ArcFace's embedding model was trained on


class InswapperSource(NamedTuple):
    """A source face analysed once by the neural engine: its identity and what each swap model takes."""

    embedding: np.ndarray  # (512,) L2-normalised ArcFace embedding
    latent: np.ndarray  # (1, 512) float32, normalised (embedding @ emap); zeros when inswapper_128 is absent
    ghost: np.ndarray | None = None  # (1, 512) GHOST's source (its own ArcFace, or the converter), if installed


class SwapOutputError(EngineError):
    """The swap model returned no usable image (NaN/inf, empty or flat); pass the frame through instead."""


def swap_template(size: int = SWAP_SIZE) -> np.ndarray:
    """5 keypoints in a `size` crop: insightface's estimate_norm for 128 (ratio 1, +8 px in x), scaled."""
    dst = ARCFACE_DST + np.array([8.0, 0.0], np.float32)
    return (dst * (size / SWAP_SIZE)).astype(np.float32)


def arcface_template(size: int = 112) -> np.ndarray:
    return (ARCFACE_DST * (size / 112.0)).astype(np.float32)




# ----------------------------------------------------------------------------------------------- masks


def face_mask(size: int, amount: float, template: np.ndarray | None = None) -> np.ndarray:
    """The blend mask of the swapped face: an oval over the face in the aligned crop, feathered inward.

    Built once per (template, size, feather); the oval spans brows to chin and cheek to cheek of the template
    (inswapper's unless another model's is given), so hair and background corners of the model's output never
    reach the frame.
    """
    t = swap_template(size) if template is None else np.asarray(template, np.float32)
    return _oval(tuple(float(v) for v in t.ravel()), size, amount)


@lru_cache(maxsize=32)
def _oval(points: tuple[float, ...], size: int, amount: float) -> np.ndarray:
    t = np.array(points, np.float32).reshape(5, 2)
    eyes_y = float(t[:2, 1].mean())
    mouth_y = float(t[3:, 1].mean())
    cx = float(t[2, 0])
    half_w = 0.37 * size
    top = eyes_y - 0.75 * (mouth_y - eyes_y)
    bottom = mouth_y + 0.62 * (mouth_y - eyes_y)
    cy, half_h = (top + bottom) / 2, (bottom - top) / 2
    hard = np.zeros((size, size), np.float32)
    cv2.ellipse(hard, (round(cx), round(cy)), (round(half_w), round(half_h)), 0, 0, 360, 1.0, -1, cv2.LINE_AA)
    out = np.clip(feather(hard, amount), 0.0, 1.0)  # the blur can overshoot 1 by a rounding step
    out.setflags(write=False)
    return out


def mouth_mask(face: FaceGeometry, size: int) -> np.ndarray:
    """1 over the mouth (soft edge), from FaceMesh lips when present, else from the 5 keypoints' corners."""
    hard: np.ndarray = np.zeros((size, size), np.float32)
    left, right = face.kps[3].astype(np.float64), face.kps[4].astype(np.float64)
    width = float(np.hypot(*(right - left)))
    if face.points is not None and len(face.points) > max(LIPS_OUTER):
        poly = np.round(face.points[list(LIPS_OUTER)]).astype(np.int32)
        cv2.fillPoly(hard, [poly], 1.0, cv2.LINE_AA)
        grow = max(1, round(0.12 * width))
        hard = cv2.dilate(hard, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))
    else:
        centre = (left + right) / 2
        angle = float(np.degrees(np.arctan2(*(right - left)[::-1])))
        axes = (max(1, round(0.65 * width)), max(1, round(0.32 * width)))
        cv2.ellipse(hard, (round(centre[0]), round(centre[1])), axes, angle, 0, 360, 1.0, -1, cv2.LINE_AA)
    k = 2 * max(1, round(0.15 * width)) + 1
    return np.clip(cv2.GaussianBlur(hard, (k, k), 0), 0.0, 1.0)


def check_output(pred: np.ndarray) -> None:
    """Refuse outputs that would paste a black, green or grey box over the face."""
    if pred.size == 0:
        raise SwapOutputError("the swap model returned an empty image")
    if not np.isfinite(pred).all():
        raise SwapOutputError("the swap model returned NaN/inf values")
    if float(pred.max() - pred.min()) < 1e-3:
        raise SwapOutputError("the swap model returned a flat image")


# ----------------------------------------------------------------------------------------------- runners


def to_blob(crop: np.ndarray) -> np.ndarray:
    """1x3x128x128 RGB in [0, 1]: what inswapper_128 takes."""
    blob: np.ndarray = cv2.dnn.blobFromImage(crop, 1.0 / 255.0, (SWAP_SIZE, SWAP_SIZE), (0, 0, 0), swapRB=True)
    return blob


def from_pred(pred: np.ndarray) -> np.ndarray:
    """The model's 1x3x128x128 RGB [0, 1] output as a BGR uint8 crop."""
    rgb = pred[0].transpose(1, 2, 0)
    return np.ascontiguousarray(np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)[..., ::-1])


def swap_mask(face: FaceGeometry, preset: Preset, size: int = SWAP_SIZE, template: np.ndarray | None = None
              ) -> np.ndarray:
    """The blend mask of a swapped crop of `size`: the face oval (over `template`, inswapper's by default),
    less the mouth when the preset keeps the camera's."""
    mask = face_mask(size, preset.mask_feather, template)
    if preset.mouth_mask:
        mask = mask * (1.0 - mouth_mask(face, size))
    return mask


def latent_of(embedding: np.ndarray, emap: np.ndarray) -> np.ndarray:
    """(1, 512) float32: the swap model's source input, L2-normalised (embedding @ emap)."""
    latent = (np.asarray(embedding, np.float32).reshape(1, -1) @ emap).astype(np.float32)
    latent /= np.linalg.norm(latent)
    return np.ascontiguousarray(latent)


def arcface_crop(image: np.ndarray, kps: np.ndarray, size: int = 112) -> np.ndarray:
    """The face at `kps` aligned to the ArcFace template (insightface's norm_crop)."""
    m = similarity(kps, arcface_template(size))
    out: np.ndarray = cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
    return out


def read_emap(path: Path) -> np.ndarray:
    """The 512x512 matrix stored as the swap model's last initializer (as insightface's INSwapper reads it)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path), load_external_data=False)
    emap = numpy_helper.to_array(model.graph.initializer[-1]).astype(np.float32)
    del model  # the graph holds the whole model's weights; only emap is kept
    return emap
