"""The HTTPS transport to the swap server: KServe v2 over HTTP/1.1 (engines.remote.v2wire), for a server behind a
TLS tunnel or reverse proxy (https://HOST[:PORT]), or on this machine for tests (http://127.0.0.1:PORT).

Standard library only (http.client, ssl): no event loop to host beside the daemon's threads. A pool of
keep-alive connections, one per request in flight, so N workers keep N requests going over N TLS
connections set up once; a connection the far side closed while idle is replaced once, transparently.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
from collections.abc import Sequence
from urllib.parse import quote

import numpy as np

from vcamswap.engines.remote import v2wire

ANSWER_MAX = 16 << 20
POOL_MAX = 32  # idle connections kept
# A proxy or tunnel answering for a server that is away (cloudflare's 530: origin unreachable): reconnect.
DOWN_STATUS = (502, 503, 504, 520, 521, 522, 523, 524, 530)
TOKEN_LINE = "the server refused the token (give the server's token with --token-file)"


class TransportError(Exception):
    """A failed call: `down` when the server (or the path to it) is away, else a refusal; one line."""

    def __init__(self, down: bool, line: str) -> None:
        super().__init__(line)
        self.down, self.line = down, line


class HttpTransport:
    """Thread-safe: each call takes a connection of its own from the pool."""

    def __init__(self, host: str, port: int, tls: bool, token: str | None, ca_file: str | None) -> None:
        self.host, self.port, self.tls = host, port, tls
        self.ctx = ssl.create_default_context(cafile=ca_file) if tls else None
        self.ca_file = ca_file
        self.headers = {v2wire.TOKEN_HEADER: token} if token else {}
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._closed = False

    # -- the calls the client makes

    def live(self, timeout: float) -> bool:
        return self._get("/v2/health/live", timeout)[0] == 200

    def ready(self, timeout: float) -> bool:
        return self._get("/v2/health/ready", timeout)[0] == 200

    def metadata(self, model: str, timeout: float) -> None:
        status, body = self._get(f"/v2/models/{quote(model, safe='')}", timeout, self.headers)
        if status != 200:
            raise _refusal(status, body)

    def infer(self, model: str, inputs: Sequence[tuple[str, np.ndarray]], output: str, timeout: float) -> np.ndarray:
        body, n = v2wire.infer_request(inputs, output)
        headers = {**self.headers, v2wire.HEADER_LENGTH: str(n), "Content-Type": "application/octet-stream"}
        status, answer, length = self._call("POST", f"/v2/models/{quote(model, safe='')}/infer", body, headers,
                                            timeout)
        if status != 200:
            raise _refusal(status, answer)
        try:
            outputs = v2wire.infer_answer(answer, {v2wire.HEADER_LENGTH: length} if length else {})
        except v2wire.WireError as e:
            raise TransportError(False, f"the answer is not KServe v2 ({e})") from None
        if output not in outputs:
            raise TransportError(False, f"the answer holds no {output!r}")
        return outputs[output]

    def close(self) -> None:
        with self._lock:
            self._closed, idle, self._idle = True, self._idle, []
        for c in idle:
            c.close()

    # -- connections

    def _get(self, path: str, timeout: float, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        status, body, _ = self._call("GET", path, None, headers or {}, timeout)
        return status, body

    def _take(self, timeout: float) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        if self.ctx is not None:
            return _HTTPS(self.host, self.port, timeout=timeout, context=self.ctx), False
        return _HTTP(self.host, self.port, timeout=timeout), False

    def _give(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < POOL_MAX:
                self._idle.append(conn)
                return
        conn.close()

    def _call(self, verb: str, path: str, body: bytes | None, headers: dict[str, str], timeout: float
              ) -> tuple[int, bytes, str | None]:
        """(status, body, Inference-Header-Content-Length) of one exchange; TransportError when none came."""
        for attempt in (0, 1):
            conn, reused = self._take(timeout)
            conn.timeout = timeout
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
            try:
                conn.request(verb, path, body=body, headers=headers)
                resp = conn.getresponse()
                size = int(resp.headers.get("Content-Length") or 0)
                if size > ANSWER_MAX:
                    conn.close()
                    raise TransportError(False, f"an answer of {size} bytes is over {ANSWER_MAX >> 20} MB")
                data = resp.read(ANSWER_MAX)
            except ssl.SSLCertVerificationError as e:
                conn.close()
                raise TransportError(False, self._tls_line(e)) from None
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                conn.close()
                if reused and attempt == 0:
                    continue  # the far side closed an idle keep-alive connection: once more on a fresh one
                raise TransportError(True, _os_line(e)) from None
            except http.client.BadStatusLine:
                conn.close()
                raise TransportError(False, self._not_http_line()) from None
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                if isinstance(e, ssl.SSLError) and not self.tls:
                    raise TransportError(False, self._not_http_line()) from None
                raise TransportError(True, _os_line(e)) from None
            if resp.will_close:
                conn.close()
            else:
                self._give(conn)
            return resp.status, data, resp.headers.get(v2wire.HEADER_LENGTH)
        raise TransportError(True, "the connection closed twice")  # not reached: the loop returns or raises

    def _tls_line(self, e: ssl.SSLCertVerificationError) -> str:
        why = str(getattr(e, "verify_message", "") or e.reason or e)
        if "hostname" in why.lower() or "ip address mismatch" in why.lower():
            return f"the server's TLS certificate is not for {self.host}; connect by a name it holds"
        if self.ca_file:
            return f"the server's TLS certificate is not signed by the CA in {self.ca_file} ({why})"
        return (f"the server's TLS certificate is not signed by a CA this machine trusts ({why}); "
                "give the CA that signed it with --server-ca CA.pem")

    def _not_http_line(self) -> str:
        if self.tls:
            return f"{self.host}:{self.port} does not answer HTTPS (a gRPC port? use grpcs://)"
        return f"{self.host}:{self.port} does not answer plain HTTP (TLS? use https://; gRPC? use grpc://)"


class _HTTP(http.client.HTTPConnection):
    def connect(self) -> None:
        super().connect()
        _no_delay(self.sock)


class _HTTPS(http.client.HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        _no_delay(self.sock)


def _no_delay(sock: socket.socket) -> None:
    """TLS sends a 48 KB crop as several records, one write each: none may wait for the far side's (delayed)
    ACK of the one before (Nagle)."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _refusal(status: int, body: bytes) -> TransportError:
    line = v2wire.error_text(body) or f"HTTP {status}"
    if status == 403 and "token" in line.lower():
        return TransportError(False, TOKEN_LINE)
    if status in DOWN_STATUS:
        return TransportError(True, f"HTTP {status}: {line}")
    return TransportError(False, line)


def _os_line(e: Exception) -> str:
    text = getattr(e, "strerror", None) or str(e) or type(e).__name__
    return " ".join(str(text).split())[:200]
