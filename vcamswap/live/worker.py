"""Where an engine's swap runs: in the live loop's thread, or in workers the loop never waits for.

`Engine.in_flight` chooses. 0 runs the swap inline (the lite engine: on two cores a thread hand-off costs
more than it frees, see docs/architecture.md). 1 or more runs it in that many worker threads, fed the newest
job with one pending slot (drop-oldest): a slow neural call, a cold TensorRT build or a remote round trip
then delays only the swap, never the publishing of frames, and several workers keep several remote
requests in flight so throughput does not depend on the round trip. Results come back in completion order;
the pipeline keeps the newest per face.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from vcamswap.engines import Engine, EngineError, SwapItem
from vcamswap.presets import Preset
from vcamswap.types import SwapOutput

# (source digest, engine, swap model, crop size, track id): a result is re-pasted only on its key
Key = tuple[object, ...]


@dataclass(frozen=True)
class SwapJob:
    """Every face of one frame to swap."""

    seq: int  # index of the frame the crops were cut from
    items: tuple[SwapItem[Any], ...]
    keys: tuple[Key, ...]
    # Each face's landmarks in its crop when cut: a late result is pasted only while the face still looks so.
    shapes: tuple[np.ndarray, ...]
    preset: Preset
    t_submit: float


@dataclass(frozen=True)
class SwapDone:
    job: SwapJob
    outputs: tuple[SwapOutput, ...]  # one per item; empty when the swap failed
    error: str | None  # why it failed, said once by the pipeline
    engine_s: float  # the engine call itself
    queued_s: float  # from submit to the start of the call


class SwapStage(Protocol):
    def submit(self, job: SwapJob) -> None:
        """Hand a job over; a job still waiting for a worker is replaced (the newest frame wins)."""
        ...

    def collect(self) -> list[SwapDone]:
        """The jobs finished since the last call, oldest first."""
        ...

    def stalled_for(self, now: float) -> float:
        """Seconds the oldest running call has been running (0 when none)."""
        ...

    def settle(self) -> None:
        """Wait until every job handed over has finished (frame-exact processing of a file)."""
        ...

    def close(self) -> None: ...


def run_job(engine: Engine[Any], job: SwapJob, started: float) -> SwapDone:
    """One engine call for a job; any failure becomes the result's error, never an exception."""
    queued = started - job.t_submit
    try:
        outputs = tuple(engine.swap_many(job.items, job.preset))
        error = None if len(outputs) == len(job.items) else f"engine {engine.name} returned {len(outputs)} faces"
    except EngineError as e:
        outputs, error = (), str(e)
    except Exception as e:  # a crashing engine degrades to pass-through; the loop goes on
        outputs, error = (), f"engine {engine.name} failed ({type(e).__name__}: {e})"
    return SwapDone(job, outputs if error is None else (), error, time.perf_counter() - started, queued)


class InlineStage:
    """The swap in the caller's thread: submit() returns when it is done."""

    def __init__(self, engine: Engine[Any]) -> None:
        self.engine = engine
        self._done: list[SwapDone] = []

    def submit(self, job: SwapJob) -> None:
        self._done.append(run_job(self.engine, job, time.perf_counter()))

    def collect(self) -> list[SwapDone]:
        done, self._done = self._done, []
        return done

    def stalled_for(self, now: float) -> float:
        return 0.0

    def settle(self) -> None:
        pass

    def close(self) -> None:
        pass


class WorkerStage:
    """`workers` threads take the newest job; the loop only hands jobs over and picks results up."""

    def __init__(self, engine: Engine[Any], workers: int) -> None:
        self.engine = engine
        self._cond = threading.Condition()
        self._pending: SwapJob | None = None
        self._running: dict[int, float] = {}  # thread ident -> when its call started
        self._done: list[SwapDone] = []
        self._closed = False
        self.replaced = 0  # jobs that never ran because a newer one came first
        self._threads = [
            threading.Thread(target=self._work, name=f"swap-{engine.name}-{i}", daemon=True) for i in range(workers)
        ]
        for t in self._threads:
            t.start()

    def submit(self, job: SwapJob) -> None:
        with self._cond:
            if self._pending is not None:
                self.replaced += 1
            self._pending = job
            self._cond.notify()

    def collect(self) -> list[SwapDone]:
        with self._cond:
            done, self._done = self._done, []
        return done

    def stalled_for(self, now: float) -> float:
        with self._cond:
            return max((now - t for t in self._running.values()), default=0.0)

    def settle(self) -> None:
        with self._cond:
            while (self._pending is not None or self._running) and not self._closed:
                self._cond.wait(0.1)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _work(self) -> None:
        me = threading.get_ident()
        while True:
            with self._cond:
                while self._pending is None and not self._closed:
                    self._cond.wait()
                job = self._pending
                if self._closed or job is None:
                    return
                self._pending = None
                started = time.perf_counter()
                self._running[me] = started
            done = run_job(self.engine, job, started)
            with self._cond:
                del self._running[me]
                self._done.append(done)
                self._cond.notify_all()


def make_stage(engine: Engine[Any]) -> SwapStage:
    workers = max(0, int(engine.in_flight))
    return InlineStage(engine) if workers == 0 else WorkerStage(engine, workers)
