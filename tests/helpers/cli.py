"""Running the command line as a user does: `python -m vcamswap ...` in a subprocess."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path


def run_cli(
    *args: str, cwd: Path | None = None, timeout: float = 240, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vcamswap", *args], capture_output=True, text=True, timeout=timeout, cwd=cwd,
        env=None if env is None else dict(env), stdin=subprocess.DEVNULL,
    )
