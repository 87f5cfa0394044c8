"""Figures of a bench run: jitter, accuracy, stage times, and the records they are kept in."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger("vcamswap.bench")


STILL_FRAMES = 90  # 3 s at 30 fps: the segment jitter is measured on
SMOOTH_WINDOW = 15  # 0.5 s: motion slower than this is the head's, faster is jitter
WARMUP_FRAMES = 10
IDENTITY_SAMPLES = 60  # at most this many frames measured by --quality, at a fixed step
STEADY_MAX = 1800  # a minute at 30 fps
EVAL_HINT = "pip install 'vcamswap[eval]' (dlib's recogniser and its weights, about 100 MB)"
RANDOM_NOTE = (
    "inswapper: weights not installed, so det_10g and inswapper_128 are same-architecture models with RANDOM "
    "weights (real cost, meaningless picture), ArcFace is a small stand-in and faces are found by BlazeFace; "
    "identity figures for it are meaningless"
)


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


@dataclass(frozen=True)
class Config:
    engine: str
    preset: str
    tracking: bool
    likeness: float = 0.0  # the lite engine's likeness control

    @property
    def label(self) -> str:
        like = f"/likeness {self.likeness:g}" if self.likeness else ""
        return f"{self.engine}/{self.preset}/{'track' if self.tracking else 'detect-all'}{like}"


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
    captured: int = 0  # frames the input delivered during the timed passes: published or dropped (but the one in hand)
    late: int = 0  # swaps first pasted a frame or more after the frame they were cut from (engine in workers)
    stale: int = 0  # faces shown unswapped because their newest swap was too old for the pose
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
    captured: int = 0
    late: int = 0  # the loop's Stats counts over the pass
    stale: int = 0


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
        captured=sum(p.captured for p in passes),
        late=sum(p.late for p in passes),
        stale=sum(p.stale for p in passes),
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
class Realism:
    """tools.bench.realism's measures over the sampled frames (regions from `landmarks`' 68 points)."""

    frames: int
    landmarks: str  # "dlib" (the eval extra), else "facemesh" mapped to the same 68-point scheme
    foreign_mean: float  # share of skin pixels far from the skin's colour, output minus camera
    foreign_max: float
    tone_delta_e: float  # cheeks, output against camera (CIE76)
    seam: float  # gradient along the swap's edge, output over camera
    occluders: float  # edges in a ring around the eyes, output over camera
    under_nose: float = 0.0  # share of the band under the nose far darker than the skin, output minus camera
    dark_mean: float = 0.0  # share of the skin in dark patches the camera does not have (realism.dark_patches)
    dark_max: float = 0.0
    # tools.bench.expression: the output's expression against the camera's, frame by frame (NaN: not measurable)
    mouth_corr: float = float("nan")  # Pearson r of the mouth's opening, output vs camera
    eye_corr: float = float("nan")  # Pearson r of the eyes' aspect ratio, output vs camera
    flicker: float = float("nan")  # frame-to-frame change of the face, output over camera (1 = as much)
    step: int = 1  # frames between measured frames: the flicker's pairs are this far apart
    flicker_pairs: int = 0


@dataclass
class RunResult:
    config: Config
    throughput: Speed | None = None
    realtime: Speed | None = None
    steadiness: Steadiness | None = None
    identity: Identity | None = None
    realism: Realism | None = None
    notes: list[str] = field(default_factory=list)
