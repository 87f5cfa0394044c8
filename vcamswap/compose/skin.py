"""Which pixels of a face are its skin: a colour-and-detail model of one person's skin, fitted on the spots
that are skin on every face (both cheeks under the eyes and the nose bridge).

No face-parsing weights can ship with the embedded engine, and a generic skin-colour rule fails both ways
(blond hair on pale skin, dark hair on dark skin). A model of *this* face's own skin, sampled where hair,
beards and glasses almost never are, separates what matters here: hair strands and glasses frames differ
from the cheeks in colour or lightness, and hair and stubble carry fine detail that skin does not.
Robust statistics (median, MAD) keep a strand crossing a sampled cheek from widening the model.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

from vcamswap.faces.landmarks import FACE_OVAL, LEFT_EYE, LEFT_EYEBROW, LIPS_OUTER, RIGHT_EYE, RIGHT_EYEBROW

# FaceMesh points on the cheeks between the nose and the cheekbone, and on the lower nose bridge: low enough
# to miss glasses rims, high enough to miss most beards, inside enough to miss hair at the temples.
SAMPLE_POINTS: tuple[int, ...] = (
    205, 36, 203, 187, 206, 50, 101,  # subject's right cheek
    425, 266, 423, 411, 426, 280, 330,  # subject's left cheek
    195, 5, 4,  # nose bridge below the glasses' bridge
)  # fmt: skip
# The lower nose, tip to nostrils (its hull): its shading and nostrils are not skin-coloured but are the face,
# never an occluder. It stops below the bridge, where glasses rest.
NOSE: tuple[int, ...] = (5, 4, 1, 129, 358, 98, 327, 64, 294, 97, 326, 2)
# The nose's base along the nostrils' lower edge (subject's right to left): below it a moustache, stubble or a
# nostril's shadow grows, which is not the nose and is decided by colour and texture like the rest of the face.
NOSE_BASE: tuple[int, ...] = (64, 98, 97, 2, 326, 327, 294)
BROWS: tuple[tuple[int, ...], ...] = (RIGHT_EYEBROW, LEFT_EYEBROW)
EYES_AND_LIPS: tuple[tuple[int, ...], ...] = (RIGHT_EYE, LEFT_EYE, LIPS_OUTER)

# Lightness varies with shading across a face far more than chroma does: it gets a wider tolerance.
L_TOLERANCE = 2.5
MIN_SPREAD = np.array([8.0, 4.5, 4.5], np.float32)  # LAB floors: a very even sample must not reject all else
MAX_SPREAD = np.array([22.0, 8.0, 8.0], np.float32)  # caps: a sample half in shadow must not accept all else
SKIN_NEAR, SKIN_FAR = 2.5, 4.5  # distance (in spreads) where skin likelihood starts falling / reaches 0
DETAIL_GAIN = 1.0  # weight of excess fine detail (strands, stubble) in the distance
UNIT = np.arange(256, dtype=np.float32) / 255.0  # uint8 -> 0..1 with cv2.LUT: x / 255 exactly, far cheaper


class SkinModel(NamedTuple):
    median: np.ndarray  # (3,) LAB, OpenCV's 8-bit scale
    spread: np.ndarray  # (3,) robust standard deviation per channel
    detail: float  # typical fine-detail energy of this skin


def polygon(points: np.ndarray, indices: tuple[int, ...] | list[int]) -> np.ndarray:
    """Points as an int32 polygon with 4 fractional bits (cv2's `shift=4`): sub-pixel edges."""
    return np.round(points[list(indices)] * 16).astype(np.int32)


def fill(mask: np.ndarray, points: np.ndarray, indices: tuple[int, ...], value: int = 255) -> np.ndarray:
    cv2.fillPoly(mask, [polygon(points, indices)], value, lineType=cv2.LINE_8, shift=4)
    return mask


def face_width(points: np.ndarray) -> float:
    return float(np.ptp(points[list(FACE_OVAL), 0])) or 1.0


def sample_mask(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Small discs on the cheekbones and the nose bridge."""
    mask = np.zeros(shape, np.uint8)
    r = max(1, int(round(face_width(points) * 0.035)))
    for x, y in points[list(SAMPLE_POINTS)]:
        cv2.circle(mask, (int(round(x)), int(round(y))), r, 255, -1)
    return mask


def detail_map(lab: np.ndarray, scale: float) -> np.ndarray:
    """Local fine-detail energy of the lightness: high on hair strands and stubble, low on skin."""
    lum = lab[..., 0]
    s = max(0.6, 1.2 * scale)
    high = np.abs(lum - cv2.GaussianBlur(lum, (0, 0), s))
    return cv2.GaussianBlur(high, (0, 0), 2.5 * s)


def to_lab(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_BGR2LAB).astype(np.float32)


def fit(lab: np.ndarray, detail: np.ndarray, sample: np.ndarray) -> SkinModel | None:
    sel = sample > 0
    if int(sel.sum()) < 12:
        return None
    px = lab[sel]
    det = detail[sel]
    med = np.median(px, axis=0)
    spread = np.clip(1.4826 * np.median(np.abs(px - med), axis=0), MIN_SPREAD, MAX_SPREAD)
    # Once more on the samples the first fit calls skin: a rim or a strand across a cheek drops out.
    inlier = (np.abs((px - med) / spread) < np.array([3.0 * L_TOLERANCE, 3.0, 3.0])).all(1)
    if int(inlier.sum()) >= 12:
        px, det = px[inlier], det[inlier]
        med = np.median(px, axis=0)
        spread = np.clip(1.4826 * np.median(np.abs(px - med), axis=0), MIN_SPREAD, MAX_SPREAD)
    return SkinModel(med.astype(np.float32), spread.astype(np.float32), float(np.median(det)))


def blend(a: SkinModel, b: SkinModel, keep: float) -> SkinModel:
    """`keep` of the old model, the rest of the new one: a model that follows the light without flicker."""
    return SkinModel(
        a.median * keep + b.median * (1 - keep), a.spread * keep + b.spread * (1 - keep),
        a.detail * keep + b.detail * (1 - keep),
    )


def likelihood(lab: np.ndarray, detail: np.ndarray, model: SkinModel) -> np.ndarray:
    """0..1 per pixel: how much it looks like this face's skin."""
    # Per channel on a (rows, columns * 3) view: numpy's loop over a last axis of 3 costs four times more.
    h, w = lab.shape[:2]
    z = ((lab.reshape(h, w * 3) - np.tile(model.median, w)) / np.tile(model.spread, w)).reshape(h, w, 3)
    z[..., 0] /= L_TOLERANCE
    d2 = np.einsum("...c,...c->...", z, z)
    excess = np.maximum(detail - 1.5 * model.detail, 0.0) / max(model.detail, 1.0)
    d = np.sqrt(d2) + DETAIL_GAIN * excess
    return np.clip((SKIN_FAR - d) / (SKIN_FAR - SKIN_NEAR), 0.0, 1.0).astype(np.float32)


def clean(prob: np.ndarray, size: int) -> np.ndarray:
    """Drop isolated specks (pores, a glint) both ways, then soften: a mask that does not speckle."""
    k = max(3, (size // 64) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    m = cv2.morphologyEx(prob, cv2.MORPH_CLOSE, kernel)
    m = cv2.morphologyEx(m, cv2.MORPH_OPEN, kernel)
    return cv2.GaussianBlur(m, (0, 0), k / 3.0)


def protected(
    points: np.ndarray, shape: tuple[int, int], regions: tuple[tuple[int, ...], ...], grow: float = 0.02
) -> np.ndarray:
    """1 inside the given feature polygons, grown by `grow` of the face's width: always face, whatever their
    colour (FaceMesh's brow and nose outlines sit a little inside the real brow hair and nostril shadows)."""
    mask: np.ndarray = np.zeros(shape, np.uint8)
    for idx in regions:
        if idx is NOSE:
            hull = cv2.convexHull(np.round(points[list(idx)] * 16).astype(np.int32))
            cv2.fillConvexPoly(mask, hull, 255, lineType=cv2.LINE_8, shift=4)
        else:
            fill(mask, points, idx)
    r = int(round(face_width(points) * grow))
    if r > 0:
        mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    return cv2.LUT(mask, UNIT)


def oval(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return fill(np.zeros(shape, np.uint8), points, FACE_OVAL)


def covered(prob: np.ndarray, region: np.ndarray, width: int) -> bool:
    """True when most of a ring around `region` is not skin: a fringe or a hat lies over it too."""
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * width + 1, 2 * width + 1))
    ring = (cv2.dilate(region, k) > 0.5) & (region < 0.5)
    return bool(ring.any()) and float(prob[ring].mean()) < 0.5


# FaceMesh puts the nose's base on the skin just under the nostrils, further down on a moustache or the shadow under
# a nose lit from one side: the lower nose's protection stops this share of the base-to-tip distance above it.
NOSE_BASE_LIFT = 0.35


def below_nose(points: np.ndarray, shape: tuple[int, int], lift: float = NOSE_BASE_LIFT) -> np.ndarray:
    """1 below the nose's base (the nostrils' lower edge, extended across the face; raised by `lift` of the way to
    the tip), 0 above: the lower nose's protection stops there."""
    base = points[list(NOSE_BASE)].astype(np.float32) + (points[1] - points[2]).astype(np.float32) * lift
    across = base[-1] - base[0]
    across /= max(float(np.linalg.norm(across)), 1e-3)
    down = np.array([-across[1], across[0]], np.float32)
    if float(np.dot(points[152] - base.mean(0), down)) < 0:  # toward the chin
        down = -down
    far = 4.0 * face_width(points)
    poly = np.vstack([base[0] - across * far, base, base[-1] + across * far,
                      base[-1] + (across + down) * far, base[0] + (down - across) * far])
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(poly * 16).astype(np.int32)], 255, lineType=cv2.LINE_8, shift=4)
    return cv2.LUT(mask, UNIT)


def lower_nose(points: np.ndarray, shape: tuple[int, int], grow: float = 0.02) -> np.ndarray:
    """The lower nose, tip to nostrils, grown by `grow` of the face's width but not past its base: the nostrils
    are always face, the moustache or shadow under them is not."""
    return protected(points, shape, (NOSE,), grow) * (1.0 - below_nose(points, shape))


class Likely(NamedTuple):
    """How much each pixel of a face crop looks like this face's skin, with what that was worked out from."""

    prob: np.ndarray  # (H, W) float32 0..1, closed over specks and softened
    lab: np.ndarray  # the crop in LAB (to_lab)
    model: SkinModel


def likely_skin(image: np.ndarray, points: np.ndarray, model: SkinModel | None = None) -> Likely | None:
    """The skin likelihood of a face crop under `model` followed toward this crop's own sample (a fresh model
    when `model` is None); None when no model can be fitted."""
    shape = image.shape[:2]
    lab = to_lab(image)
    detail = detail_map(lab, shape[0] / 256.0)
    fresh = fit(lab, detail, sample_mask(points, shape))
    model = fresh if model is None else (model if fresh is None else blend(model, fresh, 0.7))
    if model is None:
        return None
    return Likely(clean(likelihood(lab, detail, model), shape[0]), lab, model)


def with_features(prob: np.ndarray, points: np.ndarray) -> np.ndarray:
    """A skin likelihood with the face's own parts that are not skin-coloured kept as face: the lower nose down
    to its base, the eyelids just around each eye (lashes and shadow; glasses rims sit further out) and the brows
    unless the skin around them is hidden too (then they are under a fringe or a hat, and what lies there is
    hair, not brows)."""
    shape = prob.shape[:2]
    keep = np.maximum(lower_nose(points, shape), protected(points, shape, (RIGHT_EYE, LEFT_EYE), grow=0.025))
    brows = protected(points, shape, BROWS)
    if not covered(prob, brows, max(2, int(face_width(points) * 0.05))):
        keep = np.maximum(keep, brows)
    return np.maximum(prob, keep)


def skin_mask(
    image: np.ndarray, points: np.ndarray, model: SkinModel | None = None
) -> tuple[np.ndarray, SkinModel | None]:
    """Soft skin mask of a face crop (1 = this face's skin, its nose or brows) and the model it used."""
    found = likely_skin(image, points, model)
    if found is None:
        return np.ones(image.shape[:2], np.float32), None
    return with_features(found.prob, points), found.model
