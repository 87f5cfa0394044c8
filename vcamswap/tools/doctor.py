"""`vcamswap doctor`: one line per thing the daemon needs, "OK" or "problem" with the exact fix.

Checks are plain functions from a Context to lines (their contract is vcamswap.checks). Each lives beside
what it checks (capture/, outputs/, engines/, engines/remote/, serve/, faces/, daemon/: checks.py) and
collect() lists them all,
so what doctor shows never depends on which modules happened to be imported. A check that crashes is
reported as a problem line of its own, never as a traceback, so one broken check does not hide the others.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path

from vcamswap.capture.checks import check_cameras
from vcamswap.checks import Check, Context, Line
from vcamswap.choices import PRECISIONS
from vcamswap.console import first_line
from vcamswap.daemon.checks import CHECKS as DAEMON_CHECKS
from vcamswap.engines.checks import check_engines, check_providers
from vcamswap.engines.remote.checks import check_remote
from vcamswap.faces.checks import check_faces
from vcamswap.outputs.checks import check_virtual_camera
from vcamswap.serve.checks import check_serve
from vcamswap.settings import load_settings, settings_path

# ----------------------------------------------------------------------------------------------- settings


def check_settings(ctx: Context) -> Iterable[Line]:
    if ctx.settings_problem:
        yield Line(False, "settings", ctx.settings_problem,
                   f"correct {ctx.settings_file} at the line and column given, or delete it to use the defaults")
    elif ctx.settings_file.is_file():
        yield Line(True, "settings", f"{ctx.settings_file} parsed")
    else:
        yield Line(True, "settings", f"no settings file ({ctx.settings_file}); defaults in use")


# ----------------------------------------------------------------------------------------------- running


def collect() -> list[Check]:
    """Every check, in the order they print: each lives beside what it checks and is listed here."""
    return [check_settings, check_cameras, check_virtual_camera, check_engines, check_providers, check_remote,
            check_serve, check_faces, *DAEMON_CHECKS, *CHECKS]


CHECKS: list[Check] = []  # more checks, added with register_check(); they run after the collected ones


def register_check(check: Check) -> None:
    """Add a check of one's own (an integration's); it runs after the collected ones."""
    if check not in CHECKS:
        CHECKS.append(check)


def run_checks(ctx: Context, checks: Iterable[Check] | None = None) -> list[Line]:
    lines: list[Line] = []
    for check in list(collect() if checks is None else checks):
        try:
            lines.extend(check(ctx))
        except Exception as e:  # a crashing check is itself a finding; the rest still run
            topic = check.__name__.removeprefix("check_").replace("_", " ")
            lines.append(Line(False, topic, f"check failed: {first_line(e)}", "report this with 'vcamswap -v doctor'"))
    return lines


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="check cameras, virtual camera, engines, models, providers, settings, faces")
    p.add_argument("--settings", type=Path, help="settings file (default: the platform's config dir)")
    p.add_argument("--models", help="models folder")
    p.add_argument("--faces", help="faces folder")
    p.add_argument("--provider", help="check this execution provider instead of the setting")
    p.add_argument("--precision", choices=list(PRECISIONS), help="check this precision instead of the setting")
    p.add_argument("--no-cameras", action="store_true", help="list cameras without opening them")
    p.add_argument("--quick", action="store_true", help="check model sizes only, not their SHA-256")
    p.add_argument("--load-models", action="store_true", help="load the neural models to see where they run")
    p.add_argument("--manifest", type=Path, help="a model manifest other than the shipped one")
    p.set_defaults(func=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    path = args.settings or settings_path()
    settings, problem = load_settings(path)
    for name in ("models", "faces", "provider", "precision"):
        value = getattr(args, name, None)
        if value is not None:
            setattr(settings, name, value)
    ctx = Context(
        settings, path, problem,
        probe_cameras=not args.no_cameras, hash_models=not args.quick, load_models=args.load_models,
        manifest=args.manifest,
    )
    lines = run_checks(ctx)
    for line in lines:
        print(line.render(), flush=True)
    bad = sum(not line.ok for line in lines)
    print(f"{bad} problem{'s' if bad != 1 else ''} found" if bad else "all checks passed", file=sys.stderr)
    return 1 if bad else 0
