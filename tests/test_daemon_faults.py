"""Faults the daemon lives through: the camera going away mid-stream, the virtual camera busy or gone.

The camera is a real network camera: an MJPEG stream over HTTP served from this process with frames of a
real clip; the daemon reads it like any URL source. Stopping the server is the camera unplugged.
"""

from __future__ import annotations

import socket
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from daemon_util import WEBCAM, DaemonProcess, media_path, running_daemon, wait_until
from recording_vcam import read_state

from vcamswap.outputs.mjpeg import MjpegSink


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class NetworkCamera:
    """A clip looped into an MJPEG server at 25 fps; unplug() closes the server, plug() reopens it."""

    def __init__(self, clip: Path, port: int) -> None:
        cap = cv2.VideoCapture(str(clip))
        self.frames: list[np.ndarray] = []
        while len(self.frames) < 60:
            ok, frame = cap.read()
            if not ok:
                break
            self.frames.append(frame)
        cap.release()
        self.port = port
        self.sink: MjpegSink | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def plug(self) -> None:
        h, w = self.frames[0].shape[:2]
        sink = MjpegSink(self.port)
        sink.open(w, h, 25.0)
        self.sink, self._stop = sink, threading.Event()
        self._thread = threading.Thread(target=self._feed, args=(sink, self._stop), daemon=True)
        self._thread.start()

    def _feed(self, sink: MjpegSink, stop: threading.Event) -> None:
        i = 0
        while not stop.wait(1 / 25):
            sink.send(self.frames[i % len(self.frames)])
            i += 1

    def unplug(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.sink is not None:
            self.sink.close()
            self.sink = None


@pytest.fixture(scope="module")
def camera() -> Iterator[NetworkCamera]:
    cam = NetworkCamera(media_path(WEBCAM), free_port())
    cam.plug()
    yield cam
    cam.unplug()


MJPEG_PORT = free_port()


@pytest.fixture(scope="module")
def daemon(camera: NetworkCamera, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """Reads the network camera; outputs: the recording virtual camera and an MJPEG preview."""
    args = ["--input", camera.url, "--output", "vcam", "--output", f"mjpeg:{MJPEG_PORT}",
            "--vcam-backend", "recorder", "--no-tray", "--no-hotkeys"]
    with running_daemon(tmp_path_factory.mktemp("faults"), args) as d:
        yield d


def banner_shown(frame: np.ndarray) -> bool:
    """The 'camera lost' still: a black band across the middle with white text in it."""
    h = frame.shape[0]
    band = frame[h // 2 - 8: h // 2 + 8]
    return bool(band.mean() < 60 and (band > 200).any())


def last_frame(d: DaemonProcess) -> np.ndarray | None:
    try:
        return np.load(d.vcam / "last.npy")
    except (OSError, ValueError):
        return None


def test_camera_lost_mid_stream_keeps_publishing_and_comes_back(daemon: DaemonProcess,
                                                                 camera: NetworkCamera) -> None:
    st = daemon.status()
    assert st["camera"]["kind"] == "url" and st["camera"]["status"] == "ok"
    camera.unplug()
    st = wait_until(lambda: (s := daemon.status())["camera"]["status"] == "lost" and s, "camera lost")
    assert st["state"] == "error" and st["detail"] == "camera lost; reconnecting"
    n = daemon.vcam_frames()
    wait_until(lambda: daemon.vcam_frames() > n + 10, "the virtual camera still gets frames")
    def banner_frame() -> list[np.ndarray]:
        f = last_frame(daemon)
        return [f] if f is not None and banner_shown(f) else []

    frame = wait_until(banner_frame, "a 'camera lost' frame on the virtual camera")[0]
    assert frame.shape == (480, 640, 3)
    published = daemon.status()["frames"]

    camera.plug()  # plugged back in: the capture's retry finds it by itself
    wait_until(lambda: daemon.status()["camera"]["status"] == "ok", "camera back")
    wait_until(lambda: daemon.status()["frames"] > published + 20, "live frames again")
    wait_until(lambda: not banner_frame(), "live picture on the virtual camera")
    daemon.check_alive()


def test_virtual_camera_gone_or_busy_is_retried_and_other_outputs_go_on(daemon: DaemonProcess) -> None:
    mjpeg = f"mjpeg:{MJPEG_PORT}"

    def snapshot() -> bytes:
        # The preview asks for the user's token: the URL comes from `status`, as a user would take it.
        url = str(daemon.status()["preview_url"]).replace("/?", "/snapshot.jpg?")
        assert url.startswith(f"http://127.0.0.1:{MJPEG_PORT}/snapshot.jpg?token=")
        with urllib.request.urlopen(url, timeout=20) as r:
            return bytes(r.read())

    def vcam_error() -> str:
        return str(next(o for o in daemon.status()["outputs"] if o["name"] == "vcam")["error"] or "")

    wait_until(lambda: daemon.status()["outputs_live"] == ["vcam", mjpeg], "both outputs live")
    opens = int(read_state(daemon.vcam)["opens"])
    (daemon.vcam / "busy").touch()
    (daemon.vcam / "vanish").touch()  # sending fails, and re-opening finds the device busy
    st = wait_until(lambda: (s := daemon.status())["outputs_live"] == [mjpeg] and s, "vcam down, mjpeg live")
    vcam = next(o for o in st["outputs"] if o["name"] == "vcam")
    assert vcam["live"] is False and "\n" not in vcam["error"]
    assert st["state"] != "error"  # one output is still working

    first = snapshot()
    wait_until(lambda: snapshot() != first, "the MJPEG output keeps moving")
    wait_until(lambda: "busy" in vcam_error(), "the retry found the device busy")
    frozen = daemon.vcam_frames()

    (daemon.vcam / "busy").unlink()
    (daemon.vcam / "vanish").unlink()
    wait_until(lambda: "vcam" in daemon.status()["outputs_live"], "vcam live again")
    wait_until(lambda: daemon.vcam_frames() > frozen + 10, "frames reach the virtual camera again")
    assert int(read_state(daemon.vcam)["opens"]) > opens
    assert daemon.log().count("output vcam unavailable") <= 3  # reported per reason, not per retry
    daemon.check_alive()


def test_camera_missing_at_start_is_waited_for(tmp_path: Path) -> None:
    """Started with the session before the camera is there: banner frames meanwhile, then the camera."""
    cam = tmp_path / "dev" / "video7"  # a device path that does not exist yet
    args = ["--camera", str(cam), "--output", "vcam", "--vcam-backend", "recorder", "--no-tray", "--no-hotkeys"]
    d = DaemonProcess(tmp_path, args)
    d.start(wait=False)
    try:
        st = wait_until(lambda: (s := d.status())["camera"]["status"] == "waiting" and s, "waiting for the camera")
        assert st["state"] == "error" and st["detail"].startswith(f"no camera: no camera at {cam}")
        wait_until(lambda: last_frame(d) is not None, "notice frames on the virtual camera")
        frame = last_frame(d)
        assert frame is not None
        assert banner_shown(frame) and frame.shape == (720, 1280, 3)  # the configured size until a camera opens
        cam.parent.mkdir()
        cam.symlink_to(media_path(WEBCAM))  # the device appears (OpenCV opens a clip at a path as well)
        wait_until(lambda: d.status()["camera"]["status"] == "ok", "camera found")
        wait_until(lambda: d.status()["frames"] > 10, "live frames")
        assert d.stop() == 0
    finally:
        d.kill()
