"""The likeness control above 0 on real media, each property with a control that shows it can fail: the source's
tone held back by its gap to the camera's, no moustache with the source's lips, the frame around the face pulled
no further than a share of the face, a photo's smile not keeping the mouth open, and a turned face keeping more of
the camera's shape."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers.frames import read_frames
from helpers.media import media_path
from helpers.pipeline import build

from vcamswap.compose.skin import face_width, polygon
from vcamswap.engines.lite import finish, likeness, toward
from vcamswap.engines.lite.engine import LiteEngine, LiteSource
from vcamswap.faces.analyzer import FaceAnalyzer
from vcamswap.faces.detector import BlazeFaceDetector
from vcamswap.faces.landmarker import FaceMesh
from vcamswap.faces.landmarks import FACE_OVAL, LIPS_INNER, LIPS_OUTER
from vcamswap.presets import Preset
from vcamswap.types import FaceGeometry, Frame, SwapOutput

PALE = "faces/hard/long_hair_over_temples_woman_elizabeth_olsen.jpg"
DARK_CLIP = "videos/hard/dark_skin_man_obama_white_house_address.mp4"
BEARD = "faces/hard/full_beard_man_jack_dorsey.jpg"
SHAVED = "faces/hard/dark_skin_woman_ffhq00002.png"
SMILE = "faces/single/obama_official_portrait.jpg"  # a broad smile with teeth
CLOSED_CLIP = "videos/webcam/webcam_640x480_30fps_s18_woman.mp4"  # the mouth stays closed


def last_outputs(detector: BlazeFaceDetector, mesh: FaceMesh, folder: Path, face: str,
                 frames: list[np.ndarray], level: float, keep: int) -> list[np.ndarray]:
    d = build(LiteEngine(), detector, mesh, folder, str(media_path(face)),
              adjust=lambda p: p.with_knobs(likeness=level))
    return [output for _, output in d.swap(frames)][-keep:]


def patch_lab(image: np.ndarray, centres: np.ndarray, radius: float) -> np.ndarray:
    mask = np.zeros(image.shape[:2], np.uint8)
    for x, y in centres:
        cv2.circle(mask, (int(x), int(y)), int(radius), 255, -1)
    lab = cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_BGR2LAB)
    return np.median(lab[mask > 0], 0)


# Cheeks and the skin under each eye: what must keep the camera's tone when the source's is far from it.
CHEEKS_AND_LIDS = (205, 425, 118, 347)


def test_a_pale_source_on_a_dark_face_keeps_the_camera_tone(
    detector: BlazeFaceDetector, mesh: FaceMesh, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    analyze = FaceAnalyzer(detector, mesh)
    frames = read_frames(media_path(DARK_CLIP), 16)
    cams = [analyze(f) for f in frames[-3:]]
    assert all(c is not None and c.points is not None for c in cams)

    def gap(outs: list[np.ndarray]) -> float:
        d = []
        for cam, face, out in zip(frames[-3:], cams, outs, strict=True):
            assert face is not None and face.points is not None
            at, r = face.points[list(CHEEKS_AND_LIDS)], 0.05 * face_width(face.points)
            d.append(float(np.linalg.norm(patch_lab(out, at, r) - patch_lab(cam, at, r))))
        return float(np.mean(d))

    capped = gap(last_outputs(detector, mesh, tmp_path / "a", PALE, frames, 1.0, 3))
    # Control: the source's tone kept whatever the gap, as before the cap.
    monkeypatch.setattr(finish, "TONE_NEAR", 1e6 - 1)
    monkeypatch.setattr(finish, "TONE_FAR", 1e6)
    uncapped = gap(last_outputs(detector, mesh, tmp_path / "b", PALE, frames, 1.0, 3))
    assert uncapped > 15.0, f"control: the pale source's own tone is {uncapped:.1f} dE from the camera's"
    assert capped < 8.0 and capped < 0.4 * uncapped, (capped, uncapped)


def prepared(analyze: FaceAnalyzer, rel: str) -> tuple[LiteSource, np.ndarray]:
    image = cv2.imread(str(media_path(rel)))
    assert image is not None
    face = analyze(image)
    assert face is not None
    source = LiteEngine().prepare_source(image, face)
    return source, source.points * 512


def above_lip(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Between the nose's base and the upper lip's outer line, as wide as the mouth: a moustache's place."""
    mask = np.zeros(shape, np.uint8)
    upper = points[[61, 40, 37, 0, 267, 270, 291]]  # the upper lip's outer line, corner to corner
    lifted = upper[::-1] - [0, 0.06 * face_width(points)]
    cv2.fillPoly(mask, [np.round(np.vstack([upper, lifted])).astype(np.int32)], 255)
    return mask > 0


def lightness(image: np.ndarray, where: np.ndarray) -> float:
    return float(np.median(cv2.cvtColor(image, cv2.COLOR_BGR2LAB)[..., 0][where]))


def test_the_source_lips_come_without_a_moustache(detector: BlazeFaceDetector, mesh: FaceMesh) -> None:
    analyze = FaceAnalyzer(detector, mesh)
    source, pts = prepared(analyze, BEARD)
    assert source.raw is not None and source.skin is not None
    shown = source.own_at(512)[..., :3]
    band = above_lip(pts, (512, 512))
    skin = lightness(source.texture, source.skin > 0.9)
    # Control: in the photo the band is the moustache, far darker than the skin.
    assert lightness(source.raw, band) < skin - 40
    assert lightness(shown, band) > skin - 20, (lightness(shown, band), skin)
    # A clean-shaven source's lips are shown as they are.
    source, pts = prepared(analyze, SHAVED)
    assert source.raw is not None
    tissue = np.zeros((512, 512), np.uint8)
    cv2.fillPoly(tissue, [polygon(pts, LIPS_OUTER)], 255, shift=4)
    cv2.fillPoly(tissue, [polygon(pts, LIPS_INNER)], 0, shift=4)
    inside = cv2.erode(tissue, np.ones((5, 5), np.uint8)) > 0
    diff = np.abs(source.own_at(512)[..., :3].astype(int) - source.raw.astype(int))[inside].mean()
    assert diff < 4.0, diff


def test_a_narrow_source_pulls_the_frame_only_near_the_face(
    detector: BlazeFaceDetector, mesh: FaceMesh, monkeypatch: pytest.MonkeyPatch
) -> None:
    analyze = FaceAnalyzer(detector, mesh)
    source, _ = prepared(analyze, PALE)
    frame = read_frames(media_path(DARK_CLIP), 1)[0]
    cam = analyze(frame)
    assert cam is not None and cam.points is not None
    size = 256
    # The camera's points brought into a 256 crop like the pipeline's, and a source a third narrower than it.
    m = cv2.estimateAffinePartial2D(cam.points, source.points * size)[0]
    dst = (cam.points @ m[:, :2].T + m[:, 2]).astype(np.float32)
    src = source.points * size
    src = src.copy()
    src[:, 0] = (src[:, 0] - src[:, 0].mean()) * 0.67 + src[:, 0].mean()

    def pulls() -> tuple[float, float]:
        shaped, _ = likeness.target_points(dst, src, source.blend, 1.0, likeness.Neutral())
        field = cv2.resize(likeness.displacement(dst, shaped, size), (size, size))
        amount = np.sqrt((field ** 2).sum(-1))
        oval = np.zeros((size, size), np.uint8)
        cv2.fillPoly(oval, [np.round(dst[list(FACE_OVAL)]).astype(np.int32)], 255)
        outside = cv2.distanceTransform(255 - oval, cv2.DIST_L2, 3) > 0.12 * face_width(dst)
        return float(amount.max()) / face_width(dst), float(amount[outside].max()) / face_width(dst)

    most, far = pulls()
    # Control: no cap and the old reach (a fifth of the face's width past the outline).
    monkeypatch.setattr(likeness, "MAX_PULL", 10.0)
    monkeypatch.setattr(likeness, "PULL_FALLOFF", 10.0)
    most_before, far_before = pulls()
    assert most_before > 0.12 and far_before > 0.03, (most_before, far_before)
    assert most <= 2 * likeness.MAX_PULL + 1e-3 and far < 0.01, (most, far)


class Recording(LiteEngine):
    """The lite engine, keeping the camera's points and the reshaped points of every swap."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[np.ndarray, np.ndarray]] = []

    def swap(self, crop: np.ndarray, face: FaceGeometry, source: LiteSource, preset: Preset) -> SwapOutput:
        out = super().swap(crop, face, source, preset)
        assert out.warp is not None and face.points is not None
        self.seen.append((face.points, out.warp.points))
        return out


def opening(points: np.ndarray) -> float:
    """The inner lips' area over the square of the eyes' distance."""
    return float(cv2.contourArea(points[list(LIPS_INNER)].astype(np.float32))
                 / np.linalg.norm(points[133] - points[362]) ** 2)


def test_a_smiling_photo_does_not_keep_the_mouth_open(
    detector: BlazeFaceDetector, mesh: FaceMesh, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frames = read_frames(media_path(CLOSED_CLIP), 16)

    def openings(folder: Path) -> tuple[float, float]:
        engine = Recording()
        d = build(engine, detector, mesh, folder, str(media_path(SMILE)), adjust=lambda p: p.with_knobs(likeness=1.0))
        for i, image in enumerate(frames):
            d.process(Frame(image, i, 0.0))
        cam = float(np.mean([opening(c) for c, _ in engine.seen[-5:]]))
        return cam, float(np.mean([opening(s) for _, s in engine.seen[-5:]]))

    cam, now = openings(tmp_path / "a")
    # Control: the photo's own opening kept (the camera's closed lips squeezed into its smile, red and stretched).
    monkeypatch.setattr(likeness, "closed_like", lambda src, rest: src)
    monkeypatch.setattr(likeness, "opened_like", lambda shape, cam, level: shape)
    _, before = openings(tmp_path / "b")
    assert before > cam + 0.3, (before, cam)
    # The photo's mouth is wider than the camera's: the same opening height covers a little more area.
    assert now < cam + 0.06, (now, cam)


TURNING = "videos/hard/uneven_two_color_side_light_woman_turning.mp4"


def test_a_turned_face_keeps_the_camera_shape(
    detector: BlazeFaceDetector, mesh: FaceMesh, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frames = read_frames(media_path(TURNING), 60, 3)
    how_frontal = toward.frontal  # the measure itself, kept for the control below

    def moved(folder: Path) -> float:
        """How far the reshaped points lie from the camera's, over the face's width, on the turned frames."""
        engine = Recording()
        d = build(engine, detector, mesh, folder, str(media_path(SHAVED)), adjust=lambda p: p.with_knobs(likeness=1.0))
        for i, image in enumerate(frames):
            d.process(Frame(image, i, 0.0))
        turned = [(c, s) for c, s in engine.seen if how_frontal(c) < 0.75]
        assert len(turned) >= 5, "control: the clip turns to a three-quarter view"
        return float(np.mean([np.linalg.norm(s - c, axis=1).mean() / face_width(c) for c, s in turned]))

    now = moved(tmp_path / "a")
    # Control: the source's frontal shape whatever the turn.
    monkeypatch.setattr(toward, "frontal", lambda points: 1.0)
    before = moved(tmp_path / "b")
    assert now < 0.8 * before, (now, before)
