"""Where the files shipped with the product live."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

# Wheels install the repository's top-level models/ folder as the package vcamswap._models;
# a source checkout (editable install, tests) has it next to the package instead.
_MODELS_PACKAGE = "vcamswap._models"
_REPO_MODELS = Path(__file__).resolve().parents[1] / "models"


class EmbeddedModelNotFoundError(FileNotFoundError):
    """An embedded model file is missing from the installation."""


def embedded_model(name: str) -> Path:
    """Path of `models/lite/<name>`, one of the small models shipped inside the package."""
    if not name or Path(name).name != name:
        raise ValueError(f"embedded model name must be a plain file name, got {name!r}")
    # The package's folders, found without importing it: it may be a namespace package (models/ has no
    # __init__.py), and onnxruntime needs a real file path, which its search locations give directly.
    spec = importlib.util.find_spec(_MODELS_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    candidates = [Path(loc) / "lite" / name for loc in locations]
    candidates.append(_REPO_MODELS / "lite" / name)
    for path in candidates:
        if path.is_file():
            return path
    tried = ", ".join(str(p) for p in candidates)
    raise EmbeddedModelNotFoundError(f"embedded model {name!r} not found (looked in {tried})")


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks (models are hundreds of MB)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
