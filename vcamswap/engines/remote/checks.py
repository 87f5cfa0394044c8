"""`vcamswap doctor` lines for the remote engine: server reachable, TLS, token, models served, and which
transport (gRPC or HTTPS) carries the swaps with its round trip."""

from __future__ import annotations

import time
from collections.abc import Iterable

import numpy as np

from vcamswap.checks import Context, Line
from vcamswap.choices import parse_codec
from vcamswap.console import first_line
from vcamswap.engines.remote.client import (
    Client,
    RemoteError,
    ServerDown,
    check_ca,
    parse_server,
    read_token,
)

ROUND_TRIPS = 5
WIRE = {"gRPC": "Triton's gRPC", "gRPC+TLS": "Triton's gRPC over TLS", "HTTP": "KServe v2 over HTTP/1.1, keep-alive",
        "HTTPS": "KServe v2 over HTTP/1.1 and TLS, keep-alive (a tunnel or reverse proxy)"}


def transport_line(client: Client) -> Line:
    """Which transport carries the swaps and the median round trip of a few real swaps over it."""
    from vcamswap.engines.remote import codec
    from vcamswap.engines.remote.measure import sample_crop

    address = client.address
    crop = sample_crop()[None]
    latent = np.full((1, codec.LATENT_SIZE), codec.LATENT_SIZE ** -0.5, np.float32)
    times = []
    try:
        for _ in range(ROUND_TRIPS):
            t0 = time.perf_counter()
            client.infer(codec.SWAP_MODEL, [("crop", crop), ("latent", latent)], "swapped")
            times.append((time.perf_counter() - t0) * 1000.0)
    except RemoteError as e:
        return Line(False, "remote transport", f"{address.transport}: a swap failed ({e})", None)
    rtt = sorted(times)[len(times) // 2]
    return Line(True, "remote transport", f"{address.transport} ({WIRE[address.transport]}): swap round trip "
                                          f"{rtt:.0f} ms (median of {ROUND_TRIPS}, {codec.SWAP_SIZE} px raw crop)")


def check_remote(ctx: Context) -> Iterable[Line]:
    s = ctx.settings
    if s.engine != "remote":
        return
    if not s.server:
        yield Line(False, "remote", "engine 'remote' needs a server",
                   "vcamswap run --engine remote --server grpc://HOST:PORT")
        return
    try:
        address, token, c = parse_server(s.server), read_token(s.token_file), parse_codec(s.remote_codec)
        ca_file = check_ca(s.server_ca)
    except ValueError as e:
        yield Line(False, "remote", str(e), "fix the setting or the file")
        return
    try:
        if not address.http:  # the HTTPS transport is the standard library's
            import tritonclient.grpc  # noqa: F401
    except ImportError as e:
        yield Line(False, "remote", f"tritonclient is not importable ({first_line(e)})",
                   "pip install 'vcamswap[remote]'")
        return
    # cv2 loads only for a remote engine
    from vcamswap.engines.remote import codec

    if not address.tls and address.host not in ("127.0.0.1", "localhost", "::1"):
        yield Line(False, "remote TLS", f"{address} is plain gRPC off this machine: faces travel unencrypted",
                   "serve with --tls CERT KEY and use grpcs://, or reach it through a TLS tunnel")
    client = Client(address, token, timeout=3.0, ca_file=ca_file)
    try:
        client.check([codec.SOURCE_MODEL, codec.swap_model(c)])
        yield Line(True, "remote", f"{address} answers, takes the token and serves {codec.swap_model(c)} ({c} crops)")
        yield transport_line(client)
    except ServerDown as e:
        yield Line(False, "remote", f"{e}", "start 'vcamswap serve' there, or check the address, tunnel and firewall")
    except RemoteError as e:
        fix = ("give the server's token with --token-file" if "token" in str(e) else
               "fix --server or --server-ca" if "TLS" in str(e) else None)
        yield Line(False, "remote", f"{e}", fix)
    finally:
        client.close()

