"""Global hotkeys through pynput: they work while another app (the call) has the focus.

pynput's GlobalHotKeys only reports presses; "bypass while held" also needs the release, so one Listener
feeds our own combos. A combo fires when exactly its keys are held (ctrl+alt+s does not also fire ctrl+s),
once per press (auto-repeat does not toggle back and forth).
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from vcamswap import desktop

log = logging.getLogger("vcamswap.hotkeys")

ACTION_HELP: dict[str, str] = {
    "toggle": "swap on/off",
    "next_face": "next source face",
    "prev_face": "previous source face",
    "cycle_quality": "next quality preset (fast, balanced, quality)",
    "bypass": "show the real face while held",
}

# X reports Alt released with Shift held as Meta (keysyms Meta_L/Meta_R); without this the Alt would
# stay "held" in our state and the next combo would not match.
_X_META_AS_ALT = {65511: "alt", 65512: "alt_r"}


class HotkeysUnavailable(Exception):
    """Global hotkeys cannot work here (no display, no input access); one-line reason."""


@dataclass
class HotkeyAction:
    on_press: Callable[[], object]
    on_release: Callable[[], object] | None = None


@dataclass
class Combo:
    name: str
    text: str
    keys: frozenset[Any]  # canonical pynput keys
    action: HotkeyAction
    active: bool = False


@dataclass
class Bindings:
    combos: list[Combo] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # one line each, naming the hotkey


# pynput's Key names (the portable ones), so a combo can be checked where pynput cannot be imported.
KEY_NAMES = frozenset(
    "alt alt_l alt_r alt_gr backspace caps_lock cmd cmd_l cmd_r ctrl ctrl_l ctrl_r delete down end enter "
    "esc home left page_down page_up right shift shift_l shift_r space tab up insert menu num_lock pause "
    "print_screen scroll_lock media_play_pause media_volume_mute media_volume_down media_volume_up "
    "media_previous media_next".split()
    + [f"f{i}" for i in range(1, 21)]
)


def combo_parts(text: str) -> list[str]:
    """Split like pynput's HotKey.parse: '+' separates parts, and '+' itself is a key ('<ctrl>++')."""
    parts, start = [], 0
    for i, c in enumerate(text):
        if c == "+" and i != start:
            parts.append(text[start:i])
            start = i + 1
    if start == len(text):
        raise ValueError("ends with '+'" if text else "empty")
    parts.append(text[start:])
    return parts


def syntax_problem(text: str) -> str | None:
    """What is wrong with a combo such as '<ctrl>+<alt>+s', checked without pynput; None when fine."""
    try:
        parts = combo_parts(text)
    except ValueError as e:
        return str(e)
    seen: set[str] = set()
    for part in parts:
        if len(part) == 1:
            key = part.lower()
        elif len(part) > 2 and part[0] == "<" and part[-1] == ">":
            key = part[1:-1].lower()
            if key not in KEY_NAMES and not key.isdigit():
                return f"unknown key {part!r}"
        else:
            return f"{part!r} is neither one character nor a <key> name"
        if key in seen:
            return f"{part!r} appears twice"
        seen.add(key)
    return None


def parse_bindings(bindings: Mapping[str, str], actions: Mapping[str, HotkeyAction]) -> Bindings:
    """pynput combos for the settings' hotkeys; bad ones are reported by name and left out."""
    from pynput.keyboard import HotKey

    out = Bindings()
    taken: dict[frozenset[Any], str] = {}
    for name, text in bindings.items():
        if name not in actions:
            out.problems.append(f"hotkey {name!r}: unknown action (known: {', '.join(actions)})")
            continue
        if not str(text).strip():
            continue  # an empty binding turns the hotkey off
        try:
            keys = frozenset(HotKey.parse(str(text)))
        except ValueError as e:
            out.problems.append(f"hotkey {name!r}: cannot parse {text!r} (bad part {e}); e.g. '<ctrl>+<alt>+s'")
            continue
        if keys in taken:
            out.problems.append(f"hotkey {name!r}: {text!r} is already bound to {taken[keys]!r}")
            continue
        taken[keys] = name
        out.combos.append(Combo(name, str(text), keys, actions[name]))
    return out


class ComboMatcher:
    """Key events in, actions out. Pure logic over canonical keys, fed by the listener thread."""

    def __init__(self, combos: list[Combo]) -> None:
        self.combos = combos
        self._held: set[Any] = set()
        self._lock = threading.Lock()

    def press(self, key: Any) -> None:
        fire: list[Combo] = []
        with self._lock:
            self._held.add(key)
            for c in self.combos:
                if not c.active and key in c.keys and self._held == set(c.keys):
                    c.active = True
                    fire.append(c)
        for c in fire:
            _call(c, c.action.on_press)

    def release(self, key: Any) -> None:
        fire: list[Combo] = []
        with self._lock:
            self._held.discard(key)
            for c in self.combos:
                if c.active and key in c.keys:
                    c.active = False
                    fire.append(c)
        for c in fire:
            if c.action.on_release is not None:
                _call(c, c.action.on_release)


def _call(combo: Combo, fn: Callable[[], object]) -> None:
    try:
        fn()
    except Exception as e:  # a failing action must not kill the listener thread
        log.warning("hotkey %s (%s) failed: %s", combo.name, combo.text, e)


def display_problem(env: Mapping[str, str] | None = None, platform: str | None = None) -> str | None:
    """Why global hotkeys cannot work in this session, known before pynput tries (and fails noisily)."""
    d = desktop.session(env, sys.platform if platform is None else platform)
    if d.native or d.x11:
        return None
    if d.wayland:
        return "they need X11; a Wayland session does not share other apps' keys (use the tray or the CLI)"
    return "no display (DISPLAY is unset)"


def load_keyboard() -> Any:
    """pynput.keyboard, or HotkeysUnavailable: without a display pynput raises ImportError on import."""
    problem = display_problem()
    if problem:
        raise HotkeysUnavailable(f"global hotkeys are not available here: {problem}")
    try:
        from pynput import keyboard
    except Exception as e:  # ImportError headless; Xlib errors when the display refuses us
        raise HotkeysUnavailable(f"global hotkeys are not available here ({_one_line(e)})") from None
    return keyboard


class Hotkeys:
    """The global hotkeys of the settings, in pynput's listener thread."""

    def __init__(self, bindings: Mapping[str, str], actions: Mapping[str, HotkeyAction]) -> None:
        self._bindings = dict(bindings)
        self._actions = dict(actions)
        self._listener: Any = None
        self.matcher: ComboMatcher | None = None
        self.problems: list[str] = []

    def start(self) -> list[Combo]:
        """Start listening; returns the combos registered. Bad ones are in `problems` (and logged)."""
        keyboard = load_keyboard()
        parsed = parse_bindings(self._bindings, self._actions)
        self.problems = parsed.problems
        for p in parsed.problems:
            log.warning("%s", p)
        matcher = ComboMatcher(parsed.combos)
        listener: Any = None

        def canonical(key: Any) -> Any:
            vk = getattr(key, "vk", None)
            if vk in _X_META_AS_ALT and getattr(key, "char", None) is None:
                return keyboard.Key.alt
            return listener.canonical(key)

        def on_press(key: Any) -> None:
            if key is not None:
                matcher.press(canonical(key))

        def on_release(key: Any) -> None:
            if key is not None:
                matcher.release(canonical(key))

        try:
            listener = keyboard.Listener(on_press=on_press, on_release=on_release)
            listener.start()
        except Exception as e:
            raise HotkeysUnavailable(f"global hotkeys cannot start ({_one_line(e)})") from None
        self._listener, self.matcher = listener, matcher
        return parsed.combos

    def wait_ready(self, timeout: float = 5.0) -> bool:
        """Whether the listener is receiving events (it needs a moment to connect to the display)."""
        listener = self._listener
        if listener is None:
            return False
        done = threading.Event()

        def waiter() -> None:
            listener.wait()
            done.set()

        threading.Thread(target=waiter, name="vcamswap-hotkeys-wait", daemon=True).start()
        return done.wait(timeout) and listener.is_alive()

    @property
    def running(self) -> bool:
        return self._listener is not None and self._listener.is_alive()

    def stop(self) -> None:
        """Stop listening. On X the thread ends at the next key event; it is a daemon thread."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop()


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) < 200 else text[:197] + "..."

