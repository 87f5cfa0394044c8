"""`vcamswap doctor` lines for `vcamswap serve` on this machine: PyTriton present, a Python whose libpython
the Triton stub can load."""

from __future__ import annotations

from collections.abc import Iterable

from vcamswap.checks import Context, Line
from vcamswap.serve.server import libpython_problem


def check_serve(ctx: Context) -> Iterable[Line]:
    try:
        import pytriton  # noqa: F401
    except ImportError:
        return  # not a GPU box: nothing to say

    problem = libpython_problem()
    if problem:
        yield Line(False, "serve", problem.split("; ", 1)[0], problem.split("; ", 1)[-1])
    else:
        yield Line(True, "serve", "PyTriton present; this Python's shared libpython lets Triton's Python backend start")
