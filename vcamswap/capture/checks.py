"""`vcamswap doctor` lines for the cameras: which devices there are and whether they deliver frames."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from vcamswap.checks import Context, Line
from vcamswap.outputs.v4l2 import video_nodes

CAMERA_INDICES = range(4)  # 0..3: enough for laptops with an IR camera and a USB one; never -1 (any camera)


class CameraProbe(NamedTuple):
    opened: bool
    width: int
    height: int
    fps: float
    fourcc: str


def probe_camera(source: int | str, system: str) -> CameraProbe:
    """Open a camera, read one frame, close it."""
    import cv2

    api = cv2.CAP_V4L2 if system == "Linux" else cv2.CAP_ANY
    cap = cv2.VideoCapture(source, api)
    try:
        if not cap.isOpened():
            return CameraProbe(False, 0, 0, 0.0, "")
        ok, frame = cap.read()
        if not ok or frame is None:
            return CameraProbe(False, 0, 0, 0.0, "")
        code = int(cap.get(cv2.CAP_PROP_FOURCC))
        fourcc = "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4)).strip("\x00 ") if code > 0 else "?"
        return CameraProbe(True, frame.shape[1], frame.shape[0], float(cap.get(cv2.CAP_PROP_FPS) or 0.0), fourcc)
    finally:
        cap.release()


def check_cameras(ctx: Context) -> Iterable[Line]:
    if ctx.system == "Linux":
        candidates: list[tuple[int | str, str]] = [
            (node.path, f"{node.path} ({node.label or 'no name'})")
            for node in video_nodes(ctx.sysfs, ctx.dev)
            if not node.virtual and node.number in CAMERA_INDICES
        ]
        if not candidates:
            yield Line(False, "camera", f"no camera device ({ctx.dev}/video0..3 absent)",
                       "plug in a webcam (in a container or VM pass it through, e.g. docker --device "
                       "/dev/video0), or swap a file with 'vcamswap run --input FILE'")
            return
    else:
        candidates = [(i, f"camera {i}") for i in CAMERA_INDICES]
    if ctx.settings.camera is not None and ctx.settings.camera not in [str(c[0]) for c in candidates]:
        cam = ctx.settings.camera
        candidates.insert(0, (int(cam) if cam.isdigit() else cam, f"camera {cam} (from the settings)"))
    if not ctx.probe_cameras:
        for _, name in candidates:
            yield Line(True, "camera", f"{name} present (not opened)")
        return
    working = 0
    silent = []
    for source, name in candidates:
        probe = probe_camera(source, ctx.system)
        if probe.opened:
            working += 1
            yield Line(True, "camera", f"{name} delivers {probe.width}x{probe.height} @ {probe.fps:.0f} fps "
                                       f"({probe.fourcc})")
        else:
            silent.append(name)
    if not working:
        tried = ", ".join(silent) or "none"
        yield Line(False, "camera", f"no camera delivers frames (tried {tried})",
                   "close other apps using the camera; on Linux check 'groups' lists video "
                   "(sudo usermod -aG video $USER, then log in again); on macOS allow camera access "
                   "in System Settings > Privacy")
