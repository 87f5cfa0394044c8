"""What the tray and `vcamswap status` say about the swap server: where it is, whether it answers, how fast.

Read from the engine's own fields (the client's up flag and its last round trip), never from the network,
so the daemon's monitor can take a snapshot once a second without waiting on the server.
"""

from __future__ import annotations

from typing import NamedTuple


class RemoteHealth(NamedTuple):
    server: str  # grpc://HOST:PORT or grpcs://HOST:PORT
    healthy: bool
    rtt_ms: float | None  # the last request's round trip; None before the first answer
    fallback: str  # what frames get while the server is away: "passthrough" or "lite"

    def line(self) -> str:
        """The tray's menu line."""
        if not self.healthy:
            return "Server away — " + ("swapping here (lite)" if self.fallback == "lite" else "passing through")
        if self.rtt_ms is None:
            return f"Server {self.server} — connected"
        return f"Server {self.server} — {self.rtt_ms:.0f} ms"

    def short(self) -> str:
        """The tooltip's part: a few words."""
        if not self.healthy:
            return "server away"
        return "server connected" if self.rtt_ms is None else f"server {self.rtt_ms:.0f} ms"

    def as_dict(self) -> dict[str, object]:
        return {"server": self.server, "healthy": self.healthy,
                "rtt_ms": None if self.rtt_ms is None else round(self.rtt_ms, 1), "fallback": self.fallback,
                "line": self.line()}


def remote_health(engine: object) -> RemoteHealth | None:
    """The health of `engine`'s swap server, or None for an engine that runs here."""
    if getattr(engine, "name", None) != "remote":
        return None  # and the remote modules stay unloaded
    from vcamswap.engines.fallback import FallbackEngine
    from vcamswap.engines.remote.engine import RemoteEngine

    fallback = "passthrough"
    if isinstance(engine, FallbackEngine):
        engine, fallback = engine.remote, "lite"
    if not isinstance(engine, RemoteEngine):
        return None
    return RemoteHealth(str(engine.address), engine.healthy(), engine.rtt_ms, fallback)
