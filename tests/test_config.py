"""Settings: parsing and validation, atomic saves, and the daemon's run-time changes written back."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from vcamswap.settings import (
    DEFAULT_HOTKEYS,
    Settings,
    SettingsError,
    SettingsFile,
    load_settings,
    parse_settings,
    save_settings,
    settings_path,
)


def test_defaults_and_location() -> None:
    assert settings_path() == Path(os.environ["VCAMSWAP_CONFIG_DIR"]) / "settings.toml"
    assert load_settings() == (Settings(), None)  # no file: defaults, no complaint


def test_values_are_read_and_coerced() -> None:
    s = parse_settings(
        'camera = 2\nfps = 25\noutput = "mjpeg:8090"\ntarget-fps = 20\npreset = "fast"\n'
        '[hotkeys]\ntoggle = "<ctrl>+<f9>"\n'
    )
    assert s.camera == "2" and s.fps == 25.0 and isinstance(s.fps, float)
    assert s.output == ["mjpeg:8090"] and s.target_fps == 20.0 and s.preset == "fast"
    assert s.hotkeys == {**DEFAULT_HOTKEYS, "toggle": "<ctrl>+<f9>"}  # the others keep their defaults
    assert Settings().model == "inswapper_128" and parse_settings('model = "ghost_2_256"').model == "ghost_2_256"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('fps = "fast"', "f.toml: 'fps' must be a number"),
        ("width = 1.5", "f.toml: 'width' must be a whole number"),
        ("width = true", "f.toml: 'width' must be a whole number"),
        ("swap = 1", "f.toml: 'swap' must be true or false"),
        ("output = [1, 2]", "f.toml: 'output' must be a list of strings"),
        ("hotkeys = 3", "f.toml: 'hotkeys' must be a table of strings"),
        ('preset = "ultra"', "f.toml: unknown preset 'ultra'; choose one of fast, balanced, quality"),
        ('model = "ghost_4_256"', "f.toml: unknown model 'ghost_4_256'; choose one of inswapper_128, ghost_1_256, "
                                  "ghost_2_256, ghost_3_256"),
        ("model = 3", "f.toml: 'model' must be a string"),
        ("colour = 1", "f.toml: unknown setting 'colour'"),
        ('fps = 30\nwidth = = 3', "f.toml: Invalid value (at line 2, column 9)"),
    ],
)
def test_bad_settings_are_one_line_with_the_place(text: str, message: str) -> None:
    with pytest.raises(SettingsError) as e:
        parse_settings(text, "f.toml")
    assert str(e.value) == message


def test_broken_file_falls_back_to_defaults_and_says_where(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text('preset = "fast"\nfps = [\n')
    settings, problem = load_settings(path)
    assert settings == Settings()
    assert problem is not None and problem.startswith(f"{path}: ") and "line 2" in problem
    assert "\n" not in problem


def test_save_is_atomic_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "settings.toml"
    s = Settings(face="obama", preset="quality", output=["vcam", "mjpeg"], swap=False)
    save_settings(s, path)
    assert load_settings(path) == (s, None)
    assert [p.name for p in path.parent.iterdir()] == ["settings.toml"]  # no temp file left behind


def test_run_time_changes_keep_the_users_other_keys(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text('camera = "/dev/video2"\nfps = 24.0\n\n[hotkeys]\ntoggle = "<ctrl>+<f9>"\n')
    path.chmod(0o640)
    f = SettingsFile(path)
    assert f.broken_at_start is None
    assert f.save_changes({"face": "biden", "preset": "fast", "swap": False})
    s, problem = load_settings(path)
    assert problem is None
    assert (s.camera, s.fps, s.hotkeys["toggle"]) == ("/dev/video2", 24.0, "<ctrl>+<f9>")
    assert (s.face, s.preset, s.swap) == ("biden", "fast", False)
    assert "width" not in path.read_text()  # defaults are not spelled out
    assert stat.S_IMODE(path.stat().st_mode) == 0o640  # the user's permissions stay
    before = path.stat().st_mtime_ns
    assert f.save_changes({"preset": "fast"})  # nothing new: not rewritten
    assert path.stat().st_mtime_ns == before


def test_missing_file_is_created(tmp_path: Path) -> None:
    path = tmp_path / "new" / "settings.toml"
    assert SettingsFile(path).save_changes({"preset": "quality"})
    assert path.read_text() == 'preset = "quality"\n'


def test_broken_file_is_never_overwritten(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "settings.toml"
    broken = b'preset = "fast"\nswap = maybe  # my notes\n'
    path.write_bytes(broken)
    f = SettingsFile(path)
    assert f.broken_at_start is not None and "line 2" in f.broken_at_start
    with caplog.at_level(logging.WARNING, logger="vcamswap.config"):
        assert not f.save_changes({"preset": "quality"})
        assert not f.save_changes({"swap": True})
        path.write_text('preset = "fast"\n')  # fixed while running: still left alone until restart
        assert not f.save_changes({"swap": False})
    assert path.read_text() == 'preset = "fast"\n'
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 and messages[0].startswith("settings not saved: ")  # said once


def test_announced_broken_file_is_not_reported_again(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "settings.toml"
    path.write_text("fps = \n")
    f = SettingsFile(path, announced=True)
    with caplog.at_level(logging.WARNING, logger="vcamswap.config"):
        assert not f.save_changes({"swap": False})
    assert caplog.records == []
    assert path.read_text() == "fps = \n"


def test_file_broken_while_running_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text('preset = "fast"\n')
    f = SettingsFile(path)
    path.write_text("preset = \n")  # the user is editing it right now
    assert not f.save_changes({"swap": False})
    assert path.read_text() == "preset = \n"


def test_a_change_that_would_not_load_is_not_written(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text('preset = "fast"\n')
    assert not SettingsFile(path).save_changes({"preset": "ultra"})
    assert path.read_text() == 'preset = "fast"\n'
