"""The remote engine with the lite engine beside it: while the swap server is away, frames are swapped here.

The pipeline asks crop_size/template every frame: they follow the remote's health, so each frame is cut
for the engine that will swap it. The two crops never share a size (128 for the server, the lite preset's
192/256/320), so an item cut for the other engine (one in flight across a switch) is told by its size and
raises EngineError for that one frame. The payload holds both prepared sources. create() makes the `remote`
engine: the remote engine alone, or wrapped here when the user asked for the lite fallback.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from vcamswap.choices import REMOTE_FALLBACKS
from vcamswap.compose.occlusion import Occluder
from vcamswap.engines import Engine, EngineError, EngineUnavailable, SwapItem, create_engine
from vcamswap.engines.remote.codec import SWAP_SIZE
from vcamswap.engines.remote.engine import RemoteEngine
from vcamswap.presets import Preset
from vcamswap.types import FaceDetector, FaceGeometry, SwapOutput


class FallbackSource(NamedTuple):
    remote: Any
    lite: Any


class FallbackEngine:
    def __init__(self, remote: RemoteEngine, lite: Engine[Any]) -> None:
        self.remote, self.lite = remote, lite
        self.name = remote.name
        self.in_flight = remote.in_flight
        self._lite_lock = threading.Lock()  # the lite engine is made for one caller at a time

    def _use_remote(self) -> bool:
        return self.remote.healthy()

    def crop_size(self, preset: Preset) -> int:
        return SWAP_SIZE if self._use_remote() else self.lite.crop_size(preset)

    def template(self, size: int) -> np.ndarray:
        return self.remote.template(size) if size == SWAP_SIZE else self.lite.template(size)

    def finish(
        self, out: SwapOutput, crop: np.ndarray, preset: Preset, points: np.ndarray | None,
        occlusion: Occluder | None,
    ) -> SwapOutput:
        """By the engine that swapped it, told by the crop's size as in swap_many."""
        engine: Engine[Any] = self.remote if crop.shape[0] == SWAP_SIZE else self.lite
        return engine.finish(out, crop, preset, points, occlusion)

    def make_detector(self, preset: Preset) -> FaceDetector | None:
        return None  # both engines use the embedded BlazeFace

    def prepare_source(self, image: np.ndarray, face: FaceGeometry) -> FallbackSource:
        return FallbackSource(self.remote.prepare_source(image, face), self.lite.prepare_source(image, face))

    def swap_many(self, items: Sequence[SwapItem[FallbackSource]], preset: Preset) -> list[SwapOutput]:
        remote = self._use_remote()
        want = SWAP_SIZE if remote else self.lite.crop_size(preset)
        for item in items:
            if item.crop.shape[0] != want:
                raise EngineError("the crop was cut for the other engine while switching; this frame passes through")
        if remote:
            return self.remote.swap_many([SwapItem(i.crop, i.face, i.source.remote) for i in items], preset)
        with self._lite_lock:
            return self.lite.swap_many([SwapItem(i.crop, i.face, i.source.lite) for i in items], preset)

    def close(self) -> None:
        self.remote.close()

    def swap(self, crop: np.ndarray, face: FaceGeometry, source: FallbackSource, preset: Preset) -> SwapOutput:
        return self.swap_many([SwapItem(crop, face, source)], preset)[0]


def create(fallback: str = "passthrough", **options: object) -> object:
    """The remote engine; with fallback "lite", wrapped so frames are swapped here while the server is away."""
    if fallback not in REMOTE_FALLBACKS:
        raise EngineUnavailable(f"remote: fallback {fallback!r}; choose one of {', '.join(REMOTE_FALLBACKS)}")
    remote = RemoteEngine(**options)  # type: ignore[arg-type]
    if fallback == "passthrough":
        return remote
    return FallbackEngine(remote, create_engine("lite"))
