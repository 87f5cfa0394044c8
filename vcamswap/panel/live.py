"""What the panel shows live: the preview's JPEGs, and the control state and health figures as server-sent
events. Nothing is encoded or computed while no panel is open."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import cv2
import numpy as np
from starlette.concurrency import run_in_threadpool

from vcamswap.choices import SWAP_MODELS
from vcamswap.control.intents import SOCKET_COMMANDS
from vcamswap.controls import ControlState
from vcamswap.faces.landmarks import FACE_OVAL
from vcamswap.panel.link import PanelLink
from vcamswap.panel.models import Models

JPEG_QUALITY = 80
HEALTH_EVERY_S = 1.0
POLL_S = 0.1  # how often an open event stream looks for a change of the controls
# The fields of `vcamswap status` the panel shows as health.
HEALTH_KEYS = ("state", "detail", "fps", "latency_ms", "latency_p95_ms", "frames", "swapped", "dropped", "engine",
               "camera", "outputs", "audio_sync", "stage_ms")


class Encoder:
    """The newest picture of each kind as JPEG, encoded once per frame however many panels ask."""

    def __init__(self, link: PanelLink) -> None:
        self.link = link
        self._lock = threading.Lock()
        self._done: dict[str, tuple[int, bytes]] = {}
        self.encoded = 0  # JPEGs made: the panel's whole cost to the loop's machine

    def jpeg(self, which: str, after: int, wait_s: float) -> tuple[int, bytes] | None:
        """(sequence, JPEG) of a frame newer than `after` (or the newest after `wait_s`); None before any."""
        self.link.frames.wait_newer(after, wait_s)
        seq, image = self.link.frames.latest(which)
        if image is None:
            return None
        with self._lock:
            done = self._done.get(which)
            if done is not None and done[0] == seq:
                return done
        data = encode_jpeg(image)
        with self._lock:
            self._done[which] = (seq, data)
            self.encoded += 1
        return seq, data


def encode_jpeg(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("the frame could not be encoded")
    return buf.tobytes()


class Changes:
    """Counts changes of the controls (the listener runs on whichever thread changed them)."""

    def __init__(self, link: PanelLink) -> None:
        self.version = 0
        link.controls.subscribe(self._on_change)

    def _on_change(self, old: ControlState, new: ControlState) -> None:
        self.version += 1


def select_choices() -> dict[str, tuple[str, ...]]:
    """What the page offers as a list to choose from, by intent: the engine and the neural swap model."""
    from vcamswap.engines import ENGINES  # the engines' table only (their modules load when created)

    return {"engine": tuple(ENGINES), "model": SWAP_MODELS}


def selects(status: dict[str, Any], commands: tuple[str, ...] = SOCKET_COMMANDS) -> dict[str, list[str]]:
    """The lists the page draws: one per intent the daemon offers whose value its status reports. The model list
    holds the installed models (the daemon refuses the others) and the one in force."""
    lists: dict[str, list[str]] = {}
    for name, options in select_choices().items():
        if name not in commands or not isinstance(status.get(name), str):
            continue
        installed = status.get("models") if name == "model" else None
        if isinstance(installed, list):
            options = tuple(m for m in options if m in installed or m == status[name])
        lists[name] = list(options)
    return lists


def controls_view(link: PanelLink, status: dict[str, Any]) -> dict[str, Any]:
    """The control state as the panel draws it: `vcamswap status`'s fields plus the photos' notes."""
    keys = ("swap", "face", "preset", "likeness", "targets", "paused", "bypass", "preview", "label", "faces",
            "knobs", "engine", "model", "audio_sync")
    snap = link.controls.snapshot()
    return {**{k: status.get(k) for k in keys}, "label_text": snap.label_text, "notes": dict(snap.face_notes),
            "selects": selects(status)}


def outline_view(link: PanelLink, frame: int | None) -> dict[str, Any]:
    """The faces the tracker followed in frame `frame` (the newest when it is gone): box, five keypoints and the
    mesh's outline, in the picture's pixels, for the page to draw over the preview."""
    seq, faces, size = link.frames.faces(frame)
    out = []
    for f in faces:
        g = f.geometry
        out.append({"box": [round(float(v), 1) for v in g.bbox],
                    "kps": [[round(float(x), 1), round(float(y), 1)] for x, y in g.kps],
                    "outline": None if g.points is None else
                    [[round(float(x), 1), round(float(y), 1)] for x, y in g.points[list(FACE_OVAL)]],
                    "detected": f.detected, "track": f.track_id})
    width, height = size or (0, 0)
    return {"frame": seq, "width": width, "height": height, "faces": out}


def health_view(status: dict[str, Any]) -> dict[str, Any]:
    return {k: status[k] for k in HEALTH_KEYS if k in status}


def event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


async def events(link: PanelLink, changes: Changes, models: Models, stopping: Callable[[], bool],
                 ) -> AsyncIterator[str]:
    """The event stream of one open panel: the controls at once when they change, the health every second, a
    model's download as it goes."""
    seen = -1
    seen_download = -1  # a panel opened during a download shows where it is at once
    next_health = 0.0
    clock = asyncio.get_running_loop().time
    while not stopping():
        if models.version != seen_download:
            seen_download = models.version
            view = models.download_view()
            if view is not None:
                yield event("download", view)
        version = changes.version
        now = clock()
        if version != seen or now >= next_health:
            status = await run_in_threadpool(link.request, {"cmd": "status"})
            if version != seen:
                seen = version
                yield event("controls", controls_view(link, status))
            if now >= next_health:
                next_health = now + HEALTH_EVERY_S
                yield event("health", health_view(status))
        await asyncio.sleep(POLL_S)
