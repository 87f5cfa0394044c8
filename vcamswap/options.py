"""The options of `run`: the daemon, the benchmark and `models` take the same ones, and each maps to a setting
of the same name (apply_args lays what was given over the settings file)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from vcamswap.choices import ENGINE_NAMES, OCCLUSION_KINDS, PRECISIONS, SWAP_MODELS
from vcamswap.presets import BOOSTS, parse_likeness
from vcamswap.settings import (
    MAX_ENHANCE_EVERY,
    Settings,
    SettingsError,
    check_fps,
    load_settings,
    parse_map_entry,
)

log = logging.getLogger("vcamswap")


def add_run_options(p: argparse.ArgumentParser) -> None:
    """The options of `run`; the daemon and the benchmark take the same ones. Each maps to a setting."""
    p.add_argument("--camera", help="camera index or device path (default 0)")
    p.add_argument("--input", help="a video, image or URL instead of a camera")
    p.add_argument("--face", help="source face: a name in the faces folder or an image path")
    p.add_argument("--faces", help="faces folder (default: the platform's data dir)")
    p.add_argument("--engine", choices=list(ENGINE_NAMES), help="swap engine (default lite)")
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
    p.add_argument("--likeness", type=likeness_arg, metavar="0..1",
                   help="lite engine: how much of the source person shows, 0 (the camera's face in the source's "
                        "skin) to 1 (the source's face driven by the camera); default 0")
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
                   help="keep hands, glasses, a mug in front of the face: off, fast (CPU skin model), model "
                        "(the optional occluder: 'vcamswap models download occluder') or parser (swap only skin, "
                        "brows, eyes, nose and lips: 'vcamswap models download parser'); default: the preset's")
    p.add_argument("--enhance", type=enhance_arg, metavar="N",
                   help="run the optional face enhancer every N swaps, re-using its detail between (0 = off; "
                        "'vcamswap models download enhancer'); default: the preset's")
    p.add_argument("--boost", type=int, choices=list(BOOSTS),
                   help="neural engine: swap the face at 256 or 512 px in 4 or 16 tiles of 128 (4x or 16x the "
                        "model calls; sharper large faces); default: the preset's (quality 256, others 128)")
    p.add_argument("--model", choices=list(SWAP_MODELS),
                   help="neural engine: the swap model (default inswapper_128; fetch one with 'vcamswap models "
                        "download NAME')")


def fps_arg(text: str) -> float:
    """A frame rate option: a finite number in (0, MAX_FPS]."""
    try:
        return check_fps(float(text), "")
    except (ValueError, SettingsError) as e:
        raise argparse.ArgumentTypeError(f"{text!r} is not a frame rate ({str(e).lstrip(': ') or e})") from None


def likeness_arg(text: str) -> float:
    try:
        return parse_likeness(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


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
