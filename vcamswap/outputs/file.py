"""A video file output."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import cv2
import numpy as np

from vcamswap.outputs.base import OutputUnavailable, fit_frame
from vcamswap.safepath import same_file
from vcamswap.types import check_bgr

log = logging.getLogger("vcamswap.outputs")

FILE_FOURCC = {".mp4": "mp4v", ".avi": "MJPG", ".mkv": "mp4v"}


class FileSink:
    """A video file: .mp4 and .mkv as MPEG-4 (mp4v), .avi as MJPG. Parent folders are created.

    An existing file is never replaced unless `overwrite`, and the file named by `protect` (the input)
    never is. A file this sink created itself may be reopened after a failure.

    `crash_safe` (the daemon, which records for hours and may be killed): an MP4 keeps its index at the end,
    written only on close, so a killed recording is unreadable; OpenCV cannot write a fragmented MP4. A .mp4
    is then recorded as Matroska beside it (FILE.mkv, same codec), which stays readable up to the last
    frames written. .mkv and .avi are written as asked: both survive a kill.
    """

    def __init__(
        self, path: str | os.PathLike[str], overwrite: bool = False, protect: str | None = None,
        crash_safe: bool = False,
    ) -> None:
        self.path = Path(path).expanduser()
        self.overwrite = overwrite
        self.protect = protect
        self._created = False
        suffix = self.path.suffix.lower()
        if suffix not in FILE_FOURCC:
            raise ValueError(f"unsupported video file type '{suffix}': use .mp4, .avi or .mkv")
        self.asked: Path | None = None  # the .mp4 asked for, when recorded as Matroska instead
        if crash_safe and suffix == ".mp4":
            self.asked, self.path = self.path, self.path.with_suffix(".mkv")
            suffix = ".mkv"
        self.name = str(path) if self.asked is None else str(self.path)
        self._fourcc = FILE_FOURCC[suffix]
        self._writer: cv2.VideoWriter | None = None
        self._size = (0, 0)
        self.frames_written = 0

    def open(self, width: int, height: int, fps: float) -> None:
        if self._writer is not None:
            return
        self._check_target()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputUnavailable(f"cannot create {self.path.parent}: {e.strerror or e}") from None
        writable = _folder_writable(self.path.parent)
        if writable is not None:
            raise OutputUnavailable(f"cannot write {self.path}: {writable}")
        writer = cv2.VideoWriter(
            str(self.path), cv2.VideoWriter.fourcc(*self._fourcc), fps if fps > 0 else 30.0, (width, height)
        )
        if not writer.isOpened():
            writer.release()
            raise OutputUnavailable(
                f"cannot write {self.path}: the {self._fourcc} encoder refused a {width}x{height} picture"
            )
        if self.asked is not None and not self._created:
            log.info("recording to %s, not %s: an MP4 is unreadable until it is closed, so a killed daemon "
                     "would leave nothing; Matroska keeps every frame written", self.path, self.asked.name)
        self._writer, self._size, self.frames_written = writer, (width, height), 0
        self._created = True

    def _check_target(self) -> None:
        if self.protect and same_file(self.protect, self.path):
            raise OutputUnavailable(f"{self.path} is the input; choose another output file")
        if os.path.lexists(self.path) and not (self.overwrite or self._created):
            raise OutputUnavailable(f"{self.path} exists already; pass --overwrite to replace it")
        if self.path.is_dir():
            raise OutputUnavailable(f"{self.path} is a folder")

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


def _folder_writable(folder: Path) -> str | None:
    """Why files cannot be created in `folder` (checked by creating one), or None."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".vcamswap-probe-"):
            return None
    except OSError as e:
        return f"the folder {folder} is not writable ({e.strerror or e})"
