"""Where the real test media is, and the clips and photos the tests share."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

WEBCAM = "videos/webcam/webcam_640x480_30fps_s18_woman.mp4"
SOURCE = "faces/single/obama_official_portrait.jpg"


def media_root() -> Path:
    """The real test media: $VCAMSWAP_MEDIA, else ../shared/media next to the repository."""
    env = os.environ.get("VCAMSWAP_MEDIA")
    return Path(env) if env else REPO.parent / "shared" / "media"


def media_path(rel: str) -> Path:
    """A file of the test media; the test fails (not skips) when it is missing."""
    path = media_root() / rel
    if not path.exists():
        pytest.fail(f"test media not found: {path} (set VCAMSWAP_MEDIA)")
    return path
