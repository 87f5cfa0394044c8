"""`vcamswap daemon`: the live loop in a worker thread, the tray on the main thread, hotkeys in pynput's
thread, the control socket in its own; all of them act on one Controls object, read once per frame.

It keeps publishing whatever happens: a camera that is missing at start is waited for (with a banner on
the virtual camera), one lost mid-stream is retried by the capture, an output that fails is retried by the
SinkSet, a face photo deleted in use is replaced by the next one, a photo that cannot be used is never
offered, a frame that fails in the pipeline is passed through as it is, and anything else that escapes
restarts the loop rather than the process.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from vcamswap.console import fail
from vcamswap.control.ipc import ControlServer
from vcamswap.control.protocol import DaemonRunning, IpcError, Reply, Request
from vcamswap.controls import Controls, initial_state
from vcamswap.daemon import status
from vcamswap.daemon.desktop.portal import is_wayland_session
from vcamswap.daemon.desktop.start import (
    check_options,
    hotkey_actions,
    start_hotkeys,
    start_portal_shortcuts,
    start_swap_mic,
)
from vcamswap.daemon.handler import Handler
from vcamswap.daemon.monitor import Monitor
from vcamswap.daemon.state import DaemonState
from vcamswap.panel.link import FrameTap, PanelLink
from vcamswap.settings import Settings, SettingsFile

# The heavy modules (OpenCV, the models, GUI toolkits) load in Daemon.run(), so that registering the
# `daemon` command costs nothing to `vcamswap status` and friends.
if TYPE_CHECKING:
    import numpy as np

    from vcamswap.capture.source import Capture
    from vcamswap.live.loop import LiveLoop
    from vcamswap.live.pipeline import FrameResult
    from vcamswap.outputs.still import StillPublisher
    from vcamswap.types import Frame

log = logging.getLogger("vcamswap.daemon")
SIGNAL_POLL_S = 0.5  # how soon a stop asked by a signal is seen at the latest

CAMERA_RETRY_S = 3.0
WAITING_FPS = 5.0  # notice frames per second while no camera is there

CaptureFactory = Callable[[Settings], "Capture"]


def default_capture(settings: Settings) -> Capture:
    """The camera or input of the settings. Never the demo clip: a daemon waits for the real camera."""
    # the pipeline (cv2, onnxruntime) loads when the daemon starts, not with the CLI
    from vcamswap.live.build import open_capture

    return open_capture(settings, realtime=True, allow_demo=False)[0]


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
        self.use_tray = use_tray
        self.use_hotkeys = use_hotkeys
        self.capture_factory = capture_factory
        self.emit = emit
        self.controls = Controls(initial_state(settings))
        self.st = DaemonState(settings, self.controls, settings_file)  # what runs: this class alone writes it
        self.server = ControlServer(self.handle, address)
        self.monitor = Monitor(self.st)
        self._handler = Handler(self.st, self.monitor)
        self._threads: list[threading.Thread] = []
        self._waiting: tuple[StillPublisher, np.ndarray] | None = None  # the notice while no camera is there
        self.frames = FrameTap()  # the newest camera and published pictures, for the control panel

    # -- life cycle ------------------------------------------------------------------------------------

    def run(self) -> int:
        """Runs until stopped (tray Quit, `vcamswap stop`, SIGTERM/SIGINT); the exit status."""
        # cv2 and the outputs load when the daemon runs, not with the CLI that registers it
        from vcamswap.capture.source import CaptureError
        from vcamswap.faces.library import FaceError
        from vcamswap.outputs.base import OutputUnavailable
        from vcamswap.outputs.vcam import register_backend_from_env

        register_backend_from_env()
        try:
            self.server.start()
        except DaemonRunning as e:
            return fail(str(e), 1)
        except (IpcError, OSError) as e:
            return fail(f"cannot create the control socket: {e}", 2)
        try:
            self._install_signals()
            try:
                self._build()
            except (ValueError, FaceError, CaptureError, OutputUnavailable) as e:
                return fail(str(e), 2)
            except Exception as e:  # EngineUnavailable and model errors: one line, not a traceback
                return fail(f"{type(e).__name__}: {e}", 2)
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
        # the pipeline (cv2, onnxruntime) loads when the daemon starts, not with the CLI
        from vcamswap.live.build import build_run, build_sinks
        from vcamswap.live.stats import Stats
        from vcamswap.live.switch import EngineSwitch
        from vcamswap.outputs.preview import PreviewSink

        s, st = self.settings, self.st
        check_options(s)
        if s.input:  # a file or URL that cannot be opened is an error now; a camera is waited for
            st.capture = self.capture_factory(s)
        # The "preview" output is the daemon's own window, shown and hidden from the tray.
        outputs = [o for o in s.output if o.strip().lower() != "preview"]
        st.preview = PreviewSink(lambda: self.controls.snapshot().preview)
        # crash_safe: a daemon may be killed mid-recording; what it recorded must stay readable.
        st.sinks = build_sinks(s, outputs, extra=[st.preview], crash_safe=True)
        if len(outputs) != len(s.output):
            self.controls.set_preview(True)
        st.stats = Stats()
        st.stages = build_run(s, self.controls, face_fallback=True)
        st.switch = EngineSwitch(s, self.controls, st.stages)  # an engine asked for while running
        self.controls.subscribe(self.monitor.on_change)

    def _start_threads(self) -> None:
        from vcamswap.panel.server import doctor_lines, start_panel  # uvicorn and Starlette load with the daemon

        self.st.panel = start_panel(PanelLink(
            self.controls, self.handle, self.frames, lambda: self.st.stages.library if self.st.stages else None,
            self.settings.faces_dir(), self.monitor.rescan_faces,
            lambda: doctor_lines(self.settings, self.st.settings_file.path if self.st.settings_file else None),
            self.settings.models_dir()))
        self._spawn("vcamswap-loop", self._loop_worker)
        self._spawn("vcamswap-monitor", self.monitor.run)
        self._start_desktop()

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def _start_desktop(self) -> None:
        """Swap Mic and the portal start in a thread of their own (the sound server may be slow, the desktop
        may show a dialog); pynput's hotkeys here, once they listen."""
        st, running = self.st, self._running

        def swap_mic() -> None:
            st.swap_mic = start_swap_mic(self.settings, lambda: status.latency(st), running)

        self._background("vcamswap-audio-start", swap_mic)
        if not self.use_hotkeys:
            log.info("global hotkeys off (--no-hotkeys)")
            return
        actions = hotkey_actions(self.controls)
        if not is_wayland_session():
            st.hotkeys = start_hotkeys(self.settings, actions)
            return

        def portal() -> None:  # pynput would only hear XWayland windows there
            st.hotkeys = start_portal_shortcuts(self.settings, actions, running)

        self._background("vcamswap-portal-start", portal)

    def _background(self, name: str, target: Callable[[], None]) -> None:
        """A thread that is not waited for at shutdown: what it starts is stopped there once it is kept."""
        threading.Thread(target=target, name=name, daemon=True).start()

    def _running(self) -> bool:
        return self.controls.snapshot().running

    def _main_thread(self) -> None:
        # the tray loads PIL (and pystray when shown)
        from vcamswap.daemon.desktop.tray import Tray, TrayUnavailable

        if self.use_tray:
            try:
                self.st.tray = Tray(self.controls, self.open_faces_folder,
                                    preview_url=self.preview_url if self.preview_url() else None,
                                    panel_url=self._panel_url if self.st.panel else None)
            except TrayUnavailable as e:
                log.info("no tray icon: %s; running without one (use 'vcamswap status', 'toggle', 'stop')", e)
            else:
                if not self.st.tray.has_menu:
                    log.info("the tray icon has no menu with pystray's %s backend; clicking it toggles the "
                             "swap (install PyGObject and GTK 3 for the menu)", self.st.tray.backend)
                try:
                    self.st.tray.run(on_ready=self._tray_ready)
                    return
                except Exception as e:  # the display went away, the backend failed at run time
                    log.warning("the tray icon stopped: %s; running without it", e)
                    self.st.tray = None
        # Never one endless wait: a signal whose C handler runs just before the main thread blocks (or in
        # another thread) would leave its Python handler, and so SIGTERM, pending for ever. Each timeout gives
        # the interpreter the chance to run it.
        while not self.controls.wait_stopped(SIGNAL_POLL_S):
            pass

    def _tray_ready(self) -> None:
        assert self.st.tray is not None
        log.info("tray icon ready (%s)", self.st.tray.backend)
        self.monitor.wake()

    def _shutdown(self) -> None:
        self.controls.stop()
        self.monitor.wake()
        for t in self._threads:
            t.join(timeout=10)
        st = self.st
        if st.hotkeys is not None:
            st.hotkeys.keys.stop()
        if st.swap_mic is not None and st.swap_mic.audio is not None:
            st.swap_mic.audio.stop()
        if st.capture is not None:
            st.capture.stop()
        if st.sinks is not None:
            st.sinks.close()
        if st.panel is not None:
            st.panel.stop()
        self.monitor.save_pending()
        self.server.close()

    # -- the loop thread ---------------------------------------------------------------------------------

    def _loop_worker(self) -> None:
        # the pipeline (cv2, onnxruntime) loads when the daemon starts, not with the CLI
        from vcamswap.live.build import Live, make_loop, source_line

        capture = self._open_capture()
        if capture is None:
            return
        st = self.st
        assert st.stages is not None and st.sinks is not None
        live = Live(capture, st.stages, self.controls)
        log.info("%s", source_line(live, self.settings.output))
        info = capture.info
        st.sinks.open(info.width, info.height, info.fps)
        capture.start()
        loop = make_loop(live, st.sinks, st.stats, stats_every=5.0 if self.settings.stats else 0.0, emit=self.emit,
                         on_frame=self._on_frame, between_frames=st.switch.apply if st.switch else None)
        st.ready.set()
        self._run_loop(loop, info.name)

    def _run_loop(self, loop: LiveLoop, source: str) -> None:
        while self.controls.snapshot().running:
            try:
                result = loop.run()
            except Exception as e:  # one bad frame must not end the stream
                h = self.st.health
                first = h.loop_error is None
                h.loop_error, h.loop_error_t = f"{type(e).__name__}: {e}", time.monotonic()
                if first:
                    log.exception("the live loop failed; restarting it")
                else:
                    log.warning("the live loop failed again: %s; restarting it", h.loop_error)
                if self.controls.wait_stopped(1.0):
                    break
                continue
            if result.reason == "ended":
                log.warning("the source %s ended; stopping", source)
                self.controls.stop()
            break

    def _open_capture(self) -> Capture | None:
        """The source; a missing camera is waited for while the outputs show a banner."""
        # cv2 loads when the daemon starts, not with the CLI
        from vcamswap.capture.source import CaptureError

        if self.st.capture is not None:
            return self.st.capture
        said = False
        while self.controls.snapshot().running:
            try:
                self.st.capture = self.capture_factory(self.settings)
                self.st.health.waiting_for_camera = None
                return self.st.capture
            except CaptureError as e:
                self.st.health.waiting_for_camera = str(e)
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

        # cv2 loads when the daemon starts, not with the CLI
        from vcamswap.outputs.still import StillPublisher

        assert self.st.sinks is not None
        s = self.settings
        if self._waiting is None:
            self._waiting = (StillPublisher(self.st.sinks), np.full((s.height, s.width, 3), 40, np.uint8))
            self.st.sinks.open(s.width, s.height, s.fps)
        self._waiting[0].publish(self._waiting[1], "no camera - waiting for it")
        self._sync_preview()

    def _sync_preview(self) -> None:
        """The window could not show or the user closed it: untick "Show preview" (the output never does)."""
        if self.st.preview is not None and self.st.preview.dismissed and self.controls.snapshot().preview:
            self.controls.set_preview(False)
            self.st.preview.acknowledge()

    def _on_frame(self, frame: Frame, result: FrameResult) -> None:
        self._sync_preview()
        self.frames.put(frame.image, result.image, result.faces)
        h = self.st.health
        h.last_frame_t = time.monotonic()
        if result.face is not None or not self.controls.snapshot().swapping:
            h.frames_without_face = 0  # the tracker only looks for faces while swapping
        else:
            h.frames_without_face += 1

    # -- for the tray ------------------------------------------------------------------------------------

    def preview_url(self) -> str | None:
        return status.preview_url(self.st)

    def open_faces_folder(self) -> None:
        # the tray loads PIL
        from vcamswap.daemon.desktop.tray import open_folder

        open_folder(self.settings.faces_dir())

    # -- the control socket ------------------------------------------------------------------------------

    def _panel_url(self) -> str | None:
        return self.st.panel.url if self.st.panel is not None else None

    def handle(self, req: Request) -> Reply:
        return self._handler(req)
