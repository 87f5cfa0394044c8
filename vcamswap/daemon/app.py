"""`vcamswap daemon`: the live loop in a worker thread, the tray on the main thread, hotkeys in pynput's
thread, the control socket in its own; all of them act on one Controls object, read once per frame.

It keeps publishing whatever happens: a camera that is missing at start is waited for (with a banner on
the virtual camera), one lost mid-stream is retried by the capture, an output that fails is retried by the
SinkSet, a face photo deleted in use is replaced by the next one, and a crash inside one frame restarts the
loop rather than the process.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vcamswap import __version__
from vcamswap.settings import Settings, SettingsFile, load_settings, settings_path
from vcamswap.controls import Controls, ControlState
from vcamswap.daemon.ipc import ControlServer, DaemonRunning, IpcError, Reply, Request, error_reply

# The heavy modules (OpenCV, the models, GUI toolkits) load in Daemon.run(), so that registering the
# `daemon` command costs nothing to `vcamswap status` and friends.
if TYPE_CHECKING:
    import numpy as np

    from vcamswap.capture.source import Capture
    from vcamswap.outputs.sinkset import SinkSet
    from vcamswap.live.pipeline import FrameResult, Pipeline
    from vcamswap.live.loop import LiveLoop
    from vcamswap.daemon.tray import Tray, TrayView
    from vcamswap.types import Frame

log = logging.getLogger("vcamswap.daemon")

# Tests (and integrators) can add a pyvirtualcam backend by name: NAME=module:Class.
TEST_VCAM_ENV = "VCAMSWAP_TEST_VCAM_BACKEND"
FACES_POLL_S = 2.0
MONITOR_PERIOD_S = 1.0
CAMERA_RETRY_S = 3.0
WAITING_FPS = 5.0  # notice frames per second while no camera is there
NO_FACE_FRAMES = 10  # this many frames in a row without a face -> "no face found"

CaptureFactory = Callable[[Settings], "Capture"]


def register_vcam_backend_from_env(env: dict[str, str] | None = None) -> str | None:
    """Register the pyvirtualcam backend named in $VCAMSWAP_TEST_VCAM_BACKEND; its name, or None."""
    spec = (os.environ if env is None else env).get(TEST_VCAM_ENV, "").strip()
    if not spec:
        return None
    name, _, target = spec.partition("=")
    module, _, cls_name = target.partition(":")
    if not (name and module and cls_name):
        log.warning("%s=%r: expected NAME=module:Class", TEST_VCAM_ENV, spec)
        return None
    try:
        import pyvirtualcam

        pyvirtualcam.register_backend(name, getattr(importlib.import_module(module), cls_name))
    except Exception as e:
        log.warning("%s: cannot register %s (%s)", TEST_VCAM_ENV, target, e)
        return None
    return name


def default_capture(settings: Settings) -> Capture:
    """The camera or input of the settings. Never the demo clip: a daemon waits for the real camera."""
    from vcamswap.live.build import open_capture

    return open_capture(settings, realtime=True, allow_demo=False)[0]


class PreviewToggle:
    """The preview window as an output that "Show preview" opens and closes at run time.

    The window lives in a viewer process (vcamswap.outputs.viewer) fed by a local MJPEG stream: OpenCV's Qt and the
    GTK tray cannot share a process, and a window problem must never take the daemon down. Closing the
    window unticks "Show preview".
    """

    name = "preview"

    def __init__(self, controls: Controls) -> None:
        self.controls = controls
        self._format = (0, 0, 0.0)
        self._stream: Any = None  # MjpegSink on 127.0.0.1, a free port
        self._viewer: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def open(self, width: int, height: int, fps: float) -> None:
        self._format = (width, height, fps)

    def send(self, frame_bgr: np.ndarray) -> None:
        want = self.controls.snapshot().preview
        if want and self._viewer is None:
            if not self._show():
                self.controls.set_preview(False)  # the tray's check mark follows reality
                return
        elif not want and self._viewer is not None:
            self.close()
            return
        if self._viewer is None:
            return
        if self._viewer.poll() is not None:  # the user closed the window
            self.close()
            self.controls.set_preview(False)
            return
        self._stream.send(frame_bgr)

    def _show(self) -> bool:
        from vcamswap.outputs.sinkset import MjpegSink, OutputUnavailable, display_problem

        problem = display_problem()
        if problem:
            log.warning("preview: %s", problem)
            return False
        stream = MjpegSink(0)
        try:
            stream.open(*self._format)
        except OutputUnavailable as e:
            log.warning("preview: %s", e)
            return False
        try:
            viewer = subprocess.Popen(
                [sys.executable, "-m", "vcamswap.outputs.viewer", f"http://127.0.0.1:{stream.port}/stream.mjpg"],
                stdin=subprocess.DEVNULL,
            )
        except OSError as e:
            stream.close()
            log.warning("preview: cannot start the viewer: %s", e)
            return False
        with self._lock:
            self._stream, self._viewer = stream, viewer
        return True

    def close(self) -> None:
        with self._lock:
            viewer, stream = self._viewer, self._stream
            self._viewer = self._stream = None
        if viewer is not None:
            if viewer.poll() is None:
                viewer.terminate()
            try:
                viewer.wait(timeout=5)
            except subprocess.TimeoutExpired:
                viewer.kill()
                viewer.wait()
        if stream is not None:
            stream.close()


@dataclass
class _Health:
    """Written by the loop thread, read by the monitor and the socket; single values, no lock needed."""

    last_frame_t: float = 0.0
    frames_without_face: int = 0
    loop_error: str | None = None
    loop_error_t: float = 0.0
    waiting_for_camera: str | None = None


class Daemon:
    def __init__(
        self,
        settings: Settings,
        settings_file: SettingsFile | None = None,
        *,
        address: str | None = None,
        use_tray: bool = True,
        use_hotkeys: bool = True,
        capture_factory: CaptureFactory = default_capture,
        emit: Callable[[str], None] = print,
    ) -> None:
        self.settings = settings
        self.settings_file = settings_file
        self.use_tray = use_tray
        self.use_hotkeys = use_hotkeys
        self.capture_factory = capture_factory
        self.emit = emit
        self.controls = Controls(ControlState(swap_enabled=settings.swap, preset=settings.preset))
        self.server = ControlServer(self.handle, address)
        self.started = time.monotonic()
        self.health = _Health()
        self.pipeline: Pipeline | None = None
        self.capture: Capture | None = None
        self.sinks: SinkSet | None = None
        self.preview: PreviewToggle | None = None
        self.tray: Tray | None = None
        self.hotkeys: Any = None
        self.hotkey_problems: list[str] = []
        self._pending: dict[str, object] = {}
        self._pending_lock = threading.Lock()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._ready = threading.Event()
        self._waiting_frame: np.ndarray | None = None

    # -- life cycle ------------------------------------------------------------------------------------

    def run(self) -> int:
        """Runs until stopped (tray Quit, `vcamswap stop`, SIGTERM/SIGINT); the exit status."""
        from vcamswap.capture.source import CaptureError
        from vcamswap.faces.library import FaceError
        from vcamswap.outputs.sinkset import OutputUnavailable

        register_vcam_backend_from_env()
        try:
            self.server.start()
        except DaemonRunning as e:
            return _fail(str(e), 1)
        except (IpcError, OSError) as e:
            return _fail(f"cannot create the control socket: {e}", 2)
        try:
            self._install_signals()
            try:
                self._build()
            except (ValueError, FaceError, CaptureError, OutputUnavailable) as e:
                return _fail(str(e), 2)
            except Exception as e:  # EngineUnavailable and model errors: one line, not a traceback
                return _fail(f"{type(e).__name__}: {e}", 2)
            self._start_threads()
            self._main_thread()
        finally:
            self._shutdown()
        return 0

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.controls.stop())
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, lambda *_: self.controls.stop())

    def _build(self) -> None:
        from vcamswap.live.build import build_pipeline, initial_face
        from vcamswap.faces.library import FaceError
        from vcamswap.outputs.sinkset import SinkSet, parse_output

        s = self.settings
        if s.input:  # a file or URL that cannot be opened is an error now; a camera is waited for
            self.capture = self.capture_factory(s)
        outputs = [o for o in s.output if o.strip().lower() != "preview"]
        sinks: list[Any] = [
            parse_output(o, vcam_backend=s.vcam_backend, vcam_device=s.vcam_device) for o in outputs
        ]
        self.preview = PreviewToggle(self.controls)
        sinks.append(self.preview)
        self.sinks = SinkSet(sinks)
        if len(outputs) != len(s.output):
            self.controls.set_preview(True)
        self.pipeline = build_pipeline(s, self.controls)
        library = self.pipeline.library
        try:
            face = initial_face(s, library, used_demo=False)
        except FaceError as e:
            log.warning("%s; starting with the first face of the folder", e)
            s.face = None
            face = initial_face(s, library, used_demo=False)
        self.controls.set_faces(library.names())
        if face is not None:
            self.controls.set_face(face)
        self.controls.subscribe(self._on_change)

    def _start_threads(self) -> None:
        self._spawn("vcamswap-loop", self._loop_worker)
        self._spawn("vcamswap-monitor", self._monitor)
        if self.use_hotkeys:
            self._start_hotkeys()
        else:
            log.info("global hotkeys off (--no-hotkeys)")

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def _main_thread(self) -> None:
        from vcamswap.daemon.tray import Tray, TrayUnavailable

        if self.use_tray:
            try:
                self.tray = Tray(self.controls, self.open_faces_folder)
            except TrayUnavailable as e:
                log.info("no tray icon: %s; running without one (use 'vcamswap status', 'toggle', 'stop')", e)
            else:
                if not self.tray.has_menu:
                    log.info("the tray icon has no menu with pystray's %s backend; clicking it toggles the "
                             "swap (install PyGObject and GTK 3 for the menu)", self.tray.backend)
                try:
                    self.tray.run(on_ready=self._tray_ready)
                    return
                except Exception as e:  # the display went away, the backend failed at run time
                    log.warning("the tray icon stopped: %s; running without it", e)
                    self.tray = None
        self.controls.wait_stopped()

    def _tray_ready(self) -> None:
        assert self.tray is not None
        log.info("tray icon ready (%s)", self.tray.backend)
        self._wake.set()

    def _shutdown(self) -> None:
        self.controls.stop()
        self._wake.set()
        for t in self._threads:
            t.join(timeout=10)
        if self.hotkeys is not None:
            self.hotkeys.stop()
        if self.capture is not None:
            self.capture.stop()
        if self.sinks is not None:
            self.sinks.close()
        self._save_pending()
        self.server.close()

    # -- hotkeys -----------------------------------------------------------------------------------------

    def _start_hotkeys(self) -> None:
        from vcamswap.daemon.hotkeys import HotkeyAction, Hotkeys, HotkeysUnavailable

        c = self.controls
        actions = {
            "toggle": HotkeyAction(c.toggle),
            "next_face": HotkeyAction(lambda: c.next_face(1)),
            "prev_face": HotkeyAction(lambda: c.next_face(-1)),
            "cycle_quality": HotkeyAction(c.cycle_preset),
            "bypass": HotkeyAction(lambda: c.set_bypass(True), lambda: c.set_bypass(False)),
        }
        hk = Hotkeys(self.settings.hotkeys, actions)
        try:
            combos = hk.start()
        except HotkeysUnavailable as e:
            log.info("%s; running without them", e)
            return
        if not hk.wait_ready(5.0):
            log.warning("global hotkeys did not start listening; running without them")
            hk.stop()
            return
        self.hotkeys = hk
        self.hotkey_problems = hk.problems
        if combos:
            log.info("hotkeys: %s", ", ".join(f"{x.name} {x.text}" for x in combos))

    # -- the loop thread ---------------------------------------------------------------------------------

    def _loop_worker(self) -> None:
        from vcamswap.live.loop import LiveLoop

        capture = self._open_capture()
        if capture is None:
            return
        assert self.pipeline is not None and self.sinks is not None
        info = capture.info
        log.info(
            "source: %s %s %dx%d @ %.1f fps; engine %s; face %s; outputs %s",
            info.kind, info.name, info.width, info.height, info.fps, self.pipeline.engine.name,
            self.controls.snapshot().face or "none", ", ".join(self.settings.output),
        )
        self.sinks.open(info.width, info.height, info.fps)
        capture.start()
        loop = LiveLoop(
            capture, self.pipeline, self.sinks, self.controls,
            stats_every=5.0 if self.settings.stats else 0.0, emit=self.emit, on_frame=self._on_frame,
        )
        self._ready.set()
        self._run_loop(loop, info.name)

    def _run_loop(self, loop: LiveLoop, source: str) -> None:
        while self.controls.snapshot().running:
            try:
                result = loop.run()
            except Exception as e:  # one bad frame must not end the stream
                first = self.health.loop_error is None
                self.health.loop_error, self.health.loop_error_t = f"{type(e).__name__}: {e}", time.monotonic()
                if first:
                    log.exception("the live loop failed; restarting it")
                else:
                    log.warning("the live loop failed again: %s; restarting it", self.health.loop_error)
                if self.controls.wait_stopped(1.0):
                    break
                continue
            if result.reason == "ended":
                log.warning("the source %s ended; stopping", source)
                self.controls.stop()
            break

    def _open_capture(self) -> Capture | None:
        """The source; a missing camera is waited for while the outputs show a banner."""
        from vcamswap.capture.source import CaptureError

        if self.capture is not None:
            return self.capture
        said = False
        while self.controls.snapshot().running:
            try:
                self.capture = self.capture_factory(self.settings)
                self.health.waiting_for_camera = None
                return self.capture
            except CaptureError as e:
                self.health.waiting_for_camera = str(e)
                if not said:
                    log.warning("%s; waiting for it (the virtual camera shows a notice meanwhile)", e)
                    said = True
            # Apps watching the virtual camera need a steady stream, not one frame per retry.
            retry_at = time.monotonic() + CAMERA_RETRY_S
            while time.monotonic() < retry_at:
                self._publish_waiting()
                if self.controls.wait_stopped(1.0 / WAITING_FPS):
                    return None
        return None

    def _publish_waiting(self) -> None:
        import numpy as np

        from vcamswap.live.pipeline import banner

        assert self.sinks is not None
        s = self.settings
        if self._waiting_frame is None:
            self._waiting_frame = banner(np.full((s.height, s.width, 3), 40, np.uint8), "no camera - waiting for it")
            self.sinks.open(s.width, s.height, s.fps)
        self.sinks.send(self._waiting_frame)

    def _on_frame(self, frame: Frame, result: FrameResult) -> None:
        h = self.health
        h.last_frame_t = time.monotonic()
        if result.face is not None or not self.controls.snapshot().swapping:
            h.frames_without_face = 0  # the tracker only looks for faces while swapping
        else:
            h.frames_without_face += 1

    # -- monitor: faces folder, tray view, settings ------------------------------------------------------

    def _monitor(self) -> None:
        next_faces = 0.0
        while self.controls.snapshot().running:
            now = time.monotonic()
            if now >= next_faces:
                self._rescan_faces()
                next_faces = now + FACES_POLL_S
            if self.tray is not None:
                self.tray.show(self.tray_view())
            self._save_pending()
            self._wake.wait(MONITOR_PERIOD_S)
            self._wake.clear()

    def _rescan_faces(self) -> None:
        if self.pipeline is None:
            return
        try:
            names = tuple(self.pipeline.library.names())
        except OSError as e:
            log.debug("faces folder: %s", e)
            return
        if names != self.controls.snapshot().faces:
            old = self.controls.snapshot().face
            new = self.controls.set_faces(names).face
            if old != new and old is not None:
                log.info("face %s is gone; now using %s", old, new or "none")

    def _on_change(self, old: ControlState, new: ControlState) -> None:
        changed: dict[str, object] = {}
        if old.face != new.face and new.face is not None:
            changed["face"] = new.face
        if old.preset != new.preset:
            changed["preset"] = new.preset
        if old.swap_enabled != new.swap_enabled:
            changed["swap"] = new.swap_enabled
        if changed:
            with self._pending_lock:
                self._pending.update(changed)
            self._wake.set()

    def _save_pending(self) -> None:
        with self._pending_lock:
            pending, self._pending = self._pending, {}
        if not pending or self.settings_file is None:
            return
        face = pending.get("face")
        if face is not None and self.pipeline is not None:
            from vcamswap.faces.library import list_faces

            # Only a face of the folder is saved: a photo given by path (or the demo) may not be there next time.
            if face not in {e.name for e in list_faces(self.pipeline.library.folder)}:
                del pending["face"]
        self.settings_file.save_changes(pending)

    def open_faces_folder(self) -> None:
        from vcamswap.daemon.tray import open_folder

        open_folder(self.settings.faces_dir())

    # -- status ------------------------------------------------------------------------------------------

    def state(self) -> tuple[str, str | None]:
        """(state, detail): starting | swapping | off | no-face | paused | error."""
        snap = self.controls.snapshot()
        h = self.health
        if h.waiting_for_camera:
            return "error", "no camera: " + h.waiting_for_camera
        if not self._ready.is_set() or not h.last_frame_t:
            return "starting", None
        if h.loop_error and time.monotonic() - h.loop_error_t < 10.0:
            return "error", h.loop_error
        if snap.paused:
            return "paused", None
        cap = self.capture
        if cap is not None and cap.status == "lost":
            return "error", "camera lost; reconnecting"
        if self.sinks is not None:
            states = [x for x in self.sinks.states() if x.name != PreviewToggle.name]
            if states and not any(x.live for x in states):
                return "error", f"no output is working: {states[0].error}"
        if not snap.swap_enabled:
            return "off", None
        if snap.bypass:
            return "off", "bypass held"
        if snap.face is None:
            return "error", "no source face: add one with 'vcamswap faces add IMAGE'"
        if h.frames_without_face >= NO_FACE_FRAMES:
            if self.pipeline is not None and self.pipeline.library.get(snap.face) is None:
                return "error", f"source face {snap.face!r} is unreadable or shows no face"
            return "no-face", "no face in the picture"
        return "swapping", None

    def fps(self) -> float:
        if self.pipeline is None or time.monotonic() - self.health.last_frame_t > 2.0:
            return 0.0
        return self.pipeline.stats.snapshot().fps

    def tray_view(self) -> TrayView:
        from vcamswap.daemon.tray import TrayView

        state, detail = self.state()
        snap = self.controls.snapshot()
        return TrayView(state, self.fps(), snap.face, snap.preset, detail)

    def status(self) -> Reply:
        snap = self.controls.snapshot()
        state, detail = self.state()
        reply: Reply = {
            "ok": True,
            "pid": os.getpid(),
            "version": __version__,
            "uptime_s": round(time.monotonic() - self.started, 1),
            "state": state,
            "detail": detail,
            **_controls_dict(snap),
            "faces": list(snap.faces),
            "bypass": snap.bypass,
            "preview": snap.preview,
            "tray": self.tray.backend if self.tray is not None else None,
            "hotkeys": self.hotkeys is not None and self.hotkeys.running,
            "hotkey_problems": self.hotkey_problems,
        }
        if self.pipeline is not None:
            stats = self.pipeline.stats.snapshot().as_dict()
            stats["fps"] = round(self.fps(), 2)
            reply.update(stats)
            reply["engine"] = self.pipeline.engine.name
        if self.sinks is not None:
            outs = [x for x in self.sinks.states() if x.name != PreviewToggle.name]
            reply["outputs"] = [{"name": x.name, "live": x.live, "error": x.error} for x in outs]
            reply["outputs_live"] = [x.name for x in outs if x.live]
        cap = self.capture
        if cap is not None:
            i = cap.info
            reply["camera"] = {
                "status": cap.status, "kind": i.kind, "source": i.name, "width": i.width, "height": i.height,
                "fps": round(i.fps, 2), "error": cap.last_error,
            }
        else:
            reply["camera"] = {"status": "waiting" if self.health.waiting_for_camera else "opening",
                               "error": self.health.waiting_for_camera}
        return reply

    # -- control socket ----------------------------------------------------------------------------------

    def handle(self, req: Request) -> Reply:
        cmd = req["cmd"]
        arg = req.get("arg")
        if cmd == "ping":
            return {"ok": True, "pid": os.getpid(), "version": __version__}
        if cmd == "status":
            return self.status()
        c = self.controls
        if cmd == "stop":
            c.stop()
            return {"ok": True, "pid": os.getpid(), "stopping": True}
        if not self._built():
            return error_reply("the daemon is still starting; try again in a moment")
        if arg is not None and not isinstance(arg, str):
            return error_reply(f"'{cmd}': the argument must be a string")
        try:
            if cmd == "toggle":
                snap = c.toggle()
            elif cmd == "swap":
                snap = c.set_swap(_on_off(arg))
            elif cmd == "face":
                snap = self._face(arg)
            elif cmd == "preset":
                snap = c.set_preset(arg or "")
            elif cmd in ("pause", "resume"):
                snap = c.set_paused(cmd == "pause")
            elif cmd == "preview":
                snap = c.set_preview(_on_off(arg))
            else:
                return error_reply(
                    f"unknown command {cmd!r}; known: status, toggle, swap, face, preset, pause, resume, preview, stop"
                )
        except ValueError as e:
            return error_reply(str(e))
        return {"ok": True, **_controls_dict(snap)}

    def _built(self) -> bool:
        return self.pipeline is not None

    def _face(self, arg: str | None) -> ControlState:
        c = self.controls
        if not arg:
            raise ValueError("face: say next, prev or a face name")
        if arg == "next":
            return c.next_face(1)
        if arg in ("prev", "previous"):
            return c.next_face(-1)
        self._rescan_faces()  # a photo added a moment ago
        return c.set_face(arg)


def _controls_dict(s: ControlState) -> dict[str, object]:
    return {"swap": s.swap_enabled, "face": s.face, "preset": s.preset, "paused": s.paused}


def _on_off(arg: str | None) -> bool:
    if arg in ("on", "true", "1"):
        return True
    if arg in ("off", "false", "0"):
        return False
    raise ValueError(f"expected on or off, got {arg!r}")


def _fail(message: str, code: int) -> int:
    print(f"vcamswap: error: {message}", file=sys.stderr, flush=True)
    return code


# ---------------------------------------------------------------------------------------------------------
# CLI


def settings_for_daemon(args: argparse.Namespace) -> tuple[Settings, SettingsFile]:
    from vcamswap.cli import apply_args

    path: Path = getattr(args, "settings", None) or settings_path()
    settings, problem = load_settings(path)
    if problem:
        log.warning("%s; changes made while running are not saved to it", problem)
    return apply_args(settings, args), SettingsFile(path, announced=problem is not None)


def cmd_daemon(args: argparse.Namespace) -> int:
    settings, settings_file = settings_for_daemon(args)
    daemon = Daemon(settings, settings_file, use_tray=not args.no_tray, use_hotkeys=not args.no_hotkeys)
    return daemon.run()


def register(sub: argparse._SubParsersAction) -> None:
    from vcamswap.daemon import checks as daemon_checks
    from vcamswap.cli import add_run_options

    daemon_checks.install()  # tray, hotkeys, daemon and start-up lines in `vcamswap doctor`

    p = sub.add_parser(
        "daemon", help="run in the background with a tray icon, global hotkeys and a control socket"
    )
    add_run_options(p)
    p.add_argument("--no-tray", action="store_true", help="no tray icon")
    p.add_argument("--no-hotkeys", action="store_true", help="no global hotkeys")
    p.set_defaults(func=cmd_daemon)
