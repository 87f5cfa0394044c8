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
# The nose's base along the nostrils' lower edge (subject's right to left) and the upper lip's outer edge (left to
# right): between them a moustache, stubble or a nostril's shadow grows, which is not the nose and is decided
# by colour and texture like the rest of the face.
NOSE_BASE: tuple[int, ...] = (64, 98, 97, 2, 326, 327, 294)
UPPER_LIP: tuple[int, ...] = (291, 409, 270, 269, 267, 0, 37, 39, 40, 185, 61)
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


def curl_ratio(lab: np.ndarray, points: np.ndarray, scale: float) -> np.ndarray:
    """Local energy of the lightness at the scale of curls, locks and beard patches (a few pixels to a tenth of
    the face), relative to this face's sampled cheeks: high on hair of any colour, about 1 on skin, whose
    shading is broader and whose pores are finer."""
    lum = lab[..., 0]
    band = np.abs(cv2.GaussianBlur(lum, (0, 0), 1.5 * scale) - cv2.GaussianBlur(lum, (0, 0), 5.0 * scale))
    curls = cv2.GaussianBlur(band, (0, 0), 4.0 * scale)
    sampled = curls[sample_mask(points, lab.shape[:2]) > 0]
    return (curls / max(float(np.median(sampled)) if sampled.size else 1.0, 1.0)).astype(np.float32)


# A still photo's pixel whose curl ratio passes CURL_NEAR counts less as skin, from CURL_FAR not at all;
# wrinkles and freckles stay well below. A patch of skin cut off from the cheeks (a forehead between curls or
# above glasses) is kept only while its mean ratio stays under CURL_PLAIN: plain skin, not hair's highlights.
CURL_NEAR, CURL_FAR, CURL_PLAIN = 2.5, 4.0, 1.3


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


def without_islands(mask: np.ndarray, seeds: np.ndarray, min_area: float, curls: np.ndarray) -> np.ndarray:
    """The parts of a binary mask that touch `seeds`, or are large and plain: skin-coloured specks and
    highlights in curly hair drop out, a forehead cut off from the cheeks by glasses stays."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8))
    plain = np.bincount(labels.ravel(), curls.ravel(), n) / np.maximum(stats[:, cv2.CC_STAT_AREA], 1) < CURL_PLAIN
    keep = (stats[:, cv2.CC_STAT_AREA] >= min_area) & plain
    keep[np.unique(labels[(seeds > 0) & (mask > 0)])] = True
    keep[0] = False
    return keep[labels]


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


NOSTRIL_SIGMA, NOSTRIL_NEAR, NOSTRIL_FAR = 0.004, 0.0, 8.0  # the hole's softening (of the size) and its ramp


def nostrils(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """0..1 where the lower nose (and a little around it) is darker than the skin around it: the nostrils and the
    shadow under and beside a nose lit from one side or below. A photo's are shaped by its own light and nose;
    drawn over a camera's nose they sit beside the camera's own and read as a dark blob under it."""
    size = image.shape[0]
    lum = image.astype(np.float32).mean(2)
    patch = cv2.GaussianBlur(lum, (0, 0), 0.008 * size)
    around = cv2.GaussianBlur(lum, (0, 0), 0.04 * size)
    dark = np.clip((around - patch - NOSTRIL_NEAR) / (NOSTRIL_FAR - NOSTRIL_NEAR), 0.0, 1.0)
    hole = dark * lower_nose(points, image.shape[:2], 0.05)
    return cv2.GaussianBlur(hole, (0, 0), NOSTRIL_SIGMA * size)


def under_nose(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """1 from the nose's base down to the upper lip's outer edge (0..1, float32)."""
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [polygon(points, NOSE_BASE + UPPER_LIP)], 255, lineType=cv2.LINE_8, shift=4)
    return cv2.LUT(mask, UNIT)


def near_features(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Around the eyes, brows, nose and lips: where the likeness lives and a still photo's mask is lenient. Not
    the band under the nose: a moustache or stubble there has the colour of a shadow and hair's texture."""
    near = np.maximum(protected(points, shape, (*EYES_AND_LIPS, *BROWS), grow=0.08), lower_nose(points, shape, 0.08))
    return (near > 0.5) & (under_nose(points, shape) < 0.5)


def strict(prob: np.ndarray, points: np.ndarray, curls: np.ndarray) -> np.ndarray:
    """A stricter skin mask for a still photo, where losing some skin costs nothing (the camera's face shows
    there) and keeping a strand costs a stripe: only confident skin connected to the sampled cheeks, pulled
    back from every edge, softened.

    Away from the features, what has hair's texture (`curls`, see curl_ratio) does not count as skin, and a
    patch it cuts off from the cheeks is kept only while plain: skin-coloured curls over a forehead drop out,
    a forehead above glasses stays. Near the features (brows, lashes, nostrils have that texture too and carry
    the likeness) only colour decides, and the mask is pulled back half as far: light hair next to skin (a
    fringe's edge, a tuft on the forehead) is where a strand passes for skin."""
    shape = prob.shape
    area = float(cv2.countNonZero(oval(points, shape)))
    seeds = sample_mask(points, shape)
    features = near_features(points, shape)
    hairy = np.clip((curls - CURL_NEAR) / (CURL_FAR - CURL_NEAR), 0.0, 1.0)
    textured = prob * (1.0 - hairy) > 0.6
    # Patches that only hair's texture separates from the cheeks, and that are not plain, drop out everywhere.
    cut_off = textured & ~without_islands(textured, seeds, 0.03 * area, curls)
    confident = (np.where(features, prob > 0.6, textured)) & ~cut_off
    sure = without_islands(confident, seeds, 0.03 * area, curls).astype(np.uint8)
    r = max(1, int(round(face_width(points) * 0.015)))
    near = cv2.erode(sure, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    far = cv2.erode(sure, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (6 * r + 1, 6 * r + 1)))
    kept = np.where(features, near, far).astype(np.float32)
    return cv2.GaussianBlur(kept, (0, 0), r)


def skin_mask(
    image: np.ndarray, points: np.ndarray, model: SkinModel | None = None, still: bool = False
) -> tuple[np.ndarray, SkinModel | None]:
    """Soft skin mask of a face crop (1 = this face's skin, its nose or brows) and the model it used."""
    shape = image.shape[:2]
    scale = shape[0] / 256.0
    lab = to_lab(image)
    detail = detail_map(lab, scale)
    fresh = fit(lab, detail, sample_mask(points, shape))
    model = fresh if model is None else (model if fresh is None else blend(model, fresh, 0.7))
    if model is None:
        return np.ones(shape, np.float32), None
    prob = clean(likelihood(lab, detail, model), shape[0])
    if still:
        # A photo is analysed once: it can afford a second texture test, which catches curls and locks
        # whose colour passes for skin (light brown hair on light skin).
        curls = curl_ratio(lab, points, scale)
        prob = strict(prob, points, curls)
    # The lower nose down to its base, and the eyelids just around each eye (lashes and shadow, not skin-coloured,
    # yet the face: glasses rims sit further out).
    keep = np.maximum(lower_nose(points, shape), protected(points, shape, (RIGHT_EYE, LEFT_EYE), grow=0.025))
    brows = protected(points, shape, BROWS)
    # Brows count as face unless the skin around them is hidden too: then they are under a fringe or a hat,
    # and what lies there is hair, not brows.
    if not covered(prob, brows, max(2, int(face_width(points) * 0.05))):
        keep = np.maximum(keep, brows)
    return np.maximum(prob, keep), model
