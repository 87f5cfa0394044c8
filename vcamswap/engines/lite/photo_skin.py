"""What of a source photo is its skin: the stricter pass a still photo affords (analysed once, never a frame).

A photo pays for a strand kept as skin with a stripe over the camera's face and for skin taken as hair with
nothing (the camera's face shows there), so on top of the colour-and-detail model every face shares
(compose.skin) it drops what has hair's texture away from the features, keeps only confident skin connected to
the sampled cheeks, and hands its nostrils' shadow to the camera.
"""

from __future__ import annotations

import cv2
import numpy as np

from vcamswap.compose.skin import (
    BROWS,
    EYES_AND_LIPS,
    NOSE_BASE,
    UNIT,
    SkinModel,
    face_width,
    likely_skin,
    lower_nose,
    oval,
    polygon,
    protected,
    sample_mask,
    with_features,
)

# The upper lip's outer edge (left to right): with compose.skin.NOSE_BASE it closes the band under the nose.
UPPER_LIP: tuple[int, ...] = (291, 409, 270, 269, 267, 0, 37, 39, 40, 185, 61)


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


def without_islands(mask: np.ndarray, seeds: np.ndarray, min_area: float, curls: np.ndarray) -> np.ndarray:
    """The parts of a binary mask that touch `seeds`, or are large and plain: skin-coloured specks and
    highlights in curly hair drop out, a forehead cut off from the cheeks by glasses stays."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8))
    plain = np.bincount(labels.ravel(), curls.ravel(), n) / np.maximum(stats[:, cv2.CC_STAT_AREA], 1) < CURL_PLAIN
    keep = (stats[:, cv2.CC_STAT_AREA] >= min_area) & plain
    keep[np.unique(labels[(seeds > 0) & (mask > 0)])] = True
    keep[0] = False
    return keep[labels]


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


def photo_skin_mask(image: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, SkinModel | None]:
    """compose.skin.skin_mask for a still photo: its likelihood made strict (a second texture test catches curls
    and locks whose colour passes for skin, light brown hair on light skin) before the features are kept."""
    found = likely_skin(image, points)
    if found is None:
        return np.ones(image.shape[:2], np.float32), None
    curls = curl_ratio(found.lab, points, image.shape[0] / 256.0)
    return with_features(strict(found.prob, points, curls), points), found.model
