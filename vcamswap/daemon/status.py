"""What the daemon reports: its state in one word, the tray's view, and `vcamswap status`'s reply."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from vcamswap import __version__
from vcamswap.daemon import integrations
from vcamswap.daemon.commands import controls_dict
from vcamswap.daemon.protocol import Reply

if TYPE_CHECKING:
    from vcamswap.daemon.app import Daemon
    from vcamswap.daemon.tray import TrayView
    from vcamswap.engines.remote.health import RemoteHealth

NO_FACE_FRAMES = 10  # this many frames in a row without a face -> "no face found"
PREVIEW = "preview"  # the preview window's output: shown in the tray, not among the outputs


def state(d: Daemon) -> tuple[str, str | None]:
    """(state, detail): starting | swapping | off | no-face | paused | error."""
    snap = d.controls.snapshot()
    h = d.health
    if h.waiting_for_camera:
        return "error", "no camera: " + h.waiting_for_camera
    if not d.ready.is_set() or not h.last_frame_t:
        return "starting", None
    if h.loop_error and time.monotonic() - h.loop_error_t < 10.0:
        return "error", h.loop_error
    if snap.paused:
        return "paused", None
    cap = d.capture
    if cap is not None and cap.status == "lost":
        return "error", "camera lost; reconnecting"
    if d.sinks is not None:
        states = [x for x in d.sinks.states() if x.name != PREVIEW]
        if states and not any(x.live for x in states):
            return "error", f"no output is working: {states[0].error}"
    if not snap.swap_enabled:
        return "off", None
    if snap.bypass:
        return "off", "bypass held"
    if snap.face is None:
        return "error", "no source face: add one with 'vcamswap faces add IMAGE'"
    if h.frames_without_face >= NO_FACE_FRAMES:
        if d.stages is not None and not d.stages.sources.usable(snap.face):
            return "error", f"source face {snap.face!r} is unreadable or shows no face"
        return "no-face", "no face in the picture"
    return "swapping", None

def fps(d: Daemon) -> float:
    if d.stats is None or time.monotonic() - d.health.last_frame_t > 2.0:
        return 0.0
    return d.stats.snapshot().fps

def remote(d: Daemon) -> RemoteHealth | None:
    """The swap server's health when the engine is remote (from the engine's fields, no network)."""
    if d.stages is None:
        return None
    # the engines package (numpy) loads with the pipeline, not with the CLI that registers the daemon
    from vcamswap.engines.remote.health import remote_health

    return remote_health(d.stages.pipeline.engine)

def tray_view(d: Daemon) -> TrayView:
    # the tray loads PIL
    from vcamswap.daemon.tray import TrayView

    word, detail = state(d)
    snap = d.controls.snapshot()
    server = remote(d)
    return TrayView(word, fps(d), snap.face, snap.preset, detail,
                    server.line() if server else None, server.short() if server else None)

def status(d: Daemon) -> Reply:
    snap = d.controls.snapshot()
    word, detail = state(d)
    reply: Reply = {
        "ok": True,
        "pid": os.getpid(),
        "version": __version__,
        "uptime_s": round(time.monotonic() - d.started, 1),
        "state": word,
        "detail": detail,
        **controls_dict(snap),
        "faces": list(snap.faces),
        "bypass": snap.bypass,
        "preview": snap.preview,
        "tray": d.tray.backend if d.tray is not None else None,
        "hotkeys": d.hotkeys is not None and d.hotkeys.running,
        "hotkeys_backend": d.hotkeys_backend,
        "hotkey_problems": d.hotkey_problems,
        "audio_sync": integrations.audio_status(d),
        "panel_url": d.panel.url if d.panel is not None else None,  # `vcamswap panel` opens it
    }
    if d.stages is not None and d.stats is not None:
        stats = d.stats.snapshot().as_dict()
        stats["fps"] = round(fps(d), 2)
        reply.update(stats)
        reply["engine"] = d.stages.pipeline.engine.name
        server = remote(d)
        if server is not None:
            reply["remote"] = server.as_dict()
    if d.sinks is not None:
        outs = [x for x in d.sinks.states() if x.name != PREVIEW]
        urls = {x.name: u for x in d.sinks if isinstance(u := getattr(x, "url", None), str)}
        reply["outputs"] = [{"name": x.name, "live": x.live, "error": x.error, **(
            {"url": urls[x.name]} if x.name in urls else {})} for x in outs]
        if urls:
            reply["preview_url"] = next(iter(urls.values()))
        reply["outputs_live"] = [x.name for x in outs if x.live]
    cap = d.capture
    if cap is not None:
        i = cap.info
        reply["camera"] = {
            "status": cap.status, "kind": i.kind, "source": i.name, "width": i.width, "height": i.height,
            "fps": round(i.fps, 2), "error": cap.last_error,
        }
    else:
        reply["camera"] = {"status": "waiting" if d.health.waiting_for_camera else "opening",
                           "error": d.health.waiting_for_camera}
    return reply
