"""Settings: one TOML file in the platform's config dir; every `run` option has a setting of the same name.

A broken file is reported with its line and column and ignored in memory; it is never overwritten.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import sys
import tempfile
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs
import tomli_w

from vcamswap.choices import (
    DEFAULT_SWAP_MODEL,
    OCCLUSION_KINDS,
    PRECISIONS,
    PRESET_NAMES,
    REMOTE_FALLBACKS,
    TARGETS,
    CodecError,
    check_model,
    parse_codec,
)
from vcamswap.presets import DEFAULT_LIKENESS, check_boost
from vcamswap.safepath import write_through

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

log = logging.getLogger("vcamswap.config")
APP = "vcamswap"

DEFAULT_HOTKEYS: dict[str, str] = {
    # Ctrl+Alt+Shift combos: unused by common apps (Zoom/Teams/Meet/OBS/browsers) and by desktops.
    "toggle": "<ctrl>+<alt>+<shift>+s",
    "next_face": "<ctrl>+<alt>+<shift>+n",
    "prev_face": "<ctrl>+<alt>+<shift>+p",
    "cycle_quality": "<ctrl>+<alt>+<shift>+q",
    "bypass": "<ctrl>+<alt>+<shift>+b",
}


def config_dir() -> Path:
    return Path(os.environ.get("VCAMSWAP_CONFIG_DIR") or platformdirs.user_config_dir(APP))


def data_dir() -> Path:
    return Path(os.environ.get("VCAMSWAP_DATA_DIR") or platformdirs.user_data_dir(APP))


def settings_path() -> Path:
    return config_dir() / "settings.toml"


def default_faces_dir() -> Path:
    return data_dir() / "faces"


def default_models_dir() -> Path:
    return Path(os.environ.get("VCAMSWAP_MODELS_DIR") or data_dir() / "models")


def runtime_dir() -> Path:
    env = os.environ.get("VCAMSWAP_RUNTIME_DIR")
    if env:
        return Path(env)
    try:
        with warnings.catch_warnings():
            # Without XDG_RUNTIME_DIR (ssh, containers) platformdirs warns and picks /tmp/runtime-UID: fine.
            warnings.simplefilter("ignore")
            return Path(platformdirs.user_runtime_dir(APP))
    except Exception:  # platforms without a runtime dir
        return Path(tempfile.gettempdir()) / f"{APP}-{os.getuid() if hasattr(os, 'getuid') else 'user'}"


@dataclass
class Settings:
    camera: str | None = None  # index ("0") or device path; None = camera 0
    input: str | None = None  # a video/image file or URL instead of a camera
    face: str | None = None  # source face: a name in the faces folder or an image path
    faces: str | None = None  # faces folder; None = platform default
    engine: str = "lite"
    output: list[str] = field(default_factory=lambda: ["vcam"])
    width: int = 1280
    height: int = 720
    fps: float = 30.0
    preset: str = "balanced"
    likeness: float = DEFAULT_LIKENESS  # lite engine: how much of the source person shows, 0..1 (docs/lite.md)
    targets: str = "one"  # "one": the main face of the frame; "all": every face in view
    # camera person's photo -> source face, for `targets = "all"` on the neural engine (who is who by ArcFace)
    map: dict[str, str] = field(default_factory=dict)
    target_fps: float | None = None  # None = the camera's fps
    adaptive: bool = True
    provider: str | None = None  # onnxruntime execution provider; None = best present
    precision: str = "auto"  # neural swap model: auto (fp16 on a GPU that gains from it), fp32 or fp16
    vcam_backend: str | None = None
    vcam_device: str | None = None
    swap: bool = True
    stats: bool = False
    models: str | None = None  # models folder; None = platform default
    hotkeys: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_HOTKEYS))
    label: str | None = None  # the disclosure label's text; None or "" = no label
    audio_sync: str = "auto"  # Swap Mic: "auto" (follow the video's latency), "off", or a fixed delay in ms
    occlusion: str | None = None  # one of OCCLUSION_KINDS ("model": the occluder, "parser"); None = the preset's
    enhance: int | None = None  # run the face enhancer every N swaps (0 = off); None = the preset's
    boost: int | None = None  # neural engine's pixel boost: 128, 256 or 512; None = the preset's
    model: str = DEFAULT_SWAP_MODEL  # neural engine's swap model, one of choices.SWAP_MODELS
    server: str | None = None  # the remote engine's swap server: grpc://HOST:PORT or grpcs://HOST:PORT
    token_file: str | None = None  # a file holding the swap server's shared token
    remote_fallback: str = "passthrough"  # while the server is away: "passthrough" or "lite"
    remote_codec: str = "jpeg:90"  # how crops travel: "raw" or "jpeg:QUALITY" (docs/remote.md: 6x fewer bytes)
    remote_in_flight: int = 4  # swaps kept in flight to the server, so fps does not follow the round trip
    server_ca: str | None = None  # PEM file of the CA that signed the server's TLS certificate (grpcs://)

    def faces_dir(self) -> Path:
        return Path(self.faces).expanduser() if self.faces else default_faces_dir()

    def models_dir(self) -> Path:
        return Path(self.models).expanduser() if self.models else default_models_dir()


class SettingsError(Exception):
    """The settings file cannot be used; the message is one line with the file, line and column."""


FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def parse_settings(text: str, origin: str = "settings") -> Settings:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SettingsError(f"{origin}: {_with_position(str(e), text)}") from None
    except RecursionError:  # tomllib recurses once per level of [ ] or { }
        raise SettingsError(f"{origin}: nested too deeply to be read") from None
    except Exception as e:  # whatever else the parser meets in a file being edited: one line, not a traceback
        raise SettingsError(f"{origin}: cannot be read ({type(e).__name__}: {e})") from None
    return settings_from_dict(data, origin)


def _with_position(message: str, text: str) -> str:
    """tomllib says "at end of document" for an unfinished file; say which line and column that is."""
    if "(at end of document)" not in message:
        return message
    lines = text.rstrip("\n").split("\n")
    where = f"(at end of document, line {len(lines)}, column {len(lines[-1]) + 1})"
    return message.replace("(at end of document)", where)


# What each setting holds in the file (None is written by leaving the key out).
_KINDS: dict[str, type] = {
    "camera": str, "input": str, "face": str, "faces": str, "engine": str, "output": list, "width": int,
    "height": int, "fps": float, "preset": str, "likeness": float, "target_fps": float, "adaptive": bool,
    "provider": str, "precision": str,
    "vcam_backend": str, "vcam_device": str, "swap": bool, "stats": bool, "models": str, "hotkeys": dict,
    "label": str, "audio_sync": str, "occlusion": str, "enhance": int, "boost": int, "model": str, "targets": str,
    "map": dict,
    "server": str, "token_file": str, "remote_fallback": str, "remote_codec": str,
    "remote_in_flight": int, "server_ca": str,
}
_KIND_WORDS = {str: "a string", int: "a whole number", float: "a number", bool: "true or false",
               list: "a list of strings", dict: "a table of strings"}


def _coerce(name: str, key: str, value: Any, origin: str) -> Any:
    kind = _KINDS[name]
    if name == "camera" and isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # camera = 0
    if name == "output" and isinstance(value, str):
        return [value]
    if name == "map" and isinstance(value, list) and all(isinstance(v, str) for v in value):
        value = dict(parse_map_entry(v, f"{origin}: {key!r}") for v in value)  # map = ["PHOTO=FACE", ...]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if kind is list:
        ok = ok and all(isinstance(v, str) for v in value)
    if kind is dict:
        ok = ok and all(isinstance(v, str) for v in value.values())
    if not ok:
        raise SettingsError(f"{origin}: {key!r} must be {_KIND_WORDS[kind]}")
    if name in ("fps", "target_fps"):
        check_fps(value, f"{origin}: {key!r}")
    if name in ("width", "height") and not 16 <= value <= 7680:
        raise SettingsError(f"{origin}: {key!r} must be 16 to 7680 pixels, not {value}")
    if name == "occlusion" and value not in OCCLUSION_KINDS:
        raise SettingsError(f"{origin}: unknown occlusion {value!r}; choose one of {', '.join(OCCLUSION_KINDS)}")
    if name == "enhance" and not 0 <= value <= MAX_ENHANCE_EVERY:
        raise SettingsError(f"{origin}: {key!r} must be 0 (off) to {MAX_ENHANCE_EVERY} frames, not {value}")
    if name == "boost":
        try:
            check_boost(value)  # the presets' rule, so the file and the live control agree
        except ValueError as e:
            raise SettingsError(f"{origin}: {e}") from None
    if name == "model":
        try:
            check_model(value)
        except ValueError as e:
            raise SettingsError(f"{origin}: {e}") from None
    if name == "targets" and value not in TARGETS:
        raise SettingsError(f"{origin}: {key!r} must be one or all, not {value!r}")
    if name == "precision" and value not in PRECISIONS:
        raise SettingsError(f"{origin}: unknown precision {value!r}; choose one of {', '.join(PRECISIONS)}")
    if name == "remote_fallback" and value not in REMOTE_FALLBACKS:
        raise SettingsError(f"{origin}: {key!r} must be passthrough or lite, not {value!r}")
    if name == "remote_in_flight" and not 1 <= value <= 32:
        raise SettingsError(f"{origin}: {key!r} must be 1 to 32, not {value}")
    if name == "remote_codec":
        try:
            parse_codec(value)
        except CodecError as e:
            raise SettingsError(f"{origin}: {e}") from None
    if name == "likeness" and not 0.0 <= value <= 1.0:  # also rejects nan
        raise SettingsError(f"{origin}: {key!r} must be a number from 0 to 1, not {value}")
    if name == "preset" and value not in PRESET_NAMES:
        raise SettingsError(f"{origin}: unknown preset {value!r}; choose one of {', '.join(PRESET_NAMES)}")
    return value


MAX_FPS = 240.0
MAX_ENHANCE_EVERY = 1000


def parse_map_entry(text: str, what: str = "--map") -> tuple[str, str]:
    """CAMERA_PERSON_PHOTO=SOURCE_FACE -> (photo, face); the photo path may itself hold '=', the face not."""
    photo, sep, face = text.rpartition("=")
    if not sep or not photo.strip() or not face.strip():
        raise SettingsError(f"{what}: {text!r} is not CAMERA_PERSON_PHOTO=SOURCE_FACE")
    return photo.strip(), face.strip()


def check_fps(value: float, what: str) -> float:
    """`value` when it is a usable frame rate (finite, above 0, at most MAX_FPS); SettingsError otherwise."""
    if not math.isfinite(value) or not 0 < value <= MAX_FPS:
        raise SettingsError(f"{what}: must be a number above 0 and at most {MAX_FPS:g}, not {value:g}")
    return value


def settings_from_dict(data: dict[str, Any], origin: str = "settings") -> Settings:
    s = Settings()
    for key, value in data.items():
        name = key.replace("-", "_")
        if name not in FIELDS:
            raise SettingsError(f"{origin}: unknown setting {key!r}")
        value = _coerce(name, key, value, origin)
        if name == "hotkeys":
            merged = dict(DEFAULT_HOTKEYS)
            merged.update({str(k): str(v) for k, v in value.items()})
            value = merged
        setattr(s, name, value)
    return s


def settings_problem(path: Path) -> str | None:
    """Why the settings file cannot be used (one line with file, line and column), or None."""
    try:
        if not path.exists():
            return None
        parse_settings(path.read_text(encoding="utf-8"), str(path))
    except (SettingsError, OSError, UnicodeDecodeError) as e:
        return str(e)
    return None


def load_settings(path: Path | None = None) -> tuple[Settings, str | None]:
    """The settings and, when the file could not be used, the one-line reason (defaults are used then)."""
    path = path or settings_path()
    try:
        if not path.exists():
            return Settings(), None
    except OSError as e:  # a folder on the way that this user cannot enter
        return Settings(), f"cannot read {path}: {e.strerror or e}; using defaults"
    try:
        return parse_settings(path.read_text(encoding="utf-8"), str(path)), None
    except (SettingsError, OSError, UnicodeDecodeError) as e:
        return Settings(), f"{e}; using defaults (the file is left as it is)"


def settings_to_dict(s: Settings) -> dict[str, Any]:
    return {k: v for k, v in dataclasses.asdict(s).items() if v is not None}


def save_settings(s: Settings, path: Path | None = None) -> Path:
    """Write into the user's file (through a symlink, keeping its mode); a read-only one raises OSError."""
    path = path or settings_path()
    write_through(path, tomli_w.dumps(settings_to_dict(s)))
    return path


class SettingsFile:
    """Saves what the user changes at run time (face, preset, swap) into their settings file.

    Only the changed keys are written, each on its own line: the user's other keys, comments and layout stay
    as they are (vcamswap.tomledit). A file that was broken when the daemon started is never written: it is
    the user's to fix, and saving defaults over it would lose their settings. The reason is reported once.
    """

    def __init__(self, path: Path | None = None, announced: bool = False) -> None:
        """`announced`: the caller already told the user the file is broken; do not say it again."""
        self.path = path or settings_path()
        self.broken_at_start = settings_problem(self.path)
        self._reported = announced and self.broken_at_start is not None
        self._lock = threading.Lock()

    def save_changes(self, changes: dict[str, Any]) -> bool:
        """Merge `changes` into the file atomically; False (reported once) when it must be left alone."""
        if not changes:
            return True
        with self._lock:
            problem = self.broken_at_start or self._merge_and_write(changes)
            if problem is None:
                return True
            if not self._reported:
                log.warning("settings not saved: %s (the file is left as it is)", problem)
                self._reported = True
            return False

    def _merge_and_write(self, changes: dict[str, Any]) -> str | None:
        try:
            text = self.path.read_text(encoding="utf-8") if self.path.exists() else ""
            data = tomllib.loads(text)
            merged = {**data, **changes}
            settings_from_dict(merged, str(self.path))  # never write a file that would not load
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, SettingsError) as e:
            return str(e)
        if merged == data:
            return None
        from vcamswap.tomledit import update_keys

        # In place, so the user's comments and layout stay; a layout it cannot edit is rewritten whole.
        new_text = update_keys(text, {k: v for k, v in changes.items() if data.get(k) != v}, merged)
        try:
            write_through(self.path, tomli_w.dumps(merged) if new_text is None else new_text)
        except PermissionError as e:
            return str(e) if e.strerror is None else f"cannot write {self.path}: {e.strerror}"
        except OSError as e:
            return f"cannot write {self.path}: {e.strerror or e}"
        return None
