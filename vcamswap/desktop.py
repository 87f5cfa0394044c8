"""Which desktop session this process can reach: the one display probe for the preview, tray and hotkeys.

Each of them words its own reason (they need different things), but they all look at the same facts.
"""

from __future__ import annotations

import os
import platform
import socket
import sys
from collections.abc import Mapping
from typing import NamedTuple

# Both spellings: platform.system() ("Darwin", "Windows") and sys.platform ("darwin", "win32").
NATIVE_SYSTEMS = frozenset({"Darwin", "Windows", "darwin", "win32"})


class Session(NamedTuple):
    native: bool  # macOS or Windows: a desktop is always there for a logged-in user
    x11: str  # $DISPLAY, or ""
    wayland: str  # $WAYLAND_DISPLAY, or ""


def session(env: Mapping[str, str] | None = None, system: str | None = None) -> Session:
    """The display variables of `env` (default: this process's) on `system` (default: this one)."""
    env = os.environ if env is None else env
    system = (platform.system() if system is None else system) or sys.platform
    return Session(system in NATIVE_SYSTEMS, env.get("DISPLAY", ""), env.get("WAYLAND_DISPLAY", ""))


def x11_reachable(display: str, timeout: float = 1.0) -> bool:
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
