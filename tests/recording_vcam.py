"""A pyvirtualcam backend for tests, registered by name in the daemon process through
VCAMSWAP_TEST_VCAM_BACKEND=recorder=recording_vcam:RecordingCamera (with this folder on PYTHONPATH).

It stands in for the OS virtual camera device, nothing else: frames go through the daemon's real
VirtualCamSink and pyvirtualcam.Camera. Files in $RECORDING_VCAM_DIR:
  state.json  {"frames", "opens", "width", "height"} after every frame (atomic replace)
  last.npy    the latest frame (H, W, 3) BGR, every 5th frame
  times.f64   time.monotonic() of every frame sent (native doubles, appended; the clock is the machine's)
  busy        while it exists, opening fails as a busy device would
  vanish      while it exists, sending fails as a device that disappeared would
"""

from __future__ import annotations

import json
import os
import struct
import time
from pathlib import Path
from typing import Any

import numpy as np


def _dir() -> Path:
    return Path(os.environ["RECORDING_VCAM_DIR"])


def frame_times(folder: Path) -> list[float]:
    """When each frame was sent, on the clock of time.monotonic() (the same for every process)."""
    try:
        data = (folder / "times.f64").read_bytes()
    except OSError:
        return []
    n = len(data) // 8
    return list(struct.unpack(f"{n}d", data[: n * 8]))


def read_state(folder: Path) -> dict[str, Any]:
    try:
        return dict(json.loads((folder / "state.json").read_text()))
    except (OSError, ValueError):
        return {"frames": 0, "opens": 0}


class RecordingCamera:
    opens = 0

    def __init__(self, *, width: int, height: int, fps: float, fourcc: int, device: str | None, **kw: Any) -> None:
        self.folder = _dir()
        if (self.folder / "busy").exists():
            raise RuntimeError("device is busy (another program is sending to it)")
        RecordingCamera.opens += 1
        self.width, self.height = width, height
        self.frames = read_state(self.folder).get("frames", 0)
        self._device = device or "recorder"
        self._write_state()

    def _write_state(self) -> None:
        tmp = self.folder / "state.json.tmp"
        tmp.write_text(json.dumps({"frames": self.frames, "opens": RecordingCamera.opens,
                                   "width": self.width, "height": self.height}))
        os.replace(tmp, self.folder / "state.json")

    def send(self, frame: np.ndarray) -> None:
        if (self.folder / "vanish").exists():
            raise RuntimeError("device vanished")
        self.frames += 1
        with open(self.folder / "times.f64", "ab") as f:
            f.write(struct.pack("d", time.monotonic()))
        if self.frames % 5 == 0:
            with open(self.folder / "last.tmp.npy", "wb") as f:
                np.save(f, frame.reshape(self.height, self.width, 3))
            os.replace(self.folder / "last.tmp.npy", self.folder / "last.npy")
        self._write_state()

    def close(self) -> None:
        pass

    def device(self) -> str:
        return self._device

    def native_fourcc(self) -> int | None:
        return None
