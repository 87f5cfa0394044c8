"""An MJPEG preview over HTTP on 127.0.0.1: the newest frame, encoded lazily, for any number of clients."""

from __future__ import annotations

import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import cv2
import numpy as np

from vcamswap.outputs.base import OutputUnavailable
from vcamswap.outputs.previewauth import host_allowed, token_matches, with_token
from vcamswap.types import check_bgr

log = logging.getLogger("vcamswap.outputs")

DEFAULT_MJPEG_PORT = 8089
MJPEG_MAX_CONNECTIONS = 32
MJPEG_TIMEOUT_S = 10.0


class _FrameHub:
    """The latest frame and its JPEG, shared by the HTTP client threads.

    Only the newest frame is kept: a slow client skips frames instead of queueing them. A frame is
    JPEG-encoded lazily, by the first client that wants it, and at most once; with no client, never.
    """

    def __init__(self, quality: int) -> None:
        self._cond = threading.Condition()
        self._encode_lock = threading.Lock()
        self._quality = quality
        self._frame: np.ndarray | None = None
        self._seq = 0
        self._jpeg = b""
        self._jpeg_seq = 0
        self._closed = False
        self._sockets: set[socket.socket] = set()
        self.clients = 0
        self.encodes = 0

    def publish(self, frame: np.ndarray) -> None:
        # A copy (0.1 ms at 720p): the caller may reuse its buffer while a client thread encodes.
        copy = frame.copy()
        with self._cond:
            self._frame = copy
            self._seq += 1
            self._cond.notify_all()

    def _encode(self, frame: np.ndarray, seq: int) -> tuple[int, bytes]:
        with self._encode_lock:
            if self._jpeg_seq < seq:
                ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, self._quality])
                if not ok:
                    raise RuntimeError("JPEG encoding failed")
                self._jpeg, self._jpeg_seq = buf.tobytes(), seq
                self.encodes += 1
            return self._jpeg_seq, self._jpeg

    def next_jpeg(self, after: int, timeout: float) -> tuple[int, bytes] | None:
        """The newest frame's JPEG once it is newer than `after`; None on timeout or close."""
        with self._cond:
            self._cond.wait_for(lambda: self._closed or (self._frame is not None and self._seq > after), timeout)
            if self._closed or self._frame is None or self._seq <= after:
                return None
            frame, seq = self._frame, self._seq
        return self._encode(frame, seq)

    def latest_jpeg(self) -> bytes | None:
        with self._cond:
            frame, seq = self._frame, self._seq
        return None if frame is None else self._encode(frame, seq)[1]

    @property
    def closed(self) -> bool:
        return self._closed

    def join(self, sock: socket.socket) -> None:
        with self._cond:
            self.clients += 1
            self._sockets.add(sock)

    def leave(self, sock: socket.socket) -> None:
        with self._cond:
            self.clients -= 1
            self._sockets.discard(sock)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            socks = list(self._sockets)
        for s in socks:  # wake client threads blocked writing to a client that stopped reading
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _MjpegServer(ThreadingHTTPServer):
    """At most MJPEG_MAX_CONNECTIONS at once (more are closed at once), a backlog for bursts of clients."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], hub: _FrameHub, token: str | None) -> None:
        self.hub = hub
        self.token = token
        self._active = 0
        self._active_lock = threading.Lock()
        super().__init__(address, _MjpegHandler)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        with self._active_lock:
            if self._active >= MJPEG_MAX_CONNECTIONS:
                log.debug("mjpeg: refused a connection: %d open already", self._active)
                return False
            self._active += 1
        return True

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._active_lock:
                self._active -= 1

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that goes away is normal: one debug line, never a traceback in the log."""
        import sys

        e = sys.exc_info()[1]
        if isinstance(e, OSError):
            log.debug("mjpeg %s: client went away (%s)", client_address, e)
        else:
            log.warning("mjpeg %s: request failed: %s: %s", client_address, type(e).__name__, e)


class _MjpegHandler(BaseHTTPRequestHandler):
    server: _MjpegServer
    protocol_version = "HTTP/1.0"
    boundary = "frame"
    timeout = MJPEG_TIMEOUT_S  # reading the request and writing each frame; a stalled client is dropped

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path, _, query = self.path.partition("?")
        if not host_allowed(self.headers.get("Host")):
            self._refuse("this preview answers only to 127.0.0.1 and localhost")
            return
        if not token_matches(query, self.server.token):
            self._refuse("the preview URL needs its token: see 'vcamswap status'")
            return
        if path in ("/", "/stream.mjpg"):
            self._stream()
        elif path == "/snapshot.jpg":
            self._snapshot()
        else:
            self.send_error(404, "try /stream.mjpg or /snapshot.jpg")

    def _refuse(self, why: str) -> None:
        log.debug("mjpeg %s: 403 %s", self.address_string(), why)
        try:
            self.send_error(403, why)
        except OSError:
            pass

    def _no_cache_headers(self) -> None:
        self.send_header("Cache-Control", "no-cache, no-store, must-revalidate")
        self.send_header("Pragma", "no-cache")

    def _snapshot(self) -> None:
        jpeg = self.server.hub.latest_jpeg()
        if jpeg is None:
            self.send_error(503, "no frame yet")
            return
        try:
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(jpeg)))
            self._no_cache_headers()
            self.end_headers()
            self.wfile.write(jpeg)
        except OSError:  # the client went away
            pass

    def _stream(self) -> None:
        hub = self.server.hub
        try:
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={self.boundary}")
            self._no_cache_headers()
            self.end_headers()
        except OSError:
            return
        hub.join(self.connection)
        try:
            seq = 0
            while not hub.closed:
                item = hub.next_jpeg(seq, timeout=1.0)
                if item is None:
                    continue
                seq, jpeg = item
                head = f"--{self.boundary}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                self.wfile.write(head.encode("ascii") + jpeg + b"\r\n")
        except OSError:  # the client went away
            pass
        finally:
            hub.leave(self.connection)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (base class signature)
        log.debug("mjpeg %s: %s", self.address_string(), format % args)


class MjpegSink:
    """An MJPEG preview at http://127.0.0.1:PORT/ (also /stream.mjpg), and /snapshot.jpg.

    Bound to 127.0.0.1 by default so the picture never leaves the machine. Port 0 picks a free port; `port`
    tells which after open().
    """

    def __init__(
        self, port: int = DEFAULT_MJPEG_PORT, host: str = "127.0.0.1", quality: int = 80, token: str | None = None
    ) -> None:
        """`token`: when given, every request must carry it (`?token=...`); `url` includes it."""
        if not 0 <= port <= 65535:
            raise ValueError(f"MJPEG port must be 0-65535, got {port}")
        self.name = f"mjpeg:{port}"
        self.host = host
        self.token = token
        self._port = port
        self._quality = quality
        self._hub = _FrameHub(quality)
        self._server: _MjpegServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1] if self._server is not None else self._port

    @property
    def url(self) -> str:
        """The page to open, with the token when one is asked for."""
        return with_token(f"http://{self.host}:{self.port}/", self.token)

    @property
    def stream_url(self) -> str:
        return with_token(f"http://{self.host}:{self.port}/stream.mjpg", self.token)

    @property
    def clients(self) -> int:
        """Stream clients connected now."""
        return self._hub.clients

    @property
    def frames_encoded(self) -> int:
        return self._hub.encodes

    def open(self, width: int, height: int, fps: float) -> None:
        if self._server is not None:
            return
        hub = _FrameHub(self._quality)
        try:
            server = _MjpegServer((self.host, self._port), hub, self.token)
        except OSError as e:
            raise OutputUnavailable(
                f"cannot serve MJPEG on {self.host}:{self._port} ({e.strerror or e}); "
                "choose another port with mjpeg:PORT"
            ) from None
        self._hub, self._server = hub, server
        self._thread = threading.Thread(target=server.serve_forever, name="mjpeg-server", daemon=True)
        self._thread.start()
        log.info("MJPEG preview at %s", self.url)

    def send(self, frame_bgr: np.ndarray) -> None:
        if self._server is None:
            raise OutputUnavailable("the MJPEG server is not running")
        self._hub.publish(check_bgr(frame_bgr, "frame"))

    def close(self) -> None:
        server, self._server = self._server, None
        thread, self._thread = self._thread, None
        if server is None:
            return
        self._hub.close()
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join()
