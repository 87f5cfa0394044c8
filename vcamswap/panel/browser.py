"""Opening the panel in the user's default browser (the tray's item and `vcamswap panel`)."""

from __future__ import annotations

import logging
import webbrowser
from collections.abc import Callable

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
