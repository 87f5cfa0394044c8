"""The daemon's runtime state in one record: what the life cycle (daemon/app.py) has built and started, and
the loop's health. app.py alone writes it; the monitor, the status reply and the tray's view read it."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vcamswap.controls import Controls
from vcamswap.settings import Settings, SettingsFile

if TYPE_CHECKING:
    from vcamswap.capture.source import Capture
    from vcamswap.daemon.desktop.start import HotkeysStarted, SwapMicStarted
    from vcamswap.daemon.desktop.tray import Tray
    from vcamswap.live.build import Stages
    from vcamswap.live.stats import Stats
    from vcamswap.live.switch import EngineSwitch
    from vcamswap.outputs.preview import PreviewSink
    from vcamswap.outputs.sinkset import SinkSet
    from vcamswap.panel.server import PanelServer


@dataclass
class Health:
    """Written by the loop thread, read by the monitor and the socket; single values, no lock needed."""

    last_frame_t: float = 0.0
    frames_without_face: int = 0
    loop_error: str | None = None
    loop_error_t: float = 0.0
    waiting_for_camera: str | None = None


@dataclass
class DaemonState:
    """Each part is None until it is there: the socket answers 'starting' before the stages are built, the
    camera may be waited for, the tray, hotkeys and Swap Mic may not work on this desktop. Each field is one
    reference set once by the thread that starts that part, so readers need no lock."""

    settings: Settings
    controls: Controls
    settings_file: SettingsFile | None = None
    started: float = field(default_factory=time.monotonic)
    ready: threading.Event = field(default_factory=threading.Event)  # set once the loop runs
    health: Health = field(default_factory=Health)
    stages: Stages | None = None
    switch: EngineSwitch | None = None  # builds an engine asked for while running, off the loop
    stats: Stats | None = None  # the live loop's figures
    capture: Capture | None = None
    sinks: SinkSet | None = None
    preview: PreviewSink | None = None
    tray: Tray | None = None
    hotkeys: HotkeysStarted | None = None
    swap_mic: SwapMicStarted | None = None
    panel: PanelServer | None = None  # the control panel's server once it listens
