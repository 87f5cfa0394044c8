"""The client side of the control socket: send one request to the running daemon."""

from __future__ import annotations

import json
import logging
import socket

from vcamswap.control.protocol import (
    BUSY,
    IS_WINDOWS,
    IpcError,
    NotRunning,
    Reply,
    Request,
    auth_key,
    default_address,
)

log = logging.getLogger("vcamswap.ipc")




def request(req: Request, address: str | None = None, timeout: float = 10.0) -> Reply:
    """Send one request and return the daemon's reply; NotRunning / IpcError with one line otherwise."""
    address = address or default_address()
    line = (json.dumps(req) + "\n").encode("utf-8")
    raw = _pipe_request(address, line) if IS_WINDOWS else _unix_request(address, line, timeout)
    try:
        reply = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise IpcError(f"the daemon sent a reply that is not JSON: {raw[:80]!r}") from None
    if not isinstance(reply, dict):
        raise IpcError("the daemon sent a reply that is not a JSON object")
    return reply


def _unix_request(address: str, line: bytes, timeout: float) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(address)
        except (FileNotFoundError, ConnectionRefusedError):
            raise NotRunning("no vcamswap daemon is running (start one with 'vcamswap daemon')") from None
        except PermissionError:
            raise IpcError(f"cannot connect to {address}: permission denied (another user's daemon?)") from None
        except BlockingIOError:
            raise IpcError(BUSY) from None
        except OSError as e:
            raise IpcError(f"cannot connect to {address}: {e.strerror or e}") from None
        buf = b""
        try:
            s.sendall(line)
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        except TimeoutError:
            raise IpcError(f"the daemon did not answer within {timeout:.0f} s") from None
        except (BrokenPipeError, ConnectionResetError):
            # A full daemon answers "busy" and closes at once, before our request is sent: read what it said.
            buf = buf or _leftover(s)
            if not buf:
                raise IpcError(BUSY) from None
        except OSError as e:
            raise IpcError(f"the control connection failed: {e.strerror or e}") from None
    if not buf:
        raise IpcError("the daemon closed the connection without a reply")
    return buf


def _leftover(s: socket.socket) -> bytes:
    """What the daemon sent before it closed the connection, if anything."""
    try:
        s.settimeout(1.0)
        return s.recv(65536)
    except OSError:
        return b""


def _pipe_request(address: str, line: bytes) -> bytes:
    from multiprocessing.connection import Client

    try:
        conn = Client(address, family="AF_PIPE", authkey=auth_key())
    except (FileNotFoundError, ConnectionRefusedError):
        raise NotRunning("no vcamswap daemon is running (start one with 'vcamswap daemon')") from None
    except Exception as e:
        raise IpcError(f"cannot connect to {address}: {e}") from None
    with conn:
        conn.send_bytes(line)
        return bytes(conn.recv_bytes())
