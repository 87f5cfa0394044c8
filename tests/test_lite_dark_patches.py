"""No grey bands over the camera's face: a photo's shadowed cheek, the stubble at a beard's edge or a glasses rim's
shadow is not laid over the camera's lit skin (measured against the camera frame, with a control that takes the
step out), and the measure that sees them sees nothing else."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers.frames import read_frames
from helpers.media import WEBCAM, media_path
from helpers.pipeline import build

from vcamswap.engines.lite import relight
from vcamswap.engines.lite.engine import LiteEngine
from vcamswap.faces.detector import BlazeFaceDetector
from vcamswap.faces.landmarker import FaceMesh
from vcamswap.tools.bench.realism import Landmarks68, dark_patches, regions

SHADOWED = "faces/hard/beanie_hat_man_eminem.jpg"  # lit from one side: his right cheek and the nose's side in shadow
TURNED_CLIP = "videos/webcam/webcam_640x480_30fps_mix4.mp4"  # her near cheek, evenly lit, where his shadow lands


def dark_share(detector: BlazeFaceDetector, mesh: FaceMesh, folder: Path) -> float:
    landmarks = Landmarks68()
    driven = build(LiteEngine(), detector, mesh, folder, str(media_path(SHADOWED)))
    shares = []
    for image, output in driven.swap(read_frames(media_path(TURNED_CLIP), 24), every=4):
        lm = landmarks(image)
        assert lm is not None
        width = float(np.linalg.norm(lm[16] - lm[0]))
        shares.append(dark_patches(output, image, regions(lm, image.shape).skin, width))
    return float(np.mean(shares))


def test_a_side_lit_photo_leaves_no_grey_band_on_a_lit_face(
    detector: BlazeFaceDetector, mesh: FaceMesh, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    share = dark_share(detector, mesh, tmp_path / "on")
    # The control: no patch is ever lifted (a tolerance of the whole lightness). It scored 0.053 (a band from the eye
    # down the cheek to the jaw, and the nose's side), the lift 0.013.
    monkeypatch.setattr(relight, "DARK_TOLERANCE", 1.0)
    control = dark_share(detector, mesh, tmp_path / "off")
    print(f"dark {share:.3f}, control {control:.3f}")
    assert control > 0.035, f"the control shows no band ({control:.3f}): the test no longer sees one"
    assert share <= 0.025 and share < 0.5 * control, f"{share:.3f} of the skin in dark patches (control {control:.3f})"


def test_the_dark_patch_measure_sees_a_band_and_not_a_tone() -> None:
    cam = read_frames(media_path(WEBCAM), 1)[0]
    lm = Landmarks68()(cam)
    assert lm is not None
    skin = regions(lm, cam.shape).skin
    width = float(np.linalg.norm(lm[16] - lm[0]))
    assert dark_patches(cam, cam, skin, width) == 0.0
    # A whole face a tone darker is a tone, not a patch.
    darker = np.clip(cam.astype(np.float32) * 0.8, 0, 255).astype(np.uint8)
    assert dark_patches(darker, cam, skin, width) < 0.01
    # A soft grey band down one cheek, a tenth of the face wide: what a photo's shadow looked like.
    band = np.zeros(cam.shape[:2], np.float32)
    x = int(lm[3][0] + 0.1 * width)
    cv2.line(band, (x, int(lm[1][1])), (x, int(lm[5][1])), 1.0, max(2, int(0.1 * width)))
    band = cv2.GaussianBlur(band, (0, 0), 0.02 * width)[..., None]
    shadowed = np.clip(cam.astype(np.float32) * (1.0 - 0.35 * band), 0, 255).astype(np.uint8)
    share = dark_patches(shadowed, cam, skin, width)
    assert share > 0.04, f"a band over {share:.3f} of the skin"
