"""`vcamswap service install|uninstall|status`: start the daemon with the user's session.

Linux: a systemd user unit (plus the v4l2loopback snippets, applied with one sudo command we print);
macOS: a launchd agent; Windows: a .cmd in the Startup folder. The templates are the files under
`service/` in the source tree, kept here too so an installed package can write them.

A file the user changed is never replaced without asking (or --force); install and uninstall can be run
any number of times.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from vcamswap.atomic import write_atomic
from vcamswap.console import ask, say, warn
from vcamswap.control.client import request
from vcamswap.control.protocol import IpcError
from vcamswap.outputs.v4l2 import (
    MODPROBE_DEST,
    MODULES_LOAD_DEST,
    V4L2LOOPBACK_MODPROBE,
    V4L2LOOPBACK_MODULES_LOAD,
    VCAM_LABEL,
    find_v4l2_device,
)
from vcamswap.settings import config_dir

MARKER = "Written by `vcamswap service install`"
UNIT_NAME = "vcamswap.service"
AGENT_LABEL = "org.vcamswap.daemon"

SYSTEMD_UNIT = """\
# vcamswap: swaps your face live into the "Swap Cam" virtual camera.
# Written by `vcamswap service install`; `vcamswap service uninstall` removes it.
[Unit]
Description=vcamswap - live face swap into the Swap Cam virtual camera
# The tray icon and the hotkeys need the desktop, so it starts with the graphical session.
PartOf=graphical-session.target
After=graphical-session.target

[Service]
Type=simple
ExecStart=@PYTHON@ -m vcamswap daemon
Environment=PYTHONUNBUFFERED=1
Restart=on-failure
RestartSec=5

[Install]
WantedBy=graphical-session.target
"""

LAUNCHD_AGENT = """\
<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<!-- vcamswap: swaps your face live into the virtual camera.
     Written by `vcamswap service install`; `vcamswap service uninstall` removes it. -->
<plist version="1.0">
<dict>
  <key>Label</key>
  <string>org.vcamswap.daemon</string>
  <key>ProgramArguments</key>
  <array>
    <string>@PYTHON@</string>
    <string>-m</string>
    <string>vcamswap</string>
    <string>daemon</string>
  </array>
  <key>RunAtLoad</key>
  <true/>
  <key>KeepAlive</key>
  <dict>
    <key>SuccessfulExit</key>
    <false/>
  </dict>
  <key>ProcessType</key>
  <string>Interactive</string>
  <key>StandardOutPath</key>
  <string>@LOG@</string>
  <key>StandardErrorPath</key>
  <string>@LOG@</string>
</dict>
</plist>
"""

WINDOWS_STARTUP = """\
@echo off
rem vcamswap: swaps your face live into the virtual camera.
rem Written by `vcamswap service install`; `vcamswap service uninstall` removes it.
start "vcamswap" /b "@PYTHON@" -m vcamswap daemon
"""

# The files under service/ in the source tree, and the template each one is.
TEMPLATE_FILES: dict[str, str] = {
    "linux/vcamswap.service": SYSTEMD_UNIT,
    "linux/v4l2loopback.conf": V4L2LOOPBACK_MODPROBE,
    "linux/v4l2loopback-modules-load.conf": V4L2LOOPBACK_MODULES_LOAD,
    "macos/org.vcamswap.daemon.plist": LAUNCHD_AGENT,
    "windows/vcamswap-startup.cmd": WINDOWS_STARTUP,
}


@dataclass(frozen=True)
class Target:
    system: str  # "Linux" | "Darwin" | "Windows"
    path: Path  # where the start-up file goes
    content: str  # what we would write there
    newline: str = "\n"


def python_for_service(system: str) -> str:
    """This interpreter; on Windows its console-less twin, so no window stays open at login."""
    exe = Path(sys.executable)
    if system == "Windows":
        w = exe.with_name("pythonw.exe")
        if w.exists():
            return str(w)
    return str(exe)


def _systemd_quote(path: str) -> str:
    # systemd expands %-specifiers and splits on spaces unless quoted.
    return '"' + path.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%") + '"'


def target_for(system: str | None = None, home: Path | None = None, env: dict[str, str] | None = None) -> Target:
    system = system or platform.system()
    env = dict(os.environ) if env is None else env
    home = home or Path(env.get("HOME") or Path.home())
    python = python_for_service(system)
    if system == "Linux" or system not in ("Darwin", "Windows"):
        xdg = env.get("XDG_CONFIG_HOME")
        base = Path(xdg) if xdg else home / ".config"
        return Target("Linux", base / "systemd" / "user" / UNIT_NAME,
                      SYSTEMD_UNIT.replace("@PYTHON@", _systemd_quote(python)))
    if system == "Darwin":
        log = home / "Library" / "Logs" / "vcamswap.log"
        text = LAUNCHD_AGENT.replace("@PYTHON@", escape(python)).replace("@LOG@", escape(str(log)))
        return Target("Darwin", home / "Library" / "LaunchAgents" / f"{AGENT_LABEL}.plist", text)
    appdata = Path(env.get("APPDATA") or home / "AppData" / "Roaming")
    startup = appdata / "Microsoft" / "Windows" / "Start Menu" / "Programs" / "Startup"
    return Target("Windows", startup / "vcamswap.cmd", WINDOWS_STARTUP.replace("@PYTHON@", python), "\r\n")


def _read(path: Path) -> str | None:
    try:
        return path.read_bytes().decode("utf-8", "replace").replace("\r\n", "\n")
    except OSError:
        return None


# ---------------------------------------------------------------------------------------------------------
# systemd / launchd


def systemctl_problem() -> str | None:
    """Why `systemctl --user` cannot be used here, or None."""
    exe = shutil.which("systemctl")
    if exe is None:
        return "systemctl not found"
    try:
        r = subprocess.run([exe, "--user", "show-environment"], capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    if r.returncode != 0:
        return " ".join((r.stderr or r.stdout).split()) or f"exit status {r.returncode}"
    return None


def _systemctl(*args: str) -> tuple[bool, str]:
    exe = shutil.which("systemctl") or "systemctl"
    try:
        r = subprocess.run([exe, "--user", *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, str(e)
    return r.returncode == 0, " ".join((r.stdout + r.stderr).split())


def _enable_linux() -> None:
    problem = systemctl_problem()
    if problem:
        say(f"systemctl --user is not usable here ({problem}); once in your desktop session run:\n"
            f"  systemctl --user daemon-reload && systemctl --user enable --now {UNIT_NAME}")
        return
    for args in (("daemon-reload",), ("enable", "--now", UNIT_NAME)):
        ok, out = _systemctl(*args)
        if not ok:
            warn(f"systemctl --user {' '.join(args)} failed: {out}")
            return
    say(f"enabled and started {UNIT_NAME} (logs: journalctl --user -u {UNIT_NAME})")


def _disable_linux() -> None:
    if systemctl_problem() is None:
        _systemctl("disable", "--now", UNIT_NAME)
        _systemctl("daemon-reload")


def _launchctl(*args: str) -> tuple[bool, str]:
    exe = shutil.which("launchctl")
    if exe is None:
        return False, "launchctl not found"
    try:
        r = subprocess.run([exe, *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, str(e)
    return r.returncode == 0, " ".join((r.stdout + r.stderr).split())


def _enable_macos(path: Path) -> None:
    if platform.system() != "Darwin":
        return
    ok, out = _launchctl("bootstrap", f"gui/{os.getuid()}", str(path))
    say("started the launch agent" if ok else f"launchctl bootstrap: {out}; it starts at your next login")


def _disable_macos(path: Path) -> None:
    if platform.system() == "Darwin":
        _launchctl("bootout", f"gui/{os.getuid()}", str(path))


# ---------------------------------------------------------------------------------------------------------
# v4l2loopback


def v4l2loopback_command(folder: Path | None = None) -> str:
    """Write the module snippets next to the settings and return the one sudo command that applies them."""
    folder = folder or config_dir() / "service"
    modprobe, modules_load = folder / "v4l2loopback.conf", folder / "v4l2loopback-modules-load.conf"
    write_atomic(modprobe, V4L2LOOPBACK_MODPROBE)
    write_atomic(modules_load, V4L2LOOPBACK_MODULES_LOAD)
    q = shlex.quote
    inner = (
        f"install -m 644 {q(str(modprobe))} {MODPROBE_DEST} && "
        f"install -m 644 {q(str(modules_load))} {MODULES_LOAD_DEST} && modprobe v4l2loopback"
    )
    return f"sudo sh -c {q(inner)}"


def _swap_cam_device() -> str | None:
    return find_v4l2_device(VCAM_LABEL)


def _v4l2loopback_advice() -> None:
    dev = _swap_cam_device()
    if dev:
        say(f"the Swap Cam virtual camera is there: {dev}")
        return
    say("no Swap Cam virtual camera yet. Install v4l2loopback (Debian/Ubuntu: sudo apt install "
        "v4l2loopback-dkms) and create it now and at every boot with:\n  " + v4l2loopback_command())
    say("  (if v4l2loopback is already loaded by another app, reboot or 'sudo modprobe -r v4l2loopback' first)")


# ---------------------------------------------------------------------------------------------------------
# install / uninstall / status


def install(target: Target, *, force: bool = False, enable: bool = True) -> int:
    current = _read(target.path)
    if current == target.content:
        say(f"already installed: {target.path}")
    else:
        if current is not None and not force:
            if not ask(f"{target.path} differs from what vcamswap would write. Replace it?"):
                warn(f"{target.path} exists and differs from what vcamswap would write (changed by you?); "
                     "left as it is. Pass --force to replace it")
                return 1
        try:
            target.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(target.path, target.content.replace("\n", target.newline))
        except OSError as e:
            warn(f"cannot write {target.path}: {e.strerror or e}")
            return 2
        say(f"{'replaced' if current is not None else 'installed'} {target.path}")
    if target.system == "Linux":
        if enable:
            _enable_linux()
        _v4l2loopback_advice()
    elif target.system == "Darwin":
        if enable:
            _enable_macos(target.path)
        say("virtual camera: install OBS Studio >= 30 and start its Virtual Camera once")
    else:
        say("vcamswap starts at your next login; start it now with: vcamswap daemon")
        say("virtual camera: install OBS Studio >= 30 and start its Virtual Camera once")
    return 0


def uninstall(target: Target, *, force: bool = False, enable: bool = True) -> int:
    current = _read(target.path)
    if current is None:
        say(f"not installed: {target.path}")
        return 0
    if current != target.content and MARKER not in current and not force:
        if not ask(f"{target.path} was not written by vcamswap. Remove it anyway?"):
            warn(f"{target.path} was not written by vcamswap; left as it is. Pass --force to remove it")
            return 1
    if enable:
        if target.system == "Linux":
            _disable_linux()
        elif target.system == "Darwin":
            _disable_macos(target.path)
    try:
        target.path.unlink()
    except OSError as e:
        warn(f"cannot remove {target.path}: {e.strerror or e}")
        return 2
    say(f"removed {target.path}")
    if target.system == "Linux":
        say(f"the v4l2loopback snippets stay; remove them with: sudo rm {MODPROBE_DEST} {MODULES_LOAD_DEST}")
    return 0


def status(target: Target) -> int:
    current = _read(target.path)
    if current is None:
        say(f"start-up file: not installed ({target.path})")
    elif current == target.content:
        say(f"start-up file: installed, up to date ({target.path})")
    else:
        say(f"start-up file: installed, differs from what this vcamswap would write ({target.path})")
    if target.system == "Linux":
        if systemctl_problem() is None:
            _, enabled = _systemctl("is-enabled", UNIT_NAME)
            _, active = _systemctl("is-active", UNIT_NAME)
            say(f"systemd user unit: {enabled or 'unknown'}, {active or 'unknown'}")
        dev = _swap_cam_device()
        say(f"virtual camera: {dev}" if dev else "virtual camera: no Swap Cam device (see 'vcamswap service install')")

    try:
        reply = request({"cmd": "ping"}, timeout=3.0)
        say(f"daemon: running (pid {reply.get('pid')})")
    except IpcError:
        say("daemon: not running")
    return 0 if current is not None else 3


def cmd_service(args: argparse.Namespace) -> int:
    target = target_for()
    if args.action == "install":
        return install(target, force=args.force, enable=not args.no_enable)
    if args.action == "uninstall":
        return uninstall(target, force=args.force, enable=not args.no_enable)
    return status(target)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("service", help="start the daemon with your session (systemd, launchd, Startup folder)")
    p.add_argument("action", choices=["install", "uninstall", "status"])
    p.add_argument("--force", action="store_true", help="replace or remove a start-up file you changed")
    p.add_argument("--no-enable", action="store_true",
                   help="only write or remove the file; do not call systemctl/launchctl")
    p.set_defaults(func=cmd_service)
