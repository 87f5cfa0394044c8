"""The likeness's eyes and the source's brows on real pairs, each with a control that shows the measure can fail:
the eyes are the camera's or the source's, never a half-and-half mix (two lid lines read as eye shadow); the
camera's own brow and crease, moved with its frame, are not taken for something in front of the face; a thick
brow keeps its hair through the softening to the camera's detail."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from helpers.frames import read_frames
from helpers.media import media_path
from helpers.pipeline import build

from vcamswap.compose.align import Box
from vcamswap.compose.skin import face_width
from vcamswap.engines.lite import finish, relight, toward
from vcamswap.engines.lite.engine import LiteEngine, LiteSource, morph
from vcamswap.engines.lite.masks import shifted
from vcamswap.engines.lite.mesh import mesh_warp, rasterize_indices, triangle_affines
from vcamswap.faces.detector import BlazeFaceDetector
from vcamswap.faces.landmarker import FaceMesh
from vcamswap.faces.landmarks import LEFT_EYE, LEFT_EYEBROW, RIGHT_EYE, RIGHT_EYEBROW
from vcamswap.presets import Preset
from vcamswap.types import FaceGeometry, Frame, SwapOutput

BEARD = "faces/hard/full_beard_man_jack_dorsey.jpg"  # thick dark brows, blue eyes
PALE = "faces/hard/long_hair_over_temples_woman_elizabeth_olsen.jpg"
WEBCAM = "videos/webcam/webcam_640x480_30fps_s18_woman.mp4"  # pale, thin brows, brown eyes, a soft picture
DARK_CLIP = "videos/hard/dark_skin_man_obama_white_house_address.mp4"  # thick brows, deep-set lids
FRAMES, MEASURED = 24, range(12, 24, 3)


class Recording(LiteEngine):
    """The lite engine, keeping per swap the face's points after the move and the two eyes the output may show,
    both brought to those points: the camera's crop with each eye moved whole (as the engine moves it) and the
    source photo warped by the mesh."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[dict[str, Any]] = []

    def swap(self, crop: np.ndarray, face: FaceGeometry, source: LiteSource, preset: Preset) -> SwapOutput:
        out = super().swap(crop, face, source, preset)
        assert face.points is not None
        size = crop.shape[0]
        dst, src = face.points.astype(np.float32), source.points * size
        shaped = out.warp.points if out.warp is not None else morph(dst, src, source.blend).points
        whole = Box(0, 0, size, size)
        index = rasterize_indices(shaped, source.triangles, size, whole)
        affines = triangle_affines(shaped, src, source.triangles)
        photo = mesh_warp(source.own_at(size), src, shaped, source.triangles, index, affines, whole)[..., :3]
        cam = crop.copy()
        for eye in (RIGHT_EYE, LEFT_EYE):
            dx, dy = (shaped[list(eye)] - dst[list(eye)]).mean(0)
            half = np.abs(shaped[list(eye)] - shaped[list(eye)].mean(0)).max(0) + size // 5
            c = shaped[list(eye)].mean(0)
            x0, y0 = np.maximum(np.floor(c - half), 0).astype(int)
            x1, y1 = np.minimum(np.ceil(c + half), size).astype(int)
            box = Box(int(x0), int(y0), int(x1), int(y1))
            cam[box.region] = shifted(crop, dx, dy, box)[box.region]
        self.seen.append({"shaped": shaped, "photo": np.ascontiguousarray(photo), "camera_eye": cam})
        return out


def finished(detector: BlazeFaceDetector, mesh: FaceMesh, folder: Path, face: str, clip: str, level: float,
             monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Per measured frame the engine's record and the finished face in the crop."""
    engine, done = Recording(), []
    original = engine.finish

    def keep(out: SwapOutput, crop: np.ndarray, *rest: Any) -> SwapOutput:
        final = original(out, crop, *rest)
        done.append(final.crop.copy())
        return final

    with monkeypatch.context() as m:
        m.setattr(engine, "finish", keep)
        d = build(engine, detector, mesh, folder, str(media_path(face)), adjust=lambda p: p.with_knobs(likeness=level))
        for i, image in enumerate(read_frames(media_path(clip), FRAMES)):
            assert d.process(Frame(image, i, 0.0)).swapped, f"frame {i} not swapped"
    assert len(done) == len(engine.seen) == FRAMES
    return [dict(engine.seen[i], final=done[i]) for i in MEASURED]


def disk(r: float) -> np.ndarray:
    k = max(1, int(round(r)))
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1))


def outline(points: np.ndarray, idx: tuple[int, ...], shape: tuple[int, ...], hull: bool = False) -> np.ndarray:
    mask = np.zeros(shape[:2], np.uint8)
    p = np.round(points[list(idx)]).astype(np.int32)
    cv2.fillConvexPoly(mask, cv2.convexHull(p), 255) if hull else cv2.fillPoly(mask, [p], 255)
    return mask


def lids(points: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Lids, crease and lashes: each eye-and-brow hull and a band under the lower lid, less the brow and the
    eye opening's inside."""
    fw = face_width(points)
    out = np.zeros(shape[:2], bool)
    for eye, brow in ((RIGHT_EYE, RIGHT_EYEBROW), (LEFT_EYE, LEFT_EYEBROW)):
        e = outline(points, eye, shape)
        m = (outline(points, eye + brow, shape, hull=True) > 0) | (cv2.dilate(e, disk(0.04 * fw)) > 0)
        m &= ~(cv2.dilate(outline(points, brow, shape), disk(0.01 * fw)) > 0)
        out |= m & ~(cv2.erode(e, disk(0.015 * fw)) > 0)
    return out


def band(image: np.ndarray, sigma: float) -> np.ndarray:
    """Log lightness less its blur: lines and lashes, whatever light or tone the relight gave them."""
    g = np.log(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32) + 8.0)
    return g - cv2.GaussianBlur(g, (0, 0), sigma)


def mix_index(rec: dict[str, Any]) -> float:
    """How much the lids are a mix of both eyes: in windows a sixteenth of the face wide, the output fitted as
    a * camera's eye + b * source's (least squares, on `band`); per window the camera's share s = a / (a + b), and
    4 s (1 - s) averaged where the two eyes differ. 1: a half-and-half mix; 0: one eye or the other."""
    pts = rec["shaped"]
    fw = face_width(pts)
    o, c, r = (band(rec[k], max(1.0, 0.02 * fw)) for k in ("final", "camera_eye", "photo"))
    k = max(3, int(round(0.06 * fw)) | 1)

    def box(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, -1, (k, k))

    cc, rr, cr, oc, orr = box(c * c), box(r * r), box(c * r), box(o * c), box(o * r)
    det = cc * rr - cr * cr
    ok = det > 1e-3 * (cc * rr + 1e-6)
    safe = np.where(ok, det, 1.0)
    a = np.clip(np.where(ok, (oc * rr - orr * cr) / safe, 0.0), 0.0, None)
    b = np.clip(np.where(ok, (orr * cc - oc * cr) / safe, 0.0), 0.0, None)
    share = a / np.maximum(a + b, 1e-6)
    w = box((c - r) ** 2) * ok * ((a + b) > 0.3) * lids(pts, o.shape)
    return float((4.0 * share * (1.0 - share) * w).sum() / max(float(w.sum()), 1e-9))


def test_the_eyes_are_the_camera_s_or_the_source_s_never_both(
    detector: BlazeFaceDetector, mesh: FaceMesh, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def mix(level: float, name: str) -> float:
        recs = finished(detector, mesh, tmp_path / name, PALE, DARK_CLIP, level, monkeypatch)
        return float(np.mean([mix_index(r) for r in recs]))

    floor = mix(0.0, "zero")  # one eye only, the camera's: the index's floor is the soft edge around it
    half = mix(0.5, "half")
    assert half < floor + 0.1, (half, floor)
    # Control: the two eyes mixed in proportion to the likeness, as before (a smoothstep over 0..1 is 0.5 at 0.5).
    monkeypatch.setattr(toward, "EYES_FROM", 0.0)
    monkeypatch.setattr(toward, "EYES_TO", 1.0)
    mixed = mix(0.5, "mixed")
    assert mixed > floor + 0.3, (mixed, floor)


UPPER = ((246, 161, 160, 159, 158, 157, 173), (466, 388, 387, 386, 385, 384, 398))
BROW_LOW = ((46, 53, 52, 65, 55), (276, 283, 282, 295, 285))


def dark_lines(image: np.ndarray, points: np.ndarray) -> float:
    """Distinct dark lines (minima of lightness 4 levels below both sides' highs) on vertical profiles from just
    above the upper lid to the brow's lower edge, over the middle of each eye: the lash line and a crease, or
    more where a second lid or brow shows."""
    g = cv2.GaussianBlur(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32), (0, 0), 1.0)
    counts = []
    for up, brow in zip(UPPER, BROW_LOW, strict=True):
        lid, low = points[list(up)], points[list(brow)]
        lid, low = lid[np.argsort(lid[:, 0])], low[np.argsort(low[:, 0])]
        for x in np.linspace(lid[0, 0], lid[-1, 0], 9)[2:-2]:
            top, bottom = np.interp(x, low[:, 0], low[:, 1]), np.interp(x, lid[:, 0], lid[:, 1]) + 2
            ys = np.arange(top, bottom, 0.5, dtype=np.float32)
            p = cv2.remap(g, np.full((1, len(ys)), x, np.float32), ys[None], cv2.INTER_LINEAR)[0]
            counts.append(sum(1 for i in range(1, len(p) - 1) if p[i] <= p[i - 1] and p[i] < p[i + 1]
                              and min(p[:i].max(), p[i + 1:].max()) - p[i] >= 4.0))
    return float(np.mean(counts))


def test_the_camera_s_brow_does_not_show_between_the_source_s_eye_and_brow(
    detector: BlazeFaceDetector, mesh: FaceMesh, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def lines(level: float, name: str) -> float:
        recs = finished(detector, mesh, tmp_path / name, PALE, DARK_CLIP, level, monkeypatch)
        return float(np.mean([dark_lines(r["final"], r["shaped"]) for r in recs]))

    now = lines(1.0, "now")
    assert now < 1.0, now
    # Control: the camera's occluders found with the face's points on the moved crop, as before: the camera's
    # brow, moved less far than the source's, lay outside the brow outline and showed as a dark band.
    monkeypatch.setattr(finish, "moved_points", lambda points, warp, size: warp.points)
    before = lines(1.0, "before")
    assert before > now + 0.3, (before, now)


def brow_detail(image: np.ndarray, points: np.ndarray) -> float:
    """Hair for the brows' darkness: fine detail inside the brows (log lightness less its 1 px blur) over their
    contrast to the skin around them (log lightness). A dark brow with little of it reads as a painted block."""
    fw = face_width(points)
    brow = np.maximum(outline(points, RIGHT_EYEBROW, image.shape), outline(points, LEFT_EYEBROW, image.shape))
    core = cv2.erode(brow, disk(0.005 * fw)) > 0
    ring = (cv2.dilate(brow, disk(0.06 * fw)) > 0) & ~(cv2.dilate(brow, disk(0.03 * fw)) > 0)
    g = np.log(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32) + 8.0)
    fine = np.abs(g - cv2.GaussianBlur(g, (0, 0), 1.0))
    contrast = float(np.median(g[ring]) - np.median(g[core]))
    return float(fine[core].mean()) / max(contrast, 1e-3)


def test_a_thick_brow_keeps_its_hair_through_the_softening(
    detector: BlazeFaceDetector, mesh: FaceMesh, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def detail(name: str) -> tuple[float, float]:
        recs = finished(detector, mesh, tmp_path / name, BEARD, WEBCAM, 0.0, monkeypatch)
        return (float(np.mean([brow_detail(r["final"], r["shaped"]) for r in recs])),
                float(np.mean([brow_detail(r["photo"], r["shaped"]) for r in recs])))

    now, photo = detail("now")
    assert now > 0.55 * photo, (now, photo)
    # Control: the brows softened as much as the skin, as before.
    monkeypatch.setattr(relight, "BROW_SOFTEN", 1.0)
    before, _ = detail("before")
    assert before < 0.6 * photo, (before, photo)  # the measure sees the loss
    assert now > 1.3 * before, (now, before, photo)
