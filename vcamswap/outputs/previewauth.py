"""Who may watch the MJPEG preview: the user alone, by a random token only they can read.

The token lives in a 0600 file in the user's config dir, so it stays the same across restarts (a bookmarked
preview URL keeps working) and other local users cannot read it. The `Host` header is checked too, so a web
page that rebinds its own name to 127.0.0.1 is refused even before the token is looked at.
"""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path
from urllib.parse import parse_qs

from vcamswap.atomic import write_atomic
from vcamswap.settings import config_dir

TOKEN_FILE = "preview-token"
TOKEN_PARAM = "token"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]")


def token_path() -> Path:
    return config_dir() / TOKEN_FILE


def preview_token(path: Path | None = None) -> str:
    """This user's preview token, created (0600) on first use."""
    path = path or token_path()
    try:
        text = path.read_text(encoding="ascii").strip()
        if len(text) >= 32 and text.isalnum():
            return text
    except (OSError, UnicodeDecodeError):
        pass
    token = secrets.token_hex(24)
    write_atomic(path, token + "\n", mode=0o600)  # the product's own file, never the user's
    return token


def host_allowed(host: str | None) -> bool:
    """A Host header naming this machine's loopback (any port), or none at all (not a browser)."""
    if host is None:
        return True
    name = host.strip().lower()
    if name.startswith("["):
        name = name.split("]", 1)[0] + "]"
    else:
        name = name.rsplit(":", 1)[0] if name.count(":") == 1 else name
    return name in LOCAL_HOSTS


def token_matches(query: str, token: str | None) -> bool:
    """Whether the URL's query carries `token` (always true when no token is asked for)."""
    if token is None:
        return True
    given = parse_qs(query).get(TOKEN_PARAM, [""])[0]
    return hmac.compare_digest(given.encode(), token.encode())


def with_token(url: str, token: str | None) -> str:
    return url if token is None else f"{url}?{TOKEN_PARAM}={token}"
