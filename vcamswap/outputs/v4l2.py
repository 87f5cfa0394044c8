"""Linux video devices and their card labels, from sysfs: the one listing for the virtual camera and doctor; and
the v4l2loopback snippets that make the "Swap Cam" device at every boot (`vcamswap setup`, `service install`)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import NamedTuple

log = logging.getLogger("vcamswap.outputs")

VCAM_LABEL = "Swap Cam"
SYSFS_V4L = "/sys/class/video4linux"
MODULE = "v4l2loopback"
MODPROBE_DEST = "/etc/modprobe.d/vcamswap-v4l2loopback.conf"
MODULES_LOAD_DEST = "/etc/modules-load.d/vcamswap-v4l2loopback.conf"

V4L2LOOPBACK_MODPROBE = """\
# vcamswap: one v4l2loopback device named "Swap Cam" at /dev/video10.
# exclusive_caps=1: Chrome, Zoom and Teams only list a loopback device that reports capture-only caps.
# A low number (under 64): some apps only scan the first /dev/video devices.
options v4l2loopback devices=1 video_nr=10 card_label="Swap Cam" exclusive_caps=1
"""

V4L2LOOPBACK_MODULES_LOAD = """\
# vcamswap: load v4l2loopback at boot (its options are in /etc/modprobe.d/).
v4l2loopback
"""


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
        label = card_label(sysfs_root, n)
        if label is not None:
            found.append(V4l2Device(f"/dev/video{n}", label))
    return found


def card_label(sysfs_root: str, n: int) -> str | None:
    """The card label of videoN from sysfs, or None when there is no such node."""
    try:
        return Path(f"{sysfs_root}/video{n}/name").read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def find_v4l2_device(label: str, sysfs_root: str = SYSFS_V4L) -> str | None:
    """/dev/videoN of the first device whose card label is `label`, or None."""
    for dev in list_v4l2_devices(sysfs_root):
        if dev.label == label:
            return dev.path
    return None


class VideoNode(NamedTuple):
    number: int
    path: str
    label: str
    virtual: bool  # a loopback device (v4l2loopback), not a camera


def video_nodes(sysfs: str = SYSFS_V4L, dev: str = "/dev") -> list[VideoNode]:
    """/dev/videoN on Linux with their sysfs names; v4l2loopback devices sit under /sys/devices/virtual."""
    nodes = []
    for n in range(64):
        path = Path(dev) / f"video{n}"
        entry = Path(sysfs) / f"video{n}"
        if not path.exists() and not entry.exists():
            continue
        label = card_label(sysfs, n) or ""
        virtual = "/virtual/" in os.path.realpath(entry) or _is_loopback_module(entry)
        nodes.append(VideoNode(n, str(path), label, virtual))
    return nodes


def _is_loopback_module(entry: Path) -> bool:
    driver = entry / "device" / "driver" / "module"
    return driver.exists() and Path(os.path.realpath(driver)).name == "v4l2loopback"
