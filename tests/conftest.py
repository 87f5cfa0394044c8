"""Shared test fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def media_root() -> Path:
    """The real test media: $VCAMSWAP_MEDIA, else ../shared/media next to the repository."""
    env = os.environ.get("VCAMSWAP_MEDIA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "media"


@pytest.fixture(scope="session")
def media() -> Path:
    root = media_root()
    if not (root / "MANIFEST.md").is_file():
        pytest.fail(f"test media not found at {root} (set VCAMSWAP_MEDIA)")
    return root
