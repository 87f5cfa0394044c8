"""The contract every output follows, and the helpers sinks share.

Every sink takes BGR uint8 frames. A sink that cannot work right now raises OutputUnavailable with one line
that says what to install or do; SinkSet keeps the other sinks running and retries the failed one later.
"""

from __future__ import annotations

import logging
from typing import Protocol

import cv2
import numpy as np

log = logging.getLogger("vcamswap.outputs")

class OutputUnavailable(Exception):
    """An output cannot be used right now; the message is one line and says what to install or do.

    `detail` keeps the underlying library's own text (for `vcamswap doctor` and debug logs).
    """

    def __init__(self, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail


class Sink(Protocol):
    name: str

    def open(self, width: int, height: int, fps: float) -> None: ...

    def send(self, frame_bgr: np.ndarray) -> None: ...

    def close(self) -> None: ...


def fit_frame(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    if frame.shape[1] == width and frame.shape[0] == height:
        return frame
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)


def one_line(text: str) -> str:
    return "; ".join(part.strip() for part in text.splitlines() if part.strip())
