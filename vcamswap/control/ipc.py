"""The control socket's server: the CLI talks to a running daemon with one JSON object per line each way
(the protocol and its limits: control/protocol.py).

POSIX: a Unix domain socket, mode 0600, in a 0700 runtime dir; on Linux the peer's uid is also checked
(SO_PEERCRED), so only the user who started the daemon can drive it. A lock file next to it makes a
second daemon refuse to start (naming the running one's pid) and tells a crashed daemon's leftover socket
from a live one. Windows: a named pipe through multiprocessing.connection with a per-user auth key.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import selectors
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vcamswap.control.client import request  # the client side of this protocol
from vcamswap.control.protocol import (
    IS_WINDOWS,
    LOCK_NAME,
    MAX_CLIENTS,
    MAX_LINE,
    REQUEST_TIMEOUT_S,
    DaemonRunning,
    Handler,
    IpcError,
    Reply,
    answer,
    auth_key,
    default_address,
    error_reply,
)
from vcamswap.sockio import recv_ready

log = logging.getLogger("vcamswap.ipc")


def peer_uid(sock: socket.socket) -> int | None:
    """The connecting process's uid (Linux SO_PEERCRED); None where the OS does not tell."""
    opt = getattr(socket, "SO_PEERCRED", None)
    if opt is None:
        return None
    fmt = "3i"  # struct ucred: pid, uid, gid
    try:
        _pid, uid, _gid = struct.unpack(fmt, sock.getsockopt(socket.SOL_SOCKET, opt, struct.calcsize(fmt)))
    except OSError:
        return None
    return int(uid)


# ---------------------------------------------------------------------------------------------------------
# Server


@dataclass
class _Client:
    sock: socket.socket
    buf: bytearray = field(default_factory=bytearray)
    since: float = field(default_factory=time.monotonic)  # connected, or last answered: its request is due


class ControlServer:
    """Serves `handler` on the control socket from one thread; start() refuses when a daemon is running."""

    def __init__(self, handler: Handler, address: str | None = None) -> None:
        self.handler = handler
        self.address = address or default_address()
        self._impl: _UnixServer | _PipeServer | None = None

    def start(self) -> None:
        impl: _UnixServer | _PipeServer = (
            _PipeServer(self.handler, self.address) if IS_WINDOWS else _UnixServer(self.handler, Path(self.address))
        )
        impl.start()
        self._impl = impl

    def close(self) -> None:
        impl, self._impl = self._impl, None
        if impl is not None:
            impl.close()


def _private_dir(folder: Path) -> None:
    """The runtime folder, ours alone (0700): refuse one that belongs to someone else."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = folder.stat()
    if st.st_uid != os.getuid():
        raise IpcError(f"{folder} belongs to another user; set VCAMSWAP_RUNTIME_DIR to a folder of yours")
    if st.st_mode & 0o077:
        os.chmod(folder, 0o700)


class _UnixServer:
    def __init__(self, handler: Handler, path: Path) -> None:
        self.handler = handler
        self.path = path
        self.lock_path = path.with_name(LOCK_NAME)
        self._lock_fd: int | None = None
        self._sock: socket.socket | None = None
        self._sel = selectors.DefaultSelector()
        self._clients: dict[int, _Client] = {}
        self._stop = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(target=self._serve, name="vcamswap-control", daemon=True)
        self._uid = os.getuid()

    def start(self) -> None:
        _private_dir(self.path.parent)
        self._take_lock()
        try:
            self._replace_stale()
            self._bind()
        except BaseException:
            self._release_lock()
            raise
        self._thread.start()

    def _take_lock(self) -> None:
        import fcntl

        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                os.close(fd)
                raise
            pid = _read_pid(fd)
            os.close(fd)
            raise DaemonRunning(pid, str(self.path)) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def _release_lock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)  # closing drops the flock; the file stays, its pid is stale and harmless

    def _replace_stale(self) -> None:
        """We hold the lock, so a socket left here is a crashed daemon's: unless it still answers."""
        if not self.path.exists() and not self.path.is_symlink():
            return

        try:
            reply = request({"cmd": "ping"}, str(self.path), timeout=1.0)
        except IpcError:
            log.info("removed a stale control socket %s left by a daemon that did not stop cleanly", self.path)
            self.path.unlink(missing_ok=True)
            return
        # Someone removed the lock file under a live daemon: still refuse to run two.
        pid = reply.get("pid")
        raise DaemonRunning(pid if isinstance(pid, int) else None, str(self.path))

    def _bind(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(str(self.path))
            os.chmod(self.path, 0o600)  # the 0700 folder already keeps others out; this says so on the node
            sock.listen(64)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self._sel.register(sock, selectors.EVENT_READ, "listen")
        self._wake_r.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")

    def close(self) -> None:
        self._stop.set()
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)
        for c in list(self._clients.values()):
            self._drop(c)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            self.path.unlink(missing_ok=True)
        self._sel.close()
        self._wake_r.close()
        self._wake_w.close()
        self._release_lock()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                events = self._sel.select(timeout=1.0)
            except OSError as e:  # never expected; do not spin
                log.warning("control socket: %s", e)
                time.sleep(0.5)
                continue
            for key, _ in events:
                try:
                    self._event(key.data)
                except Exception as e:  # one odd client must not end the socket for all of them
                    log.warning("control socket: %s: %s; going on", type(e).__name__, e)
                    if isinstance(key.data, _Client):
                        self._drop(key.data)
            self._reap_late()

    def _event(self, what: object) -> None:
        if what == "listen":
            self._accept()
        elif what == "wake":
            try:
                self._wake_r.recv(64)
            except OSError:
                pass
        elif isinstance(what, _Client):
            self._read(what)

    def _accept(self) -> None:
        assert self._sock is not None
        try:
            conn, _ = self._sock.accept()
        except OSError:
            return
        uid = peer_uid(conn)
        if uid is not None and uid != self._uid:
            log.warning("control socket: refused a connection from uid %d", uid)
            _drain_quietly(conn)  # read their request first: closing on unread data would reset it unanswered
            _send_quietly(conn, error_reply("permission denied: this daemon belongs to another user"))
            conn.close()
            return
        if len(self._clients) >= MAX_CLIENTS:
            # Every request is answered as soon as its line is in, so a full table is clients that are idle or
            # slow: the one waited for longest makes room, told why, and an idle few never lock the CLI out.
            oldest = min(self._clients.values(), key=lambda c: c.since)
            log.debug("control socket: %d connections; dropped the one idle longest", len(self._clients))
            _send_quietly(oldest.sock, error_reply("too many connections"))
            self._drop(oldest)
        conn.setblocking(False)
        client = _Client(conn)
        self._clients[conn.fileno()] = client
        self._sel.register(conn, selectors.EVENT_READ, client)

    def _read(self, client: _Client) -> None:
        data = recv_ready(client.sock, 65536)
        if data is None:
            self._drop(client)
            return
        client.buf += data
        while b"\n" in client.buf:
            line, _, rest = bytes(client.buf).partition(b"\n")
            client.buf = bytearray(rest)
            if line.strip() and not self._reply(client, answer(self.handler, line)):
                return
            client.since = time.monotonic()
        if len(client.buf) > MAX_LINE:
            self._reply(client, (json.dumps(error_reply("request too long")) + "\n").encode())
            self._drop(client)

    def _reply(self, client: _Client, data: bytes) -> bool:
        try:
            client.sock.sendall(data)
        except OSError:  # the client went away or never reads: its problem, not ours
            self._drop(client)
            return False
        return True

    def _drop(self, client: _Client) -> None:
        fd = client.sock.fileno()
        if fd >= 0 and fd in self._clients:
            del self._clients[fd]
            try:
                self._sel.unregister(client.sock)
            except (KeyError, ValueError):
                pass
        client.sock.close()

    def _reap_late(self) -> None:
        """Drop connections whose request is overdue: idle, or trickling bytes (which never resets this)."""
        limit = time.monotonic() - REQUEST_TIMEOUT_S
        for c in [c for c in self._clients.values() if c.since < limit]:
            self._drop(c)


def _read_pid(fd: int) -> int | None:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 64).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _drain_quietly(conn: socket.socket, wait: float = 0.2) -> None:
    try:
        conn.settimeout(wait)
        conn.recv(MAX_LINE)
    except OSError:
        pass


def _send_quietly(conn: socket.socket, reply: Reply) -> None:
    try:
        conn.settimeout(1.0)
        conn.sendall((json.dumps(reply) + "\n").encode())
    except OSError:
        pass


class _PipeServer:
    """Windows: a named pipe; the auth key in the user's runtime folder keeps other users out."""

    def __init__(self, handler: Handler, address: str) -> None:
        self.handler = handler
        self.address = address
        self._listener: Any = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="vcamswap-control", daemon=True)

    def start(self) -> None:
        from multiprocessing.connection import Listener

        try:
            reply = request({"cmd": "ping"}, self.address, timeout=1.0)
        except IpcError:
            pass
        else:
            pid = reply.get("pid")
            raise DaemonRunning(pid if isinstance(pid, int) else None, self.address)
        self._listener = Listener(self.address, family="AF_PIPE", authkey=auth_key(create=True))
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn = self._listener.accept()
            except Exception:  # a client that failed the auth handshake, or close()
                continue
            threading.Thread(target=self._client, args=(conn,), name="vcamswap-control-client", daemon=True).start()

    def _client(self, conn: Any) -> None:
        with conn:
            try:
                while not self._stop.is_set():
                    line = conn.recv_bytes(MAX_LINE)
                    conn.send_bytes(answer(self.handler, line))
            except (EOFError, OSError):
                pass

    def close(self) -> None:
        self._stop.set()
        if self._listener is not None:
            self._listener.close()
