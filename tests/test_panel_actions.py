"""The control panel's actions against a real daemon on a real clip, through plain HTTP: pause, the real face
held, the preview window, stopping the daemon, the tracked face for the outline, and the models (listed with
licence and size, verified, downloaded one at a time from a local HTTP server serving stand-ins named in a
test manifest: nothing leaves this machine)."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from daemon_util import DaemonProcess, media_path, running_daemon, wait_until
from panel_util import Answer, PanelClient

from vcamswap.modelstore.manifest import MANIFEST_ENV, manifest_path
from vcamswap.panel.live import selects

BIDEN = "faces/single/biden.jpg"
STANDIN, CORRUPT = "panel_standin", "panel_corrupt"
GATE_S = 20.0  # the longest the stand-in server holds the second half back (the test lets it go long before)


def blob(name: str, size: int) -> bytes:
    """Deterministic stand-in model bytes."""
    out, seed = bytearray(), name.encode()
    while len(out) < size:
        seed = hashlib.sha256(seed).digest()
        out += seed
    return bytes(out[:size])


class Served:
    """What the stand-in server holds: the files, and a gate the first one's second half waits for."""

    def __init__(self) -> None:
        self.files = {f"/{STANDIN}.onnx": blob(STANDIN, 2 << 20), f"/{CORRUPT}.onnx": blob("other bytes", 1 << 20)}
        self.gate = threading.Event()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:  # noqa: N802
        served: Served = self.server.served  # type: ignore[attr-defined]
        data = served.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        half = len(data) // 2
        self.wfile.write(data[:half])
        self.wfile.flush()
        if self.path == f"/{STANDIN}.onnx":
            served.gate.wait(GATE_S)
        self.wfile.write(data[half:])


def standin_manifest(folder: Path, url: str, served: Served) -> Path:
    """The shipped manifest with two stand-ins: one that verifies, one whose bytes are not the ones listed."""
    listed = {STANDIN: served.files[f"/{STANDIN}.onnx"], CORRUPT: blob(CORRUPT, 1 << 20)}
    lines = [manifest_path().read_text(encoding="utf-8"), ""]
    for name, data in listed.items():
        lines += [f"[models.{name}]", f'file = "{name}.onnx"', f"size = {len(data)}",
                  f'sha256 = "{hashlib.sha256(data).hexdigest()}"', 'description = "a stand-in"',
                  'licence = "test bytes: CC0"', "optional = true", f'sources = [{{ url = "{url}/{name}.onnx" }}]', ""]
    path = folder / "manifest.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, Served]]:
    served = Served()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.served = served  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", served
    served.gate.set()
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, served: tuple[str, Served]) -> Iterator[DaemonProcess]:
    home = tmp_path_factory.mktemp("panel-actions")
    faces = home / "data" / "faces"
    faces.mkdir(parents=True)
    shutil.copy(media_path(BIDEN), faces / "biden.jpg")
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env[MANIFEST_ENV] = str(standin_manifest(home, *served))
    with running_daemon(home, env=env) as d:
        wait_until(lambda: d.status()["state"] == "swapping", "swapping")
        yield d


@pytest.fixture()
def panel(daemon: DaemonProcess) -> PanelClient:
    client = PanelClient(daemon.status()["panel_url"])
    assert client.login().status == 303
    return client


def post(panel: PanelClient, path: str, **headers: str) -> Answer:
    return panel.request("POST", path, b"", headers)


# ----------------------------------------------------------------------------------------------- controls


def test_pause_real_face_and_preview_window_are_the_daemons_intents(daemon: DaemonProcess,
                                                                   panel: PanelClient) -> None:
    try:
        a = panel.intent("pause")
        assert a.status == 200 and a.json()["paused"] is True
        wait_until(lambda: daemon.status()["state"] == "paused", "paused from the panel")
        assert panel.request("GET", "/panel/api/state").json()["controls"]["paused"] is True
        assert panel.intent("resume").json()["paused"] is False
        wait_until(lambda: daemon.status()["state"] == "swapping", "resumed from the panel")

        assert panel.intent("bypass", "on").status == 200
        st = daemon.status()
        assert st["bypass"] is True and (st["state"], st["detail"]) == ("off", "bypass held")
        assert panel.request("GET", "/panel/api/state").json()["controls"]["bypass"] is True
        assert panel.intent("bypass", "off").status == 200
        assert daemon.status()["bypass"] is False
        assert panel.intent("bypass", "maybe").status == 400

        # The preview window: this daemon has no display, so the window the panel asked for cannot show; the
        # daemon says why and unticks it, and the panel's state follows.
        assert panel.intent("preview", "on").status == 200
        wait_until(lambda: "no display for the preview window" in daemon.log(), "the window tried")
        wait_until(lambda: panel.request("GET", "/panel/api/state").json()["controls"]["preview"] is False,
                   "the window unticked")
        assert panel.intent("preview", "off").status == 200 and daemon.status()["preview"] is False
        assert panel.intent("preview", "sometimes").status == 400
    finally:
        daemon.request("resume")
        daemon.request("bypass", "off")
    wait_until(lambda: daemon.status()["state"] == "swapping", "swapping again")


def test_new_actions_are_refused_to_other_origins(daemon: DaemonProcess, panel: PanelClient) -> None:
    """The Guard's Origin, Host and cookie checks cover the new routes like the old ones."""
    for headers in ({"Origin": "http://evil.example"}, {"Origin": None}, {"Sec-Fetch-Site": "cross-site"},
                    {"Host": "evil.example"}, {"Cookie": None}):
        for cmd, arg in (("pause", None), ("bypass", "on"), ("preview", "on"), ("stop", None)):
            assert panel.intent(cmd, arg, **headers).status == 403, (cmd, headers)  # type: ignore[arg-type]
        for path in (f"/panel/api/models/{STANDIN}/download", f"/panel/api/models/{STANDIN}/verify"):
            assert post(panel, path, **headers).status == 403, (path, headers)  # type: ignore[arg-type]
    assert panel.request("GET", "/panel/api/face", cookie=False).status == 403
    assert panel.request("GET", "/panel/api/face", headers={"Host": "evil.example"}).status == 403
    st = daemon.status()
    assert (st["paused"], st["bypass"], st["preview"]) == (False, False, False)
    assert not (daemon.data / "models" / f"{STANDIN}.onnx").exists()
    daemon.check_alive()


def test_the_tracked_face_is_where_the_swap_changed_the_picture(panel: PanelClient) -> None:
    """api/face gives the tracked face of one frame of the preview: the swap changed that picture inside its box
    and hardly outside it, and its outline surrounds its keypoints."""

    def gray(a: Answer) -> np.ndarray:
        return cv2.imdecode(np.frombuffer(a.body, np.uint8), cv2.IMREAD_GRAYSCALE).astype(np.int16)

    def one_frame() -> tuple[Answer, Answer, dict[str, Any]] | None:
        swap = panel.request("GET", "/panel/api/frame?src=swap")
        cam = panel.request("GET", "/panel/api/frame?src=camera")
        face = panel.request("GET", f"/panel/api/face?frame={swap.headers['X-Frame']}").json()
        same = swap.headers["X-Frame"] == cam.headers["X-Frame"] == str(face["frame"])
        return (swap, cam, face) if same and face["faces"] else None

    swap, cam, face = wait_until(one_frame, "one frame in both pictures with its face")
    diff = np.abs(gray(swap) - gray(cam))
    h, w = diff.shape
    assert (face["width"], face["height"]) == (w, h)
    f = face["faces"][0]
    x0, y0, x1, y1 = (int(round(v)) for v in f["box"])
    assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
    inside = np.zeros(diff.shape, bool)
    inside[y0:y1, x0:x1] = True
    print(f"\nmean difference {diff[inside].mean():.1f} in the tracked box, {diff[~inside].mean():.1f} outside")
    assert diff[inside].mean() > 5 * max(float(diff[~inside].mean()), 0.5)
    oval, kps = np.array(f["outline"]), np.array(f["kps"])
    assert oval.shape == (36, 2) and kps.shape == (5, 2)
    contour = oval.astype(np.float32).reshape(-1, 1, 2)
    assert all(cv2.pointPolygonTest(contour, (float(x), float(y)), False) > 0 for x, y in kps)

    newest = panel.request("GET", "/panel/api/face").json()
    assert newest["frame"] >= face["frame"]
    for bad in ("x", "-1", "1e3"):
        assert panel.request("GET", f"/panel/api/face?frame={bad}").status == 400


def test_the_lists_show_only_what_the_daemon_offers() -> None:
    """An engine or model list is drawn once the daemon has that intent and reports its value."""
    status = {"engine": "lite", "model": "inswapper_128"}
    assert selects(status, ("toggle", "face")) == {}
    offered = selects(status, ("toggle", "model", "engine"))
    assert offered["model"][0] == "inswapper_128" and "ghost_1_256" in offered["model"]
    assert {"lite", "inswapper", "remote"} <= set(offered["engine"])
    assert selects({"engine": "lite"}, ("model", "engine")).keys() == {"engine"}  # no model reported: no list
    # The daemon reports what is installed: only those (and the model in force) can be chosen.
    installed = selects({**status, "model": "ghost_3_256", "models": ["inswapper_128", "ghost_1_256"]}, ("model",))
    assert installed == {"model": ["inswapper_128", "ghost_1_256", "ghost_3_256"]}


# ----------------------------------------------------------------------------------------------- models


def models(panel: PanelClient) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in panel.request("GET", "/panel/api/models").json()["models"]}


DOWNLOAD_WAIT_S = 120.0  # a download event that never comes fails the test instead of hanging it


def download_events(panel: PanelClient) -> Iterator[dict[str, Any]]:
    """The event stream's download events, as they come. The stream is open when this returns (not at the first
    next()), so what happens after the call is on it."""
    conn = http.client.HTTPConnection(panel.host, panel.port, timeout=60)
    conn.request("GET", "/panel/api/events", headers={"Cookie": panel.cookie or ""})
    r = conn.getresponse()
    assert r.status == 200

    def read() -> Iterator[dict[str, Any]]:
        try:
            name = None
            deadline = time.monotonic() + DOWNLOAD_WAIT_S
            while time.monotonic() < deadline:
                line = r.fp.readline().decode().strip()
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: ") and name == "download":
                    deadline = time.monotonic() + DOWNLOAD_WAIT_S
                    yield json.loads(line[6:])
            raise AssertionError(f"no download event in {DOWNLOAD_WAIT_S:.0f} s")
        finally:
            conn.close()

    return read()


def test_models_are_listed_with_licence_size_and_state(panel: PanelClient) -> None:
    listed = models(panel)
    m = listed[STANDIN]
    assert (m["licence"], m["size_mb"], m["installed"], m["state"]) == ("test bytes: CC0", 2.1, False, "missing")
    assert {"inswapper_128", "xseg_3", "gfpgan_1.4"} <= set(listed)
    for bad in ("nope", "occluder", "..", "manifest.toml"):  # a role or a path is not a model's name
        for action in ("verify", "download"):
            a = post(panel, f"/panel/api/models/{bad}/{action}")
            assert a.status == 400 and "unknown model" in a.json()["error"], (bad, action)
    assert post(panel, "/panel/api/models/..%2F..%2Fx/download").status in (400, 404)


def test_a_download_shows_its_progress_goes_one_at_a_time_and_installs_checked(
        daemon: DaemonProcess, panel: PanelClient, served: tuple[str, Served]) -> None:
    folder = daemon.data / "models"
    stream = download_events(panel)
    try:
        a = post(panel, f"/panel/api/models/{STANDIN}/download")
        assert a.status == 202 and a.json()["download"]["name"] == STANDIN
        # The server holds the second half back: the progress is seen part way, and a second download waits.
        part = next(e for e in stream if e["state"] == "downloading" and e["done"] > 0)
        assert part["name"] == STANDIN and 0 < part["done"] < part["total"] == 2 << 20
        # A panel opened now, while the download waits, is told where it is at once.
        late = next(download_events(panel))
        assert (late["name"], late["state"]) == (STANDIN, "downloading") and late["done"] >= part["done"]
        busy = post(panel, f"/panel/api/models/{CORRUPT}/download")
        assert busy.status == 409 and "one download at a time" in busy.json()["error"]
        served[1].gate.set()
        end = next(e for e in stream if e["state"] in ("done", "failed"))
    finally:
        served[1].gate.set()
    assert end["state"] == "done" and STANDIN in end["text"], end
    assert (folder / f"{STANDIN}.onnx").read_bytes() == served[1].files[f"/{STANDIN}.onnx"]
    m = models(panel)[STANDIN]
    assert m["installed"] and m["state"] == "ok"  # checked on the way in
    checked = post(panel, f"/panel/api/models/{STANDIN}/verify").json()
    assert checked["state"] == "ok" and checked["state_text"] == "verified"

    # Bytes that do not match the manifest: refused in one line, nothing installed, nothing left behind.
    assert post(panel, f"/panel/api/models/{CORRUPT}/download").status == 202
    def ended() -> dict[str, Any] | None:
        d: dict[str, Any] = panel.request("GET", "/panel/api/models").json()["download"]
        return d if d["state"] in ("done", "failed") else None

    bad = wait_until(ended, "the second download's end")
    assert bad["state"] == "failed" and bad["name"] == CORRUPT and "\n" not in bad["text"]
    assert "does not match the manifest" in bad["text"]
    assert sorted(p.name for p in folder.iterdir() if p.is_file()) == [f"{STANDIN}.onnx"]

    # A model changed on disk (same size, other bytes): the earlier check no longer holds; verified, it is corrupt.
    path = folder / f"{STANDIN}.onnx"
    data = bytearray(path.read_bytes())
    data[1000] ^= 0xFF
    path.write_bytes(bytes(data))
    assert models(panel)[STANDIN]["state"] == "present"
    checked = post(panel, f"/panel/api/models/{STANDIN}/verify").json()
    assert checked["state"] == "checksum" and checked["state_text"] == "corrupt"
    m = models(panel)[STANDIN]
    assert m["state"] == "checksum" and not m["installed"]
    daemon.check_alive()
