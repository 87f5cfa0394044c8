"""Does a swapped frame look like a real face? Five measures of a swap against the camera frame it came from.

Identity figures call a face "closer to the source" even when the source's hair is pasted on it as stripes, so
these judge what a viewer sees. Every region comes from 68 landmarks of the *camera* frame, found by a
landmarker other than the engine's (dlib's, with the `eval` extra): the swap keeps the camera's outline, so
the same regions hold in the output.

* foreign: the share of the skin region (jaw line up to the forehead, nose and the band from the nose to the
  upper lip included; eyes, brows and mouth left out) whose colour is far from the region's median, output
  minus camera: what the swap brought in (hair, blotches, glasses edges, a moustache); the camera's own
  freckles, stubble, nostrils or glasses are in both and cancel.
* under_nose: the share of the band from the nose to the upper lip darker than the rest of the face's skin,
  output minus camera, each on its own landmarks: a source's moustache or nostril shadow pasted there shows
  as a dark blob.
* dark: the share of the skin region whose lightness, smoothed over a fiftieth of the face's width, falls more
  than DARK_PATCH_L below the camera's at the same place, beyond the whole face's shift (a darker or lighter tone
  kept on purpose does not count): a photo's shadowed cheek, a beard's or a glasses rim's shadow laid over the
  camera's lit face as a grey band. foreign misses these: a soft band is rarely 20 delta E from the median.
* tone: CIE76 delta E between the output's cheeks and the camera's own cheeks (median Lab colour).
* seam: mean gradient magnitude in a thin band along the edge of what the swap changed, output over camera.
* occluders: mean edge magnitude in a ring around each eye (where glasses frames sit), output over camera.

`summarize` adds tools.bench.expression's measures over the frames: mouth and eye correlation, flicker.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

from vcamswap.tools.bench.expression import Shot, correlation, eye_aspect, flicker, mouth_opening
from vcamswap.tools.bench.metrics import Realism

JAW = tuple(range(0, 17))
BROW_R, BROW_L = tuple(range(17, 22)), tuple(range(22, 27))
EYE_R, EYE_L = tuple(range(36, 42)), tuple(range(42, 48))
MOUTH = tuple(range(48, 60))

FAR_DELTA_E = 20.0  # a colour this far from the skin's median is not that skin (strand, blotch, frame)
FOREHEAD = 0.22  # the forehead line: brows raised by this share of the brow-to-chin height


class Regions(NamedTuple):
    skin: np.ndarray  # bool masks in frame coordinates
    cheeks: np.ndarray
    eye_rings: np.ndarray
    under_nose: np.ndarray  # from the nostrils' base down to the upper lip's top edge


class Measures(NamedTuple):
    foreign: float
    tone: float
    seam: float
    occluders: float
    under_nose: float = 0.0
    dark: float = 0.0


def _poly(mask: np.ndarray, pts: np.ndarray) -> None:
    cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 255)


def _grow(mask: np.ndarray, r: float) -> np.ndarray:
    k = max(1, int(round(r)))
    return cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1)))


def regions(lm: np.ndarray, shape: tuple[int, ...]) -> Regions:
    """The measured regions of one face from its 68 landmarks (iBUG order, frame pixels)."""
    h, w = shape[:2]
    lm = np.asarray(lm, np.float32)
    width = float(np.linalg.norm(lm[16] - lm[0])) or 1.0
    brows = lm[list(BROW_R + BROW_L)]
    up = (lm[8] - brows.mean(0)) * -FOREHEAD
    face = np.zeros((h, w), np.uint8)
    _poly(face, np.vstack([lm[list(JAW)], (brows + up)[::-1]]))
    holes = np.zeros((h, w), np.uint8)
    groups: tuple[tuple[tuple[int, ...], float], ...] = (
        (EYE_R, 0.06), (EYE_L, 0.06), (BROW_R, 0.04), (BROW_L, 0.04), (MOUTH, 0.05),
    )
    for group, grow in groups:
        part = np.zeros((h, w), np.uint8)
        _poly(part, cv2.convexHull(lm[list(group)]).reshape(-1, 2))
        holes |= _grow(part, grow * width)
    # The nose and the band under it are in: a moustache, stubble or a nostril's shadow pasted there is what
    # the swap brought in (the camera's own nostrils are in the camera frame too and cancel).
    skin = (face > 0) & (holes == 0)
    band = under_nose_band(lm, (h, w))
    lips = np.zeros((h, w), np.uint8)
    _poly(lips, lm[list(MOUTH)])
    skin |= (band | _nose(lm, (h, w))) & ~(_grow(lips, 0.01 * width) > 0)
    cheeks = np.zeros((h, w), np.uint8)
    for e, corner, jaw in ((41, 48, 2), (46, 54, 14)):
        c = (lm[e] + lm[corner] + lm[jaw]) / 3.0
        cv2.circle(cheeks, (int(round(c[0])), int(round(c[1]))), max(2, int(0.07 * width)), 255, -1)
    rings = np.zeros((h, w), np.uint8)
    for eye in (EYE_R, EYE_L):
        part = np.zeros((h, w), np.uint8)
        pts = lm[list(eye)]
        _poly(part, cv2.convexHull(pts).reshape(-1, 2))
        ew = float(np.ptp(pts[:, 0])) or 1.0
        rings |= _grow(part, 0.45 * ew) & ~_grow(part, 0.12 * ew)
    return Regions(skin, (cheeks > 0) & skin, rings > 0, band & ~(lips > 0))


def _nose(lm: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    nose = np.zeros(shape, np.uint8)
    _poly(nose, cv2.convexHull(lm[list(range(27, 36))]).reshape(-1, 2))
    return nose > 0


def under_nose_band(lm: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """From the nose's base (31-35) down to the upper lip's outer edge (48-54), as wide as the mouth."""
    band = np.zeros(shape, np.uint8)
    _poly(band, np.vstack([lm[[48, 31, 32, 33, 34, 35, 54]], lm[[54, 53, 52, 51, 50, 49, 48]]]))
    return band > 0


DARK_L = 10.0  # lightness (CIE L*, 0..100) this far below the face's skin median is a dark patch, not skin


def dark_under_nose(image: np.ndarray, lm: np.ndarray) -> float:
    """Share of the band under the nose (found on `image` itself: the swap may move the nose) darker than the
    rest of the face's skin by more than DARK_L."""
    r = regions(lm, image.shape)
    rest = r.skin & ~r.under_nose
    if not r.under_nose.any() or not rest.any():
        return 0.0
    lum = _lab(image)[..., 0]
    return float((lum[r.under_nose] < np.median(lum[rest]) - DARK_L).mean())


DARK_PATCH_L = 8.0  # CIE L* a smoothed patch may fall below the camera's there (beyond the face's shift)
DARK_PATCH_SMOOTH = 0.02  # of the face's width: a patch, not a pore, a lash or an edge moved by a pixel


def dark_patches(out: np.ndarray, cam: np.ndarray, skin: np.ndarray, width: float) -> float:
    """Share of the `skin` pixels whose smoothed lightness is more than DARK_PATCH_L below the camera's at the
    same place, beyond the median difference over the skin."""
    if not skin.any():
        return 0.0
    s = max(1.0, DARK_PATCH_SMOOTH * width)
    diff = cv2.GaussianBlur(_lab(out)[..., 0] - _lab(cam)[..., 0], (0, 0), s)[skin]
    return float((diff < np.median(diff) - DARK_PATCH_L).mean())


def _lab(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_BGR2LAB)


def far_share(image: np.ndarray, mask: np.ndarray) -> float:
    """Share of the masked pixels whose colour is more than FAR_DELTA_E from the masked median."""
    if not mask.any():
        return 0.0
    px = _lab(image)[mask]
    d = np.linalg.norm(px - np.median(px, axis=0), axis=1)
    return float((d > FAR_DELTA_E).mean())


def tone_delta(out: np.ndarray, cam: np.ndarray, mask: np.ndarray) -> float:
    if not mask.any():
        return float("nan")
    return float(np.linalg.norm(np.median(_lab(out)[mask], 0) - np.median(_lab(cam)[mask], 0)))


def _gradient(image: np.ndarray) -> np.ndarray:
    g = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
    return cv2.magnitude(cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3))


def edge_band(out: np.ndarray, cam: np.ndarray, width: float) -> np.ndarray:
    """A thin band along the edge of what the swap changed (independent of the engine's own mask)."""
    diff = cv2.GaussianBlur(np.abs(out.astype(np.int16) - cam.astype(np.int16)).max(2).astype(np.float32), (0, 0), 2)
    changed = (diff > 4).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(changed)
    if n <= 1:
        return np.zeros(changed.shape, bool)
    main = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    region = (labels == main).astype(np.uint8)
    region = cv2.morphologyEx(region, cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8))
    r = max(1, int(round(width)))
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return (cv2.dilate(region, k) - cv2.erode(region, k)) > 0


def ratio(out: np.ndarray, cam: np.ndarray, mask: np.ndarray) -> float:
    if not mask.any():
        return float("nan")
    a, b = float(_gradient(out)[mask].mean()), float(_gradient(cam)[mask].mean())
    return a / max(b, 1e-3)


def measure(cam: np.ndarray, out: np.ndarray, lm: np.ndarray, lm_out: np.ndarray | None = None) -> Measures:
    """The measures of one output frame; `lm_out`: the output's own landmarks, for what the swap may move (the
    band under the nose), else the camera's."""
    r = regions(lm, cam.shape)
    width = float(np.linalg.norm(np.asarray(lm[16], np.float32) - np.asarray(lm[0], np.float32)))
    band = edge_band(out, cam, 0.03 * width)
    return Measures(
        foreign=far_share(out, r.skin) - far_share(cam, r.skin),
        tone=tone_delta(out, cam, r.cheeks),
        seam=ratio(out, cam, band),
        occluders=ratio(out, cam, r.eye_rings),
        under_nose=dark_under_nose(out, lm if lm_out is None else lm_out) - dark_under_nose(cam, lm),
        # Skin on both sides: a feature the swap moved (the source's nose, its brows) is not a patch.
        dark=dark_patches(out, cam, r.skin if lm_out is None else r.skin & regions(lm_out, out.shape).skin, width),
    )


# FaceMesh points nearest to each of the 68 iBUG landmarks: the stand-in landmarker where dlib is not installed.
MESH_TO_68: tuple[int, ...] = (
    127, 234, 93, 132, 58, 136, 150, 176, 152, 400, 379, 365, 288, 361, 323, 454, 356,
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,
    168, 197, 5, 4, 75, 97, 2, 326, 305,
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,
    61, 40, 37, 0, 267, 270, 291, 321, 314, 17, 84, 91,
    78, 81, 13, 311, 308, 402, 14, 178,
)  # fmt: skip


class Landmarks68:
    """68 iBUG landmarks of the largest face: dlib's shape predictor when the `eval` extra is installed, else
    FaceMesh points mapped to the same scheme (`name` says which)."""

    def __init__(self, prefer_dlib: bool = True) -> None:
        self._dlib: tuple[object, object] | None = None
        self.name = "facemesh"
        if prefer_dlib:
            try:
                import dlib
                import face_recognition_models as frm

                predictor = dlib.shape_predictor(frm.pose_predictor_model_location())
                self._dlib = (dlib.get_frontal_face_detector(), predictor)
                self.name = "dlib"
            except ImportError:
                pass
        if self._dlib is None:
            # onnxruntime loads only when dlib is absent
            from vcamswap.faces.analyzer import FaceAnalyzer
            from vcamswap.faces.detector import BlazeFaceDetector
            from vcamswap.faces.landmarker import FaceMesh

            self._analyze = FaceAnalyzer(BlazeFaceDetector(), FaceMesh())

    def __call__(self, image: np.ndarray) -> np.ndarray | None:
        if self._dlib is not None:
            detector, predictor = self._dlib
            rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
            rects = list(detector(rgb, 0)) or list(detector(rgb, 1))  # type: ignore[operator]
            if not rects:
                return None
            shape = predictor(rgb, max(rects, key=lambda r: r.area()))  # type: ignore[operator]
            return np.array([[p.x, p.y] for p in shape.parts()], np.float32)
        face = self._analyze(image)
        return None if face is None or face.points is None else face.points[list(MESH_TO_68)].astype(np.float32)


def _finite(column: np.ndarray, reduce: str = "mean") -> float:
    """Mean (or max) of a column's finite values; NaN, without a warning, where there is none (no seam at all)."""
    values = column[np.isfinite(column)]
    return float(getattr(values, reduce)()) if values.size else float("nan")


def summarize(shots: list[tuple[int, np.ndarray, np.ndarray]], landmarks: Landmarks68, step: int = 1) -> Realism | None:
    """The measures over (frame index, camera frame, output) where the landmarker found the face in the camera
    frame; the frames are `step` apart in the clip (the flicker pairs only those)."""
    found = [(i, cam, out, lm) for i, cam, out in shots if (lm := landmarks(cam)) is not None]
    if not found:
        return None
    rows, mouth, eyes, kept = [], [], [], []
    for i, cam, out, lm in found:
        lm_out = landmarks(out)
        rows.append(measure(cam, out, lm, lm_out))
        mouth.append((mouth_opening(lm), mouth_opening(lm_out) if lm_out is not None else float("nan")))
        eyes.append((eye_aspect(lm), eye_aspect(lm_out) if lm_out is not None else float("nan")))
        kept.append(Shot(i, cam, out, regions(lm, cam.shape).skin))
    m = np.array(rows, np.float64)
    mo, ey = np.array(mouth), np.array(eyes)
    flick, pairs = flicker(kept, step)
    return Realism(
        frames=len(found),
        landmarks=landmarks.name,
        foreign_mean=round(_finite(m[:, 0]), 4),
        foreign_max=round(_finite(m[:, 0], "max"), 4),
        tone_delta_e=round(_finite(m[:, 1]), 2),
        seam=round(_finite(m[:, 2]), 3),
        occluders=round(_finite(m[:, 3]), 3),
        under_nose=round(_finite(m[:, 4]), 4),
        dark_mean=round(_finite(m[:, 5]), 4),
        dark_max=round(_finite(m[:, 5], "max"), 4),
        mouth_corr=round(correlation(mo[:, 1], mo[:, 0]), 3),
        eye_corr=round(correlation(ey[:, 1], ey[:, 0]), 3),
        flicker=round(flick, 3),
        step=step,
        flicker_pairs=pairs,
    )
