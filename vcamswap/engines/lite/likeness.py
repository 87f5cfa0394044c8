"""How much of the source person the lite swap shows: 0 = the camera's face wearing the source's skin (its
outline, eyes, lips, shading and tone), 1 = the source's face driven by the camera.

At likeness L the target points are the source's own shape posed by the camera's head and moved by the camera's
expression: the camera's points, brought into the source's frame by a similarity, minus their running
neutral, added to the source's points (scaled by L), posed back by a pose that goes from today's affine fit
(the camera's proportions) to a similarity (the source's). The outline moves too (its weight goes from 0 to L),
so the camera frame around the face is warped by a smooth displacement field from the camera's points to the
target points (engines.lite.finish applies it to its own crop): the cheek line and the jaw edge move with the
face, and nothing shows twice.
"""

from __future__ import annotations

import cv2
import numpy as np

from vcamswap.compose.align import Box
from vcamswap.compose.skin import UNIT, face_width, polygon
from vcamswap.faces.landmarks import FACE_OVAL, LEFT_EYE, LIPS_INNER, LIPS_OUTER, RIGHT_EYE
from vcamswap.types import Warp

WARP_GRID = 32  # the displacement field lives on this grid over the crop and is interpolated from it
NEUTRAL_FRAMES = 90  # the camera's neutral is the mean of its first frames, then follows slowly
NEW_FACE = 0.08  # a shape this far (share of the face's width, mean per point) from the neutral: a new person
# How far the outline may move and the camera's frame be pulled, as a share of the face's width: a source much
# narrower than the camera's face otherwise drags hair and background inward with visible stretching.
MAX_PULL = 0.05
# Past the face's oval (the camera's or the moved one, whichever is wider) the pull falls to 0 over this share of
# the face's width: hair and background a little off the cheek stay where they are.
PULL_FALLOFF = 0.08


def rigid_groups() -> tuple[tuple[int, ...], ...]:
    return (RIGHT_EYE, LEFT_EYE, tuple(sorted(set(LIPS_INNER) | set(LIPS_OUTER))))


class Neutral:
    """A running estimate of the camera person's resting face, in the source's frame: the mean of the first
    NEUTRAL_FRAMES frames, then a slow follow; restarted when the shape jumps (another person)."""

    def __init__(self) -> None:
        self.points: np.ndarray | None = None
        self.seen = 0
        self.eyes_open = 1.0  # the camera's eyes' opening now, as a share of the neutral's (open) one

    def update(self, normalised: np.ndarray, width: float) -> np.ndarray:
        if self.points is not None:
            far = float(np.linalg.norm(normalised - self.points, axis=1).mean()) > NEW_FACE * width
            if far and self.seen > 10:
                self.points, self.seen = None, 0
        if self.points is None:
            self.points, self.seen, self.eyes_open = normalised.copy(), 1, 1.0
            return self.points
        self.seen += 1
        rate = 1.0 / min(self.seen, NEUTRAL_FRAMES)
        rates = np.full((len(normalised), 1), rate, np.float32)
        for group, grows in ((EYE_POINTS[0], False), (EYE_POINTS[1], False), (self._lower(), True)):
            resting = (_opening(normalised[group]) > _opening(self.points[group])) != grows
            rates[group] = max(rate, TOWARD) if resting else rate * AWAY
        self.points += (normalised - self.points) * rates
        self.eyes_open = float(np.mean([_opening(normalised[e]) / max(_opening(self.points[e]), 1e-3)
                                        for e in EYE_POINTS]))
        return self.points

    def _lower(self) -> list[int]:
        """The lips and the face below the nose's base: what opening the mouth moves."""
        assert self.points is not None
        below = np.nonzero(self.points[:, 1] > self.points[NOSE_BASE, 1])[0]
        return sorted(set(below.tolist()) | set(LIPS_INNER) | set(LIPS_OUTER))


# A resting face has open eyes and a closed mouth. A plain mean takes in the blinks, the looks down and the open
# mouth of its frames, and every expression after it then shows only in part: a talking clip's neutral had the
# mouth half open, so the source's mouth stayed nearly closed where the camera's opened wide. The neutral's eyes
# follow an opening eye at once and a closing one hardly; its mouth the reverse.
TOWARD, AWAY = 0.25, 0.1
NOSE_BASE = 2
EYE_POINTS = (np.array(RIGHT_EYE), np.array(LEFT_EYE))


def _opening(points: np.ndarray) -> float:
    """How far a group's points spread vertically: an eye's or a mouth's opening (the lower face's drop)."""
    return float(points[:, 1].max() - points[:, 1].min())


def apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return (pts @ m[:, :2].T + m[:, 2]).astype(np.float32)


INNER_LIPS, OUTER_LIPS = np.array(LIPS_INNER), np.array(LIPS_OUTER)


def closed_like(src: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """The source's points with its inner lips opened no further than the camera's neutral (both in the source's
    frame): a photo's smile with teeth must not keep the mouth open (the camera's closed lips would show, squeezed
    into the photo's opening); the camera's expression opens it from there."""
    inner = INNER_LIPS
    out = src.copy()
    own = src[inner, 1] - src[inner, 1].mean()
    cam = rest[inner, 1] - rest[inner, 1].mean()
    # Scaled about the opening's middle, never turned over: the points keep their order and no triangle folds.
    factor = float(np.clip(np.abs(cam).mean() / max(float(np.abs(own).mean()), 1e-3), 0.0, 1.0))
    out[inner, 1] += own * (factor - 1.0)
    return out


def opened_like(shape: np.ndarray, cam: np.ndarray, likeness: float) -> np.ndarray:
    """`shape` (in the source's frame) with its mouth opened as far as the camera's is now, in proportion to the
    likeness: the inner lips take the camera's opening about their own middle and each outer lip point moves with
    the nearest inner one, so the lips keep their thickness. The opening is measured absolutely, not against the
    running neutral: a neutral learned while the camera's person talks has the mouth half open, and the source's
    mouth then opened only half as far as the camera's."""
    inner, outer = INNER_LIPS, OUTER_LIPS
    own = shape[inner, 1]
    want = own.mean() + cam[inner, 1] - cam[inner, 1].mean()
    delta = likeness * (want - own)
    out = shape.copy()
    out[inner, 1] += delta
    near = np.abs(shape[outer, None, 0] - shape[None, inner, 0]) + np.abs(shape[outer, None, 1] - shape[None, inner, 1])
    out[outer, 1] += delta[np.argmin(near, axis=1)]
    return out


def similar(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """compose.align.similarity in closed form for 2-D points: the least-squares rotation, scale and shift are
    [[a, -b], [b, a]] from two sums, the same transform as Umeyama's without its SVD (a frame's fixed cost)."""
    s = np.asarray(src, np.float64)
    d = np.asarray(dst, np.float64)
    mu_s, mu_d = s.mean(0), d.mean(0)
    s, d = s - mu_s, d - mu_d
    var = float((s * s).sum())
    if var <= 0.0:
        return np.hstack([np.eye(2), (mu_d - mu_s)[:, None]]).astype(np.float32)
    a = float((s[:, 0] * d[:, 0] + s[:, 1] * d[:, 1]).sum()) / var
    b = float((s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum()) / var
    lin = np.array([[a, -b], [b, a]])
    return np.hstack([lin, (mu_d - lin @ mu_s)[:, None]]).astype(np.float32)


OVAL = np.array(FACE_OVAL)
GROUPS = tuple(np.array(g) for g in rigid_groups())


def target_points(
    dst: np.ndarray, src: np.ndarray, blend: np.ndarray, likeness: float, neutral: Neutral
) -> tuple[np.ndarray, np.ndarray]:
    """(the reshaped points, how far each rigid group moved on average) at `likeness` > 0."""
    # At 1 the pose is the similarity alone: the affine fit (the camera's proportions) has no weight, so it is not
    # worked out (zeros, in the fit's float64, so the pose comes out as it would with it).
    affine = cv2.estimateAffine2D(src, dst, method=cv2.LMEDS)[0] if likeness < 1.0 else np.zeros((2, 3))
    to_src = similar(dst, src)
    to_cam = cv2.invertAffineTransform(to_src)
    if affine is None:
        affine = to_cam
    normalised = apply(to_src, dst)
    rest = neutral.update(normalised, face_width(src))
    expression = normalised - rest
    pose = (1.0 - likeness) * affine + likeness * to_cam
    target = apply(pose, opened_like(closed_like(src, rest) + likeness * expression, normalised, likeness))
    weights = blend + likeness * (1.0 - blend)
    shift = (target - dst) * weights[:, None]
    shift[OVAL] = capped(shift[OVAL], MAX_PULL * face_width(dst))
    moved = np.zeros((len(GROUPS), 2), np.float32)
    for g, idx in enumerate(GROUPS):
        moved[g] = shift[idx].mean(0)
        shift[idx] = (1.0 - likeness) * moved[g] + likeness * shift[idx]
    return (dst + shift).astype(np.float32), moved


def capped(vectors: np.ndarray, limit: float) -> np.ndarray:
    """Each vector (last axis: x, y) shortened to at most `limit`, its direction kept."""
    length = np.sqrt((vectors.astype(np.float32) ** 2).sum(-1, keepdims=True))
    return (vectors * np.minimum(1.0, limit / np.maximum(length, 1e-6))).astype(np.float32)


def near_oval(dst: np.ndarray, shaped: np.ndarray, cell: float, reach: float) -> np.ndarray:
    """(WARP_GRID, WARP_GRID): 1 inside either face oval, falling smoothly to 0 `reach` grid cells past it."""
    g = WARP_GRID
    mask = np.zeros((g * 4, g * 4), np.uint8)  # a finer grid, so the oval's edge is not a cell's staircase
    for pts in (dst, shaped):
        cv2.fillPoly(mask, [np.round(pts[list(FACE_OVAL)] * (64.0 / cell)).astype(np.int32)], 255,
                     lineType=cv2.LINE_8, shift=4)
    far = cv2.distanceTransform(255 - mask, cv2.DIST_L2, 3) / 4.0
    w = np.clip(1.0 - far / max(reach, 0.5), 0.0, 1.0)
    w = w * w * (3 - 2 * w)
    return cv2.resize(w, (g, g), interpolation=cv2.INTER_AREA)


def displacement(dst: np.ndarray, shaped: np.ndarray, size: int) -> np.ndarray:
    """(WARP_GRID, WARP_GRID, 2): per grid cell, where the camera's pixel shown there comes from, relative to it
    (shaped -> camera), interpolated smoothly between the points, no longer than MAX_PULL of the face's width
    past the inner face and falling to 0 just past the face's oval."""
    g = WARP_GRID
    cell = size / g
    offsets = (dst - shaped).astype(np.float32)
    pos = np.clip(shaped / cell - 0.5, 0, g - 1)
    ij = np.round(pos).astype(int)
    cells = ij[:, 1] * g + ij[:, 0]  # the points' moves and their count summed per cell
    num = np.stack([np.bincount(cells, offsets[:, k], g * g) for k in (0, 1)], -1).astype(np.float32).reshape(g, g, 2)
    den = np.bincount(cells, minlength=g * g).astype(np.float32).reshape(g, g)
    width = face_width(shaped) / cell
    near = max(0.6, 0.05 * width)
    field = cv2.GaussianBlur(num, (0, 0), near) / np.maximum(cv2.GaussianBlur(den, (0, 0), near), 1e-6)[..., None]
    # Where no point is near, the field falls to 0 over about a fifth of the face's width past the outline.
    reach = cv2.GaussianBlur(den, (0, 0), max(1.0, 0.12 * width))
    reach = np.clip(reach / max(float(reach.max()) * 0.15, 1e-6), 0.0, 1.0)
    reach = reach * reach * (3 - 2 * reach) * near_oval(dst, shaped, cell, PULL_FALLOFF * width)
    return (capped(field, 2.0 * MAX_PULL * width * cell) * reach[..., None]).astype(np.float32)


def warp_of(dst: np.ndarray, shaped: np.ndarray, size: int, likeness: float) -> Warp:
    return Warp(displacement(dst, shaped, size), shaped, likeness)


def mouth_opening(points: np.ndarray, size: int) -> np.ndarray:
    """The inner-lip polygon, softened a little: where the camera's mouth interior (teeth, tongue) shows. Worked
    out in the polygon's box grown past the blur's reach (it is 0 elsewhere)."""
    sigma = max(0.8, size / 256)
    inner = points[list(LIPS_INNER)]
    lo = np.maximum(np.floor(inner.min(0)).astype(int) - int(np.ceil(4 * sigma)) - 2, 0)
    hi = np.minimum(np.ceil(inner.max(0)).astype(int) + int(np.ceil(4 * sigma)) + 3, size)
    box = Box(int(lo[0]), int(lo[1]), int(hi[0]), int(hi[1]))
    if box.x1 - box.x0 < 2 or box.y1 - box.y0 < 2:
        box = Box(0, 0, size, size)
    mask = np.zeros(box.shape, np.uint8)
    cv2.fillPoly(mask, [polygon(points, LIPS_INNER) - box.offset], 255, lineType=cv2.LINE_AA, shift=4)
    soft = cv2.GaussianBlur(mask, (0, 0), sigma)
    return box.paste(cv2.LUT(soft, UNIT), size)


def source_features(points: np.ndarray, size: int) -> np.ndarray:
    """The source's eyes and lips (0..1 with a soft edge, in the source texture): what the likeness shows of the
    photo's own features, where the skin texture has them filled. The edge is wide and soft (grown by 3 % of
    the face's width, blurred as much again): a hard ring around a photo's eye reads as a pasted socket."""
    mask = np.zeros((size, size), np.uint8)
    for idx in (RIGHT_EYE, LEFT_EYE, LIPS_OUTER):
        cv2.fillPoly(mask, [polygon(points, idx)], 255, lineType=cv2.LINE_AA, shift=4)
    r = max(1, int(round(face_width(points) * 0.03)))
    grown = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    return cv2.LUT(cv2.GaussianBlur(grown, (0, 0), 1.5 * r), UNIT)


# A pixel of the source's lips region is shown as it is when its Lab colour (8-bit scale) is within these of the
# lips' or the skin's own colour: lightness gets a wide tolerance (a lip's shading), chroma a narrow one.
LIP_TOLERANCE = np.array([40.0, 12.0, 12.0], np.float32)


def lips_or_skin(raw: np.ndarray, skin: np.ndarray, points: np.ndarray) -> np.ndarray:
    """0..1 per pixel: how much a pixel of the photo's lips region is lip or skin by its colour, not hair (a
    moustache over the upper lip, a beard under the lower). The lips' colour is the median of the lip tissue
    (outer less inner outline) redder than the skin, which no hair is; the skin's of the confident skin."""
    size = raw.shape[0]
    lab = cv2.cvtColor(raw, cv2.COLOR_BGR2LAB).astype(np.float32)
    sure = skin > 0.9
    if int(sure.sum()) < 50:
        return np.ones(raw.shape[:2], np.float32)
    skin_lab = np.median(lab[sure], 0)
    tissue = np.zeros(raw.shape[:2], np.uint8)
    cv2.fillPoly(tissue, [polygon(points, LIPS_OUTER)], 255, shift=4)
    cv2.fillPoly(tissue, [polygon(points, LIPS_INNER)], 0, shift=4)
    red = lab[tissue > 0]
    red = red[red[:, 1] > skin_lab[1]]
    models = [skin_lab] + ([np.median(red, 0)] if len(red) >= 20 else [])
    d = np.min([np.sqrt((((lab - m) / LIP_TOLERANCE) ** 2).sum(-1)) for m in models], 0)
    ok = np.clip(2.0 - d, 0.0, 1.0).astype(np.float32)
    # The line between the lips is dark and stays; the hair's fringe is pulled back and softened.
    inner = np.zeros(raw.shape[:2], np.uint8)
    cv2.fillPoly(inner, [polygon(points, LIPS_INNER)], 255, shift=4)
    k = max(1, size // 128)
    ok = np.maximum(ok, cv2.LUT(cv2.dilate(inner, np.ones((2 * k + 1, 2 * k + 1), np.uint8)), UNIT))
    ok = cv2.erode(ok, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1)))
    return cv2.GaussianBlur(ok, (0, 0), k)


LIP_LINE = 0.8  # what fills a photo's mouth opening, as a share of its lips' own colour


def source_own(
    raw: np.ndarray, texture: np.ndarray, skin: np.ndarray | None, points: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The photo as the likeness shows it around its eyes and lips, and where that is hair (0..1). Where the lips
    region is hair by its colour (a moustache, a beard around the mouth) the picture is the skin texture (filled
    from the skin) and the hair map says so: the engine then treats it like the rest of the source's hair (the
    camera's face shows), so no moustache is pasted and no beard's dark ring shows around the mouth."""
    if skin is None:
        return raw, np.zeros(raw.shape[:2], np.float32)
    lips = np.zeros(raw.shape[:2], np.uint8)
    cv2.fillPoly(lips, [polygon(points, LIPS_OUTER)], 255, shift=4)
    r = max(1, int(round(face_width(points) * 0.08)))
    near = cv2.LUT(cv2.dilate(lips, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1,) * 2)), UNIT)
    take = (near * (1.0 - lips_or_skin(raw, skin, points)))[..., None]
    out = raw * (1.0 - take) + texture * take
    # Inside the photo's own mouth opening (a smile's teeth): the lips' colour, a little darker, since the
    # opening takes the camera's (closed_like); where the camera's mouth opens, its own interior shows.
    opening = np.zeros(raw.shape[:2], np.uint8)
    cv2.fillPoly(opening, [polygon(points, LIPS_INNER)], 255, shift=4)
    k = max(1, raw.shape[0] // 256)
    inner = cv2.GaussianBlur(cv2.dilate(opening, np.ones((2 * k + 1, 2 * k + 1), np.uint8)), (0, 0), k)
    tissue = (lips > 0) & (inner == 0)
    line = np.median(out[tissue], 0) * LIP_LINE if int(tissue.sum()) >= 20 else np.zeros(3)
    fill = cv2.LUT(inner, UNIT)[..., None]
    return np.clip(out * (1.0 - fill) + line * fill + 0.5, 0, 255).astype(np.uint8), take[..., 0] * (1.0 - fill[..., 0])
