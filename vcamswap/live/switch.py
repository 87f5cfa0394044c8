"""Switching the engine of a running loop: the new engine is built in a thread of its own while the loop goes
on publishing with the old one, and it takes over between two frames once it is ready.

A neural engine loads hundreds of MB of models and a remote one reaches its server: seconds that must never
freeze Swap Cam. The build also prepares the current source face for the new engine (and the map's people),
so the first frame after the swap has a face to swap with. An engine that cannot be built is said in one line
(Controls.engine_failed) and the old engine stays. Everything the engine is wired into (the pipeline's swap
stage, the tracker's detector, the prepared sources, the knobs over the presets, adaptive quality) is
replaced at that frame boundary, in the loop's own thread, so no frame sees half of each engine.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any, NamedTuple

from vcamswap.controls import Controls, ControlState
from vcamswap.engines import Engine, create_engine
from vcamswap.live.build import Stages, boost_for, engine_options
from vcamswap.live.loop import LiveLoop, PresetHook
from vcamswap.live.sources import Sources
from vcamswap.live.targets import Embedder, TargetRouter, load_people
from vcamswap.modelstore.manifest import NEURAL_MODELS, install_hint, missing_models
from vcamswap.presets import with_overrides
from vcamswap.settings import Settings

log = logging.getLogger("vcamswap.switch")

EngineFactory = Callable[[str], Engine[Any]]


class Ready(NamedTuple):
    """An engine built off the loop, with what it is wired into, waiting for the next frame boundary."""

    name: str
    engine: Engine[Any]
    sources: Sources
    router: TargetRouter
    tune: PresetHook


def quick_problem(name: str, settings: Settings) -> str | None:
    """Why `name` cannot be built, when that shows without building it (files missing, no server given)."""
    if name == "inswapper":
        missing = missing_models(NEURAL_MODELS, settings.models_dir())
        if missing:
            return (f"inswapper: model{'s' if len(missing) > 1 else ''} {', '.join(missing)} not installed in "
                    f"{settings.models_dir()}; {install_hint(missing)}")
    if name == "remote" and not settings.server:
        return "remote: no server given; set one with --server grpc://HOST:PORT (see 'vcamswap serve')"
    return None


def close_engine(engine: Engine[Any]) -> None:
    """Let an engine go (a remote engine's connection); never raises."""
    close = getattr(engine, "close", None)
    if close is None:
        return
    try:
        close()
    except Exception as e:  # closing must not disturb the loop or the builder
        log.debug("closing engine %s: %s", engine.name, e)


def one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text if len(text) <= 300 else text[:297] + "..."


class EngineSwitch:
    """Listens for Controls.engine_wanted, builds that engine in the background and hands it to the loop
    (apply, the loop's between-frames hook)."""

    def __init__(self, settings: Settings, controls: Controls, stages: Stages,
                 make: EngineFactory | None = None) -> None:
        self.settings, self.controls, self.stages = settings, controls, stages
        self.make = make or self._create
        self._lock = threading.Lock()
        self._ready: Ready | None = None
        self.switches = 0  # engines swapped in
        controls.subscribe(self.on_change)

    def _create(self, name: str) -> Engine[Any]:
        return create_engine(name, **engine_options(replace(self.settings, engine=name)))

    def on_change(self, old: ControlState, new: ControlState) -> None:
        name = new.engine_wanted
        if name is not None and name != old.engine_wanted:
            threading.Thread(target=self._build, args=(name,), name=f"vcamswap-engine-{name}", daemon=True).start()

    def _build(self, name: str) -> None:
        try:
            ready = self.prepare(name)
        except Exception as e:  # EngineUnavailable says how to fix it; anything else is said as it is
            problem = one_line(e)
            log.warning("engine %s cannot be used: %s; staying with %s", name, problem,
                        self.controls.snapshot().engine)
            self.controls.engine_failed(name, problem)
            return
        if self.controls.snapshot().engine_wanted != name:  # another engine was asked for meanwhile
            close_engine(ready.engine)
            return
        with self._lock:
            superseded, self._ready = self._ready, ready
        if superseded is not None:
            close_engine(superseded.engine)
        log.info("engine %s is ready; it takes over at the next frame", name)

    def prepare(self, name: str) -> Ready:
        """The engine and what it is wired into, made in the calling (background) thread."""
        engine = self.make(name)
        try:
            sources = Sources(self.stages.library, engine, background=True)
            face = self.controls.snapshot().face
            if face is not None:
                sources.current(face)  # the first call prepares it here, not in the loop
            router = self._router(engine, sources)
            s = self.settings
            tune = partial(with_overrides, occlusion=s.occlusion, enhance_every=s.enhance,
                           boost=boost_for(s, engine))
        except Exception:
            close_engine(engine)
            raise
        return Ready(name, engine, sources, router, tune)

    def _router(self, engine: Engine[Any], sources: Sources) -> TargetRouter:
        """The map's people for an engine that tells people apart; set aside (one line) for another."""
        s, analyzer = self.settings, self.stages.analyzer
        if not s.map:
            return TargetRouter()
        if not isinstance(engine, Embedder) or analyzer is None:
            log.warning("--map is set aside: the %s engine cannot tell people apart", engine.name)
            return TargetRouter()
        people = load_people(s.map, engine, analyzer, self.stages.library.resolve)
        return TargetRouter(people, engine, sources)

    def apply(self, loop: LiveLoop) -> None:
        """Between two frames, in the loop's thread: the engine built last takes over."""
        if self._ready is None:  # every frame but one: a single read
            return
        with self._lock:
            ready, self._ready = self._ready, None
        if ready is None:
            return
        if self.controls.snapshot().engine_wanted != ready.name:  # cancelled after it was built
            close_engine(ready.engine)
            return
        old = loop.pipeline.engine
        self._wire(loop, ready)
        self.switches += 1
        self.controls.engine_ready(ready.name)
        log.info("engine %s in force (was %s)", ready.name, old.name)
        threading.Thread(target=close_engine, args=(old,), name="vcamswap-engine-close", daemon=True).start()

    def _wire(self, loop: LiveLoop, ready: Ready) -> None:
        s, pipeline = self.stages, loop.pipeline
        pipeline.use_engine(ready.engine)
        tracker = pipeline.tracker
        tracker.detector_for = ready.engine.make_detector
        if s.detector is not None:  # the embedded detector unless the new engine brings its own
            tracker.detector = s.detector
        tracker.reset()
        pipeline.router = s.router = ready.router
        s.sources = loop.inputs.sources = ready.sources
        s.tune = loop.inputs.tune = ready.tune
        if loop.adaptive is not None:
            loop.adaptive.restart()
