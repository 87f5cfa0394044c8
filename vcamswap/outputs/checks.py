"""`vcamswap doctor` lines for the virtual camera: pyvirtualcam's backends and the "Swap Cam" device."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from vcamswap.checks import Context, Line
from vcamswap.outputs.v4l2 import VCAM_LABEL, video_nodes


def check_virtual_camera(ctx: Context) -> Iterable[Line]:
    try:
        from pyvirtualcam import camera as pvc
    except ImportError as e:
        yield Line(False, "virtual camera", f"pyvirtualcam is not importable ({e})", "pip install pyvirtualcam")
        return
    backends = sorted(pvc.BACKENDS)
    if backends:
        yield Line(True, "virtual camera", f"pyvirtualcam backends: {', '.join(backends)}")
    else:
        yield Line(False, "virtual camera", "pyvirtualcam has no backend for this system", _vcam_hint(ctx.system))
    if ctx.system != "Linux":
        return
    hint = _vcam_hint("Linux")
    module_loaded = Path("/sys/module/v4l2loopback").exists()
    loopback = [n for n in video_nodes(ctx.sysfs, ctx.dev) if n.virtual]
    if not loopback:
        what = "v4l2loopback is loaded but has no device" if module_loaded else "no v4l2loopback device"
        yield Line(False, "virtual camera", what, f"vcamswap setup --yes (or: {hint})")
        return
    named = [n for n in loopback if n.label == VCAM_LABEL]
    listing = ", ".join(f"{n.path} '{n.label}'" for n in loopback)
    if named:
        yield Line(True, "virtual camera", f"'{VCAM_LABEL}' is {named[0].path}")
    else:
        yield Line(False, "virtual camera", f"no device named '{VCAM_LABEL}' (loopback devices: {listing})",
                   "vcamswap setup --yes, or sudo modprobe -r v4l2loopback && "
                   f"{hint.removeprefix('sudo apt install v4l2loopback-dkms && ')}"
                   f" -- or keep the device and pass --vcam-device {loopback[0].path}")
    wanted = ctx.settings.vcam_device
    if wanted and wanted not in [n.path for n in loopback]:
        yield Line(False, "virtual camera", f"vcam_device {wanted} is not a v4l2loopback device ({listing})",
                   f"set vcam_device to one of: {', '.join(n.path for n in loopback)}")


def _vcam_hint(system: str) -> str:
    try:
        # cv2 loads only for the hint
        from vcamswap.outputs import vcam as outputs

        return {
            "Linux": outputs.LINUX_VCAM_HINT,
            "Darwin": outputs.MACOS_VCAM_HINT,
            "Windows": outputs.WINDOWS_VCAM_HINT,
        }.get(system, "use --output mjpeg or a file")
    except (ImportError, AttributeError):
        return (
            "sudo apt install v4l2loopback-dkms && sudo modprobe v4l2loopback devices=1 video_nr=10 "
            f'card_label="{VCAM_LABEL}" exclusive_caps=1'
        )
