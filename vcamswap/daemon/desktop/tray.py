"""The tray icon: a menu over the shared Controls, an icon that shows the state, fps in the tooltip.

pystray runs its loop on the main thread (required on macOS). The menu is built from callables that read
Controls, and rebuilt when Controls change, so a change from a hotkey or the socket shows up in the menu.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

from vcamswap import desktop
from vcamswap.choices import MODEL_ENGINES, PRESET_NAMES, TARGETS
from vcamswap.control import intents
from vcamswap.controls import LIKENESS_STEPS, Controls, ControlState
from vcamswap.daemon.desktop.trayicon import state_icon
from vcamswap.modelstore.installed import installed
from vcamswap.panel.browser import opener

log = logging.getLogger("vcamswap.tray")

TrayState = Literal["starting", "swapping", "off", "no-face", "paused", "error"]

APP_TITLE = "Swap Cam"

class TrayUnavailable(Exception):
    """No tray icon can be shown here (no display, no tray backend); one-line reason."""


@dataclass(frozen=True)
class TrayView:
    """What the icon and tooltip show; computed by the daemon about once a second."""

    state: str
    fps: float = 0.0
    face: str | None = None
    preset: str = "balanced"
    detail: str | None = None  # why: "camera lost", "no face in the picture", ...
    server: str | None = None  # the remote engine's menu line: "Server grpc://host:8001 — 92 ms"
    server_short: str | None = None  # the same in the tooltip: "server 92 ms", "server away"


def tooltip(view: TrayView) -> str:
    words = {
        "starting": "starting",
        "swapping": "swapping",
        "off": "swap off",
        "no-face": "no face found",
        "paused": "camera paused",
        "error": "problem",
    }
    head = f"{APP_TITLE}: {words.get(view.state, view.state)}"
    if view.state in ("swapping", "off", "no-face"):
        head += f" · {view.fps:.1f} fps"
    parts = [head]
    if view.face:
        parts.append(f"face {view.face}")
    parts.append(view.preset)
    if view.server_short:
        parts.append(view.server_short)
    if view.detail:
        parts.append(view.detail)
    text = " · ".join(parts)
    return text if len(text) <= 120 else text[:117] + "..."  # Windows cuts tooltips at 127 characters


def tray_problem(env: dict[str, str] | None = None, platform: str | None = None) -> str | None:
    """Why there can be no tray icon here, before trying (X and GTK fail noisily without a display)."""
    d = desktop.session(env, sys.platform if platform is None else platform)
    if not d.native and not d.x11 and not d.wayland:
        return "no display (DISPLAY and WAYLAND_DISPLAY are unset)"
    return None


def _linux_backend() -> str:
    """pystray's backend: AppIndicator where its typelib is present, else GTK, else bare X.

    pystray's own probing raises ValueError (not ImportError) when PyGObject is installed without the
    AppIndicator typelib, so it never reaches the GTK backend; pick it here instead.
    """
    try:
        import gi
    except ImportError:
        return "xorg"
    try:
        gi.require_version("Gtk", "3.0")
    except ValueError:
        return "xorg"
    for namespace in ("AppIndicator3", "AyatanaAppIndicator3"):
        try:
            gi.require_version(namespace, "0.1")
            return "appindicator"
        except ValueError:
            continue
    return "gtk"


def load_pystray() -> Any:
    """The pystray module with a working backend, or TrayUnavailable with the reason."""
    problem = tray_problem()
    if problem:
        raise TrayUnavailable(problem)
    if sys.platform.startswith("linux") and not os.environ.get("PYSTRAY_BACKEND"):
        os.environ["PYSTRAY_BACKEND"] = _linux_backend()
    try:
        import pystray
    except Exception as e:  # ImportError, Xlib.error.DisplayNameError, ValueError from gi
        raise TrayUnavailable(f"no tray backend ({_one_line(e)})") from None
    return pystray


def backend_name(pystray: Any) -> str:
    return str(getattr(pystray.Icon, "__module__", "?")).rsplit("_", 1)[-1]


def open_folder(path: Path) -> None:
    """Show a folder in the desktop's file manager (created first); never blocks, never raises."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        log.warning("cannot create %s: %s", path, e.strerror or e)
        return
    if sys.platform == "win32":
        os.startfile(path)  # type: ignore[attr-defined]  # Windows only
        return
    opener = "open" if sys.platform == "darwin" else "xdg-open"
    exe = shutil.which(opener)
    if exe is None:
        log.warning("cannot open the faces folder (%s not found); it is %s", opener, path)
        return
    try:
        proc = subprocess.Popen([exe, str(path)], stdin=subprocess.DEVNULL, start_new_session=True)
    except OSError as e:
        log.warning("cannot open %s: %s", path, e.strerror or e)
        return
    threading.Thread(target=proc.wait, name="vcamswap-open-folder", daemon=True).start()  # no zombie


class Tray:
    """The tray icon over `controls`. Create and run() it on the main thread."""

    def __init__(
        self,
        controls: Controls,
        open_faces: Callable[[], None],
        pystray: Any | None = None,
        name: str = "vcamswap",
        preview_url: Callable[[], str | None] | None = None,
        panel_url: Callable[[], str | None] | None = None,
    ) -> None:
        """`preview_url`: where the MJPEG preview is (with its token), when the daemon serves one."""
        self.controls = controls
        self._open_faces = open_faces
        self._preview_url = preview_url
        self._panel_url = panel_url
        self._pystray = pystray or load_pystray()
        self._lock = threading.Lock()
        self._view = TrayView("starting", preset=controls.snapshot().preset)
        self._applied = self._view  # what the icon shows now
        self.icon: Any = self._pystray.Icon(name, state_icon("starting"), tooltip(self._view), self._menu())
        self._ready = threading.Event()
        controls.subscribe(self._on_change)

    @property
    def backend(self) -> str:
        return backend_name(self._pystray)

    @property
    def has_menu(self) -> bool:
        return bool(getattr(self.icon, "HAS_MENU", True))

    # -- menu --------------------------------------------------------------------------------------------

    def _menu(self) -> Any:
        ps = self._pystray
        item, menu = ps.MenuItem, ps.Menu
        c = self.controls

        def snap() -> ControlState:
            return c.snapshot()

        return menu(
            # The swap server's line, only with the remote engine; it reads the view, never the engine.
            item(lambda _: self.view.server or "", None, enabled=False, visible=lambda _: bool(self.view.server)),
            menu.SEPARATOR,
            item("Swap", self._act(intents.bind(c, "toggle")), checked=lambda _: snap().swap_enabled, default=True),
            item("Source face", menu(self._face_items)),
            item("Quality", menu(self._preset_items)),
            item("Model", menu(self._model_items)),
            item("Likeness", menu(self._likeness_items)),
            item("Faces in view", menu(self._targets_items)),
            item("Show preview", self._act(intents.bind(c, "toggle_preview")),
                 checked=lambda _: snap().preview),
            item("Show AI label", self._act(intents.bind(c, "toggle_label")),
                 checked=lambda _: snap().label_on),
            *([item("Open control panel", self._act(opener(self._panel_url)))] if self._panel_url else []),
            *([item("Open browser preview", self._act(self._open_browser_preview))] if self._preview_url else []),
            item("Open faces folder", self._act(self._open_faces)),
            item("Pause camera", self._act(intents.bind(c, "toggle_pause")),
                 checked=lambda _: snap().paused),
            menu.SEPARATOR,
            item("Quit", self._act(self._quit)),
        )

    def _open_browser_preview(self) -> None:
        """The MJPEG preview's full URL (token included) in the user's browser."""
        import webbrowser

        url = self._preview_url() if self._preview_url else None
        if url is None:
            log.warning("the MJPEG preview is not running")
            return
        if not webbrowser.open(url):
            log.warning("no browser to open; the preview is at %s", url)

    def _face_items(self) -> tuple[Any, ...]:
        ps = self._pystray
        faces = self.controls.snapshot().faces
        if not faces:
            return (ps.MenuItem("(no faces yet: Open faces folder)", None, enabled=False),)
        notes = dict(self.controls.snapshot().face_notes)
        return tuple(
            # A photo with a limit (hair over the face, side light...) is marked; `faces list` says what it is.
            ps.MenuItem(f"{name} (!)" if name in notes else name,
                        self._act(intents.bind(self.controls, "select_face", name)),
                        checked=partial(self._is_face, name), radio=True)
            for name in faces
        )

    def _preset_items(self) -> tuple[Any, ...]:
        ps = self._pystray
        return tuple(
            ps.MenuItem(name, self._act(intents.bind(self.controls, "preset", name)),
                        checked=partial(self._is_preset, name), radio=True)
            for name in PRESET_NAMES
        )

    def _model_items(self) -> tuple[Any, ...]:
        """The swap models installed (the models folder is looked at every few seconds), the one chosen ticked."""
        ps = self._pystray
        snap = self.controls.snapshot()
        names = installed(snap.swap_models)
        if not names:
            return (ps.MenuItem("(none installed: vcamswap models download)", None, enabled=False),)
        items = tuple(
            ps.MenuItem(name, self._act(intents.bind(self.controls, "model", name)),
                        checked=partial(self._is_model, name), radio=True)
            for name in names
        )
        if snap.engine in MODEL_ENGINES:
            return items
        return (*items, ps.MenuItem(f"(used by the {' or '.join(MODEL_ENGINES)} engine)", None, enabled=False))

    def _is_model(self, name: str, item: Any) -> bool:
        return self.controls.snapshot().model == name

    def _likeness_items(self) -> tuple[Any, ...]:
        ps = self._pystray
        return tuple(
            ps.MenuItem(f"{value:g}", self._act(intents.bind(self.controls, "likeness", str(value))),
                        checked=partial(self._is_likeness, value), radio=True)
            for value in LIKENESS_STEPS
        )

    def _is_likeness(self, value: float, item: Any) -> bool:
        return abs(self.controls.snapshot().likeness - value) < 1e-6

    def _targets_items(self) -> tuple[Any, ...]:
        ps = self._pystray
        return tuple(
            ps.MenuItem(which, self._act(intents.bind(self.controls, "targets", which)),
                        checked=partial(self._is_targets, which), radio=True)
            for which in TARGETS
        )

    def _is_targets(self, which: str, item: Any) -> bool:
        return self.controls.snapshot().targets == which

    def _is_face(self, name: str, item: Any) -> bool:
        return self.controls.snapshot().face == name

    def _is_preset(self, name: str, item: Any) -> bool:
        return self.controls.snapshot().preset == name

    def _act(self, fn: Callable[[], object]) -> Callable[[Any, Any], None]:
        """A menu action that logs a failure in one line instead of raising into pystray's loop."""

        def run(icon: Any, item: Any) -> None:
            try:
                fn()
            except Exception as e:
                log.warning("%s: %s", getattr(item, "text", "menu"), e)

        return run

    def _quit(self) -> None:
        intents.run(self.controls, "stop")

    # -- state -------------------------------------------------------------------------------------------

    def _on_change(self, old: ControlState, new: ControlState) -> None:
        if not new.running:
            self.stop()
            return
        shown = ("swap_enabled", "face", "faces", "face_notes", "preset", "model", "swap_models", "engine", "likeness",
                 "targets", "preview", "paused", "label_on")
        if any(getattr(old, k) != getattr(new, k) for k in shown):
            self.refresh_menu()

    def refresh_menu(self) -> None:
        if self._ready.is_set():
            try:
                self.icon.update_menu()
            except Exception as e:  # backend without menus, or gone while quitting
                log.debug("tray menu update: %s", e)

    def show(self, view: TrayView) -> None:
        """Update icon and tooltip where they changed; safe from any thread."""
        with self._lock:
            self._view = view
            if not self._ready.is_set():
                return  # applied in setup, once the icon exists on screen
            applied, self._applied = self._applied, view
        try:
            if view.state != applied.state:
                self.icon.icon = state_icon(view.state)
            text = tooltip(view)
            if text != tooltip(applied):
                self.icon.title = text
        except Exception as e:
            log.debug("tray update: %s", e)
        if view.server != applied.server:
            self.refresh_menu()  # the menu's text is read when it is built

    @property
    def view(self) -> TrayView:
        with self._lock:
            return self._view

    def run(self, on_ready: Callable[[], None] | None = None) -> None:
        """Blocks on the calling (main) thread until stop() or Quit."""

        def setup(icon: Any) -> None:
            icon.visible = True
            self._ready.set()
            self.show(self.view)
            if not self.controls.snapshot().running:
                self.stop()  # stop came before the loop started
            if on_ready is not None:
                on_ready()

        self.icon.run(setup=setup)

    def stop(self) -> None:
        try:
            self.icon.stop()
        except Exception as e:  # not running yet, or already stopped
            log.debug("tray stop: %s", e)


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) < 200 else text[:197] + "..."
