"""Unit tests of the pieces the live path relies on: newest-frame-wins capture, Controls, Stats, paste-back,
the intent table, warnings said once."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from vcamswap.capture.source import Capture
from vcamswap.compose.align import align
from vcamswap.compose.blend import paste_back
from vcamswap.control import intents
from vcamswap.controls import Controls, ControlState
from vcamswap.live.stats import Stats
from vcamswap.logonce import WarnOnce
from vcamswap.types import SwapOutput


def still_capture(tmp_path: Path) -> Capture:
    path = tmp_path / "still.png"
    cv2.imwrite(str(path), np.full((48, 64, 3), 50, np.uint8))
    return Capture(input=str(path))  # not started: frames are published by hand


def test_newest_frame_wins_and_the_skipped_ones_count_as_dropped(tmp_path: Path) -> None:
    cap = still_capture(tmp_path)
    images = [np.full((48, 64, 3), v, np.uint8) for v in (10, 20, 30)]
    for image in images:
        cap._publish(image)
    frame = cap.read(timeout=0.1)
    assert frame is not None and frame.image is images[-1]
    assert cap.dropped == 2
    assert cap.read(timeout=0.05) is None  # nothing newer: never the same frame twice
    cap._publish(images[0])
    again = cap.read(timeout=0.1)
    assert again is not None and again.image is images[0] and again.index > frame.index and cap.dropped == 2


def test_controls_changes_and_listeners() -> None:
    c = Controls(ControlState(face=None))
    seen: list[tuple[ControlState, ControlState]] = []
    c.subscribe(lambda old, new: seen.append((old, new)))
    c.set_faces(["a", "b", "c"])
    assert c.snapshot().face == "a" and c.snapshot().swapping
    assert c.next_face().face == "b" and c.next_face(-1).face == "a" and c.next_face(-1).face == "c"
    with pytest.raises(ValueError, match="no face named 'z'"):
        c.set_face("z")
    c.set_faces(["a", "b"])  # "c" is gone: the one after it in the old list that remains
    assert c.snapshot().face == "a"
    c.set_face("b")
    c.set_faces(["a"])
    assert c.snapshot().face == "a"
    assert not c.toggle().swapping and c.toggle().swapping
    assert not c.set_bypass(True).swapping and c.set_bypass(False).swapping
    assert not c.set_paused(True).swapping
    with pytest.raises(ValueError, match="unknown preset"):
        c.set_preset("ultra")
    assert c.cycle_preset().preset != "balanced"
    n = len(seen)
    c.set_paused(True)  # no change: no call
    assert len(seen) == n and all(old != new for old, new in seen)
    assert not c.wait_stopped(0.0)
    c.stop()
    assert c.wait_stopped(0.0) and not c.snapshot().running


def test_intents_are_the_same_changes_for_socket_tray_and_hotkeys() -> None:
    c = Controls(ControlState(faces=("a", "b"), face="a"))
    assert intents.run(c, "face", "next").face == "b"
    assert intents.run(c, "select_face", "a").face == "a"
    assert intents.bind(c, "toggle")().swap_enabled is False
    assert intents.run(c, "swap", "on").swap_enabled is True
    assert intents.run(c, "toggle_preview").preview is True
    assert intents.run(c, "bypass", "on").bypass is True
    with pytest.raises(ValueError, match="expected on or off"):
        intents.run(c, "swap", "maybe")
    with pytest.raises(ValueError, match="face: say next, prev or a face name"):
        intents.run(c, "face", "")
    assert intents.run(c, "targets", "all").targets == "all"
    assert intents.controls_dict(c.snapshot())["targets"] == "all"
    with pytest.raises(ValueError, match="unknown targets 'some'; choose one of one, all"):
        intents.run(c, "targets", "some")
    assert c.snapshot().targets == "all"
    assert set(intents.SOCKET_COMMANDS) - {"status"} <= set(intents.INTENTS)


def test_stats_medians_fps_latency_and_dropped() -> None:
    s = Stats(window=10)
    for i in range(11):
        s.add_stage("swap", 0.010 if i % 2 else 0.020)
        s.frame_published(t_capture=i * 0.1, swapped=i % 2 == 0, t_now=i * 0.1 + 0.05, dropped=i)
    snap = s.snapshot()
    assert snap.frames == 11 and snap.swapped == 6 and snap.dropped == 10
    assert snap.fps == pytest.approx(10.0)  # ten frames' gaps of 0.1 s in the window
    assert snap.latency_ms == pytest.approx(50.0)
    assert snap.stage_ms["swap"] == pytest.approx(15.0)
    assert snap.stage_ms["capture"] == 0.0  # a stage with no sample yet
    assert "fps=10.0" in snap.line() and snap.as_dict()["dropped"] == 10


def test_paste_back_touches_only_the_face_region_and_blends_by_the_mask() -> None:
    frame = np.full((120, 160, 3), 100, np.uint8)
    kps = np.array([[60, 50], [90, 50], [75, 65], [63, 80], [87, 80]], np.float32)
    template = np.array([[10, 12], [22, 12], [16, 18], [11, 24], [21, 24]], np.float32)
    crop, m = align(frame, kps, template, 32)
    assert crop.shape == (32, 32, 3)
    mask = np.zeros((32, 32), np.float32)
    mask[8:24, 8:24] = 1.0
    out = paste_back(frame.copy(), SwapOutput(np.full((32, 32, 3), 200, np.uint8), mask), m)
    changed = np.argwhere((out != frame).any(-1))
    assert len(changed) > 0
    (y0, x0), (y1, x1) = changed.min(0), changed.max(0)
    assert 40 <= x0 and x1 <= 110 and 30 <= y0 and y1 <= 100  # within the face's box, not the frame
    cy, cx = changed.mean(0).astype(int)
    assert out[cy, cx].tolist() == [200, 200, 200]  # fully inside the mask: the swapped pixels
    assert out[0, 0].tolist() == [100, 100, 100]
    empty = paste_back(frame.copy(), SwapOutput(np.full((32, 32, 3), 200, np.uint8), np.zeros((32, 32), np.float32)), m)
    assert np.array_equal(empty, frame)  # a zero mask keeps every camera pixel


def test_a_warning_is_said_once_per_message_on_the_callers_logger(caplog: pytest.LogCaptureFixture) -> None:
    warn_once = WarnOnce(logging.getLogger("vcamswap.pipeline"))
    with caplog.at_level(logging.WARNING):
        for message in ("occluder: model missing", "occluder: model missing", "device lost", "occluder: model missing"):
            warn_once(message)
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        ("vcamswap.pipeline", logging.WARNING, "occluder: model missing"),
        ("vcamswap.pipeline", logging.WARNING, "device lost"),
    ]
