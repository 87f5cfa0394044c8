"""The optional models (occluder, enhancer): where their file is and an onnxruntime session on it.

A missing or unloadable file is a ModelError whose one line names the command that installs it; nothing
here downloads.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from vcamswap.modelstore.manifest import ManifestError, ModelError, load_manifest

if TYPE_CHECKING:
    import onnxruntime as ort


def optional_path(name: str, models_dir: Path) -> Path:
    """The installed file of an optional model (its manifest file name; NAME.onnx without a manifest)."""
    try:
        spec = load_manifest().get(name)
    except ManifestError:
        return models_dir / f"{name}.onnx"
    return models_dir / spec.file


def open_optional(
    name: str, role: str, models_dir: Path, provider: str | None = None, threads: int | None = None
) -> ort.InferenceSession:
    """A session on the optional model `name` (known to users as `role`), on the chosen execution provider."""
    # onnxruntime loads only when an optional model is opened
    from vcamswap.runtime import providers

    path = optional_path(name, models_dir)
    if not path.is_file():
        raise ModelError(
            f"the {role} model {name} is not installed in {models_dir}; run 'vcamswap models download {role}' "
            f"(offline: 'vcamswap models download {role} --from FILE')"
        )
    try:
        choice = providers.choose(provider)
    except providers.ProviderError as e:
        raise ModelError(str(e)) from None
    try:
        return providers.create_session(path, choice, threads, models_dir / "trt-cache")
    except Exception as e:  # onnxruntime raises several types for a bad file
        reason = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        raise ModelError(
            f"{path} cannot be loaded ({reason}); check it with 'vcamswap models verify {role}' or reinstall "
            f"it with 'vcamswap models download {role} --force'"
        ) from None
