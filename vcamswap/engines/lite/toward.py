"""The lite swap at a likeness above 0 (engines.lite.likeness): the source's shape posed and animated by the
camera, the source's eyes and lips shown in proportion, the camera's mouth interior inside the opening."""

from __future__ import annotations

import cv2
import numpy as np

from vcamswap.compose.align import support
from vcamswap.compose.blend import feather_width
from vcamswap.compose.skin import UNIT
from vcamswap.compose.warp import field_at, moved
from vcamswap.engines.lite.likeness import Neutral, mouth_opening, target_points, warp_of
from vcamswap.engines.lite.masks import FEATURES, feature_box, feature_mask, oval_mask, shifted, turn_weight
from vcamswap.engines.lite.mesh import (
    mesh_box,
    mesh_warp,
    rasterize_indices,
    texture_trust,
    triangle_affines,
    trust_blur,
)
from vcamswap.engines.lite.source import LiteSource
from vcamswap.presets import Preset
from vcamswap.types import FaceGeometry, FeatureLayer, SwapOutput


def swap_toward_source(
    crop: np.ndarray, face: FaceGeometry, source: LiteSource, preset: Preset, neutral: Neutral
) -> SwapOutput:
    assert face.points is not None
    likeness = float(np.clip(preset.likeness, 0.0, 1.0))
    size = crop.shape[0]
    src_pts = source.points * size
    dst_pts = face.points.astype(np.float32)
    shaped, shifts = target_points(dst_pts, src_pts, source.blend, likeness, neutral)
    box = mesh_box(shaped, size, max(feather_width(size, preset.mask_feather), trust_blur(size) // 2) + 2)
    index = rasterize_indices(shaped, source.triangles, size, box)
    affines = triangle_affines(shaped, src_pts, source.triangles)
    warped = mesh_warp(source.wide_at(size), src_pts, shaped, source.triangles, index, affines, box)
    # Channels: the skin texture, its mask, the photo as it is, where the photo's own eyes and lips are.
    own = cv2.LUT(np.ascontiguousarray(warped[..., 7]), UNIT) * likeness
    skin = np.ascontiguousarray(warped[..., :3])
    r = support(own).region  # the photo's own eyes and lips: blended in there only
    skin[r] = np.clip(skin[r] * (1.0 - own[r][..., None]) + warped[r][..., 4:7] * own[r][..., None] + 0.5, 0, 255)
    src_skin = np.maximum(cv2.LUT(np.ascontiguousarray(warped[..., 3]), UNIT), own)
    outer = np.minimum(oval_mask(shaped, size, preset.mask_feather, box), texture_trust(index, affines, size))
    outer = box.paste(outer, size) * turn_weight(dst_pts)
    warp = warp_of(dst_pts, shaped, size, likeness)
    # The camera's eyes and lips fade out as the source's come in; the camera's mouth interior stays inside the
    # opening, taken from the camera's crop moved by the same field as the frame around the face.
    masks = [feature_mask(shaped, f, size) * (1.0 - likeness) for f in FEATURES]
    parts = [(shifted(crop, dx, dy, feature_box(shaped, f, size)), m)
             for f, m, (dx, dy) in zip(FEATURES, masks, shifts, strict=True)]
    inside = mouth_opening(shaped, size) * likeness
    interior = moved(crop, field_at(warp, size), support(inside, 1))
    parts[2] = (parts[2][0], masks[2] * (1.0 - inside))
    parts.append((interior, inside))
    holes = np.clip(sum((m for _, m in parts[1:]), parts[0][1]), 0.0, 1.0)
    return SwapOutput(skin, outer, FeatureLayer(holes, tuple(parts)), src_skin, warp)
