"""A warning said once per distinct message: a stage that fails on every frame logs its first failure, not
thirty a second, and a new reason is still heard."""

from __future__ import annotations

import logging


class WarnOnce:
    """Call with a message: logged as a warning on `log` the first time, ignored after."""

    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        self._said: set[str] = set()

    def __call__(self, message: str) -> None:
        if message not in self._said:
            self._said.add(message)
            self.log.warning("%s", message)
