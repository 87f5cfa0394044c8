"""Helpers for tests that run real daemon processes, a virtual X screen and a desktop tray host."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from helpers.media import WEBCAM, media_path  # noqa: F401 (used by the daemon tests)

from vcamswap.control.client import request
from vcamswap.control.protocol import IpcError

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
T = TypeVar("T")

# Liveness bounds, not timing assertions: generous so a loaded CI machine never trips them.
STARTUP_S = 90.0
EVENT_S = 45.0


def wait_until(check: Callable[[], T], what: str, timeout: float = EVENT_S, interval: float = 0.1) -> T:
    """Poll until check() is truthy and return it; fail naming `what` if it never happens."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
        except (IpcError, OSError, ValueError) as e:
            last = e
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not seen within {timeout:.0f} s (last: {last!r})")
        time.sleep(interval)




# ---------------------------------------------------------------------------------------------------------
# X server, session bus, tray host


def need(*programs: str) -> None:
    missing = [p for p in programs if shutil.which(p) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (apt install xvfb xdotool trayer dunst dbus)")


@contextmanager
def xvfb(size: str = "1024x768x24") -> Iterator[str]:
    """A private X server; yields its DISPLAY. Xvfb picks a free display number itself (-displayfd)."""
    need("Xvfb")
    r, w = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(w), "-screen", "0", size, "-nolisten", "tcp", "-noreset"],
        pass_fds=(w,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    os.close(w)
    try:
        with os.fdopen(r) as f:
            number = f.readline().strip()
        if not number.isdigit():
            pytest.fail("Xvfb did not start")
        yield f":{number}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextmanager
def session_bus() -> Iterator[str]:
    """A private D-Bus session bus; yields DBUS_SESSION_BUS_ADDRESS."""
    need("dbus-daemon")
    proc = subprocess.Popen(
        ["dbus-daemon", "--session", "--nofork", "--print-address=1", "--nopidfile"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    assert proc.stdout is not None
    address = proc.stdout.readline().strip()
    try:
        if not address:
            pytest.fail("dbus-daemon did not start")
        yield address
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def x_env(display: str, bus: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("WAYLAND_DISPLAY", None)
    env["DISPLAY"] = display
    if bus:
        env["DBUS_SESSION_BUS_ADDRESS"] = bus
    env["NO_AT_BRIDGE"] = "1"  # no accessibility bus: GTK would start one per process
    return env


@contextmanager
def tray_host(env: dict[str, str]) -> Iterator[None]:
    """trayer (a system tray panel at the top right, 200x32) and dunst (notifications) on the display."""
    need("trayer", "xdotool")
    procs = [subprocess.Popen(
        ["trayer", "--edge", "top", "--align", "right", "--widthtype", "pixel", "--width", "200",
         "--heighttype", "pixel", "--height", "32", "--transparent", "false"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )]
    if shutil.which("dunst"):
        procs.append(subprocess.Popen(["dunst"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    try:
        wait_until(lambda: tray_selection_owned(env["DISPLAY"]), "a tray host owning the system tray selection")
        yield
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=10)


@contextmanager
def gtk_tray_desktop() -> Iterator[dict[str, str]]:
    """A virtual screen, a session bus and a tray host, with pystray on its real GTK backend: the environment
    to start a daemon in whose tray icon is really docked and clicked."""
    with xvfb() as disp, session_bus() as bus:
        env = x_env(disp, bus)
        env.pop("PYSTRAY_BACKEND", None)
        with tray_host(env):
            yield env


def tray_selection_owned(display: str) -> bool:
    """Whether a tray host has claimed the system tray (only then can icons dock)."""
    import Xlib.display
    import Xlib.X

    d = Xlib.display.Display(display)
    try:
        owner = d.get_selection_owner(d.intern_atom("_NET_SYSTEM_TRAY_S0"))
        return owner != Xlib.X.NONE and owner is not None and getattr(owner, "id", 0) != 0
    finally:
        d.close()


def xdotool(env: dict[str, str], *args: str) -> str:
    r = subprocess.run(["xdotool", *args], env=env, capture_output=True, text=True, timeout=30)
    return r.stdout.strip() if r.returncode == 0 else ""


def screenshot(env: dict[str, str], path: Path) -> bool:
    """Root window to PNG with ImageMagick's import, where installed (for looking at, not asserting)."""
    if shutil.which("import") is None:
        return False
    return subprocess.run(["import", "-window", "root", str(path)], env=env, timeout=30).returncode == 0


# The tray icon on the screen: found by its tooltip (the embedded window's name), its menu by a right click.


def _root_windows(env: dict[str, str]) -> list[tuple[int, int, int, int]]:
    """(x, y, w, h) of the root's visible-sized children."""
    out = subprocess.run(["xwininfo", "-root", "-children"], env=env, capture_output=True, text=True).stdout
    boxes = []
    for line in out.splitlines():
        parts = line.split()
        for p in parts:
            if "x" in p and "+" in p and p[0].isdigit():
                size, _, pos = p.partition("+")
                w, _, h = size.partition("x")
                x, _, y = pos.partition("+")
                try:
                    boxes.append((int(x), int(y), int(w), int(h)))
                except ValueError:
                    pass
                break
    return boxes


def _menu_open(env: dict[str, str]) -> bool:
    # A popup menu is a top-level window below the 32-pixel panel; nothing else of that size exists.
    return any(w >= 100 and h >= 100 and y >= 20 for x, y, w, h in _root_windows(env))


def _icon(env: dict[str, str]) -> tuple[int, int]:
    """The centre of our status icon: the window embedded in the panel carries the tooltip as its name."""
    win = wait_until(lambda: xdotool(env, "search", "--name", "^Swap Cam").split("\n")[0], "tray icon window")
    geo = xdotool(env, "getwindowgeometry", "--shell", win)
    g = dict(line.split("=", 1) for line in geo.splitlines() if "=" in line)
    return int(g["X"]) + int(g["WIDTH"]) // 2, int(g["Y"]) + int(g["HEIGHT"]) // 2


def tray_tooltip(env: dict[str, str]) -> str:
    win = xdotool(env, "search", "--name", "^Swap Cam").split("\n")[0]
    return xdotool(env, "getwindowname", win) if win else ""


def tray_choose(env: dict[str, str], keys: list[str], shot: Path | None = None) -> None:
    """Open our icon's menu with a right click, type `keys` into it, wait until it closed."""
    x, y = _icon(env)
    xdotool(env, "mousemove", str(x), str(y), "click", "3")
    wait_until(lambda: _menu_open(env), "menu open")
    if shot is not None:
        screenshot(env, shot)
    xdotool(env, "key", *keys)
    wait_until(lambda: not _menu_open(env), "menu closed")


# ---------------------------------------------------------------------------------------------------------
# Daemon processes


class DaemonProcess:
    """`python -m vcamswap daemon` in its own config/data/runtime dirs, outputs to the recording camera."""

    def __init__(self, home: Path, args: list[str] | None = None, env: dict[str, str] | None = None) -> None:
        self.home = home
        self.runtime, self.config, self.data = home / "runtime", home / "config", home / "data"
        self.vcam = home / "vcam"
        for d in (self.runtime, self.config, self.data, self.vcam, self.faces):
            d.mkdir(parents=True, exist_ok=True)
        base = dict(env if env is not None else os.environ)
        if env is None:
            base.pop("DISPLAY", None)
            base.pop("WAYLAND_DISPLAY", None)
        base.update({
            "VCAMSWAP_RUNTIME_DIR": str(self.runtime),
            "VCAMSWAP_CONFIG_DIR": str(self.config),
            "VCAMSWAP_DATA_DIR": str(self.data),
            "VCAMSWAP_TEST_VCAM_BACKEND": "recorder=recording_vcam:RecordingCamera",
            "RECORDING_VCAM_DIR": str(self.vcam),
            "PYTHONPATH": os.pathsep.join([str(TESTS), str(REPO), base.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            "PYTHONUNBUFFERED": "1",
        })
        if "PULSE_SERVER" not in (env or {}):  # Swap Mic never touches the user's own sound server
            base["PULSE_SERVER"] = f"unix:{self.runtime / 'no-sound-server'}"
        self.env = base
        self.args = args if args is not None else default_args()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = home / "daemon.log"

    @property
    def faces(self) -> Path:
        return self.home / "data" / "faces"

    @property
    def settings(self) -> Path:
        return self.config / "settings.toml"

    @property
    def address(self) -> str:
        return str(self.runtime / "control.sock")

    def start(self, wait: bool = True) -> DaemonProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vcamswap", "daemon", *self.args],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=str(self.home),
        )
        log.close()
        if wait:
            self.wait_streaming()
        return self

    def wait_streaming(self) -> dict[str, Any]:
        def streaming() -> dict[str, Any] | None:
            self.check_alive()
            st = self.status()
            return st if st.get("frames", 0) > 0 else None

        return wait_until(streaming, "daemon publishing frames", STARTUP_S, 0.2)

    def check_alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            pytest.fail(f"daemon exited with {self.proc.returncode}:\n{self.log()}")

    def request(self, cmd: str, arg: str | None = None) -> dict[str, Any]:
        req: dict[str, Any] = {"cmd": cmd}
        if arg is not None:
            req["arg"] = arg
        return request(req, self.address, timeout=20.0)

    def status(self) -> dict[str, Any]:
        return self.request("status")

    def hotkeys_ready(self) -> bool:
        return bool(self.status().get("hotkeys"))

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "vcamswap", *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout, cwd=str(self.home))

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 60) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            try:
                self.request("stop")
            except IpcError:
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                pytest.fail(f"daemon did not stop within {timeout} s:\n{self.log()}")
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def vcam_frames(self) -> int:
        from recording_vcam import read_state

        return int(read_state(self.vcam).get("frames", 0))

    def rss_kib(self) -> int:
        return _proc_status_field(self.pid, "VmRSS")

    def threads(self) -> int:
        return _proc_status_field(self.pid, "Threads")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


def _proc_status_field(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    raise ValueError(f"{name} not in /proc/{pid}/status")


def default_args(input_rel: str = WEBCAM, *extra: str) -> list[str]:
    return ["--input", str(media_path(input_rel)), "--output", "vcam", "--vcam-backend", "recorder",
            "--no-tray", "--no-hotkeys", *extra]


@contextmanager
def running_daemon(home: Path, args: list[str] | None = None, env: dict[str, str] | None = None,
                   ) -> Iterator[DaemonProcess]:
    d = DaemonProcess(home, args, env)
    try:
        d.start()
        yield d
    finally:
        if d.proc is not None and d.proc.poll() is None:
            try:
                d.stop(timeout=30)
            except BaseException:  # keep the test's own failure, never leave a process behind
                d.kill()
