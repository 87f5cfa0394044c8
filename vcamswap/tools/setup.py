"""`vcamswap setup`: check the virtual camera path, print the exact steps, run them with --yes, verify.

Linux: v4l2loopback with a "Swap Cam" device (vcamswap.outputs.vcam_setup decides), then a test pattern read back
from the device. macOS / Windows: what to install, then whether pyvirtualcam can send to it.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

from vcamswap.console import say, warn
from vcamswap.control.client import request
from vcamswap.control.protocol import IpcError
from vcamswap.outputs.v4l2 import VCAM_LABEL
from vcamswap.outputs.vcam_setup import INSTALL_COMMANDS, Step, persist_steps, plan_linux, read_state
from vcamswap.settings import config_dir

OTHER_HINTS = {
    "Darwin": "install OBS Studio 30 or newer (https://obsproject.com) and start its Virtual Camera once "
              "(Tools > Start Virtual Camera); call apps then list 'OBS Virtual Camera'",
    "Windows": "install OBS Studio 30 or newer (https://obsproject.com) and start its Virtual Camera once, or "
               f"install Unity Capture and name its device \"{VCAM_LABEL}\"",
}


def _fail(line: str) -> int:
    warn(line)
    return 1


def package_manager() -> str | None:
    return next((name for name in INSTALL_COMMANDS if shutil.which(name)), None)


def setup_linux(root: Path, yes: bool) -> int:
    state = read_state(root)
    plan = plan_linux(state, package_manager())
    for ok, line in plan.findings:
        say(f"{'OK     ' if ok else 'problem'}  {line}")
    if plan.blocked:
        return _fail(plan.blocked)
    persist, notes = persist_steps(root, plan, config_dir() / "setup", ask=yes)
    for note in notes:
        say(note)
    steps = plan.steps + persist
    if steps and not yes:
        _show(steps, bool(plan.steps))
        if plan.steps:
            return 1
    elif steps:  # --yes
        sudo = os.geteuid() != 0
        if sudo and (shutil.which("sudo") is None or not sys.stdin.isatty()):
            return _fail("these steps need root: run 'sudo vcamswap setup --yes' (or 'vcamswap setup' for them)")
        if not all(_run(step, sudo) for step in steps):
            return 1
        state = read_state(root)
    cam = state.swap_cam()
    if cam is None:
        return _fail(f"there is still no device labelled '{VCAM_LABEL}'; see 'sudo dmesg | tail' for why")
    if cam.exclusive_caps is False:
        return _fail(f"{cam.path} is there but without exclusive_caps=1: browsers and call apps will not list it")
    return _verify(cam.path)


def _show(steps: list[Step], camera_missing: bool) -> None:
    sudo = os.geteuid() != 0
    say("to set up Swap Cam, run:" if camera_missing else "to keep Swap Cam across reboots, run:")
    for step in steps:
        say(f"  {step.command(sudo)}    # {step.why}")
    say("or let 'vcamswap setup --yes' run them (through sudo)")


def _run(step: Step, sudo: bool) -> bool:
    say(f"+ {step.command(sudo)}")
    argv = (["sudo"] if sudo else []) + list(step.argv)
    try:
        code = subprocess.run(argv).returncode
    except OSError as e:
        _fail(f"cannot run {step.argv[0]}: {e.strerror or e}")
        return False
    if code != 0:
        _fail(f"this step failed (exit status {code}): {step.command(sudo)}")
        return False
    return True


def _verify(device: str) -> int:
    # cv2 loads only to read the test pattern back
    from vcamswap.outputs.vcam_readback import check_linux

    if _daemon_running():
        say(f"OK       the daemon is running and sends to {device}; not interrupting it with a test pattern")
        return 0
    result = check_linux(device)
    if not result.ok:
        return _fail(result.text)
    say(f"OK       {result.text}")
    say(f"pick '{VCAM_LABEL}' as the camera in your call app")
    return 0


def _daemon_running() -> bool:
    try:
        request({"cmd": "ping"}, timeout=2.0)
    except IpcError:
        return False
    return True


def setup_other(system: str) -> int:
    # cv2 loads only to read the test pattern back
    from vcamswap.outputs.vcam_readback import check_other

    hint = OTHER_HINTS.get(system)
    if hint is None:
        return _fail(f"no virtual camera for {system or 'this system'}; use --output mjpeg or a file")
    result = check_other(system)
    if not result.ok:
        say(f"problem  {result.text}")
        say(f"to set it up: {hint}; then run 'vcamswap setup' again")
        return 1
    say(f"OK       {result.text}")
    return 0


def cmd_setup(args: argparse.Namespace) -> int:
    system = platform.system()
    if system == "Linux":
        return setup_linux(Path(args.root), args.yes)
    return setup_other(system)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("setup", help="set up the Swap Cam virtual camera: print the steps, run them with --yes")
    p.add_argument("--yes", action="store_true", help="run the steps (as root, or through sudo in a terminal)")
    p.add_argument("--root", default="/", help=argparse.SUPPRESS)  # the system's files under another root
    p.set_defaults(func=cmd_setup)
