"""`vcamswap panel`: the running daemon's control panel in the default browser (or only its address)."""

from __future__ import annotations

import argparse
import logging
import webbrowser
from collections.abc import Callable

from vcamswap.console import fail, say

log = logging.getLogger("vcamswap.panel")


def open_in_browser(url: str) -> bool:
    """The panel in the user's default browser; False when there is no browser to open."""
    return webbrowser.open(url)


def opener(url: Callable[[], str | None]) -> Callable[[], None]:
    """The tray's "Open control panel": the panel's address (with the token) in the default browser."""

    def open_panel() -> None:
        where = url()
        if where is None:
            log.warning("the control panel is not running")
        elif not open_in_browser(where):
            log.warning("no browser to open; the control panel is at %s", where)

    return open_panel


def cmd_panel(args: argparse.Namespace) -> int:
    # the socket client only; the panel's server runs in the daemon
    from vcamswap.daemon.client import request
    from vcamswap.daemon.protocol import IpcError

    try:
        reply = request({"cmd": "status"})
    except IpcError as e:
        return fail(str(e), 1)
    url = reply.get("panel_url")
    if not isinstance(url, str):
        return fail("the daemon serves no control panel (its log says why)", 2)
    say(url)
    if not args.no_browser:
        if not open_in_browser(url):
            say("no browser to open; open the address above")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("panel", help="open the running daemon's control panel in the browser (prints its address)")
    p.add_argument("--no-browser", action="store_true", help="only print the address (it holds your token)")
    p.set_defaults(func=cmd_panel)
