"""`vcamswap serve`: where it listens, TLS, the token, the tunnel, and the one line to give the laptop.

The gRPC front (serve.gate) listens where --listen says (127.0.0.1:8001 by default); off loopback it needs
TLS (--tls CERT KEY) or an explicit --insecure, and always a token. It passes on health (open to all, for
probes), model metadata and inference (with the token when one is set) and nothing else: model control is
off. The HTTP door (serve.http_gate) answers the same calls as KServe v2 over HTTP on 127.0.0.1 only, for a TLS
tunnel (--tunnel cloudflared|ngrok) or reverse proxy to carry. Triton itself (serve.launch) listens on a Unix
socket only this process reaches, with no secret on its command line. Metrics are off unless --metrics-port
asks for them (then on 127.0.0.1 of this machine).
"""

from __future__ import annotations

import ipaddress
import logging
import signal
import socket
import ssl
import sys
import sysconfig
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vcamswap.safepath import read_at_most
from vcamswap.serve.tunnel import Tunnel, TunnelError, find_tool, open_tunnel, wait_healthy

log = logging.getLogger("vcamswap.serve")
PEM_MAX_BYTES = 1 << 20


class ServeError(Exception):
    """The server cannot start as asked; the message is one line with the fix."""


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8001
    metrics_port: int = 0  # 0: no metrics
    tls: tuple[Path, Path] | None = None  # certificate, key (PEM)
    insecure: bool = False
    token: str | None = None
    max_batch: int = 16
    queue_delay_us: int = 2000
    http_port: int = 0  # the HTTP door on 127.0.0.1 (0: a free port, printed)
    tunnel: str | None = None  # "cloudflared" or "ngrok": a public HTTPS address for the HTTP door


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
    """Off loopback: TLS or an explicit --insecure, and a token. A TLS pair that works together."""
    if not is_loopback(o.host):
        if o.tls is None and not o.insecure:
            raise ServeError(f"listening on {o.host} sends faces over the network: give --tls CERT KEY "
                             "(or --insecure on a network you trust, e.g. behind a TLS tunnel)")
        if not o.token:
            raise ServeError(f"listening on {o.host} needs a shared token: --token-file FILE "
                             "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))' > FILE)")
    if o.tunnel:
        if not o.token:
            raise ServeError(f"--tunnel {o.tunnel} puts the server on a public address: it needs a shared token, "
                             "--token-file FILE (e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))' "
                             "> FILE)")
        try:
            find_tool(o.tunnel)
        except TunnelError as e:
            raise ServeError(str(e)) from None
    if o.tls is not None:
        read_tls(*o.tls)


def _read_pem(path: Path, what: str) -> bytes:
    try:
        data = read_at_most(path, PEM_MAX_BYTES)
    except OSError as e:
        raise ServeError(f"--tls: the {what} {path} cannot be read ({e.strerror or e})") from None
    if data is None:
        raise ServeError(f"--tls: the {what} {path} is over {PEM_MAX_BYTES >> 20} MB, not a PEM file")
    if b"-----BEGIN " not in data:
        raise ServeError(f"--tls: the {what} {path} holds no PEM block (-----BEGIN ...)")
    return data


def read_tls(cert: Path, key: Path) -> tuple[bytes, bytes]:
    """(certificate, key) PEM bytes, checked to be a certificate and its own key; ServeError in one line."""
    cert_pem, key_pem = _read_pem(cert, "certificate"), _read_pem(key, "key")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(cert, key, password=lambda: b"")  # an encrypted key fails here, not at a prompt
    except ssl.SSLError as e:
        why = "the key is not the certificate's" if "KEY_VALUES_MISMATCH" in str(e) else (e.reason or str(e))
        raise ServeError(f"--tls {cert} {key}: not a certificate and its key ({why}); give CERT first, "
                         "then its unencrypted KEY") from None
    except OSError as e:
        raise ServeError(f"--tls {cert} {key}: cannot be used ({e.strerror or e})") from None
    return cert_pem, key_pem


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


def address_line(o: ServeOptions, public: str | None = None) -> str:
    """The one line to give the laptop: the tunnel's public HTTPS address, else the gRPC one."""
    token = " --token-file FILE (the same token)" if o.token else ""
    if public:
        return f"swap server ready: on the laptop run  vcamswap run --engine remote --server {public}{token}"
    host = o.host
    if host in ("0.0.0.0", "::"):
        host = _outward_ip() or host
    scheme = "grpcs" if o.tls else "grpc"
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
    from vcamswap.serve import private

    check_options(o)
    tls = read_tls(*o.tls) if o.tls is not None else None
    for problem in (libpython_problem(), pytriton_problem()):
        if problem:
            raise ServeError(problem)
    if o.metrics_port and not port_free("127.0.0.1", o.metrics_port):
        raise ServeError(f"port {o.metrics_port} is in use: stop what holds it or choose another (--metrics-port)")
    from vcamswap.engines import EngineUnavailable
    from vcamswap.engines.inswapper import InswapperEngine
    from vcamswap.serve.gate import Gate
    from vcamswap.serve.http_gate import HttpGate
    from vcamswap.serve.launch import LaunchError, PrivateTriton
    from vcamswap.serve.models import bind

    private.make_private()
    # PyTriton logs a traceback per failed request; the gate says each refusal in one line, rate-limited.
    logging.getLogger("pytriton").setLevel(logging.ERROR)
    removed = private.clean_leftovers()
    if removed:
        log.warning("removed what %d stopped swap servers left behind", len(removed))
    try:
        engine = InswapperEngine(models_dir, provider=provider)
    except EngineUnavailable as e:
        raise ServeError(str(e)) from None
    triton = PrivateTriton(private.make_workdir(), o.metrics_port)
    gate = Gate(triton.socket, o.token)
    door = HttpGate(gate)
    tunnel: Tunnel | None = None
    try:
        try:
            gate.bind(o.host, o.port, tls)
        except OSError as e:
            raise ServeError(f"{e}; stop what holds it or choose another (--listen)") from None
        try:
            http_port = door.bind(o.http_port)
        except OSError as e:
            raise ServeError(f"cannot listen on 127.0.0.1:{o.http_port} ({e.strerror or e}); stop what holds it "
                             "or choose another (--http-port)") from None
        names = bind(triton, engine, o.max_batch, o.queue_delay_us)
        try:
            triton.start()
        except LaunchError as e:
            raise ServeError(str(e)) from None
        gate.start()
        door.start()
        metrics = f"http://127.0.0.1:{o.metrics_port}/metrics" if o.metrics_port else "off"
        emit(f"serving {', '.join(names)} on {engine.choice.name} (batches up to {o.max_batch}, "
             f"queue delay {o.queue_delay_us} us); metrics {metrics}")
        emit(f"HTTP (KServe v2) on http://127.0.0.1:{http_port}, this machine only: for a TLS tunnel or reverse proxy")
        public = None
        if o.tunnel:
            tunnel = _open_tunnel(o.tunnel, http_port, emit)
            public = tunnel.url
        emit(address_line(o, public))
        sys.stdout.flush()
        _wait(triton)
    finally:
        if tunnel is not None:
            tunnel.stop()
        door.stop()
        gate.stop()
        triton.stop()
    return 0


def _open_tunnel(name: str, port: int, emit: Any) -> Tunnel:
    try:
        tunnel = open_tunnel(name, port)
    except TunnelError as e:
        raise ServeError(str(e)) from None
    emit(f"{name} tunnel {tunnel.url} -> http://127.0.0.1:{port}; waiting until it answers health")
    sys.stdout.flush()
    if not wait_healthy(tunnel.url):
        log.warning("%s does not answer health through the tunnel yet (its name may still be spreading); "
                    "the laptop's engine keeps trying", tunnel.url)
    return tunnel


def _wait(triton: Any) -> None:
    """Until SIGTERM, Ctrl-C, or Triton stops."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while triton.is_alive() and not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
