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
from vcamswap.console import fail, say
from vcamswap.options import add_run_options, count_arg, settings_from_args
from vcamswap.settings import Settings

# Modules that add subcommands: each has register(subparsers) and sets `func` on its parsers.
COMMAND_MODULES: tuple[str, ...] = (
    "vcamswap.daemon.cli", "vcamswap.control.cli", "vcamswap.daemon.service", "vcamswap.modelstore.cli",
    "vcamswap.tools.doctor", "vcamswap.tools.bench.cli", "vcamswap.tools.setup", "vcamswap.serve.cli",
    "vcamswap.panel.cli",
)

if TYPE_CHECKING:
    from vcamswap.live.build import Live
    from vcamswap.outputs.sinkset import SinkSet

log = logging.getLogger("vcamswap")


def cmd_run(args: argparse.Namespace) -> int:
    # the pipeline (cv2, onnxruntime) loads for `run`, not with every command
    from vcamswap.compose.label import check_label
    from vcamswap.live.build import build_live, build_sinks

    settings = settings_from_args(args)
    try:
        check_label(settings.label)
        sinks = build_sinks(settings, settings.output, overwrite=args.overwrite, protect=settings.input)
    except ValueError as e:
        return fail(str(e))
    live_sink = any(not _is_file_output(s) for s in settings.output)
    live = build_live(settings, realtime=live_sink)
    try:
        return _run_live(live, sinks, settings, args, live_sink)
    finally:
        live.capture.stop()


def _run_live(live: Live, sinks: SinkSet, settings: Settings, args: argparse.Namespace, live_sink: bool) -> int:
    # loaded by cmd_run already; here so the module does not load it for every command
    from vcamswap.live.build import make_loop, source_line

    info = live.capture.info
    log.info("%s", source_line(live, settings.output))
    max_frames = args.max_frames
    if max_frames is None and not live_sink and info.kind == "file" and info.frame_count:
        max_frames = info.frame_count  # file to file: one pass, not a loop
    loop = make_loop(live, sinks, max_frames=max_frames, stats_every=5.0 if settings.stats else 0.0, emit=say)
    signal.signal(signal.SIGTERM, lambda *_: live.controls.stop())
    sinks.open(info.width, info.height, info.fps)
    if not sinks.live:  # each failure was logged with its cause; nothing would receive a frame
        states = sinks.states()
        sinks.close()
        if len(states) == 1:
            return fail(f"output {states[0].name} cannot work: {states[0].error}")
        return fail("none of the outputs can work: " + "; ".join(f"{x.name}: {x.error}" for x in states))
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
    say(f"done: {snap.line()}")
    if result is not None and result.frames == 0:
        return fail("no frame was read from the source")
    return 0


def _print_preview_urls(sinks: SinkSet) -> None:
    """The MJPEG preview's full URL, once, on the user's terminal (the log names it without its token)."""
    from vcamswap.outputs.mjpeg import MjpegSink

    for sink in sinks:
        if isinstance(sink, MjpegSink) and sink.name in sinks.live:
            say(f"MJPEG preview: {sink.url}")


def _is_file_output(spec: str) -> bool:
    return Path(spec).suffix.lower() in (".mp4", ".avi", ".mkv")


def cmd_faces(args: argparse.Namespace) -> int:
    # cv2 loads for `faces`, not with every command
    from vcamswap.faces.library import FaceError, add_face, list_faces, remove_face, rename_face

    settings = settings_from_args(args)
    folder = settings.faces_dir()
    try:
        if args.action == "list":
            entries = list_faces(folder)
            if not entries:
                say(f"no faces in {folder}; add one with 'vcamswap faces add IMAGE'")
            notes = _photo_notes([e.path for e in entries], settings.models_dir())
            for e in entries:
                note = notes.get(e.path)
                say(f"{e.name}\t{e.path}" + (f"\t{note}" if note else ""))
        elif args.action == "add":
            dest = add_face(folder, Path(args.target), args.name)
            _check_face(settings, dest)
            say(f"added {dest.stem} ({dest})")
        elif args.action == "remove":
            say(f"removed {remove_face(folder, args.target)}")
        elif args.action == "rename":
            say(f"renamed {args.target} to {rename_face(folder, args.target, args.new_name).stem}")
    except FaceError as e:
        return fail(str(e))
    return 0


def _check_face(settings: Settings, path: Path) -> None:
    """Warn at once when an added photo has no usable face, rather than at the first swap, and say in one line
    what limits the photo (it is kept either way)."""
    note = _photo_notes([path], settings.models_dir()).get(path)
    if note is None:
        log.warning("no face found in %s; it stays in the folder but will be skipped", path)
    elif note:
        log.warning("%s: %s; the photo is kept", path.stem, note)


def _photo_notes(paths: list[Path], models_dir: Path) -> dict[Path, str]:
    """Per photo, what limits it ('' for none); photos without a usable face are left out. With the face
    parser installed in `models_dir` the skin is decided as the lite engine decides it, with the parser."""
    import cv2

    # the face models (onnxruntime) load only when there are photos to look at
    from vcamswap.compose.parsing import installed_parser
    from vcamswap.engines.lite.quality import photo_note
    from vcamswap.faces.analyzer import FaceAnalyzer
    from vcamswap.faces.detector import BlazeFaceDetector
    from vcamswap.faces.landmarker import FaceMesh
    from vcamswap.imageio import ImageError, load_image
    from vcamswap.modelstore.manifest import ModelError

    if not paths:
        return {}
    analyze = FaceAnalyzer(BlazeFaceDetector(), FaceMesh())
    try:
        parser = installed_parser(models_dir)
    except ModelError as e:
        log.warning("%s; judging the photos' skin by colour alone", e)
        parser = None
    notes: dict[Path, str] = {}
    for path in paths:
        try:
            image = load_image(path)
            face = analyze(image)
        except (ImageError, cv2.error):
            continue
        if face is not None:
            notes[path] = photo_note(image, face, parser)
    return notes


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

    faces = sub.add_parser("faces", help="list, add, remove or rename source faces")
    faces.add_argument("action", choices=["list", "add", "remove", "rename"])
    faces.add_argument("target", nargs="?", help="IMAGE for add, NAME for remove and rename")
    faces.add_argument("new_name", nargs="?", metavar="NEW", help="the new name, for rename")
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
    if args.command == "faces" and args.action in ("add", "remove", "rename") and not args.target:
        parser.error(f"faces {args.action} needs {'IMAGE' if args.action == 'add' else 'NAME'}")
    if args.command == "faces" and (args.new_name is not None) != (args.action == "rename"):
        parser.error("faces rename needs OLD and NEW" if args.action == "rename" else
                     f"faces {args.action} takes one argument")
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
        return fail(str(e))
    return int(result or 0)
