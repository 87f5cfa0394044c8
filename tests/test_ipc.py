"""The control socket on its own: real Unix sockets, a real lock, real processes for the other user."""

from __future__ import annotations

import json
import logging
import os
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from daemon_util import wait_until

from vcamswap.control.client import request
from vcamswap.control.ipc import ControlServer
from vcamswap.control.protocol import (
    MAX_CLIENTS,
    DaemonRunning,
    IpcError,
    NotRunning,
    Reply,
    Request,
    socket_path,
)


def handler(req: Request) -> Reply:
    if req["cmd"] == "boom":
        raise RuntimeError("handler bug")
    if req["cmd"] == "ping":
        return {"ok": True, "pid": os.getpid()}
    return {"ok": True, "echo": req}


@pytest.fixture
def server() -> Iterator[ControlServer]:
    s = ControlServer(handler)
    s.start()
    yield s
    s.close()


def exchange(address: str, payload: bytes, replies: int) -> list[dict[str, Any]]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(20)
        s.connect(address)
        s.sendall(payload)
        buf = b""
        while buf.count(b"\n") < replies:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    return [json.loads(line) for line in buf.splitlines()]


def test_request_and_reply(server: ControlServer) -> None:
    assert request({"cmd": "hello", "arg": "x"}) == {"ok": True, "echo": {"cmd": "hello", "arg": "x"}}
    assert server.address == str(socket_path())


def test_socket_and_folder_are_private(server: ControlServer) -> None:
    path = Path(server.address)
    assert stat.S_ISSOCK(path.stat().st_mode)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_several_requests_on_one_connection_and_bad_ones(server: ControlServer) -> None:
    replies = exchange(
        server.address,
        b'{"cmd": "a"}\n\nnot json\n{"cmd": "boom"}\n"just a string"\n\xc3\x28\n{"cmd": "b"}\n',
        6,
    )
    assert [r["ok"] for r in replies] == [True, False, False, False, False, True]
    assert replies[1]["error"].startswith("malformed request (expected one JSON object per line)")
    assert replies[2]["error"] == "internal error: RuntimeError: handler bug"
    assert replies[3]["error"] == 'malformed request: expected {"cmd": "...", ...}'
    assert request({"cmd": "still-there"})["ok"] is True


def test_too_long_line_is_refused(server: ControlServer) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(20)
        s.connect(server.address)
        try:
            s.sendall(b"{" * 100_000)
        except OSError:
            pass
        data = s.recv(65536)
    assert json.loads(data) == {"ok": False, "error": "request too long"}
    assert request({"cmd": "x"})["ok"] is True


def test_connection_limit(server: ControlServer) -> None:
    idle = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(MAX_CLIENTS)]
    try:
        for s in idle:
            s.settimeout(None)  # blocking: waits for the server to accept rather than failing on a full backlog
            s.connect(server.address)
        wait_until(lambda: request({"cmd": "extra"})["ok"], "the newcomer answered")
        # The full table made room by dropping the connection idle longest, which is told why.
        idle[0].settimeout(20)
        assert json.loads(idle[0].recv(4096)) == {"ok": False, "error": "too many connections"}
        assert idle[0].recv(4096) == b""
    finally:
        for s in idle:
            s.close()
    wait_until(lambda: request({"cmd": "after"})["ok"], "a free slot once the idle clients are gone")


def test_no_daemon() -> None:
    with pytest.raises(NotRunning, match="no vcamswap daemon is running"):
        request({"cmd": "status"})


def test_second_server_is_refused_with_the_pid(server: ControlServer) -> None:
    with pytest.raises(DaemonRunning) as e:
        ControlServer(handler).start()
    assert e.value.pid == os.getpid()
    assert f"pid {os.getpid()}" in str(e.value)
    assert request({"cmd": "x"})["ok"] is True  # the first one was not disturbed


def test_refused_even_when_the_lock_file_was_deleted(server: ControlServer) -> None:
    (Path(server.address).parent / "daemon.lock").unlink()
    with pytest.raises(DaemonRunning) as e:
        ControlServer(handler).start()
    assert e.value.pid == os.getpid()  # learnt from the live socket itself


def test_stale_socket_is_replaced(caplog: pytest.LogCaptureFixture) -> None:
    path = socket_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))  # what a killed daemon leaves: the node, nobody listening
    dead.close()
    assert path.exists()
    with pytest.raises(NotRunning):
        request({"cmd": "x"})
    s = ControlServer(handler)
    with caplog.at_level(logging.INFO, logger="vcamswap.ipc"):
        s.start()
    try:
        assert "removed a stale control socket" in caplog.text
        assert request({"cmd": "x"})["ok"] is True
    finally:
        s.close()
    assert not path.exists()


def test_lock_is_released_when_the_holder_dies(tmp_path: Path) -> None:
    """A daemon killed with SIGKILL leaves its lock file; the lock itself goes with the process."""
    code = (
        "import os, sys, time\n"
        "from vcamswap.control.ipc import ControlServer\n"
        "s = ControlServer(lambda r: {'ok': True, 'pid': os.getpid()}); s.start()\n"
        "print('up', flush=True); time.sleep(600)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "up"
        with pytest.raises(DaemonRunning) as e:
            ControlServer(handler).start()
        assert e.value.pid == child.pid
    finally:
        child.kill()
        child.wait()
    s = ControlServer(handler)
    s.start()
    try:
        assert request({"cmd": "ping"})["pid"] == os.getpid()
    finally:
        s.close()


def other_python() -> str:
    """An interpreter another user may run (a virtual env under a private home may not be reachable)."""
    for exe in (sys.executable, "/usr/bin/python3", "/usr/local/bin/python3"):
        try:
            if subprocess.run([exe, "-c", "pass"], user=65534, capture_output=True, cwd="/").returncode == 0:
                return exe
        except OSError:
            continue
    pytest.skip("no Python interpreter that user 65534 can run")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="needs root to connect as another user")
def test_other_users_are_refused_even_if_the_socket_is_opened_up(monkeypatch: pytest.MonkeyPatch) -> None:
    # A folder the other user can reach (pytest's tmp is 0700); then open the socket up on purpose, so only
    # the peer-uid check stands between them and the daemon.
    base = Path(tempfile.mkdtemp(prefix="vcamswap-ipc-"))
    base.chmod(0o755)
    monkeypatch.setenv("VCAMSWAP_RUNTIME_DIR", str(base / "rt"))
    s = ControlServer(handler)
    s.start()
    try:
        (base / "rt").chmod(0o755)
        Path(s.address).chmod(0o666)
        code = (
            "import socket, sys\n"
            "c = socket.socket(socket.AF_UNIX); c.settimeout(20); c.connect(sys.argv[1])\n"
            "c.sendall(b'{\"cmd\": \"stop\"}\\n'); print(c.recv(4096).decode().strip())\n"
        )
        r = subprocess.run([other_python(), "-c", code, s.address], user=65534, capture_output=True, text=True,
                           timeout=60, cwd="/")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout) == {"ok": False, "error": "permission denied: this daemon belongs to another user"}
        assert request({"cmd": "mine"})["ok"] is True
    finally:
        s.close()
        for p in sorted(base.rglob("*"), reverse=True):
            p.unlink() if not p.is_dir() else p.rmdir()
        base.rmdir()


def test_reply_that_is_not_json_is_an_error() -> None:
    path = socket_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as srv:
        srv.bind(str(path))
        srv.listen(1)
        import threading

        def serve() -> None:
            conn, _ = srv.accept()
            with conn:
                conn.recv(1024)
                conn.sendall(b"hello\n")

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        with pytest.raises(IpcError, match="not JSON"):
            request({"cmd": "x"})
        t.join(timeout=10)
