"""The neural engine's GHOST side: its generators (loaded on first use, one session per model) and the source
identity, for the models `preset.model` may name (engines.ghost says what each step does).

The identity comes from GHOST's own ArcFace when it is installed (the reference's path, exact:
engines.ghost_arcface), else from FaceFusion's crossface_ghost converter of the w600k_r50 embedding (an
approximation of that network's output, learned by FaceFusion). `identity_path` names the one in use."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vcamswap.engines import EngineError, EngineUnavailable
from vcamswap.engines.ghost import CONVERTER, GhostConverter, GhostGenerator, ghost_template
from vcamswap.engines.ghost_arcface import ARCFACE_FILE, GHOST_ARCFACE, GhostArcFace, source_crop
from vcamswap.engines.neural import swap_mask
from vcamswap.modelstore.manifest import install_hint, missing_models
from vcamswap.presets import Preset
from vcamswap.runtime import providers
from vcamswap.types import FaceGeometry, SwapOutput, check_bgr

if TYPE_CHECKING:
    import onnxruntime as ort

    from vcamswap.engines.neural import InswapperSource

log = logging.getLogger("vcamswap.inswapper")


class GhostSwaps:
    """Mixed into InswapperEngine, which provides the folder, the session maker and the loader."""

    models_dir: Path
    _ghosts: dict[str, GhostGenerator]
    _converter: GhostConverter | None
    _ghost_arcface: GhostArcFace | None

    def _session(self, name: str, path: Path | None = None) -> ort.InferenceSession:
        raise NotImplementedError

    def _load(self, name: str, loader: Any, path: Path | None = None) -> Any:
        raise NotImplementedError

    def ghost_generator(self, name: str) -> GhostGenerator:
        """The generator of `name`, loaded once (a second or two for 500-850 MB); EngineError when it is not
        installed or is not a GHOST generator, so the frame passes through and the line says what to do."""
        if name not in self._ghosts:
            if missing_models([name], self.models_dir):
                raise EngineError(f"{name} is not installed in {self.models_dir}; {install_hint([name])}")
            try:
                session = self._session(name)
                self._ghosts[name] = self._load(name, lambda p: GhostGenerator(session, p))
            except EngineUnavailable as e:  # mid-stream the frame passes through; at start the engine is refused
                raise EngineError(str(e)) from None
            log.info("%s loaded on %s", name, providers.runs_on(session))
        return self._ghosts[name]

    def ghost_converter(self) -> GhostConverter | None:
        """FaceFusion's identity converter; None while it is not installed."""
        if self._converter is None and not missing_models([CONVERTER], self.models_dir):
            try:
                session = self._session(CONVERTER)
                self._converter = self._load(CONVERTER, lambda p: GhostConverter(session, p))
            except EngineUnavailable as e:
                raise EngineError(str(e)) from None
        return self._converter

    def ghost_arcface(self) -> GhostArcFace | None:
        """GHOST's own ArcFace; None while it is not installed."""
        if self._ghost_arcface is None and not missing_models([GHOST_ARCFACE], self.models_dir):
            try:
                path = (self.models_dir / ARCFACE_FILE).resolve()
                session = self._session(GHOST_ARCFACE, path)
                self._ghost_arcface = self._load(GHOST_ARCFACE, lambda p: GhostArcFace(session, p), path)
            except EngineUnavailable as e:
                raise EngineError(str(e)) from None
        return self._ghost_arcface

    def load_ghost_identity(self) -> None:
        """The identity model the source will use: the own ArcFace, else the converter (at start)."""
        if self.ghost_arcface() is None:
            self.ghost_converter()

    def identity_path(self) -> str:
        """Which identity GHOST's source comes from, for the start line."""
        if self.ghost_arcface() is not None:
            return f"GHOST's own ArcFace ({GHOST_ARCFACE}, as the reference)"
        if self.ghost_converter() is not None:
            return f"w600k_r50 through {CONVERTER} (FaceFusion's approximation)"
        return "none installed"

    def ghost_source(self, raw: np.ndarray, image: np.ndarray, kps: np.ndarray) -> np.ndarray | None:
        """GHOST's (1, 512) source: its own ArcFace of the 224 source crop, else crossface_ghost of the raw
        w600k_r50 embedding; None without either."""
        arcface = self.ghost_arcface()
        if arcface is not None:
            return arcface.embed(source_crop(image, kps))
        converter = self.ghost_converter()
        return None if converter is None else converter.convert(raw)

    def ghost_swap(self, crop: np.ndarray, face: FaceGeometry, source: InswapperSource, preset: Preset
                   ) -> SwapOutput:
        """One face with the GHOST model `preset.model`, in its 224 px crop, and the face oval over its
        template (the pipeline aligned the crop with engine.template(224))."""
        check_bgr(crop, "aligned crop", 2)
        if crop.shape[0] != crop.shape[1]:
            raise ValueError(f"aligned crop must be square, got {crop.shape[1]}x{crop.shape[0]}")
        if getattr(source, "ghost", None) is None:
            raise EngineError(f"GHOST's identity model {GHOST_ARCFACE} is not installed in {self.models_dir}; "
                              f"{install_hint([GHOST_ARCFACE])}, then choose the source face again")
        assert source.ghost is not None
        out = self.ghost_generator(preset.model).swap(crop, source.ghost)
        size = crop.shape[0]
        return SwapOutput(out, swap_mask(face, preset, size, ghost_template(size)))

    def ghost_placement(self) -> dict[str, str]:
        ids = {GHOST_ARCFACE: self._ghost_arcface, CONVERTER: self._converter}
        loaded: dict[str, Any] = {**self._ghosts, **{k: v for k, v in ids.items() if v is not None}}
        return {name: providers.runs_on(m.session) for name, m in loaded.items()}
