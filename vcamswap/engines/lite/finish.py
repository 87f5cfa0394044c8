"""The lite engine's finish: its output made final in the camera's crop.

The engine says where its crop is the source's skin (SwapOutput.skin), which camera features are laid back over
it (SwapOutput.features) and how the camera's crop moves around a reshaped face (SwapOutput.warp): lighting and
tone come from the camera's skin pixels only (engines.lite.relight), the camera's occluders (compose.occlusion) show
through, and the camera's eyes and lips are drawn over the skin.
"""

from __future__ import annotations

import cv2
import numpy as np

from vcamswap.compose.align import support
from vcamswap.compose.blend import color_match
from vcamswap.compose.occlusion import Occluder
from vcamswap.compose.skin import BROWS, EYES_AND_LIPS, UNIT, face_width, polygon, protected
from vcamswap.engines.lite.photo_skin import under_nose
from vcamswap.engines.lite.relight import (
    GRID,
    SIGMA,
    Keep,
    dark_patch_gain,
    relight_gain,
    soften_like,
    weighted_mean,
    with_gain,
)
from vcamswap.engines.lite.warp import moved_points, warped_crop
from vcamswap.faces.landmarks import LEFT_EYE, LEFT_EYEBROW, RIGHT_EYE, RIGHT_EYEBROW
from vcamswap.presets import Preset
from vcamswap.types import FeatureLayer, SwapOutput

LIGHT_SIZE = 2 * GRID  # where the relight's weights are worked out
# The eyes, brows and the camera's features laid over the skin are left as they are by the dark patches' lift, grown
# by this share of the face's width: lifting the lids' surroundings toward the camera's skin changed how a shut eye
# reads (dlib's blink correlation at likeness 1: 0.19 with the outlines alone spared, 0.92 grown, 0.83 unlifted).
EYES_AND_BROWS = (RIGHT_EYE, LEFT_EYE, *BROWS)
SPARE_GROW = 0.08
NEAR_EYES = 0.12  # of the face's width: the features laid over the skin this near an eye are its lids


def finish(
    out: SwapOutput,
    crop: np.ndarray,
    preset: Preset,
    points: np.ndarray | None = None,
    occlusion: Occluder | None = None,
    camera_points: np.ndarray | None = None,
) -> SwapOutput:
    """The lite output made final in the crop: the skin given the camera's colour (when the preset asks),
    the camera's own features laid over it, and what is in front of the camera's face kept in front.

    With the source's skin (`out.skin`) and the camera's points in the crop, lighting and tone come from the
    camera's skin pixels only and the camera's occluders show through; without them the whole face's colour
    statistics are matched and the occluders still show through. `occlusion` None: nothing is kept in front.
    `camera_points`: where the camera's own features are in `crop` when that is not `points` (a moved crop:
    `points` are the face laid over it).
    """
    if out.warp is not None and points is not None:
        return finish_moved(out, crop, preset, points, occlusion)
    layer = out.features
    holes = np.zeros(out.mask.shape, np.float32) if layer is None else layer.alpha
    skin = out.crop
    mask = out.mask
    if out.skin is not None and points is not None:
        own = points if camera_points is None else camera_points
        cam = occlusion(crop, own) if occlusion is not None else np.ones(mask.shape, np.float32)
        if preset.color_match:
            # Skin on both sides only: not the eyes, lips or brows, not hair, glasses or what is in front.
            # The weights only feed a low-pass: they are worked out at LIGHT_SIZE, not the crop's size.
            def small(a: np.ndarray) -> np.ndarray:
                return cv2.resize(a, (LIGHT_SIZE, LIGHT_SIZE), interpolation=cv2.INTER_AREA)

            # Above likeness 0 the eyes and lips on both sides are the source's or fading: left out of both too.
            regions = BROWS if preset.likeness <= 0.0 else (*BROWS, *EYES_AND_LIPS)
            brows = protected(points * (LIGHT_SIZE / mask.shape[0]), (LIGHT_SIZE, LIGHT_SIZE), regions)
            plain = small(out.mask) * (1.0 - small(holes)) * (1.0 - brows)
            w_src, w_cam = plain * small(out.skin), small(cam)
            if camera_points is not None:  # the camera's own brows (eyes, lips) are not its skin either
                w_cam = w_cam * (1.0 - protected(own * (LIGHT_SIZE / mask.shape[0]), (LIGHT_SIZE,) * 2, regions))
            # Both sides reduced once, for the tone's gap and the relight's low-pass alike.
            reduced = small(skin), small(crop)
            sigma, keep = toward_source(out, preset, *reduced, w_src, plain * w_cam)
            gain = relight_gain(*reduced, w_src, plain * w_cam, sigma, keep)
            # One pass over the crop for both gains: the dark patches are found on the relit skin's reduced copy.
            gain = cv2.resize(gain, (LIGHT_SIZE, LIGHT_SIZE), interpolation=cv2.INTER_LINEAR)
            at_light = points * (LIGHT_SIZE / mask.shape[0])
            gain *= dark_patch_gain(reduced[0] * gain, reduced[1], w_src * w_cam, *spared(at_light, small(holes)))
            skin = with_gain(skin, gain, support(out.mask, 2))
            skin = soften_like(skin, crop, w_src * w_cam, brow_mask(points, mask.shape[0]))
        # The camera's eyes and lips are drawn whatever lies around them; elsewhere the camera shows where
        # the source is not skin or something is in front of the camera's face.
        mask = (out.mask * np.maximum(holes, out.skin * cam)).astype(np.float32)
    else:
        if preset.color_match:
            skin = color_match(skin, crop, out.mask * (1.0 - holes))
        if occlusion is not None:  # without the camera's points: kept in front as for the neural engines
            mask = (mask * occlusion(crop, points)).astype(np.float32)
    if layer is None:
        return SwapOutput(skin, mask)
    return SwapOutput(lay_features(skin, layer), mask)


def spared(points: np.ndarray, holes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(where the dark patches' lift leaves the skin as it is, where it allows no darker patch at all) at the size of
    `holes` (the features laid over the skin), `points` in its pixels: the eyes, brows and features grown by
    SPARE_GROW; the band under the nose, which is never spared."""
    shape = holes.shape[:2]
    # The eyes with what is laid over them (the camera's lids while its eyes shut) are grown; the lips are not: grown,
    # their spare covered the cheeks beside the mouth, where a photo's shadowed jaw lands.
    near_eyes = protected(points, shape, (RIGHT_EYE, LEFT_EYE), grow=NEAR_EYES)
    eyes = np.maximum(protected(points, shape, EYES_AND_BROWS), holes * near_eyes)
    r = max(1, int(round(face_width(points) * SPARE_GROW)))
    grown = cv2.dilate(eyes, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    strict = under_nose(points, shape)
    return np.maximum(grown, holes) * (1.0 - strict), strict


def brow_mask(points: np.ndarray, size: int) -> np.ndarray:
    """The brows (FaceMesh's outlines sit inside the hair: grown a little), softened: where the swap's skin is
    softened less (engines.lite.relight.BROW_SOFTEN). Worked out in the brows' box only."""
    grow, blur = max(1, int(round(face_width(points) * 0.02))), max(1.0, size / 128)
    pad = grow + int(np.ceil(3 * blur)) + 2
    brows = points[list(RIGHT_EYEBROW) + list(LEFT_EYEBROW)]
    x0, y0 = np.maximum(np.floor(brows.min(0)).astype(int) - pad, 0)
    x1, y1 = np.minimum(np.ceil(brows.max(0)).astype(int) + pad, size)
    out = np.zeros((size, size), np.float32)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return out
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    for brow in BROWS:
        cv2.fillPoly(mask, [polygon(points, brow) - np.array([x0, y0]) * 16], 255, shift=4)
    mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))
    out[y0:y1, x0:x1] = cv2.GaussianBlur(cv2.LUT(mask, UNIT), (0, 0), blur)
    return out


# At likeness 1 the relight's low-pass is this many times coarser and this share of the source's own shading stays
# (its cheekbones, the nose's sides). Not more: a photo's patchy stubble or a beard's shadow at a cheek's edge
# (filled, but darker than the cheek) then shows as a dark wedge on the camera's face; dlib's identity measured the
# same with the camera's shading (see docs/lite.md).
COARSE_AT_LIKENESS = 2.5
SHADING_KEPT = 0.5


# The source's overall skin tone is kept in full only while it is within TONE_NEAR delta E of the camera's, and
# not at all past TONE_FAR: a pale face on a dark camera face (or the reverse) reads as a mask, its neck and ears
# another colour. Its shading (cheekbones, the nose's sides) stays whatever the gap.
TONE_NEAR, TONE_FAR = 4.0, 12.0


def tone_gap(src: np.ndarray, cam: np.ndarray, w_src: np.ndarray, w_cam: np.ndarray) -> tuple[float, np.ndarray]:
    """(CIE76 delta E between the two sides' mean skin colours, the camera's mean over the source's per BGR)."""
    a, b = weighted_mean(src, w_src), weighted_mean(cam, w_cam)
    lab = cv2.cvtColor(np.clip(np.stack([a, b])[None] / 255.0, 0, 1).astype(np.float32), cv2.COLOR_BGR2LAB)[0]
    return float(np.linalg.norm(lab[0] - lab[1])), ((b + 4.0) / (a + 4.0)).astype(np.float32)


def toward_source(
    out: SwapOutput, preset: Preset, src: np.ndarray, cam: np.ndarray, w_src: np.ndarray, w_cam: np.ndarray
) -> tuple[float, Keep | None]:
    """The relight's scale and how much of the source's light stays, at the preset's likeness: the source's
    shading and (as far as the tone gap allows) its tone in the middle of the face, the camera's toward the
    outline."""
    like = float(np.clip(preset.likeness, 0.0, 1.0))
    if like <= 0.0:
        return SIGMA, None
    small = cv2.resize(out.mask, (GRID, GRID), interpolation=cv2.INTER_AREA)
    middle = np.clip((cv2.GaussianBlur(small, (0, 0), 2.0) - 0.55) / 0.35, 0.0, 1.0)
    gap, mean_gain = tone_gap(src, cam, w_src, w_cam)
    allowed = float(np.clip((TONE_FAR - gap) / (TONE_FAR - TONE_NEAR), 0.0, 1.0))
    shading = (SHADING_KEPT * middle * like).astype(np.float32)
    return SIGMA * (1.0 + (COARSE_AT_LIKENESS - 1.0) * like), Keep(shading, shading * allowed, mean_gain)


def finish_moved(
    out: SwapOutput, crop: np.ndarray, preset: Preset, points: np.ndarray, occlusion: Occluder | None
) -> SwapOutput:
    """finish for an output that moves the camera's crop (types.Warp): the face is finished against the moved
    crop and laid over it, and the moved crop shows as far as the move reaches.

    The camera's occluders are found on the moved crop with the camera's own points where the move put them, not
    the face's: the field is smooth, so the camera's brows and lid creases land between its eyes and the face's
    brows, outside the face's brow and eye outlines, and were taken for something in front of the face (the
    camera's brow showed as a dark band between the source's eye and brow)."""
    assert out.warp is not None
    backdrop, reach = warped_crop(crop, out.warp)
    own = moved_points(points, out.warp, crop.shape[0])
    done = finish(out._replace(warp=None), backdrop, preset, out.warp.points, occlusion, own)
    box = support(done.mask)
    face = backdrop if backdrop is not crop else crop.copy()  # the moved crop is this call's own: drawn on
    if box.x1 > box.x0:  # the face over the moved crop, where it shows: done.mask is 0 elsewhere
        r, alpha = box.region, done.mask[box.region]
        face[r] = cv2.blendLinear(done.crop[r], backdrop[r], alpha, 1.0 - alpha)
    return SwapOutput(face, np.maximum(reach, done.mask))


def lay_features(skin: np.ndarray, layer: FeatureLayer) -> np.ndarray:
    """skin * (1 - alpha) + each part's camera pixels * its mask, worked out in each part's box only: elsewhere
    alpha is 0 and the skin stays as it is."""
    out = skin.copy()
    for _, mask in layer.parts:
        box = support(mask)
        if box.x1 == box.x0:
            continue
        r = box.region
        img = skin[r].astype(np.float32) * (1.0 - layer.alpha[r][..., None])
        for moved, part in layer.parts:  # parts may overlap: each box sums all of them
            img += moved[r].astype(np.float32) * part[r][..., None]
        out[r] = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    return out
