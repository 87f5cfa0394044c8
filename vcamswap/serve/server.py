"""Triton Inference Server through PyTriton: where it listens, TLS, the token, and the one line to give the laptop.

gRPC listens where --listen says (127.0.0.1:8001 by default); off loopback it needs TLS (--tls CERT KEY) or an
explicit --insecure, and always a token. Every protocol but health is restricted to requests carrying the
token, so load balancers and probes can still ask whether the server is up. HTTP and metrics stay on
127.0.0.1 (PyTriton drives the server over HTTP; metrics are for this machine's Prometheus).
"""

from __future__ import annotations

import ipaddress
import logging
import signal
import socket
import sys
import sysconfig
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("vcamswap.serve")

# Everything except health needs the token (PyTriton's names for Triton's restricted protocols).
RESTRICTED = ["metadata", "inference", "shared-memory", "model-config", "model-repository", "statistics", "trace",
              "logging"]


class ServeError(Exception):
    """The server cannot start as asked; the message is one line with the fix."""


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8001
    http_port: int = 8000
    metrics_port: int = 8002
    tls: tuple[Path, Path] | None = None  # certificate, key (PEM)
    insecure: bool = False
    token: str | None = None
    max_batch: int = 16
    queue_delay_us: int = 2000


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ServeError(f"--listen {text!r}: give HOST:PORT, e.g. 0.0.0.0:8001")
    return host.strip("[]") or "0.0.0.0", int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_options(o: ServeOptions) -> None:
    """Off loopback: TLS or an explicit --insecure, and a token."""
    if is_loopback(o.host):
        return
    if o.tls is None and not o.insecure:
        raise ServeError(f"listening on {o.host} sends faces over the network: give --tls CERT KEY "
                         "(or --insecure on a network you trust, e.g. behind a TLS tunnel)")
    if not o.token:
        raise ServeError(f"listening on {o.host} needs a shared token: --token-file FILE "
                         "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))' > FILE)")
    for p in o.tls or ():
        if not p.is_file():
            raise ServeError(f"--tls: {p} is not a readable file")


def libpython_problem() -> str | None:
    """Why Triton's Python-backend stub cannot start with this Python (it links a shared libpython), or None."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    fix = ("make the server's virtual environment from a Python built with --enable-shared, e.g. Debian's: "
           "/usr/bin/python3 -m venv ~/.venv-serve && ~/.venv-serve/bin/pip install 'vcamswap[serve]'")
    if not sysconfig.get_config_var("Py_ENABLE_SHARED"):
        return f"this Python {version} ({sys.executable}) has no shared libpython; {fix}"
    libdir = Path(sysconfig.get_config_var("LIBDIR") or "")
    name = sysconfig.get_config_var("LDLIBRARY") or f"libpython{version}.so"
    if not any((d / name).exists() for d in (libdir, Path("/usr/lib"), Path("/usr/lib/x86_64-linux-gnu"))):
        return f"libpython ({name}) of this Python {version} is not in {libdir}; {fix}"
    return None


def pytriton_problem() -> str | None:
    try:
        import pytriton  # noqa: F401
    except ImportError as e:
        return f"PyTriton is not importable ({e}); pip install 'vcamswap[serve]'"
    return None


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Triton binds: a restart may follow a crash
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def triton_configs(o: ServeOptions) -> tuple[Any, Any]:
    """(TritonConfig, TritonSecurityConfig) for these options."""
    from pytriton.triton import TritonConfig, TritonSecurityConfig

    tls: dict[str, Any] = {}
    if o.tls is not None:
        tls = {"grpc_use_ssl": True, "grpc_server_cert": o.tls[0], "grpc_server_key": o.tls[1]}
    config = TritonConfig(
        grpc_address=o.host, grpc_port=o.port, http_address="127.0.0.1", http_port=o.http_port,
        metrics_address="127.0.0.1", metrics_port=o.metrics_port, allow_gpu_metrics=False, log_verbose=0,
        exit_on_error=True, **tls)
    # No token on loopback means nobody but this machine's users can reach it; restrict nothing then.
    security = TritonSecurityConfig(access_token=o.token, restricted_endpoints=RESTRICTED if o.token else [])
    return config, security


def address_line(o: ServeOptions) -> str:
    host = o.host
    if host in ("0.0.0.0", "::"):
        host = _outward_ip() or host
    scheme = "grpcs" if o.tls else "grpc"
    token = " --token-file FILE (the same token)" if o.token else ""
    return f"swap server ready: on the laptop run  vcamswap run --engine remote --server {scheme}://{host}:{o.port}{token}"


def _outward_ip() -> str | None:
    """This machine's address on its default route (no packet is sent)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))
            ip: str = s.getsockname()[0]
            return ip
    except OSError:
        return None


def serve(o: ServeOptions, models_dir: Path | None, provider: str | None, emit: Any = print) -> int:
    """Run until interrupted; ServeError (one line) when it cannot start."""
    check_options(o)
    for problem in (libpython_problem(), pytriton_problem()):
        if problem:
            raise ServeError(problem)
    for port in (o.port, o.http_port, o.metrics_port):
        if not port_free(o.host if port == o.port else "127.0.0.1", port):
            raise ServeError(f"port {port} is in use: stop what holds it or choose others (--listen, --http-port, "
                             "--metrics-port)")
    from vcamswap.engines import EngineUnavailable
    from vcamswap.engines.inswapper import InswapperEngine
    from vcamswap.serve.models import bind

    try:
        engine = InswapperEngine(models_dir, provider=provider)
    except EngineUnavailable as e:
        raise ServeError(str(e)) from None
    logging.getLogger("pytriton").setLevel(logging.WARNING)
    from pytriton.triton import Triton

    config, security = triton_configs(o)
    with Triton(config=config, security_config=security) as triton:
        names = bind(triton, engine, o.max_batch, o.queue_delay_us)
        triton.run()
        emit(f"serving {', '.join(names)} on {engine.choice.name} (batches up to {o.max_batch}, "
             f"queue delay {o.queue_delay_us} us); metrics on http://127.0.0.1:{o.metrics_port}/metrics")
        emit(address_line(o))
        sys.stdout.flush()
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            while triton.is_alive() and not stop.wait(1.0):
                pass
        except KeyboardInterrupt:
            pass
    return 0
