"""One frame through the stages: track -> align -> swap (or re-paste) -> finish (the engine's) -> paste back.

The loop never waits on a slow swap to publish: an engine with `in_flight` >= 1 runs in workers
(live.worker) and the newest finished swap of each face is pasted at the face's current pose; no face, swap
off, a missing source face, a failing or stalled engine all pass the camera frame through, so the call never
freezes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from vcamswap.choices import OcclusionKind
from vcamswap.compose.align import align
from vcamswap.compose.blend import paste_back
from vcamswap.compose.enhance import LiveEnhancer, make_enhancer
from vcamswap.compose.occlusion import CameraSkin, Occluder, make_occluder
from vcamswap.controls import ControlState
from vcamswap.engines import Engine, SwapItem
from vcamswap.faces.tracking import Tracker
from vcamswap.live.sources import PreparedSource
from vcamswap.live.targets import TargetRouter
from vcamswap.live.worker import Key, SwapJob, make_stage
from vcamswap.logonce import WarnOnce
from vcamswap.modelstore.manifest import ModelError
from vcamswap.presets import Preset
from vcamswap.settings import default_models_dir
from vcamswap.types import FaceGeometry, Frame, SwapOutput, TrackedFace

log = logging.getLogger("vcamswap.pipeline")


Timings = tuple[tuple[str, float], ...]  # (stage, seconds) measured while processing one frame

STALE_FRAMES = 3  # a result older than this many frames is pasted only over a face that still looks the same
MOVED = 0.015  # mean landmark shift in the aligned crop, as a share of its side, that counts as moved on
STALL_S = 2.0  # an engine call running this long: frames pass through, said once, until it answers


@dataclass
class FrameResult:
    image: np.ndarray
    faces: tuple[TrackedFace, ...] = ()
    swapped: bool = False  # a swap (new or re-pasted) was pasted on at least one face
    engine_ran: bool = False  # a swap result arrived for this frame
    timings: Timings = ()  # track, swap, paste, engine, queue and the tracker's detect / landmarks
    late: int = 0  # results pasted for the first time a frame or more after the frame they were cut from
    stale: int = 0  # faces shown unswapped: their newest result was too old for the face's current pose
    swapped_faces: int = 0  # faces a swap was pasted on (adaptive quality counts them)

    @property
    def face(self) -> TrackedFace | None:
        """The first face (the followed one with `targets` one)."""
        return self.faces[0] if self.faces else None


class Cut(NamedTuple):
    """One face of the current frame, aligned to the engine's template."""

    face: TrackedFace
    crop: np.ndarray
    m: np.ndarray  # frame -> crop
    in_crop: FaceGeometry
    key: Key
    source: PreparedSource[Any]


class Finished(NamedTuple):
    """A face's newest swap, composed and ready to paste at any later pose of the same face."""

    out: SwapOutput
    seq: int  # frame it was cut from
    shape: np.ndarray  # the face's landmarks in the crop then
    pasted: bool


OccluderFactory = Callable[[OcclusionKind], Occluder | None]  # the preset's occlusion kind -> one face's occluder
EnhancerFactory = Callable[[int, np.ndarray], LiveEnhancer | None]  # (every, unit template) -> an enhancer


def occluders_in(models_dir: Path, provider: str | None = None) -> OccluderFactory:
    """Occluders whose optional model (the `model` kind) comes from `models_dir`."""
    return partial(make_occluder, models_dir=models_dir, provider=provider)


def enhancers_in(models_dir: Path, provider: str | None = None) -> EnhancerFactory:
    """Enhancers whose model comes from `models_dir`."""

    def make(every: int, template: np.ndarray) -> LiveEnhancer | None:
        return make_enhancer(every, models_dir, provider, template=template)

    return make


class Pipeline:
    """One frame, top to bottom: track -> align -> swap (inline or in workers) -> compose -> paste back. It
    reads nothing but its arguments and writes nothing upstream; the loop hands it the control state, preset
    and source."""

    def __init__(
        self,
        engine: Engine[Any],
        tracker: Tracker,
        occlusion: OccluderFactory | None = None,
        *,
        enhancer: EnhancerFactory | None = None,
        router: TargetRouter | None = None,
        realtime: bool = True,
    ) -> None:
        self.engine = engine
        self.tracker = tracker
        self.router = router or TargetRouter()
        self.stage = make_stage(engine)
        # A file is processed frame-exact: each frame waits for its own swap. Live, nothing waits.
        self.realtime = realtime
        self._timings: list[tuple[str, float]] = []
        tracker.on_time = self._time
        self._finished: dict[Key, Finished] = {}
        self._new_occluder = occlusion or occluders_in(default_models_dir())  # what is in front of each face
        self._occluders: dict[int, tuple[OcclusionKind, Occluder | None]] = {}
        self._new_enhancer = enhancer or enhancers_in(default_models_dir())
        self._enhancers: dict[int, LiveEnhancer] = {}
        self._enhance_failed = False
        self._since_swap = 0
        self._stalled = False
        self._warn_once = WarnOnce(log)  # a failing model fails on every frame: said once, not 30 a second

    def close(self) -> None:
        self.stage.close()

    def use_engine(self, engine: Engine[Any]) -> None:
        """Swap with `engine` from the next frame on (live.switch, between two frames): the old engine's
        workers are let go (a call they run ends unheard) and no swap of the old engine is pasted again."""
        self.stage.close()
        self.engine = engine
        self.stage = make_stage(engine)
        self._forget()
        self._stalled = False

    def _time(self, stage: str, seconds: float) -> None:
        self._timings.append((stage, seconds))

    def process(
        self, frame: Frame, state: ControlState, preset: Preset, source: PreparedSource[Any] | None
    ) -> FrameResult:
        self._timings = []
        result = self._process(frame, state, preset, source)
        result.timings = tuple(self._timings)
        return result

    def _process(
        self, frame: Frame, state: ControlState, preset: Preset, source: PreparedSource[Any] | None
    ) -> FrameResult:
        image = frame.image
        if not state.swapping:
            self.tracker.reset()
            self._forget()
            return FrameResult(image)
        if source is None:
            return FrameResult(image)
        self.tracker.apply_preset(preset)
        t0 = time.perf_counter()
        faces = self.tracker.track(image, "all" if state.targets == "all" else "one")
        self._time("track", time.perf_counter() - t0)
        if not faces:
            self._forget()
            return FrameResult(image)
        routed = self.router.route(image, faces, source)
        cuts = [self._cut(image, f, s, preset) for f, s in zip(faces, routed, strict=True) if s is not None]
        t0 = time.perf_counter()
        self._submit(frame.index, cuts, preset)
        if not self.realtime:
            self.stage.settle()
        arrived = self._collect(cuts, preset)
        self._time("swap", time.perf_counter() - t0)
        if self._stalled_now():
            return FrameResult(image, tuple(faces))
        t0 = time.perf_counter()
        result = self._paste(image, frame.index, cuts)
        result.faces, result.engine_ran = tuple(faces), arrived
        self._time("paste", time.perf_counter() - t0)
        return result

    def _cut(self, image: np.ndarray, face: TrackedFace, source: PreparedSource[Any], preset: Preset) -> Cut:
        size = self.engine.crop_size(preset)
        crop, m = align(image, face.geometry.kps, self.engine.template(size), size)
        key = (source.face.digest, self.engine.name, preset.model, size, face.track_id)
        return Cut(face, crop, m, face.geometry.transformed(m), key, source)

    def _submit(self, seq: int, cuts: list[Cut], preset: Preset) -> None:
        """Hand the frame's faces to the engine when a face has no swap yet or the preset's interval is up."""
        due = self._since_swap + 1 >= preset.swap_interval or any(c.key not in self._finished for c in cuts)
        if not due:
            self._since_swap += 1
            return
        self._since_swap = 0
        job = SwapJob(
            seq,
            tuple(SwapItem(c.crop, c.in_crop, c.source.payload) for c in cuts),
            tuple(c.key for c in cuts),
            tuple(_shape(c.in_crop) for c in cuts),
            preset,
            time.perf_counter(),
        )
        self.stage.submit(job)

    def _collect(self, cuts: list[Cut], preset: Preset) -> bool:
        """Compose the results that arrived, each on its face's current crop: the camera's occluders and
        colour are this frame's, whichever frame the swap was cut from."""
        current = {c.key: c for c in cuts}
        for key in [k for k in self._finished if k not in current]:
            del self._finished[key]
        tracks = {c.face.track_id for c in cuts}
        for per_track in (self._occluders, self._enhancers):
            for track in [t for t in per_track if t not in tracks]:
                del per_track[track]
        arrived = False
        for done in self.stage.collect():
            self._time("engine", done.engine_s)
            self._time("queue", done.queued_s)
            if self._stalled:
                self._stalled = False
                log.info("engine %s answers again", self.engine.name)
            if done.error is not None:
                self._warn_once(f"{done.error}; passing frames through")
                for key in done.job.keys:
                    self._finished.pop(key, None)
                continue
            for key, shape, out in zip(done.job.keys, done.job.shapes, done.outputs, strict=True):
                cut = current.get(key)
                old = self._finished.get(key)
                if cut is None or (old is not None and old.seq > done.job.seq):
                    continue
                if preset.enhance_every > 0:
                    t0 = time.perf_counter()
                    out = self._enhance(cut, out, preset.enhance_every)
                    self._time("enhance", time.perf_counter() - t0)
                occluder = self._occluder(cut.face.track_id, preset.occlusion)
                final = self.engine.finish(out, cut.crop, preset, cut.in_crop.points, occluder)
                if not _valid(final):
                    self._warn_once(f"engine {self.engine.name} returned an invalid image; passing frames through")
                    self._finished.pop(key, None)
                    continue
                self._finished[key] = Finished(final, done.job.seq, shape, False)
                arrived = True
        return arrived

    def _occluder(self, track: int, kind: OcclusionKind) -> Occluder | None:
        """The face's occluder for the preset's kind, made when the face or the kind is new; the model
        occluder failing to load falls back to the camera-skin one, said once."""
        have = self._occluders.get(track)
        if have is not None and have[0] == kind:
            return have[1]
        try:
            occluder = self._new_occluder(kind)
        except (ModelError, ValueError) as e:
            self._warn_once(f"{e}; keeping what is in front of the face by its skin colour instead")
            occluder = CameraSkin()
        self._occluders[track] = (kind, occluder)
        return occluder

    def _enhance(self, cut: Cut, out: SwapOutput, every: int) -> SwapOutput:
        """The swap with the enhancer's detail, run every `every` swaps of this face; an enhancer that cannot
        load is left off, said once."""
        if self._enhance_failed:
            return out
        enhancer = self._enhancers.get(cut.face.track_id)
        if enhancer is None:
            size = cut.crop.shape[0]
            try:
                made = self._new_enhancer(every, self.engine.template(size) / size)
            except (ModelError, ValueError) as e:
                self._enhance_failed = True
                self._warn_once(f"{e}; the face enhancer stays off")
                return out
            if made is None:
                return out
            enhancer = self._enhancers[cut.face.track_id] = made
        enhancer.every = every
        return enhancer.apply(out, cut.crop.shape[0], cut.key)

    def _stalled_now(self) -> bool:
        if self.stage.stalled_for(time.perf_counter()) < STALL_S:
            return False
        if not self._stalled:
            self._stalled = True
            log.warning("engine %s has not answered for %.0f s; passing frames through until it does",
                        self.engine.name, STALL_S)
        return True

    def _paste(self, image: np.ndarray, seq: int, cuts: list[Cut]) -> FrameResult:
        out: np.ndarray | None = None
        late = stale = pasted = 0
        for cut in cuts:
            fin = self._finished.get(cut.key)
            if fin is None:
                continue
            age = seq - fin.seq
            if age > STALE_FRAMES and moved(fin.shape, _shape(cut.in_crop), cut.crop.shape[0]):
                stale += 1
                continue
            if age >= 1 and not fin.pasted:
                late += 1
            self._finished[cut.key] = fin._replace(pasted=True)
            out = paste_back(image.copy() if out is None else out, fin.out, cut.m)
            pasted += 1
        return FrameResult(image if out is None else out, swapped=out is not None, late=late, stale=stale,
                           swapped_faces=pasted)

    def _forget(self) -> None:
        self._finished.clear()
        self._occluders.clear()
        self._enhancers.clear()
        self._since_swap = 0


def _shape(face: FaceGeometry) -> np.ndarray:
    return face.points if face.points is not None else face.kps


def moved(before: np.ndarray, now: np.ndarray, size: int) -> bool:
    """Whether a face's landmarks in its aligned crop changed enough that an old swap would show a wrong
    expression or turn (the crop follows the head, so moving across the frame alone does not count)."""
    if before.shape != now.shape:
        return True
    return float(np.linalg.norm(before - now, axis=1).mean()) > MOVED * size


def _valid(out: SwapOutput) -> bool:
    return out.crop.size > 0 and out.mask.size > 0 and bool(np.isfinite(out.mask).all())
