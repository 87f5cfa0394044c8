"""The lite engine's source face, prepared once: the photo aligned to the lite template, its skin decided
(hair, beards, glasses handed to the camera's face, filled from the skin around them) and kept with its mesh."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from vcamswap.compose.align import similarity
from vcamswap.compose.skin import (
    BROWS,
    EYES_AND_LIPS,
    UNIT,
    detail_map,
    likelihood,
    lower_nose,
    oval,
    protected,
    to_lab,
)
from vcamswap.engines.lite.photo_skin import nostrils, photo_skin_mask, under_nose
from vcamswap.faces.landmarks import ARCFACE_112, LEFT_EYE, LEFT_EYEBROW, RIGHT_EYE, RIGHT_EYEBROW
from vcamswap.types import FaceGeometry

# The lite crop holds the whole face from the hairline to the chin with a small margin for feathering
# (the face oval spans about 0.15-0.9 of the crop), so the crop's pixels are spent on the face.
LITE_SCALE = 0.9
LITE_SHIFT_Y = -0.12
SOURCE_SIZE = 512  # the source texture is kept at this size and resized once per crop size


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

    def texture_at(self, size: int, moved: bool = False) -> np.ndarray:
        """The texture at `size` with the skin mask as a 4th channel (0..255), so one remap warps both; `moved`:
        the mask for a face laid over the camera's moved crop (a likeness above 0), the brows' ends softened."""
        key = -size if moved else size
        if key not in self._scaled:
            skin = np.ones(self.texture.shape[:2], np.float32) if self.skin is None else self.skin
            if moved and self.skin is not None:
                pts = self.points * SOURCE_SIZE
                band = cv2.GaussianBlur(under_nose(pts, skin.shape), (0, 0), SOURCE_SIZE * 0.008)
                skin = np.maximum(soft_brow_ends(skin, pts), band)
            bgra = np.dstack([self.texture, np.clip(skin * 255.0 + 0.5, 0, 255).astype(np.uint8)])
            interp = cv2.INTER_AREA if size < SOURCE_SIZE else cv2.INTER_LINEAR
            self._scaled[key] = cv2.resize(bgra, (size, size), interpolation=interp)
        return self._scaled[key]

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


# How far a brow's end fades where it reaches past the photo's skin (into temple hair or a beard), in source
# pixels per SOURCE_SIZE. The brows are face whatever their colour, so the mask kept their polygon's hard edge
# there; over the camera's moved crop (a likeness above 0) that edge showed as a dark brow cut off square.
BROW_END_SOFT = 0.035


def soft_brow_ends(skin: np.ndarray, points: np.ndarray) -> np.ndarray:
    """`skin` with its edges near the brows softened inward (never grown): where the brows are surrounded by
    skin nothing changes; where a brow runs into what is not skin, it fades out over a few of its widths."""
    size = skin.shape[0]
    near = cv2.GaussianBlur(protected(points, skin.shape[:2], BROWS, grow=0.06), (0, 0), size * 0.01)
    soft = np.minimum(skin, cv2.GaussianBlur(skin, (0, 0), size * BROW_END_SOFT))
    return (skin + near * (soft - skin)).astype(np.float32)


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


def parsed_skin(skin: np.ndarray, parsed: np.ndarray | None) -> np.ndarray:
    """The colour model's skin where the face parser (compose.parsing) sees the face, 0 where it sees hair,
    glasses, a hat, ears or anything else; `parsed` None (no parser installed): the skin as it is.

    The parser knows a light fringe or a blond strand from skin of the same colour, which a colour model
    cannot; it has no class for a beard (it calls one skin), which the colour model hands to the camera."""
    if parsed is None:
        return skin
    soft = cv2.GaussianBlur(parsed.astype(np.float32), (0, 0), max(1.0, parsed.shape[0] / 256.0))
    return np.minimum(skin, soft)


def source_skin(
    texture: np.ndarray, points: np.ndarray, parsed: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The source photo's skin, decided once: (where the swap may show the source, 0..1; the texture with
    everything else filled from the skin around it).

    Hair, beards, glasses and hats inside the face outline are handed to the camera's own face. The source's
    eyes and lips are filled too (the camera's are put back over them, so no second outline shows at their
    edge) but stay in the swap: the engine draws the camera's there. `parsed`: the face parser's face map of
    the texture (1 = skin, brows, eyes, nose, lips), when the parser is installed.
    """
    size = texture.shape[0]
    shape = (size, size)
    skin, model = photo_skin_mask(texture, points)
    skin = parsed_skin(skin, parsed)
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
    # The source's nostrils and the shadow around them are handed to the camera, whose own sit there.
    shown = np.maximum(np.maximum(skin, features), eye_sockets(points, shape)) * (1.0 - nostrils(texture, points))
    # The nostrils stay the source's, but no darker than NOSTRIL_L below the nose around them: a photo lit from
    # one side or from below (the head tilted back) has near-black nostrils that, on a camera's downturned
    # nose, read as a dark blob.
    nose = lower_nose(points, shape, 0.0)
    tolerance = SMUDGE_L + (NOSTRIL_L - SMUDGE_L) * nose
    smooth = without_smudges(filled, np.maximum(1.0 - face, nose), tolerance)
    shine_free = (1.0 - protected(points, shape, EYES_AND_LIPS, grow=0.03)) * (1.0 - under_nose(points, shape))
    return shown.astype(np.float32), without_glare(smooth, shine_free)


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


GLARE_C = 3.0, 9.0  # a patch this much less saturated than the skin around it (Lab chroma) is shine: none .. all


def without_glare(texture: np.ndarray, where: np.ndarray) -> np.ndarray:
    """The skin's own colour given back to patches that are paler and brighter than the skin around them (a flash's
    shine on a nose tip or a forehead: white light added to the skin), their lightness and texture kept; only
    `where` (not the eyes' whites or the teeth). The relight's per-channel gain keeps a photo's colour contrasts,
    so a child's shiny orange-pink nose tip showed blue-grey on a darker, matte camera face."""
    size = texture.shape[0]
    lab = cv2.cvtColor(texture, cv2.COLOR_BGR2LAB).astype(np.float32)
    ab = lab[..., 1:] - 128.0
    chroma = np.sqrt((ab * ab).sum(-1))
    patch = cv2.GaussianBlur(chroma, (0, 0), 0.012 * size)
    around = cv2.GaussianBlur(chroma, (0, 0), 0.05 * size)
    lighter = cv2.GaussianBlur(lab[..., 0], (0, 0), 0.012 * size) > cv2.GaussianBlur(lab[..., 0], (0, 0), 0.05 * size)
    lo, hi = GLARE_C
    shine = np.clip((around - patch - lo) / (hi - lo), 0.0, 1.0) * lighter * where
    boost = 1.0 + shine * (around / np.maximum(patch, 1.0) - 1.0)
    lab[..., 1:] = np.clip(ab * boost[..., None] + 128.0, 0, 255)
    return cv2.cvtColor(lab.round().astype(np.uint8), cv2.COLOR_LAB2BGR)


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
