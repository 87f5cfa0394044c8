"""What a likeness above 0 costs, against likeness 0 on the same frames: a count of the pixels OpenCV's per-pixel
steps produce over whole frames (track, swap, finish, paste), not a time, so it holds on a busy machine."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from helpers.frames import read_frames
from helpers.media import media_path
from helpers.pipeline import build

from vcamswap.engines.lite.engine import LiteEngine
from vcamswap.faces.detector import BlazeFaceDetector
from vcamswap.faces.landmarker import FaceMesh
from vcamswap.types import Frame

SOURCE = "faces/hard/long_hair_over_temples_woman_elizabeth_olsen.jpg"
CLIP = "videos/webcam/webcam_640x480_30fps_s18_woman.mp4"
# The per-pixel steps the engine, compose and the paste-back use (a triangle's fill is left out: one call per
# triangle, the same count at every likeness).
PER_PIXEL = ("remap", "resize", "GaussianBlur", "LUT", "blendLinear", "cvtColor", "extractChannel", "fillPoly",
             "dilate", "erode", "warpAffine", "distanceTransform", "morphologyEx", "copyMakeBorder")
# Above 0 the frame around the face moves (and is pasted back further out), the photo's own eyes and lips are
# warped, the relight looks at more: work of its own, but confined to where it shows. It was 1.37-1.40x.
MOST = 1.3


def count_pixels(monkeypatch: pytest.MonkeyPatch, tally: list[int]) -> None:
    """Each per-pixel OpenCV call adds the pixels (rows x columns) of what it returns to `tally[0]`."""
    for name in PER_PIXEL:
        real: Callable[..., Any] = getattr(cv2, name)

        def counted(*args: Any, _real: Callable[..., Any] = real, **kwargs: Any) -> Any:
            out = _real(*args, **kwargs)
            if isinstance(out, np.ndarray) and out.ndim >= 2:
                tally[0] += out.shape[0] * out.shape[1]
            return out

        monkeypatch.setattr(cv2, name, counted)


def test_likeness_above_0_does_little_more_per_pixel_work_than_0(
    detector: BlazeFaceDetector, mesh: FaceMesh, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frames = read_frames(media_path(CLIP), 12)
    pixels = {}
    for level in (0.0, 0.5, 1.0):
        driven = build(LiteEngine(), detector, mesh, tmp_path / str(level), str(media_path(SOURCE)),
                       adjust=lambda p, level=level: p.with_knobs(likeness=level))
        for i, image in enumerate(frames[:2]):  # the source is prepared on the first frames: not counted
            driven.process(Frame(image, i, 0.0))
        tally = [0]
        with monkeypatch.context() as m:
            count_pixels(m, tally)
            for i, image in enumerate(frames[2:], 2):
                assert driven.process(Frame(image, i, 0.0)).swapped, f"frame {i} not swapped"
        pixels[level] = tally[0]
    assert pixels[0.0] > 0
    ratios = {level: n / pixels[0.0] for level, n in pixels.items()}
    assert ratios[0.5] <= MOST and ratios[1.0] <= MOST, ratios
