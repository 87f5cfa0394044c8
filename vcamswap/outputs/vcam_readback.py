"""Proof that the virtual camera works: send a test pattern through pyvirtualcam and, on Linux, read it
back from the device's capture side as a call app would.

The reader uses V4L2's read() I/O (v4l2loopback offers it): VIDIOC_G_FMT for the capture format, then one
whole frame per read().
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import threading
import time
from dataclasses import dataclass

import cv2
import numpy as np

from vcamswap.outputs.base import OutputUnavailable
from vcamswap.outputs.vcam import VirtualCamSink

V4L2_BUF_TYPE_VIDEO_CAPTURE = 1
PATTERN_SIZE = (320, 240)
MIN_PSNR_DB = 30.0


class _PixFormat(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint32) for name in (
        "width", "height", "pixelformat", "field", "bytesperline", "sizeimage", "colorspace", "priv", "flags",
        "ycbcr_enc", "quantization", "xfer_func")]


class _FormatUnion(ctypes.Union):
    _fields_ = [("pix", _PixFormat), ("raw", ctypes.c_uint8 * 200), ("_align", ctypes.c_void_p)]


class _Format(ctypes.Structure):
    _fields_ = [("type", ctypes.c_uint32), ("fmt", _FormatUnion)]


def _iowr(kind: str, nr: int, size: int) -> int:
    return (3 << 30) | (size << 16) | (ord(kind) << 8) | nr


VIDIOC_G_FMT = _iowr("V", 4, ctypes.sizeof(_Format))


def fourcc(code: int) -> str:
    return "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4))


@dataclass(frozen=True)
class ReadBack:
    ok: bool
    text: str  # one line: what was sent, what came back


def pattern_frame(width: int, height: int) -> np.ndarray:
    """Colour bars over a grey ramp: wrong channels, a shifted or a stale picture all show."""
    bars = np.array([[255, 255, 255], [0, 255, 255], [255, 255, 0], [0, 255, 0], [255, 0, 255], [0, 0, 255],
                     [255, 0, 0], [0, 0, 0]], np.uint8)  # BGR
    frame = np.empty((height, width, 3), np.uint8)
    frame[:] = bars[np.arange(width) * len(bars) // width][None, :, :]
    ramp = (np.arange(width) * 255 // max(1, width - 1)).astype(np.uint8)
    frame[height * 3 // 4:] = ramp[None, :, None]
    return frame


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * float(np.log10(255.0**2 / mse))


def decode(data: bytes, pix: _PixFormat) -> np.ndarray:
    """A V4L2 frame as BGR; ValueError for a pixel format we do not read."""
    w, h, name = pix.width, pix.height, fourcc(pix.pixelformat)
    buf = np.frombuffer(data, np.uint8)
    conversions = {"YU12": (cv2.COLOR_YUV2BGR_I420, h * 3 // 2, w), "NV12": (cv2.COLOR_YUV2BGR_NV12, h * 3 // 2, w),
                   "YUYV": (cv2.COLOR_YUV2BGR_YUY2, h, w * 2), "UYVY": (cv2.COLOR_YUV2BGR_UYVY, h, w * 2)}
    if name not in conversions:
        raise ValueError(f"the device gives {name!r} frames, which this check does not decode")
    code, rows, cols = conversions[name]
    if buf.size < rows * cols:
        raise ValueError(f"a short frame ({buf.size} of {rows * cols} bytes)")
    shape = (rows, cols // 2, 2) if name in ("YUYV", "UYVY") else (rows, cols)
    return cv2.cvtColor(buf[: rows * cols].reshape(shape), code)


def read_frame(device: str, timeout: float) -> np.ndarray:
    """The newest frame on the capture side of `device`; OSError or TimeoutError with one line."""
    fd = os.open(device, os.O_RDONLY | os.O_NONBLOCK)
    try:
        fmt = _Format()
        fmt.type = V4L2_BUF_TYPE_VIDEO_CAPTURE
        fcntl.ioctl(fd, VIDIOC_G_FMT, fmt)
        pix = fmt.fmt.pix
        deadline = time.monotonic() + timeout
        while True:
            try:
                return decode(os.read(fd, pix.sizeimage), pix)
            except OSError as e:
                if e.errno != errno.EAGAIN or time.monotonic() > deadline:
                    raise
            time.sleep(0.05)
    finally:
        os.close(fd)


def check_linux(device: str, timeout: float = 10.0) -> ReadBack:
    """Send the pattern to `device` and read it back through the capture side."""
    width, height = PATTERN_SIZE
    pattern = pattern_frame(width, height)
    sink = VirtualCamSink(device=device)
    try:
        sink.open(width, height, 10.0)
    except OutputUnavailable as e:
        return ReadBack(False, f"cannot send to {device}: {e}")
    stop = threading.Event()

    def writer() -> None:
        while not stop.is_set():
            sink.send(pattern)
            stop.wait(0.1)

    thread = threading.Thread(target=writer, name="vcamswap-setup-pattern", daemon=True)
    thread.start()
    try:
        got = read_frame(device, timeout)
    except (OSError, ValueError) as e:
        return ReadBack(False, f"the test pattern sent to {device} could not be read back: {_why(e)}")
    finally:
        stop.set()
        thread.join(timeout=5)
        sink.close()
    if got.shape != pattern.shape:
        return ReadBack(False, f"{device} gave back {got.shape[1]}x{got.shape[0]}, not the {width}x{height} sent")
    score = psnr(got, pattern)
    if score < MIN_PSNR_DB:
        return ReadBack(False, f"{device} gave back a different picture (PSNR {score:.1f} dB)")
    return ReadBack(True, f"a test pattern sent to {device} was read back intact (PSNR {score:.1f} dB)")


def check_other(system: str) -> ReadBack:
    """macOS / Windows: whether pyvirtualcam finds a virtual camera and takes a frame (no read-back there)."""
    width, height = PATTERN_SIZE
    sink = VirtualCamSink()
    try:
        sink.open(width, height, 10.0)
    except OutputUnavailable as e:
        return ReadBack(False, str(e))
    try:
        sink.send(pattern_frame(width, height))
    finally:
        sink.close()
    return ReadBack(True, f"pyvirtualcam sends to {sink.device} ({sink.backend_name})")


def _why(e: BaseException) -> str:
    if isinstance(e, TimeoutError) or (isinstance(e, OSError) and e.errno == errno.EAGAIN):
        return "no frame arrived"
    if isinstance(e, OSError):
        return e.strerror or str(e)
    return str(e)
