"""Which swap models can run here: the files each one needs, and which of them are in the models folder.

One place answers "is this model installed" for the daemon's `model` command, the tray's Model menu, adaptive
quality's model steps and the engine switch. It looks at file names only (a few stat calls, no hashing): a
corrupt file is reported by the engine when it fails to load it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from vcamswap.choices import SWAP_MODELS, SwapModelName, check_model
from vcamswap.modelstore.manifest import (
    NEURAL_MODELS,
    Manifest,
    ManifestError,
    install_hint,
    load_manifest,
    missing_models,
)

# Every model's detector (SCRFD) and source embedding (ArcFace), by their manifest names.
BASE_FILES: tuple[str, ...] = ("det_10g", "w600k_r50")
# Where GHOST's generators take their source from, either one: GHOST's own ArcFace (the reference's, and what
# `vcamswap models download ghost_N_256` fetches), or FaceFusion's converter of the w600k_r50 embedding.
GHOST_IDENTITY: tuple[str, ...] = ("ghost_arcface", "crossface_ghost")


def files_for_model(name: str) -> tuple[str, ...]:
    """The manifest names of every file `name` needs, as fetched by default (ValueError for a name not in
    SWAP_MODELS); for GHOST the identity is its own ArcFace (missing_for_model accepts the converter too)."""
    model = check_model(name)
    if model == "inswapper_128":
        return NEURAL_MODELS  # SCRFD detection, ArcFace identity, the swap model
    return (*BASE_FILES, model, GHOST_IDENTITY[0])


def file_names(name: str) -> tuple[str, ...]:
    """The names in the models folder of the files `name` needs, as fetched by default (the manifest's `file`:
    not always NAME.onnx, e.g. ghost_arcface_backbone.onnx)."""
    names = files_for_model(name)
    try:
        manifest = load_manifest()
    except ManifestError:
        return tuple(f"{n}.onnx" for n in names)
    return tuple(manifest.get(n).file for n in names)


def missing_for_model(name: str, models_dir: Path, manifest: Manifest | None = None) -> tuple[str, ...]:
    """What `name` lacks in `models_dir` to run (empty: installed). A GHOST model runs with either identity
    model; with neither, the one fetched by default is named."""
    model = check_model(name)
    if model == "inswapper_128":
        return tuple(missing_models(NEURAL_MODELS, models_dir, manifest))
    missing = tuple(missing_models((*BASE_FILES, model), models_dir, manifest))
    ids = missing_models(GHOST_IDENTITY, models_dir, manifest)
    return (*missing, GHOST_IDENTITY[0]) if len(ids) == len(GHOST_IDENTITY) else missing


class ModelFiles(NamedTuple):
    """One swap model and the files it lacks in the models folder (none: installed)."""

    name: SwapModelName
    missing: tuple[str, ...]

    @property
    def installed(self) -> bool:
        return not self.missing


def model_files(models_dir: Path) -> tuple[ModelFiles, ...]:
    """Every swap model, in SWAP_MODELS order, with what it lacks in `models_dir`."""
    manifest: Manifest | None
    try:
        manifest = load_manifest()  # once: it names each model's file
    except ManifestError:
        manifest = None  # NAME.onnx then
    return tuple(ModelFiles(m, missing_for_model(m, models_dir, manifest)) for m in SWAP_MODELS)


def files_of(models: Iterable[ModelFiles], name: str) -> ModelFiles | None:
    """The entry of `name` among `models` (None when the folder was not looked at)."""
    return next((m for m in models if m.name == name), None)


def installed(models: Iterable[ModelFiles]) -> tuple[SwapModelName, ...]:
    return tuple(m.name for m in models if m.installed)


def not_installed(name: str, missing: Iterable[str]) -> str:
    """The one line that refuses a model whose files are missing, with the command that fetches them."""
    return f"model {name} is not installed; {install_hint(missing)}"
