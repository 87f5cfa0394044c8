"""Capture in its own thread; only the newest frame is kept, so a slow pipeline drops frames, not freshness.

A camera is asked for W x H @ F (MJPG where offered) and the values it really delivers are reported.
A file or URL is paced at its own fps and loops, so it behaves like a camera; an image is a still camera.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vcamswap.imageio import ImageError, check_size
from vcamswap.imageio import load_image as load_bounded
from vcamswap.types import Frame

log = logging.getLogger("vcamswap.capture")

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".pgm", ".tif", ".tiff"}


class CaptureError(Exception):
    """The source cannot be opened; the message is one line and says what to pass instead."""


@dataclass(frozen=True)
class SourceInfo:
    kind: str  # "camera" | "file" | "image" | "url"
    name: str
    width: int
    height: int
    fps: float
    frame_count: int = 0  # frames in a file (0 for cameras and streams)


def _is_url(spec: str) -> bool:
    return "://" in spec


def camera_spec(value: str | int | None) -> int | str:
    """'0' -> 0, '/dev/video2' -> '/dev/video2'. Never -1: cv2.VideoCapture(-1) can take the process down."""
    if value is None:
        return 0
    if isinstance(value, int) or str(value).isdigit():
        idx = int(value)
        if idx < 0:
            raise CaptureError(f"camera index must be 0 or more, got {idx}")
        return idx
    return str(value)


def _quietly_open(spec: int | str) -> cv2.VideoCapture:
    """OpenCV's backends print their own errors while probing a missing camera; our one line says it all."""
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        return cv2.VideoCapture(spec)
    finally:
        cv2.utils.logging.setLogLevel(level)


def open_camera(spec: int | str, width: int, height: int, fps: float) -> tuple[cv2.VideoCapture, SourceInfo]:
    if isinstance(spec, str) and not os.path.exists(spec):
        raise CaptureError(f"no camera at {spec}; pass --camera N or --input FILE")
    cap = _quietly_open(spec)
    if not cap.isOpened():
        cap.release()
        raise CaptureError(
            f"no camera found (camera {spec}); plug one in, pass --camera N, or use --input FILE"
        )
    cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*"MJPG"))
    cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
    cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
    cap.set(cv2.CAP_PROP_FPS, fps)
    cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # where supported: do not let the driver queue stale frames
    info = SourceInfo(
        "camera",
        str(spec),
        int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
        int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        float(cap.get(cv2.CAP_PROP_FPS) or fps),
    )
    return cap, info


def _not_a_file(path: str) -> str | None:
    """Why `path` cannot be read as a video or image file (missing, a folder, a device...), or None."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return f"input not found: {path}"
    except OSError as e:
        return f"input {path}: {e.strerror or e}"
    if stat.S_ISREG(mode):
        return None
    kind = ("a folder" if stat.S_ISDIR(mode) else "a character device" if stat.S_ISCHR(mode)
            else "a block device" if stat.S_ISBLK(mode) else "a pipe" if stat.S_ISFIFO(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
    hint = "; a camera is --camera N or --camera /dev/videoN" if stat.S_ISCHR(mode) else ""
    return f"input {path} is {kind}, not a video or image file{hint}"


def open_file(path: str) -> tuple[cv2.VideoCapture, SourceInfo]:
    if not _is_url(path) and (why := _not_a_file(path)) is not None:
        raise CaptureError(why)
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        cap.release()
        raise CaptureError(f"cannot read {path} as a video (unsupported or corrupt file)")
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    if not 1.0 <= fps <= 240.0:
        fps = 30.0  # streams and some containers report 0 or nonsense
    info = SourceInfo(
        "url" if _is_url(path) else "file",
        path,
        int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
        int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        fps,
        max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT))),
    )
    try:
        check_size(path, info.width, info.height)
    except ImageError as e:
        cap.release()
        raise CaptureError(f"input {e}") from None
    return cap, info


def load_image(path: str) -> np.ndarray:
    """A still input, through the bounded loader: a tiny, huge or bomb image is a one-line CaptureError."""
    try:
        return load_bounded(path)
    except ImageError as e:
        raise CaptureError(f"input {e}") from None


class Capture:
    """Reads a source in a thread; `read()` returns the newest frame not returned before."""

    def __init__(
        self,
        camera: str | int | None = None,
        input: str | None = None,
        width: int = 1280,
        height: int = 720,
        fps: float = 30.0,
        loop: bool = True,
        realtime: bool = True,
    ) -> None:
        self._camera = None if input else camera_spec(camera)
        self._input = input
        self._want = (width, height, fps)
        self._loop = loop
        self._realtime = realtime  # False: files are read as fast as they are consumed (benchmarks)
        self._cap: cv2.VideoCapture | None = None
        self._still: np.ndarray | None = None
        self.info = self._open()
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._consumed = -1
        self._index = 0
        self._stop = threading.Event()
        self._paused = threading.Event()
        self.status = "ok"  # "ok" | "lost" | "paused" | "ended"
        self.dropped = 0
        self.last_error: str | None = None
        self.truncated = False  # a file ended before its declared frame count
        self._truncated_said = False
        self._thread = threading.Thread(target=self._run, name="vcamswap-capture", daemon=True)

    def _open(self) -> SourceInfo:
        if self._input and Path(self._input).suffix.lower() in IMAGE_EXTS:
            self._still = load_image(self._input)
            h, w = self._still.shape[:2]
            return SourceInfo("image", self._input, w, h, self._want[2])
        if self._input:
            self._cap, info = open_file(self._input)
            return info
        assert self._camera is not None
        self._cap, info = open_camera(self._camera, *self._want)
        return info

    @property
    def captured(self) -> int:
        """Frames the source has delivered so far: each one is read once or counted in `dropped`."""
        return self._index

    def start(self) -> Capture:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        if self._cap is not None:
            self._cap.release()

    def pause(self, paused: bool) -> None:
        """Release a physical camera while paused so other apps can use it."""
        if paused:
            self._paused.set()
        else:
            self._paused.clear()

    def read(self, timeout: float = 1.0) -> Frame | None:
        """The newest unseen frame, waiting up to `timeout`; None when none came (paused, lost, ended)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._latest is None or self._latest.index == self._consumed:
                left = deadline - time.monotonic()
                if left <= 0 or self._stop.is_set() or self.status == "ended":
                    return None
                self._cond.wait(left)
            frame = self._latest
            self._consumed = frame.index
            self._cond.notify_all()  # a non-realtime reader is waiting for the frame to be taken
            return frame

    def _publish(self, image: np.ndarray) -> None:
        with self._cond:
            if self._latest is not None and self._latest.index != self._consumed:
                self.dropped += 1
            self._latest = Frame(image, self._index, time.perf_counter())
            self._index += 1
            self._cond.notify_all()

    def _run(self) -> None:
        period = 1.0 / max(self.info.fps, 1.0)
        next_t = time.perf_counter()
        backoff = 0.5
        while not self._stop.is_set():
            if self._paused.is_set():
                self._hold_paused()
                next_t = time.perf_counter()
                continue
            if self._realtime and self.info.kind != "camera":
                next_t += period
                delay = next_t - time.perf_counter()
                if delay > 0:
                    self._stop.wait(delay)
                else:
                    next_t = time.perf_counter()  # fell behind: do not burst to catch up
            elif not self._realtime:
                self._wait_consumed()
            image = self._grab()
            if image is None:
                if self.info.kind == "file" and self._loop and self._rewind():
                    continue
                if self.info.kind in ("file",):
                    if self._cap is not None:
                        self._say_if_truncated()
                    self.status = "ended"
                    with self._cond:
                        self._cond.notify_all()
                    return
                self._lost(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.5
            self.status = "ok"
            self._publish(image)

    def _wait_consumed(self) -> None:
        with self._cond:
            while (
                self._latest is not None
                and self._latest.index != self._consumed
                and not self._stop.is_set()
            ):
                self._cond.wait(0.5)

    def _grab(self) -> np.ndarray | None:
        if self._still is not None:
            return self._still.copy()
        if self._cap is None:
            return None
        ok, image = self._cap.read()
        return image if ok and image is not None else None

    def _rewind(self) -> bool:
        assert self._cap is not None
        self._say_if_truncated()
        self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
        ok, image = self._cap.read()
        if not ok:
            return False
        self._publish(image)
        return True

    def _say_if_truncated(self) -> None:
        """A file that ends before the frame count its header declares is damaged: say so, once."""
        read, declared = self._index, self.info.frame_count
        if self._truncated_said or not declared or read >= declared - max(2, declared // 50):
            return
        self._truncated_said = True
        self.truncated = True
        log.warning("%s: only %d of the %d frames it declares could be read (truncated or damaged file)",
                    self.info.name, read, declared)

    def _lost(self, backoff: float) -> None:
        """Camera unplugged or taken: release it and try again with backoff; the outputs keep going."""
        if self.status != "lost":
            log.warning("camera %s lost; retrying", self.info.name)
        self.status = "lost"
        with self._cond:
            self._cond.notify_all()
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        self._stop.wait(backoff)
        if self._stop.is_set():
            return
        try:
            if self._input:
                self._cap, _ = open_file(self._input)
            else:
                assert self._camera is not None
                self._cap, _ = open_camera(self._camera, *self._want)
            log.warning("camera %s back", self.info.name)
        except CaptureError as e:
            self.last_error = str(e)

    def _hold_paused(self) -> None:
        self.status = "paused"
        if self.info.kind == "camera" and self._cap is not None:
            self._cap.release()
            self._cap = None
        while self._paused.is_set() and not self._stop.is_set():
            self._stop.wait(0.1)
        if self.info.kind == "camera" and not self._stop.is_set():
            try:
                assert self._camera is not None
                self._cap, _ = open_camera(self._camera, *self._want)
            except CaptureError as e:
                self.last_error = str(e)
        self.status = "ok"
