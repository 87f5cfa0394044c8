"""The contract of a `vcamswap doctor` check: a plain function from a Context to lines.

Each check lives beside what it checks (capture/checks.py, outputs/checks.py, engines/checks.py, ...) and
takes its types from here; tools.doctor lists them all and runs them.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from vcamswap.settings import Settings


class Line(NamedTuple):
    ok: bool
    topic: str
    text: str
    fix: str | None = None

    def render(self) -> str:
        head = "OK     " if self.ok else "problem"
        tail = f" -- fix: {self.fix}" if self.fix and not self.ok else ""
        return f"{head}  {self.topic}: {self.text}{tail}"


@dataclass
class Context:
    settings: Settings
    settings_file: Path
    settings_problem: str | None = None
    system: str = field(default_factory=platform.system)
    sysfs: str = "/sys/class/video4linux"  # outputs.v4l2.SYSFS_V4L, without importing the outputs
    dev: str = "/dev"
    probe_cameras: bool = True  # open the cameras and read a frame
    hash_models: bool = True  # SHA-256 the neural models (a few seconds)
    load_models: bool = False  # create the neural models' sessions to see where they land
    manifest: Path | None = None  # a model manifest other than the shipped one


Check = Callable[[Context], Iterable[Line]]
