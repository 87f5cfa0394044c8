"""What a bench pass runs on: the engine (random weights when the neural ones are absent), source face, stats."""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from vcamswap.choices import SwapModelName, check_model
from vcamswap.controls import Controls, ControlState
from vcamswap.engines import EngineUnavailable, create_engine
from vcamswap.faces.analyzer import FaceAnalyzer
from vcamswap.faces.detector import BlazeFaceDetector
from vcamswap.faces.landmarker import FaceMesh
from vcamswap.faces.library import FaceLibrary
from vcamswap.faces.tracking import FaceDetector
from vcamswap.live.build import Stages, build_stages
from vcamswap.live.loop import PresetHook
from vcamswap.live.stats import Stats
from vcamswap.presets import Preset
from vcamswap.settings import Settings
from vcamswap.tools.bench.metrics import Config
from vcamswap.types import Detection

log = logging.getLogger("vcamswap.bench")


class RecordingStats(Stats):
    """Stats that also keep every sample, for p95/p99 over the whole run."""

    def __init__(self) -> None:
        super().__init__(window=120)
        self.samples: dict[str, list[float]] = {}
        self.latencies: list[float] = []
        self.publish_t: list[float] = []

    def add_stage(self, stage: str, seconds: float) -> None:
        super().add_stage(stage, seconds)
        self.samples.setdefault(stage, []).append(seconds * 1000.0)

    def frame_published(
        self, t_capture: float, swapped: bool, t_now: float | None = None, dropped: int | None = None,
        late: int = 0, stale: int = 0,
    ) -> None:
        now = time.perf_counter() if t_now is None else t_now
        super().frame_published(t_capture, swapped, now, dropped, late, stale)
        self.latencies.append((now - t_capture) * 1000.0)
        self.publish_t.append(now)


class CostOnlyDetector:
    """Runs a random-weight detector for its cost, and returns the faces BlazeFace finds."""

    def __init__(self, cost: FaceDetector, faces: FaceDetector) -> None:
        self.cost, self.faces = cost, faces

    def detect(self, image_bgr: np.ndarray) -> list[Detection]:
        self.cost.detect(image_bgr)
        return self.faces.detect(image_bgr)


def cache_dir() -> Path:
    import platformdirs

    return Path(os.environ.get("VCAMSWAP_CACHE_DIR") or platformdirs.user_cache_dir("vcamswap"))


RANDOM_MARK = ".complete"  # in a models folder of random-weight models: what they are, for make_engine


def random_weight_models(folder: Path | None = None, channels: int = 1024) -> Path:
    """A models folder with det_10g and inswapper_128 of the real architecture (random weights) and a
    stand-in ArcFace; built once (about 600 MB) and kept in the cache dir. `channels` < 1024 builds a cheaper
    look-alike of the swap model (a dry run of the GPU bench on a CPU)."""
    folder = folder or cache_dir() / "bench-random-weights"
    done = folder / RANDOM_MARK
    mark = "random weights, for timing only\n" if channels == 1024 else f"random weights, {channels} channels\n"
    if done.is_file() and done.read_text() == mark:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    # onnx loads only to build the models
    from vcamswap.modelstore import arch, standins

    log.info("building random-weight models of the inswapper_128 and det_10g architectures in %s", folder)
    arch.build_arch_model(folder / "inswapper_128.onnx", channels=channels)
    arch.build_scrfd_model(folder / "det_10g.onnx")
    standins.save(standins.arcface_model(), folder / "w600k_r50.onnx")
    done.write_text(mark)
    return folder


def is_random_weights(folder: Path) -> bool:
    return (folder / RANDOM_MARK).is_file()


@dataclass
class EngineSetup:
    engine: Any
    random_weights: bool
    detector_for: Callable[[Preset], FaceDetector | None]


def make_engine(name: str, models: str | None, provider: str | None, blaze: FaceDetector,
                precision: str | None = None, remote: dict[str, object] | None = None) -> EngineSetup:
    """The engine of a bench pass. Without installed neural weights (or given a folder of random-weight
    models) the costs are real and the faces come from BlazeFace, since random weights find none."""
    if name == "lite":
        engine = create_engine("lite")
        return EngineSetup(engine, False, engine.make_detector)
    if name == "remote":  # no fallback to lite: a bench of the remote engine measures the server or fails
        engine = create_engine("remote", **(remote or {}))
        return EngineSetup(engine, False, engine.make_detector)
    options: dict[str, object] = {"provider": provider, "precision": precision}
    folder = Path(models).expanduser() if models else None
    if folder is None or not is_random_weights(folder):
        if folder is not None:
            options["models_dir"] = folder
        try:
            engine = create_engine(name, **options)
            return EngineSetup(engine, False, engine.make_detector)
        except EngineUnavailable as e:
            if name != "inswapper" or models:
                raise
            log.info("%s", e)
    engine = create_engine(name, **{**options, "models_dir": folder or random_weight_models()})
    cached: dict[int, FaceDetector] = {}

    def detector_for(p: Preset) -> FaceDetector:
        if p.det_size not in cached:
            cost = engine.make_detector(p)
            assert cost is not None
            cached[p.det_size] = CostOnlyDetector(cost, blaze)
        return cached[p.det_size]

    return EngineSetup(engine, True, detector_for)


class FixedFace:
    """A FaceLibrary with one analysed source face (the bench's --face)."""

    def __init__(self, path: Path, detector: BlazeFaceDetector, mesh: FaceMesh) -> None:
        empty = Path(tempfile.gettempdir()) / "vcamswap-bench-no-faces"
        self.library = FaceLibrary(empty, FaceAnalyzer(detector, mesh))
        self.name = self.library.resolve(str(path))
        if self.library.get(self.name) is None:
            raise SystemExit(f"vcamswap: error: no face found in {path}")


class PassKnobs(NamedTuple):
    """What a pass runs with over its preset (None: the preset's): the swap model, pixel boost, occlusion, and
    the models folder and provider the optional models (the parser of `occlusion = "parser"`) come from."""

    model: str | None = None
    boost: int | None = None
    occlusion: str | None = None
    models: str | None = None
    provider: str | None = None


def make_stages(
    setup: EngineSetup, face: FixedFace, mesh: FaceMesh, blaze: BlazeFaceDetector, config: Config, adaptive: bool,
    realtime: bool, knobs: PassKnobs | None = None,
) -> tuple[Stages, Controls]:
    """The stages of one configuration, wired by the same build as `run` and the daemon."""
    controls = Controls(ControlState(face=face.name, preset=config.preset, likeness=config.likeness))
    knobs = knobs or PassKnobs()
    settings = Settings(preset=config.preset, adaptive=adaptive, boost=knobs.boost, occlusion=knobs.occlusion,
                        models=knobs.models, provider=knobs.provider)
    stages = build_stages(settings, controls, setup.engine, library=face.library, detector_for=setup.detector_for,
                          tracking=config.tracking, models=(blaze, mesh), realtime=realtime)
    if knobs.model is not None:
        stages.tune = _with_model(stages.tune, check_model(knobs.model))
    return stages, controls


def _with_model(tune: PresetHook | None, model: SwapModelName) -> PresetHook:
    """The settings' knobs, then the pass's swap model over every preset."""

    def hook(p: Preset) -> Preset:
        return (tune(p) if tune is not None else p).with_knobs(model=model)

    return hook
