"""The demo media: two public-domain photos shipped with the package, and a webcam-like clip made from one.

The clip is generated on first use (a few hundred kB written once to the cache dir) rather than shipped:
the still is moved, turned and zoomed gently like a person in front of a webcam, so the demo exercises
detection and tracking, not only a still frame.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import cv2
import numpy as np
import platformdirs

from vcamswap.atomic import replacing

DEMO_DIR = Path(__file__).resolve().parents[1] / "data" / "demo"
CLIP_VERSION = 2


def demo_face() -> Path:
    """Official portrait of Barack Obama (2012, Pete Souza): a US federal work, public domain."""
    return DEMO_DIR / "demo_source.jpg"


def demo_still() -> Path:
    """NASA astronaut Eileen Collins: a NASA photo, public domain."""
    return DEMO_DIR / "demo_target.jpg"


def demo_clip(width: int = 640, height: int = 480, fps: float = 30.0, seconds: float = 6.0) -> Path:
    cache = Path(os.environ.get("VCAMSWAP_CACHE_DIR") or platformdirs.user_cache_dir("vcamswap"))
    path = cache / f"demo_clip_v{CLIP_VERSION}_{width}x{height}_{fps:g}.mp4"
    if not path.exists():
        still = cv2.imread(str(demo_still()))
        if still is None:
            raise FileNotFoundError(f"demo photo missing from the package: {demo_still()}")
        write_clip(path, still, width, height, fps, int(seconds * fps))
    return path


def frame_at(still: np.ndarray, t: float, width: int, height: int) -> np.ndarray:
    """The still as seen at time t: slow sway, nod and zoom about the face."""
    sh, sw = still.shape[:2]
    angle = 6.0 * math.sin(2 * math.pi * t / 4.0)
    scale = 1.6 * (height / sh) * (1.0 + 0.06 * math.sin(2 * math.pi * t / 5.0))
    dx = 30.0 * math.sin(2 * math.pi * t / 3.0)
    dy = 12.0 * math.sin(2 * math.pi * t / 2.5)
    pivot = (sw * 0.55, sh * 0.30)  # the face in the still
    m = cv2.getRotationMatrix2D(pivot, angle, scale)
    m[0, 2] += width / 2 - pivot[0] + dx
    m[1, 2] += height * 0.45 - pivot[1] + dy
    return cv2.warpAffine(still, m, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def write_clip(path: Path, still: np.ndarray, width: int, height: int, fps: float, frames: int) -> None:
    # A half-written clip never sits under the final name; the writer picks its container by the suffix.
    with replacing(path, suffix=path.suffix) as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter.fourcc(*"mp4v"), fps, (width, height))
        try:
            for i in range(frames):
                writer.write(frame_at(still, i / fps, width, height))
        finally:
            writer.release()
