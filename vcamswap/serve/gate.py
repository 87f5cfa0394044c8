"""The one door to the swap server: a gRPC front on --listen that passes on health, model metadata and
inference only, checks the token itself, and answers refusals in one short line.

Triton listens on a Unix socket only this process can reach (serve.launch); the gate forwards each allowed
call's bytes unchanged, without the token, so no secret ever reaches Triton's command line. Every other
call of Triton's protocol (model control, shared memory, statistics, trace, logging, configuration) is refused
here, whatever the token. Health stays open so load balancers and probes can ask whether the server is up.
"""

from __future__ import annotations

import hmac
import logging
import re
import threading
import time
from collections.abc import Callable
from concurrent import futures
from typing import Any

log = logging.getLogger("vcamswap.serve")

SERVICE = "inference.GRPCInferenceService"
TOKEN_HEADER = "triton-grpc-protocol-triton-access-token"  # the header Triton's own restriction reads
HEALTH = ("ServerLive", "ServerReady", "ModelReady")
NEEDS_TOKEN = ("ServerMetadata", "ModelMetadata", "ModelInfer")
MAX_MESSAGE = 8 << 20  # a batch of 16 raw crops is 0.8 MB
MAX_CALL_S = 60.0
WORKERS = 32  # calls in flight at once; the dynamic batcher joins them
LINE_MAX = 200
REFUSED = re.compile(r"\bRefused: ([^\n]+)")
PATHS = re.compile(r"(?<![\w/])(?:~|\.{1,2})?/(?:[\w.-]+/)*[\w.-]+")


def client_line(details: str | None) -> str:
    """What a client is told of a failed call: one short line, no traceback, no file path of this machine."""
    text = details or ""
    m = REFUSED.findall(text)
    if m:
        line = m[-1]
    elif "Traceback" in text or "\n" in text.strip():
        line = "the server could not process the request"
    else:
        line = text
    line = PATHS.sub("<path>", " ".join(line.split()))
    return line[:LINE_MAX] or "the server could not process the request"


class RateLimitedLog:
    """One log line per event, at most `burst` a `window`; the rest counted and said in one line after."""

    def __init__(self, burst: int = 10, window: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.burst, self.window, self.clock = burst, window, clock
        self._lock = threading.Lock()
        self._start = clock()
        self._said = self._held = 0

    def warn(self, line: str) -> bool:
        """Log `line` (True) or count it (False)."""
        with self._lock:
            now = self.clock()
            held = 0
            if now - self._start >= self.window:
                held, self._start, self._said, self._held = self._held, now, 0, 0
            say = self._said < self.burst
            if say:
                self._said += 1
            else:
                self._held += 1
        if held:
            log.warning("%d more refused requests not shown", held)
        if say:
            log.warning("%s", line)
        return say

    def flush(self) -> None:
        """Say how many were held back, if any (at stop)."""
        with self._lock:
            held, self._held = self._held, 0
        if held:
            log.warning("%d more refused requests not shown", held)


class Gate:
    """The gRPC front. bind() first (a port in use is said before Triton starts), then start()."""

    def __init__(self, upstream: str, token: str | None) -> None:
        import grpc

        self._grpc = grpc
        limits = [("grpc.max_receive_message_length", MAX_MESSAGE), ("grpc.max_send_message_length", MAX_MESSAGE)]
        self.channel = grpc.insecure_channel(upstream, options=limits)
        self.token = token.encode() if token else None
        self.refusals = RateLimitedLog()
        handlers = {m: self._forwarder(m, needs_token=m in NEEDS_TOKEN) for m in (*HEALTH, *NEEDS_TOKEN)}
        self._handlers = {f"/{SERVICE}/{m}": grpc.unary_unary_rpc_method_handler(h) for m, h in handlers.items()}
        gate = self

        class Handler(grpc.GenericRpcHandler):
            def service(self, details: Any) -> Any:
                found = gate._handlers.get(details.method)
                return found or grpc.unary_unary_rpc_method_handler(gate._refuser(str(details.method)))

        # so_reuseport off: a second server on the same port must fail to bind, not share it.
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="gate"),
                                  handlers=[Handler()], options=[*limits, ("grpc.so_reuseport", 0)])

    def bind(self, host: str, port: int, tls: tuple[bytes, bytes] | None) -> None:
        """Listen on host:port (TLS with (certificate, key) PEM); OSError when the port cannot be had."""
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            if tls is None:
                bound = self.server.add_insecure_port(address)
            else:
                creds = self._grpc.ssl_server_credentials([(tls[1], tls[0])])
                bound = self.server.add_secure_port(address, creds)
        except RuntimeError:  # grpcio raises where older versions returned 0
            bound = 0
        if not bound:
            raise OSError(f"cannot listen on {address}: the port is in use or the address is not this machine's")

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop(grace=1.0).wait(5.0)
        self.channel.close()
        self.refusals.flush()

    def _token_ok(self, context: Any) -> bool:
        if self.token is None:
            return True
        for key, value in context.invocation_metadata() or ():
            if key == TOKEN_HEADER:
                given = value if isinstance(value, bytes) else str(value).encode()
                return hmac.compare_digest(given, self.token)
        return False

    def _forwarder(self, method: str, needs_token: bool) -> Callable[[bytes, Any], bytes]:
        call = self.channel.unary_unary(f"/{SERVICE}/{method}")
        status = self._grpc.StatusCode

        def forward(request: bytes, context: Any) -> bytes:
            if needs_token and not self._token_ok(context):
                self.refusals.warn(f"refused {method} from {context.peer()}: no valid token")
                context.abort(status.PERMISSION_DENIED,
                              f"this server needs its token (header {TOKEN_HEADER}, restricted protocol)")
            remaining = context.time_remaining()
            timeout = MAX_CALL_S if remaining is None else max(0.001, min(remaining, MAX_CALL_S))
            try:
                answer: bytes = call(request, timeout=timeout)
                return answer
            except self._grpc.RpcError as e:
                code, line = e.code(), client_line(e.details())
                if method not in HEALTH and code not in (status.DEADLINE_EXCEEDED, status.CANCELLED):
                    self.refusals.warn(f"refused {method} from {context.peer()}: {line}")
                context.abort(code, line)
                raise  # abort raised already; this keeps the type checker content

        return forward

    def _refuser(self, method: str) -> Callable[[bytes, Any], bytes]:
        def refuse(request: bytes, context: Any) -> bytes:
            self.refusals.warn(f"refused {method.rsplit('/', 1)[-1][:60]} from {context.peer()}: not served here")
            context.abort(self._grpc.StatusCode.UNIMPLEMENTED,
                          "not served here: this server answers health, model metadata and inference only "
                          "(model control is off)")
            return b""

        return refuse
