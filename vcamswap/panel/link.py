"""What the daemon hands the panel: one object, so the panel never reaches into the daemon's own fields."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vcamswap.controls import Controls

if TYPE_CHECKING:
    import numpy as np

    from vcamswap.checks import Line
    from vcamswap.faces.library import FaceLibrary
    from vcamswap.types import TrackedFace

Request = dict[str, Any]
Reply = dict[str, Any]
FACES_KEPT = 8  # frames whose tracked faces stay at hand: the outline drawn is the shown picture's own


class FrameTap:
    """The newest camera picture and the newest published picture (what Swap Cam shows), kept by reference,
    with the faces the tracker followed in the last few frames (the panel's outline).

    The loop thread calls put() once per frame: no copy and no encoding, so the panel costs the loop nothing
    while nobody watches. Readers wait for a newer frame with wait_newer().
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._seq = 0
        self._camera: np.ndarray | None = None
        self._published: np.ndarray | None = None
        self._faces: deque[tuple[int, tuple[TrackedFace, ...]]] = deque(maxlen=FACES_KEPT)

    def put(self, camera: np.ndarray, published: np.ndarray, faces: tuple[TrackedFace, ...] = ()) -> None:
        with self._cond:
            self._camera, self._published = camera, published
            self._seq += 1
            self._faces.append((self._seq, faces))
            self._cond.notify_all()

    @property
    def seq(self) -> int:
        return self._seq

    def latest(self, which: str) -> tuple[int, np.ndarray | None]:
        """(sequence number, picture) of `which`: "camera" or "swap"."""
        with self._cond:
            return self._seq, self._camera if which == "camera" else self._published

    def faces(self, seq: int | None = None) -> tuple[int, tuple[TrackedFace, ...], tuple[int, int] | None]:
        """(sequence number, the faces the tracker followed, the picture's (width, height)) of frame `seq` while
        it is kept, else of the newest frame."""
        with self._cond:
            size = None if self._camera is None else (int(self._camera.shape[1]), int(self._camera.shape[0]))
            for kept, faces in reversed(self._faces):
                if seq is None or kept == seq:
                    return kept, faces, size
            if self._faces:
                kept, faces = self._faces[-1]
                return kept, faces, size
            return self._seq, (), size

    def wait_newer(self, after: int, timeout: float) -> int:
        """The sequence number once it is past `after`, or the current one after `timeout` seconds."""
        with self._cond:
            self._cond.wait_for(lambda: self._seq > after, timeout)
            return self._seq


@dataclass(frozen=True)
class PanelLink:
    """Everything the panel uses of the daemon.

    `request` is the control socket's handler: every change the panel makes goes through the same table of
    intents as the socket, the tray and the hotkeys, and `{"cmd": "status"}` is `vcamswap status`'s reply.
    """

    controls: Controls
    request: Callable[[Request], Reply]
    frames: FrameTap
    library: Callable[[], FaceLibrary | None]  # None while the daemon is starting
    faces_dir: Path
    rescan: Callable[[], None]  # look at the faces folder now (after an upload or a removal)
    doctor: Callable[[], list[Line]]
    models_dir: Path | None = None  # where the neural models are installed (the engine section lists them)
