"""`vcamswap serve --tunnel cloudflared|ngrok`: a public HTTPS address for a server no one can connect to (a
notebook GPU has no inbound port), by the tunnel tool's own binary, found on PATH.

The tool is started pointing at the HTTP door on 127.0.0.1, its public URL read from what it prints, and the
URL asked for health through the tunnel before the laptop's line is printed. Both tools print the URL in
their own format; a tool that prints none within URL_WAIT_S is stopped and said in one line.
"""

from __future__ import annotations

import logging
import re
import shutil
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple

log = logging.getLogger("vcamswap.serve")

URL_WAIT_S = 45.0
HEALTH_WAIT_S = 90.0  # a quick tunnel's name can take a minute to resolve everywhere


class TunnelError(Exception):
    """The tunnel cannot be had; one line with the fix."""


class Tool(NamedTuple):
    argv: tuple[str, ...]  # {url} is the local address
    url: re.Pattern[str]  # group 1: the public URL
    hint: str


TOOLS = {
    # cloudflared prints the quick tunnel's URL in a box on stderr: "INF |  https://NAME.trycloudflare.com  |"
    "cloudflared": Tool(("tunnel", "--no-autoupdate", "--url", "{url}"),
                        re.compile(r"\|\s+(https://[A-Za-z0-9.-]+(?::\d{1,5})?)/?\s+\|"),
                        "install cloudflared (a single binary): https://developers.cloudflare.com/cloudflare-one/"
                        "connections/connect-networks/downloads/ , e.g. in a notebook: wget -q https://github.com/"
                        "cloudflare/cloudflared/releases/latest/download/cloudflared-linux-amd64 -O "
                        "/usr/local/bin/cloudflared && chmod +x /usr/local/bin/cloudflared"),
    # ngrok, asked for JSON logs on stdout, says {"msg":"started tunnel",...,"url":"https://NAME.ngrok-free.app"}
    "ngrok": Tool(("http", "{url}", "--log", "stdout", "--log-format", "json"),
                  re.compile(r'"msg":"started tunnel".*?"url":"(https://[^"]+)"'),
                  "install ngrok and give it your authtoken: https://ngrok.com/download , then "
                  "ngrok config add-authtoken TOKEN"),
}


def find_tool(name: str) -> str:
    """The tool's path on PATH; TunnelError with the install hint when it is absent."""
    if name not in TOOLS:
        raise TunnelError(f"--tunnel {name!r}: choose {' or '.join(TOOLS)}")
    path = shutil.which(name)
    if path is None:
        raise TunnelError(f"--tunnel {name}: {name} is not on PATH; {TOOLS[name].hint}")
    return path


@dataclass
class Tunnel:
    name: str
    proc: subprocess.Popen[str]
    url: str = ""
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=20))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def open_tunnel(name: str, port: int, url_wait_s: float = URL_WAIT_S) -> Tunnel:
    """Start the tool toward http://127.0.0.1:port; the Tunnel once its public URL is known, else TunnelError."""
    tool = TOOLS[name]
    argv = [find_tool(name), *(a.format(url=f"http://127.0.0.1:{port}") for a in tool.argv)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            text=True, errors="replace", start_new_session=True)
    tunnel = Tunnel(name, proc)
    found = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:  # read to the end, so the tool never blocks on a full pipe
            tunnel.lines.append(line.rstrip()[:300])
            m = tool.url.search(line) if not tunnel.url else None
            if m:
                tunnel.url = m.group(1).rstrip("/")
                found.set()
        found.set()
        if tunnel.url:
            log.warning("the %s tunnel stopped (exit %s): %s", name, proc.wait(), tunnel.lines[-1] if tunnel.lines
                        else "no output")

    threading.Thread(target=read, name=f"{name}-output", daemon=True).start()
    found.wait(url_wait_s)
    if not tunnel.url:
        tunnel.stop()
        last = tunnel.lines[-1] if tunnel.lines else "it printed nothing"
        raise TunnelError(f"--tunnel {name}: no public URL within {url_wait_s:.0f} s ({last})")
    return tunnel


def wait_healthy(url: str, wait_s: float = HEALTH_WAIT_S) -> bool:
    """Whether URL/v2/health/ready answers 200 (through the tunnel, its certificate checked) within wait_s."""
    ctx = ssl.create_default_context()
    deadline = time.monotonic() + wait_s
    while True:
        try:
            with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=5.0, context=ctx) as r:
                if r.status == 200:
                    return True
        except (urllib.error.URLError, OSError, ValueError) as e:
            log.debug("tunnel %s not answering yet: %s", url, e)
        if time.monotonic() >= deadline:
            return False
        time.sleep(1.0)
