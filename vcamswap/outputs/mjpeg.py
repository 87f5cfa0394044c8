"""An MJPEG preview over HTTP on 127.0.0.1: the newest frame, encoded lazily, for any number of clients."""

from __future__ import annotations

import io
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any

import cv2
import numpy as np

from vcamswap.outputs.base import OutputUnavailable
from vcamswap.outputs.httpgate import Refusal, RequestGate, http_refusal
from vcamswap.outputs.previewauth import host_allowed, token_matches, with_token
from vcamswap.types import check_bgr

log = logging.getLogger("vcamswap.outputs")

DEFAULT_MJPEG_PORT = 8089
MJPEG_MAX_CONNECTIONS = 32  # streams at once
MJPEG_MAX_REQUESTS = 16  # snapshots and errors at once, besides the streams
MJPEG_TIMEOUT_S = 10.0
STREAM_PATHS = (b"/", b"/stream.mjpg")


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


class _MjpegServer:
    """The preview's HTTP side. The gate (httpgate) reads and screens every request head in one thread, so
    slow or idle clients and requests without the token never hold a thread; an accepted request gets one:
    at most MJPEG_MAX_CONNECTIONS streams and MJPEG_MAX_REQUESTS other requests at once (503 beyond)."""

    def __init__(self, address: tuple[str, int], hub: _FrameHub, token: str | None) -> None:
        self.hub = hub
        self.token = token
        self._active = 0  # requests in service, streams included
        self._streams = 0
        self._lock = threading.Lock()
        self.gate = RequestGate(address, self._screen, self._dispatch)

    def start(self) -> None:
        self.gate.start()

    def close(self) -> None:
        self.gate.close()

    def _screen(self, line: bytes) -> Refusal | None:
        """The request line alone decides a refusal: a request without the token is never read further."""
        parts = line.split()
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
            return Refusal(400, "not an HTTP request")
        if not token_matches(parts[1].decode("latin-1").partition("?")[2], self.token):
            return Refusal(403, "the preview URL needs its token: see 'vcamswap status'")
        if parts[0] != b"GET":
            return Refusal(501, "the preview answers GET only")
        return None

    def _dispatch(self, sock: socket.socket, peer: tuple[str, int], head: bytes) -> None:
        stream = head.split(b" ", 2)[1].partition(b"?")[0] in STREAM_PATHS
        with self._lock:
            busy = self._streams if stream else self._active - self._streams
            full = busy >= (MJPEG_MAX_CONNECTIONS if stream else MJPEG_MAX_REQUESTS)
            if not full:
                self._active += 1
                self._streams += stream
        if full:
            log.debug("mjpeg %s: 503: %d requests in service already", peer, self._active)
            sock.settimeout(1.0)
            try:
                sock.sendall(http_refusal(503, "too many viewers of the preview; close one"))
            except OSError:
                pass
            sock.close()
            return
        threading.Thread(target=self._serve, args=(sock, peer, head, stream), name="mjpeg-client",
                         daemon=True).start()

    def _serve(self, sock: socket.socket, peer: tuple[str, int], head: bytes, stream: bool) -> None:
        try:
            _MjpegHandler(sock, peer, self, head)
        except OSError as e:  # a client that goes away is normal: one debug line, never a traceback
            log.debug("mjpeg %s: client went away (%s)", peer, e)
        except Exception as e:
            log.warning("mjpeg %s: request failed: %s: %s", peer, type(e).__name__, e)
        finally:
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            sock.close()
            with self._lock:
                self._active -= 1
                self._streams -= stream


class _MjpegHandler(BaseHTTPRequestHandler):
    """One accepted request whose head the gate has read already (`head`); writes go to the socket."""

    server: _MjpegServer  # type: ignore[assignment]
    protocol_version = "HTTP/1.0"
    boundary = "frame"
    timeout = MJPEG_TIMEOUT_S  # writing each frame: a client that stops reading is dropped

    def __init__(self, request: socket.socket, client_address: tuple[str, int], server: _MjpegServer,
                 head: bytes) -> None:
        self._head = head
        super().__init__(request, client_address, server)  # type: ignore[arg-type]

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # the socket's reader: the head was read by the gate, nothing else is
        self.rfile = io.BytesIO(self._head)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path, _, query = self.path.partition("?")
        if not host_allowed(self.headers.get("Host")):
            self._refuse("this preview answers only to 127.0.0.1 and localhost")
            return
        if not token_matches(query, self.server.token):
            self._refuse("the preview URL needs its token: see 'vcamswap status'")
            return
        if path.encode("latin-1") in STREAM_PATHS:
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

    @property
    def port(self) -> int:
        return self._server.gate.port if self._server is not None else self._port

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
        server.start()
        # The token stays out of the log (log files and journals are read by more than the user):
        # `vcamswap status`, the tray and `run`'s own stdout give the full URL.
        log.info("MJPEG preview at http://%s:%d/ (the URL with its token: vcamswap status)", self.host, self.port)

    def send(self, frame_bgr: np.ndarray) -> None:
        if self._server is None:
            raise OutputUnavailable("the MJPEG server is not running")
        self._hub.publish(check_bgr(frame_bgr, "frame"))

    def close(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._hub.close()
        server.close()
