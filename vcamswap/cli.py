"""Command line: `vcamswap run`, `faces`, and the commands each module registers."""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vcamswap import __version__
from vcamswap.presets import BOOSTS, OCCLUSION_KINDS
from vcamswap.settings import (
    MAX_ENHANCE_EVERY,
    PRECISIONS,
    Settings,
    SettingsError,
    check_fps,
    load_settings,
    parse_map_entry,
)

# Modules that add subcommands: each has register(subparsers) and sets `func` on its parsers.
COMMAND_MODULES: tuple[str, ...] = (
    "vcamswap.daemon.cli", "vcamswap.daemon.control", "vcamswap.daemon.service", "vcamswap.modelstore.cli",
    "vcamswap.tools.doctor", "vcamswap.tools.bench.cli", "vcamswap.tools.setup", "vcamswap.serve.cli",
)

if TYPE_CHECKING:
    from vcamswap.live.build import Live
    from vcamswap.outputs.sinkset import SinkSet

log = logging.getLogger("vcamswap")


def add_run_options(p: argparse.ArgumentParser) -> None:
    """The options of `run`; the daemon and the benchmark take the same ones. Each maps to a setting."""
    p.add_argument("--camera", help="camera index or device path (default 0)")
    p.add_argument("--input", help="a video, image or URL instead of a camera")
    p.add_argument("--face", help="source face: a name in the faces folder or an image path")
    p.add_argument("--faces", help="faces folder (default: the platform's data dir)")
    p.add_argument("--engine", choices=["lite", "inswapper", "remote"], help="swap engine (default lite)")
    p.add_argument("--server", metavar="grpc://HOST:PORT", help="remote engine: the swap server ('vcamswap serve')")
    p.add_argument("--token-file", metavar="FILE", help="remote engine: a file holding the server's shared token")
    p.add_argument("--remote-fallback", choices=["passthrough", "lite"],
                   help="remote engine: while the server is away pass frames through or swap with lite")
    p.add_argument("--remote-codec", metavar="raw|jpeg:Q", help="remote engine: how crops travel (default jpeg:90)")
    p.add_argument("--remote-in-flight", type=count_arg, metavar="N", help="remote engine: swaps in flight (default 4)")
    p.add_argument("--server-ca", metavar="PEM", help="remote engine: CA of the server's TLS certificate (grpcs://)")
    p.add_argument(
        "--output", action="append", help="vcam | preview | mjpeg[:PORT] | FILE.mp4 (repeatable; default vcam)"
    )
    p.add_argument("--width", type=size_arg)
    p.add_argument("--height", type=size_arg)
    p.add_argument("--fps", type=fps_arg)
    p.add_argument("--preset", choices=["fast", "balanced", "quality"])
    p.add_argument("--targets", choices=["one", "all"], help="swap the main face only (default) or every face in view")
    p.add_argument("--map", action="append", type=map_arg, metavar="CAMERA_PERSON_PHOTO=SOURCE_FACE",
                   help="neural engine: the person in this photo gets this source face (repeatable; others get --face)")
    p.add_argument("--target-fps", type=fps_arg, help="adaptive quality keeps this fps (default: the camera's)")
    p.add_argument("--adaptive", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--provider", help="onnxruntime execution provider (default: best present)")
    p.add_argument("--precision", choices=list(PRECISIONS),
                   help="neural swap model: fp16 copy on a GPU that gains from it (auto, default), fp32 or fp16")
    p.add_argument("--vcam-backend", help="pyvirtualcam backend name (default: any present)")
    p.add_argument("--vcam-device", help="virtual camera device (e.g. /dev/video10)")
    p.add_argument("--swap", action=argparse.BooleanOptionalAction, default=None, help="start with the swap on")
    p.add_argument("--models", help="models folder")
    p.add_argument("--stats", action="store_true", default=None, help="print stats every few seconds")
    p.add_argument("--settings", type=Path, help="settings file (default: the platform's config dir)")
    p.add_argument("--audio-sync", metavar="auto|off|MS",
                   help="daemon: a 'Swap Mic' microphone delayed like the video (default auto on Linux)")
    p.add_argument("--label", metavar="TEXT", help="show TEXT (e.g. 'AI face') in a corner of Swap Cam while swapping")
    p.add_argument("--occlusion", choices=list(OCCLUSION_KINDS),
                   help="keep hands, glasses, a mug in front of the face: off, fast (CPU skin model) or model "
                        "(the optional occluder: 'vcamswap models download occluder'); default: the preset's")
    p.add_argument("--enhance", type=enhance_arg, metavar="N",
                   help="run the optional face enhancer every N swaps, re-using its detail between (0 = off; "
                        "'vcamswap models download enhancer'); default: the preset's")
    p.add_argument("--boost", type=int, choices=list(BOOSTS),
                   help="neural engine: swap the face at 256 or 512 px in 4 or 16 tiles of 128 (4x or 16x the "
                        "model calls; sharper large faces); default: the preset's (quality 256, others 128)")


def fps_arg(text: str) -> float:
    """A frame rate option: a finite number in (0, MAX_FPS]."""
    try:
        return check_fps(float(text), "")
    except (ValueError, SettingsError) as e:
        raise argparse.ArgumentTypeError(f"{text!r} is not a frame rate ({str(e).lstrip(': ') or e})") from None


def map_arg(text: str) -> tuple[str, str]:
    try:
        return parse_map_entry(text, "")
    except SettingsError as e:
        raise argparse.ArgumentTypeError(str(e).lstrip(": ")) from None


def whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def size_arg(text: str) -> int:
    """A width or height option: a whole number of pixels, 16 to 7680."""
    value = whole_number(text)
    if not 16 <= value <= 7680:
        raise argparse.ArgumentTypeError(f"{value} is out of range (16 to 7680 pixels)")
    return value


def enhance_arg(text: str) -> int:
    """Every how many swaps the enhancer runs: a whole number, 0 (off) or more."""
    value = whole_number(text)
    if not 0 <= value <= MAX_ENHANCE_EVERY:
        raise argparse.ArgumentTypeError(f"{value} is out of range (0 = off, up to {MAX_ENHANCE_EVERY})")
    return value


def count_arg(text: str) -> int:
    """A count of frames: a whole number, 1 or more."""
    value = whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not 1 or more")
    return value


def apply_args(settings: Settings, args: argparse.Namespace) -> Settings:
    """Options given on the command line override the settings file, one setting per option name."""
    for name in vars(settings):
        value = getattr(args, name, None)
        if name == "map" and value is not None:
            value = {**settings.map, **dict(value)}  # --map adds to (and overrides) the file's table
        if value is not None:
            setattr(settings, name, value)
    return settings


def settings_from_args(args: argparse.Namespace) -> Settings:
    settings, problem = load_settings(getattr(args, "settings", None))
    if problem:
        log.warning("%s", problem)
    return apply_args(settings, args)


def cmd_run(args: argparse.Namespace) -> int:
    from vcamswap.compose.label import check_label
    from vcamswap.live.build import build_live
    from vcamswap.outputs.sinkset import SinkSet, parse_output

    settings = settings_from_args(args)
    try:
        check_label(settings.label)
        sinks = SinkSet(
            [parse_output(s, vcam_backend=settings.vcam_backend, vcam_device=settings.vcam_device,
                          overwrite=args.overwrite, protect=settings.input)
             for s in settings.output]
        )
    except ValueError as e:
        return _fail(str(e))
    live_sink = any(not _is_file_output(s) for s in settings.output)
    live = build_live(settings, realtime=live_sink)
    try:
        return _run_live(live, sinks, settings, args, live_sink)
    finally:
        live.capture.stop()


def _run_live(live: Live, sinks: SinkSet, settings: Settings, args: argparse.Namespace, live_sink: bool) -> int:
    from vcamswap.live.build import make_loop

    info = live.capture.info
    log.info(
        "source: %s %s %dx%d @ %.1f fps; engine %s; face %s; outputs %s",
        info.kind, info.name, info.width, info.height, info.fps,
        live.pipeline.engine.name, live.controls.snapshot().face or "none", ", ".join(settings.output),
    )
    max_frames = args.max_frames
    if max_frames is None and not live_sink and info.kind == "file" and info.frame_count:
        max_frames = info.frame_count  # file to file: one pass, not a loop
    loop = make_loop(live, sinks, max_frames=max_frames, stats_every=5.0 if settings.stats else 0.0, emit=_emit)
    signal.signal(signal.SIGTERM, lambda *_: live.controls.stop())
    sinks.open(info.width, info.height, info.fps)
    if not sinks.live:  # each failure was logged with its cause; nothing would receive a frame
        states = sinks.states()
        sinks.close()
        if len(states) == 1:
            return _fail(f"output {states[0].name} cannot work: {states[0].error}")
        return _fail("none of the outputs can work: " + "; ".join(f"{x.name}: {x.error}" for x in states))
    _print_preview_urls(sinks)
    live.capture.start()
    try:
        result = loop.run()
    except KeyboardInterrupt:
        result = None
    finally:
        live.capture.stop()
        sinks.close()
    snap = loop.stats.snapshot()
    _emit(f"done: {snap.line()}")
    if result is not None and result.frames == 0:
        return _fail("no frame was read from the source")
    return 0


def _print_preview_urls(sinks: SinkSet) -> None:
    """The MJPEG preview's full URL, once, on the user's terminal (the log names it without its token)."""
    from vcamswap.outputs.mjpeg import MjpegSink

    for sink in sinks:
        if isinstance(sink, MjpegSink) and sink.name in sinks.live:
            _emit(f"MJPEG preview: {sink.url}")


def _is_file_output(spec: str) -> bool:
    return Path(spec).suffix.lower() in (".mp4", ".avi", ".mkv")


def cmd_faces(args: argparse.Namespace) -> int:
    from vcamswap.faces.library import FaceError, add_face, list_faces, remove_face

    settings = settings_from_args(args)
    folder = settings.faces_dir()
    try:
        if args.action == "list":
            entries = list_faces(folder)
            if not entries:
                _emit(f"no faces in {folder}; add one with 'vcamswap faces add IMAGE'")
            notes = _photo_notes([e.path for e in entries])
            for e in entries:
                note = notes.get(e.path)
                _emit(f"{e.name}\t{e.path}" + (f"\t{note}" if note else ""))
        elif args.action == "add":
            dest = add_face(folder, Path(args.target), args.name)
            _check_face(settings, dest)
            _emit(f"added {dest.stem} ({dest})")
        elif args.action == "remove":
            _emit(f"removed {remove_face(folder, args.target)}")
    except FaceError as e:
        return _fail(str(e))
    return 0


def _check_face(settings: Settings, path: Path) -> None:
    """Warn at once when an added photo has no usable face, rather than at the first swap, and say in one line
    what limits the photo (it is kept either way)."""
    note = _photo_notes([path]).get(path)
    if note is None:
        log.warning("no face found in %s; it stays in the folder but will be skipped", path)
    elif note:
        log.warning("%s: %s; the photo is kept", path.stem, note)


def _photo_notes(paths: list[Path]) -> dict[Path, str]:
    """Per photo, what limits it ('' for none); photos without a usable face are left out."""
    import cv2

    from vcamswap.faces.analyzer import FaceAnalyzer
    from vcamswap.faces.detector import BlazeFaceDetector
    from vcamswap.faces.landmarker import FaceMesh
    from vcamswap.faces.quality import photo_report
    from vcamswap.imageio import ImageError, load_image

    if not paths:
        return {}
    analyze = FaceAnalyzer(BlazeFaceDetector(), FaceMesh())
    notes: dict[Path, str] = {}
    for path in paths:
        try:
            image = load_image(path)
            face = analyze(image)
        except (ImageError, cv2.error):
            continue
        if face is not None:
            notes[path] = photo_report(image, face).line()
    return notes


def _emit(line: str) -> None:
    print(line, flush=True)


def _fail(message: str) -> int:
    print(f"vcamswap: error: {message}", file=sys.stderr, flush=True)
    return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vcamswap", description="Live face swap into the Swap Cam virtual camera")
    parser.add_argument("--version", action="version", version=f"vcamswap {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="swap faces live from a camera or file into the outputs")
    add_run_options(run)
    run.add_argument("--max-frames", type=count_arg, help="stop after N published frames")
    run.add_argument("--overwrite", action="store_true", help="replace output files that exist already")
    run.set_defaults(func=cmd_run)

    faces = sub.add_parser("faces", help="list, add or remove source faces")
    faces.add_argument("action", choices=["list", "add", "remove"])
    faces.add_argument("target", nargs="?", help="IMAGE for add, NAME for remove")
    faces.add_argument("--name", help="name for an added face (default: the file's name)")
    faces.add_argument("--faces", help="faces folder")
    faces.add_argument("--settings", type=Path)
    faces.set_defaults(func=cmd_faces)

    for module in COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "faces" and args.action in ("add", "remove") and not args.target:
        parser.error(f"faces {args.action} needs {'IMAGE' if args.action == 'add' else 'NAME'}")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="vcamswap: %(message)s",
        stream=sys.stderr,
    )
    from vcamswap.capture.source import CaptureError
    from vcamswap.engines import EngineUnavailable
    from vcamswap.faces.library import FaceError

    try:
        result: Any = args.func(args)
    except (CaptureError, EngineUnavailable, FaceError) as e:
        return _fail(str(e))
    return int(result or 0)
