"""`vcamswap doctor`: one line per thing the daemon needs, "OK" or "problem" with the exact fix.

Checks are plain functions from a Context to lines, kept in CHECKS; other modules add theirs with
register_check() (e.g. the tray and hotkeys). A check that crashes is reported as a problem line of its
own, never as a traceback, so one broken check does not hide the others.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from vcamswap.settings import Settings, load_settings, settings_path

SYSFS_V4L = "/sys/class/video4linux"
CAMERA_INDICES = range(4)  # 0..3: enough for laptops with an IR camera and a USB one; never -1 (any camera)
VCAM_LABEL = "Swap Cam"

# What to install for each provider when it was asked for but this onnxruntime build lacks it.
PROVIDER_FIX = {
    "tensorrt": "pip uninstall onnxruntime && pip install onnxruntime-gpu, plus TensorRT and CUDA 12",
    "cuda": "pip uninstall onnxruntime && pip install onnxruntime-gpu (needs an NVIDIA driver and CUDA 12)",
    "coreml": "use a macOS build of onnxruntime (pip install onnxruntime on macOS 12+)",
    "directml": "pip uninstall onnxruntime && pip install onnxruntime-directml (Windows 10+)",
    "openvino": "pip uninstall onnxruntime && pip install onnxruntime-openvino",
    "cpu": "pip install onnxruntime",
}


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
    sysfs: str = SYSFS_V4L
    dev: str = "/dev"
    probe_cameras: bool = True  # open the cameras and read a frame
    hash_models: bool = True  # SHA-256 the neural models (a few seconds)
    load_models: bool = False  # create the neural models' sessions to see where they land
    manifest: Path | None = None  # a model manifest other than the shipped one


Check = Callable[[Context], Iterable[Line]]


# ----------------------------------------------------------------------------------------------- settings


def check_settings(ctx: Context) -> Iterable[Line]:
    if ctx.settings_problem:
        yield Line(False, "settings", ctx.settings_problem,
                   f"correct {ctx.settings_file} at the line and column given, or delete it to use the defaults")
    elif ctx.settings_file.is_file():
        yield Line(True, "settings", f"{ctx.settings_file} parsed")
    else:
        yield Line(True, "settings", f"no settings file ({ctx.settings_file}); defaults in use")


# ----------------------------------------------------------------------------------------------- cameras


class VideoNode(NamedTuple):
    number: int
    path: str
    label: str
    virtual: bool  # a loopback device (v4l2loopback), not a camera


def video_nodes(sysfs: str = SYSFS_V4L, dev: str = "/dev") -> list[VideoNode]:
    """/dev/videoN on Linux with their sysfs names; v4l2loopback devices sit under /sys/devices/virtual."""
    nodes = []
    for n in range(64):
        path = Path(dev) / f"video{n}"
        entry = Path(sysfs) / f"video{n}"
        if not path.exists() and not entry.exists():
            continue
        try:
            label = (entry / "name").read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            label = ""
        virtual = "/virtual/" in os.path.realpath(entry) or _is_loopback_module(entry)
        nodes.append(VideoNode(n, str(path), label, virtual))
    return nodes


def _is_loopback_module(entry: Path) -> bool:
    driver = entry / "device" / "driver" / "module"
    return driver.exists() and Path(os.path.realpath(driver)).name == "v4l2loopback"


class CameraProbe(NamedTuple):
    opened: bool
    width: int
    height: int
    fps: float
    fourcc: str


def probe_camera(source: int | str, system: str) -> CameraProbe:
    """Open a camera, read one frame, close it."""
    import cv2

    api = cv2.CAP_V4L2 if system == "Linux" else cv2.CAP_ANY
    cap = cv2.VideoCapture(source, api)
    try:
        if not cap.isOpened():
            return CameraProbe(False, 0, 0, 0.0, "")
        ok, frame = cap.read()
        if not ok or frame is None:
            return CameraProbe(False, 0, 0, 0.0, "")
        code = int(cap.get(cv2.CAP_PROP_FOURCC))
        fourcc = "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4)).strip("\x00 ") if code > 0 else "?"
        return CameraProbe(True, frame.shape[1], frame.shape[0], float(cap.get(cv2.CAP_PROP_FPS) or 0.0), fourcc)
    finally:
        cap.release()


def check_cameras(ctx: Context) -> Iterable[Line]:
    if ctx.system == "Linux":
        candidates: list[tuple[int | str, str]] = [
            (node.path, f"{node.path} ({node.label or 'no name'})")
            for node in video_nodes(ctx.sysfs, ctx.dev)
            if not node.virtual and node.number in CAMERA_INDICES
        ]
        if not candidates:
            yield Line(False, "camera", f"no camera device ({ctx.dev}/video0..3 absent)",
                       "plug in a webcam (in a container or VM pass it through, e.g. docker --device "
                       "/dev/video0), or swap a file with 'vcamswap run --input FILE'")
            return
    else:
        candidates = [(i, f"camera {i}") for i in CAMERA_INDICES]
    if ctx.settings.camera is not None and ctx.settings.camera not in [str(c[0]) for c in candidates]:
        cam = ctx.settings.camera
        candidates.insert(0, (int(cam) if cam.isdigit() else cam, f"camera {cam} (from the settings)"))
    if not ctx.probe_cameras:
        for _, name in candidates:
            yield Line(True, "camera", f"{name} present (not opened)")
        return
    working = 0
    silent = []
    for source, name in candidates:
        probe = probe_camera(source, ctx.system)
        if probe.opened:
            working += 1
            yield Line(True, "camera", f"{name} delivers {probe.width}x{probe.height} @ {probe.fps:.0f} fps "
                                       f"({probe.fourcc})")
        else:
            silent.append(name)
    if not working:
        tried = ", ".join(silent) or "none"
        yield Line(False, "camera", f"no camera delivers frames (tried {tried})",
                   "close other apps using the camera; on Linux check 'groups' lists video "
                   "(sudo usermod -aG video $USER, then log in again); on macOS allow camera access "
                   "in System Settings > Privacy")


# ----------------------------------------------------------------------------------------------- virtual camera


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
        yield Line(False, "virtual camera", what, hint)
        return
    named = [n for n in loopback if n.label == VCAM_LABEL]
    listing = ", ".join(f"{n.path} '{n.label}'" for n in loopback)
    if named:
        yield Line(True, "virtual camera", f"'{VCAM_LABEL}' is {named[0].path}")
    else:
        yield Line(False, "virtual camera", f"no device named '{VCAM_LABEL}' (loopback devices: {listing})",
                   f"sudo modprobe -r v4l2loopback && {hint.removeprefix('sudo apt install v4l2loopback-dkms && ')}"
                   f" -- or keep the device and pass --vcam-device {loopback[0].path}")
    wanted = ctx.settings.vcam_device
    if wanted and wanted not in [n.path for n in loopback]:
        yield Line(False, "virtual camera", f"vcam_device {wanted} is not a v4l2loopback device ({listing})",
                   f"set vcam_device to one of: {', '.join(n.path for n in loopback)}")


def _vcam_hint(system: str) -> str:
    try:
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


# ----------------------------------------------------------------------------------------------- engines


LITE_MODELS = ("face_detection_short_range.onnx", "face_landmark.onnx")


def check_engines(ctx: Context) -> Iterable[Line]:
    from vcamswap.paths import embedded_model

    try:
        paths = [embedded_model(name) for name in LITE_MODELS]
        import onnxruntime as ort

        for p in paths:
            ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
        yield Line(True, "engine lite", f"embedded models load ({', '.join(LITE_MODELS)})")
    except Exception as e:  # a broken install shows here, whatever the cause
        yield Line(False, "engine lite", f"embedded models unusable: {_first_line(e)}",
                   "reinstall vcamswap (pip install --force-reinstall vcamswap)")
    yield from _check_neural_models(ctx)
    if ctx.settings.engine == "inswapper" and not _neural_ready(ctx):
        yield Line(False, "engine", "settings ask for 'inswapper' but its models are not all installed: the "
                                    "daemon will use 'lite'", "vcamswap models download")
    else:
        yield Line(True, "engine", f"'{ctx.settings.engine}' selected")


def _check_neural_models(ctx: Context) -> Iterable[Line]:
    from vcamswap.modelstore.manifest import ModelError, install_hint, load_manifest, status

    try:
        manifest = load_manifest(ctx.manifest)
    except ModelError as e:
        yield Line(False, "engine inswapper", str(e), "reinstall vcamswap")
        return
    folder = ctx.settings.models_dir()
    for spec in manifest.models.values():
        st = status(spec, folder, deep=ctx.hash_models)
        size = f"{spec.size / 1e6:.1f} MB"
        if st.state == "ok":
            yield Line(True, f"model {spec.name}", f"installed and verified ({size}, {st.path})")
        elif st.state == "present":
            yield Line(True, f"model {spec.name}", f"installed ({size}; checksum not checked, {st.path})")
        elif st.state == "missing" and ctx.settings.engine != "inswapper":
            yield Line(True, f"model {spec.name}", f"not installed (only the inswapper engine needs it: "
                                                   f"{install_hint([spec.name])})")
        elif st.state == "missing":
            yield Line(False, f"model {spec.name}", f"not installed in {folder}", install_hint([spec.name]))
        else:
            yield Line(False, f"model {spec.name}", st.detail,
                       f"vcamswap models download {spec.name} --force")
    try:
        import insightface  # noqa: F401
    except ImportError as e:
        yield Line(False, "engine inswapper", f"insightface is not importable ({e})", "pip install insightface==2.1")


def _neural_ready(ctx: Context) -> bool:
    from vcamswap.modelstore.manifest import NEURAL_MODELS, ManifestError, load_manifest, missing_models

    try:
        manifest = load_manifest(ctx.manifest)
    except ManifestError:
        manifest = None
    return not missing_models(NEURAL_MODELS, ctx.settings.models_dir(), manifest)


# ----------------------------------------------------------------------------------------------- providers


def check_providers(ctx: Context) -> Iterable[Line]:
    from vcamswap.engines import providers

    try:
        rep = providers.report(ctx.settings.provider)
    except providers.ProviderError as e:
        yield Line(False, "providers", str(e), f"set provider to one of {', '.join(providers.PRIORITY)}")
        return
    extra = f" (also {', '.join(rep.other)}, not used)" if rep.other else ""
    yield Line(True, "providers", f"present: {', '.join(rep.present) or 'none'}{extra}")
    if rep.choice.note:
        want = providers.parse_provider(rep.choice.requested or "cpu")
        yield Line(False, "providers", rep.choice.note, PROVIDER_FIX.get(want, "install a matching onnxruntime"))
    else:
        how = "asked for" if rep.choice.requested else "best present"
        yield Line(True, "providers", f"using {rep.choice.name} ({how}; chain {' > '.join(rep.choice.chain)})")
    yield Line(True, "providers", "lite engine models run on cpu (small models; a GPU round trip costs more)")
    yield from _placement(ctx, rep.choice.name)


def _placement(ctx: Context, chosen: str) -> Iterable[Line]:
    if not _neural_ready(ctx):
        yield Line(True, "providers", f"neural models would run on {chosen} (not installed)")
        return
    if not ctx.load_models:
        yield Line(True, "providers", f"neural models will run on {chosen} (--load-models to confirm)")
        return
    from vcamswap.engines import EngineUnavailable
    from vcamswap.engines.inswapper import InswapperEngine

    try:
        engine = InswapperEngine(ctx.settings.models_dir(), ctx.settings.provider)
    except EngineUnavailable as e:
        yield Line(False, "providers", str(e), "vcamswap models verify")
        return
    for name, where in engine.placement().items():
        ok = where == chosen
        yield Line(ok, "providers", f"{name} runs on {where}",
                   None if ok else f"onnxruntime could not start {chosen} for it; run with -v for its log")


# ----------------------------------------------------------------------------------------------- faces


def check_faces(ctx: Context) -> Iterable[Line]:
    from vcamswap.faces.library import list_faces

    folder = ctx.settings.faces_dir()
    entries = list_faces(folder)
    if not entries:
        yield Line(False, "faces", f"no face photos in {folder}", "vcamswap faces add PHOTO.jpg")
        return
    from vcamswap.faces.detector import BlazeFaceDetector
    from vcamswap.faces.landmarker import FaceMesh
    from vcamswap.faces.library import FaceLibrary
    from vcamswap.live.build import FaceAnalyzer

    library = FaceLibrary(folder, FaceAnalyzer(BlazeFaceDetector(), FaceMesh()))
    problems = library.check_all()
    usable = len(entries) - len(problems)
    yield Line(usable > 0, "faces", f"{usable} of {len(entries)} usable in {folder}", "vcamswap faces add PHOTO.jpg")
    for name, why in sorted(problems.items()):
        yield Line(False, f"face {name}", why,
                   f"use a sharp, frontal photo of one face, or 'vcamswap faces remove {name}'")


# ----------------------------------------------------------------------------------------------- running


CHECKS: list[Check] = [
    check_settings,
    check_cameras,
    check_virtual_camera,
    check_engines,
    check_providers,
    check_faces,
]


def register_check(check: Check) -> None:
    """Add a check (e.g. the tray or global hotkeys); it runs after the built-in ones."""
    if check not in CHECKS:
        CHECKS.append(check)


def run_checks(ctx: Context, checks: Iterable[Check] | None = None) -> list[Line]:
    lines: list[Line] = []
    for check in list(CHECKS if checks is None else checks):
        try:
            lines.extend(check(ctx))
        except Exception as e:  # a crashing check is itself a finding; the rest still run
            topic = check.__name__.removeprefix("check_").replace("_", " ")
            lines.append(Line(False, topic, f"check failed: {_first_line(e)}", "report this with 'vcamswap -v doctor'"))
    return lines


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="check cameras, virtual camera, engines, models, providers, settings, faces")
    p.add_argument("--settings", type=Path, help="settings file (default: the platform's config dir)")
    p.add_argument("--models", help="models folder")
    p.add_argument("--faces", help="faces folder")
    p.add_argument("--provider", help="check this execution provider instead of the setting")
    p.add_argument("--no-cameras", action="store_true", help="list cameras without opening them")
    p.add_argument("--quick", action="store_true", help="check model sizes only, not their SHA-256")
    p.add_argument("--load-models", action="store_true", help="load the neural models to see where they run")
    p.add_argument("--manifest", type=Path, help="a model manifest other than the shipped one")
    p.set_defaults(func=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    path = args.settings or settings_path()
    settings, problem = load_settings(path)
    for name in ("models", "faces", "provider"):
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
