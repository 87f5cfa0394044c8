"""Settings: one TOML file in the platform's config dir; every `run` option has a setting of the same name.

A broken file is reported with its line and column and ignored in memory; it is never overwritten.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs
import tomli_w

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
    target_fps: float | None = None  # None = the camera's fps
    adaptive: bool = True
    provider: str | None = None  # onnxruntime execution provider; None = best present
    vcam_backend: str | None = None
    vcam_device: str | None = None
    swap: bool = True
    stats: bool = False
    models: str | None = None  # models folder; None = platform default
    hotkeys: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_HOTKEYS))

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
        raise SettingsError(f"{origin}: {e}") from None
    return settings_from_dict(data, origin)


def settings_from_dict(data: dict[str, Any], origin: str = "settings") -> Settings:
    s = Settings()
    for key, value in data.items():
        name = key.replace("-", "_")
        if name not in FIELDS:
            raise SettingsError(f"{origin}: unknown setting {key!r}")
        default = getattr(s, name)
        if name == "hotkeys":
            if not isinstance(value, dict):
                raise SettingsError(f"{origin}: 'hotkeys' must be a table")
            merged = dict(DEFAULT_HOTKEYS)
            merged.update({str(k): str(v) for k, v in value.items()})
            value = merged
        elif name == "output" and isinstance(value, str):
            value = [value]
        elif isinstance(default, bool) and not isinstance(value, bool):
            raise SettingsError(f"{origin}: {key!r} must be true or false")
        elif isinstance(default, float) and isinstance(value, int):
            value = float(value)
        setattr(s, name, value)
    return s


def load_settings(path: Path | None = None) -> tuple[Settings, str | None]:
    """The settings and, when the file could not be used, the one-line reason (defaults are used then)."""
    path = path or settings_path()
    if not path.exists():
        return Settings(), None
    try:
        return parse_settings(path.read_text(encoding="utf-8"), str(path)), None
    except (SettingsError, OSError, UnicodeDecodeError) as e:
        return Settings(), f"{e}; using defaults (the file is left as it is)"


def settings_to_dict(s: Settings) -> dict[str, Any]:
    return {k: v for k, v in dataclasses.asdict(s).items() if v is not None}


def save_settings(s: Settings, path: Path | None = None) -> Path:
    """Write atomically (temp file + rename) so a crash never leaves half a file."""
    path = path or settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = tomli_w.dumps(settings_to_dict(s))
    fd, tmp = tempfile.mkstemp(prefix=".settings-", suffix=".toml", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
