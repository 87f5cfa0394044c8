"""The door of the MJPEG preview: reads every request's head in one thread, with no thread per connection.

A thread per connection lets a few dozen slow or idle clients hold every slot (one header line every few
seconds resets a per-read timeout forever). Here a selector reads all the heads at once:

* the whole head must arrive within HEAD_DEADLINE_S of the connection (not per read), or it is dropped;
* the request line is screened as soon as it is complete, so a request without the token is answered 403
  and closed before any header is read;
* at most MAX_PENDING heads are awaited; a new connection beyond that drops the oldest one waiting;
* only a complete, accepted head is handed on (`dispatch`), so only the user's own requests use a thread.
"""

from __future__ import annotations

import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import NamedTuple

from vcamswap.sockio import recv_ready

log = logging.getLogger("vcamswap.outputs")

HEAD_DEADLINE_S = 5.0  # a browser or curl sends its whole head at once; a few seconds is plenty on any link
MAX_PENDING = 256
MAX_HEAD = 16 * 1024


class Refusal(NamedTuple):
    status: int
    reason: str


Screen = Callable[[bytes], Refusal | None]  # the request line -> why it is refused, or None
Dispatch = Callable[[socket.socket, tuple[str, int], bytes], None]  # blocking socket, peer, the whole head


@dataclass
class _Pending:
    sock: socket.socket
    peer: tuple[str, int]
    deadline: float
    buf: bytearray = field(default_factory=bytearray)
    screened: bool = False


def http_refusal(status: int, reason: str) -> bytes:
    """A whole HTTP/1.0 error response: the status's own phrase, and `reason` as its text body."""
    body = f"{status} {reason}\n".encode("ascii", "replace")
    head = (f"HTTP/1.0 {status} {HTTPStatus(status).phrase}\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    return head.encode("ascii", "replace") + body


class RequestGate:
    """Listens on `address` and reads request heads in one thread; see the module's docstring."""

    def __init__(self, address: tuple[str, int], screen: Screen, dispatch: Dispatch,
                 deadline_s: float = HEAD_DEADLINE_S, max_pending: int = MAX_PENDING) -> None:
        self._screen, self._dispatch = screen, dispatch
        self._deadline_s, self._max_pending = deadline_s, max_pending
        self._listener = socket.create_server(address, backlog=128)  # SO_REUSEADDR, like http.server
        self._listener.setblocking(False)
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._listener, selectors.EVENT_READ, None)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._pending: dict[socket.socket, _Pending] = {}  # insertion order: oldest first
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="mjpeg-server", daemon=True)

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    @property
    def pending(self) -> int:
        """Connections whose head is still awaited."""
        return len(self._pending)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        for p in list(self._pending.values()):
            self._drop(p)
        self._sel.close()
        for s in (self._listener, self._wake_r, self._wake_w):
            s.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            timeout = 1.0
            if self._pending:
                timeout = min(timeout, max(0.0, next(iter(self._pending.values())).deadline - time.monotonic()))
            for key, _ in self._sel.select(timeout):
                if key.fileobj is self._listener:
                    self._accept()
                elif key.fileobj is self._wake_r:
                    self._wake_r.recv(64)
                else:
                    self._read(key.data)
            self._expire()

    def _accept(self) -> None:
        while True:
            try:
                conn, peer = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:  # out of file descriptors: the one waiting longest makes room
                log.debug("mjpeg: accept failed: %s", e)
                if not self._pending:
                    time.sleep(0.1)  # nothing of ours to free: do not spin on the listener
                self._drop_oldest()
                return
            if len(self._pending) >= self._max_pending:
                self._drop_oldest()
            conn.setblocking(False)
            p = _Pending(conn, peer, time.monotonic() + self._deadline_s)
            self._pending[conn] = p
            self._sel.register(conn, selectors.EVENT_READ, p)

    def _read(self, p: _Pending) -> None:
        data = recv_ready(p.sock, 4096)
        if data is None:
            self._drop(p)
            return
        p.buf += data
        if not p.screened and b"\n" in p.buf:
            refusal = self._screen(bytes(p.buf[: p.buf.index(b"\n")]).rstrip(b"\r"))
            if refusal is not None:
                self._refuse(p, refusal)
                return
            p.screened = True
        end = _head_end(p.buf)
        if end is not None and p.screened:
            self._hand_on(p, bytes(p.buf[:end]))
        elif len(p.buf) > MAX_HEAD:
            self._refuse(p, Refusal(431, "the request's head is too long"))

    def _hand_on(self, p: _Pending, head: bytes) -> None:
        self._forget(p)
        try:
            p.sock.setblocking(True)
            self._dispatch(p.sock, p.peer, head)
        except Exception as e:  # never let one request stop the door for everyone
            log.warning("mjpeg %s: request failed: %s: %s", p.peer, type(e).__name__, e)
            p.sock.close()

    def _expire(self) -> None:
        now = time.monotonic()
        while self._pending:
            oldest = next(iter(self._pending.values()))
            if oldest.deadline > now:
                return
            log.debug("mjpeg %s: dropped: no complete request within %.0f s", oldest.peer, self._deadline_s)
            self._refuse(oldest, Refusal(408, f"no complete request within {self._deadline_s:g} s"))

    def _refuse(self, p: _Pending, refusal: Refusal) -> None:
        log.debug("mjpeg %s: %d %s", p.peer, refusal.status, refusal.reason)
        try:
            p.sock.send(http_refusal(*refusal))  # a few hundred bytes: always fits the empty send buffer
        except OSError:
            pass
        _drain(p.sock)
        self._drop(p)

    def _drop_oldest(self) -> None:
        if self._pending:
            self._drop(next(iter(self._pending.values())))

    def _forget(self, p: _Pending) -> None:
        self._pending.pop(p.sock, None)
        try:
            self._sel.unregister(p.sock)
        except (KeyError, ValueError):
            pass

    def _drop(self, p: _Pending) -> None:
        self._forget(p)
        try:
            p.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        p.sock.close()


def _head_end(buf: bytearray) -> int | None:
    """Where the head ends (after its blank line), or None while it is incomplete."""
    ends = [i + len(sep) for sep in (b"\r\n\r\n", b"\n\n") if (i := buf.find(sep)) >= 0]
    return min(ends) if ends else None


def _drain(sock: socket.socket) -> None:
    """Read what the client already sent: closing on unread data resets the connection, and the client
    could lose the answer it was just sent."""
    for _ in range(16):
        try:
            if not sock.recv(4096):
                return
        except OSError:  # nothing more now (BlockingIOError) or gone
            return
