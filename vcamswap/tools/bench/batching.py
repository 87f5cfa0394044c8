"""`vcamswap bench --batch 1,2,4`: the swap model's cost for N faces of one frame, one call each against one
batched call (InswapperEngine.swap_many through the dynamic-batch copy, made here when it is missing).

Crops and latents are fixed random arrays: the model's cost does not depend on the picture.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from vcamswap.engines import SwapItem
from vcamswap.presets import get_preset
from vcamswap.types import FaceGeometry


class BatchFigure(NamedTuple):
    faces: int
    single_ms: float  # median per frame: one swap() per face
    batched_ms: float  # median per frame: one swap_many() for all faces
    batched: bool  # whether swap_many really made one model call (False: no batching session)

    @property
    def speedup(self) -> float:
        return self.single_ms / self.batched_ms if self.batched_ms > 0 else float("nan")

    def line(self) -> str:
        mode = "one call" if self.batched else "no batching session: one call each"
        return (f"{self.faces} face{'s' if self.faces > 1 else ''}: {self.single_ms:.1f} ms one call each, "
                f"{self.batched_ms:.1f} ms batched ({mode}; {self.batched_ms / self.faces:.1f} ms per face, "
                f"x{self.speedup:.2f})")


def _items(engine: Any, n: int) -> list[SwapItem[Any]]:
    # the neural engine (onnxruntime) loads only for the batch bench
    from vcamswap.engines.inswapper import InswapperSource
    from vcamswap.engines.neural import swap_template

    rng = np.random.default_rng(0)
    face = FaceGeometry(np.zeros(4, np.float32), swap_template(), None, 1.0)
    items = []
    for _ in range(n):
        emb = rng.standard_normal(512).astype(np.float32)
        emb /= np.linalg.norm(emb)
        latent = (emb.reshape(1, -1) @ engine.emap).astype(np.float32)
        latent /= np.linalg.norm(latent)
        crop = rng.integers(0, 255, (128, 128, 3), np.uint8)
        items.append(SwapItem(crop, face, InswapperSource(emb, latent)))
    return items


def _median_ms(fn: Callable[[], object], runs: int) -> float:
    fn()  # warm-up: first-call allocations, provider set-up for this batch size
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


def batch_pass(engine: Any, counts: Sequence[int], runs: int = 5) -> list[BatchFigure]:
    preset = get_preset("balanced")
    out = []
    for n in counts:
        items = _items(engine, n)

        def one_each(items: list[SwapItem[Any]] = items) -> object:
            return [engine.swap(i.crop, i.face, i.source, preset) for i in items]

        def batched(items: list[SwapItem[Any]] = items) -> object:
            return engine.swap_many(items, preset)

        single_ms = _median_ms(one_each, runs)
        before = engine.batched_calls
        batched_ms = _median_ms(batched, runs)
        out.append(BatchFigure(n, single_ms, batched_ms, n == 1 or engine.batched_calls > before))
    return out


def run_batch_bench(models: Path, provider: str | None, counts: Sequence[int], runs: int,
                    emit: Callable[[str], None]) -> list[BatchFigure]:
    # the neural engine (onnxruntime) and onnx load only for the batch bench
    from vcamswap.engines.inswapper import InswapperEngine
    from vcamswap.modelstore.batch import ensure_batched

    made = ensure_batched(models)
    emit(f"batched copy: {made.outcome}{f' ({made.detail})' if made.detail else ''}")
    engine = InswapperEngine(models, provider=provider)
    emit(f"inswapper on {engine.choice.name} ({', '.join(engine.placement().values())}), {runs} runs each")
    figures = batch_pass(engine, counts, runs)
    for f in figures:
        emit(f.line())
    return figures
