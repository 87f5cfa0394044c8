"""The swap server's HTTP door: KServe v2 over HTTP/1.1 (JSON header + binary tensors, as Triton's own HTTP endpoint
and tritonclient.http speak it) on 127.0.0.1 only, for a TLS tunnel (cloudflared, ngrok) or a TLS-terminating
reverse proxy to carry where no gRPC port can be opened (a notebook GPU).

The same rules as the gRPC gate (serve.gate), whose upstream channel and token it shares: health open; server and
model metadata and inference with the token (header `triton-access-token`); every other path refused in one line.
Each allowed call is translated to Triton's gRPC message and sent up the private Unix socket; the answer comes back
as KServe v2. Refusals are logged one line each, rate-limited. Bodies are bounded (Content-Length required, at most
gate.MAX_MESSAGE), connections are bounded, idle keep-alive connections close after IDLE_S.
"""

from __future__ import annotations

import hmac
import json
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from vcamswap.engines.remote import v2wire
from vcamswap.serve.gate import MAX_CALL_S, MAX_MESSAGE, SERVICE, Gate, RateLimitedLog, client_line

MAX_CONNECTIONS = 64
IDLE_S = 30.0
NAME = r"([A-Za-z0-9_.-]{1,64})(?:/versions/([0-9]{1,9}))?"
ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("GET", re.compile(r"/v2/health/(live)"), "ServerLive"),
    ("GET", re.compile(r"/v2/health/(ready)"), "ServerReady"),
    ("GET", re.compile(rf"/v2/models/{NAME}/ready"), "ModelReady"),
    ("GET", re.compile(r"/v2"), "ServerMetadata"),
    ("GET", re.compile(rf"/v2/models/{NAME}"), "ModelMetadata"),
    ("POST", re.compile(rf"/v2/models/{NAME}/infer"), "ModelInfer"),
]
OPEN = ("ServerLive", "ServerReady", "ModelReady")
NOT_SERVED = "not served here: this server answers health, model metadata and inference only (model control is off)"
# gRPC status -> HTTP status; 502-504 tell the client the server (or the path to it) is away.
HTTP_STATUS = {"PERMISSION_DENIED": 403, "NOT_FOUND": 404, "UNIMPLEMENTED": 404, "INVALID_ARGUMENT": 400,
               "UNAVAILABLE": 503, "DEADLINE_EXCEEDED": 504, "CANCELLED": 503, "RESOURCE_EXHAUSTED": 429}


class Answer(Exception):
    """A finished answer other than 200: an HTTP status and one line."""

    def __init__(self, status: int, line: str) -> None:
        super().__init__(line)
        self.status, self.line = status, line


class Upstream:
    """Triton's gRPC calls as protobuf messages, over the gate's channel."""

    def __init__(self, channel: Any) -> None:
        from tritonclient.grpc import service_pb2 as pb

        self.pb = pb
        self.calls: dict[str, Callable[..., Any]] = {}
        for method, req, resp in (("ServerLive", pb.ServerLiveRequest, pb.ServerLiveResponse),
                                  ("ServerReady", pb.ServerReadyRequest, pb.ServerReadyResponse),
                                  ("ModelReady", pb.ModelReadyRequest, pb.ModelReadyResponse),
                                  ("ServerMetadata", pb.ServerMetadataRequest, pb.ServerMetadataResponse),
                                  ("ModelMetadata", pb.ModelMetadataRequest, pb.ModelMetadataResponse),
                                  ("ModelInfer", pb.ModelInferRequest, pb.ModelInferResponse)):
            self.calls[method] = channel.unary_unary(f"/{SERVICE}/{method}", request_serializer=req.SerializeToString,
                                                     response_deserializer=resp.FromString)

    def call(self, method: str, request: Any) -> Any:
        import grpc

        try:
            return self.calls[method](request, timeout=MAX_CALL_S)
        except grpc.RpcError as e:
            code = e.code().name if e.code() is not None else "UNKNOWN"
            raise Answer(HTTP_STATUS.get(code, 500), client_line(e.details())) from None

    def handle(self, method: str, groups: tuple[str | None, ...], body: bytes, length: str | None
               ) -> tuple[int, bytes, dict[str, str]]:
        """(status, body, extra headers) of one allowed call."""
        pb = self.pb
        model, version = (groups[0] or "", groups[1] or "") if len(groups) == 2 else ("", "")
        if method in ("ServerLive", "ServerReady"):
            ok = self.call(method, getattr(pb, f"{method}Request")())
            return (200, b"", {}) if (ok.live if method == "ServerLive" else ok.ready) else (503, b"", {})
        if method == "ModelReady":
            ok = self.call(method, pb.ModelReadyRequest(name=model, version=version))
            return (200, b"", {}) if ok.ready else (503, b"", {})
        if method == "ServerMetadata":
            m = self.call(method, pb.ServerMetadataRequest())
            return 200, _json({"name": m.name, "version": m.version, "extensions": list(m.extensions)}), {}
        if method == "ModelMetadata":
            m = self.call(method, pb.ModelMetadataRequest(name=model, version=version))
            return 200, _json({"name": m.name, "versions": list(m.versions), "platform": m.platform,
                               "inputs": [_meta(t) for t in m.inputs], "outputs": [_meta(t) for t in m.outputs]}), {}
        return self._infer(model, version, body, length)

    def _infer(self, model: str, version: str, body: bytes, length: str | None) -> tuple[int, bytes, dict[str, str]]:
        pb = self.pb
        try:
            header, rest = v2wire.split(body, length)
            inputs = v2wire.tensors(header.get("inputs"), rest, "inputs")
            wanted = _wanted(header)
        except v2wire.WireError as e:
            raise Answer(400, str(e)) from None
        request = pb.ModelInferRequest(model_name=model, model_version=version, id=str(header.get("id", ""))[:64])
        for t in inputs:
            request.inputs.add(name=t.name, datatype=t.datatype, shape=t.shape)
            request.raw_input_contents.append(t.data)
        for name in wanted:
            request.outputs.add(name=name)
        r = self.call("ModelInfer", request)
        outputs = [v2wire.Tensor(o.name, o.datatype, list(o.shape), bytes(raw))
                   for o, raw in zip(r.outputs, r.raw_output_contents, strict=False)]
        head: dict[str, Any] = {"model_name": r.model_name, "model_version": r.model_version, "outputs": []}
        if r.id:
            head["id"] = r.id
        default = bool((header.get("parameters") or {}).get("binary_data_output", False))
        blobs: list[bytes] = []
        for t in outputs:  # the binary outputs' bytes follow the header in the order they are listed
            entry: dict[str, Any] = {"name": t.name, "datatype": t.datatype, "shape": t.shape}
            if wanted.get(t.name, default):
                entry["parameters"] = {"binary_data_size": len(t.data)}
                blobs.append(t.data)
            else:
                entry["data"] = v2wire.to_array(t).reshape(-1).tolist()
            head["outputs"].append(entry)
        head_bytes = _json(head)
        if not blobs:
            return 200, head_bytes, {}
        return 200, b"".join([head_bytes, *blobs]), {v2wire.HEADER_LENGTH: str(len(head_bytes)),
                                                     "Content-Type": "application/octet-stream"}


def _wanted(header: dict[str, Any]) -> dict[str, bool]:
    """Requested output name -> whether it goes back in binary."""
    outs = header.get("outputs") or []
    params = header.get("parameters") or {}
    if not isinstance(outs, list) or not isinstance(params, dict):
        raise v2wire.WireError("outputs or parameters are not of the right kind")
    wanted: dict[str, bool] = {}
    for o in outs[:16]:
        if not isinstance(o, dict) or not isinstance(o.get("name"), str):
            raise v2wire.WireError("an entry of outputs has no name")
        p = o.get("parameters") or {}
        if not isinstance(p, dict) or "classification" in p:
            raise v2wire.WireError(f"{o['name'][:64]}: classification is not served")
        wanted[o["name"][:64]] = bool(p.get("binary_data", params.get("binary_data_output", False)))
    return wanted


def _meta(t: Any) -> dict[str, Any]:
    return {"name": t.name, "datatype": t.datatype, "shape": [int(d) for d in t.shape]}


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


class HttpGate:
    """KServe v2 over HTTP on 127.0.0.1. bind() before Triton starts (a port in use is said first), then start()."""

    def __init__(self, gate: Gate) -> None:
        self.gate = gate
        self.upstream = Upstream(gate.channel)
        self.refusals = RateLimitedLog()  # its own burst: a flood on one door leaves the other's lines said
        self.server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def bind(self, port: int) -> int:
        """Listen on 127.0.0.1:port (0: a free one); the port. OSError when it cannot be had."""
        self.server = _Server(("127.0.0.1", port), _handler(self))
        return int(self.server.server_address[1])

    def start(self) -> None:
        assert self.server is not None
        self._thread = threading.Thread(target=self.server.serve_forever, name="http-gate", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self.server is not None:
            if self._thread is not None:
                self.server.shutdown()
            self.server.server_close()
        self.refusals.flush()

    def token_ok(self, given: str | None) -> bool:
        token = self.gate.token
        return token is None or (given is not None and hmac.compare_digest(given.encode(), token))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):  # too many connections: one line, and closed
            try:
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                                b"Connection: close\r\nContent-Length: 42\r\n\r\n"
                                b'{"error":"too many connections, try again"}'[:42])
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


def _route(verb: str, path: str) -> tuple[str, re.Match[str]] | None:
    for v, pattern, method in ROUTES:
        m = pattern.fullmatch(path) if v == verb else None
        if m is not None:
            return method, m
    return None


def _handler(door: HttpGate) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: one TLS connection through the tunnel carries many swaps
        server_version, sys_version = "vcamswap", ""
        timeout = IDLE_S
        disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_PUT(self) -> None:
            self._serve("PUT")

        def do_DELETE(self) -> None:
            self._serve("DELETE")

        def _serve(self, verb: str) -> None:
            path = self.path.split("?", 1)[0]
            found = _route(verb, path)
            try:
                body = self._body(verb)
                if found is None:
                    raise Answer(404, NOT_SERVED)
                method, match = found
                if method not in OPEN and not door.token_ok(self.headers.get(v2wire.TOKEN_HEADER)):
                    raise Answer(403, f"this server needs its token (header {v2wire.TOKEN_HEADER})")
                groups = match.groups() if method not in ("ServerLive", "ServerReady") else ()
                status, answer, extra = door.upstream.handle(method, groups, body,
                                                             self.headers.get(v2wire.HEADER_LENGTH))
            except Answer as e:
                if e.status not in (503, 504) or found is None or found[0] not in OPEN:
                    what = found[0] if found else path[:60]
                    door.refusals.warn(f"refused HTTP {verb} {what!r} from {self._peer()}: {e.line}")
                status, answer, extra = e.status, v2wire.error_body(e.line), {}
            self._send(status, answer, extra)

        def _body(self, verb: str) -> bytes:
            if self.headers.get("Transfer-Encoding"):
                self.close_connection = True
                raise Answer(411, "send the body with a Content-Length, not chunked")
            if (self.headers.get("Content-Encoding") or "identity").lower() != "identity":
                self.close_connection = True
                raise Answer(415, "compressed bodies are not served; send it uncompressed")
            text = self.headers.get("Content-Length") or "0"
            if not text.isdigit():
                self.close_connection = True
                raise Answer(400, "Content-Length is not a number")
            n = int(text)
            if n > MAX_MESSAGE:
                self.close_connection = True  # the body stays unread
                raise Answer(413, f"a body of {n} bytes is over the {MAX_MESSAGE >> 20} MB limit")
            return self.rfile.read(n) if n else b""

        def _send(self, status: int, body: bytes, extra: dict[str, str]) -> None:
            self.send_response(status)
            self.send_header("Content-Type", extra.pop("Content-Type", "application/json"))
            self.send_header("Content-Length", str(len(body)))
            for k, v in extra.items():
                self.send_header(k, v)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def _peer(self) -> str:
            headers = getattr(self, "headers", None)  # absent when the request line itself was refused
            via = (headers.get("X-Forwarded-For") or headers.get("CF-Connecting-IP") or "") if headers else ""
            peer = f"{self.client_address[0]}:{self.client_address[1]}"
            return peer + (f" for {re.sub(r'[^0-9A-Fa-f.:, ]', '?', via)[:60]}" if via else "")

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            # http.server's own refusals (a bad request line, headers too long): one JSON line, no page
            self.close_connection = True
            line = " ".join((message or self.responses.get(code, ("refused",))[0]).split())[:200]
            door.refusals.warn(f"refused HTTP request from {self._peer()}: {code} {line}")
            self._send(code, v2wire.error_body(line), {})

        def log_message(self, format: str, *args: Any) -> None:
            pass  # refusals are logged once each, rate-limited; answered calls are not logged

    return Handler
