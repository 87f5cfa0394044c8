"""`vcamswap daemon`: its options and entry point (the commands that talk to it are in control/cli.py)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from vcamswap.daemon.app import Daemon
from vcamswap.options import add_run_options, apply_args
from vcamswap.settings import Settings, SettingsFile, load_settings, settings_path

log = logging.getLogger("vcamswap.daemon")


def settings_for_daemon(args: argparse.Namespace) -> tuple[Settings, SettingsFile]:
    path: Path = getattr(args, "settings", None) or settings_path()
    settings, problem = load_settings(path)
    if problem:
        log.warning("%s; changes made while running are not saved to it", problem)
    return apply_args(settings, args), SettingsFile(path, announced=problem is not None)


def cmd_daemon(args: argparse.Namespace) -> int:
    settings, settings_file = settings_for_daemon(args)
    daemon = Daemon(settings, settings_file, use_tray=not args.no_tray, use_hotkeys=not args.no_hotkeys)
    return daemon.run()


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "daemon", help="run in the background with a tray icon, global hotkeys and a control socket"
    )
    add_run_options(p)
    p.add_argument("--no-tray", action="store_true", help="no tray icon")
    p.add_argument("--no-hotkeys", action="store_true", help="no global hotkeys")
    p.set_defaults(func=cmd_daemon)
