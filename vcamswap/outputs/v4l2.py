"""Linux video devices and their card labels, from sysfs: the one listing for the virtual camera and doctor."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NamedTuple

log = logging.getLogger("vcamswap.outputs")

VCAM_LABEL = "Swap Cam"
SYSFS_V4L = "/sys/class/video4linux"


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
