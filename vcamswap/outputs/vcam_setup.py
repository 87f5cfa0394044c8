"""`vcamswap setup` on Linux: what the Swap Cam virtual camera needs, the exact steps that get it there.

The state is read from the file system only (sysfs, /proc, /lib/modules, /etc/modprobe.d) under a root
that is "/" except in tests: is v4l2loopback installed, loaded, with a device labelled "Swap Cam" and
exclusive_caps=1 (Chrome, Meet, Zoom and Teams list only capture-only loopback devices), who holds it when
someone else loaded it with other options. The plan is a list of commands, printed before they run.
Reloading keeps the devices another app made (OBS's, say) next to ours.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from vcamswap.console import ask as confirm
from vcamswap.outputs.v4l2 import (
    MODPROBE_DEST,
    MODULE,
    MODULES_LOAD_DEST,
    V4L2LOOPBACK_MODPROBE,
    V4L2LOOPBACK_MODULES_LOAD,
    VCAM_LABEL,
)

VIDEO_NR_RANGE = range(10, 64)  # low numbers: some apps scan only the first /dev/video devices
SETUP_MARKER = "# Written by `vcamswap setup`"

# Package manager -> the command that installs the module for the running kernel.
INSTALL_COMMANDS: dict[str, list[str]] = {
    "apt-get": ["apt-get", "install", "-y", "v4l2loopback-dkms"],
    "dnf": ["dnf", "install", "-y", "akmod-v4l2loopback"],  # from RPM Fusion
    "pacman": ["pacman", "-S", "--noconfirm", "v4l2loopback-dkms"],
    "zypper": ["zypper", "--non-interactive", "install", "v4l2loopback-kmp-default"],
}


@dataclass(frozen=True)
class LoopDevice:
    number: int
    label: str
    exclusive_caps: bool | None  # None: the module does not say

    @property
    def path(self) -> str:
        return f"/dev/video{self.number}"


@dataclass
class LoopbackState:
    kernel: str
    installed: bool
    loaded: bool
    devices: list[LoopDevice] = field(default_factory=list)
    used_numbers: set[int] = field(default_factory=set)  # every /dev/videoN, cameras included
    holders: list[str] = field(default_factory=list)  # "obs (pid 4242) has /dev/video2 open"
    users: int = 0  # the module's reference count
    other_configs: list[str] = field(default_factory=list)  # other modprobe.d files with v4l2loopback options

    def swap_cam(self) -> LoopDevice | None:
        return next((d for d in self.devices if d.label == VCAM_LABEL), None)


@dataclass(frozen=True)
class Step:
    why: str
    argv: tuple[str, ...]  # run as root

    def command(self, sudo: bool = False) -> str:
        return shlex.join((("sudo",) if sudo else ()) + self.argv)


@dataclass
class Plan:
    findings: list[tuple[bool, str]] = field(default_factory=list)  # (ok, line)
    steps: list[Step] = field(default_factory=list)
    blocked: str | None = None  # nothing can run until the user does this
    device: int | None = None  # the /dev/videoN that will be Swap Cam
    modprobe_conf: str = ""  # what /etc/modprobe.d/vcamswap-v4l2loopback.conf should say


def at(root: Path, path: str) -> Path:
    return root / path.lstrip("/")


# ---------------------------------------------------------------------------------------------------------
# reading the state


def read_state(root: Path = Path("/")) -> LoopbackState:
    kernel = _read(at(root, "/proc/sys/kernel/osrelease")) or os.uname().release
    module = at(root, f"/sys/module/{MODULE}")
    loaded = module.is_dir()
    state = LoopbackState(kernel, loaded or _module_file_present(root, kernel), loaded)
    numbers = _video_numbers(root)
    state.used_numbers = numbers
    caps = _bool_list(_read(module / "parameters" / "exclusive_caps") or "")
    loop = [n for n in sorted(numbers) if _is_loopback(root, n)]
    for i, n in enumerate(loop):
        label = _read(at(root, f"/sys/class/video4linux/video{n}/name")) or ""
        state.devices.append(LoopDevice(n, label, caps[i] if i < len(caps) else None))
    state.users = int(_read(module / "refcnt") or 0) if loaded else 0
    state.holders = _holders(root, {d.number for d in state.devices})
    state.other_configs = _other_configs(root)
    return state


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def _module_file_present(root: Path, kernel: str) -> bool:
    base = at(root, f"/lib/modules/{kernel}")
    if MODULE in (_read(base / "modules.builtin") or ""):
        return True
    return base.is_dir() and any(base.rglob(f"{MODULE}.ko*"))


def _video_numbers(root: Path) -> set[int]:
    found: set[int] = set()
    for folder in (at(root, "/dev"), at(root, "/sys/class/video4linux")):
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        found.update(int(m.group(1)) for m in map(re.compile(r"video(\d+)$").match, names) if m)
    return found


def _is_loopback(root: Path, n: int) -> bool:
    entry = at(root, f"/sys/class/video4linux/video{n}")
    if "/virtual/" in os.path.realpath(entry):
        return True
    return Path(os.path.realpath(entry / "device" / "driver" / "module")).name == MODULE


def _bool_list(text: str) -> list[bool]:
    return [v.strip().upper() in ("Y", "1") for v in text.split(",") if v.strip()]


def _holders(root: Path, numbers: set[int]) -> list[str]:
    """Which processes have one of these /dev/videoN open (those we may look at)."""
    wanted = {f"/dev/video{n}" for n in numbers}
    out: list[str] = []
    proc = at(root, "/proc")
    try:
        pids = sorted((p for p in os.listdir(proc) if p.isdigit()), key=int)
    except OSError:
        return out
    for pid in pids:
        try:
            fds = os.listdir(proc / pid / "fd")
        except OSError:
            continue
        held = set()
        for fd in fds:
            try:
                target = os.readlink(proc / pid / "fd" / fd)
            except OSError:
                continue
            if target in wanted:
                held.add(target)
        if held:
            name = _read(proc / pid / "comm") or "?"
            out.append(f"{name} (pid {pid}) has {', '.join(sorted(held))} open")
    return out


def _other_configs(root: Path) -> list[str]:
    ours = at(root, MODPROBE_DEST)
    out = []
    for folder in ("/etc/modprobe.d", "/usr/lib/modprobe.d", "/lib/modprobe.d"):
        d = at(root, folder)
        for f in sorted(d.glob("*.conf")) if d.is_dir() else []:
            if f == ours:
                continue
            if re.search(rf"^\s*options\s+{MODULE}\s", _read(f) or "", re.MULTILINE):
                out.append(f"{folder}/{f.name}")
    return out


# ---------------------------------------------------------------------------------------------------------
# the plan


def free_number(state: LoopbackState) -> int | None:
    return next((n for n in VIDEO_NR_RANGE if n not in state.used_numbers), None)


def modprobe_options(devices: list[LoopDevice]) -> list[str]:
    """modprobe's arguments for these devices (kmod quotes a value with spaces for the kernel)."""
    return [
        f"devices={len(devices)}",
        "video_nr=" + ",".join(str(d.number) for d in devices),
        "card_label=" + ",".join(d.label for d in devices),
        "exclusive_caps=" + ",".join("1" if d.exclusive_caps is not False else "0" for d in devices),
    ]


def modprobe_conf(devices: list[LoopDevice]) -> str:
    opts = modprobe_options(devices)
    label = opts[2].split("=", 1)[1]
    opts[2] = f'card_label="{label}"'  # the kernel reads a quoted value whole, then splits at commas
    return (
        f"{SETUP_MARKER}: the {VCAM_LABEL} virtual camera (v4l2loopback), loaded at boot.\n"
        "# exclusive_caps=1: Chrome, Meet, Zoom and Teams only list a loopback device that reports capture-only caps.\n"
        f"options {MODULE} {' '.join(opts)}\n"
    )


def plan_linux(state: LoopbackState, package_manager: str | None) -> Plan:
    plan = Plan()
    say = plan.findings.append
    if state.installed:
        say((True, f"{MODULE} is installed for kernel {state.kernel}"))
    else:
        say((False, f"{MODULE} is not installed for kernel {state.kernel}"))
        if package_manager in INSTALL_COMMANDS:
            plan.steps.append(Step(f"install {MODULE}", tuple(INSTALL_COMMANDS[package_manager])))
        else:
            plan.blocked = (f"install {MODULE} with your distribution's package manager (the package is usually "
                            "v4l2loopback-dkms), then run 'vcamswap setup' again")
            return plan
    cam = state.swap_cam()
    if state.loaded and cam is not None and cam.exclusive_caps is not False:
        say((True, f"{MODULE} is loaded: '{VCAM_LABEL}' is {cam.path}"
                   + (" with exclusive_caps=1" if cam.exclusive_caps else " (exclusive_caps not reported)")))
        plan.device = cam.number
        plan.modprobe_conf = modprobe_conf(state.devices)
        return plan
    others = [d for d in state.devices if d.label != VCAM_LABEL]
    number = cam.number if cam is not None else free_number(state)
    if number is None:
        plan.blocked = f"no free /dev/videoN between {VIDEO_NR_RANGE.start} and {VIDEO_NR_RANGE.stop - 1}"
        return plan
    wanted = [*others, LoopDevice(number, VCAM_LABEL, True)]
    plan.device, plan.modprobe_conf = number, modprobe_conf(wanted)
    if state.loaded:
        listing = ", ".join(f"{d.path} '{d.label}'" + ("" if d.exclusive_caps is not False else " without "
                            "exclusive_caps") for d in state.devices) or "no devices"
        say((False, f"{MODULE} is loaded with other options ({listing})"))
        busy = state.holders or ([f"{state.users} user(s) of the module"] if state.users else [])
        if busy:
            plan.blocked = (f"{MODULE} is in use: {'; '.join(busy)}. Close that, then run 'vcamswap setup' again "
                            "(its devices are kept)")
            return plan
        plan.steps.append(Step(f"unload {MODULE} (nothing uses it)", ("modprobe", "-r", MODULE)))
    else:
        say((False, f"{MODULE} is not loaded"))
    kept = f", keeping {', '.join(d.path for d in others)}" if others else ""
    plan.steps.append(Step(f"create '{VCAM_LABEL}' as /dev/video{number}{kept}",
                           ("modprobe", MODULE, *modprobe_options(wanted))))
    for path in state.other_configs:
        say((False, f"{path} also sets {MODULE} options: at boot they mix with ours (remove it if it was for "
                    "this camera)"))
    return plan


def persist_steps(root: Path, plan: Plan, staging: Path, ask: bool) -> tuple[list[Step], list[str]]:
    """Steps that keep the device across reboots, and lines about files left alone (changed by the user)."""
    notes: list[str] = []
    steps: list[Step] = []
    for dest, content, ours in (
        (MODPROBE_DEST, plan.modprobe_conf, (V4L2LOOPBACK_MODPROBE,)),
        (MODULES_LOAD_DEST, V4L2LOOPBACK_MODULES_LOAD, ()),
    ):
        current = _raw(at(root, dest))
        if current == content:
            continue
        ours_before = current is None or current.startswith(SETUP_MARKER) or current in ours
        if not ours_before and not (ask and confirm(f"{dest} was changed by you. Replace it?")):
            notes.append(f"{dest} was changed by you and is left as it is; it should say:\n{content}")
            continue
        src = staging / f"{Path(dest).parent.name}-{Path(dest).name}"  # modprobe.d-..., modules-load.d-...
        src.parent.mkdir(parents=True, exist_ok=True)
        src.write_text(content, encoding="utf-8")
        steps.append(Step(f"load it the same way at boot ({dest})",
                          ("install", "-D", "-m", "644", str(src), str(at(root, dest)))))
    return steps, notes


def _raw(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
