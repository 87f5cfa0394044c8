"""The daemon's desktop integrations that start beside the live loop: global hotkeys (pynput, or the
desktop portal on Wayland) and Swap Mic. The portal and Swap Mic start in a thread of their own (the desktop
may show a dialog, the sound server may be slow); none stops the daemon when it cannot work here: it says so
once."""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from vcamswap.daemon import commands
from vcamswap.daemon.audio_sync import AudioSync, AudioSyncUnavailable, parse_audio_sync
from vcamswap.daemon.hotkeys import HotkeyAction, Hotkeys, HotkeysUnavailable
from vcamswap.daemon.portal import BIND_HINT, PortalShortcuts, ShortcutsUnavailable, is_wayland_session

if TYPE_CHECKING:
    from vcamswap.daemon.app import Daemon
    from vcamswap.daemon.hotkeys import HotkeyAction

log = logging.getLogger("vcamswap.daemon")


def start_hotkeys(d: Daemon) -> None:
    c = d.controls
    actions = {
        name: HotkeyAction(commands.bind(c, name))
        for name in ("toggle", "next_face", "prev_face", "cycle_quality")
    }
    actions["bypass"] = HotkeyAction(commands.bind(c, "bypass", "on"), commands.bind(c, "bypass", "off"))
    if is_wayland_session():  # pynput would only hear XWayland windows; the desktop may show a dialog
        start_portal_shortcuts(d, actions)
        return
    hk = Hotkeys(d.settings.hotkeys, actions)
    try:
        combos = hk.start()
    except HotkeysUnavailable as e:
        log.info("%s; running without them", e)
        return
    if not hk.wait_ready(5.0):
        log.warning("global hotkeys did not start listening; running without them")
        hk.stop()
        return
    d.hotkeys, d.hotkeys_backend = hk, "pynput"
    d.hotkey_problems = hk.problems
    if combos:
        log.info("hotkeys: %s", ", ".join(f"{x.name} {x.text}" for x in combos))


def start_portal_shortcuts(d: Daemon, actions: dict[str, HotkeyAction]) -> None:
    threading.Thread(target=_portal_shortcuts, args=(d, actions), name="vcamswap-portal-start", daemon=True).start()


def _portal_shortcuts(d: Daemon, actions: dict[str, HotkeyAction]) -> None:
    ps = PortalShortcuts(d.settings.hotkeys, actions)
    try:
        ps.start()
    except ShortcutsUnavailable as e:
        log.info("global hotkeys: %s; %s", e, BIND_HINT)
        return
    if not d.controls.snapshot().running:
        ps.stop()
        return
    d.hotkeys, d.hotkeys_backend, d.hotkey_problems = ps, "portal", ps.problems
    log.info("hotkeys (desktop portal): %s", ps.describe() or "none bound")


def start_audio_sync(d: Daemon) -> None:
    threading.Thread(target=_audio_sync, args=(d,), name="vcamswap-audio-start", daemon=True).start()


def _audio_sync(d: Daemon) -> None:
    mode = parse_audio_sync(d.settings.audio_sync)
    if not sys.platform.startswith("linux"):
        if mode not in ("auto", "off"):
            log.warning("Swap Mic (--audio-sync) needs PulseAudio or PipeWire on Linux; not here")
        return
    audio = AudioSync(mode, lambda: _latency(d))
    try:
        audio.start()
    except AudioSyncUnavailable as e:
        d.audio_problem = str(e)
        (log.info if mode == "auto" else log.warning)("no Swap Mic: %s; the microphone goes to the call undelayed", e)
        return
    if not d.controls.snapshot().running:
        audio.stop()
        return
    d.audio = audio
    if mode != "off":
        log.info("Swap Mic: %s delayed by %d ms (%s)", audio.mic.mic, audio.mic.delay_ms,
                 "following the video" if mode == "auto" else "fixed")


def _latency(d: Daemon) -> tuple[float, float] | None:
    """(capture -> publish ms, output fps) while frames flow."""
    if d.stats is None or time.monotonic() - d.health.last_frame_t > 2.0:
        return None
    snap = d.stats.snapshot()
    return snap.latency_ms, snap.fps or d.settings.fps


def audio_status(d: Daemon) -> dict[str, Any]:
    if d.audio is not None:
        return dict(d.audio.status())
    return {"mode": d.settings.audio_sync, "delay_ms": None, "error": d.audio_problem}


def check_options(settings: Any) -> None:
    """ValueError (one line) for a label or an audio-sync value that cannot work."""
    # the label's font loads cv2
    from vcamswap.compose.label import check_label

    check_label(settings.label)
    parse_audio_sync(settings.audio_sync)
