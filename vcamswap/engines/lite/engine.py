"""The embedded `lite` engine: a FaceMesh-driven triangle-mesh warp of the source face onto the target.

Everything happens in the aligned crop. The source photo is analysed once: its texture is aligned to the
same template and its mesh triangulated. Per frame, one piecewise-affine map (target triangle -> source
triangle) is built for the whole crop and applied with a single cv2.remap, so the cost does not grow with
the number of triangles drawn. The target's eyes and lips are left out of the mask, so blinks
and speech come through; skin colour is matched by compose before they are laid back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple

import cv2
import numpy as np

from vcamswap.compose.align import Box, similarity
from vcamswap.compose.blend import feather, feather_width
from vcamswap.compose.skin import (
    BROWS,
    EYES_AND_LIPS,
    UNIT,
    detail_map,
    likelihood,
    lower_nose,
    oval,
    polygon,
    protected,
    skin_mask,
    to_lab,
    under_nose,
)
from vcamswap.engines import SwapItem
from vcamswap.faces.landmarks import (
    ARCFACE_112,
    FACE_OVAL,
    LEFT_EYE,
    LEFT_EYEBROW,
    LIPS_INNER,
    LIPS_OUTER,
    RIGHT_EYE,
    RIGHT_EYEBROW,
)
from vcamswap.presets import Preset
from vcamswap.types import FaceGeometry, FeatureLayer, SwapOutput

# The lite crop holds the whole face from the hairline to the chin with a small margin for feathering
# (the face oval spans about 0.15-0.9 of the crop), so the crop's pixels are spent on the face.
LITE_SCALE = 0.9
LITE_SHIFT_Y = -0.12
SOURCE_SIZE = 512  # the source texture is kept at this size and resized once per crop size
# How far the inner face (brows, eyes, nose, lips) moves toward the source's proportions. Identity lives
# as much in those proportions as in the skin; the outline stays the camera's so the seam does not move.
SHAPE_BLEND = 0.9


def lite_template(size: int) -> np.ndarray:
    t = (ARCFACE_112 / 112.0 - 0.5) * LITE_SCALE + 0.5
    t[:, 1] += LITE_SHIFT_Y
    return (t * size).astype(np.float32)


@dataclass
class LiteSource:
    """A source face prepared once: aligned skin-only texture, where it is skin, its mesh points (0..1 of the
    crop) and triangles."""

    texture: np.ndarray  # (SOURCE_SIZE, SOURCE_SIZE, 3) with hair, glasses and beard filled from the skin
    points: np.ndarray  # (468, 2) in [0, 1] crop units
    triangles: np.ndarray  # (T, 3) int32 indices into points
    blend: np.ndarray  # (468,) per-point weight of the source's shape: 0 on the outline, up to SHAPE_BLEND inside
    skin: np.ndarray | None = None  # (SOURCE_SIZE, SOURCE_SIZE) 0..1, where the swap may show the source
    raw: np.ndarray | None = None  # the aligned photo as it is, for its own eyes and lips at a likeness above 0
    _scaled: dict[int, np.ndarray] = field(default_factory=dict)
    _own: dict[int, np.ndarray] = field(default_factory=dict)

    def texture_at(self, size: int) -> np.ndarray:
        """The texture at `size` with the skin mask as a 4th channel (0..255), so one remap warps both."""
        if size not in self._scaled:
            skin = np.ones(self.texture.shape[:2], np.float32) if self.skin is None else self.skin
            bgra = np.dstack([self.texture, np.clip(skin * 255.0 + 0.5, 0, 255).astype(np.uint8)])
            interp = cv2.INTER_AREA if size < SOURCE_SIZE else cv2.INTER_LINEAR
            self._scaled[size] = cv2.resize(bgra, (size, size), interpolation=interp)
        return self._scaled[size]

    def own_at(self, size: int) -> np.ndarray:
        """The photo as the likeness shows it (engines.lite.likeness.source_own) with where its own eyes and lips
        are as a 4th channel (0..255), at `size`."""
        if size not in self._own:
            from vcamswap.engines.lite.likeness import source_features, source_own

            pts = self.points * SOURCE_SIZE
            raw, hair = source_own(self.texture if self.raw is None else self.raw, self.texture, self.skin, pts)
            own = np.clip(source_features(pts, SOURCE_SIZE) * (1.0 - hair) * 255.0 + 0.5, 0, 255).astype(np.uint8)
            self._own[size] = cv2.resize(np.dstack([raw, own]), (size, size), interpolation=cv2.INTER_AREA)
        return self._own[size]


def triangulate(points: np.ndarray) -> np.ndarray:
    """Delaunay triangles of the mesh points, as index triples."""
    pts = np.asarray(points, np.float32)
    lo, hi = pts.min(0) - 1.0, pts.max(0) + 1.0
    subdiv = cv2.Subdiv2D((float(lo[0]), float(lo[1]), float(hi[0] - lo[0] + 1), float(hi[1] - lo[1] + 1)))
    subdiv.insert([(float(x), float(y)) for x, y in pts])
    tris = np.asarray(subdiv.getTriangleList(), np.float32).reshape(-1, 3, 2)
    # Map vertex coordinates back to indices (Subdiv2D returns coordinates, not indices).
    d = np.linalg.norm(tris[:, :, None, :] - pts[None, None, :, :], axis=-1)
    idx = d.argmin(-1)
    ok = (d.min(-1) < 1e-3).all(1) & (idx[:, 0] != idx[:, 1]) & (idx[:, 1] != idx[:, 2]) & (idx[:, 0] != idx[:, 2])
    return idx[ok].astype(np.int32)


def triangle_affines(dst: np.ndarray, src: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """(T, 2, 3) affines mapping each destination triangle onto its source triangle (all zero for a
    degenerate one). Closed form on the triangles' edge vectors: a batched 3x3 solve costs four times more."""
    d = dst[tris].astype(np.float64)  # (T, 3, 2)
    s = src[tris].astype(np.float64)
    o = d[:, 0]  # (T, 2) the first corner
    u, v = d[:, 1] - o, d[:, 2] - o  # the destination edges from it
    su, sv = s[:, 1] - s[:, 0], s[:, 2] - s[:, 0]  # the same edges in the source
    det = u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]
    good = np.abs(det) > 1e-6
    inv = np.where(good, 1.0 / np.where(good, det, 1.0), 0.0)[:, None]
    a = np.empty((len(tris), 2, 3), np.float64)
    # The linear part L solves L @ [u v] = [su sv]: L = [su sv] @ inverse([u v]).
    a[:, :, 0] = (su * v[:, 1:2] - sv * u[:, 1:2]) * inv
    a[:, :, 1] = (sv * u[:, 0:1] - su * v[:, 0:1]) * inv
    a[:, :, 2] = (s[:, 0] - a[:, :, 0] * o[:, 0:1] - a[:, :, 1] * o[:, 1:2]) * (inv != 0)
    return a.astype(np.float32)


def mesh_box(points: np.ndarray, size: int, margin: int) -> Box:
    """The points' bounding box grown by `margin` pixels, within the crop (the whole crop if that is empty)."""
    lo = np.floor(points.min(0)).astype(int) - margin
    hi = np.ceil(points.max(0)).astype(int) + margin + 1
    x0, y0 = max(int(lo[0]), 0), max(int(lo[1]), 0)
    x1, y1 = min(int(hi[0]), size), min(int(hi[1]), size)
    return Box(x0, y0, x1, y1) if x1 - x0 >= 2 and y1 - y0 >= 2 else Box(0, 0, size, size)


def rasterize_indices(dst: np.ndarray, tris: np.ndarray, size: int, box: Box | None = None) -> np.ndarray:
    """An int32 map of which triangle covers each pixel (-1 = none); a later triangle wins a shared edge.
    With `box`, the map of that box only (the triangles must lie inside it or cross only the crop's edge)."""
    box = box or Box(0, 0, size, size)
    index = np.full(box.shape, -1, np.int32)
    polys = np.round(dst[tris] * 16).astype(np.int32)  # 4 fractional bits: sub-pixel edges
    polys -= box.offset
    polys = list(polys)
    fill, line = cv2.fillConvexPoly, cv2.LINE_8  # once per triangle: no lookups or keywords in the loop
    for i in range(len(polys)):
        fill(index, polys[i], i, line, 4)
    return index


@lru_cache(maxsize=8)
def _pixel_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    return xs, ys


def mesh_warp(
    texture: np.ndarray,
    src_pts: np.ndarray,
    dst_pts: np.ndarray,
    tris: np.ndarray,
    index: np.ndarray | None = None,
    affines: np.ndarray | None = None,
    box: Box | None = None,
) -> np.ndarray:
    """Warp `texture` so its src_pts land on dst_pts; `index` (rasterize_indices of dst_pts, in `box` when
    given) and `affines` (triangle_affines(dst_pts, src_pts, tris)) may be passed in when the caller has them
    already. Only `box` is remapped: every pixel no triangle covers shows the texture's first pixel."""
    size = texture.shape[0]
    box = box or Box(0, 0, size, size)
    if affines is None:
        affines = triangle_affines(dst_pts, src_pts, tris)
    if index is None:
        index = rasterize_indices(dst_pts, tris, size, box)
    xs, ys = _pixel_grid(size)
    xs, ys = xs[box.region], ys[box.region]
    # One plane per affine coefficient, looked up per pixel; the extra last entry (all 0) is what index -1
    # picks: an uncovered pixel maps to (0, 0), the texture's first pixel, and the remap stays on its fast path.
    table = np.zeros((6, len(affines) + 1), np.float32)
    table[:, :-1] = affines.reshape(-1, 6).T
    c = [np.take(row, index) for row in table]
    map_x = c[0] * xs
    map_x += c[1] * ys
    map_x += c[2]
    map_y = c[3] * xs
    map_y += c[4] * ys
    map_y += c[5]
    warped = cv2.remap(texture, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return box.paste(warped, size, texture[0, 0].tolist())


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


# A cheek turned toward the camera is filled from a thin strip at the edge of a frontal source photo:
# beyond this magnification the stretched strip shows as streaks, so the camera's own skin is kept there.
MAX_STRETCH = 2.5


def texture_trust(index: np.ndarray, affines: np.ndarray, size: int = 0) -> np.ndarray:
    """Per pixel, how much of the source texture to show: 0 where no triangle covers the pixel (the mesh
    folds at a turned cheek) or where its triangle magnifies the source past MAX_STRETCH. `size`: the crop's,
    when `index` is a box of it."""
    det = np.abs(affines[:, 0, 0] * affines[:, 1, 1] - affines[:, 0, 1] * affines[:, 1, 0])
    stretch = 1.0 / np.sqrt(np.maximum(det, 1e-6))  # linear magnification source -> crop
    tri_trust = np.zeros(len(affines) + 1, np.float32)  # the last entry, 0, is what index -1 picks
    tri_trust[:-1] = np.clip((MAX_STRETCH + 1.0 - stretch) / 1.0, 0.0, 1.0)
    trust = tri_trust[index]
    k = trust_blur(size) if size else max(3, (index.shape[0] // 40) | 1)
    return cv2.GaussianBlur(trust, (k, k), 0)


def trust_blur(size: int) -> int:
    """The trust's blur kernel at a crop size."""
    return max(3, (size // 40) | 1)


def feature_grow(size: int) -> int:
    """How far a feature's mask grows past its outline before it is softened (as far again)."""
    return max(2, size // 64)


def feature_box(points: np.ndarray, indices: tuple[int, ...], size: int) -> Box:
    """Where a feature's mask can be nonzero: its outline's box past the growth and the blur."""
    return mesh_box(points[list(indices)], size, 2 * feature_grow(size) + 2)


# How far the nose tip sits across the face, outline to outline (0.5 frontal): a frontal photo's mesh warp holds
# to a three-quarter view; toward a profile FaceMesh's far side folds onto the near one (a brow on the cheek),
# so the swap fades out and the camera's own face shows, rather than a broken one.
TURN_FULL, TURN_NONE = 0.12, 0.04


def turn_weight(points: np.ndarray) -> float:
    """1 up to a three-quarter view, falling to 0 toward a profile (the nose tip at the outline)."""
    left, right = float(points[234, 0]), float(points[454, 0])
    across = (float(points[1, 0]) - left) / max(right - left, 1e-3)
    side = min(across, 1.0 - across)
    return float(np.clip((side - TURN_NONE) / (TURN_FULL - TURN_NONE), 0.0, 1.0))


def feature_mask(points: np.ndarray, indices: tuple[int, ...], size: int) -> np.ndarray:
    """One eye or the lips, slightly grown and softened: where the camera's own pixels show."""
    box = feature_box(points, indices, size)  # worked out there only: it is 0 elsewhere
    mask = np.zeros(box.shape, np.uint8)
    cv2.fillPoly(mask, [polygon(points, indices) - box.offset], 255, lineType=cv2.LINE_AA, shift=4)
    # Grow a little so the eyelid edge and the lip line come from the camera too.
    grow = feature_grow(size)
    k = 2 * grow + 1
    soft = cv2.GaussianBlur(cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))), (k, k), 0)
    return box.paste(cv2.LUT(soft, UNIT), size)


def shifted(image: np.ndarray, dx: float, dy: float, box: Box) -> np.ndarray:
    """`image` moved by (dx, dy) inside `box` (replicated at the image's border), as it is elsewhere."""
    out = image.copy()
    shift = np.array([[1.0, 0.0, float(dx) - box.x0], [0.0, 1.0, float(dy) - box.y0]])
    out[box.region] = cv2.warpAffine(image, shift, box.shape[::-1], borderMode=cv2.BORDER_REPLICATE)
    return out


# The camera's features shown through the swap: both eyes and the whole lips (not only the opening, so a
# closed mouth never shows the source photo's teeth pressed into a line, and every word is the camera's).
FEATURES: tuple[tuple[int, ...], ...] = (RIGHT_EYE, LEFT_EYE, LIPS_OUTER)


def oval_mask(points: np.ndarray, size: int, feather_amount: float, box: Box | None = None) -> np.ndarray:
    """The face outline, feathered inward; with `box`, that box of it (a margin past the outline as wide as
    the feather keeps it exact)."""
    box = box or Box(0, 0, size, size)
    mask = np.zeros(box.shape, np.uint8)
    poly = polygon(points, FACE_OVAL) - box.offset
    cv2.fillPoly(mask, [poly], 255, lineType=cv2.LINE_AA, shift=4)
    return feather(mask, feather_amount, size)


def fill_from_skin(texture: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Replace what is not skin (weight 0) with the skin's own colours, smoothly extended (push-pull).

    Normalised convolution at three scales: a strand is filled from the skin right beside it, a fringe or a
    beard from further away, and beyond the face oval everything is the skin's colour, so a turned cheek
    that magnifies the mesh's edge strip never stretches hair or background into streaks.
    """
    size = texture.shape[0]
    img = texture.astype(np.float32)
    w = weight.astype(np.float32)
    out: np.ndarray | None = None
    for frac in (0.12, 0.04, 0.012):
        s = max(1.0, size * frac)
        num = cv2.GaussianBlur(img * w[..., None], (0, 0), s)
        den = cv2.GaussianBlur(w, (0, 0), s)
        est = num / np.maximum(den, 1e-4)[..., None]
        if out is None:
            out = est
        else:
            a = np.clip(den * 3.0, 0.0, 1.0)[..., None]
            out = est * a + out * (1.0 - a)
    assert out is not None
    keep = w[..., None]
    return np.clip(img * keep + out * (1.0 - keep) + 0.5, 0, 255).astype(np.uint8)


def source_skin(texture: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The source photo's skin, decided once: (where the swap may show the source, 0..1; the texture with
    everything else filled from the skin around it).

    Hair, beards, glasses and hats inside the face outline are handed to the camera's own face. The source's
    eyes and lips are filled too (the camera's are put back over them, so no second outline shows at their
    edge) but stay in the swap: the engine draws the camera's there.
    """
    size = texture.shape[0]
    shape = (size, size)
    skin, model = skin_mask(texture, points, still=True)
    features = protected(points, shape, EYES_AND_LIPS, grow=0.0)
    inside = cv2.erode(oval(points, shape), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size // 40 * 2 + 1,) * 2))
    weight = skin * (1.0 - features) * (inside.astype(np.float32) / 255.0)
    face = np.maximum(protected(points, shape, (*EYES_AND_LIPS, *BROWS), grow=0.03), lower_nose(points, shape, 0.03))
    face *= 1.0 - under_nose(points, shape)  # a moustache or a nostril's shadow there is filled from the skin
    if model is not None:
        # The mask is closed over specks so that it does not speckle; the texture need not be: away from the
        # features, a pixel that does not itself look like skin (stubble at a beard's edge, a stray curl) is
        # filled from the skin beside it rather than kept as a dark smudge.
        lab = to_lab(texture)
        own = cv2.GaussianBlur(likelihood(lab, detail_map(lab, size / 256.0), model), (0, 0), size / 256.0)
        weight = weight * np.maximum(own, face)
    # Only confident skin keeps its own pixels: at the soft rim of the mask a pixel is part hair, and kept at
    # half strength it still draws the strand's line; the rim is filled from the skin inside instead.
    filled = fill_from_skin(texture, np.clip((weight - 0.5) / 0.4, 0.0, 1.0))
    shown = np.maximum(np.maximum(skin, features), eye_sockets(points, shape))
    # The nostrils stay the source's, but no darker than NOSTRIL_L below the nose around them: a photo lit from
    # one side or from below (the head tilted back) has near-black nostrils that, on a camera's downturned
    # nose, read as a dark blob.
    nose = lower_nose(points, shape, 0.0)
    tolerance = SMUDGE_L + (NOSTRIL_L - SMUDGE_L) * nose
    return shown.astype(np.float32), without_smudges(filled, np.maximum(1.0 - face, nose), tolerance)


def eye_sockets(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """From each eye up to its brow, the brow itself left out: where the source always shows, filled where its
    own pixels are not skin (deep-set or made-up lids, a glasses rim). Handed to the camera, that band shows
    the camera's brows beneath the source's: two pairs of brows. The brows follow the skin mask (the camera's
    under a fringe)."""
    mask = np.zeros(shape, np.uint8)
    for eye, brow in ((RIGHT_EYE, RIGHT_EYEBROW), (LEFT_EYE, LEFT_EYEBROW)):
        hull = cv2.convexHull(np.round(points[list(eye + brow)] * 16).astype(np.int32))
        cv2.fillConvexPoly(mask, hull, 255, lineType=cv2.LINE_8, shift=4)
    return cv2.LUT(mask, UNIT) * (1.0 - protected(points, shape, BROWS, grow=0.01))


SMUDGE_L = 6.0  # grey levels a patch may lie below the skin around it before it counts as a smudge
NOSTRIL_L = 40.0  # the same for the nostrils


def without_smudges(texture: np.ndarray, where: np.ndarray, tolerance: float | np.ndarray = SMUDGE_L) -> np.ndarray:
    """Lift patches a few pixels wide that are darker than the skin around them (stubble at a beard's edge, a
    shadowed strand's remains) to within `tolerance` grey levels of it, keeping the fine texture on them; only
    `where` (away from the features, whose shadows are the likeness)."""
    size = texture.shape[0]
    img = texture.astype(np.float32)
    lum = img.mean(2)
    patch = cv2.GaussianBlur(lum, (0, 0), 0.008 * size)
    around = cv2.GaussianBlur(lum, (0, 0), 0.04 * size)
    lift = np.maximum(around - tolerance - patch, 0.0) * where
    gain = (patch + lift + 1.0) / (patch + 1.0)
    return np.clip(img * gain[..., None] + 0.5, 0, 255).astype(np.uint8)


def aligned_source(image: np.ndarray, face: FaceGeometry) -> tuple[np.ndarray, np.ndarray]:
    """A source photo's face as the engine sees it: the texture aligned to the lite template at SOURCE_SIZE
    and its FaceMesh points in that texture's pixels."""
    if face.points is None:
        raise ValueError("the lite engine needs FaceMesh points for the source face")
    m = similarity(face.kps, lite_template(SOURCE_SIZE))
    texture = cv2.warpAffine(image, m, (SOURCE_SIZE, SOURCE_SIZE), flags=cv2.INTER_AREA,
                             borderMode=cv2.BORDER_REPLICATE)
    points = face.transformed(m).points
    assert points is not None
    return texture, points


class LiteEngine:
    name = "lite"
    in_flight = 0

    def crop_size(self, preset: Preset) -> int:
        return preset.crop_size

    def template(self, size: int) -> np.ndarray:
        return lite_template(size)

    def make_detector(self, preset: Preset) -> None:
        return None  # the embedded BlazeFace

    def prepare_source(self, image: np.ndarray, face: FaceGeometry) -> LiteSource:
        raw, pts = aligned_source(image, face)
        skin, texture = source_skin(raw, pts)
        return LiteSource(texture, pts / SOURCE_SIZE, triangulate(pts), shape_weights(pts), skin, raw)

    def swap_many(self, items: Sequence[SwapItem[LiteSource]], preset: Preset) -> list[SwapOutput]:
        return [self.swap(i.crop, i.face, i.source, preset) for i in items]

    def swap(self, crop: np.ndarray, face: FaceGeometry, source: LiteSource, preset: Preset) -> SwapOutput:
        if face.points is None:
            raise ValueError("the lite engine needs FaceMesh points for the target face")
        if preset.likeness > 0.0:
            from vcamswap.engines.lite.toward import swap_toward_source

            if not hasattr(self, "_neutral"):
                from vcamswap.engines.lite.likeness import Neutral

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
        outer = np.minimum(oval_mask(shaped, size, preset.mask_feather, box), texture_trust(index, affines, size))
        outer = box.paste(outer, size)
        outer *= turn_weight(dst_pts)
        masks = [feature_mask(shaped, f, size) for f in FEATURES]
        holes = np.clip(sum(masks[1:], masks[0]), 0.0, 1.0)
        # The camera's eyes and lips, each moved as a whole to its place in the reshaped face (a pure shift,
        # so they are never distorted), so blinks and speech come through; compose lays them over the skin
        # after its colour match.
        parts = []
        for f, mask, (dx, dy) in zip(FEATURES, masks, shifts, strict=True):
            parts.append((shifted(crop, dx, dy, feature_box(shaped, f, size)), mask))  # where its mask is not 0
        # Where the source photo is not skin (its hair, glasses, beard), compose shows the camera's face.
        return SwapOutput(skin, outer, FeatureLayer(holes, tuple(parts)), src_skin)
