"""Per-stage timings, output fps and capture-to-publish latency, kept in small rolling windows."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# engine: the engine call (in the loop or a worker); queue: from hand-over to the call's start (workers only)
STAGES = ("capture", "track", "swap", "paste", "output", "engine", "queue")


@dataclass(frozen=True)
class StatsSnapshot:
    fps: float
    latency_ms: float  # median capture -> publish
    latency_p95_ms: float
    stage_ms: dict[str, float]  # median per stage
    frames: int
    swapped: int  # frames in which a face was swapped (engine run or re-paste)
    dropped: int  # camera frames never processed (newest-frame-wins)
    late: int = 0  # swaps first pasted a frame or more after the frame they were cut from (engine in a worker)
    stale: int = 0  # times a face showed unswapped because its newest swap was too old for its pose

    def line(self) -> str:
        stages = " ".join(f"{k}={v:.1f}" for k, v in self.stage_ms.items())
        return (
            f"fps={self.fps:.1f} latency={self.latency_ms:.0f}ms (p95 {self.latency_p95_ms:.0f}) "
            f"ms: {stages} frames={self.frames} swapped={self.swapped} dropped={self.dropped}"
            + (f" late={self.late} stale={self.stale}" if self.late or self.stale else "")
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "fps": round(self.fps, 2),
            "latency_ms": round(self.latency_ms, 2),
            "latency_p95_ms": round(self.latency_p95_ms, 2),
            "stage_ms": {k: round(v, 3) for k, v in self.stage_ms.items()},
            "frames": self.frames,
            "swapped": self.swapped,
            "dropped": self.dropped,
            "late": self.late,
            "stale": self.stale,
        }


class Stats:
    def __init__(self, window: int = 120) -> None:
        self._lock = threading.Lock()
        self._stage: dict[str, deque[float]] = {s: deque(maxlen=window) for s in STAGES}
        self._latency: deque[float] = deque(maxlen=window)
        self._publish_t: deque[float] = deque(maxlen=window)
        self.frames = 0
        self.swapped = 0
        self.dropped = 0
        self.late = 0
        self.stale = 0

    def add_stage(self, stage: str, seconds: float) -> None:
        with self._lock:
            self._stage.setdefault(stage, deque(maxlen=self._latency.maxlen)).append(seconds * 1000.0)

    def frame_published(
        self, t_capture: float, swapped: bool, t_now: float | None = None, dropped: int | None = None,
        late: int = 0, stale: int = 0,
    ) -> None:
        """One frame reached the outputs; `dropped`: the capture's count of frames never processed; `late`,
        `stale`: the frame's swaps that were pasted late, or held back as too old."""
        now = time.perf_counter() if t_now is None else t_now
        with self._lock:
            self.late += late
            self.stale += stale
            self._latency.append((now - t_capture) * 1000.0)
            self._publish_t.append(now)
            self.frames += 1
            self.swapped += int(swapped)
            if dropped is not None:
                self.dropped = dropped

    def snapshot(self) -> StatsSnapshot:
        with self._lock:
            ts = list(self._publish_t)
            fps = (len(ts) - 1) / (ts[-1] - ts[0]) if len(ts) > 1 and ts[-1] > ts[0] else 0.0
            lat = np.array(self._latency) if self._latency else np.zeros(1)
            stage_ms = {k: float(np.median(v)) if v else 0.0 for k, v in self._stage.items()}
            return StatsSnapshot(
                fps=fps,
                latency_ms=float(np.median(lat)),
                latency_p95_ms=float(np.percentile(lat, 95)),
                stage_ms=stage_ms,
                frames=self.frames,
                swapped=self.swapped,
                dropped=self.dropped,
                late=self.late,
                stale=self.stale,
            )


class StatsPrinter:
    """Prints a stats line every `interval` seconds from the loop's thread."""

    def __init__(self, stats: Stats, interval: float, emit: Callable[[str], None]) -> None:
        self.stats, self.interval, self.emit = stats, interval, emit
        self._next = time.monotonic() + interval

    def tick(self) -> None:
        if time.monotonic() >= self._next:
            self._next = time.monotonic() + self.interval
            self.emit(self.stats.snapshot().line())
