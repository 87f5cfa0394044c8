"""A video file output."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import numpy as np

from vcamswap.outputs.base import OutputUnavailable, fit_frame
from vcamswap.types import check_bgr

log = logging.getLogger("vcamswap.outputs")

FILE_FOURCC = {".mp4": "mp4v", ".avi": "MJPG", ".mkv": "mp4v"}


class FileSink:
    """A video file: .mp4 and .mkv as MPEG-4 (mp4v), .avi as MJPG. Parent folders are created."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()
        suffix = self.path.suffix.lower()
        if suffix not in FILE_FOURCC:
            raise ValueError(f"unsupported video file type '{suffix}': use .mp4, .avi or .mkv")
        self.name = str(path)
        self._fourcc = FILE_FOURCC[suffix]
        self._writer: cv2.VideoWriter | None = None
        self._size = (0, 0)
        self.frames_written = 0

    def open(self, width: int, height: int, fps: float) -> None:
        if self._writer is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputUnavailable(f"cannot create {self.path.parent}: {e.strerror or e}") from None
        writer = cv2.VideoWriter(
            str(self.path), cv2.VideoWriter.fourcc(*self._fourcc), fps if fps > 0 else 30.0, (width, height)
        )
        if not writer.isOpened():
            writer.release()
            raise OutputUnavailable(
                f"cannot write {self.path} ({self._fourcc}, {width}x{height}); check the folder is writable"
            )
        self._writer, self._size, self.frames_written = writer, (width, height), 0

    def send(self, frame_bgr: np.ndarray) -> None:
        if self._writer is None:
            raise OutputUnavailable(f"{self.path} is not open")
        # VideoWriter silently drops frames whose size differs from the opened one.
        self._writer.write(fit_frame(check_bgr(frame_bgr, "frame"), *self._size))
        self.frames_written += 1

    def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.release()
