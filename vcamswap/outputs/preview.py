"""The preview window: one implementation for `run --output preview` and the daemon's "Show preview".

The window lives in a viewer process (vcamswap.outputs.viewer) fed by a local MJPEG stream: OpenCV's Qt
and the GTK tray cannot share a process, and a window problem must never take the live loop down.
"""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

import cv2
import numpy as np

from vcamswap import desktop
from vcamswap.outputs.base import OutputUnavailable
from vcamswap.outputs.mjpeg import MjpegSink
from vcamswap.outputs.viewer import URL_ENV
from vcamswap.types import check_bgr

log = logging.getLogger("vcamswap.outputs")

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


VIEWER_START_S = 20.0  # how long an always-on window's first frame waits for the window to show


class PreviewSink:
    """The preview window as an output.

    With no `wanted`, the window opens with the output (a display problem raises OutputUnavailable, as any
    output's would). With `wanted` (the daemon's "Show preview"), it opens and closes as that says. When the
    window cannot show or the user closes it, `dismissed` is set and it stays closed until the next open()
    or until `wanted` turns false: the daemon unticks "Show preview" from that; outputs never touch Controls.
    """

    name = "preview"

    def __init__(self, wanted: Callable[[], bool] | None = None) -> None:
        self.wanted = wanted
        self.dismissed = False
        self._format = (0, 0, 0.0)
        self._open = False
        self._stream: MjpegSink | None = None  # on 127.0.0.1, a free port
        self._viewer: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._shown = threading.Event()  # the viewer displayed its first frame
        self._waited = False

    def open(self, width: int, height: int, fps: float) -> None:
        self._format = (width, height, fps)
        self._open, self.dismissed = True, False
        if self.wanted is None and self._viewer is None:
            problem = display_problem()
            if problem is not None:
                raise OutputUnavailable(problem)
            self._show(raise_errors=True)

    def acknowledge(self) -> None:
        """The owner has acted on a dismissal (unticked "Show preview"): the next wish opens the window again,
        even when it comes before any frame saw the wish turn false."""
        self.dismissed = False

    def send(self, frame_bgr: np.ndarray) -> None:
        if not self._open:
            raise OutputUnavailable("the preview window is not open")
        want = True if self.wanted is None else self.wanted()
        if not want:
            self.dismissed = False
        if want and self._viewer is None:
            if self.dismissed or not self._show():
                self.dismissed = True
                return
        elif not want and self._viewer is not None:
            self._stop()
            return
        if self._viewer is None or self._stream is None:
            return
        if self._viewer.poll() is not None:  # the user closed the window
            self._stop()
            self.dismissed = True
            return
        self._stream.send(check_bgr(frame_bgr, "frame"))
        if self.wanted is None and not self._waited:
            # An always-on window: the first frame waits (once) until the window shows, so what follows is seen.
            self._waited = True
            self._shown.wait(VIEWER_START_S)

    def _show(self, raise_errors: bool = False) -> bool:
        def fail(message: str) -> bool:
            if raise_errors:
                raise OutputUnavailable(message)
            log.warning("preview: %s", message)
            return False

        problem = display_problem()
        if problem:
            return fail(problem)
        stream = MjpegSink(0, token=secrets.token_hex(24))  # a token for this window only
        try:
            stream.open(*self._format)
        except OutputUnavailable as e:
            return fail(str(e))
        try:
            # The URL goes in the environment, which only this user can read (not the command line).
            viewer = subprocess.Popen(
                [sys.executable, "-m", "vcamswap.outputs.viewer"],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env={**os.environ, URL_ENV: stream.stream_url},
            )
        except OSError as e:
            stream.close()
            return fail(f"cannot start the viewer: {e}")
        self._shown.clear()
        self._waited = False
        threading.Thread(target=self._watch, args=(viewer,), name="preview-viewer", daemon=True).start()
        with self._lock:
            self._stream, self._viewer = stream, viewer
        return True

    def _watch(self, viewer: subprocess.Popen[bytes]) -> None:
        """Reads the viewer's output until it ends: its "shown" line sets _shown."""
        assert viewer.stdout is not None
        for line in viewer.stdout:
            if line.strip() == b"shown":
                self._shown.set()
        self._shown.set()  # ended: nobody waits for a window that is gone

    def _stop(self) -> None:
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

    def close(self) -> None:
        self._open = False
        self._stop()
