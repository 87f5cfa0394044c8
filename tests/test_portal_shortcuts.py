"""Wayland global shortcuts through the XDG desktop portal: a real dbus-daemon session bus, a stand-in
portal service (tests/portal_stub) implementing org.freedesktop.portal.GlobalShortcuts as documented,
and real daemon processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from daemon_util import TESTS, DaemonProcess, default_args, session_bus, wait_until

from vcamswap.daemon.desktop.hotkeys import HotkeyAction
from vcamswap.daemon.desktop.portal import (
    PortalShortcuts,
    ShortcutsUnavailable,
    is_wayland_session,
    portal_trigger,
    portal_version,
)
from vcamswap.settings import DEFAULT_HOTKEYS

STAND_IN = TESTS / "portal_stub" / "global_shortcuts.py"


@pytest.fixture
def bus() -> Iterator[str]:
    with session_bus() as address:
        yield address


@contextmanager
def portal(bus: str, record: Path, dialog: str = "accept", interface: bool = True) -> Iterator[Path]:
    args = [sys.executable, str(STAND_IN), "--record", str(record), "--dialog", dialog]
    if not interface:
        args.append("--no-interface")
    proc = subprocess.Popen(args, env={**os.environ, "DBUS_SESSION_BUS_ADDRESS": bus}, stdout=subprocess.PIPE,
                            text=True)  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready", "the stand-in portal did not start"
        yield record
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def recorded(record: Path) -> dict[str, Any]:
    return dict(json.loads(record.read_text()))


def key(bus: str, shortcut: str, press: bool = True) -> int:
    """The user presses (or releases) a bound shortcut on the desktop; how many sessions were told."""
    from jeepney import DBusAddress, new_method_call
    from jeepney.io.blocking import open_dbus_connection

    addr = DBusAddress("/local/PortalStandIn", bus_name="org.freedesktop.portal.Desktop",
                       interface="local.PortalStandIn.Keyboard")  # fmt: skip
    with open_dbus_connection(bus=bus) as conn:
        reply = conn.send_and_get_reply(new_method_call(addr, "Press" if press else "Release", "s", (shortcut,)),
                                        timeout=10)  # fmt: skip
    return int(reply.body[0])


def wayland_env(bus: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "DBUS_SESSION_BUS_ADDRESS")}
    env.update({"WAYLAND_DISPLAY": "wayland-stand-in", "XDG_SESSION_TYPE": "wayland"})
    if bus:
        env["DBUS_SESSION_BUS_ADDRESS"] = bus
    return env


def daemon_with_hotkeys(home: Path, bus: str | None) -> DaemonProcess:
    args = [a for a in default_args() if a != "--no-hotkeys"]
    return DaemonProcess(home, args, wayland_env(bus))


# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("combo", "trigger"),
    [
        ("<ctrl>+<alt>+<shift>+s", "CTRL+ALT+SHIFT+s"),
        ("<shift>+<cmd>+<f5>", "SHIFT+LOGO+F5"),
        ("<ctrl>+<page_up>", "CTRL+Page_Up"),
        ("<alt>+S", "ALT+s"),
        ("<ctrl>+<65>", None),  # a raw key code: the desktop asks the user
        ("<ctrl>+<alt>", None),
    ],
)
def test_settings_combos_become_portal_triggers(combo: str, trigger: str | None) -> None:
    assert portal_trigger(combo) == trigger


def test_wayland_session_is_recognised() -> None:
    assert is_wayland_session({"XDG_SESSION_TYPE": "wayland", "DISPLAY": ":0"}, "linux")
    assert is_wayland_session({"WAYLAND_DISPLAY": "wayland-0"}, "linux")
    assert not is_wayland_session({"XDG_SESSION_TYPE": "x11", "DISPLAY": ":0"}, "linux")
    assert not is_wayland_session({"WAYLAND_DISPLAY": "wayland-0"}, "darwin")


class Recorder:
    def __init__(self) -> None:
        self.events: list[str] = []
        self._lock = threading.Lock()

    def add(self, event: str) -> None:
        with self._lock:
            self.events.append(event)

    def seen(self, *expected: str) -> bool:
        with self._lock:
            return self.events == list(expected)


def test_binding_follows_the_desktops_dialog(bus: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", bus)
    rec = Recorder()
    actions = {
        "toggle": HotkeyAction(lambda: rec.add("toggle")),
        "next_face": HotkeyAction(lambda: rec.add("next")),
        "bypass": HotkeyAction(lambda: rec.add("bypass-down"), lambda: rec.add("bypass-up")),
    }
    bindings = {**DEFAULT_HOTKEYS, "next_face": ""}  # turned off: not asked for
    with portal(bus, tmp_path / "portal.json", dialog="rebind") as record:
        assert portal_version() == 1
        ps = PortalShortcuts(bindings, actions)
        bound = ps.start()
        try:
            # The user moved toggle to another key in the dialog: that is what we report, not our wish.
            assert {b.name: b.trigger for b in bound} == {"toggle": "LOGO+F9", "bypass": "CTRL+ALT+SHIFT+b"}
            (session,) = recorded(record)["sessions"].values()
            assert session["shortcuts"]["toggle"]["preferred_trigger"] == "CTRL+ALT+SHIFT+s"
            assert session["shortcuts"]["toggle"]["description"] == "Swap Cam: swap on/off"
            assert key(bus, "toggle") == 1
            key(bus, "toggle", press=False)  # a release means nothing to a press action
            key(bus, "bypass")
            key(bus, "bypass", press=False)
            key(bus, "toggle")
            wait_until(lambda: rec.seen("toggle", "bypass-down", "bypass-up", "toggle"), "portal signals")
            # A portal that does not report releases: a second press ends the hold.
            key(bus, "bypass")
            key(bus, "bypass")
            wait_until(lambda: rec.seen("toggle", "bypass-down", "bypass-up", "toggle", "bypass-down", "bypass-up"),
                       "second press ends the hold")  # fmt: skip
        finally:
            ps.stop()
        wait_until(lambda: all(s["closed"] for s in recorded(record)["sessions"].values()), "session closed")
        assert key(bus, "toggle") == 0


def test_portal_without_global_shortcuts_is_one_line(bus: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", bus)
    with pytest.raises(ShortcutsUnavailable, match="^no desktop portal is running$"):
        portal_version()
    with portal(bus, tmp_path / "portal.json", interface=False):
        with pytest.raises(ShortcutsUnavailable, match="^the desktop portal has no GlobalShortcuts interface$"):
            PortalShortcuts(DEFAULT_HOTKEYS, {"toggle": HotkeyAction(lambda: None)}).start()


def test_activated_toggles_a_running_daemon(bus: str, tmp_path: Path) -> None:
    with portal(bus, tmp_path / "portal.json") as record:
        d = daemon_with_hotkeys(tmp_path / "home", bus)
        try:
            d.start()
            st = wait_until(lambda: d.status() if d.status().get("hotkeys_backend") else None, "portal hotkeys")
            assert st["hotkeys"] is True and st["hotkeys_backend"] == "portal"
            (session,) = recorded(record)["sessions"].values()
            assert {k: v["preferred_trigger"] for k, v in session["shortcuts"].items()} == {
                "toggle": "CTRL+ALT+SHIFT+s", "next_face": "CTRL+ALT+SHIFT+n", "prev_face": "CTRL+ALT+SHIFT+p",
                "cycle_quality": "CTRL+ALT+SHIFT+q", "bypass": "CTRL+ALT+SHIFT+b",
            }
            before = d.status()["swap"]
            key(bus, "toggle")  # no window of ours has the focus: there is none
            wait_until(lambda: d.status()["swap"] is (not before), "toggled by the portal's Activated")
            key(bus, "bypass")
            wait_until(lambda: d.status()["bypass"] is True, "bypass held")
            key(bus, "bypass", press=False)
            wait_until(lambda: d.status()["bypass"] is False, "bypass released on Deactivated")
            preset = d.status()["preset"]
            key(bus, "cycle_quality")
            wait_until(lambda: d.status()["preset"] != preset, "next quality")
            assert d.stop() == 0
        finally:
            d.kill()
        assert all(s["closed"] for s in recorded(record)["sessions"].values())


@pytest.mark.parametrize("case", ["no-portal", "cancelled"])
def test_without_portal_shortcuts_the_daemon_says_how_to_bind_once(bus: str, tmp_path: Path, case: str) -> None:
    @contextmanager
    def maybe_portal() -> Iterator[None]:
        if case == "cancelled":
            with portal(bus, tmp_path / "portal.json", dialog="cancel"):
                yield
        else:
            yield

    with maybe_portal():
        d = daemon_with_hotkeys(tmp_path / "home", bus)
        try:
            d.start()
            line = wait_until(lambda: [x for x in d.log().splitlines() if "global hotkeys:" in x], "the hint")
            assert d.status()["hotkeys"] is False and d.status()["hotkeys_backend"] is None
            assert d.stop() == 0
        finally:
            d.kill()
    reason = "no desktop portal is running" if case == "no-portal" else "the desktop's shortcuts dialog was cancelled"
    assert len(line) == 1 and reason in line[0], d.log()
    assert "bind 'vcamswap toggle', 'vcamswap face next', 'vcamswap face prev', 'vcamswap preset next'" in line[0]


def test_doctor_names_the_active_backend(bus: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vcamswap.checks import Context
    from vcamswap.daemon.checks import check_hotkeys
    from vcamswap.settings import Settings

    ctx = Context(Settings(), tmp_path / "settings.toml")
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", bus)
    monkeypatch.setenv("XDG_SESSION_TYPE", "wayland")
    (line,) = check_hotkeys(ctx)
    assert not line.ok and line.text == "Wayland session and no desktop portal is running"
    assert line.fix is not None and "'vcamswap toggle'" in line.fix
    with portal(bus, tmp_path / "portal.json"):
        (line,) = check_hotkeys(ctx)
    assert line.ok and "desktop portal's GlobalShortcuts (version 1)" in line.text
    monkeypatch.setenv("XDG_SESSION_TYPE", "x11")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("DISPLAY", ":0")
    (line,) = check_hotkeys(ctx)
    assert line.ok and line.text.endswith("(backend pynput)")
