"""The daemon's desktop integrations that start beside the live loop: global hotkeys (pynput, or the
desktop portal on Wayland) and Swap Mic. Each start returns what it started (None when nothing could start
here); none stops the daemon when it cannot work here: it says so once. The daemon runs the portal and Swap
Mic in a thread of their own (the desktop may show a dialog, the sound server may be slow)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any, NamedTuple

from vcamswap.control import intents
from vcamswap.controls import Controls
from vcamswap.daemon.desktop.audio_sync import AudioSync, AudioSyncUnavailable, parse_audio_sync
from vcamswap.daemon.desktop.hotkeys import HotkeyAction, Hotkeys, HotkeysUnavailable
from vcamswap.daemon.desktop.portal import BIND_HINT, PortalShortcuts, ShortcutsUnavailable
from vcamswap.settings import Settings

log = logging.getLogger("vcamswap.daemon")

Latency = Callable[[], tuple[float, float] | None]  # (capture -> publish ms, output fps) while frames flow


class HotkeysStarted(NamedTuple):
    """Global hotkeys that listen."""

    keys: Hotkeys | PortalShortcuts
    backend: str  # "pynput" or "portal"
    problems: list[str]  # one line each, naming the hotkey


class SwapMicStarted(NamedTuple):
    """Swap Mic as it started: the delayed microphone, or why there is none."""

    audio: AudioSync | None = None
    problem: str | None = None


def hotkey_actions(controls: Controls) -> dict[str, HotkeyAction]:
    actions = {
        name: HotkeyAction(intents.bind(controls, name))
        for name in ("toggle", "next_face", "prev_face", "cycle_quality")
    }
    actions["bypass"] = HotkeyAction(intents.bind(controls, "bypass", "on"), intents.bind(controls, "bypass", "off"))
    return actions


def start_hotkeys(settings: Settings, actions: dict[str, HotkeyAction]) -> HotkeysStarted | None:
    """pynput's listener, once it listens."""
    hk = Hotkeys(settings.hotkeys, actions)
    try:
        combos = hk.start()
    except HotkeysUnavailable as e:
        log.info("%s; running without them", e)
        return None
    if not hk.wait_ready(5.0):
        log.warning("global hotkeys did not start listening; running without them")
        hk.stop()
        return None
    if combos:
        log.info("hotkeys: %s", ", ".join(f"{x.name} {x.text}" for x in combos))
    return HotkeysStarted(hk, "pynput", hk.problems)


def start_portal_shortcuts(
    settings: Settings, actions: dict[str, HotkeyAction], running: Callable[[], bool]
) -> HotkeysStarted | None:
    """The desktop portal's shortcuts; stopped again when the daemon stopped meanwhile."""
    ps = PortalShortcuts(settings.hotkeys, actions)
    try:
        ps.start()
    except ShortcutsUnavailable as e:
        log.info("global hotkeys: %s; %s", e, BIND_HINT)
        return None
    if not running():
        ps.stop()
        return None
    log.info("hotkeys (desktop portal): %s", ps.describe() or "none bound")
    return HotkeysStarted(ps, "portal", ps.problems)


def start_swap_mic(settings: Settings, latency: Latency, running: Callable[[], bool]) -> SwapMicStarted | None:
    """Swap Mic following `latency`; None where there is nothing to say (not Linux, or the daemon stopped)."""
    mode = parse_audio_sync(settings.audio_sync)
    if not sys.platform.startswith("linux"):
        if mode not in ("auto", "off"):
            log.warning("Swap Mic (--audio-sync) needs PulseAudio or PipeWire on Linux; not here")
        return None
    audio = AudioSync(mode, latency)
    try:
        audio.start()
    except AudioSyncUnavailable as e:
        (log.info if mode == "auto" else log.warning)("no Swap Mic: %s; the microphone goes to the call undelayed", e)
        return SwapMicStarted(problem=str(e))
    if not running():
        audio.stop()
        return None
    if mode != "off":
        log.info("Swap Mic: %s delayed by %d ms (%s)", audio.mic.mic, audio.mic.delay_ms,
                 "following the video" if mode == "auto" else "fixed")
    return SwapMicStarted(audio)


def swap_mic_status(mic: SwapMicStarted | None, mode: str) -> dict[str, Any]:
    if mic is not None and mic.audio is not None:
        return dict(mic.audio.status())
    return {"mode": mode, "delay_ms": None, "error": mic.problem if mic is not None else None}


def check_options(settings: Any) -> None:
    """ValueError (one line) for a label or an audio-sync value that cannot work."""
    # the label's font loads cv2
    from vcamswap.compose.label import check_label

    check_label(settings.label)
    parse_audio_sync(settings.audio_sync)
