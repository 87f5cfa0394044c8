"""Global hotkeys: combo syntax, and real key events from an X server (Xvfb, typed with xdotool)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
from daemon_util import need, wait_until, x_env, xdotool, xvfb

from vcamswap.daemon.desktop.hotkeys import HotkeyAction, Hotkeys, syntax_problem
from vcamswap.settings import DEFAULT_HOTKEYS


@pytest.fixture(scope="module")
def display() -> Iterator[str]:
    """Our own X server; pynput binds to $DISPLAY when first imported, so it is set for the module."""
    need("xdotool")
    with xvfb() as d, pytest.MonkeyPatch.context() as mp:
        mp.setenv("DISPLAY", d)
        mp.delenv("WAYLAND_DISPLAY", raising=False)
        yield d


class Recorder:
    def __init__(self) -> None:
        self.events: list[str] = []
        self._lock = threading.Lock()

    def action(self, name: str) -> HotkeyAction:
        return HotkeyAction(lambda: self._add(name))

    def held(self, name: str) -> HotkeyAction:
        return HotkeyAction(lambda: self._add(f"{name}-down"), lambda: self._add(f"{name}-up"))

    def _add(self, event: str) -> None:
        with self._lock:
            self.events.append(event)

    def seen(self, *expected: str) -> bool:
        with self._lock:
            return self.events == list(expected)


@pytest.fixture
def started(display: str) -> Iterator[tuple[Hotkeys, Recorder, dict[str, str]]]:
    rec = Recorder()
    actions = {
        "toggle": rec.action("toggle"),
        "next_face": rec.action("next"),
        "prev_face": rec.action("prev"),
        "cycle_quality": rec.action("quality"),
        "bypass": rec.held("bypass"),
    }
    bindings = dict(DEFAULT_HOTKEYS)
    bindings["prev_face"] = "<ctrl>+<bogus>+p"  # cannot be registered: reported, the others work
    bindings["cycle_quality"] = "<ctrl>+<shift>+q"
    bindings["launch"] = "<ctrl>+l"  # no such action
    hk = Hotkeys(bindings, actions)
    hk.start()
    env = x_env(display)
    assert hk.wait_ready(30)
    yield hk, rec, env
    hk.stop()
    listener = hk_listener_thread()
    xdotool(env, "key", "shift")  # pynput's X listener ends at the next event after stop()
    if listener is not None:
        listener.join(timeout=30)
        assert not listener.is_alive()


def hk_listener_thread() -> threading.Thread | None:
    from pynput.keyboard import Listener

    found = [t for t in threading.enumerate() if isinstance(t, Listener)]
    return found[0] if found else None


# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("combo", "problem"),
    [
        ("<ctrl>+<alt>+<shift>+s", None),
        ("<ctrl>+<f5>", None),
        ("<cmd>+<65>", None),
        ("<ctrl>++", None),
        ("a", None),
        ("", "empty"),
        ("<ctrl>+", "ends with '+'"),
        ("<ctrl>+<bogus>+s", "unknown key '<bogus>'"),
        ("<ctrl>+ab", "'ab' is neither one character nor a <key> name"),
        ("<ctrl>+<CTRL>", "'<CTRL>' appears twice"),
        ("s+S", "'S' appears twice"),
    ],
)
def test_syntax_is_checked_without_a_display(combo: str, problem: str | None) -> None:
    assert syntax_problem(combo) == problem


def test_default_hotkeys_are_valid() -> None:
    assert all(syntax_problem(c) is None for c in DEFAULT_HOTKEYS.values())


@pytest.mark.parametrize(
    ("display_value", "expected"),
    [(None, "no display (DISPLAY is unset)"), (":4242", "(")],  # dead server: pynput's own reason, in brackets
    ids=["unset", "dead-server"],
)
def test_no_display_is_reported_in_one_line(display_value: str | None, expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    if display_value:
        env["DISPLAY"] = display_value
    code = (
        "from vcamswap.daemon.desktop.hotkeys import HotkeysUnavailable, load_keyboard\n"
        "try:\n    load_keyboard()\nexcept HotkeysUnavailable as e:\n    print('UNAVAILABLE', e)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("UNAVAILABLE global hotkeys are not available here"), r.stdout + r.stderr
    assert expected in r.stdout and len(r.stdout.strip().splitlines()) == 1


def test_wayland_only_session_is_explained() -> None:
    from vcamswap.daemon.desktop.hotkeys import display_problem

    assert "Wayland" in (display_problem({"WAYLAND_DISPLAY": "wayland-0"}, "linux") or "")
    assert display_problem({"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0"}, "linux") is None  # XWayland
    assert display_problem({}, "win32") is None


def test_bad_hotkeys_are_reported_by_name(started: tuple[Hotkeys, Recorder, dict[str, str]]) -> None:
    hk, _, _ = started
    assert len(hk.problems) == 2
    assert hk.problems[0].startswith("hotkey 'prev_face': cannot parse '<ctrl>+<bogus>+p'")
    assert hk.problems[1].startswith("hotkey 'launch': unknown action")


def test_combos_fire_once_from_real_key_events(started: tuple[Hotkeys, Recorder, dict[str, str]]) -> None:
    _, rec, env = started
    xdotool(env, "key", "ctrl+alt+shift+s")
    wait_until(lambda: rec.seen("toggle"), "toggle fired")
    xdotool(env, "key", "ctrl+shift+q")
    wait_until(lambda: rec.seen("toggle", "quality"), "ctrl+shift+q")
    # Extra or missing modifiers do not match: ctrl+alt+s is not ctrl+alt+shift+s.
    xdotool(env, "key", "ctrl+alt+s")
    xdotool(env, "key", "ctrl+alt+shift+n")
    wait_until(lambda: rec.seen("toggle", "quality", "next"), "next fired, ctrl+alt+s did not")
    # The unregistered combo does nothing; the next good one still works.
    xdotool(env, "key", "ctrl+alt+shift+p")
    xdotool(env, "key", "ctrl+alt+shift+s")
    wait_until(lambda: rec.seen("toggle", "quality", "next", "toggle"), "prev_face not registered")


def test_bypass_reports_press_and_release(started: tuple[Hotkeys, Recorder, dict[str, str]]) -> None:
    _, rec, env = started
    xdotool(env, "keydown", "ctrl+alt+shift+b")
    wait_until(lambda: rec.seen("bypass-down"), "bypass pressed")
    xdotool(env, "keyup", "ctrl+alt+shift+b")
    wait_until(lambda: rec.seen("bypass-down", "bypass-up"), "bypass released")
    # That keyup let Alt go while Shift was still down, which X reports as Meta; were it missed, Alt would
    # stay held and ctrl+shift+q would not match.
    xdotool(env, "key", "ctrl+shift+q")
    wait_until(lambda: rec.seen("bypass-down", "bypass-up", "quality"), "ctrl+shift+q after the hold")
    rec.events.clear()
    # Releasing only the letter ends the hold too; pressing it again (modifiers still down) starts it again.
    xdotool(env, "keydown", "ctrl+alt+shift+b")
    xdotool(env, "keyup", "b")
    xdotool(env, "keydown", "b")
    xdotool(env, "keyup", "ctrl+alt+shift+b")
    wait_until(lambda: rec.seen(*["bypass-down", "bypass-up"] * 2), "hold, release, hold, release")
