"""The daemon as a real process: control socket end to end, settings saved, faces folder watched,
one daemon per user, stale sockets, signals."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from daemon_util import DaemonProcess, default_args, media_path, running_daemon, wait_until

OBAMA = "faces/single/obama_official_portrait.jpg"
BIDEN = "faces/single/biden.jpg"
TRUMP = "faces/single/trump_official_portrait.png"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """One daemon shared by the tests of this module that do not stop it: two faces in its folder."""
    home = tmp_path_factory.mktemp("daemon")
    faces = home / "data" / "faces"
    faces.mkdir(parents=True)
    shutil.copy(media_path(BIDEN), faces / "biden.jpg")
    shutil.copy(media_path(OBAMA), faces / "obama.jpg")
    with running_daemon(home) as d:
        yield d


def raw_exchange(address: str, payload: bytes) -> list[dict[str, Any]]:
    """Send raw bytes, read reply lines until the daemon has answered every line we sent."""
    expected = payload.count(b"\n")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(20)
        s.connect(address)
        s.sendall(payload)
        buf = b""
        while buf.count(b"\n") < expected:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    return [json.loads(line) for line in buf.splitlines() if line.strip()]


# ---------------------------------------------------------------------------------------------------------


def test_status_reports_the_live_pipeline(daemon: DaemonProcess) -> None:
    st = wait_until(lambda: (s := daemon.status())["state"] == "swapping" and s["fps"] > 0 and s, "swapping")
    assert st["ok"] is True and st["pid"] == daemon.pid
    assert st["face"] in ("biden", "obama") and st["faces"] == ["biden", "obama"]
    assert st["preset"] == "balanced" and st["swap"] is True and st["paused"] is False
    assert st["fps"] > 0 and st["latency_ms"] > 0
    assert {"track", "swap", "paste", "output"} <= set(st["stage_ms"])
    assert st["outputs"] == [{"name": "vcam", "live": True, "error": None}] and st["outputs_live"] == ["vcam"]
    assert st["camera"]["status"] == "ok" and st["camera"]["kind"] == "file"
    assert (st["camera"]["width"], st["camera"]["height"]) == (640, 480)
    assert st["engine"] == "lite"
    frames = daemon.vcam_frames()
    wait_until(lambda: daemon.vcam_frames() > frames + 10, "frames reaching the virtual camera")

    r = daemon.cli("status")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["pid"] == daemon.pid


def test_cli_controls_apply_at_once_and_are_saved(daemon: DaemonProcess) -> None:
    r = daemon.cli("toggle")
    assert r.returncode == 0 and "swap off" in r.stdout
    wait_until(lambda: daemon.status()["state"] == "off", "state off")
    n = daemon.vcam_frames()
    wait_until(lambda: daemon.vcam_frames() > n + 5, "plain frames published while the swap is off")

    first = daemon.status()["face"]
    other = daemon.request("face", "next")["face"]
    assert other != first and other in ("biden", "obama") and daemon.status()["face"] == other
    assert daemon.request("face", "prev")["face"] == first
    assert daemon.request("face", "obama")["face"] == "obama"

    r = daemon.cli("face", "nobody")
    assert r.returncode == 2 and "no face named 'nobody'" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert daemon.request("preset", "fast")["preset"] == "fast"
    r = daemon.cli("preset", "ultra")
    assert r.returncode == 2 and "unknown preset" in r.stderr
    assert daemon.status()["targets"] == "one"
    r = daemon.cli("targets", "all")
    assert r.returncode == 0 and "all faces" in r.stdout, r.stderr
    assert daemon.status()["targets"] == "all"
    r = daemon.cli("targets", "some")
    assert r.returncode == 2 and "invalid choice" in r.stderr and "Traceback" not in r.stderr
    assert daemon.request("targets", "some") == {"ok": False, "error": "unknown targets 'some'; choose one of one, all"}

    assert daemon.request("toggle")["swap"] is True
    wait_until(lambda: daemon.status()["state"] in ("swapping", "no-face"), "swap back on")

    def saved() -> dict[str, Any] | None:
        import tomllib

        try:
            data = tomllib.loads(daemon.settings.read_text())
        except (OSError, tomllib.TOMLDecodeError):
            return None
        wanted = data.get("preset") == "fast" and data.get("face") == "obama" and data.get("swap") is True
        wanted = wanted and data.get("targets") == "all"
        return data if wanted else None

    data = wait_until(saved, "settings saved")
    assert "input" not in data and "output" not in data  # command-line options are not written back


def test_pause_releases_the_camera_and_keeps_publishing(daemon: DaemonProcess) -> None:
    assert daemon.cli("pause").returncode == 0
    st = wait_until(lambda: (s := daemon.status())["camera"]["status"] == "paused" and s, "camera paused")
    assert st["state"] == "paused"
    n = daemon.vcam_frames()
    wait_until(lambda: daemon.vcam_frames() > n + 3, "still frames while paused")
    assert daemon.cli("resume").returncode == 0
    wait_until(lambda: daemon.status()["camera"]["status"] == "ok", "camera resumed")


def test_socket_is_private(daemon: DaemonProcess) -> None:
    sock = Path(daemon.address)
    assert stat.S_ISSOCK(sock.stat().st_mode)
    assert stat.S_IMODE(sock.stat().st_mode) == 0o600
    assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700


def test_malformed_requests_get_errors_and_the_daemon_lives_on(daemon: DaemonProcess) -> None:
    replies = raw_exchange(
        daemon.address,
        b"this is not json\n"
        b"[1, 2, 3]\n"
        b'{"cmd": 5}\n'
        b'{"no_cmd": true}\n'
        b'{"cmd": "face", "arg": 7}\n'
        b'{"cmd": "launch-missiles"}\n'
        b"\xff\xfe\xfd\n"
        b'{"cmd": "preset"}\n'
        b'{"cmd": "ping"}\n',
    )
    assert [r["ok"] for r in replies] == [False] * 8 + [True]
    assert all(isinstance(r["error"], str) and "\n" not in r["error"] for r in replies[:-1])
    assert "unknown command 'launch-missiles'" in replies[5]["error"]

    # A line that never ends is cut off with an error, not buffered forever.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(20)
        s.connect(daemon.address)
        try:
            s.sendall(b"x" * 200_000)
        except OSError:
            pass  # the daemon may close before we finish sending
        reply = s.recv(65536)
    assert b"request too long" in reply

    # A client that connects and says nothing does not block others.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as idle:
        idle.connect(daemon.address)
        assert daemon.status()["ok"] is True
    daemon.check_alive()


def test_faces_folder_is_watched(daemon: DaemonProcess) -> None:
    shutil.copy(media_path(TRUMP), daemon.faces / "trump.png")
    wait_until(lambda: daemon.status()["faces"] == ["biden", "obama", "trump"], "new face listed")
    assert daemon.request("face", "obama")["face"] == "obama"
    (daemon.faces / "obama.jpg").unlink()  # deleted while in use: the next face takes over
    st = wait_until(lambda: (s := daemon.status())["faces"] == ["biden", "trump"] and s, "face removed")
    assert st["face"] == "trump"
    wait_until(lambda: daemon.status()["state"] == "swapping", "swapping with the next face")


def test_second_daemon_is_refused_and_names_the_first(daemon: DaemonProcess) -> None:
    second = DaemonProcess(daemon.home, default_args())
    second.log_path = daemon.home / "second.log"
    second.start(wait=False)
    assert second.proc is not None
    rc = second.proc.wait(timeout=60)
    assert rc == 1
    text = second.log()
    assert f"another vcamswap daemon is running (pid {daemon.pid}" in text
    assert daemon.status()["ok"] is True  # the first one is untouched


# ---------------------------------------------------------------------------------------------------------


def test_stale_socket_is_replaced_and_sigterm_stops_cleanly(tmp_path: Path) -> None:
    d = DaemonProcess(tmp_path).start()
    sock = Path(d.address)
    d.proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
    d.proc.wait()  # type: ignore[union-attr]
    assert sock.exists()  # what a crash leaves behind

    r = d.cli("status")
    assert r.returncode == 1 and "no vcamswap daemon is running" in r.stderr

    again = DaemonProcess(tmp_path).start()
    assert "stale control socket" in again.log()
    assert again.status()["pid"] == again.pid
    again.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
    assert again.proc.wait(timeout=60) == 0  # type: ignore[union-attr]
    assert not sock.exists()


def test_broken_settings_file_is_never_overwritten(tmp_path: Path) -> None:
    d = DaemonProcess(tmp_path)
    broken = b'preset = "fast"\nswap = maybe\n'
    d.settings.write_bytes(broken)
    d.start()
    assert "settings.toml: Invalid value (at line 2, column 8)" in d.log()
    assert d.request("toggle")["swap"] is False
    assert d.request("preset", "quality")["ok"] is True
    wait_until(lambda: "settings not saved" in d.log() or "not saved to it" in d.log(), "notice logged")
    assert d.stop() == 0
    assert d.settings.read_bytes() == broken
    assert d.log().count("not saved") == 1  # said once


def test_missing_input_fails_in_one_line(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "vcamswap", "daemon", "--no-tray", "--no-hotkeys", "--input",
         str(tmp_path / "nope.mp4"), "--output", str(tmp_path / "out.avi")],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "VCAMSWAP_RUNTIME_DIR": str(tmp_path / "rt")},
    )
    assert r.returncode == 2
    errors = [line for line in r.stderr.splitlines() if "error" in line]
    assert errors == [f"vcamswap: error: input not found: {tmp_path / 'nope.mp4'}"]
    assert not (tmp_path / "rt" / "control.sock").exists()


def test_doctor_lines_for_tray_hotkeys_daemon_and_service(daemon: DaemonProcess, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from vcamswap.checks import Context
    from vcamswap.daemon.checks import check_daemon, check_hotkeys, check_service, check_tray
    from vcamswap.settings import Settings

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    settings = Settings()
    settings.hotkeys.update({"toggle": "<ctrl>+<nope>+s", "launch": "<ctrl>+l", "next_face": ""})
    ctx = Context(settings, tmp_path / "settings.toml")
    hk = list(check_hotkeys(ctx))
    assert [(x.ok, x.text) for x in hk] == [
        (False, "toggle = '<ctrl>+<nope>+s': unknown key '<nope>'"),
        (False, "'launch' is not an action"),
        (False, "global hotkeys are not available here: no display (DISPLAY is unset)"),
    ]
    assert all(x.fix for x in hk)
    assert [x.ok for x in check_tray(ctx)] == [True]  # no display: fine, the daemon runs without a tray

    monkeypatch.setenv("VCAMSWAP_RUNTIME_DIR", str(daemon.runtime))
    (line,) = check_daemon(ctx)
    assert line.ok and line.text.startswith(f"running (pid {daemon.pid}): ")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    (line,) = check_service(ctx)
    assert line.ok and line.text.startswith("not set to start with the session")

    r = daemon.cli("doctor")  # registered with the command line's doctor
    assert any(" hotkeys: " in x for x in r.stdout.splitlines()), r.stdout
    assert any(" daemon: running (pid " in x for x in r.stdout.splitlines()), r.stdout
