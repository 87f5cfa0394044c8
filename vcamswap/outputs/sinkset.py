"""Output sinks: the virtual camera, a preview window, an MJPEG preview over HTTP, and a video file.

Every sink takes BGR uint8 frames. A sink that cannot work right now raises OutputUnavailable with one line
that says what to install or do; SinkSet keeps the other sinks running and retries the failed one later.
"""

from __future__ import annotations

import logging
import os
import platform
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import cv2
import numpy as np

log = logging.getLogger("vcamswap.outputs")

VCAM_LABEL = "Swap Cam"
DEFAULT_MJPEG_PORT = 8089
PREVIEW_WINDOW = "Swap Cam preview"
SYSFS_V4L = "/sys/class/video4linux"
FILE_FOURCC = {".mp4": "mp4v", ".avi": "MJPG", ".mkv": "mp4v"}

LINUX_VCAM_HINT = (
    "sudo apt install v4l2loopback-dkms && sudo modprobe v4l2loopback devices=1 video_nr=10 "
    f'card_label="{VCAM_LABEL}" exclusive_caps=1'
)
MACOS_VCAM_HINT = "install OBS Studio >= 30 and start its Virtual Camera once (Tools > Start Virtual Camera)"
WINDOWS_VCAM_HINT = (
    "install OBS Studio >= 30 and start its Virtual Camera once, "
    f'or install Unity Capture and name its device "{VCAM_LABEL}"'
)
NO_DISPLAY_HINT = "no display for the preview window; use --output mjpeg to watch in a browser"


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


def check_frame(frame: Any) -> np.ndarray:
    """The frame itself when it is an HxWx3 uint8 array, else ValueError."""
    if (
        not isinstance(frame, np.ndarray)
        or frame.dtype != np.uint8
        or frame.ndim != 3
        or frame.shape[2] != 3
        or frame.shape[0] == 0
        or frame.shape[1] == 0
    ):
        desc = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
        raise ValueError(f"expected an HxWx3 uint8 BGR frame, got {desc}")
    return frame


def fit_frame(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    if frame.shape[1] == width and frame.shape[0] == height:
        return frame
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)


def _one_line(text: str) -> str:
    return "; ".join(part.strip() for part in text.splitlines() if part.strip())


# ---------------------------------------------------------------------------------------------------------
# Virtual camera


class V4l2Device(NamedTuple):
    path: str  # /dev/videoN
    label: str  # the card label, e.g. "Swap Cam"


def list_v4l2_devices(sysfs_root: str = SYSFS_V4L) -> list[V4l2Device]:
    """Video devices and their labels, from /sys/class/video4linux/videoN/name.

    Probes videoN/name for N in 0..99 (the range pyvirtualcam scans) instead of listing the directory, so a
    stand-in that only answers open() calls sees the same lookups as a real sysfs.
    """
    found = []
    for n in range(100):
        try:
            label = Path(f"{sysfs_root}/video{n}/name").read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        found.append(V4l2Device(f"/dev/video{n}", label.strip()))
    return found


def find_v4l2_device(label: str, sysfs_root: str = SYSFS_V4L) -> str | None:
    """/dev/videoN of the first device whose card label is `label`, or None."""
    for dev in list_v4l2_devices(sysfs_root):
        if dev.label == label:
            return dev.path
    return None


def _vcam_unavailable(detail: str, device: str | None, system: str) -> OutputUnavailable:
    """pyvirtualcam's (possibly multi-line) error as one line that says what to do."""
    text = _one_line(detail)
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
        pace: bool = False,
        device_check_interval_s: float = 1.0,
        sysfs_root: str = SYSFS_V4L,
    ) -> None:
        self.name = "vcam"
        self._backend_arg = backend
        self._device_arg = device
        self._pace = pace
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
        frame = fit_frame(check_frame(frame_bgr), *self._size)
        try:
            cam.send(frame)
        except (RuntimeError, OSError) as e:
            self.close()
            text = _one_line(str(e))
            raise OutputUnavailable(
                f"the virtual camera {self._device} stopped taking frames ({text}); reopening it later", text
            ) from None
        self.frames_sent += 1
        if self._pace:
            cam.sleep_until_next_frame()

    def close(self) -> None:
        cam, self._cam = self._cam, None
        if cam is not None:
            try:
                cam.close()
            except Exception as e:  # closing a device that already vanished
                log.debug("closing the virtual camera: %s", e)


# ---------------------------------------------------------------------------------------------------------
# MJPEG over HTTP


class _FrameHub:
    """The latest frame and its JPEG, shared by the HTTP client threads.

    Only the newest frame is kept: a slow client skips frames instead of queueing them. A frame is
    JPEG-encoded lazily, by the first client that wants it, and at most once; with no client, never.
    """

    def __init__(self, quality: int) -> None:
        self._cond = threading.Condition()
        self._encode_lock = threading.Lock()
        self._quality = quality
        self._frame: np.ndarray | None = None
        self._seq = 0
        self._jpeg = b""
        self._jpeg_seq = 0
        self._closed = False
        self._sockets: set[socket.socket] = set()
        self.clients = 0
        self.encodes = 0

    def publish(self, frame: np.ndarray) -> None:
        # A copy (0.1 ms at 720p): the caller may reuse its buffer while a client thread encodes.
        copy = frame.copy()
        with self._cond:
            self._frame = copy
            self._seq += 1
            self._cond.notify_all()

    def _encode(self, frame: np.ndarray, seq: int) -> tuple[int, bytes]:
        with self._encode_lock:
            if self._jpeg_seq < seq:
                ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, self._quality])
                if not ok:
                    raise RuntimeError("JPEG encoding failed")
                self._jpeg, self._jpeg_seq = buf.tobytes(), seq
                self.encodes += 1
            return self._jpeg_seq, self._jpeg

    def next_jpeg(self, after: int, timeout: float) -> tuple[int, bytes] | None:
        """The newest frame's JPEG once it is newer than `after`; None on timeout or close."""
        with self._cond:
            self._cond.wait_for(lambda: self._closed or (self._frame is not None and self._seq > after), timeout)
            if self._closed or self._frame is None or self._seq <= after:
                return None
            frame, seq = self._frame, self._seq
        return self._encode(frame, seq)

    def latest_jpeg(self) -> bytes | None:
        with self._cond:
            frame, seq = self._frame, self._seq
        return None if frame is None else self._encode(frame, seq)[1]

    @property
    def closed(self) -> bool:
        return self._closed

    def join(self, sock: socket.socket) -> None:
        with self._cond:
            self.clients += 1
            self._sockets.add(sock)

    def leave(self, sock: socket.socket) -> None:
        with self._cond:
            self.clients -= 1
            self._sockets.discard(sock)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            socks = list(self._sockets)
        for s in socks:  # wake client threads blocked writing to a client that stopped reading
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _MjpegServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], hub: _FrameHub) -> None:
        self.hub = hub
        super().__init__(address, _MjpegHandler)


class _MjpegHandler(BaseHTTPRequestHandler):
    server: _MjpegServer
    protocol_version = "HTTP/1.0"
    boundary = "frame"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path = self.path.split("?", 1)[0]
        if path in ("/", "/stream.mjpg"):
            self._stream()
        elif path == "/snapshot.jpg":
            self._snapshot()
        else:
            self.send_error(404, "try /stream.mjpg or /snapshot.jpg")

    def _no_cache_headers(self) -> None:
        self.send_header("Cache-Control", "no-cache, no-store, must-revalidate")
        self.send_header("Pragma", "no-cache")

    def _snapshot(self) -> None:
        jpeg = self.server.hub.latest_jpeg()
        if jpeg is None:
            self.send_error(503, "no frame yet")
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(jpeg)))
        self._no_cache_headers()
        self.end_headers()
        self.wfile.write(jpeg)

    def _stream(self) -> None:
        hub = self.server.hub
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={self.boundary}")
        self._no_cache_headers()
        self.end_headers()
        hub.join(self.connection)
        try:
            seq = 0
            while not hub.closed:
                item = hub.next_jpeg(seq, timeout=1.0)
                if item is None:
                    continue
                seq, jpeg = item
                head = f"--{self.boundary}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                self.wfile.write(head.encode("ascii") + jpeg + b"\r\n")
        except OSError:  # the client went away
            pass
        finally:
            hub.leave(self.connection)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (base class signature)
        log.debug("mjpeg %s: %s", self.address_string(), format % args)


class MjpegSink:
    """An MJPEG preview at http://127.0.0.1:PORT/ (also /stream.mjpg), and /snapshot.jpg.

    Bound to 127.0.0.1 by default so the picture never leaves the machine. Port 0 picks a free port; `port`
    tells which after open().
    """

    def __init__(self, port: int = DEFAULT_MJPEG_PORT, host: str = "127.0.0.1", quality: int = 80) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"MJPEG port must be 0-65535, got {port}")
        self.name = f"mjpeg:{port}"
        self.host = host
        self._port = port
        self._quality = quality
        self._hub = _FrameHub(quality)
        self._server: _MjpegServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1] if self._server is not None else self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    @property
    def clients(self) -> int:
        """Stream clients connected now."""
        return self._hub.clients

    @property
    def frames_encoded(self) -> int:
        return self._hub.encodes

    def open(self, width: int, height: int, fps: float) -> None:
        if self._server is not None:
            return
        hub = _FrameHub(self._quality)
        try:
            server = _MjpegServer((self.host, self._port), hub)
        except OSError as e:
            raise OutputUnavailable(
                f"cannot serve MJPEG on {self.host}:{self._port} ({e.strerror or e}); "
                "choose another port with mjpeg:PORT"
            ) from None
        self._hub, self._server = hub, server
        self._thread = threading.Thread(target=server.serve_forever, name="mjpeg-server", daemon=True)
        self._thread.start()
        log.info("MJPEG preview at %s", self.url)

    def send(self, frame_bgr: np.ndarray) -> None:
        if self._server is None:
            raise OutputUnavailable("the MJPEG server is not running")
        self._hub.publish(check_frame(frame_bgr))

    def close(self) -> None:
        server, self._server = self._server, None
        thread, self._thread = self._thread, None
        if server is None:
            return
        self._hub.close()
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join()


# ---------------------------------------------------------------------------------------------------------
# Preview window


def _x11_reachable(display: str, timeout: float = 1.0) -> bool:
    """Whether an X server answers at DISPLAY (":0", "unix:0", "host:10.0")."""
    host, sep, rest = display.rpartition(":")
    num = rest.split(".", 1)[0]
    if not sep or not num.isdigit():
        return False
    if host in ("", "unix") or host.startswith("/"):
        paths = [f"{host}:{num}"] if host.startswith("/") else [f"\0/tmp/.X11-unix/X{num}", f"/tmp/.X11-unix/X{num}"]
        for path in paths:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(timeout)
                try:
                    s.connect(path)
                    return True
                except OSError:
                    continue
        return False
    try:
        socket.create_connection((host, 6000 + int(num)), timeout=timeout).close()
        return True
    except OSError:
        return False


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
    env = os.environ if env is None else env
    system = platform.system() if system is None else system
    if system in ("Darwin", "Windows"):
        return None
    display, wayland = env.get("DISPLAY", ""), env.get("WAYLAND_DISPLAY", "")
    if not display and not wayland:
        return NO_DISPLAY_HINT
    if display:
        if _x11_reachable(display):
            return None
        return f"cannot reach the X display {display!r}; use --output mjpeg to watch in a browser"
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
            cv2.imshow(self.window, check_frame(frame_bgr))
            cv2.waitKey(1)  # lets the window paint and handle events
            if cv2.getWindowProperty(self.window, cv2.WND_PROP_VISIBLE) < 1:
                self._dismissed = True
        except cv2.error as e:
            self._open = False
            raise OutputUnavailable(f"the preview window failed: {_one_line(str(e))}") from None

    def close(self) -> None:
        if not self._open:
            return
        self._open = False
        try:
            cv2.destroyWindow(self.window)
            cv2.waitKey(1)
        except cv2.error:  # already gone
            pass


# ---------------------------------------------------------------------------------------------------------
# File


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
        self._writer.write(fit_frame(check_frame(frame_bgr), *self._size))
        self.frames_written += 1

    def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.release()


# ---------------------------------------------------------------------------------------------------------
# Parsing and the set of live sinks


def parse_output(spec: str, *, vcam_backend: str | None = None, vcam_device: str | None = None) -> Sink:
    """A sink for a CLI output: vcam, preview, mjpeg, mjpeg:PORT, or a .mp4/.avi/.mkv path."""
    text = spec.strip()
    key = text.lower()
    if key == "vcam":
        return VirtualCamSink(backend=vcam_backend, device=vcam_device)
    if key == "preview":
        return PreviewSink()
    if key == "mjpeg":
        return MjpegSink(DEFAULT_MJPEG_PORT)
    if key.startswith("mjpeg:"):
        port = text.split(":", 1)[1]
        if not port.isdigit() or int(port) > 65535:
            raise ValueError(f"bad MJPEG port in '{spec}': expected mjpeg:PORT with PORT 0-65535")
        return MjpegSink(int(port))
    if Path(text).suffix.lower() in FILE_FOURCC and Path(text).stem:
        return FileSink(text)
    raise ValueError(f"unknown output '{spec}': expected vcam, preview, mjpeg[:PORT] or a .mp4/.avi/.mkv path")


class SinkState(NamedTuple):
    name: str
    live: bool
    error: str | None  # the last reason it is not live


@dataclass
class _Slot:
    sink: Sink
    live: bool = False
    error: str | None = None
    next_retry: float = 0.0


class SinkSet:
    """Several sinks fed the same frames; one failing sink never stops the others.

    A sink that raises (OutputUnavailable or anything else) is closed, logged once per distinct reason,
    and re-opened at most every `retry_interval_s`.
    """

    def __init__(
        self,
        sinks: Sequence[Sink],
        *,
        retry_interval_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._slots = [_Slot(s) for s in sinks]
        self._retry = retry_interval_s
        self._clock = clock
        self._format: tuple[int, int, float] | None = None

    def __iter__(self) -> Iterator[Sink]:
        return iter(s.sink for s in self._slots)

    def __len__(self) -> int:
        return len(self._slots)

    def __enter__(self) -> SinkSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def live(self) -> list[str]:
        """Names of the sinks that are working now."""
        return [s.sink.name for s in self._slots if s.live]

    def states(self) -> list[SinkState]:
        return [SinkState(s.sink.name, s.live, s.error) for s in self._slots]

    def _down(self, slot: _Slot, reason: str) -> None:
        slot.live = False
        slot.next_retry = self._clock() + self._retry
        if reason != slot.error:
            log.warning("output %s unavailable: %s", slot.sink.name, reason)
        else:
            log.debug("output %s still unavailable: %s", slot.sink.name, reason)
        slot.error = reason

    def _try_open(self, slot: _Slot) -> None:
        assert self._format is not None
        try:
            slot.sink.open(*self._format)
        except Exception as e:  # OutputUnavailable, or a sink bug that must not stop the others
            self._down(slot, _reason(e))
            return
        if slot.error is not None:
            log.info("output %s is live again", slot.sink.name)
        slot.live, slot.error = True, None

    def open(self, width: int, height: int, fps: float) -> None:
        self._format = (width, height, fps)
        for slot in self._slots:
            if not slot.live:
                self._try_open(slot)

    def send(self, frame_bgr: np.ndarray) -> None:
        """Send to every live sink; re-open failed ones whose retry time has come."""
        if self._format is None:
            raise RuntimeError("SinkSet.send before open")
        frame = check_frame(frame_bgr)
        for slot in self._slots:
            if not slot.live:
                if self._clock() < slot.next_retry:
                    continue
                self._try_open(slot)
                if not slot.live:
                    continue
            try:
                slot.sink.send(frame)
            except Exception as e:
                _close_quietly(slot.sink)
                self._down(slot, _reason(e))

    def close(self) -> None:
        for slot in self._slots:
            _close_quietly(slot.sink)
            slot.live = False
        self._format = None


def _reason(e: Exception) -> str:
    if isinstance(e, OutputUnavailable):
        return str(e)
    return f"{type(e).__name__}: {_one_line(str(e))}"


def _close_quietly(sink: Sink) -> None:
    try:
        sink.close()
    except Exception as e:
        log.debug("closing output %s: %s", sink.name, e)


__all__ = [
    "DEFAULT_MJPEG_PORT",
    "FileSink",
    "MjpegSink",
    "OutputUnavailable",
    "PreviewSink",
    "Sink",
    "SinkSet",
    "SinkState",
    "V4l2Device",
    "VirtualCamSink",
    "check_frame",
    "display_problem",
    "find_v4l2_device",
    "fit_frame",
    "list_v4l2_devices",
    "parse_output",
]
