"""Reading frames of a video file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from vcamswap.tools.bench.passes import read_frames as bench_frames


def frames(path: Path | str, limit: int = 10**9) -> Iterator[np.ndarray]:
    """Up to `limit` frames of the file, as they decode (fewer when it ends): the bench's own reader."""
    return bench_frames(str(path), limit)


def read_frames(path: Path | str, count: int, step: int = 1) -> list[np.ndarray]:
    """Exactly `count` frames, every `step`-th one; the test fails when the file has fewer."""
    out = [f for i, f in enumerate(frames(path, count * step)) if i % step == 0]
    assert len(out) == count, f"could read only {len(out)} frames of {path}"
    return out
