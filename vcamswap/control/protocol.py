"""The control socket's protocol: where it lives, one JSON object per line each way, its limits and errors.

Request:  {"cmd": "status"}  or  {"cmd": "face", "arg": "next"}
Reply:    {"ok": true, ...}  or  {"ok": false, "error": "one line"}

The server (control/ipc.py) and the client (control/client.py) both speak it.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vcamswap.settings import runtime_dir

log = logging.getLogger("vcamswap.ipc")

Request = dict[str, Any]
Reply = dict[str, Any]
Handler = Callable[[Request], Reply]

SOCKET_NAME = "control.sock"
LOCK_NAME = "daemon.lock"
MAX_LINE = 64 * 1024  # a request is a few dozen bytes; anything this long is not one of ours
MAX_CLIENTS = 32
BUSY = "the daemon is busy (too many connections); try again"
# A connection must complete each request (one line) within this long of connecting or of its last reply;
# a slow or idle one is dropped then, and sooner when the table is full and a new client needs its place.
REQUEST_TIMEOUT_S = 10.0
IS_WINDOWS = sys.platform == "win32"


class IpcError(Exception):
    """Talking to the daemon failed; one-line message."""


class NotRunning(IpcError):
    """No daemon answers on the control socket."""


class DaemonRunning(Exception):
    """Another daemon owns the control socket."""

    def __init__(self, pid: int | None, address: str) -> None:
        who = f"pid {pid}" if pid else "pid unknown"
        super().__init__(
            f"another vcamswap daemon is running ({who}, control socket {address}); "
            "stop it with 'vcamswap stop' first"
        )
        self.pid = pid


def socket_path() -> Path:
    return runtime_dir() / SOCKET_NAME


def default_address() -> str:
    if IS_WINDOWS:
        user = os.environ.get("USERNAME", "user")
        return rf"\\.\pipe\vcamswap-{user}"
    return str(socket_path())


def error_reply(message: str) -> Reply:
    return {"ok": False, "error": message}


def decode_request(line: bytes) -> Request:
    """One request line -> dict with a string "cmd"; ValueError with a one-line reason otherwise."""
    try:
        req = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"malformed request (expected one JSON object per line): {e}") from None
    except RecursionError:
        raise ValueError("malformed request: nested too deeply") from None
    if not isinstance(req, dict) or not isinstance(req.get("cmd"), str):
        raise ValueError('malformed request: expected {"cmd": "...", ...}')
    return req


def answer(handler: Handler, line: bytes) -> bytes:
    """The reply line for one request line. Never raises: a handler bug becomes an error reply."""
    try:
        reply = handler(decode_request(line))
    except ValueError as e:
        reply = error_reply(str(e))
    except Exception as e:  # the daemon must outlive any request
        log.exception("control request failed")
        reply = error_reply(f"internal error: {type(e).__name__}: {e}")
    return (json.dumps(reply, default=str) + "\n").encode("utf-8")


def auth_key(create: bool = False) -> bytes:
    """Windows: the named pipe's per-user key, made anew by the server (create), read by the client."""
    path = runtime_dir() / "control.key"
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(secrets.token_bytes(32))
    try:
        return path.read_bytes()
    except OSError:
        raise NotRunning("no vcamswap daemon is running (start one with 'vcamswap daemon')") from None
