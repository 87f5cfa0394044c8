"""A pipeline with its controls and prepared sources, stepped one frame at a time as the live loop does."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from helpers.images import hand, in_front, swapped_over
from vcamswap.controls import Controls, ControlState
from vcamswap.engines import Engine
from vcamswap.faces.analyzer import FaceAnalyzer
from vcamswap.faces.detector import BlazeFaceDetector
from vcamswap.faces.landmarker import FaceMesh
from vcamswap.faces.library import FaceLibrary
from vcamswap.faces.tracking import Tracker
from vcamswap.live.loop import FrameInputs, PresetHook
from vcamswap.live.pipeline import FrameResult, Pipeline
from vcamswap.live.sources import PreparedSource, Sources
from vcamswap.types import Frame


@dataclass
class Driven:
    pipeline: Pipeline
    controls: Controls
    library: FaceLibrary
    sources: Sources
    inputs: FrameInputs

    def process(self, frame: Frame) -> FrameResult:
        return self.pipeline.process(frame, *self.inputs())

    def source(self, name: str) -> PreparedSource[Any] | None:
        return self.sources.current(name)

    def swap(self, frames: list[np.ndarray], every: int = 1) -> list[tuple[np.ndarray, np.ndarray]]:
        """Every frame of a clip through the pipeline, each one swapped; (camera frame, output) of every
        `every`-th frame (the last of each step, so the tracker has settled)."""
        pairs = []
        for i, image in enumerate(frames):
            result = self.process(Frame(image, i, 0.0))
            assert result.swapped, f"frame {i} not swapped"
            if i % every == every - 1:
                pairs.append((image, result.image))
        return pairs


def drive(
    engine: Engine[Any],
    tracker: Tracker,
    library: FaceLibrary,
    controls: Controls,
    adjust: PresetHook | None = None,
) -> Driven:
    sources = Sources(library, engine)
    pipeline = Pipeline(engine, tracker, realtime=False)  # frame-exact: each frame waits for its swap
    return Driven(pipeline, controls, library, sources, FrameInputs(controls, sources, adjust))


def build(
    engine: Engine[Any],
    detector: BlazeFaceDetector,
    mesh: FaceMesh,
    faces_dir: Path,
    face: str,
    *,
    preset: str = "balanced",
    tracker: Tracker | None = None,
    adjust: PresetHook | None = None,
) -> Driven:
    """The stages for `face` (a name in `faces_dir` or an image path), with that face chosen."""
    library = FaceLibrary(faces_dir, FaceAnalyzer(detector, mesh))
    controls = Controls(ControlState(preset=preset))
    name = library.resolve(face)
    controls.set_faces(library.names())
    controls.set_face(name)
    return drive(engine, tracker or Tracker(detector, mesh, 4), library, controls, adjust)


def hand_over_face(
    driven: Driven, frames: list[np.ndarray], warm: int, at: tuple[float, float] = (0.05, 0.55)
) -> list[float]:
    """`warm` frames to find the face, then the rest with a real hand held in front of it (at `at` of the face
    box, see helpers.images.in_front): per frame, the share of the hand the output swapped over. Every frame
    with the hand must be swapped."""
    result = None
    for i, image in enumerate(frames[:warm]):
        result = driven.process(Frame(image, i, 0.0))
    assert result is not None and result.face is not None
    bbox = result.face.geometry.bbox
    held = hand(float(bbox[2] - bbox[0]))
    over = []
    for i, image in enumerate(frames[warm:], start=warm):
        shown, where = in_front(image, held, bbox, at)
        out = driven.process(Frame(shown, i, 0.0))
        assert out.swapped, f"frame {i} was not swapped"
        over.append(swapped_over(shown, out.image, where))
    return over
