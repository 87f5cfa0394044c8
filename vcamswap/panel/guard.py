"""Who may use the panel: the user alone, from the panel's own page, on this machine's loopback.

Every request passes three checks before any route sees it:
* Host must name the loopback (127.0.0.1, localhost, [::1]) and the panel's port: a web page whose name was
  rebound to 127.0.0.1 (DNS rebinding) sends its own name and gets 403.
* Origin, when sent, must be the panel's own; a request that changes anything (not GET/HEAD) must send it:
  a page on another origin can neither read nor change anything. Sec-Fetch-Site says the same where sent.
* The per-user token (the MJPEG preview's, a 0600 file): the URL carries it once, on the entry page, which
  answers with an HttpOnly SameSite=Strict cookie scoped to the panel's path and sends the browser on to the
  address without it. Every other request needs the cookie; without it, 403.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import parse_qs

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse, RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from vcamswap.outputs.previewauth import LOCAL_HOSTS, TOKEN_PARAM

ROOT = "/panel"  # every route, and the cookie's path: the preview on another port never receives it
ENTRY = ROOT + "/"
COOKIE = "vcamswap_panel"
SAFE_METHODS = ("GET", "HEAD")
NO_TOKEN = "403 the control panel needs your token: open it with 'vcamswap panel'"


def cookie_value(token: str) -> str:
    """What the cookie holds: derived from the token, so the cookie alone never opens the MJPEG preview."""
    return hmac.new(token.encode(), b"vcamswap control panel", hashlib.sha256).hexdigest()


def split_host(host: str) -> tuple[str, str | None]:
    """("127.0.0.1", "8090") from "127.0.0.1:8090"; IPv6 names keep their brackets."""
    host = host.strip().lower()
    if host.startswith("["):
        name, _, rest = host.partition("]")
        return name + "]", rest[1:] if rest.startswith(":") else None
    name, sep, port = host.rpartition(":")
    return (name, port) if sep else (host, None)


class Guard:
    """The checks above, as ASGI middleware in front of every route (streams included)."""

    def __init__(self, app: ASGIApp, token: str, port: int) -> None:
        self.app = app
        self.token = token
        self.port = port
        self.cookie = cookie_value(token)
        self.origins = {f"http://{h}:{port}" for h in LOCAL_HOSTS}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        why = self.refusal(scope["method"], headers)
        if why is None and scope["path"] == ENTRY and scope["method"] in SAFE_METHODS and self.token_in(scope):
            # The token has done its work: the cookie takes over and the address loses the token.
            response = RedirectResponse(ENTRY, status_code=303)
            response.set_cookie(COOKIE, self.cookie, path=ROOT, httponly=True, samesite="strict")
            response.headers["Cache-Control"] = "no-store"
            response.headers["Referrer-Policy"] = "no-referrer"
            return await response(scope, receive, send)
        if why is None and not self.has_cookie(headers):
            why = NO_TOKEN
        if why is not None:
            return await PlainTextResponse(why + "\n", status_code=403)(scope, receive, send)
        await self.app(scope, receive, send)

    def refusal(self, method: str, headers: Headers) -> str | None:
        """Why a request is refused before its token is looked at, in one line; None when it may go on."""
        host = headers.get("host")
        if host is None:
            return "403 no Host header"
        name, port = split_host(host)
        if name not in LOCAL_HOSTS or (port is not None and port != str(self.port)):
            return "403 the control panel answers only at 127.0.0.1 or localhost"
        origin = headers.get("origin")
        if origin is not None and origin.lower() not in self.origins:
            return "403 a page on another origin cannot use the control panel"
        if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            return "403 a page on another site cannot use the control panel"
        if method not in SAFE_METHODS and origin is None:
            return "403 a change must come from the control panel's own page"
        return None

    def has_cookie(self, headers: Headers) -> bool:
        for part in headers.get("cookie", "").split(";"):
            key, _, value = part.strip().partition("=")
            if key == COOKIE and hmac.compare_digest(value.encode(), self.cookie.encode()):
                return True
        return False

    def token_in(self, scope: Scope) -> bool:
        query = scope.get("query_string", b"").decode("latin-1")
        given = parse_qs(query).get(TOKEN_PARAM, [""])[0]
        return hmac.compare_digest(given.encode(), self.token.encode())
