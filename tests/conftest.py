"""Shared test fixtures."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from helpers.media import media_root

from vcamswap.faces.analyzer import FaceAnalyzer
from vcamswap.faces.detector import BlazeFaceDetector
from vcamswap.faces.landmarker import FaceMesh

REPO_ROOT = Path(__file__).resolve().parents[1]


def load_model_script(name: str) -> ModuleType:
    """A script from models/ (not a package) as a module, registered so its dataclasses can find it."""
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "models" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def detector() -> BlazeFaceDetector:
    return BlazeFaceDetector()


@pytest.fixture(scope="session")
def mesh() -> FaceMesh:
    return FaceMesh()


@pytest.fixture(scope="session")
def analyzer(detector: BlazeFaceDetector, mesh: FaceMesh) -> FaceAnalyzer:
    return FaceAnalyzer(detector, mesh)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The neural engine's stand-in models (the real files' exact interfaces), in a folder of the module's own."""
    from vcamswap.modelstore import standins

    out = tmp_path_factory.mktemp("standins")
    standins.make_all(out)
    return out


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
