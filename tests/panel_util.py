"""A plain HTTP client of the daemon's control panel, for tests that check what it answers and refuses."""

from __future__ import annotations

import http.client
import json
import uuid
from typing import Any, NamedTuple
from urllib.parse import urlsplit


class Answer(NamedTuple):
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


class PanelClient:
    """Talks to the panel at `url` (the daemon's panel_url, token included) with raw http.client requests, so
    every header (Host, Origin, Cookie) is exactly what the test says."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        assert parts.hostname is not None and parts.port is not None
        self.host, self.port = parts.hostname, parts.port
        self.entry = f"{parts.path}?{parts.query}"
        self.origin = f"http://{self.host}:{self.port}"
        self.cookie: str | None = None

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
                cookie: bool = True, timeout: float = 30) -> Answer:
        h = {"Host": f"{self.host}:{self.port}"}
        if cookie and self.cookie:
            h["Cookie"] = self.cookie
        if method not in ("GET", "HEAD"):
            h["Origin"] = self.origin
        h.update(headers or {})
        h = {k: v for k, v in h.items() if v is not None}
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for k, v in h.items():
                conn.putheader(k, v)
            if body is not None:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            r = conn.getresponse()
            return Answer(r.status, r.headers, r.read())
        finally:
            conn.close()

    def login(self) -> Answer:
        """The entry page with the token: keeps the cookie it sets."""
        a = self.request("GET", self.entry, cookie=False)
        set_cookie = a.headers.get("Set-Cookie", "")
        self.cookie = set_cookie.split(";", 1)[0] or None
        return a

    def intent(self, cmd: str, arg: str | None = None, **headers: str) -> Answer:
        body = json.dumps({"cmd": cmd, **({"arg": arg} if arg is not None else {})}).encode()
        return self.request("POST", "/panel/api/intent", body, {"Content-Type": "application/json", **headers})

    def upload(self, data: bytes, filename: str, name: str | None = None) -> Answer:
        boundary = uuid.uuid4().hex
        parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="photo"; filename="{filename}"\r\n'
                 f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n"]
        if name is not None:
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\n{name}\r\n'.encode())
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        return self.request("POST", "/panel/api/faces", body,
                            {"Content-Type": f"multipart/form-data; boundary={boundary}"})
