"""`vcamswap panel`: the running daemon's control panel in the default browser (or only its address)."""

from __future__ import annotations

import argparse

from vcamswap.console import fail, say
from vcamswap.control.client import request
from vcamswap.control.protocol import IpcError
from vcamswap.panel.browser import open_in_browser


def cmd_panel(args: argparse.Namespace) -> int:
    try:
        reply = request({"cmd": "status"})
    except IpcError as e:
        return fail(str(e), 1)
    url = reply.get("panel_url")
    if not isinstance(url, str):
        return fail("the daemon serves no control panel (its log says why)", 2)
    say(url)
    if not args.no_browser and not open_in_browser(url):
        say("no browser to open; open the address above")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("panel", help="open the running daemon's control panel in the browser (prints its address)")
    p.add_argument("--no-browser", action="store_true", help="only print the address (it holds your token)")
    p.set_defaults(func=cmd_panel)
