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


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own config, data, cache and runtime dirs: the user's real ones are never touched."""
    root = tmp_path_factory.mktemp("vcamswap-home")
    for name in ("CONFIG", "DATA", "CACHE", "RUNTIME"):
        d = root / name.lower()
        d.mkdir()
        monkeypatch.setenv(f"VCAMSWAP_{name}_DIR", str(d))
    return root
