"""Under the nose the swap shows skin: a source's moustache, stubble or nostril shadow is not carried onto the
camera's face (measured on a real photo and real clips, against the camera frame)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers.frames import read_frames
from helpers.media import WEBCAM, media_path
from helpers.pipeline import build

from vcamswap.engines.lite.engine import LiteEngine
from vcamswap.faces.detector import BlazeFaceDetector
from vcamswap.faces.landmarker import FaceMesh
from vcamswap.tools.bench.realism import Landmarks68, dark_under_nose
from vcamswap.types import Frame

STUBBLE = "faces/hard/beard_stubble_side_light_man_eric_bana.png"  # thin moustache, stubble, lit from one side
PALE_CLIP = "videos/real/hdtf_WDA_KatieHill_000_512.mp4"


# At every likeness: above 0 the source's lips come with the band around them, its moustache handed to the camera.
@pytest.mark.parametrize(("clip", "likeness"), [(WEBCAM, 0.0), (PALE_CLIP, 0.0), (WEBCAM, 1.0), (PALE_CLIP, 0.5)])
def test_no_dark_blob_under_the_nose(
    detector: BlazeFaceDetector, mesh: FaceMesh, tmp_path: Path, clip: str, likeness: float
) -> None:
    landmarks = Landmarks68()
    driven = build(LiteEngine(), detector, mesh, tmp_path, str(media_path(STUBBLE)),
                   adjust=lambda p: p.with_knobs(likeness=likeness))
    out, cam = [], []
    for i, image in enumerate(read_frames(media_path(clip), 24)):
        result = driven.process(Frame(image, i, 0.0))
        assert result.swapped
        if i % 4 == 3:
            lm_cam, lm_out = landmarks(image), landmarks(result.image)
            assert lm_cam is not None and lm_out is not None
            cam.append(dark_under_nose(image, lm_cam))
            out.append(dark_under_nose(result.image, lm_out))
    # The control is the camera frame: the band under its own nose, measured the same way.
    gap = float(np.mean(out) - np.mean(cam))
    # 0.019 on the webcam clip before the brows kept their hair through the softening, 0.025 since: the pixels under
    # the nose are the same, but the sharper brows move dlib's landmarks on the output, and with them the band
    # and the skin it is compared with. The moustached source's blob, before it was filled, scored 0.072 and 0.069.
    print(f"gap {gap:.3f}")
    assert gap <= 0.03, f"{gap:.3f} more of the band under the nose is dark than on the camera ({out} vs {cam})"
