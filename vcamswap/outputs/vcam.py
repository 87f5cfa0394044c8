"""The OS virtual camera through pyvirtualcam, named "Swap Cam" where the OS allows it."""

from __future__ import annotations

import importlib
import logging
import os
import platform
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from vcamswap.outputs.base import OutputUnavailable, fit_frame, one_line
from vcamswap.outputs.v4l2 import SYSFS_V4L, VCAM_LABEL, find_v4l2_device
from vcamswap.types import check_bgr

log = logging.getLogger("vcamswap.outputs")

# Tests (and integrators) can add a pyvirtualcam backend by name: NAME=module:Class.
TEST_VCAM_ENV = "VCAMSWAP_TEST_VCAM_BACKEND"

LINUX_VCAM_HINT = (
    "sudo apt install v4l2loopback-dkms && sudo modprobe v4l2loopback devices=1 video_nr=10 "
    f'card_label="{VCAM_LABEL}" exclusive_caps=1'
)
MACOS_VCAM_HINT = "install OBS Studio >= 30 and start its Virtual Camera once (Tools > Start Virtual Camera)"
WINDOWS_VCAM_HINT = (
    "install OBS Studio >= 30 and start its Virtual Camera once, "
    f'or install Unity Capture and name its device "{VCAM_LABEL}"'
)


def _vcam_unavailable(detail: str, device: str | None, system: str) -> OutputUnavailable:
    """pyvirtualcam's (possibly multi-line) error as one line that says what to do."""
    text = one_line(detail)
    low = text.lower()
    where = device or "the virtual camera"
    if system == "Linux":
        if "permission" in low:
            msg = f"no permission to open {where}: sudo usermod -aG video $USER, then log out and in again"
        elif "busy" in low or "already in use" in low:
            msg = f"{where} is busy: another program is sending to it; close it or pick another device"
        elif device and "does not exist" in low:
            msg = f"no virtual camera at {device}: {LINUX_VCAM_HINT}"
        elif device and ("not a video output" in low or "not a v4l2" in low):
            msg = f"{device} is not a v4l2loopback device: {LINUX_VCAM_HINT}"
        else:
            msg = f"no virtual camera device: {LINUX_VCAM_HINT}"
    elif system == "Darwin":
        msg = f"no virtual camera: {MACOS_VCAM_HINT}"
    elif system == "Windows":
        msg = f"no virtual camera: {WINDOWS_VCAM_HINT}"
    else:
        msg = f"no virtual camera backend on {system or 'this system'}; use --output mjpeg or a file"
    return OutputUnavailable(msg, detail=text)


class VirtualCamSink:
    """The OS virtual camera through pyvirtualcam, named "Swap Cam" where the OS allows it.

    Linux: a v4l2loopback device; with no device given, the one labelled "Swap Cam" is preferred over
    pyvirtualcam's first-found. A device may also be given as a label or a number ("10" -> /dev/video10).
    Windows: a Unity Capture device named "Swap Cam" if there is one, else OBS. macOS: OBS.
    """

    def __init__(
        self,
        *,
        backend: str | None = None,
        device: str | None = None,
        device_check_interval_s: float = 1.0,
        sysfs_root: str = SYSFS_V4L,
    ) -> None:
        self.name = "vcam"
        self._backend_arg = backend
        self._device_arg = device
        self._check_interval = device_check_interval_s
        self._sysfs_root = sysfs_root
        self._cam: Any = None
        self._size = (0, 0)
        self._backend_name: str | None = None
        self._device: str | None = None
        self._next_check = 0.0
        self.frames_sent = 0

    @property
    def backend_name(self) -> str | None:
        """The pyvirtualcam backend of the last successful open ("v4l2loopback", "obs", "unitycapture")."""
        return self._backend_name

    @property
    def device(self) -> str | None:
        """The device of the last successful open (/dev/videoN, "OBS Virtual Camera", ...)."""
        return self._device

    @property
    def is_open(self) -> bool:
        return self._cam is not None

    def _linux_device(self) -> str | None:
        dev = self._device_arg
        if dev is None:
            return find_v4l2_device(VCAM_LABEL, self._sysfs_root)
        if dev.isdigit():
            return f"/dev/video{dev}"
        if dev.startswith("/"):
            return dev
        path = find_v4l2_device(dev, self._sysfs_root)
        if path is None:
            hint = LINUX_VCAM_HINT.replace(f'card_label="{VCAM_LABEL}"', f'card_label="{dev}"')
            raise OutputUnavailable(f'no v4l2loopback device labelled "{dev}": {hint}')
        return path

    def _attempts(self, system: str, backends: Mapping[str, object]) -> list[tuple[str | None, str | None]]:
        """(backend, device) pairs to try in order."""
        if system == "Linux" and self._backend_arg in (None, "v4l2loopback"):
            return [(self._backend_arg, self._linux_device())]
        if system == "Windows" and self._backend_arg is None and self._device_arg is None:
            # Only Unity Capture lets the device carry our name; OBS's is always "OBS Virtual Camera".
            first: list[tuple[str | None, str | None]] = (
                [("unitycapture", VCAM_LABEL)] if "unitycapture" in backends else []
            )
            return [*first, (None, None)]
        return [(self._backend_arg, self._device_arg)]

    def open(self, width: int, height: int, fps: float) -> None:
        if self._cam is not None:
            if self._size == (width, height):
                return
            self.close()
        try:
            import pyvirtualcam
            from pyvirtualcam.camera import BACKENDS
        except Exception as e:  # a broken native module must not take the daemon down
            raise OutputUnavailable(f"pyvirtualcam cannot be loaded ({e}); pip install pyvirtualcam") from None
        system = platform.system()
        if self._backend_arg is not None and self._backend_arg not in BACKENDS:
            have = ", ".join(BACKENDS) or "none"
            raise OutputUnavailable(
                f"virtual camera backend '{self._backend_arg}' is not available here (available: {have})"
            )
        error: OutputUnavailable | None = None
        for backend, device in self._attempts(system, BACKENDS):
            try:
                cam = pyvirtualcam.Camera(
                    width,
                    height,
                    fps if fps > 0 else 30.0,  # a camera that reports no rate
                    fmt=pyvirtualcam.PixelFormat.BGR,
                    device=device,
                    backend=backend,
                )
            except (RuntimeError, ValueError, OSError) as e:
                error = _vcam_unavailable(str(e), device, system)
                log.debug("virtual camera %s/%s: %s", backend, device, error.detail)
                continue
            self._cam = cam
            self._size = (width, height)
            self._backend_name = str(cam.backend)
            self._device = str(cam.device)
            self._next_check = 0.0
            return
        assert error is not None
        raise error

    def _device_gone(self) -> bool:
        """The device node vanished (module unloaded, device deleted); checked at most once per interval."""
        dev = self._device
        if not dev or not dev.startswith("/"):
            return False
        now = time.monotonic()
        if now < self._next_check:
            return False
        self._next_check = now + self._check_interval
        return not os.path.exists(dev)

    def send(self, frame_bgr: np.ndarray) -> None:
        cam = self._cam
        if cam is None:
            raise OutputUnavailable("the virtual camera is not open")
        if self._device_gone():
            dev = self._device
            self.close()
            raise OutputUnavailable(f"the virtual camera {dev} disappeared; waiting for it to come back")
        # The device's format is fixed while apps watch it, so another size is scaled to the opened one.
        frame = fit_frame(check_bgr(frame_bgr, "frame"), *self._size)
        try:
            cam.send(frame)
        except (RuntimeError, OSError) as e:
            self.close()
            text = one_line(str(e))
            raise OutputUnavailable(
                f"the virtual camera {self._device} stopped taking frames ({text}); reopening it later", text
            ) from None
        self.frames_sent += 1

    def close(self) -> None:
        cam, self._cam = self._cam, None
        if cam is not None:
            try:
                cam.close()
            except Exception as e:  # closing a device that already vanished
                log.debug("closing the virtual camera: %s", e)


def register_backend_from_env(env: dict[str, str] | None = None) -> str | None:
    """Register the pyvirtualcam backend named in $VCAMSWAP_TEST_VCAM_BACKEND; its name, or None."""
    spec = (os.environ if env is None else env).get(TEST_VCAM_ENV, "").strip()
    if not spec:
        return None
    name, _, target = spec.partition("=")
    module, _, cls_name = target.partition(":")
    if not (name and module and cls_name):
        log.warning("%s=%r: expected NAME=module:Class", TEST_VCAM_ENV, spec)
        return None
    try:
        import pyvirtualcam

        pyvirtualcam.register_backend(name, getattr(importlib.import_module(module), cls_name))
    except Exception as e:
        log.warning("%s: cannot register %s (%s)", TEST_VCAM_ENV, target, e)
        return None
    return name
