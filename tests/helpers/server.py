"""A real swap server (`vcamswap serve`, Triton through PyTriton) in its own process, for the remote tests.

It runs from the server's virtual environment (.venv-serve, made by .ci/setup from a Python with a shared
libpython); tests skip, saying so, only where that environment cannot exist.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SERVE_PYTHON = REPO / ".venv-serve" / "bin" / "python"
READY = "swap server ready"


def token_file_with(factory: pytest.TempPathFactory, token: str) -> Path:
    """A token file as a user writes one (the token and a newline), in a folder of its own."""
    p = factory.mktemp("token") / "token"
    p.write_text(token + "\n")
    return p


def serve_python() -> Path:
    """The server's Python, or a skip saying why it is absent."""
    if SERVE_PYTHON.is_file():
        return SERVE_PYTHON
    if not Path("/usr/bin/python3").is_file():
        pytest.skip("no Python with a shared libpython here (/usr/bin/python3): Triton's Python backend cannot run")
    pytest.fail(f"{SERVE_PYTHON} is missing: run .ci/setup (it makes the server's environment from /usr/bin/python3)")


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class Server:
    models: Path
    token_file: Path | None
    host: str = "127.0.0.1"
    ports: list[int] = field(default_factory=lambda: free_ports(3))  # gRPC, metrics, HTTP
    extra: tuple[str, ...] = ()
    metrics: bool = True  # --metrics-port ports[1]; off when False, as by default
    prefix: tuple[str, ...] = ()  # e.g. ("ip", "netns", "exec", NAME)
    proc: subprocess.Popen[str] | None = None
    log: list[str] = field(default_factory=list)
    ready_at: float = 0.0

    @property
    def url(self) -> str:
        scheme = "grpcs" if "--tls" in self.extra else "grpc"
        return f"{scheme}://{self.host}:{self.ports[0]}"

    @property
    def http_url(self) -> str:
        """The HTTP door on 127.0.0.1 (KServe v2), as a tunnel or reverse proxy reaches it."""
        return f"http://127.0.0.1:{self.ports[2]}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.ports[1]}/metrics"

    def start(self, timeout: float = 150.0, env: dict[str, str] | None = None) -> Server:
        cmd = [*self.prefix, str(serve_python()), "-m", "vcamswap", "serve", "--models", str(self.models),
               "--listen", f"{self.host}:{self.ports[0]}", "--http-port", str(self.ports[2]), *self.extra]
        if self.metrics:
            cmd += ["--metrics-port", str(self.ports[1])]
        if self.token_file is not None:
            cmd += ["--token-file", str(self.token_file)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        ready = threading.Event()
        threading.Thread(target=self._read, args=(ready,), daemon=True).start()
        if not ready.wait(timeout) or self.proc.poll() is not None:
            self.stop()
            raise AssertionError("the swap server did not start:\n" + "\n".join(self.log[-30:]))
        self.ready_at = time.monotonic()
        return self

    def _read(self, ready: threading.Event) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.log.append(line.rstrip())
            if READY in line:
                ready.set()
        ready.set()

    def pids(self) -> list[int]:
        """Every live process of the server (it runs in a session of its own): Python, Triton, Triton's stubs."""
        assert self.proc is not None
        return session_pids(self.proc.pid)

    def kill(self) -> None:
        """Kill the whole process group at once, as a crash or a pulled cable would."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


# ----------------------------------------------------------------------------------------------- /proc


def session_pids(sid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:  # after pid (comm): state ppid pgrp session
            out.append(int(d.name))
    return out


def socket_inodes(pids: list[int]) -> set[int]:
    inodes = set()
    for pid in pids:
        try:
            links = [os.readlink(f) for f in Path(f"/proc/{pid}/fd").iterdir()]
        except OSError:
            continue
        inodes.update(int(x[8:-1]) for x in links if x.startswith("socket:["))
    return inodes


def listening_tcp_ports(pids: list[int]) -> set[int]:
    """The TCP ports these processes listen on (IPv4 and IPv6)."""
    mine, ports = socket_inodes(pids), set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            cols = row.split()
            if cols[3] == "0A" and int(cols[9]) in mine:  # LISTEN
                ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


def listening_unix_paths(pids: list[int]) -> set[str]:
    mine, paths = socket_inodes(pids), set()
    for row in Path("/proc/net/unix").read_text().splitlines()[1:]:
        cols = row.split()
        if len(cols) >= 8 and cols[3] == "00010000" and int(cols[6]) in mine and cols[7].startswith("/"):
            paths.add(cols[7])  # flag 00010000: listening; abstract names start with @
    return paths


def shm_files(pids: list[int]) -> set[str]:
    """The /dev/shm files these processes have mapped or open."""
    out = set()
    for pid in pids:
        try:
            maps = Path(f"/proc/{pid}/maps").read_text()
            fds = [os.readlink(f) for f in Path(f"/proc/{pid}/fd").iterdir()]
        except OSError:
            continue
        out.update(line.split(None, 5)[5].removesuffix(" (deleted)") for line in maps.splitlines()
                   if len(line.split(None, 5)) == 6 and "/dev/shm/" in line)
        out.update(f for f in fds if f.startswith("/dev/shm/"))
    return out
