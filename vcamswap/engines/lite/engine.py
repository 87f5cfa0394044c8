"""The embedded `lite` engine: a FaceMesh-driven triangle-mesh warp of the source face onto the target.

Everything happens in the aligned crop. The source photo is analysed once: its texture is aligned to the
same template and its mesh triangulated. Per frame, one piecewise-affine map (target triangle -> source
triangle) is built for the whole crop and applied with a single cv2.remap, so the cost does not grow with
the number of triangles drawn. The target's eyes and lips are left out of the mask, so blinks
and speech come through; skin colour is matched by compose before they are laid back. The parts: source.py
(the source face), mesh.py (the warp), masks.py (where the swap shows), toward.py (a likeness above 0).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from vcamswap.compose.blend import feather_width
from vcamswap.compose.occlusion import Occluder
from vcamswap.compose.parsing import FaceParser, installed_parser
from vcamswap.compose.skin import UNIT
from vcamswap.engines import SwapItem
from vcamswap.engines.lite.finish import finish
from vcamswap.engines.lite.likeness import Neutral
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
    mesh_warp,
    rasterize_indices,
    triangle_affines,
    triangulate,
    trust_blur,
)
from vcamswap.engines.lite.source import SOURCE_SIZE, LiteSource, aligned_source, lite_template, source_skin
from vcamswap.engines.lite.toward import swap_toward_source
from vcamswap.faces.landmarks import FACE_OVAL, LEFT_EYE, LIPS_INNER, LIPS_OUTER, RIGHT_EYE
from vcamswap.modelstore.manifest import ModelError
from vcamswap.presets import Preset
from vcamswap.types import FaceGeometry, FeatureLayer, SwapOutput

log = logging.getLogger("vcamswap")

# How far the inner face (brows, eyes, nose, lips) moves toward the source's proportions. Identity lives
# as much in those proportions as in the skin; the outline stays the camera's so the seam does not move.
SHAPE_BLEND = 0.9


def shape_weights(points: np.ndarray, strength: float = SHAPE_BLEND) -> np.ndarray:
    """0 on the face outline rising to `strength` a fifth of the face's width inside it."""
    oval = points[list(FACE_OVAL)]
    d = np.linalg.norm(points[:, None, :] - oval[None, :, :], axis=-1).min(1)
    width = float(np.ptp(oval[:, 0])) or 1.0
    return (np.clip(d / (0.2 * width), 0.0, 1.0) * strength).astype(np.float32)


# Eyes and lips move as rigid groups: they go where the source has them, but keep the camera's
# openness, so a blink or a word is never replaced by the source photo's smile or squint.
RIGID_GROUPS: tuple[tuple[int, ...], ...] = (RIGHT_EYE, LEFT_EYE, tuple(sorted(set(LIPS_INNER) | set(LIPS_OUTER))))


class Morph(NamedTuple):
    points: np.ndarray  # (468, 2) the reshaped points
    shifts: np.ndarray  # (3, 2) how far each rigid group (right eye, left eye, lips) moved


def morph(dst: np.ndarray, src: np.ndarray, weights: np.ndarray) -> Morph:
    """The target's points moved toward the source's shape, posed like the target (affine fit)."""
    m, _ = cv2.estimateAffine2D(src, dst, method=cv2.LMEDS)
    if m is None:
        return Morph(dst, np.zeros((len(RIGID_GROUPS), 2), np.float32))
    posed = src @ m[:, :2].T + m[:, 2]
    shift = (posed - dst) * weights[:, None]
    group_shifts = np.zeros((len(RIGID_GROUPS), 2), np.float32)
    for g, group in enumerate(RIGID_GROUPS):
        idx = list(group)
        group_shifts[g] = shift[idx].mean(0)
        shift[idx] = group_shifts[g]
    return Morph((dst + shift).astype(np.float32), group_shifts)


class LiteEngine:
    """`models_dir`: where the optional face parser may be installed; when it is, each source photo is parsed
    once (never a frame) and the parser decides with the colour model what of the photo is skin."""

    name = "lite"
    in_flight = 0

    def __init__(self, models_dir: Path | None = None) -> None:
        self.models_dir = models_dir
        self._parser: FaceParser | None = None
        self._parser_tried = False

    @property
    def parser(self) -> FaceParser | None:
        """The installed face parser, opened on first use; None when it is not installed or will not load
        (said once: the colour model decides alone)."""
        if not self._parser_tried:
            self._parser_tried = True
            try:
                self._parser = installed_parser(self.models_dir)
            except ModelError as e:
                log.warning("%s; deciding the source's skin by its colour alone", e)
        return self._parser

    def crop_size(self, preset: Preset) -> int:
        return preset.crop_size

    def template(self, size: int) -> np.ndarray:
        return lite_template(size)

    def make_detector(self, preset: Preset) -> None:
        return None  # the embedded BlazeFace

    def prepare_source(self, image: np.ndarray, face: FaceGeometry) -> LiteSource:
        raw, pts = aligned_source(image, face)
        parser = self.parser
        skin, texture = source_skin(raw, pts, None if parser is None else parser.face(raw))
        return LiteSource(texture, pts / SOURCE_SIZE, triangulate(pts), shape_weights(pts), skin, raw)

    def finish(
        self, out: SwapOutput, crop: np.ndarray, preset: Preset, points: np.ndarray | None,
        occlusion: Occluder | None,
    ) -> SwapOutput:
        return finish(out, crop, preset, points, occlusion)

    def swap_many(self, items: Sequence[SwapItem[LiteSource]], preset: Preset) -> list[SwapOutput]:
        return [self.swap(i.crop, i.face, i.source, preset) for i in items]

    def swap(self, crop: np.ndarray, face: FaceGeometry, source: LiteSource, preset: Preset) -> SwapOutput:
        if face.points is None:
            raise ValueError("the lite engine needs FaceMesh points for the target face")
        if preset.likeness > 0.0:
            if not hasattr(self, "_neutral"):
                self._neutral = Neutral()
            return swap_toward_source(crop, face, source, preset, self._neutral)
        size = crop.shape[0]
        src_pts = source.points * size
        dst_pts = face.points.astype(np.float32)
        shaped, shifts = morph(dst_pts, src_pts, source.blend)
        # Nothing of the mesh reaches past its points' box but the blurs of the masks below: a margin as
        # wide as the widest blur keeps every result the same as on the whole crop.
        box = mesh_box(shaped, size, max(feather_width(size, preset.mask_feather), trust_blur(size) // 2) + 2)
        index = rasterize_indices(shaped, source.triangles, size, box)
        affines = triangle_affines(shaped, src_pts, source.triangles)
        warped = mesh_warp(source.texture_at(size), src_pts, shaped, source.triangles, index, affines, box)
        skin = cv2.cvtColor(warped, cv2.COLOR_BGRA2BGR)  # the colour channels, copied at once
        src_skin = cv2.LUT(cv2.extractChannel(warped, 3), UNIT)
        masks = [feature_mask(shaped, f, size) for f in FEATURES]
        holes = np.clip(sum(masks[1:], masks[0]), 0.0, 1.0)
        outer = np.minimum(oval_mask(shaped, size, preset.mask_feather, box), trusted(index, affines, holes, box))
        outer = box.paste(outer, size)
        outer *= turn_weight(dst_pts)
        # The camera's eyes and lips, each moved as a whole to its place in the reshaped face (a pure shift,
        # so they are never distorted), so blinks and speech come through; compose lays them over the skin
        # after its colour match.
        parts = []
        for f, mask, (dx, dy) in zip(FEATURES, masks, shifts, strict=True):
            parts.append((shifted(crop, dx, dy, feature_box(shaped, f, size)), mask))  # where its mask is not 0
        # Where the source photo is not skin (its hair, glasses, beard), compose shows the camera's face.
        return SwapOutput(skin, outer, FeatureLayer(holes, tuple(parts)), src_skin)
