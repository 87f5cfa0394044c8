"""Builds the live stages from settings; shared by `run`, the daemon and the benchmark."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from vcamswap.capture.demo import demo_clip, demo_face
from vcamswap.capture.source import Capture, CaptureError
from vcamswap.controls import Controls, ControlState
from vcamswap.engines import Engine, EngineUnavailable, create_engine
from vcamswap.faces.detector import BlazeFaceDetector
from vcamswap.faces.landmarker import FaceMesh, geometry_from_mesh
from vcamswap.faces.library import FaceError, FaceLibrary
from vcamswap.faces.tracking import Tracker, pick_face
from vcamswap.live.adaptive import AdaptiveQuality
from vcamswap.live.pipeline import Pipeline
from vcamswap.live.stats import Stats
from vcamswap.presets import get_preset
from vcamswap.settings import Settings
from vcamswap.types import FaceGeometry

log = logging.getLogger("vcamswap")

class FaceAnalyzer:
    """Finds the main face of a still photo with the embedded detector + landmarker."""

    def __init__(self, detector: BlazeFaceDetector, mesh: FaceMesh) -> None:
        self.detector, self.mesh = detector, mesh

    def __call__(self, image: np.ndarray) -> FaceGeometry | None:
        det = pick_face(self.detector.detect(image), image.shape)
        if det is None:
            return None
        res = self.mesh.run(image, self.mesh.roi_from_detection(det))
        # A second pass from the landmarks themselves tightens the crop on photos where the box was loose.
        res = self.mesh.run(image, self.mesh.roi_from_points(res.points))
        return geometry_from_mesh(res.points, res.presence) if res.presence >= 0.5 else None


def load_engine(settings: Settings, warn: bool = True) -> Engine:
    """The asked engine, or `lite` with a one-line hint when it cannot run here."""
    try:
        return create_engine(settings.engine, **_engine_options(settings))
    except EngineUnavailable as e:
        if settings.engine == "lite":
            raise
        if warn:
            log.warning("%s; using the lite engine", e)
        return create_engine("lite")


def _engine_options(settings: Settings) -> dict[str, object]:
    if settings.engine == "lite":
        return {}
    return {"models_dir": settings.models_dir(), "provider": settings.provider}


@dataclass
class Live:
    capture: Capture
    pipeline: Pipeline
    controls: Controls
    library: FaceLibrary
    used_demo: bool


def open_capture(settings: Settings, realtime: bool, allow_demo: bool = True) -> tuple[Capture, bool]:
    """The asked source; with neither --camera nor --input and no camera present, the shipped demo clip."""
    try:
        return Capture(
            camera=settings.camera,
            input=settings.input,
            width=settings.width,
            height=settings.height,
            fps=settings.fps,
            realtime=realtime,
        ), False
    except CaptureError as e:
        if settings.input or settings.camera is not None or not allow_demo:
            raise
        log.warning("%s; playing the demo clip instead", e)
        return Capture(input=str(demo_clip()), fps=settings.fps, realtime=realtime), True


def build_pipeline(settings: Settings, controls: Controls, engine: Engine | None = None) -> Pipeline:
    detector = BlazeFaceDetector()
    mesh = FaceMesh()
    engine = engine or load_engine(settings)
    library = FaceLibrary(settings.faces_dir(), FaceAnalyzer(detector, mesh))
    preset = get_preset(controls.snapshot().preset)
    track_detector = engine.make_detector(preset) or detector
    tracker = Tracker(
        track_detector, mesh, preset.detect_interval, preset.smoothing, detector_for=engine.make_detector
    )
    pipeline = Pipeline(engine, tracker, library, controls, Stats())
    if settings.adaptive:
        # The target is the camera's fps unless given; LiveLoop tells it the real one once the camera is open.
        pipeline.preset_override = AdaptiveQuality(
            settings.target_fps or settings.fps, explicit_target=settings.target_fps is not None
        )
    return pipeline


def initial_face(settings: Settings, library: FaceLibrary, used_demo: bool) -> str | None:
    """The face to start with: --face, else the first in the folder, else the demo face."""
    if settings.face:
        return library.resolve(settings.face)
    names = library.names()
    if names:
        return names[0]
    # First run with an empty faces folder: the shipped demo face, so the swap is visible at once.
    log.info("no faces in %s yet; using the demo face (add yours with 'vcamswap faces add IMAGE')",
             library.folder)
    return library.resolve(str(demo_face()))


def build_live(settings: Settings, realtime: bool = True) -> Live:
    controls = Controls(ControlState(swap_enabled=settings.swap, preset=settings.preset))
    get_preset(settings.preset)
    capture, used_demo = open_capture(settings, realtime)
    try:
        pipeline = build_pipeline(settings, controls)
        if not realtime:  # every frame of a file is processed, however long it takes: nothing to adapt to
            pipeline.preset_override = None
        library = pipeline.library
        face = initial_face(settings, library, used_demo)
    except (FaceError, EngineUnavailable):
        capture.stop()
        raise
    controls.set_faces(library.names())
    if face is not None:
        controls.set_face(face)
    return Live(capture, pipeline, controls, library, used_demo)
