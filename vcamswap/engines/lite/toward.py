"""The lite swap at a likeness above 0 (engines.lite.likeness): the source's shape posed and animated by the
camera, the source's eyes and lips shown in proportion, the camera's mouth interior inside the opening."""

from __future__ import annotations

import cv2
import numpy as np

from vcamswap.compose.align import Box, support
from vcamswap.compose.blend import feather_width
from vcamswap.compose.skin import UNIT, face_width
from vcamswap.engines.lite.likeness import INNER_LIPS, Neutral, mouth_opening, target_points, warp_of
from vcamswap.engines.lite.masks import (
    FEATURES,
    feature_box,
    feature_mask,
    oval_mask,
    shifted,
    trusted,
    turn_weight,
)
from vcamswap.engines.lite.mesh import (
    mesh_box,
    mesh_maps,
    rasterize_indices,
    triangle_affines,
    trust_blur,
)
from vcamswap.engines.lite.source import LiteSource
from vcamswap.faces.landmarks import LEFT_EYE, LIPS_OUTER, RIGHT_EYE
from vcamswap.presets import Preset
from vcamswap.types import FaceGeometry, FeatureLayer, SwapOutput

# A frontal photo's shape, posed by a similarity, fits a frontal face; toward a three-quarter view the camera's nose
# and cheek stick out past it (a second nose beside the source's). From where the nose tip sits between the
# outline points (0.5 frontal) the likeness is whole down to FRONTAL_FULL and the camera's shape at FRONTAL_NONE.
FRONTAL_FULL, FRONTAL_NONE = 0.22, 0.12


def frontal(points: np.ndarray) -> float:
    left, right = float(points[234, 0]), float(points[454, 0])
    across = (float(points[1, 0]) - left) / max(right - left, 1e-3)
    side = min(across, 1.0 - across)
    w = float(np.clip((side - FRONTAL_NONE) / (FRONTAL_FULL - FRONTAL_NONE), 0.0, 1.0))
    return w * w * (3 - 2 * w)


def own_box(shaped: np.ndarray, size: int, box: Box) -> Box:
    """Where the photo's own eyes and lips can show: their points' box grown by a third of the face's width
    (past the mask's growth and blur in source_features), within the mesh's box."""
    b = mesh_box(shaped[OWN_POINTS], size, int(face_width(shaped) * 0.3) + 2)
    x0, y0, x1, y1 = max(b.x0, box.x0), max(b.y0, box.y0), min(b.x1, box.x1), min(b.y1, box.y1)
    return Box(x0, y0, x1, y1) if x1 - x0 >= 2 and y1 - y0 >= 2 else box


OWN_POINTS = np.array(sorted(set(RIGHT_EYE) | set(LEFT_EYE) | set(LIPS_OUTER)))
EYES, OUTER_LIPS = np.array(RIGHT_EYE + LEFT_EYE), np.array(LIPS_OUTER)

# Whose eyes show: the camera's below EYES_FROM, the source's above EYES_TO, a short smoothstep between (none of
# the tray's steps, 0 / 0.25 / 0.5 / 0.75 / 1, falls in it). Mixed in proportion to the likeness, the camera's eye
# and lids sat under the source's lids and lashes: two lid lines, read as eye shadow. The lips still follow the
# likeness itself (the camera's mouth interior shows inside the opening whoever's lips show).
EYES_FROM, EYES_TO = 0.35, 0.45


def eyes_owner(likeness: float) -> float:
    """How much of the source's own eyes show at `likeness` (the camera's show as 1 minus this)."""
    w = float(np.clip((likeness - EYES_FROM) / (EYES_TO - EYES_FROM), 0.0, 1.0))
    return w * w * (3 - 2 * w)


# A blink: the source's open eye squeezed by the lids' points still shows its iris as a dark slit, and FaceMesh's
# lids close only part of the way (a shut eye measures about 0.7 of open). So while the camera's eyes close, the
# camera's own lids show in their place: fully at BLINK_SHUT of the open eye's opening, none above BLINK_OPEN.
BLINK_OPEN, BLINK_SHUT = 0.88, 0.72


def eyes_shown(likeness: float, openness: float) -> float:
    """How much of the source's own eyes show at `likeness` while the camera's eyes are `openness` of open."""
    w = float(np.clip((BLINK_OPEN - openness) / (BLINK_OPEN - BLINK_SHUT), 0.0, 1.0))
    return eyes_owner(likeness) * (1.0 - w * w * (3 - 2 * w))


def own_weights(shaped: np.ndarray, size: int, likeness: float, eyes: float) -> np.ndarray:
    """(size, 1): per row of the crop, how much of the photo's own features show: the eyes' share above the
    middle between the eyes and the lips, the likeness below it (the crop is upright: rows part them)."""
    low = float(shaped[EYES, 1].max())
    lips = float(shaped[OUTER_LIPS, 1].min())
    rows = np.full((size, 1), likeness, np.float32)
    rows[: int(np.clip(round((low + lips) / 2), 0, size))] = eyes
    return rows


def mouth_inside(crop: np.ndarray, dst: np.ndarray, shaped: np.ndarray, box: Box) -> np.ndarray:
    """The camera's crop with, in `box`, its mouth interior (teeth, tongue) mapped from the camera's inner lips onto
    the reshaped ones by one affine map. The smooth field that moves the frame is too coarse there: between a
    source's lips a few pixels from the camera's it sampled the camera's lips, and a mouth open as wide as the
    camera's showed as a flat dark slit."""
    m, _ = cv2.estimateAffine2D(shaped[INNER_LIPS], dst[INNER_LIPS], method=cv2.LMEDS)
    out = crop.copy()
    if m is None or box.x1 - box.x0 < 2 or box.y1 - box.y0 < 2:
        return out
    a = np.asarray(m, np.float64)
    a = np.hstack([a[:, :2], a[:, 2:] + a[:, :2] @ np.array([[box.x0], [box.y0]], np.float64)])  # the box's grid
    dsize = (box.x1 - box.x0, box.y1 - box.y0)
    out[box.region] = cv2.warpAffine(crop, a, dsize, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                     borderMode=cv2.BORDER_REPLICATE)
    return out


def own_photo(
    texture: np.ndarray, maps: tuple[np.ndarray, np.ndarray], box: Box, near: Box
) -> tuple[Box, np.ndarray]:
    """(where, the photo's own features warped there): `near`, within the mesh's `box` whose `maps` are given; the
    whole crop if the photo's first pixel (what an uncovered pixel shows) is part of a feature."""
    rows, cols = slice(near.y0 - box.y0, near.y1 - box.y0), slice(near.x0 - box.x0, near.x1 - box.x0)
    photo = cv2.remap(texture, maps[0][rows, cols], maps[1][rows, cols], cv2.INTER_LINEAR,
                      borderMode=cv2.BORDER_REPLICATE)
    if texture[0, 0, 3] == 0:
        return near, photo
    size = texture.shape[0]
    return Box(0, 0, size, size), near.paste(photo, size, texture[0, 0].tolist())


def swap_toward_source(
    crop: np.ndarray, face: FaceGeometry, source: LiteSource, preset: Preset, neutral: Neutral
) -> SwapOutput:
    assert face.points is not None
    size = crop.shape[0]
    src_pts = source.points * size
    dst_pts = face.points.astype(np.float32)
    likeness = float(np.clip(preset.likeness, 0.0, 1.0)) * frontal(dst_pts)
    shaped, shifts = target_points(dst_pts, src_pts, source.blend, likeness, neutral)
    box = mesh_box(shaped, size, max(feather_width(size, preset.mask_feather), trust_blur(size) // 2) + 2)
    index = rasterize_indices(shaped, source.triangles, size, box)
    affines = triangle_affines(shaped, src_pts, source.triangles)
    maps = mesh_maps(index, affines, box, size)  # shared by the skin's warp and the photo's
    texture = source.texture_at(size, moved=True)
    warped = cv2.remap(texture, maps[0], maps[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    # Colour and skin split in the box, the rest of the crop filled as the whole crop's warp fills it: the
    # texture's first pixel.
    corner = texture[0, 0]
    skin = box.paste(cv2.cvtColor(warped, cv2.COLOR_BGRA2BGR), size, corner[:3].tolist())
    src_skin = box.paste(cv2.LUT(cv2.extractChannel(warped, 3), UNIT), size, float(UNIT[corner[3]]))
    # The photo as it is and where its own eyes and lips are: warped only in those features' box, and worked out
    # there only (its features' mask is 0 elsewhere).
    near, photo = own_photo(source.own_at(size), maps, box, own_box(shaped, size, box))
    eyes = eyes_shown(likeness, neutral.eyes_open)
    own = cv2.LUT(cv2.extractChannel(photo, 3), UNIT) * own_weights(shaped, size, likeness, eyes)[near.y0:near.y1]
    b = support(own)  # blended in there only
    if b.x1 > b.x0:
        r, w = b.region, np.ascontiguousarray(own[b.region])
        at = Box(near.x0 + b.x0, near.y0 + b.y0, near.x0 + b.x1, near.y0 + b.y1).region
        skin[at] = cv2.blendLinear(cv2.cvtColor(photo[r], cv2.COLOR_BGRA2BGR), skin[at], w, 1.0 - w)
    src_skin[near.region] = np.maximum(src_skin[near.region], own)
    warp = warp_of(dst_pts, shaped, size, likeness)
    # The camera's eyes and lips fade out as the source's come in; the camera's mouth interior stays inside the
    # opening, taken from the camera's crop moved by the same field as the frame around the face.
    inside = mouth_opening(shaped, size) * likeness
    parts = [(mouth_inside(crop, dst_pts, shaped, support(inside, 1)), inside)]
    for f, (dx, dy) in zip(FEATURES, shifts, strict=True):
        lips = f is FEATURES[-1]
        keep = 1.0 - (likeness if lips else eyes)
        if keep <= 0.0:  # the camera's feature is gone: not worked out at all
            continue
        m = feature_mask(shaped, f, size) * keep
        m = m * (1.0 - inside) if lips else m  # the lips: not over the mouth's opening
        parts.append((shifted(crop, dx, dy, feature_box(shaped, f, size)), m))
    holes = np.clip(sum((m for _, m in parts[1:]), parts[0][1]), 0.0, 1.0)
    outer = np.minimum(oval_mask(shaped, size, preset.mask_feather, box), trusted(index, affines, holes, box))
    outer = box.paste(outer, size) * turn_weight(dst_pts)
    return SwapOutput(skin, outer, FeatureLayer(holes, tuple(parts)), src_skin, warp)
