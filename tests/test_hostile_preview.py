"""Slow, idle and tokenless clients never lock the user out: of the MJPEG preview (/snapshot.jpg) nor of the
daemon's control socket (the CLI). Real sockets, the real preview server and control server, the real CLI.
"""

from __future__ import annotations

import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
from daemon_util import wait_until

from vcamswap.control.ipc import ControlServer
from vcamswap.control.protocol import MAX_CLIENTS, Reply, Request
from vcamswap.outputs.mjpeg import MJPEG_MAX_CONNECTIONS, MjpegSink
from vcamswap.outputs.sinkset import parse_output

OWNER_BOUND_S = 3.0  # the bound the finding gives: a local snapshot is milliseconds; a lock-out is seconds


@pytest.fixture
def preview() -> Iterator[MjpegSink]:
    sink = parse_output("mjpeg:0")
    assert isinstance(sink, MjpegSink) and sink.token
    sink.open(64, 48, 30)
    sink.send(np.full((48, 64, 3), 90, np.uint8))
    yield sink
    sink.close()


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=30)


def status_line(s: socket.socket) -> str:
    """The response's status line ('' when the server closed without one)."""
    return s.makefile("rb").readline().decode("latin-1").strip()


def owner_snapshot(preview: MjpegSink) -> tuple[str, float]:
    """The owner's GET /snapshot.jpg with the token: its status line and how long it took."""
    t0 = time.monotonic()
    with connect(preview.port) as s:
        s.sendall(f"GET /snapshot.jpg?token={preview.token} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        line = status_line(s)
    return line, time.monotonic() - t0


class Loris:
    """Connections that send a request line without the token, then one header line every 5 s."""

    def __init__(self, port: int, count: int) -> None:
        self.socks = [connect(port) for _ in range(count)]
        for s in self.socks:
            s.sendall(b"GET /snapshot.jpg HTTP/1.1\r\n")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, daemon=True)
        self._thread.start()

    def _trickle(self) -> None:
        while not self._stop.wait(5.0):
            for s in self.socks:
                try:
                    s.sendall(b"X-Slow: 1\r\n")
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for s in self.socks:
            s.close()


def test_10_slow_clients_without_the_token_never_lock_the_owner_out(preview: MjpegSink) -> None:
    control = owner_snapshot(preview)
    assert control[0].endswith("200 OK"), control
    loris = Loris(preview.port, 2 * MJPEG_MAX_CONNECTIONS)
    idle = [connect(preview.port) for _ in range(MJPEG_MAX_CONNECTIONS)]  # connect, then say nothing
    try:
        for _ in range(3):  # while they last: the first trickle comes 5 s in
            line, took = owner_snapshot(preview)
            assert line.endswith("200 OK") and took < OWNER_BOUND_S, (line, took, control)
            time.sleep(2.0)
    finally:
        loris.close()
        for s in idle:
            s.close()


def test_10_a_request_without_the_token_is_refused_at_its_request_line(preview: MjpegSink) -> None:
    for path in ("/snapshot.jpg", "/stream.mjpg", "/snapshot.jpg?token=guess"):
        with connect(preview.port) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\n".encode())  # no header, no blank line: the head is unfinished
            assert status_line(s) == "HTTP/1.0 403 Forbidden"


def test_10_the_whole_head_has_a_deadline_not_each_read(preview: MjpegSink) -> None:
    """A client with the token that sends one header line every half second is dropped all the same."""
    with connect(preview.port) as s:
        s.sendall(f"GET /snapshot.jpg?token={preview.token} HTTP/1.1\r\n".encode())
        end = time.monotonic() + 30  # liveness bound; the deadline is a few seconds
        answer = None
        while answer is None and time.monotonic() < end:
            try:
                s.sendall(b"X-Slow: 1\r\n")
            except OSError:
                answer = b"closed"
                break
            if select.select([s], [], [], 0.5)[0]:
                try:
                    answer = s.recv(4096)
                except OSError:
                    answer = b"closed"
    assert answer is not None, "the trickling request was never dropped"
    assert answer in (b"", b"closed") or answer.startswith(b"HTTP/1.0 408"), answer


def test_10_more_idle_connections_than_the_gate_holds_drop_the_oldest(preview: MjpegSink) -> None:
    from vcamswap.outputs.httpgate import MAX_PENDING

    server = preview._server
    assert server is not None
    idle = [connect(preview.port) for _ in range(MAX_PENDING + 8)]
    try:
        wait_until(lambda: server.gate.pending == MAX_PENDING, "the gate full")
        line, took = owner_snapshot(preview)
        assert line.endswith("200 OK") and took < OWNER_BOUND_S, (line, took)
        assert status_line(idle[0]) == "" and server.gate.pending <= MAX_PENDING  # the oldest made room
    finally:
        for s in idle:
            s.close()


# ----------------------------------------------------------------------------------------------- control socket


def _echo(req: Request) -> Reply:
    return {"ok": True, "cmd": req["cmd"]}


@pytest.fixture
def control() -> Iterator[ControlServer]:
    s = ControlServer(_echo)
    s.start()
    yield s
    s.close()


def test_10_idle_and_slow_control_connections_never_lock_the_cli_out(control: ControlServer) -> None:
    idle = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(2 * MAX_CLIENTS)]
    try:
        for s in idle:
            s.settimeout(None)
            s.connect(control.address)
        proc = subprocess.run([sys.executable, "-m", "vcamswap", "status"], capture_output=True, text=True,
                              timeout=60, stdin=subprocess.DEVNULL)
        assert proc.returncode == 0 and '"cmd": "status"' in proc.stdout, proc.stderr
    finally:
        for s in idle:
            s.close()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as slow:
        slow.connect(control.address)
        end = time.monotonic() + 60  # liveness bound; the request deadline is seconds
        dropped = False
        while not dropped and time.monotonic() < end:
            try:
                slow.sendall(b" ")  # a byte every half second, never a whole request
            except OSError:
                dropped = True
                break
            if select.select([slow], [], [], 0.5)[0]:
                try:
                    dropped = slow.recv(4096) == b""
                except OSError:
                    dropped = True
    assert dropped, "a connection trickling bytes was never dropped"
