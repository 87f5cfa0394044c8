"""Replacing a file whole (vcamswap.atomic) and the writers that go through it: a failure leaves the old file and
no temporary file; a success renames a complete, synced file over the target and syncs its folder."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from vcamswap.atomic import commit, replacing, write_atomic
from vcamswap.capture.demo import write_clip
from vcamswap.outputs.previewauth import preview_token


class Boom(Exception):
    pass


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def synced(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int, bool]]:
    """(device, inode, is a folder) of every file descriptor synced; the real os.fsync still runs."""
    seen: list[tuple[int, int, bool]] = []
    real: Callable[[int], None] = os.fsync

    def fsync(fd: int) -> None:
        st = os.fstat(fd)
        seen.append((st.st_dev, st.st_ino, stat.S_ISDIR(st.st_mode)))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return seen


def identity(path: Path) -> tuple[int, int, bool]:
    st = path.stat()
    return st.st_dev, st.st_ino, stat.S_ISDIR(st.st_mode)


def test_a_writer_that_fails_midway_leaves_the_old_file_and_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "notes.json"
    target.write_text("old\n")
    with pytest.raises(Boom), replacing(target) as tmp:
        tmp.write_text("half of the ne")
        raise Boom
    assert target.read_text() == "old\n" and names(tmp_path) == ["notes.json"]


def test_a_rename_that_fails_leaves_the_target_and_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.mkdir()
    (target / "inside").write_text("mine")  # a folder with content cannot be renamed over
    with pytest.raises(OSError):
        write_atomic(target, "new")
    assert names(tmp_path) == ["taken"] and (target / "inside").read_text() == "mine"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_refuses_and_keeps_the_old_file(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    target = folder / "token"
    target.write_text("old")
    folder.chmod(0o500)
    try:
        with pytest.raises(PermissionError):
            write_atomic(target, "new")
        assert target.read_text() == "old" and names(folder) == ["token"]
    finally:
        folder.chmod(0o700)


def test_the_new_file_replaces_the_old_whole_and_keeps_its_mode(tmp_path: Path, synced: list) -> None:
    target = tmp_path / "settings.toml"
    target.write_text("old = 1\n")
    target.chmod(0o640)
    old_inode = target.stat().st_ino
    write_atomic(target, "new = 2\r\n")
    assert target.read_bytes() == b"new = 2\r\n"  # written as given, no newline translation
    assert target.stat().st_ino != old_inode  # renamed over, not written in place
    assert stat.S_IMODE(target.stat().st_mode) == 0o640 and names(tmp_path) == ["settings.toml"]
    assert synced == [identity(target), identity(tmp_path)]  # the file before the rename, the folder after


def test_a_new_file_is_private_and_a_mode_asked_for_is_set(tmp_path: Path) -> None:
    fresh = tmp_path / "deep" / "fresh.bin"
    write_atomic(fresh, b"\x00\x01")
    assert fresh.read_bytes() == b"\x00\x01" and stat.S_IMODE(fresh.stat().st_mode) == 0o600
    shared = tmp_path / "shared"
    shared.write_text("x")
    shared.chmod(0o644)
    write_atomic(shared, "y", mode=0o600)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o600


def test_commit_syncs_a_finished_part_and_leaves_it_when_the_rename_fails(tmp_path: Path, synced: list) -> None:
    part, final = tmp_path / "m.onnx.part", tmp_path / "m.onnx"
    part.write_bytes(b"model")
    commit(part, final)
    assert final.read_bytes() == b"model" and names(tmp_path) == ["m.onnx"]
    assert synced == [identity(final), identity(tmp_path)]
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "x").write_text("x")
    part.write_bytes(b"resume me")
    with pytest.raises(OSError):
        commit(part, tmp_path / "dir")
    assert part.read_bytes() == b"resume me"  # a partial download stays to be resumed


def test_a_demo_clip_that_fails_midway_leaves_no_temporary_file(tmp_path: Path) -> None:
    clip = tmp_path / "cache" / "demo.mp4"
    with pytest.raises(Exception):  # noqa: B017 - opencv's own error type for an empty image
        write_clip(clip, np.zeros((0, 0, 3), np.uint8), 64, 48, 10.0, 3)
    assert names(clip.parent) == []


def test_a_demo_clip_is_written_whole_under_its_name(tmp_path: Path) -> None:
    clip = tmp_path / "demo.mp4"
    write_clip(clip, np.full((96, 128, 3), 128, np.uint8), 64, 48, 10.0, 3)
    assert names(tmp_path) == ["demo.mp4"] and clip.stat().st_size > 0


def test_the_preview_token_is_synced_private_and_replaces_a_broken_file(tmp_path: Path, synced: list) -> None:
    path = tmp_path / "preview-token"
    path.write_text("not a token")
    path.chmod(0o644)
    token = preview_token(path)
    assert path.read_text() == token + "\n" and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert names(tmp_path) == ["preview-token"]
    assert synced == [identity(path), identity(tmp_path)]
