"""The panel's web server: uvicorn (Starlette's ASGI server) in one thread of the daemon, on 127.0.0.1 only."""

from __future__ import annotations

import logging
import socket
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import uvicorn

from vcamswap.outputs.previewauth import preview_token, with_token
from vcamswap.panel.guard import ENTRY
from vcamswap.panel.link import PanelLink
from vcamswap.panel.routes import Panel

if TYPE_CHECKING:
    from vcamswap.checks import Line
    from vcamswap.settings import Settings

log = logging.getLogger("vcamswap.panel")

HOST = "127.0.0.1"  # never another interface: the panel changes what the camera shows
PORT = 8090  # preferred, so a bookmark keeps working; another free port when it is taken
STOP_S = 3.0


def listen(port: int = PORT) -> socket.socket:
    """A listening socket on the loopback: `port`, or one the system picks when that one is taken."""
    for candidate in (port, 0):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, candidate))
        except OSError:
            sock.close()
            if candidate == 0:
                raise
            continue
        sock.listen(64)
        sock.set_inheritable(True)
        return sock
    raise OSError("no port to listen on")  # unreachable: port 0 binds or raises


class PanelServer:
    """Serves the panel over `link` until stop(); `url` is the address with the token, for the user only."""

    def __init__(self, link: PanelLink, port: int = PORT, token: str | None = None) -> None:
        self.sock = listen(port)
        self.port: int = self.sock.getsockname()[1]
        self.token = token or preview_token()
        self.panel = Panel(link)
        config = uvicorn.Config(self.panel.app(self.token, self.port), log_level="warning", access_log=False,
                                lifespan="off", timeout_graceful_shutdown=int(STOP_S), ws="none")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._serve, name="vcamswap-panel", daemon=True)

    @property
    def url(self) -> str:
        return with_token(f"http://{HOST}:{self.port}{ENTRY}", self.token)

    def start(self) -> PanelServer:
        self.thread.start()
        log.info("control panel at http://%s:%d%s (open it with 'vcamswap panel')", HOST, self.port, ENTRY)
        return self

    def _serve(self) -> None:
        try:
            self.server.run(sockets=[self.sock])
        except Exception as e:  # the panel failing must never take the camera down
            log.warning("the control panel stopped: %s: %s", type(e).__name__, e)

    def stop(self) -> None:
        self.panel.stopping.set()  # open event streams end
        self.server.should_exit = True
        self.thread.join(timeout=STOP_S + 2)
        self.sock.close()


def start_panel(link: PanelLink) -> PanelServer | None:
    """The panel's server, started; None (said in one line) when it cannot listen."""
    try:
        return PanelServer(link).start()
    except OSError as e:
        log.warning("no control panel: cannot listen on %s: %s", HOST, e.strerror or e)
        return None


def doctor_lines(settings: Settings, settings_file: Path | None) -> list[Line]:
    """`vcamswap doctor`'s lines for the panel's health section, without opening the camera the daemon holds."""
    # the checks load what they check; only when the user asks for them
    from vcamswap.checks import Context
    from vcamswap.settings import settings_path
    from vcamswap.tools.doctor import run_checks

    return run_checks(Context(settings, settings_file or settings_path(), probe_cameras=False, hash_models=False))

