"""Output sinks: virtual camera (a registered pyvirtualcam backend, and pyvirtualcam's real v4l2loopback
backend against a preloaded user-space device), MJPEG over HTTP, file, preview window, SinkSet, parsing."""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import pytest
import pyvirtualcam
from helpers.media import media_root
from pyvirtualcam.util import encode_fourcc

from vcamswap.outputs.base import OutputUnavailable
from vcamswap.outputs.file import FileSink
from vcamswap.outputs.mjpeg import MjpegSink
from vcamswap.outputs.preview import NO_DISPLAY_HINT, PreviewSink, display_problem
from vcamswap.outputs.sinkset import SinkSet, parse_output
from vcamswap.outputs.vcam import LINUX_VCAM_HINT, VirtualCamSink

REPO = Path(__file__).resolve().parents[1]
STUB_DIR = Path(__file__).resolve().parent / "vcam_stub"
TEST_BACKEND = "vcamswap-test"




def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


def colour_bars(width: int, height: int, index: int = 0) -> np.ndarray:
    """Eight flat bars (rolled by the index) with the index written large, so frames tell apart."""
    colours = [(255, 255, 255), (0, 255, 255), (255, 255, 0), (0, 255, 0), (255, 0, 255), (0, 0, 255),
               (255, 0, 0), (0, 0, 0)]  # fmt: skip
    bar = width // 8
    img = np.zeros((height, width, 3), np.uint8)
    for i, c in enumerate(colours):
        img[:, i * bar : (i + 1) * bar] = c
    img = np.roll(img, index * bar // 2, axis=1)
    cv2.putText(img, f"{index:03d}", (width // 8, height * 2 // 3), cv2.FONT_HERSHEY_SIMPLEX, height / 80,
                (128, 128, 128), max(2, height // 40))  # fmt: skip
    return img


def real_frames(count: int, width: int, height: int) -> np.ndarray:
    """Frames of a real webcam-like clip with the frame number drawn in, or colour bars without the media."""
    clip = media_root() / "videos" / "webcam" / "webcam_640x480_30fps_s18_woman.mp4"
    frames = []
    cap = cv2.VideoCapture(str(clip)) if clip.exists() else None
    for i in range(count):
        ok, img = cap.read() if cap is not None else (False, None)
        if ok and img is not None:
            img = cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)
        else:
            img = colour_bars(width, height, i)
        cv2.putText(img, f"{i:03d}", (8, height - 12), cv2.FONT_HERSHEY_SIMPLEX, height / 160, (255, 255, 255), 3)
        frames.append(img)
    if cap is not None:
        cap.release()
    return np.stack(frames)


# ---------------------------------------------------------------------------------------------------------
# A pyvirtualcam backend registered by name: a real class with pyvirtualcam's Backend interface.


class RecordingBackend:
    """Stores every frame it is sent. `available` / `fail_send` stand for a device that is absent or lost."""

    instances: ClassVar[list[RecordingBackend]] = []
    available: ClassVar[bool] = True
    fail_send: ClassVar[bool] = False
    device_name: ClassVar[str] = "Recording Cam"

    def __init__(self, *, width: int, height: int, fps: float, fourcc: int, device: str | None, **kw: Any):
        if not RecordingBackend.available:
            raise RuntimeError("Device Recording Cam could not be opened: Device or resource busy")
        self.width, self.height, self.fps, self.fourcc = width, height, fps, fourcc
        self._device = device or RecordingBackend.device_name
        self.frames: list[np.ndarray] = []
        self.closed = False
        RecordingBackend.instances.append(self)

    def send(self, frame: np.ndarray) -> None:
        if RecordingBackend.fail_send:
            raise RuntimeError("error writing frame: No such device")
        self.frames.append(frame.copy())

    def close(self) -> None:
        self.closed = True

    def device(self) -> str:
        return self._device

    def native_fourcc(self) -> int | None:
        return self.fourcc


@pytest.fixture
def recording_backend() -> Any:
    RecordingBackend.instances = []
    RecordingBackend.available = True
    RecordingBackend.fail_send = False
    RecordingBackend.device_name = "Recording Cam"
    pyvirtualcam.register_backend(TEST_BACKEND, RecordingBackend)
    yield RecordingBackend
    RecordingBackend.instances = []


def test_vcam_frames_reach_registered_backend(recording_backend: Any) -> None:
    frames = real_frames(5, 320, 240)
    sink = VirtualCamSink(backend=TEST_BACKEND)
    sink.open(320, 240, 30.0)
    for f in frames:
        sink.send(f)
    sink.send(cv2.resize(frames[0], (640, 480)))  # another size is scaled to the opened one
    sink.close()

    (cam,) = recording_backend.instances
    assert (cam.width, cam.height, cam.fps) == (320, 240, 30.0)
    assert cam.fourcc == encode_fourcc("24BG")  # BGR, no conversion in Python
    assert sink.backend_name == TEST_BACKEND and sink.device == "Recording Cam"
    assert len(cam.frames) == 6 and cam.closed
    for sent, got in zip(frames, cam.frames, strict=False):
        assert np.array_equal(got.reshape(240, 320, 3), sent)
    assert psnr(cam.frames[5].reshape(240, 320, 3), frames[0]) > 30
    assert sink.frames_sent == 6


def test_vcam_lost_device_raises_and_reopens(recording_backend: Any, tmp_path: Path) -> None:
    sink = VirtualCamSink(backend=TEST_BACKEND, device_check_interval_s=0)
    frame = real_frames(1, 160, 120)[0]
    sink.open(160, 120, 30)
    recording_backend.fail_send = True
    with pytest.raises(OutputUnavailable):
        sink.send(frame)
    assert not sink.is_open
    with pytest.raises(OutputUnavailable, match="not open"):
        sink.send(frame)

    # A device node that disappears is noticed even though the backend's write never reports it.
    recording_backend.fail_send = False
    node = tmp_path / "video10"
    node.touch()
    recording_backend.device_name = str(node)
    sink.open(160, 120, 30)  # re-callable after a failure
    sink.send(frame)
    node.unlink()
    with pytest.raises(OutputUnavailable, match="disappeared"):
        sink.send(frame)
    assert len(recording_backend.instances) == 2 and all(c.closed for c in recording_backend.instances)


def test_vcam_unknown_backend_is_unavailable() -> None:
    with pytest.raises(OutputUnavailable, match="backend 'no-such-backend' is not available"):
        VirtualCamSink(backend="no-such-backend").open(64, 48, 30)


def test_sinkset_keeps_others_and_retries(recording_backend: Any, tmp_path: Path, caplog: Any) -> None:
    now = [100.0]
    recording_backend.available = False
    vcam = VirtualCamSink(backend=TEST_BACKEND)
    file = FileSink(tmp_path / "out.avi")
    frames = real_frames(12, 160, 120)
    caplog.set_level(logging.DEBUG, logger="vcamswap.outputs")
    with SinkSet([vcam, file], retry_interval_s=5.0, clock=lambda: now[0]) as sinks:
        sinks.open(160, 120, 30)
        assert sinks.live == [file.name]
        for f in frames[:5]:
            sinks.send(f)  # 100 s to 104 s: too early to retry
            now[0] += 1.0
        assert recording_backend.instances == []
        recording_backend.available = True
        for f in frames[5:9]:
            sinks.send(f)  # the retry at 105 s succeeds
            now[0] += 1.0
        assert sinks.live == ["vcam", file.name]
        recording_backend.fail_send = True
        for f in frames[9:]:
            sinks.send(f)  # the device breaks: vcam goes down, the file goes on
        states = {s.name: s for s in sinks.states()}
    assert not states["vcam"].live and states["vcam"].error and "\n" not in states["vcam"].error
    assert file.frames_written == 12
    assert len(recording_backend.instances[0].frames) == 4  # frames 5-8 reached the camera
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and all(w.startswith("output vcam unavailable:") for w in warnings), warnings
    assert "busy" in warnings[0] and "stopped taking frames" in warnings[1]
    assert any("live again" in r.getMessage() for r in caplog.records)
    cap = cv2.VideoCapture(str(tmp_path / "out.avi"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 12


def test_sinkset_rejects_bad_frames(tmp_path: Path) -> None:
    file = FileSink(tmp_path / "x.avi")
    with SinkSet([file]) as sinks:
        with pytest.raises(RuntimeError, match="before open"):
            sinks.send(np.zeros((4, 4, 3), np.uint8))
        sinks.open(64, 48, 30)
        with pytest.raises(ValueError, match="HxWx3 uint8"):
            sinks.send(np.zeros((48, 64), np.uint8))
        assert sinks.live == [file.name]  # a caller's bad frame does not take sinks down


# ---------------------------------------------------------------------------------------------------------
# pyvirtualcam's compiled v4l2loopback backend against a preloaded stand-in for /dev/videoN


@pytest.fixture(scope="module")
def v4l2_stub(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not sys.platform.startswith("linux"):
        pytest.skip("the v4l2loopback backend is Linux only")
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        pytest.skip("gcc is not installed: cannot build the v4l2 stand-in")
    lib = tmp_path_factory.mktemp("stub") / "libv4l2stub.so"
    subprocess.run([gcc, "-O1", "-Wall", "-shared", "-fPIC", "-o", str(lib), str(STUB_DIR / "v4l2_stub.c"),
                    "-ldl"], check=True)  # fmt: skip
    return lib


def make_stub_dir(root: Path, labels: dict[int, str]) -> Path:
    for num, label in labels.items():
        (root / "sys" / f"video{num}").mkdir(parents=True)
        (root / "sys" / f"video{num}" / "name").write_text(label + "\n")
    return root


def drive(lib: Path, stub: Path, args: list[str], devices: str, busy: str = "") -> tuple[dict[str, Any], str]:
    env = {**os.environ, "LD_PRELOAD": str(lib), "VCAM_STUB_DIR": str(stub), "VCAM_STUB_DEVICES": devices,
           "VCAM_STUB_BUSY": busy, "PYTHONPATH": str(REPO)}  # fmt: skip
    proc = subprocess.run([sys.executable, str(STUB_DIR / "drive.py"), *args], env=env, capture_output=True,
                          text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), proc.stderr


def read_i420(path: Path, width: int, height: int) -> list[np.ndarray]:
    data = np.fromfile(path, np.uint8)
    size = width * height * 3 // 2
    assert data.size % size == 0
    return [cv2.cvtColor(f.reshape(height * 3 // 2, width), cv2.COLOR_YUV2BGR_I420) for f in data.reshape(-1, size)]


def test_vcam_real_v4l2loopback_backend_end_to_end(v4l2_stub: Path, tmp_path: Path) -> None:
    w, h, n = 320, 240, 8
    frames = real_frames(n, w, h)
    np.save(tmp_path / "frames.npy", frames)
    stub = make_stub_dir(tmp_path / "stub", {3: "Dummy video device (0x0000)", 7: "Swap Cam"})
    result, stderr = drive(v4l2_stub, stub, ["vcam", str(tmp_path / "frames.npy")], devices="3,7")

    # /dev/video3 comes first, but the device labelled "Swap Cam" is the one used.
    assert result == {"backend": "v4l2loopback", "device": "/dev/video7", "sent": n}, stderr
    assert not (stub / "video3.log").exists()
    log = (stub / "video7.log").read_text().splitlines()
    assert log[:3] == ["OPEN", "QUERYCAP card=Swap Cam", f"S_FMT {w}x{h} YU12 sizeimage={w * h * 3 // 2}"]
    assert log[3:] == [f"WRITE {w * h * 3 // 2}"] * n + ["CLOSE"]

    got = read_i420(stub / "video7.yuv", w, h)
    assert len(got) == n
    for i, (sent, out) in enumerate(zip(frames, got, strict=True)):
        assert psnr(out, sent) > 30, i
        others = [psnr(out, frames[j]) for j in range(n) if j != i]
        assert psnr(out, sent) > max(others) + 3, i  # the frames arrive in order, none repeated


def test_vcam_device_by_label_and_number(v4l2_stub: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "frames.npy", real_frames(2, 64, 48))
    stub = make_stub_dir(tmp_path / "stub", {2: "Swap Cam", 5: "Studio Cam"})
    result, _ = drive(v4l2_stub, stub, ["vcam", str(tmp_path / "frames.npy"), "--device", "Studio Cam"], "2,5")
    assert result["device"] == "/dev/video5" and result["sent"] == 2
    result, _ = drive(v4l2_stub, stub, ["vcam", str(tmp_path / "frames.npy"), "--device", "2"], "2,5")
    assert result["device"] == "/dev/video2"
    result, _ = drive(v4l2_stub, stub, ["vcam", str(tmp_path / "frames.npy"), "--device", "Nope Cam"], "2,5")
    assert result["unavailable"].startswith('no v4l2loopback device labelled "Nope Cam"')
    assert 'card_label="Nope Cam"' in result["unavailable"]


def test_vcam_absent_device_is_one_line(v4l2_stub: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "frames.npy", real_frames(2, 64, 48))
    result, stderr = drive(v4l2_stub, make_stub_dir(tmp_path / "stub", {}), ["vcam", str(tmp_path / "frames.npy")],
                           devices="")  # fmt: skip
    msg = result["unavailable"]
    assert msg.startswith("no virtual camera device: sudo apt install v4l2loopback-dkms")
    assert 'card_label="Swap Cam" exclusive_caps=1' in msg and "\n" not in msg
    assert "No v4l2 loopback device found" in result["detail"]  # pyvirtualcam's own words, kept for doctor
    assert "Traceback" not in stderr


def test_vcam_busy_device(v4l2_stub: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "frames.npy", real_frames(2, 64, 48))
    stub = make_stub_dir(tmp_path / "stub", {10: "Swap Cam"})
    result, stderr = drive(v4l2_stub, stub, ["vcam", str(tmp_path / "frames.npy")], devices="10", busy="10")
    assert result["unavailable"].startswith("/dev/video10 is busy:"), result
    assert "Traceback" not in stderr


def test_sinkset_with_absent_vcam_keeps_file(v4l2_stub: Path, tmp_path: Path) -> None:
    n = 10
    np.save(tmp_path / "frames.npy", real_frames(n, 160, 120))
    out = tmp_path / "rec" / "out.avi"
    result, stderr = drive(v4l2_stub, make_stub_dir(tmp_path / "stub", {}),
                           ["sinkset", str(tmp_path / "frames.npy"), str(out)], devices="")  # fmt: skip
    assert result["live"] == [str(out)] and result["file_frames"] == n
    vcam_state = result["states"][0]
    assert vcam_state["name"] == "vcam" and not vcam_state["live"]
    assert vcam_state["error"].startswith("no virtual camera device:")
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert lines == [f"vcamswap.outputs WARNING output vcam unavailable: {vcam_state['error']}"], stderr
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == n


def test_vcam_device_vanishes_and_returns(v4l2_stub: Path, tmp_path: Path) -> None:
    w, h, n = 160, 120, 10
    frames = real_frames(n, w, h)
    np.save(tmp_path / "frames.npy", frames)
    stub = make_stub_dir(tmp_path / "stub", {10: "Swap Cam"})
    result, stderr = drive(v4l2_stub, stub, ["vanish", str(tmp_path / "frames.npy"), str(tmp_path / "o.avi")],
                           devices="10")  # fmt: skip
    file = str(tmp_path / "o.avi")
    both = ["vcam", file]
    assert result["live"] == [both] * 4 + [[file]] * 2 + [both] * 4, stderr
    assert result["file_frames"] == n
    warnings = [ln for ln in stderr.splitlines() if " WARNING " in ln]
    assert len(warnings) == 2, stderr
    assert warnings[0].endswith("the virtual camera /dev/video10 disappeared; waiting for it to come back")
    assert warnings[1].endswith("no virtual camera at /dev/video10: " + LINUX_VCAM_HINT)
    assert "vcamswap.outputs INFO output vcam is live again" in stderr
    got = read_i420(stub / "video10.yuv", w, h)
    assert len(got) == 8  # frames 4 and 5 never reached the vanished device
    for out, i in zip(got, [0, 1, 2, 3, 6, 7, 8, 9], strict=True):
        best = max(range(n), key=lambda j: psnr(out, frames[j]))
        assert best == i and psnr(out, frames[i]) > 30


# ---------------------------------------------------------------------------------------------------------
# MJPEG


@pytest.fixture
def mjpeg() -> Any:
    sink = MjpegSink(port=0)
    sink.open(640, 480, 30)
    yield sink
    sink.close()


def http_get(url: str) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        return e.code, e.read(), ""


def test_mjpeg_stream_read_back_with_opencv(mjpeg: MjpegSink) -> None:
    a = real_frames(1, 640, 480)[0]
    b = colour_bars(640, 480, 5)
    mjpeg.send(a)
    assert mjpeg.frames_encoded == 0  # nobody watching: nothing encoded
    cap = cv2.VideoCapture(f"http://127.0.0.1:{mjpeg.port}/stream.mjpg", cv2.CAP_FFMPEG)
    # The stream carries new frames only; keep publishing while OpenCV probes the stream.
    stop = threading.Event()
    current = [a]
    published = [0]

    def publish() -> None:
        while not stop.wait(0.02):
            mjpeg.send(current[0])
            published[0] += 1

    t = threading.Thread(target=publish, daemon=True)
    t.start()
    try:
        assert cap.isOpened()
        ok, got = cap.read()
        assert ok and got.shape == a.shape
        assert psnr(got, a) > 30
        current[0] = b
        for _ in range(300):  # frames already in flight still show a; b must follow
            ok, got = cap.read()
            assert ok
            if psnr(got, b) > 30:
                break
        assert psnr(got, b) > 30 and psnr(got, a) < 20
        assert mjpeg.clients == 1
    finally:
        stop.set()
        t.join()
        cap.release()
    assert 0 < mjpeg.frames_encoded <= published[0] + 1


def read_part(stream: Any) -> bytes:
    """One JPEG from a multipart/x-mixed-replace stream."""
    assert stream.readline() == b"--frame\r\n"
    headers = {}
    while (line := stream.readline()) != b"\r\n":
        key, _, value = line.decode("ascii").partition(":")
        headers[key.lower()] = value.strip()
    assert headers["content-type"] == "image/jpeg"
    body: bytes = stream.read(int(headers["content-length"]))
    assert stream.read(2) == b"\r\n"
    return body


def open_stream(port: int, path: str = "/stream.mjpg") -> tuple[socket.socket, Any]:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
    f = s.makefile("rb")
    assert f.readline().startswith(b"HTTP/1.0 200")
    headers = []
    while (line := f.readline()) != b"\r\n":
        headers.append(line.decode("latin-1").strip())
    assert "Content-Type: multipart/x-mixed-replace; boundary=frame" in headers
    return s, f


def best_match(img: np.ndarray, frames: list[np.ndarray]) -> int:
    """Index of the frame `img` shows; it must be a clear match (JPEG of flat bars: about 30 dB)."""
    scores = [psnr(img, f) for f in frames]
    best = int(np.argmax(scores))
    assert scores[best] > 27 and all(s < scores[best] - 6 for i, s in enumerate(scores) if i != best), scores
    return best


def decode(jpeg: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    return img


def test_mjpeg_latest_frame_only_encoded_once(mjpeg: MjpegSink) -> None:
    frames = [colour_bars(640, 480, i) for i in range(4)]
    for f in frames[:3]:
        mjpeg.send(f)  # no client yet: kept, not encoded, not queued
    assert mjpeg.frames_encoded == 0
    s1, f1 = open_stream(mjpeg.port)
    s2, f2 = open_stream(mjpeg.port, "/")
    try:
        for f in (f1, f2):  # a late client starts at the newest frame, not the oldest
            assert best_match(decode(read_part(f)), frames) == 2
        assert mjpeg.frames_encoded == 1  # two clients, one encode
        mjpeg.send(frames[3])
        assert best_match(decode(read_part(f1)), frames) == 3
        assert best_match(decode(read_part(f2)), frames) == 3
        assert mjpeg.frames_encoded == 2
    finally:
        for closable in (f1, f2, s1, s2):
            closable.close()


def test_mjpeg_snapshot_and_paths(mjpeg: MjpegSink) -> None:
    base = f"http://127.0.0.1:{mjpeg.port}"
    assert http_get(base + "/snapshot.jpg")[0] == 503
    frame = real_frames(1, 640, 480)[0]
    mjpeg.send(frame)
    status, body, ctype = http_get(base + "/snapshot.jpg")
    assert status == 200 and ctype == "image/jpeg"
    assert psnr(decode(body), frame) > 30
    http_get(base + "/snapshot.jpg")
    assert mjpeg.frames_encoded == 1  # the same frame is not encoded twice
    assert http_get(base + "/nothing")[0] == 404


def other_local_addresses() -> list[str]:
    """127.0.0.2 (loopback, but not 127.0.0.1) and this machine's outward IPv4 address, if any."""
    addrs = ["127.0.0.2"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: it only picks the outward interface
            ip = s.getsockname()[0]
            if not ip.startswith("127.") and ip != "0.0.0.0":
                addrs.append(ip)
        except OSError:
            pass
    return addrs


def test_mjpeg_bound_to_loopback_only(mjpeg: MjpegSink) -> None:
    assert mjpeg.port > 0 and mjpeg.url == f"http://127.0.0.1:{mjpeg.port}/"
    socket.create_connection(("127.0.0.1", mjpeg.port), timeout=5).close()
    for addr in other_local_addresses():
        with pytest.raises(OSError) as e:
            socket.create_connection((addr, mjpeg.port), timeout=5).close()
        assert e.value.errno == errno.ECONNREFUSED, addr


def test_mjpeg_port_in_use_then_close(mjpeg: MjpegSink) -> None:
    taken = MjpegSink(port=mjpeg.port)
    with pytest.raises(OutputUnavailable, match=f"cannot serve MJPEG on 127.0.0.1:{mjpeg.port}"):
        taken.open(640, 480, 30)
    with pytest.raises(OutputUnavailable):
        taken.send(np.zeros((480, 640, 3), np.uint8))
    port = mjpeg.port
    # A client that stops reading must not keep close() waiting.
    idle = socket.create_connection(("127.0.0.1", port))
    idle.sendall(b"GET /stream.mjpg HTTP/1.0\r\n\r\n")
    idle.recv(100)
    for _ in range(50):
        mjpeg.send(np.random.default_rng(0).integers(0, 255, (480, 640, 3), np.uint8))
    mjpeg.close()
    idle.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    taken.open(640, 480, 30)  # the port is free again; open() works after a failure
    assert taken.port == port
    taken.close()


# ---------------------------------------------------------------------------------------------------------
# File


@pytest.mark.parametrize("ext", [".mp4", ".avi", ".mkv"])
def test_file_sink_round_trip(tmp_path: Path, ext: str) -> None:
    path = tmp_path / "new" / "dir" / f"out{ext}"
    frames = real_frames(15, 320, 240)
    sink = FileSink(path)
    sink.open(320, 240, 30)
    for f in frames[:14]:
        sink.send(f)
    sink.send(cv2.resize(frames[14], (200, 100)))  # resized, not dropped
    sink.close()
    cap = cv2.VideoCapture(str(path))
    got = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        got.append(img)
    assert len(got) == 15
    assert got[0].shape == (240, 320, 3)
    assert psnr(got[3], frames[3]) > 25


def test_file_sink_errors(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputUnavailable, match="cannot create"):
        FileSink(blocker / "out.mp4").open(64, 48, 30)
    with pytest.raises(ValueError, match="use .mp4, .avi or .mkv"):
        FileSink(tmp_path / "out.gif")
    with pytest.raises(OutputUnavailable, match="not open"):
        FileSink(tmp_path / "out.mp4").send(np.zeros((48, 64, 3), np.uint8))


# ---------------------------------------------------------------------------------------------------------
# Preview


def test_preview_without_display_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if sys.platform.startswith("linux"):
        with pytest.raises(OutputUnavailable) as e:
            PreviewSink().open(320, 240, 30)  # must raise, not abort the process
        assert str(e.value) == NO_DISPLAY_HINT
    assert display_problem({}, "Linux") == NO_DISPLAY_HINT
    assert display_problem({}, "Darwin") is None


def test_a_dismissed_preview_opens_again_once_its_owner_has_acted(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """"Show preview" unticked after a dismissal and ticked again before any frame saw it off: the next frame
    tries the window again instead of staying dismissed (which made the daemon untick it at once)."""
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if not sys.platform.startswith("linux"):
        pytest.skip("needs a platform where no display means no window")
    sink = PreviewSink(lambda: True)
    sink.open(320, 240, 30)
    frame = np.zeros((240, 320, 3), np.uint8)

    def attempts() -> int:
        return sum("preview:" in r.getMessage() for r in caplog.records)

    with caplog.at_level(logging.WARNING, logger="vcamswap"):
        sink.send(frame)
        assert sink.dismissed and attempts() == 1
        sink.send(frame)
        assert attempts() == 1  # dismissed: no new try while nobody acted on it
        sink.acknowledge()
        sink.send(frame)
        assert attempts() == 2
    sink.close()


def test_preview_unreachable_display_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPLAY", ":987")
    expected = "cannot reach the X display ':987'; use --output mjpeg to watch in a browser"
    assert display_problem(system="Linux") == expected
    assert display_problem({"DISPLAY": "garbage"}, "Linux") is not None
    if sys.platform.startswith("linux"):
        with pytest.raises(OutputUnavailable, match="cannot reach the X display"):
            PreviewSink().open(320, 240, 30)


def read_xwd(path: Path) -> np.ndarray:
    """An Xvfb -fbdir screen (XWD format, 24/32 bit TrueColor) as a BGR image."""
    data = path.read_bytes()
    hdr = struct.unpack(">25I", data[:100])
    header_size, width, height, byte_order, bpp, bytes_per_line, ncolors = (
        hdr[0], hdr[4], hdr[5], hdr[7], hdr[11], hdr[12], hdr[19])  # fmt: skip
    assert bpp == 32 and byte_order == 0, (bpp, byte_order)
    start = header_size + ncolors * 12
    pixels = np.frombuffer(data, np.uint8, height * bytes_per_line, start).reshape(height, bytes_per_line)
    return pixels[:, : width * 4].reshape(height, width, 4)[:, :, :3].copy()


PREVIEW_CHILD = """
import sys, threading, numpy as np
from vcamswap.outputs.preview import PreviewSink

def run():  # in a worker thread, as the daemon's pipeline does
    frame = np.load(sys.argv[1])
    sink = PreviewSink()
    sink.open(frame.shape[1], frame.shape[0], 30)
    while sys.stdin.readline().strip() == "more":
        for _ in range(10):
            sink.send(frame)
        print("shown", flush=True)
    sink.close()

t = threading.Thread(target=run)
t.start()
t.join()
"""


def bars_on_screen(screen: np.ndarray, frame: np.ndarray) -> bool:
    """Every bar of the frame is on the screen with at least half the area it has in the frame."""
    bar_area = frame.shape[0] * frame.shape[1] // 8
    for x in range(frame.shape[1] // 16, frame.shape[1], frame.shape[1] // 8):
        colour = frame[frame.shape[0] // 10, x].astype(int)
        if np.all(np.abs(screen.astype(int) - colour) <= 6, axis=2).sum() < bar_area // 2:
            return False
    return True


PAINT_BOUND_S = 60.0


def test_preview_window_shows_frames(tmp_path: Path) -> None:
    xvfb = shutil.which("Xvfb")
    if xvfb is None or not sys.platform.startswith("linux"):
        pytest.skip("Xvfb is not installed (apt install xvfb)")
    frame = colour_bars(320, 240)
    np.save(tmp_path / "frame.npy", frame)
    r, w = os.pipe()
    server = subprocess.Popen([xvfb, "-displayfd", str(w), "-screen", "0", "640x480x24", "-fbdir", str(tmp_path),
                               "-nolisten", "tcp"], pass_fds=(w,), stderr=subprocess.DEVNULL)  # fmt: skip
    os.close(w)
    try:
        with os.fdopen(r) as f:
            display = ":" + f.readline().strip()  # written once the server accepts clients
        env = {**os.environ, "DISPLAY": display, "PYTHONPATH": str(REPO)}
        env.pop("WAYLAND_DISPLAY", None)
        child = subprocess.Popen([sys.executable, "-c", PREVIEW_CHILD, str(tmp_path / "frame.npy")], env=env,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert child.stdout is not None and child.stdin is not None
        shown = False
        # The viewer starts and the X server draws asynchronously: feed the window until it has painted, for as
        # long as a busy machine needs (the bound only catches a window that never shows).
        deadline = time.monotonic() + PAINT_BOUND_S
        while not shown and time.monotonic() < deadline:
            child.stdin.write("more\n")
            child.stdin.flush()
            assert child.stdout.readline().strip() == "shown"
            shown = bars_on_screen(read_xwd(tmp_path / "Xvfb_screen0"), frame)
            if not shown:
                time.sleep(0.1)
        child.stdin.write("quit\n")
        child.stdin.close()
        assert child.wait() == 0
    finally:
        server.terminate()
        server.wait()
    assert shown


# ---------------------------------------------------------------------------------------------------------
# Parsing


def test_parse_output_kinds() -> None:
    vcam = parse_output("vcam", vcam_backend="obs", vcam_device="/dev/video4")
    assert isinstance(vcam, VirtualCamSink) and vcam.name == "vcam"
    assert isinstance(parse_output("preview"), PreviewSink)
    m = parse_output("mjpeg")
    assert isinstance(m, MjpegSink) and m.port == 8089 and m.host == "127.0.0.1"
    m = parse_output("mjpeg:9001")
    assert isinstance(m, MjpegSink) and m.port == 9001
    for name in ("out.mp4", "rec/clip.AVI", "~/v.mkv"):
        f = parse_output(name)
        assert isinstance(f, FileSink) and f.name == name


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "unknown output ''"),
        ("webcam", "unknown output 'webcam': expected vcam, preview, mjpeg[:PORT] or a .mp4/.avi/.mkv path"),
        ("out.gif", "unknown output 'out.gif'"),
        (".mp4", "unknown output '.mp4'"),
        ("mjpeg:", "bad MJPEG port in 'mjpeg:'"),
        ("mjpeg:http", "bad MJPEG port in 'mjpeg:http'"),
        ("mjpeg:70000", "bad MJPEG port in 'mjpeg:70000': expected mjpeg:PORT with PORT 0-65535"),
        ("mjpeg:-1", "bad MJPEG port"),
    ],
)
def test_parse_output_errors(spec: str, message: str) -> None:
    with pytest.raises(ValueError) as e:
        parse_output(spec)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)
