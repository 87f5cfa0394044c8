"""Builds the live stages from settings: the one place that wires them, their outputs and the loop over them, for
`run`, the daemon and the benchmark."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from vcamswap.capture.demo import demo_clip, demo_face
from vcamswap.capture.source import Capture, CaptureError
from vcamswap.choices import DEFAULT_SWAP_MODEL
from vcamswap.controls import Controls, initial_state
from vcamswap.engines import Engine, EngineUnavailable, create_engine
from vcamswap.faces.analyzer import FaceAnalyzer
from vcamswap.faces.detector import BlazeFaceDetector
from vcamswap.faces.landmarker import FaceMesh
from vcamswap.faces.library import FaceError, FaceLibrary
from vcamswap.faces.tracking import DetectorFactory, Tracker
from vcamswap.live.adaptive import AdaptiveQuality
from vcamswap.live.loop import LiveLoop, PresetHook
from vcamswap.live.pipeline import Pipeline, enhancers_in, occluders_in
from vcamswap.live.sources import Sources
from vcamswap.live.stats import Stats
from vcamswap.live.targets import Embedder, TargetRouter, load_people
from vcamswap.modelstore.installed import files_of, missing_for_model, model_files, not_installed
from vcamswap.outputs.base import Sink
from vcamswap.outputs.sinkset import SinkSet, parse_output
from vcamswap.presets import BOOSTS, get_preset, with_overrides
from vcamswap.settings import Settings
from vcamswap.types import FaceDetector

log = logging.getLogger("vcamswap")

def load_engine(settings: Settings, warn: bool = True) -> Engine[Any]:
    """The asked engine, or `lite` with a one-line hint when it cannot run here."""
    try:
        return create_engine(settings.engine, **engine_options(settings))
    except EngineUnavailable as e:
        # remote: a missing server, a refused token or a bad codec is a setting to fix, not a reason to swap
        # with another engine unasked (a server that is only away is handled while running).
        if settings.engine in ("lite", "remote"):
            raise
        if warn:
            log.warning("%s; using the lite engine", e)
        return create_engine("lite", models_dir=settings.models_dir())


def engine_options(settings: Settings) -> dict[str, object]:
    if settings.engine == "lite":
        return {"models_dir": settings.models_dir()}  # the optional face parser, when installed
    if settings.engine == "remote":
        return {"server": settings.server, "token_file": settings.token_file, "fallback": settings.remote_fallback,
                "codec_name": settings.remote_codec, "in_flight": settings.remote_in_flight,
                "ca_file": settings.server_ca}
    return {"models_dir": settings.models_dir(), "provider": settings.provider, "precision": settings.precision,
            "model": starting_model(settings)}


def starting_model(settings: Settings) -> str:
    """The swap model the neural engine loads at start: the chosen one when its files are in the models folder,
    else the default (start_model says so in one line), as the controls start with."""
    if missing_for_model(settings.model, settings.models_dir()):
        return DEFAULT_SWAP_MODEL
    return settings.model


@dataclass
class Stages:
    """The wired stages of one live run: what the loop is built from."""

    pipeline: Pipeline
    library: FaceLibrary
    sources: Sources
    adaptive: AdaptiveQuality | None
    tune: PresetHook | None = None  # the settings' occlusion and enhance knobs over every preset
    # Which source each face in view gets (--map); without a map, the chosen face for all, no model call.
    router: TargetRouter = field(default_factory=TargetRouter)
    # The embedded detector (the tracker's own when the engine has none) and the photos' analyser: what an
    # engine switched to while running is wired with (live.switch).
    detector: FaceDetector | None = None
    analyzer: FaceAnalyzer | None = None


@dataclass
class Live:
    capture: Capture
    stages: Stages
    controls: Controls

    @property
    def pipeline(self) -> Pipeline:
        return self.stages.pipeline

    @property
    def library(self) -> FaceLibrary:
        return self.stages.library


def open_capture(
    settings: Settings, realtime: bool, allow_demo: bool = True, loop: bool = True
) -> tuple[Capture, bool]:
    """The asked source; with neither --camera nor --input and no camera present, the shipped demo clip."""
    try:
        return Capture(
            camera=settings.camera,
            input=settings.input,
            width=settings.width,
            height=settings.height,
            fps=settings.fps,
            loop=loop,
            realtime=realtime,
        ), False
    except CaptureError as e:
        if settings.input or settings.camera is not None or not allow_demo:
            raise
        log.warning("%s; playing the demo clip instead", e)
        return Capture(input=str(demo_clip()), fps=settings.fps, realtime=realtime), True


def boost_for(settings: Settings, engine: Engine[Any]) -> int | None:
    """The user's boost over every preset's; 128 for an engine without pixel boost, so adaptive quality
    spends no step stepping down a boost that costs nothing there."""
    if getattr(engine, "boosts", False):
        return settings.boost
    if settings.boost not in (None, BOOSTS[0]):
        log.warning("boost %s is for the inswapper engine; %s swaps at its own size", settings.boost, engine.name)
    return BOOSTS[0]


def build_stages(
    settings: Settings,
    controls: Controls,
    engine: Engine[Any] | None = None,
    *,
    library: FaceLibrary | None = None,
    detector_for: DetectorFactory | None = None,
    tracking: bool = True,
    realtime: bool = True,
    models: tuple[BlazeFaceDetector, FaceMesh] | None = None,
) -> Stages:
    """The one place that wires the stages, for `run`, the daemon and the benchmark alike.

    `engine`, `library`, `detector_for` and `models` replace the ones the settings would give (the bench's
    random-weight engine and fixed face); `tracking=False` is the tracker's reference mode.
    """
    detector, mesh = models or (BlazeFaceDetector(), FaceMesh())
    engine = engine or load_engine(settings)
    analyzer = FaceAnalyzer(detector, mesh)
    library = library or FaceLibrary(settings.faces_dir(), analyzer)
    preset = get_preset(controls.snapshot().preset)
    detector_for = detector_for or engine.make_detector
    track_detector = detector_for(preset) or detector
    tracker = Tracker(
        track_detector, mesh, preset.detect_interval, preset.smoothing, tracking=tracking, detector_for=detector_for
    )
    adaptive = None
    # Every frame of a file is processed, however long it takes: nothing to adapt to.
    if settings.adaptive and realtime:
        # The target is the camera's fps unless given; the live loop tells it the real one once the camera is open.
        adaptive = AdaptiveQuality(settings.target_fps or settings.fps, explicit_target=settings.target_fps is not None)
    sources = Sources(library, engine, background=realtime)  # a camera never waits for a photo's analysis
    router = build_router(settings, engine, sources, analyzer)
    models_dir, provider = settings.models_dir(), settings.provider
    pipeline = Pipeline(
        engine, tracker, occluders_in(models_dir, provider), enhancer=enhancers_in(models_dir, provider),
        router=router, realtime=realtime,
    )
    tune = partial(with_overrides, occlusion=settings.occlusion, enhance_every=settings.enhance,
                   boost=boost_for(settings, engine))
    return Stages(pipeline, library, sources, adaptive, tune, router, detector, analyzer)


def build_router(settings: Settings, engine: Engine[Any], sources: Sources, analyzer: FaceAnalyzer) -> TargetRouter:
    """The map's people, embedded once by the neural engine. Asked of the lite engine it is a one-line error;
    when the neural engine was asked but could not load (lite stands in), the map is set aside with one line."""
    if not settings.map:
        return TargetRouter()
    if not isinstance(engine, Embedder):
        if settings.engine == "lite":
            raise EngineUnavailable("--map needs the neural engine (--engine inswapper): the lite engine cannot "
                                    "tell people apart")
        log.warning("--map is set aside: the %s engine cannot tell people apart", engine.name)
        return TargetRouter()
    people = load_people(settings.map, engine, analyzer, sources.library.resolve)
    return TargetRouter(people, engine, sources)


def initial_face(settings: Settings, library: FaceLibrary) -> str | None:
    """The face to start with: --face, else the first usable one of the folder, else the demo face.

    A face that cannot be used is never chosen: its one-line reason is logged by the library, and an
    unusable --face gives None (frames pass through unswapped).
    """
    if settings.face:
        name = library.resolve(settings.face)
        return name if library.get(name) is not None else None
    names = library.names()
    usable = usable_faces(library)
    if usable:
        return usable[0]
    if names:
        log.warning("none of the faces in %s can be used; using the demo face", library.folder)
    # First run with an empty faces folder: the shipped demo face, so the swap is visible at once.
    log.info("no faces in %s yet; using the demo face (add yours with 'vcamswap faces add IMAGE')",
             library.folder)
    return library.resolve(str(demo_face()))


def usable_faces(library: FaceLibrary) -> list[str]:
    """The names whose photo loads and shows a face (each analysed once; a bad one is reported once)."""
    return [n for n in library.names() if library.usable(n)]


def build_run(settings: Settings, controls: Controls, *, realtime: bool = True, face_fallback: bool = False) -> Stages:
    """The stages, with the usable faces and the first face set on `controls`. `face_fallback` (the daemon): a
    --face that is not there gives the folder's first face with one line, rather than FaceError."""
    stages = build_stages(settings, controls, realtime=realtime)
    try:
        face = initial_face(settings, stages.library)
    except FaceError as e:
        if not face_fallback:
            raise
        log.warning("%s; starting with the first face of the folder", e)
        settings.face = None
        face = initial_face(settings, stages.library)
    controls.set_faces(usable_faces(stages.library))
    if face is not None:
        controls.set_face(face)
    controls.engine_ready(stages.pipeline.engine.name)  # lite, when the neural engine could not load
    start_model(settings, controls)
    return stages


def start_model(settings: Settings, controls: Controls) -> None:
    """What the models folder holds, and the swap model to start with: the chosen one when installed, else the
    default, said in one line."""
    controls.set_swap_models(model_files(settings.models_dir()))
    files = files_of(controls.snapshot().swap_models, settings.model)
    if files is not None and not files.installed and settings.model != DEFAULT_SWAP_MODEL:
        log.warning("%s; using %s", not_installed(files.name, files.missing), DEFAULT_SWAP_MODEL)
        controls.set_model(DEFAULT_SWAP_MODEL, check=False)


def build_live(settings: Settings, realtime: bool = True) -> Live:
    """`realtime` False (file outputs only): every frame is processed once and a file source is not looped."""
    controls = Controls(initial_state(settings))
    get_preset(settings.preset)
    capture, _ = open_capture(settings, realtime, loop=realtime or not settings.input)
    try:
        stages = build_run(settings, controls, realtime=realtime)
    except (FaceError, EngineUnavailable):
        capture.stop()
        raise
    return Live(capture, stages, controls)


def build_sinks(settings: Settings, outputs: Sequence[str], extra: Sequence[Sink] = (), **options: Any) -> SinkSet:
    """The outputs' sinks (ValueError for one that cannot be parsed), then the caller's own `extra` ones (the
    daemon's preview window), as one SinkSet; `options` are parse_output's (overwrite, protect, crash_safe)."""
    sinks = [parse_output(o, vcam_backend=settings.vcam_backend, vcam_device=settings.vcam_device, **options)
             for o in outputs]
    return SinkSet([*sinks, *extra])


def source_line(live: Live, outputs: Sequence[str]) -> str:
    """What a run starts with, for the log."""
    info, face = live.capture.info, live.controls.snapshot().face
    return (f"source: {info.kind} {info.name} {info.width}x{info.height} @ {info.fps:.1f} fps; engine "
            f"{live.pipeline.engine.name}; face {face or 'none'}; outputs {', '.join(outputs)}")


def make_loop(live: Live, sinks: SinkSet, stats: Stats | None = None, **options: Any) -> LiveLoop:
    """The live loop over a built run: its capture, pipeline, sources and adaptive quality; `options` are the
    caller's (max_frames, stats_every, emit, on_frame)."""
    s = live.stages
    return LiveLoop(live.capture, s.pipeline, sinks, live.controls, s.sources, adaptive=s.adaptive, tune=s.tune,
                    stats=stats, **options)
