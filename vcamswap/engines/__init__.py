"""Swap engines behind one small interface.

An engine works in an aligned crop: the pipeline warps the frame so the face's 5 keypoints land on the
engine's template, the engine returns the swapped crop and its blend mask in the same coordinates, makes that
final in the crop (finish: colour, occluders; compose.blend.finish for an engine that paints the whole face),
and the compositor pastes it back. Because the crop is face-aligned, a skipped frame can re-paste the last swap at
the current pose.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import numpy as np

from vcamswap.compose.occlusion import Occluder
from vcamswap.presets import Preset
from vcamswap.types import FaceDetector, FaceGeometry, SwapOutput


class EngineError(RuntimeError):
    """One frame could not be swapped (a bad model output); the pipeline passes that frame through."""


class EngineUnavailable(Exception):
    """The engine cannot run here (models missing, runtime absent); the message says how to fix it."""


P = TypeVar("P")  # what an engine makes of a source face once (texture and mesh, embedding)


@dataclass(frozen=True)
class SwapItem(Generic[P]):
    """One face of a frame to swap: its aligned crop, the face in crop coordinates, the prepared source."""

    crop: np.ndarray
    face: FaceGeometry
    source: P


class Engine(Protocol[P]):
    """Everything the pipeline asks of an engine. The engine swaps and says how its output is made final in the
    crop (finish); what every engine shares (colour match, occluders, paste-back) is compose's."""

    name: str
    # How many swaps may run at once off the live loop: 0 runs swap() in the loop itself (measured cheaper for
    # a fast CPU engine), 1 a worker thread, more keeps several requests in flight (a remote server).
    in_flight: int

    def crop_size(self, preset: Preset) -> int:
        """Side of the square aligned crop the engine works in."""
        ...

    def template(self, size: int) -> np.ndarray:
        """(5, 2) keypoint positions in a crop of `size` pixels, in types.Detection.kps order."""
        ...

    def prepare_source(self, image: np.ndarray, face: FaceGeometry) -> P:
        """Analyse a source face once (ValueError or EngineError when it cannot be used); the result is kept
        by live.sources and passed to swap()."""
        ...

    def swap(self, crop: np.ndarray, face: FaceGeometry, source: P, preset: Preset) -> SwapOutput:
        """Swap the face in an aligned crop (face given in crop coordinates)."""
        ...

    def swap_many(self, items: Sequence[SwapItem[P]], preset: Preset) -> list[SwapOutput]:
        """Every face of one frame, in order; one batched model call where the engine can."""
        ...

    def finish(
        self, out: SwapOutput, crop: np.ndarray, preset: Preset, points: np.ndarray | None,
        occlusion: Occluder | None,
    ) -> SwapOutput:
        """Make swap()'s output final in the crop it was swapped in: colour from the camera (when the preset
        asks), what is in front of the camera's face (`occlusion`, None: nothing) kept in front. `points`: the
        camera face's points in the crop, when known."""
        ...

    def make_detector(self, preset: Preset) -> FaceDetector | None:
        """A detector of the engine's own, or None to use the embedded BlazeFace."""
        ...


ENGINES: dict[str, str] = {
    "lite": "vcamswap.engines.lite.engine:LiteEngine",
    "inswapper": "vcamswap.engines.inswapper:InswapperEngine",
    "remote": "vcamswap.engines.fallback:create",
}


def create_engine(name: str, **options: object) -> Engine[Any]:
    if name not in ENGINES:
        raise EngineUnavailable(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")
    module_name, cls_name = ENGINES[name].split(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    engine: Engine[Any] = cls(**options)
    return engine
