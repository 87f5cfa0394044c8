"""The preview window."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

import cv2
import numpy as np

from vcamswap import desktop
from vcamswap.outputs.base import OutputUnavailable, one_line
from vcamswap.outputs.mjpeg import MjpegSink
from vcamswap.types import check_bgr

log = logging.getLogger("vcamswap.outputs")

PREVIEW_WINDOW = "Swap Cam preview"
NO_DISPLAY_HINT = "no display for the preview window; use --output mjpeg to watch in a browser"


def _qt_platforms() -> set[str] | None:
    """Qt platform plugins bundled with OpenCV, or None when OpenCV's GUI is not a bundled Qt."""
    folder = Path(cv2.__file__).parent / "qt" / "plugins" / "platforms"
    if not folder.is_dir():
        return None
    return {p.name.removeprefix("libq").split(".")[0] for p in folder.iterdir()}


def display_problem(env: Mapping[str, str] | None = None, system: str | None = None) -> str | None:
    """Why a preview window cannot open here, or None.

    opencv-python's imshow aborts the whole process when it cannot reach a display, so this is checked first.
    """
    d = desktop.session(env, system)
    if d.native:
        return None
    if not d.x11 and not d.wayland:
        return NO_DISPLAY_HINT
    if d.x11:
        if desktop.x11_reachable(d.x11):
            return None
        return f"cannot reach the X display {d.x11!r}; use --output mjpeg to watch in a browser"
    platforms = _qt_platforms()
    if platforms is not None and "wayland" not in platforms:
        # opencv-python's Qt ships only the X11 plugin; without XWayland (DISPLAY) imshow would abort.
        return "the preview window needs X11 (XWayland) but DISPLAY is unset; use --output mjpeg instead"
    return None


class PreviewSink:
    """An OpenCV window "Swap Cam preview". Closing the window hides the preview until the next open()."""

    def __init__(self, window: str = PREVIEW_WINDOW) -> None:
        self.name = "preview"
        self.window = window
        self._open = False
        self._dismissed = False

    @property
    def dismissed(self) -> bool:
        """The user closed the window."""
        return self._dismissed

    def open(self, width: int, height: int, fps: float) -> None:
        problem = display_problem()
        if problem is not None:
            raise OutputUnavailable(problem)
        try:
            # Resizable, aspect kept, and without Qt's toolbar and status bar around the picture.
            cv2.namedWindow(self.window, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO | cv2.WINDOW_GUI_NORMAL)
            cv2.resizeWindow(self.window, width, height)
        except cv2.error:
            raise OutputUnavailable(
                "this OpenCV has no GUI (opencv-python-headless?); use --output mjpeg to watch in a browser"
            ) from None
        self._open = True
        self._dismissed = False

    def send(self, frame_bgr: np.ndarray) -> None:
        if not self._open:
            raise OutputUnavailable("the preview window is not open")
        if self._dismissed:
            return
        try:
            cv2.imshow(self.window, check_bgr(frame_bgr, "frame"))
            cv2.waitKey(1)  # lets the window paint and handle events
            if cv2.getWindowProperty(self.window, cv2.WND_PROP_VISIBLE) < 1:
                self._dismissed = True
        except cv2.error as e:
            self._open = False
            raise OutputUnavailable(f"the preview window failed: {one_line(str(e))}") from None

    def close(self) -> None:
        if not self._open:
            return
        self._open = False
        try:
            cv2.destroyWindow(self.window)
            cv2.waitKey(1)
        except cv2.error:  # already gone
            pass


class PreviewWindow:
    """The preview window as an output that "Show preview" opens and closes at run time.

    The window lives in a viewer process (vcamswap.outputs.viewer) fed by a local MJPEG stream: OpenCV's Qt and the
    GTK tray cannot share a process, and a window problem must never take the daemon down. `wanted` says
    whether the window should show; when it cannot show or the user closes it, `dismissed` is set (and the
    window stays closed until `wanted` turns false): the daemon unticks "Show preview" from that.
    """

    name = "preview"

    def __init__(self, wanted: Callable[[], bool]) -> None:
        self.wanted = wanted
        self.dismissed = False
        self._format = (0, 0, 0.0)
        self._stream: MjpegSink | None = None  # on 127.0.0.1, a free port
        self._viewer: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def open(self, width: int, height: int, fps: float) -> None:
        self._format = (width, height, fps)

    def send(self, frame_bgr: np.ndarray) -> None:
        want = self.wanted()
        if not want:
            self.dismissed = False
        if want and self._viewer is None:
            if self.dismissed or not self._show():
                self.dismissed = True
                return
        elif not want and self._viewer is not None:
            self.close()
            return
        if self._viewer is None or self._stream is None:
            return
        if self._viewer.poll() is not None:  # the user closed the window
            self.close()
            self.dismissed = True
            return
        self._stream.send(frame_bgr)

    def _show(self) -> bool:
        problem = display_problem()
        if problem:
            log.warning("preview: %s", problem)
            return False
        stream = MjpegSink(0)
        try:
            stream.open(*self._format)
        except OutputUnavailable as e:
            log.warning("preview: %s", e)
            return False
        try:
            viewer = subprocess.Popen(
                [sys.executable, "-m", "vcamswap.outputs.viewer", f"http://127.0.0.1:{stream.port}/stream.mjpg"],
                stdin=subprocess.DEVNULL,
            )
        except OSError as e:
            stream.close()
            log.warning("preview: cannot start the viewer: %s", e)
            return False
        with self._lock:
            self._stream, self._viewer = stream, viewer
        return True

    def close(self) -> None:
        with self._lock:
            viewer, stream = self._viewer, self._stream
            self._viewer = self._stream = None
        if viewer is not None:
            if viewer.poll() is None:
                viewer.terminate()
            try:
                viewer.wait(timeout=5)
            except subprocess.TimeoutExpired:
                viewer.kill()
                viewer.wait()
        if stream is not None:
            stream.close()
