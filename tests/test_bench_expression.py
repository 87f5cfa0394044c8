"""The bench's expression and flicker measures (tools/bench/expression.py) on a real talking clip: the camera's
own frames as the "output" follow the camera, and controls that freeze the mouth or add noise to the face fail."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from helpers.frames import read_frames
from helpers.media import media_path

from vcamswap.tools.bench.expression import Shot, correlation, flicker, mouth_opening
from vcamswap.tools.bench.metrics import Realism
from vcamswap.tools.bench.realism import Landmarks68, regions, summarize

TALKING = "videos/real/hdtf_WDA_KatieHill_000_512.mp4"  # talks and blinks, the head moves a little
FRAMES = 30
STABLE = [27, 28, 29, 30, 31, 35, 36, 39, 42, 45]  # nose and eye corners: they do not move with the mouth


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return read_frames(media_path(TALKING), FRAMES)


@pytest.fixture(scope="module", params=["dlib", "facemesh"])
def landmarks(request: pytest.FixtureRequest) -> Landmarks68:
    """dlib's 68 points (the `eval` extra; FaceMesh's where it is absent) and the FaceMesh stand-in."""
    return Landmarks68(prefer_dlib=request.param == "dlib")


@pytest.fixture(scope="module")
def points(frames: list[np.ndarray], landmarks: Landmarks68) -> list[np.ndarray]:
    found = [landmarks(f) for f in frames]
    assert all(p is not None for p in found), "the landmarker lost the face"
    return [p for p in found if p is not None]


def realism(frames: list[np.ndarray], outputs: list[np.ndarray], landmarks: Landmarks68) -> Realism:
    r = summarize([(i, cam, out) for i, (cam, out) in enumerate(zip(frames, outputs, strict=True))], landmarks)
    assert r is not None
    return r


def frozen_mouth(frames: list[np.ndarray], points: list[np.ndarray], i: int) -> np.ndarray:
    """Frame i with the lower face (nose base to chin) of frame 0, aligned on the nose and eyes: the mouth
    says what it said in frame 0."""
    m, _ = cv2.estimateAffinePartial2D(points[0][STABLE], points[i][STABLE])
    h, w = frames[i].shape[:2]
    warped = cv2.warpAffine(frames[0], m, (w, h), borderMode=cv2.BORDER_REPLICATE)
    chin0 = cv2.transform(points[0][None, 2:15], m)[0]
    lower = np.vstack([points[i][2:15], points[i][[35, 33, 31]], chin0])
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [cv2.convexHull(lower).astype(np.int32)], 255)
    alpha = cv2.GaussianBlur(cv2.dilate(mask, np.ones((9, 9), np.uint8)), (0, 0), 4)[..., None] / 255.0
    return (warped * alpha + frames[i] * (1 - alpha)).astype(np.uint8)


def noisy_face(frame: np.ndarray, lm: np.ndarray, rng: np.random.Generator, sigma: float = 12.0) -> np.ndarray:
    """Grey noise inside the face's skin, new on every frame: a swap whose texture flickers."""
    skin = regions(lm, frame.shape).skin
    out = frame.astype(np.float32)
    out[skin] += rng.normal(0.0, sigma, (int(skin.sum()), 1))
    return np.clip(out, 0, 255).astype(np.uint8)


def test_correlation_is_nan_safe() -> None:
    t = np.arange(12, dtype=np.float64)
    assert correlation(t, 2 * t + 1) == pytest.approx(1.0)
    assert correlation(t, -t) == pytest.approx(-1.0)
    assert math.isnan(correlation(t, np.full(12, 0.3)))  # a constant series has nothing to follow
    assert math.isnan(correlation(t[:4], t[:4]))  # too few frames
    with_gaps = np.where(t % 3 == 0, np.nan, t)  # frames without landmarks are left out
    assert correlation(with_gaps, t) == pytest.approx(1.0)


def test_camera_as_output_follows_itself(
    frames: list[np.ndarray], points: list[np.ndarray], landmarks: Landmarks68
) -> None:
    mouth = [mouth_opening(p) for p in points]
    assert np.ptp(mouth) > 0.1, "the clip should talk"
    r = realism(frames, frames, landmarks)
    assert r.frames == FRAMES and r.flicker_pairs == FRAMES - 1
    assert r.mouth_corr == pytest.approx(1.0, abs=0.01)
    assert r.eye_corr == pytest.approx(1.0, abs=0.01)
    assert r.flicker == pytest.approx(1.0, abs=0.01)


def test_frozen_mouth_does_not_follow(
    frames: list[np.ndarray], points: list[np.ndarray], landmarks: Landmarks68
) -> None:
    """Control: the lower face pasted from frame 0 keeps its mouth; the eyes are the camera's."""
    r = realism(frames, [frozen_mouth(frames, points, i) for i in range(FRAMES)], landmarks)
    assert r.mouth_corr < 0.4, r
    assert r.eye_corr > 0.8, r  # only the mouth was frozen


def test_noise_in_the_face_flickers(
    frames: list[np.ndarray], points: list[np.ndarray], landmarks: Landmarks68
) -> None:
    rng = np.random.default_rng(0)
    r = realism(frames, [noisy_face(f, p, rng) for f, p in zip(frames, points, strict=True)], landmarks)
    assert r.flicker > 2.0, r
    assert realism(frames, frames, landmarks).flicker == pytest.approx(1.0, abs=0.01)


def test_flicker_pairs_only_frames_a_step_apart(frames: list[np.ndarray], points: list[np.ndarray]) -> None:
    """Measured frames 0, 2, 4, 7 at a step of 2: the 4 -> 7 pair spans more time and is left out, so a
    flickering frame 7 does not count."""
    rng = np.random.default_rng(1)
    numbers = [0, 2, 4, 7]
    shots = [Shot(n, frames[n], frames[n], regions(points[n], frames[n].shape).skin) for n in numbers]
    ratio, pairs = flicker(shots, 2)
    assert (ratio, pairs) == (pytest.approx(1.0), 2)
    shots[-1] = shots[-1]._replace(output=noisy_face(frames[7], points[7], rng))
    assert flicker(shots, 2) == (pytest.approx(1.0), 2)
    assert flicker(shots, 3)[0] > 1.5  # at a step of 3 the 4 -> 7 pair is the one that counts
