"""Global shortcuts on Wayland through the XDG desktop portal (org.freedesktop.portal.GlobalShortcuts).

A Wayland compositor does not let one app see another's keys, so pynput only hears keys while an
XWayland window has the focus. The portal (KDE Plasma 5.27+, GNOME 48+, Hyprland) instead lets the app
ask for named shortcuts; the desktop shows its own dialog where the user confirms or rebinds them, and
sends `Activated` / `Deactivated` signals whatever window has the focus.

The flow, as documented: CreateSession -> Request.Response(session_handle); BindShortcuts(session,
shortcuts, parent_window, options) -> Request.Response(shortcuts actually bound); then Activated /
Deactivated(session, shortcut_id, timestamp, options) for as long as the session lives.

D-Bus goes through jeepney: pure Python (nothing to compile, no GLib main loop to host next to the tray),
maintained, and already what keyring/SecretStorage use on Linux desktops. Its threading router matches
replies and signals in a receiver thread of its own.
"""

from __future__ import annotations

import logging
import os
import queue
import secrets
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from vcamswap.daemon.desktop.hotkeys import ACTION_HELP, HotkeyAction, combo_parts

log = logging.getLogger("vcamswap.hotkeys")

PORTAL_BUS = "org.freedesktop.portal.Desktop"
PORTAL_PATH = "/org/freedesktop/portal/desktop"
SHORTCUTS_IFACE = "org.freedesktop.portal.GlobalShortcuts"
REQUEST_IFACE = "org.freedesktop.portal.Request"
SESSION_IFACE = "org.freedesktop.portal.Session"
CALL_TIMEOUT_S = 10.0
# The desktop shows a dialog on the first bind; give the user time to read it.
DIALOG_TIMEOUT_S = 300.0

# What a desktop's own keyboard settings can run instead, one command per action.
ACTION_COMMANDS: dict[str, str] = {
    "toggle": "vcamswap toggle",
    "next_face": "vcamswap face next",
    "prev_face": "vcamswap face prev",
    "cycle_quality": "vcamswap preset next",
}

BIND_HINT = (
    "bind " + ", ".join(f"'{c}'" for c in ACTION_COMMANDS.values())
    + " in your desktop's keyboard settings (a desktop portal with GlobalShortcuts, as in KDE Plasma 5.27+, "
    "GNOME 48+ or Hyprland, binds them for you)"
)

# pynput key names -> XKB keysym names, as the shortcuts spec's triggers use them.
_KEYSYMS = {
    "space": "space", "enter": "Return", "esc": "Escape", "tab": "Tab", "backspace": "BackSpace",
    "delete": "Delete", "insert": "Insert", "home": "Home", "end": "End", "page_up": "Page_Up",
    "page_down": "Page_Down", "up": "Up", "down": "Down", "left": "Left", "right": "Right",
    "pause": "Pause", "print_screen": "Print", "scroll_lock": "Scroll_Lock", "menu": "Menu",
    "media_play_pause": "XF86AudioPlay", "media_volume_mute": "XF86AudioMute",
    "media_volume_down": "XF86AudioLowerVolume", "media_volume_up": "XF86AudioRaiseVolume",
    "media_previous": "XF86AudioPrev", "media_next": "XF86AudioNext",
}
_MODIFIERS = {
    "ctrl": "CTRL", "ctrl_l": "CTRL", "ctrl_r": "CTRL", "alt": "ALT", "alt_l": "ALT", "alt_r": "ALT",
    "alt_gr": "ALT", "shift": "SHIFT", "shift_l": "SHIFT", "shift_r": "SHIFT", "cmd": "LOGO", "cmd_l": "LOGO",
    "cmd_r": "LOGO",
}
_MODIFIER_ORDER = ("CTRL", "ALT", "SHIFT", "LOGO")


class ShortcutsUnavailable(Exception):
    """The portal cannot give us global shortcuts here; one-line reason."""


def is_wayland_session(env: Mapping[str, str] | None = None, platform: str | None = None) -> bool:
    """A Linux desktop session on Wayland (XWayland's DISPLAY next to it does not change that)."""
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    if not platform.startswith("linux"):
        return False
    return env.get("XDG_SESSION_TYPE", "").lower() == "wayland" or bool(env.get("WAYLAND_DISPLAY"))


def portal_trigger(combo: str) -> str | None:
    """A settings combo ('<ctrl>+<alt>+<shift>+s') as a shortcuts-spec trigger ('CTRL+ALT+SHIFT+s')."""
    try:
        parts = combo_parts(combo)
    except ValueError:
        return None
    mods: set[str] = set()
    keys: list[str] = []
    for part in parts:
        name = part[1:-1].lower() if len(part) > 2 and part.startswith("<") and part.endswith(">") else part
        if name in _MODIFIERS:
            mods.add(_MODIFIERS[name])
        elif len(part) == 1:
            keys.append(part.lower())
        elif name in _KEYSYMS:
            keys.append(_KEYSYMS[name])
        elif name.startswith("f") and name[1:].isdigit():
            keys.append(name.upper())
        else:
            return None  # a raw key code: let the desktop pick
    if len(keys) != 1:
        return None
    return "+".join([m for m in _MODIFIER_ORDER if m in mods] + keys)


@dataclass
class BoundShortcut:
    name: str
    trigger: str  # what the desktop says it is bound to ("" when it has no key yet)
    action: HotkeyAction
    active: bool = False


@dataclass
class _Portal:
    """One connection to the session bus and the messages we wait for on it."""

    router: Any
    conn: Any
    requests: queue.Queue[Any] = field(default_factory=queue.Queue)
    signals: queue.Queue[Any] = field(default_factory=queue.Queue)
    filters: list[Any] = field(default_factory=list)
    owner: str = ""  # the portal's unique bus name: only its signals count


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) < 200 else text[:197] + "..."


def _header(msg: Any, name: str) -> Any:
    from jeepney.low_level import HeaderFields

    return msg.header.fields.get(HeaderFields[name])


def _token() -> str:
    return "vcamswap_" + secrets.token_hex(6)


def _variant(value: Any) -> Any:
    """A variant's value: jeepney hands variants over as (signature, value)."""
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str):
        return value[1]
    return value


def portal_version(timeout: float = 2.0) -> int:
    """The GlobalShortcuts interface's version on the session bus, or ShortcutsUnavailable."""
    portal = _connect()
    try:
        return _version(portal, timeout)
    finally:
        _disconnect(portal)


def _connect() -> _Portal:
    from jeepney.io.threading import DBusRouter, open_dbus_connection

    if not os.environ.get("DBUS_SESSION_BUS_ADDRESS") and not os.environ.get("XDG_RUNTIME_DIR"):
        raise ShortcutsUnavailable("no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is unset)")
    try:
        conn = open_dbus_connection(bus="SESSION")
    except Exception as e:  # no bus, refused, auth failed: all mean "no portal here"
        raise ShortcutsUnavailable(f"cannot reach the D-Bus session bus ({_one_line(e)})") from None
    return _Portal(DBusRouter(conn), conn)


def _disconnect(portal: _Portal) -> None:
    for f in portal.filters:
        f.close()
    portal.router.close()
    portal.conn.close()


def _version(portal: _Portal, timeout: float) -> int:
    from jeepney import DBusAddress, DBusErrorResponse, Properties
    from jeepney.io.threading import Proxy

    addr = DBusAddress(PORTAL_PATH, bus_name=PORTAL_BUS, interface=SHORTCUTS_IFACE)
    try:
        reply = Proxy(Properties(addr), portal.router, timeout=timeout).get("version")
    except DBusErrorResponse as e:
        if e.name in ("org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner"):
            raise ShortcutsUnavailable("no desktop portal is running") from None
        raise ShortcutsUnavailable("the desktop portal has no GlobalShortcuts interface") from None
    except TimeoutError:
        raise ShortcutsUnavailable("the desktop portal does not answer") from None
    return int(_variant(reply[0]))


def _subscribe(portal: _Portal) -> None:
    """Request.Response and our signals, matched before any call so that no reply can slip past."""
    from jeepney import MatchRule, message_bus
    from jeepney.io.threading import Proxy

    bus = Proxy(message_bus, portal.router, timeout=CALL_TIMEOUT_S)
    responses = MatchRule(type="signal", interface=REQUEST_IFACE, member="Response")
    signals = MatchRule(type="signal", interface=SHORTCUTS_IFACE, path=PORTAL_PATH)
    # The bus resolves the portal's well-known name; locally, messages carry its unique name instead.
    bus.AddMatch(responses)
    bus.AddMatch(MatchRule(type="signal", sender=PORTAL_BUS, interface=SHORTCUTS_IFACE, path=PORTAL_PATH))
    owner = bus.GetNameOwner(PORTAL_BUS)[0]
    portal.filters.append(portal.router.filter(responses, queue=portal.requests))
    portal.filters.append(portal.router.filter(signals, queue=portal.signals))
    portal.owner = str(owner)


def _request_path(portal: _Portal, token: str) -> str:
    sender = portal.conn.unique_name.lstrip(":").replace(".", "_")
    return f"{PORTAL_PATH}/request/{sender}/{token}"


def _call(portal: _Portal, method: str, signature: str, body: tuple[Any, ...], token: str,
          timeout: float) -> tuple[int, dict[str, Any]]:
    """A portal method that answers through a Request object: (response code, results)."""
    from jeepney import DBusAddress, DBusErrorResponse, new_method_call

    addr = DBusAddress(PORTAL_PATH, bus_name=PORTAL_BUS, interface=SHORTCUTS_IFACE)
    expected = _request_path(portal, token)
    try:
        reply = portal.router.send_and_get_reply(new_method_call(addr, method, signature, body),
                                                 timeout=CALL_TIMEOUT_S)
    except TimeoutError:
        raise ShortcutsUnavailable(f"the desktop portal did not answer {method}") from None
    if reply.header.message_type.name == "error":
        raise ShortcutsUnavailable(f"the desktop portal refused {method}: {DBusErrorResponse(reply)}")
    handle = str(reply.body[0]) if reply.body else expected  # older portals chose their own path
    while True:
        try:
            msg = portal.requests.get(timeout=timeout)
        except queue.Empty:
            raise ShortcutsUnavailable(f"no answer from the desktop to {method} (its dialog left open?)") from None
        if _header(msg, "sender") == portal.owner and _header(msg, "path") in (handle, expected):
            code, results = msg.body
            return int(code), {k: _variant(v) for k, v in results.items()}




class PortalShortcuts:
    """The daemon's actions as portal global shortcuts; the same face as Hotkeys (start, running, stop)."""

    backend = "portal"

    def __init__(self, bindings: Mapping[str, str], actions: Mapping[str, HotkeyAction],
                 dialog_timeout: float = DIALOG_TIMEOUT_S) -> None:
        self._bindings = dict(bindings)
        self._actions = dict(actions)
        self._dialog_timeout = dialog_timeout
        self._portal: _Portal | None = None
        self._session: str | None = None
        self._thread: threading.Thread | None = None
        self.version = 0
        self.shortcuts: dict[str, BoundShortcut] = {}
        self.problems: list[str] = []

    def requested(self) -> list[tuple[str, dict[str, tuple[str, str]]]]:
        """The shortcuts we ask for: id, description, and the settings' combo as the preferred trigger."""
        out = []
        for name in self._actions:
            combo = self._bindings.get(name, "")
            if name in self._bindings and not combo.strip():
                continue  # turned off in the settings
            opts = {"description": ("s", f"Swap Cam: {ACTION_HELP.get(name, name)}")}
            trigger = portal_trigger(combo) if combo else None
            if trigger:
                opts["preferred_trigger"] = ("s", trigger)
            elif combo:
                self.problems.append(f"hotkey {name!r}: {combo!r} has no portal form; the desktop will ask for keys")
            out.append((name, opts))
        return out

    def start(self) -> list[BoundShortcut]:
        """Create the session and bind; the desktop may show its dialog first. ShortcutsUnavailable if not."""
        portal = _connect()
        try:
            self.version = _version(portal, CALL_TIMEOUT_S)
            _subscribe(portal)
            token = _token()
            code, results = _call(portal, "CreateSession", "a{sv}", (
                {"handle_token": ("s", token), "session_handle_token": ("s", _token())},
            ), token, CALL_TIMEOUT_S)
            if code != 0 or not results.get("session_handle"):
                raise ShortcutsUnavailable(f"the desktop portal would not create a shortcuts session (code {code})")
            self._session = str(results["session_handle"])
            token = _token()
            code, results = _call(portal, "BindShortcuts", "oa(sa{sv})sa{sv}", (
                self._session, self.requested(), "", {"handle_token": ("s", token)},
            ), token, self._dialog_timeout)
            if code == 1:
                raise ShortcutsUnavailable("the desktop's shortcuts dialog was cancelled")
            if code != 0:
                raise ShortcutsUnavailable(f"the desktop did not bind the shortcuts (code {code})")
        except BaseException:
            self._close_session(portal)
            _disconnect(portal)
            raise
        self._portal = portal
        self.shortcuts = self._bound(results.get("shortcuts", []))
        self._thread = threading.Thread(target=self._dispatch, name="vcamswap-portal-shortcuts", daemon=True)
        self._thread.start()
        return list(self.shortcuts.values())

    def _bound(self, shortcuts: list[Any]) -> dict[str, BoundShortcut]:
        out = {}
        for sid, opts in shortcuts:
            if sid in self._actions:
                trigger = str(_variant(opts.get("trigger_description", ("s", ""))))
                out[sid] = BoundShortcut(sid, trigger, self._actions[sid])
        return out

    def _dispatch(self) -> None:
        portal = self._portal
        assert portal is not None
        while True:
            msg = portal.signals.get()
            if msg is None:
                return
            if _header(msg, "sender") != portal.owner:
                continue
            member = _header(msg, "member")
            if member == "ShortcutsChanged" and msg.body and msg.body[0] == self._session:
                self.shortcuts.update(self._bound(msg.body[1]))
                log.info("hotkeys rebound by the desktop: %s", self.describe())
                continue
            if member not in ("Activated", "Deactivated") or len(msg.body) < 2 or msg.body[0] != self._session:
                continue
            sc = self.shortcuts.get(str(msg.body[1]))
            if sc is not None:
                self._fire(sc, pressed=member == "Activated")

    def _fire(self, sc: BoundShortcut, pressed: bool) -> None:
        """Activated presses; Deactivated releases a held action. A portal that never reports releases
        still works: pressing a held shortcut again ends the hold."""
        fn: Callable[[], object] | None
        if sc.action.on_release is None:
            fn = sc.action.on_press if pressed else None
        elif pressed and not sc.active:
            sc.active, fn = True, sc.action.on_press
        elif sc.active:
            sc.active, fn = False, sc.action.on_release
        else:
            fn = None
        if fn is None:
            return
        try:
            fn()
        except Exception as e:  # a failing action must not end the dispatch thread
            log.warning("hotkey %s failed: %s", sc.name, e)

    def describe(self) -> str:
        return ", ".join(f"{s.name} {s.trigger or '(no key yet)'}" for s in self.shortcuts.values())

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        portal, self._portal = self._portal, None
        if portal is None:
            return
        portal.signals.put(None)
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._close_session(portal)
        _disconnect(portal)

    def _close_session(self, portal: _Portal) -> None:
        from jeepney import DBusAddress, new_method_call

        session, self._session = self._session, None
        if session is None:
            return
        try:
            portal.router.send_and_get_reply(
                new_method_call(DBusAddress(session, bus_name=PORTAL_BUS, interface=SESSION_IFACE), "Close"),
                timeout=2.0)
        except Exception as e:  # the portal went away first: nothing left to close
            log.debug("closing the shortcuts session: %s", e)


def backend_report(env: Mapping[str, str] | None = None) -> tuple[str | None, str]:
    """For `vcamswap doctor`: (backend that would be active or None, one line about it). Asks the portal its
    version only; binds nothing, shows no dialog."""
    if not is_wayland_session(env):
        return "pynput", "backend pynput"
    try:
        version = portal_version()
    except ShortcutsUnavailable as e:
        return None, f"Wayland session and {e}"
    return "portal", f"backend: the desktop portal's GlobalShortcuts (version {version}); the desktop confirms the keys"
