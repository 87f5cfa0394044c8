"""A running daemon fed bad photos and bad input: Swap Cam keeps publishing, a bad photo is never chosen or
saved, and the MJPEG preview answers only with the user's token. Real daemon processes, real sockets."""

from __future__ import annotations

import shutil
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from daemon_util import DaemonProcess, default_args, running_daemon, wait_until
from helpers.images import png_declaring

SOURCES = {"obama": "faces/single/obama_official_portrait.jpg", "biden": "faces/single/biden.jpg"}


def write_bad_photos(folder: Path) -> list[str]:
    """Photos that cannot be used, named by what is wrong with them."""
    cv2.imwrite(str(folder / "tiny.png"), np.full((1, 1, 3), 128, np.uint8))
    png_declaring(folder / "bomb.png", 50000, 50000)
    png_declaring(folder / "huge.png", 12000, 12000)
    (folder / "garbage.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    cv2.imwrite(str(folder / "noface.png"), np.full((300, 300, 3), 200, np.uint8))
    return ["tiny", "bomb", "huge", "garbage", "noface"]


def add_good_faces(folder: Path, media: Path) -> None:
    for name, rel in SOURCES.items():
        shutil.copy(media / rel, folder / f"{name}{Path(rel).suffix}")


def keeps_publishing(d: DaemonProcess) -> dict[str, Any]:
    """Frames keep coming on the virtual camera and the daemon reports a real fps, not an error."""
    start = d.vcam_frames()
    wait_until(lambda: d.vcam_frames() > start + 15, "the virtual camera receiving frames")
    st = wait_until(lambda: (s := d.status())["fps"] > 0 and s, "a non-zero fps")
    assert st["state"] != "error", st
    return st


@pytest.fixture
def home(tmp_path: Path, media: Path) -> Path:
    d = DaemonProcess(tmp_path)
    add_good_faces(d.faces, media)
    return tmp_path


def test_3_bad_photos_never_freeze_swap_cam(home: Path) -> None:
    with running_daemon(home) as d:
        keeps_publishing(d)
        bad = write_bad_photos(d.faces)
        for name in bad:
            r = d.cli("face", name)
            assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
            assert len(r.stderr.strip().splitlines()) == 1 and name in r.stderr, r.stderr
            st = keeps_publishing(d)
            assert st["face"] in SOURCES and set(st["faces"]) == set(SOURCES)
        seen = {d.cli("face", "next").stdout for _ in range(4)}
        assert all(any(f"face {n}," in line for n in SOURCES) for line in seen)
        keeps_publishing(d)
        d.stop()
        log = d.log()
    assert "live loop failed" not in log and "Traceback" not in log, log
    settings = d.settings.read_text() if d.settings.exists() else ""
    assert not any(name in settings for name in bad), settings


def test_3_a_bad_face_saved_as_the_choice_does_not_freeze_the_next_start(home: Path) -> None:
    d = DaemonProcess(home)
    write_bad_photos(d.faces)
    d.settings.write_text('face = "bomb"\n')  # what an older version could have saved
    with running_daemon(home) as d:
        st = keeps_publishing(d)
        assert st["face"] in SOURCES
        d.stop()
    assert d.settings.read_text() in ('face = "bomb"\n', f'face = "{st["face"]}"\n')


@pytest.mark.parametrize("kind", ["tiny", "bomb"])
def test_7_the_daemon_refuses_a_bad_still_input_in_one_line(kind: str, home: Path) -> None:
    d = DaemonProcess(home)
    photo = home / f"{kind}.png"
    if kind == "tiny":
        cv2.imwrite(str(photo), np.full((1, 1, 3), 128, np.uint8))
    else:
        png_declaring(photo, 50000, 50000)
    args = default_args()
    args[args.index("--input") + 1] = str(photo)
    r = d.cli("daemon", *args)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("vcamswap: error: input"), r.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def mjpeg_daemon(home: Path) -> Iterator[DaemonProcess]:
    port = free_port()
    with running_daemon(home, default_args() + ["--output", f"mjpeg:{port}"]) as d:
        yield d


def test_8_status_gives_the_preview_url_and_only_it_opens_the_preview(mjpeg_daemon: DaemonProcess) -> None:
    d = mjpeg_daemon
    def with_url() -> dict[str, Any] | None:
        s = d.status()
        return s if "preview_url" in s else None

    st = wait_until(with_url, "the preview URL in status")
    assert st is not None
    url = str(st["preview_url"])
    port = url.split(":")[2].split("/")[0]
    assert url.startswith(f"http://127.0.0.1:{port}/?token=") and len(url.split("token=")[1]) >= 32
    mjpeg = next(o for o in st["outputs"] if o["name"] == f"mjpeg:{port}")
    assert mjpeg["url"] == url
    snap = url.replace("/?", "/snapshot.jpg?")
    wait_until(lambda: urllib.request.urlopen(snap, timeout=20).status == 200, "a snapshot with the token")
    for bad in (f"http://127.0.0.1:{port}/snapshot.jpg", f"http://127.0.0.1:{port}/stream.mjpg"):
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(bad, timeout=20)
        assert e.value.code == 403
    rebound = urllib.request.Request(snap, headers={"Host": "evil.example.com"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(rebound, timeout=20)
    assert e.value.code == 403


TRAY_SCRIPT = """
import sys, threading
import pystray
from vcamswap.controls import Controls, ControlState
from vcamswap.daemon.desktop.tray import Tray

tray = Tray(Controls(ControlState()), lambda: None, pystray=pystray, preview_url=lambda: sys.argv[1])
item = next(i for i in tray.icon.menu.items if i.text == "Open browser preview")
item(tray.icon)
for t in threading.enumerate():
    if t is not threading.main_thread():
        t.join(30)
"""


def test_8_the_tray_opens_the_full_preview_url(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    seen = tmp_path / "opened.txt"
    browser = tmp_path / "browser"
    browser.write_text(f"#!/bin/sh\nprintf '%s' \"$1\" > {seen}\n")
    browser.chmod(0o755)
    url = "http://127.0.0.1:8089/?token=" + "a" * 48
    env = {**os.environ, "PYSTRAY_BACKEND": "dummy", "BROWSER": str(browser)}
    env.pop("DISPLAY", None)
    r = subprocess.run([sys.executable, "-c", TRAY_SCRIPT, url], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    wait_until(lambda: seen.exists() and seen.read_text() == url, "the browser given the URL with its token")
