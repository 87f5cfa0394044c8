"""The connection to the swap server: one transport shared by every worker (a gRPC channel, or a pool of
keep-alive HTTPS connections for a server behind a tunnel), bounded calls, the token on each request, and
reconnection with backoff while the server is away.

Thread-safe: tritonclient's gRPC client may be used from many threads for unary calls, the HTTPS transport
gives each call a connection of its own; the state (up/down, the current transport) is behind one lock. While
the server is down no call reaches the network: `call` raises ServerDown at once, and a probe thread looks
for the server's return.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import ssl
import stat
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Protocol
from urllib.parse import urlsplit

import numpy as np

from vcamswap.engines.remote.v2http import HttpTransport, TransportError
from vcamswap.safepath import read_at_most

log = logging.getLogger("vcamswap.remote")
# gRPC's C core logs a failed TLS handshake at info level on stderr; the error it raises says it in one line.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

TOKEN_HEADER = "triton-grpc-protocol-triton-access-token"  # the gRPC form of Triton's restricted-protocol header
BACKOFF_FIRST, BACKOFF_MAX = 0.2, 1.0  # seconds between probes; the cap keeps a return seen within ~1 s
PROBE_TIMEOUT = 1.0
CA_MAX_BYTES = 1 << 20
TOKEN_FILE_MAX = 4096
RTT_WINDOW = 15  # answered calls the shown round trip is the median of
DEFAULT_PORT = 8001
# Codes that mean "the server (or the path to it) is away": reconnect. Any other is a refused request.
DOWN_CODES = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED")


class RemoteError(Exception):
    """A request the server answered with a refusal (bad token, bad input); the message is one line."""


class ServerDown(RemoteError):
    """The server cannot be reached now; the client is reconnecting."""


SCHEMES = {"grpc": (False, False), "grpcs": (True, False), "http": (False, True), "https": (True, True)}
DEFAULT_PORTS = {"grpc": DEFAULT_PORT, "grpcs": DEFAULT_PORT, "http": 80, "https": 443}
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class ServerAddress(NamedTuple):
    host: str
    port: int
    tls: bool
    http: bool = False  # KServe v2 over HTTP(S) instead of gRPC

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def scheme(self) -> str:
        return ("https" if self.tls else "http") if self.http else ("grpcs" if self.tls else "grpc")

    @property
    def transport(self) -> str:
        return "HTTPS" if self.http and self.tls else "HTTP" if self.http else "gRPC+TLS" if self.tls else "gRPC"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def parse_server(text: str) -> ServerAddress:
    """grpc://HOST:PORT (plain), grpcs://HOST:PORT (TLS), https://HOST[:PORT] (a tunnel or reverse proxy), or
    http://127.0.0.1:PORT (this machine only); a bare HOST:PORT is grpc://."""
    raw = text.strip()
    parts = urlsplit(raw if "://" in raw else f"grpc://{raw}")
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise ValueError(f"server {text!r}: give grpc://HOST:PORT, grpcs://HOST:PORT (TLS) or https://HOST[:PORT]")
    if parts.path not in ("", "/") or parts.query:
        raise ValueError(f"server {text!r}: give the address alone, without a path (https://HOST[:PORT])")
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError:
        raise ValueError(f"server {text!r}: the port must be a number 1 to 65535") from None
    tls, over_http = SCHEMES[parts.scheme]
    if over_http and not tls and parts.hostname not in LOOPBACK:
        raise ValueError(f"server {text!r}: plain http:// is for this machine only; use https:// (faces travel "
                         "encrypted through the tunnel or proxy)")
    return ServerAddress(parts.hostname, port, tls, over_http)


def read_token(path: str | Path | None) -> str | None:
    """The shared token in `path` (first line, stripped); ValueError with one line when it cannot be used.

    At most TOKEN_FILE_MAX bytes are read: a huge file (or a device) is refused without being read through."""
    if not path:
        return None
    p = Path(path).expanduser()
    try:
        if not stat.S_ISREG(p.stat().st_mode):
            raise ValueError(f"token file {p}: not a regular file")
        data = read_at_most(p, TOKEN_FILE_MAX)
    except OSError as e:
        raise ValueError(f"token file {p}: cannot be read ({e.strerror or e})") from None
    if data is None:
        raise ValueError(f"token file {p}: over {TOKEN_FILE_MAX} bytes, not a token file (one line of a token)")
    try:
        lines = data.decode("utf-8").strip().splitlines()
    except UnicodeDecodeError:
        lines = []
    token = lines[0].strip() if lines else ""
    if not token or any(c.isspace() or not c.isprintable() for c in token):
        raise ValueError(f"token file {p}: must hold one token of printable characters without spaces")
    return token


def check_ca(path: str | Path | None) -> str | None:
    """The CA file for grpcs:// as a path, checked here so a bad one is one line, not gRPC's error."""
    if not path:
        return None
    p = Path(path).expanduser()
    try:
        if p.stat().st_size > CA_MAX_BYTES:
            raise ValueError(f"--server-ca {p}: over {CA_MAX_BYTES >> 20} MB, not a CA certificate")
        text = p.read_text(encoding="ascii", errors="replace")
    except OSError as e:
        raise ValueError(f"--server-ca {p}: cannot be read ({e.strerror or e})") from None
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise ValueError(f"--server-ca {p}: holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
    return str(p)


def speaks_tls(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether HOST:PORT completes a TLS handshake (its certificate unchecked): tells a TLS server apart."""
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])  # as gRPC offers it
    try:
        with socket.create_connection((host, port), timeout) as raw, ctx.wrap_socket(raw, server_hostname=host):
            return True
    except (OSError, ValueError):  # ssl.SSLError is an OSError; refused, reset, timed out
        return False


def tls_problem(address: ServerAddress, ca_file: str | None, line: str) -> str | None:
    """What is wrong with TLS when a connection failed with `line`: a setting to fix, not a server away."""
    low = line.lower()
    if not address.tls:
        if speaks_tls(address.host, address.port):
            return (f"{address}: the server speaks TLS; use grpcs://{address.target} "
                    "(with --server-ca CA.pem when a private CA signed its certificate)")
        return None
    if "handshake" not in low and "socket closed" not in low and "connection reset" not in low:
        return None  # refused, unreachable: away, not a TLS matter
    if not speaks_tls(address.host, address.port):
        return f"{address}: the server does not speak TLS; use grpc://{address.target}"
    if "peer name" in low or "hostname" in low:
        return f"{address}: the server's TLS certificate is not for {address.host}; connect by a name it holds"
    if ca_file:
        return f"{address}: the server's TLS certificate is not signed by the CA in {ca_file}"
    return (f"{address}: the server's TLS certificate is not signed by a CA this machine trusts; "
            "give the CA that signed it with --server-ca CA.pem")


def error_line(e: Exception) -> tuple[bool, str]:
    """(server away?, one line) for a tritonclient error."""
    status = str(getattr(e, "status", lambda: "")() or "")
    message = getattr(e, "message", lambda: str(e))() or str(e)
    text = " ".join(str(message).split())
    raised = re.findall(r"\b\w+(?:Error|Exception): (.+?)(?= \w+(?:Error|Exception): |$)", text)
    if "Traceback" in text and raised:  # a server-side exception: its own last message, not the traceback
        text = raised[-1]
    text = text[:200]
    down = any(status.endswith(code) for code in DOWN_CODES) or "failed to connect" in text.lower()
    if "restricted" in text.lower() or "access-token" in text.lower() or status.endswith("PERMISSION_DENIED"):
        return False, "the server refused the token (give the server's token with --token-file)"
    return down, text or type(e).__name__


class Client:
    """Calls to one server. `infer` is blocking and bounded by `timeout`; ServerDown while it is away."""

    def __init__(self, address: ServerAddress, token: str | None = None, timeout: float = 1.0,
                 ca_file: str | None = None, on_change: Callable[[bool], None] | None = None) -> None:
        self.address, self.timeout, self.ca_file, self.token = address, timeout, ca_file, token
        self.on_change = on_change
        self._lock = threading.Lock()
        self._up = True
        self._probe: threading.Thread | None = None
        self._closed = threading.Event()
        self._t: Transport = self._connect()
        self._rtts: deque[float] = deque(maxlen=RTT_WINDOW)

    def _connect(self) -> Transport:
        a = self.address
        if a.http:
            return HttpTransport(a.host, a.port, a.tls, self.token, self.ca_file)
        return GrpcTransport(a, self.token, self.ca_file)

    @property
    def up(self) -> bool:
        with self._lock:
            return self._up

    @property
    def rtt_ms(self) -> float | None:
        """The median round trip of the last few answered calls (steady enough to show); None before any."""
        with self._lock:
            recent = sorted(self._rtts)
        return recent[len(recent) // 2] if recent else None

    def infer(self, model: str, inputs: Sequence[tuple[str, np.ndarray]], output: str) -> np.ndarray:
        """One request's output; ServerDown (at once while away) or RemoteError."""
        with self._lock:
            if not self._up:
                raise ServerDown(f"the swap server {self.address} is unreachable; reconnecting")
            t = self._t
        t0 = time.perf_counter()
        try:
            answer = t.infer(model, inputs, output, self.timeout)
        except TransportError as e:
            if e.down:
                self.mark_down(e.line)
                raise ServerDown(f"the swap server {self.address} is unreachable; reconnecting") from None
            raise RemoteError(f"{self.address}: {e.line}") from None
        rtt = (time.perf_counter() - t0) * 1000.0
        with self._lock:
            self._rtts.append(rtt)
        return answer

    def check(self, models: Sequence[str]) -> None:
        """The server is ready, takes the token and serves `models`; ServerDown or RemoteError saying why."""
        t = self._t
        try:
            if not t.live(PROBE_TIMEOUT):
                raise ServerDown(f"{self.address}: the server is not live")
            for m in models:  # metadata is a restricted protocol: a bad token is refused here
                t.metadata(m, PROBE_TIMEOUT)
        except TransportError as e:
            line = e.line
            if "unknown model" in line.lower() or "not found" in line.lower():
                raise RemoteError(f"{self.address}: the server does not serve {', '.join(models)} ({line}); "
                                  "start it with 'vcamswap serve'") from None
            problem = tls_problem(self.address, self.ca_file, line) if e.down and not self.address.http else None
            if problem:
                raise RemoteError(problem) from None
            raise (ServerDown if e.down else RemoteError)(f"{self.address}: {line}") from None

    def mark_down(self, line: str) -> None:
        with self._lock:
            if not self._up:
                return
            self._up = False
            start = self._probe is None or not self._probe.is_alive()
            if start:
                self._probe = threading.Thread(target=self._reconnect, name="remote-probe", daemon=True)
        log.warning("swap server %s went away (%s); reconnecting", self.address, line)
        if self.on_change is not None:
            self.on_change(False)
        if start and self._probe is not None:
            self._probe.start()

    def _reconnect(self) -> None:
        """Probe with a fresh channel, backing off, until the server is ready again (or the client closes)."""
        delay = BACKOFF_FIRST
        while not self._closed.wait(delay):
            try:
                fresh = self._connect()
                if fresh.ready(PROBE_TIMEOUT):
                    with self._lock:
                        old, self._t, self._up = self._t, fresh, True
                    _close_quietly(old)
                    log.warning("swap server %s is back", self.address)
                    if self.on_change is not None:
                        self.on_change(True)
                    return
                _close_quietly(fresh)
            except Exception as e:  # any failure to reach it means: still away
                log.debug("swap server %s still away: %s", self.address, e)
            delay = min(delay * 2, BACKOFF_MAX)

    def close(self) -> None:
        self._closed.set()
        _close_quietly(self._t)


def _close_quietly(t: Transport) -> None:
    try:
        t.close()
    except Exception:  # closing a dead channel
        pass


class Transport(Protocol):
    """What the client asks of a way to the server; TransportError(down, line) when a call fails."""

    def live(self, timeout: float) -> bool: ...

    def ready(self, timeout: float) -> bool: ...

    def metadata(self, model: str, timeout: float) -> None: ...

    def infer(self, model: str, inputs: Sequence[tuple[str, np.ndarray]], output: str,
              timeout: float) -> np.ndarray: ...

    def close(self) -> None: ...


class GrpcTransport:
    """tritonclient's gRPC client, its errors turned into TransportError."""

    def __init__(self, address: ServerAddress, token: str | None, ca_file: str | None) -> None:
        import tritonclient.grpc as grpcclient

        self.headers = {TOKEN_HEADER: token} if token else {}
        # Short reconnect backoff in gRPC itself: its default grows to two minutes.
        args = [("grpc.initial_reconnect_backoff_ms", 100), ("grpc.max_reconnect_backoff_ms", 1000),
                ("grpc.min_reconnect_backoff_ms", 100), ("grpc.max_receive_message_length", 16 << 20)]
        self.c = grpcclient.InferenceServerClient(address.target, ssl=address.tls, root_certificates=ca_file,
                                                  channel_args=args)

    def _do(self, call: Callable[[], Any]) -> Any:
        from tritonclient.utils import InferenceServerException

        try:
            return call()
        except InferenceServerException as e:
            down, line = error_line(e)
            raise TransportError(down, line) from None

    def live(self, timeout: float) -> bool:
        return bool(self._do(lambda: self.c.is_server_live(client_timeout=timeout)))

    def ready(self, timeout: float) -> bool:
        return bool(self._do(lambda: self.c.is_server_ready(client_timeout=timeout)))

    def metadata(self, model: str, timeout: float) -> None:
        self._do(lambda: self.c.get_model_metadata(model, headers=self.headers, client_timeout=timeout))

    def infer(self, model: str, inputs: Sequence[tuple[str, np.ndarray]], output: str, timeout: float) -> np.ndarray:
        import tritonclient.grpc as grpcclient

        tensors = []
        for name, array in inputs:
            t = grpcclient.InferInput(name, list(array.shape), _triton_type(array))
            t.set_data_from_numpy(array)
            tensors.append(t)
        result = self._do(lambda: self.c.infer(model, tensors, outputs=[grpcclient.InferRequestedOutput(output)],
                                               client_timeout=timeout, headers=self.headers))
        out = result.as_numpy(output)
        if out is None:
            raise TransportError(False, f"the answer holds no {output!r}")
        answer: np.ndarray = out
        return answer

    def close(self) -> None:
        self.c.close()


def _triton_type(array: np.ndarray) -> str:
    from tritonclient.utils import np_to_triton_dtype

    name: str = np_to_triton_dtype(array.dtype)
    return name
