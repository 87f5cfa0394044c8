"""`vcamswap bench`: speed, steadiness, accuracy and identity of engines and presets on a real clip.

Each configuration (engine x preset x tracking on/off) gets:

* throughput: the file fed as fast as the pipeline takes it (Capture(realtime=False)): fps, per-stage ms
  (median, p95), detector calls per frame;
* realtime (--realtime): the file paced like a camera at its fps: output fps, dropped frames, capture ->
  publish latency p50/p95/p99;
* steadiness: the tracker alone over the clip. jitter = RMS residual of the 5 keypoints about a smooth
  trajectory (Savitzky-Golay, 0.5 s) on the stillest 3 s of the clip, i.e. motion the head did not make;
  accuracy = mean distance of the keypoints from a fresh detection on the same frame; track losses per
  minute. The reference is detection + landmarks on every frame with no smoothing, measured in the same run;
* identity (--quality): dlib's face descriptor (an independent recogniser) of the output face against the
  source face and against the person in front of the camera, frame by frame.

`--engine inswapper` without installed weights runs models with inswapper_128's and det_10g's architecture
and random weights (the cost is real, the picture is not) with faces found by BlazeFace; the output says so.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vcamswap.capture.source import Capture
from vcamswap.controls import Controls, ControlState
from vcamswap.faces.detector import BlazeFaceDetector
from vcamswap.faces.landmarker import FaceMesh, geometry_from_mesh
from vcamswap.presets import PRESET_NAMES, Preset, get_preset
from vcamswap.live.stats import StageTimer, Stats
from vcamswap.faces.tracking import FaceDetector, Tracker, pick_face
from vcamswap.types import Detection, Frame

log = logging.getLogger("vcamswap.bench")

STILL_FRAMES = 90  # 3 s at 30 fps: the segment jitter is measured on
SMOOTH_WINDOW = 15  # 0.5 s: motion slower than this is the head's, faster is jitter
WARMUP_FRAMES = 10
IDENTITY_SAMPLES = 60
STEADY_MAX = 1800  # a minute at 30 fps
EVAL_HINT = "pip install 'vcamswap[eval]' (dlib and face-recognition-models; dlib compiles for about 8 minutes)"
RANDOM_NOTE = (
    "inswapper: weights not installed, so det_10g and inswapper_128 are same-architecture models with RANDOM "
    "weights (real cost, meaningless picture), ArcFace is a small stand-in and faces are found by BlazeFace; "
    "identity figures for it are meaningless"
)

# ------------------------------------------------------------------------------------------------ metrics


def still_segment(kps: np.ndarray, length: int = STILL_FRAMES) -> slice:
    """The `length` frames where the keypoints' centre moves least (frames without a face never qualify)."""
    n = len(kps)
    length = min(length, n)
    centre = kps.reshape(n, -1, 2).mean(1)
    speed = np.linalg.norm(np.diff(centre, axis=0), axis=1)
    speed = np.where(np.isfinite(speed), speed, 1e6)
    if len(speed) < length - 1 or length < 2:
        return slice(0, n)
    window = np.convolve(speed, np.ones(length - 1), "valid")
    start = int(np.argmin(window))
    return slice(start, start + length)


def jitter_px(kps: np.ndarray, seg: slice, window: int = SMOOTH_WINDOW) -> float:
    """RMS distance (px) of the keypoints from their smoothed trajectory over `seg`."""
    from scipy.signal import savgol_filter

    part = np.asarray(kps[seg], np.float64)
    if len(part) < 5 or not np.isfinite(part).all():
        return float("nan")
    w = min(window, len(part) - (1 - len(part) % 2))
    smooth = savgol_filter(part, w, 2, axis=0)
    return float(np.sqrt(((part - smooth) ** 2).sum(-1).mean()))


def accuracy_px(tracked: np.ndarray, fresh: np.ndarray) -> float:
    """Mean keypoint distance (px) between tracked and freshly detected keypoints, frames with both."""
    d = np.linalg.norm(np.asarray(tracked, np.float64) - np.asarray(fresh, np.float64), axis=-1)
    ok = np.isfinite(d).all(-1)
    return float(d[ok].mean()) if ok.any() else float("nan")


def summary_ms(values: list[float]) -> dict[str, float]:
    if not values:
        return {"median": 0.0, "p95": 0.0, "n": 0}
    a = np.asarray(values)
    return {"median": round(float(np.median(a)), 3), "p95": round(float(np.percentile(a, 95)), 3), "n": len(a)}


# --------------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Config:
    engine: str
    preset: str
    tracking: bool

    @property
    def label(self) -> str:
        return f"{self.engine}/{self.preset}/{'track' if self.tracking else 'detect-all'}"


@dataclass
class Speed:
    mode: str  # "throughput" | "realtime"
    frames: int  # over all repeats
    seconds: float
    fps: float  # median over the repeats
    stage_ms: dict[str, dict[str, float]]
    detector_calls_per_frame: float
    engine_runs_per_frame: float
    dropped: int = 0
    latency_ms: dict[str, float] = field(default_factory=dict)
    adaptive_level: int | None = None
    fps_runs: list[float] = field(default_factory=list)  # one per repeat, interleaved with the other configs


@dataclass
class PassData:
    """The raw figures of one pass, merged over repeats by `summarize`."""

    realtime: bool
    frames: int
    seconds: float
    fps: float
    stage_samples: dict[str, list[float]]
    latencies: list[float]
    detector_calls: int
    tracked_frames: int
    engine_runs: int
    dropped: int
    adaptive_level: int | None


def summarize(passes: list[PassData]) -> Speed:
    stages: dict[str, list[float]] = {}
    for p in passes:
        for k, v in p.stage_samples.items():
            stages.setdefault(k, []).extend(v)
    lat = np.asarray([x for p in passes for x in p.latencies] or [0.0])
    frames = sum(p.frames for p in passes)
    return Speed(
        mode="realtime" if passes[0].realtime else "throughput",
        frames=frames,
        seconds=round(sum(p.seconds for p in passes), 3),
        fps=round(float(np.median([p.fps for p in passes])), 2),
        stage_ms={k: summary_ms(v) for k, v in stages.items()},
        detector_calls_per_frame=round(sum(p.detector_calls for p in passes)
                                       / max(sum(p.tracked_frames for p in passes), 1), 4),
        engine_runs_per_frame=round(sum(p.engine_runs for p in passes) / max(frames, 1), 4),
        dropped=sum(p.dropped for p in passes),
        latency_ms={q: round(float(np.percentile(lat, int(q[1:]))), 2) for q in ("p50", "p95", "p99")},
        adaptive_level=passes[-1].adaptive_level,
        fps_runs=[round(p.fps, 2) for p in passes],
    )


@dataclass
class Steadiness:
    frames: int
    still_segment: tuple[int, int]
    jitter_px: float
    reference_jitter_px: float  # detection + landmarks every frame, no smoothing
    jitter_ratio: float
    accuracy_px: float
    losses: int
    losses_per_min: float
    detector_calls_per_frame: float
    face_frames: float  # share of frames with a face


@dataclass
class Identity:
    frames: int
    to_source: float  # mean descriptor distance output -> source face
    to_target: float  # mean descriptor distance output -> person in the frame
    closer_to_source: float  # share of frames where the output is closer to the source
    source_vs_target: float  # how far apart the two people are, for scale


@dataclass
class RunResult:
    config: Config
    throughput: Speed | None = None
    realtime: Speed | None = None
    steadiness: Steadiness | None = None
    identity: Identity | None = None
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------- stats


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

    def frame_published(self, t_capture: float, swapped: bool, t_now: float | None = None) -> None:
        now = time.perf_counter() if t_now is None else t_now
        super().frame_published(t_capture, swapped, now)
        self.latencies.append((now - t_capture) * 1000.0)
        self.publish_t.append(now)


# ------------------------------------------------------------------------------------------------ setup


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


def _load_models_script(name: str) -> Any:
    """models/<name>.py from the source tree (the random-weight builders are not part of the package)."""
    import importlib.util

    path = Path(__file__).resolve().parents[3] / "models" / f"{name}.py"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: random-weight models can only be built from a source checkout")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def random_weight_models(folder: Path | None = None) -> Path:
    """A models folder with det_10g and inswapper_128 of the real architecture (random weights) and a
    stand-in ArcFace; built once (about 600 MB) and kept in the cache dir."""
    folder = folder or cache_dir() / "bench-random-weights"
    done = folder / ".complete"
    if done.is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    arch = _load_models_script("make_inswapper_arch")
    standins = _load_models_script("make_standins")
    log.info("building random-weight models of the inswapper_128 and det_10g architectures in %s", folder)
    arch.build_arch_model(folder / "inswapper_128.onnx")
    arch.build_scrfd_model(folder / "det_10g.onnx")
    standins.save(standins.arcface_model(), folder / "w600k_r50.onnx")
    done.write_text("random weights, for timing only\n")
    return folder


@dataclass
class EngineSetup:
    engine: Any
    random_weights: bool
    detector_for: Callable[[Preset], FaceDetector | None]


def make_engine(name: str, models: str | None, provider: str | None, blaze: FaceDetector) -> EngineSetup:
    from vcamswap.engines import EngineUnavailable, create_engine

    if name == "lite":
        engine = create_engine("lite")
        return EngineSetup(engine, False, engine.make_detector)
    options: dict[str, object] = {"provider": provider}
    if models:
        options["models_dir"] = models
    try:
        engine = create_engine(name, **options)
        return EngineSetup(engine, False, engine.make_detector)
    except EngineUnavailable as e:
        if name != "inswapper" or models:
            raise
        log.info("%s", e)
    engine = create_engine(name, models_dir=random_weight_models(), provider=provider)
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
        from vcamswap.live.build import FaceAnalyzer
        from vcamswap.faces.library import FaceLibrary

        empty = Path(tempfile.gettempdir()) / "vcamswap-bench-no-faces"
        self.library = FaceLibrary(empty, FaceAnalyzer(detector, mesh))
        self.name = self.library.resolve(str(path))
        if self.library.get(self.name) is None:
            raise SystemExit(f"vcamswap: error: no face found in {path}")


def make_pipeline(setup: EngineSetup, face: FixedFace, mesh: FaceMesh, blaze: FaceDetector, config: Config) -> Any:
    from vcamswap.live.pipeline import Pipeline

    preset = get_preset(config.preset)
    detector = setup.detector_for(preset) or blaze
    tracker = Tracker(
        detector, mesh, preset.detect_interval, preset.smoothing, tracking=config.tracking,
        detector_for=setup.detector_for,
    )
    controls = Controls(ControlState(face=face.name, preset=config.preset))
    return Pipeline(setup.engine, tracker, face.library, controls, RecordingStats())


# ------------------------------------------------------------------------------------------------ passes


@dataclass
class Sample:
    index: int
    frame: np.ndarray
    output: np.ndarray
    bbox: np.ndarray | None


def speed_pass(
    pipeline: Any,
    path: str,
    frames: int,
    realtime: bool,
    keep: set[int] | None = None,
    adaptive: bool = False,
) -> tuple[PassData, list[Sample]]:
    """Run the live loop over the file: as fast as possible, or paced like a camera."""
    from vcamswap.live.adaptive import AdaptiveQuality
    from vcamswap.outputs.sinkset import SinkSet
    from vcamswap.live.pipeline import FrameResult
    from vcamswap.live.loop import LiveLoop

    capture = Capture(input=path, realtime=realtime)
    if adaptive:
        pipeline.preset_override = AdaptiveQuality(capture.info.fps, explicit_target=False)
    sinks = SinkSet([])
    sinks.open(capture.info.width, capture.info.height, capture.info.fps)
    samples: list[Sample] = []
    runs = [0]

    def on_frame(frame: Frame, result: FrameResult) -> None:
        runs[0] += int(result.engine_ran)
        if keep is not None and len(samples) < len(keep) and pipeline.stats.frames - 1 in keep:
            bbox = None if result.face is None else result.face.geometry.bbox
            samples.append(Sample(frame.index, frame.image, result.image, bbox))

    capture.start()
    try:
        LiveLoop(capture, pipeline, sinks, pipeline.controls, max_frames=WARMUP_FRAMES).run()
        tracker: Tracker = pipeline.tracker
        stats = RecordingStats()
        pipeline.stats, pipeline.timer = stats, StageTimer(stats)
        tracker.on_time = stats.add_stage
        calls0, frames0, dropped0 = tracker.detector_calls, tracker.frames, capture.dropped
        runs[0] = 0
        loop = LiveLoop(capture, pipeline, sinks, pipeline.controls, max_frames=frames, on_frame=on_frame)
        t0 = time.perf_counter()
        loop.run()
        seconds = time.perf_counter() - t0
        dropped = capture.dropped - dropped0
    finally:
        capture.stop()
        sinks.close()
    n = stats.frames
    if realtime and len(stats.publish_t) > 1:
        fps = (len(stats.publish_t) - 1) / (stats.publish_t[-1] - stats.publish_t[0])
    else:
        fps = n / seconds if seconds > 0 else 0.0
    data = PassData(
        realtime=realtime,
        frames=n,
        seconds=seconds,
        fps=fps,
        stage_samples=stats.samples,
        latencies=stats.latencies,
        detector_calls=tracker.detector_calls - calls0,
        tracked_frames=tracker.frames - frames0,
        engine_runs=runs[0],
        dropped=dropped,
        adaptive_level=getattr(pipeline.preset_override, "level", None),
    )
    pipeline.preset_override = None
    return data, samples


def read_frames(path: str, limit: int) -> Iterator[np.ndarray]:
    cap = cv2.VideoCapture(path)
    try:
        for _ in range(limit):
            ok, image = cap.read()
            if not ok or image is None:
                return
            yield image
    finally:
        cap.release()


def fresh_keypoints(path: str, limit: int, detector: FaceDetector, mesh: FaceMesh) -> np.ndarray:
    """(T, 5, 2) keypoints from detection + landmarks on every frame (NaN where no face)."""
    out = []
    for image in read_frames(path, limit):
        det = pick_face(detector.detect(image), image.shape)
        if det is None:
            out.append(np.full((5, 2), np.nan, np.float32))
            continue
        res = mesh.run(image, mesh.roi_from_detection(det))
        out.append(geometry_from_mesh(res.points, res.presence).kps)
    return np.asarray(out, np.float32)


def tracked_keypoints(path: str, limit: int, tracker: Tracker) -> np.ndarray:
    out = []
    for image in read_frames(path, limit):
        face = tracker.update(image)
        out.append(face.geometry.kps if face is not None else np.full((5, 2), np.nan, np.float32))
    return np.asarray(out, np.float32)


def steadiness(tracked: np.ndarray, fresh: np.ndarray, tracker: Tracker, fps: float) -> Steadiness:
    seg = still_segment(fresh)
    j, ref = jitter_px(tracked, seg), jitter_px(fresh, seg)
    minutes = len(tracked) / max(fps, 1e-6) / 60.0
    return Steadiness(
        frames=len(tracked),
        still_segment=(seg.start or 0, seg.stop or len(tracked)),
        jitter_px=round(j, 4),
        reference_jitter_px=round(ref, 4),
        jitter_ratio=round(j / ref, 3) if ref > 0 else float("nan"),
        accuracy_px=round(accuracy_px(tracked, fresh), 3),
        losses=tracker.losses,
        losses_per_min=round(tracker.losses / minutes, 2) if minutes > 0 else 0.0,
        detector_calls_per_frame=round(tracker.detector_calls / max(tracker.frames, 1), 4),
        face_frames=round(float(np.isfinite(tracked).all((1, 2)).mean()), 4),
    )


# ---------------------------------------------------------------------------------------------- identity


class Recognizer:
    """dlib's 128-d face descriptor (face_recognition_models' ResNet), independent of the swap models."""

    def __init__(self) -> None:
        import dlib
        import face_recognition_models as frm

        self.dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.shape = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
        self.net = dlib.face_recognition_model_v1(frm.face_recognition_model_location())

    @staticmethod
    def available() -> str | None:
        """None when usable, else what to install."""
        try:
            import dlib  # noqa: F401
            import face_recognition_models  # noqa: F401
        except ImportError:
            return EVAL_HINT
        return None

    def descriptor(self, image_bgr: np.ndarray, near: np.ndarray | None = None) -> np.ndarray | None:
        """The descriptor of the face nearest `near` (a box), or of the largest face when no box is given."""
        rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
        rects = list(self.detector(rgb, 0)) or list(self.detector(rgb, 1))
        rect = None
        if near is not None:
            cx, cy = (near[0] + near[2]) / 2, (near[1] + near[3]) / 2
            inside = [r for r in rects if r.left() <= cx <= r.right() and r.top() <= cy <= r.bottom()]
            if inside:
                rect = inside[0]
            else:  # dlib missed it: a square on the tracked face, the size its detector would give
                side = 0.8 * max(near[2] - near[0], near[3] - near[1])
                rect = self.dlib.rectangle(int(cx - side / 2), int(cy - side / 2 + 0.1 * side),
                                           int(cx + side / 2), int(cy + side / 2 + 0.1 * side))
        elif rects:
            rect = max(rects, key=lambda r: r.area())
        if rect is None:
            return None
        shape = self.shape(rgb, rect)
        return np.asarray(self.net.compute_face_descriptor(rgb, shape), np.float64)


def identity(samples: list[Sample], source: np.ndarray, rec: Recognizer) -> Identity | None:
    src = rec.descriptor(source)
    if src is None:
        return None
    to_src, to_tgt = [], []
    for s in samples:
        if s.bbox is None:
            continue
        out = rec.descriptor(s.output, s.bbox)
        tgt = rec.descriptor(s.frame, s.bbox)
        if out is None or tgt is None:
            continue
        to_src.append(float(np.linalg.norm(out - src)))
        to_tgt.append(float(np.linalg.norm(out - tgt)))
    if not to_src:
        return None
    a, b = np.asarray(to_src), np.asarray(to_tgt)
    tgt0 = [rec.descriptor(s.frame, s.bbox) for s in samples[:5] if s.bbox is not None]
    apart = [float(np.linalg.norm(t - src)) for t in tgt0 if t is not None]
    return Identity(
        frames=len(a),
        to_source=round(float(a.mean()), 4),
        to_target=round(float(b.mean()), 4),
        closer_to_source=round(float((a < b).mean()), 4),
        source_vs_target=round(float(np.mean(apart)), 4) if apart else float("nan"),
    )


# ------------------------------------------------------------------------------------------------- report


def _fmt(v: float | None, spec: str = ".1f") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return format(v, spec)


TABLE_COLUMNS = (
    "config", "fps", "rt fps", "p95 ms", "drop", "det/f", "track ms", "swap ms", "paste ms",
    "jitter px", "vs ref", "acc px", "loss/min", "id src", "id tgt", "closer",
)


LEGEND = (
    "fps: as fast as possible | rt fps, p95 ms, drop: paced like a camera (output fps, capture->publish latency, "
    "dropped frames) | det/f: detector calls per frame | stage ms: median/p95 | jitter: keypoint px on a still "
    "stretch, vs ref = against detection on every frame | acc px: from a fresh detection | id src/tgt: dlib "
    "distance of the output face to the source / to the camera's person, closer: frames closer to the source"
)


def _stage(stage_ms: dict[str, dict[str, float]], name: str) -> str:
    """'median/p95' of one stage."""
    s = stage_ms.get(name)
    return f"{s['median']:.1f}/{s['p95']:.1f}" if s and s.get("n") else "-"


def table(results: list[RunResult]) -> str:
    rows = [list(TABLE_COLUMNS)]
    for r in results:
        t, rt, st, idt = r.throughput, r.realtime, r.steadiness, r.identity
        speed = t or rt
        stage = speed.stage_ms if speed else {}
        rows.append([
            r.config.label,
            _fmt(t.fps if t else None),
            _fmt(rt.fps if rt else None),
            _fmt(rt.latency_ms.get("p95") if rt else None, ".0f"),
            str(rt.dropped) if rt else "-",
            _fmt(speed.detector_calls_per_frame if speed else st.detector_calls_per_frame if st else None, ".3f"),
            _stage(stage, "track"),
            _stage(stage, "swap"),
            _stage(stage, "paste"),
            _fmt(st.jitter_px if st else None, ".3f"),
            _fmt(st.jitter_ratio if st else None, ".2f"),
            _fmt(st.accuracy_px if st else None, ".2f"),
            _fmt(st.losses_per_min if st else None, ".1f"),
            _fmt(idt.to_source if idt else None, ".3f"),
            _fmt(idt.to_target if idt else None, ".3f"),
            _fmt(idt.closer_to_source * 100 if idt else None, ".0f") + ("%" if idt else ""),
        ])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
             for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def to_json(results: list[RunResult], meta: dict[str, object]) -> dict[str, object]:
    runs = []
    for r in results:
        d = asdict(r)
        d["config"] = {**asdict(r.config), "label": r.config.label}
        runs.append(d)
    ratios = _ratios(results)
    return {**meta, "runs": runs, "ratios": ratios}


def _ratios(results: list[RunResult]) -> dict[str, dict[str, float]]:
    """Tracking on versus detection on every frame, per engine and preset, from this run's medians."""
    out: dict[str, dict[str, float]] = {}
    by = {(r.config.engine, r.config.preset, r.config.tracking): r for r in results}
    for (engine, preset, tracking), on in by.items():
        off = by.get((engine, preset, False))
        if not tracking or off is None:
            continue
        d: dict[str, float] = {}
        if on.throughput and off.throughput and off.throughput.fps:
            d["fps_tracking_vs_detect_all"] = round(on.throughput.fps / off.throughput.fps, 3)
        if on.steadiness and off.steadiness and off.steadiness.jitter_px:
            d["jitter_tracking_vs_detect_all"] = round(on.steadiness.jitter_px / off.steadiness.jitter_px, 3)
        if on.throughput and off.throughput and off.throughput.detector_calls_per_frame:
            d["detector_calls_tracking_vs_detect_all"] = round(
                on.throughput.detector_calls_per_frame / off.throughput.detector_calls_per_frame, 3
            )
        out[f"{engine}/{preset}"] = d
    return out


# ---------------------------------------------------------------------------------------------------- run


@dataclass
class BenchOptions:
    input: str
    engines: list[str]
    presets: list[str]
    frames: int
    realtime: bool
    throughput: bool
    tracking: list[bool]
    quality: bool
    face: str
    models: str | None = None
    provider: str | None = None
    adaptive: bool = False
    repeat: int = 1
    steady_frames: int = 0  # 0: the whole file (up to STEADY_MAX frames)


def run_bench(opts: BenchOptions, emit: Callable[[str], None] = print) -> tuple[list[RunResult], dict[str, object]]:
    probe = Capture(input=opts.input, realtime=False)
    info = probe.info
    probe.stop()
    total = info.frame_count or opts.frames
    frames = min(opts.frames, total) if info.kind == "file" else opts.frames
    blaze = BlazeFaceDetector()
    mesh = FaceMesh()
    face = FixedFace(Path(opts.face), blaze, mesh)
    notes: list[str] = []
    rec: Recognizer | None = None
    if opts.quality:
        missing = Recognizer.available()
        if missing:
            notes.append(f"identity not measured: dlib is missing; {missing}")
            emit(f"note: {notes[-1]}")
        else:
            rec = Recognizer()
    load_before = _load_average()
    emit(f"input {info.name}: {info.width}x{info.height} @ {info.fps:.1f} fps, {frames} frames per pass; "
         f"{os.cpu_count()} CPU cores, load average {load_before:.2f}")
    # Steadiness is cheap (no engine): it covers the whole clip, however few frames the timed passes take.
    file_frames = info.frame_count if info.kind == "file" else 0
    steady_frames = opts.steady_frames or min(file_frames or frames, STEADY_MAX)
    if file_frames:
        steady_frames = min(steady_frames, file_frames)
    fresh = fresh_keypoints(opts.input, steady_frames, blaze, mesh)
    items: list[tuple[EngineSetup, Config]] = []
    for engine_name in opts.engines:
        setup = make_engine(engine_name, opts.models, opts.provider, blaze)
        if setup.random_weights:
            notes.append(RANDOM_NOTE)
            emit(f"note: {RANDOM_NOTE}")
        items += [(setup, Config(engine_name, p, t)) for p in opts.presets for t in opts.tracking]
    results = {config: RunResult(config) for _, config in items}
    sample_at = set(np.linspace(0, frames - 1, min(IDENTITY_SAMPLES, frames)).astype(int).tolist())
    source_image = face.library.get(face.name).image  # type: ignore[union-attr]
    thr: dict[Config, list[PassData]] = {c: [] for _, c in items}
    rt: dict[Config, list[PassData]] = {c: [] for _, c in items}
    # Repeats go round all configurations in turn, so a burst of other work on the machine hits them alike.
    for rep in range(opts.repeat):
        for setup, config in items:
            if opts.throughput:
                keep = sample_at if rec is not None and rep == 0 else None
                data, samples = speed_pass(make_pipeline(setup, face, mesh, blaze, config), opts.input, frames,
                                           False, keep)
                thr[config].append(data)
                emit(f"{config.label} [{rep + 1}/{opts.repeat}]: throughput {data.fps:.1f} fps")
                if rec is not None and samples:
                    results[config].identity = identity(samples, source_image, rec)
            if opts.realtime:
                data, _ = speed_pass(make_pipeline(setup, face, mesh, blaze, config), opts.input, frames, True,
                                     None, adaptive=opts.adaptive)
                rt[config].append(data)
                emit(f"{config.label} [{rep + 1}/{opts.repeat}]: realtime {data.fps:.1f} fps, dropped {data.dropped}")
    steady_cache: dict[tuple[object, ...], Steadiness] = {}
    for setup, config in items:
        result = results[config]
        result.throughput = summarize(thr[config]) if thr[config] else None
        result.realtime = summarize(rt[config]) if rt[config] else None
        preset = get_preset(config.preset)
        detector = setup.detector_for(preset) or blaze
        kind = "blaze" if setup.random_weights or detector is blaze else config.engine
        key = (kind, preset.det_size if kind != "blaze" else 0, preset.detect_interval, preset.smoothing,
               config.tracking)
        if key not in steady_cache:
            track_detector = blaze if kind == "blaze" else detector
            tracker = Tracker(track_detector, mesh, preset.detect_interval, preset.smoothing, config.tracking)
            tracked = tracked_keypoints(opts.input, steady_frames, tracker)
            steady_cache[key] = steadiness(tracked, fresh, tracker, info.fps)
        result.steadiness = steady_cache[key]
        emit(_progress(result))
    meta: dict[str, object] = {
        "input": info.name,
        "width": info.width,
        "height": info.height,
        "source_fps": info.fps,
        "frames": frames,
        "steadiness_frames": steady_frames,
        "face": opts.face,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            # Other work on the machine skews timings; these say how busy it was around the run.
            "load_average_before": round(load_before, 2),
            "load_average_after": round(_load_average(), 2),
        },
        "definitions": {
            "jitter_px": f"RMS residual of the 5 keypoints about a Savitzky-Golay trajectory ({SMOOTH_WINDOW} frames,"
                         f" order 2) on the stillest {STILL_FRAMES} frames",
            "accuracy_px": "mean distance of the tracked keypoints from detection + landmarks on the same frame",
            "reference": "tracking off: detection + landmarks on every frame, no smoothing",
            "identity": "dlib 128-d face descriptor distances (two photos of one person are usually < 0.6)",
        },
        "notes": notes,
    }
    return list(results.values()), meta


def _load_average() -> float:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # Windows
        return float("nan")


def _progress(r: RunResult) -> str:
    parts = [r.config.label]
    if r.throughput:
        parts.append(f"throughput {r.throughput.fps:.1f} fps")
    if r.realtime:
        parts.append(f"realtime {r.realtime.fps:.1f} fps p95 {r.realtime.latency_ms['p95']:.0f} ms "
                     f"dropped {r.realtime.dropped}")
    if r.steadiness:
        parts.append(f"jitter {r.steadiness.jitter_px:.3f} px (ref {r.steadiness.reference_jitter_px:.3f}) "
                     f"accuracy {r.steadiness.accuracy_px:.2f} px")
    if r.identity:
        parts.append(f"identity {r.identity.to_source:.3f}/{r.identity.to_target:.3f} "
                     f"closer {r.identity.closer_to_source:.0%}")
    return "; ".join(parts)


# ---------------------------------------------------------------------------------------------------- CLI


def register(sub: Any) -> None:
    p = sub.add_parser("bench", help="measure speed, steadiness and identity of engines and presets on a clip")
    p.add_argument("--input", required=True, help="a video file (a real face; see docs/presets.md)")
    p.add_argument("--engine", action="append", choices=["lite", "inswapper"], help="repeatable (default lite)")
    p.add_argument("--preset", action="append", choices=list(PRESET_NAMES), help="repeatable (default all)")
    p.add_argument("--frames", type=int, default=300, help="frames per pass (default 300, at most the file's)")
    p.add_argument("--realtime", action="store_true", help="also run paced like a camera: output fps, latency")
    p.add_argument("--no-throughput", dest="throughput", action="store_false", help="skip the as-fast-as-possible pass")
    p.add_argument("--tracking", choices=["on", "off", "both"], default="both",
                   help="tracking between detections, detection on every frame, or both (default)")
    p.add_argument("--quality", action="store_true", help="identity with dlib's recogniser ('vcamswap[eval]')")
    p.add_argument("--adaptive", action="store_true", help="adaptive quality on in the realtime pass")
    p.add_argument("--repeat", type=int, default=1,
                   help="timed passes per configuration, interleaved; fps is their median (default 1)")
    p.add_argument("--steady-frames", type=int, default=0,
                   help=f"frames for jitter/accuracy/losses (default: the whole file, at most {STEADY_MAX})")
    p.add_argument("--face", help="source face image (default: the demo face)")
    p.add_argument("--models", help="models folder for the neural engine")
    p.add_argument("--provider", help="onnxruntime execution provider")
    p.add_argument("--json", type=Path, help="write every figure to this JSON file")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    from vcamswap.capture.demo import demo_face

    if args.frames < WARMUP_FRAMES + 5:
        print(f"vcamswap: error: --frames must be at least {WARMUP_FRAMES + 5}", file=sys.stderr)
        return 2
    tracking = {"on": [True], "off": [False], "both": [True, False]}[args.tracking]
    opts = BenchOptions(
        input=args.input,
        engines=args.engine or ["lite"],
        presets=args.preset or list(PRESET_NAMES),
        frames=args.frames,
        realtime=args.realtime,
        throughput=args.throughput,
        tracking=tracking,
        quality=args.quality,
        face=args.face or str(demo_face()),
        models=args.models,
        provider=args.provider,
        adaptive=args.adaptive,
        repeat=max(1, args.repeat),
        steady_frames=args.steady_frames,
    )
    results, meta = run_bench(opts, lambda line: print(line, flush=True))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(clean_json(to_json(results, meta)), indent=2, allow_nan=False) + "\n")
    for note in meta["notes"]:  # type: ignore[attr-defined]
        print(f"note: {note}")
    print()
    print(LEGEND)
    print(table(results), flush=True)
    return 0


def clean_json(o: object) -> object:
    """Plain JSON values: NaN and infinities become null (strict JSON has no NaN), numpy scalars Python's."""
    if isinstance(o, dict):
        return {str(k): clean_json(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [clean_json(v) for v in o]
    if isinstance(o, np.generic):
        o = o.item()
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return o
