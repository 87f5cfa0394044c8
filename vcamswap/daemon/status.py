"""What the daemon reports, read from its state: its state in one word, the tray's view, and `vcamswap status`'s
reply."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, NamedTuple

from vcamswap import __version__
from vcamswap.control.intents import controls_dict
from vcamswap.control.protocol import Reply
from vcamswap.controls import ControlState
from vcamswap.daemon.desktop.start import swap_mic_status
from vcamswap.daemon.state import DaemonState
from vcamswap.modelstore.installed import installed

if TYPE_CHECKING:
    from vcamswap.capture.source import Capture
    from vcamswap.daemon.desktop.tray import TrayView
    from vcamswap.engines.remote.health import RemoteHealth

NO_FACE_FRAMES = 10  # this many frames in a row without a face -> "no face found"
PREVIEW = "preview"  # the preview window's output: shown in the tray, not among the outputs


class Reading(NamedTuple):
    """One read of what other threads change under a reply, so its parts never contradict each other."""

    snap: ControlState
    capture: Capture | None
    camera: str | None  # the capture's status ("ok" | "lost" | "paused" | "ended")
    waiting: str | None  # why no camera opened yet, while it is waited for


def read(st: DaemonState) -> Reading:
    cap = st.capture
    return Reading(st.controls.snapshot(), cap, cap.status if cap is not None else None,
                   st.health.waiting_for_camera if cap is None else None)


def state(st: DaemonState) -> tuple[str, str | None]:
    """(state, detail): starting | swapping | off | no-face | paused | error."""
    return state_of(st, read(st))


def state_of(st: DaemonState, r: Reading) -> tuple[str, str | None]:
    snap = r.snap
    h = st.health
    if r.waiting:
        return "error", "no camera: " + r.waiting
    if not st.ready.is_set() or not h.last_frame_t:
        return "starting", None
    if h.loop_error and time.monotonic() - h.loop_error_t < 10.0:
        return "error", h.loop_error
    if snap.paused:
        return "paused", None
    if r.camera == "lost":
        return "error", "camera lost; reconnecting"
    if st.sinks is not None:
        states = [x for x in st.sinks.states() if x.name != PREVIEW]
        if states and not any(x.live for x in states):
            return "error", f"no output is working: {states[0].error}"
    if not snap.swap_enabled:
        return "off", None
    if snap.bypass:
        return "off", "bypass held"
    if snap.face is None:
        return "error", "no source face: add one with 'vcamswap faces add IMAGE'"
    if h.frames_without_face >= NO_FACE_FRAMES:
        if st.stages is not None and not st.stages.sources.usable(snap.face):
            return "error", f"source face {snap.face!r} is unreadable or shows no face"
        return "no-face", "no face in the picture"
    return "swapping", None

def fps(st: DaemonState) -> float:
    if st.stats is None or time.monotonic() - st.health.last_frame_t > 2.0:
        return 0.0
    return st.stats.snapshot().fps

def latency(st: DaemonState) -> tuple[float, float] | None:
    """(capture -> publish ms, output fps) while frames flow: what Swap Mic follows."""
    if st.stats is None or time.monotonic() - st.health.last_frame_t > 2.0:
        return None
    snap = st.stats.snapshot()
    return snap.latency_ms, snap.fps or st.settings.fps

def preview_url(st: DaemonState) -> str | None:
    """The MJPEG preview output's full URL, token included; None without one."""
    for sink in st.sinks or []:
        url = getattr(sink, "url", None)
        if isinstance(url, str):
            return url
    return None

def remote(st: DaemonState) -> RemoteHealth | None:
    """The swap server's health when the engine is remote (from the engine's fields, no network)."""
    if st.stages is None:
        return None
    # the engines package (numpy) loads with the pipeline, not with the CLI that registers the daemon
    from vcamswap.engines.remote.health import remote_health

    return remote_health(st.stages.pipeline.engine)

def knobs(st: DaemonState) -> dict[str, object]:
    """The compose knobs in force now (the preset's, the settings' over it, the ones chosen while running over
    those), and whether the engine has a pixel boost to choose."""
    from vcamswap.live.loop import knobs_over  # the pipeline loads with the daemon, not with the CLI
    from vcamswap.presets import get_preset

    assert st.stages is not None
    snap = st.controls.snapshot()
    preset = get_preset(snap.preset)
    if st.stages.tune is not None:
        preset = st.stages.tune(preset)
    preset = knobs_over(preset, snap)
    return {"occlusion": preset.occlusion, "enhance": preset.enhance_every, "boost": preset.boost,
            "model": preset.model, "boosts": bool(getattr(st.stages.pipeline.engine, "boosts", False))}


def tray_view(st: DaemonState) -> TrayView:
    # the tray loads PIL
    from vcamswap.daemon.desktop.tray import TrayView

    r = read(st)
    word, detail = state_of(st, r)
    snap = r.snap
    server = remote(st)
    return TrayView(word, fps(st), snap.face, snap.preset, detail,
                    server.line() if server else None, server.short() if server else None)

def status(st: DaemonState) -> Reply:
    r = read(st)  # the capture thread changes these while we answer
    snap, cap = r.snap, r.capture
    word, detail = state_of(st, r)
    reply: Reply = {
        "ok": True,
        "pid": os.getpid(),
        "version": __version__,
        "uptime_s": round(time.monotonic() - st.started, 1),
        "state": word,
        "detail": detail,
        **controls_dict(snap),
        "faces": list(snap.faces),
        "models": list(installed(snap.swap_models)),  # the swap models installed: what `vcamswap model` takes
        "bypass": snap.bypass,
        "preview": snap.preview,
        "tray": st.tray.backend if st.tray is not None else None,
        "hotkeys": st.hotkeys is not None and st.hotkeys.keys.running,
        "hotkeys_backend": st.hotkeys.backend if st.hotkeys is not None else None,
        "hotkey_problems": st.hotkeys.problems if st.hotkeys is not None else [],
        "audio_sync": swap_mic_status(st.swap_mic, st.settings.audio_sync),
        "panel_url": st.panel.url if st.panel is not None else None,  # `vcamswap panel` opens it
    }
    if st.stages is not None and st.stats is not None:
        stats = st.stats.snapshot().as_dict()
        stats["fps"] = round(fps(st), 2)
        reply.update(stats)
        reply["knobs"] = knobs(st)
        server = remote(st)
        if server is not None:
            reply["remote"] = server.as_dict()
    if st.sinks is not None:
        outs = [x for x in st.sinks.states() if x.name != PREVIEW]
        urls = {x.name: u for x in st.sinks if isinstance(u := getattr(x, "url", None), str)}
        reply["outputs"] = [{"name": x.name, "live": x.live, "error": x.error, **(
            {"url": urls[x.name]} if x.name in urls else {})} for x in outs]
        if urls:
            reply["preview_url"] = next(iter(urls.values()))
        reply["outputs_live"] = [x.name for x in outs if x.live]
    if cap is not None:
        i = cap.info
        reply["camera"] = {
            "status": r.camera, "kind": i.kind, "source": i.name, "width": i.width, "height": i.height,
            "fps": round(i.fps, 2), "error": cap.last_error,
        }
    else:
        reply["camera"] = {"status": "waiting" if r.waiting else "opening", "error": r.waiting}
    return reply
