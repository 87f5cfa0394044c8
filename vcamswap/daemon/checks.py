"""`vcamswap doctor` lines for the daemon's parts: tray, hotkeys, the running daemon, start-up service.

Cheap and side-effect free: nothing here opens a window, grabs keys or imports a GUI toolkit.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable

from vcamswap.checks import Context, Line
from vcamswap.control.client import request
from vcamswap.control.protocol import IpcError, NotRunning
from vcamswap.daemon.desktop.audio_sync import doctor_report
from vcamswap.daemon.desktop.hotkeys import ACTION_HELP, display_problem, syntax_problem
from vcamswap.daemon.desktop.portal import BIND_HINT, backend_report
from vcamswap.daemon.service import target_for


def check_tray(ctx: Context) -> Iterable[Line]:
    # the tray loads PIL
    from vcamswap.daemon.desktop.tray import _linux_backend, tray_problem

    problem = tray_problem()
    if problem:
        yield Line(True, "tray", f"{problem}: the daemon runs without a tray icon (use 'vcamswap status', "
                   "'toggle', 'stop')")
        return
    if not sys.platform.startswith("linux"):
        yield Line(True, "tray", "system tray available")
        return
    backend = os.environ.get("PYSTRAY_BACKEND") or _linux_backend()
    gnome = "GNOME" in os.environ.get("XDG_CURRENT_DESKTOP", "").upper()
    if backend == "xorg":
        yield Line(False, "tray", "no GTK for pystray: the icon has no menu (a click toggles the swap)",
                   "pip install 'PyGObject<3.51' (needs libgirepository1.0-dev libcairo2-dev) and "
                   "sudo apt install gir1.2-gtk-3.0")
    elif gnome and backend != "appindicator":
        yield Line(False, "tray", "GNOME shows no classic tray icons",
                   "sudo apt install gir1.2-ayatanaappindicator3-0.1 and enable the 'AppIndicator and "
                   "KStatusNotifierItem Support' extension")
    else:
        yield Line(True, "tray", f"pystray backend {backend}, with a menu")


def check_hotkeys(ctx: Context) -> Iterable[Line]:
    bad = False
    seen: dict[str, str] = {}
    for name, combo in ctx.settings.hotkeys.items():
        if name not in ACTION_HELP:
            bad = True
            yield Line(False, "hotkeys", f"{name!r} is not an action", f"use one of {', '.join(ACTION_HELP)} "
                       f"in [hotkeys] of {ctx.settings_file}")
            continue
        if not combo.strip():
            continue  # turned off
        problem = syntax_problem(combo)
        key = "+".join(sorted(combo.lower().split("+")))
        if problem:
            bad = True
            yield Line(False, "hotkeys", f"{name} = {combo!r}: {problem}",
                       f"fix it in [hotkeys] of {ctx.settings_file}, e.g. '<ctrl>+<alt>+<shift>+s'")
        elif key in seen:
            bad = True
            yield Line(False, "hotkeys", f"{name} = {combo!r} is also {seen[key]}'s",
                       f"give one of them other keys in {ctx.settings_file}")
        else:
            seen[key] = name

    backend, about = backend_report()
    if backend != "pynput":
        yield Line(backend is not None, "hotkeys", about, BIND_HINT)
        return
    problem = display_problem()
    if problem:
        yield Line(False, "hotkeys", f"global hotkeys are not available here: {problem}",
                   "log in to an X11 session, or bind 'vcamswap toggle' etc. in your desktop's keyboard settings")
    elif not bad:
        yield Line(True, "hotkeys", ", ".join(f"{n} {c}" for n, c in ctx.settings.hotkeys.items() if c.strip())
                   + f" ({about})")


def check_daemon(ctx: Context) -> Iterable[Line]:
    try:
        st = request({"cmd": "status"}, timeout=5.0)
    except NotRunning:
        yield Line(True, "daemon", "not running (start it with 'vcamswap daemon')")
        return
    except IpcError as e:
        yield Line(False, "daemon", str(e), "stop the other process, or remove the stale socket it names")
        return
    text = f"running (pid {st.get('pid')}): {st.get('state')}, {st.get('fps', 0):.1f} fps, hotkeys " + (
        st.get("hotkeys_backend") or "off")
    if st.get("state") == "error":
        yield Line(False, "daemon", f"{text}: {st.get('detail')}", "see 'vcamswap status' and the daemon's log")
    else:
        yield Line(True, "daemon", text)


def check_service(ctx: Context) -> Iterable[Line]:
    target = target_for()
    try:
        current = target.path.read_bytes().decode("utf-8", "replace").replace("\r\n", "\n")
    except OSError:
        yield Line(True, "start-up", f"not set to start with the session ({target.path})")
        return
    if current == target.content:
        yield Line(True, "start-up", f"starts with the session ({target.path})")
    else:
        yield Line(False, "start-up", f"{target.path} differs from what this vcamswap would write "
                   "(another interpreter, or edited)", "vcamswap service install --force")


def check_audio(ctx: Context) -> Iterable[Line]:
    if not sys.platform.startswith("linux"):
        return

    ok, text, fix = doctor_report(ctx.settings.audio_sync)
    yield Line(ok, "swap mic", text, fix)


CHECKS = (check_tray, check_hotkeys, check_audio, check_daemon, check_service)
