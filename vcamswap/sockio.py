"""Reading a non-blocking socket from a selector loop, as the control socket and the MJPEG gate both do."""

from __future__ import annotations

import socket

GONE = None  # what recv_ready returns when the peer closed or the socket failed: drop the connection


def recv_ready(sock: socket.socket, size: int) -> bytes | None:
    """The bytes waiting on `sock` (b"" when nothing is ready yet), or GONE when the peer is gone.

    A selector can wake a loop for a socket that then has nothing to read (a signal, a spurious wake-up): that
    is not a closed peer, so it must not drop the connection.
    """
    try:
        data = sock.recv(size)
    except (BlockingIOError, InterruptedError):
        return b""
    except OSError:
        return GONE
    return data if data else GONE
