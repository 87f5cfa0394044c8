"""The disclosure label: legible in the corner of real frames, only while swapping, toggled in a real daemon."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from daemon_util import WEBCAM, default_args, media_path, running_daemon, wait_until

from vcamswap.compose.label import Labeller, check_label, render_tag
from vcamswap.controls import ControlState
from vcamswap.settings import load_settings

FACE = "faces/single/biden.jpg"


def webcam_frame(width: int, height: int) -> np.ndarray:
    cap = cv2.VideoCapture(str(media_path(WEBCAM)))
    ok, frame = cap.read()
    cap.release()
    assert ok
    return cv2.resize(frame, (width, height))


def ink_share(frame: np.ndarray, text: str = "AI face") -> float:
    """How much of the tag's lettering is white in this frame (1.0: the label is there)."""
    h, w = frame.shape[:2]
    tag = render_tag(text, w, h)
    assert tag is not None
    ph, pw = tag.patch.shape[:2]
    ink = tag.alpha[:, :, 0] >= 0.999
    roi = frame[tag.y:tag.y + ph, tag.x:tag.x + pw]
    return float((roi[ink].min(axis=1) >= 235).mean())


def test_label_text_is_checked() -> None:
    assert check_label(None) is None and check_label("") is None
    assert check_label("AI-generated face") == "AI-generated face"
    with pytest.raises(ValueError, match="at most 40 characters"):
        check_label("x" * 41)
    with pytest.raises(ValueError, match="plain ASCII"):
        check_label("KI-Gesicht \u00e4")


@pytest.mark.parametrize(("width", "height"), [(640, 480), (1280, 720)])
def test_label_is_small_legible_and_in_the_corner(width: int, height: int) -> None:
    frame = webcam_frame(width, height)
    out = Labeller().draw(frame, "AI face")
    changed = np.argwhere((out != frame).any(axis=2))
    y0, x0 = changed.min(axis=0)
    y1, x1 = changed.max(axis=0)
    assert x0 < width * 0.05 and y1 > height * 0.95  # bottom left, with a margin
    assert (x1 - x0) * (y1 - y0) < 0.03 * width * height  # small: the face is not covered
    box = out[y0:y1 + 1, x0:x1 + 1].astype(np.int32).sum(axis=2)
    text_rows = np.argwhere((box >= 3 * 235).any(axis=1))
    assert text_rows.max() - text_rows.min() >= height / 30  # letters tall enough to read on a call
    light, dark = box[box >= 3 * 235], box[box < 3 * 235]
    assert light.size > 50 and light.mean() - np.median(dark) > 3 * 150  # white on a dark box
    assert ink_share(out) > 0.99 and ink_share(frame) < 0.5


def test_label_only_while_swapping() -> None:
    frame = webcam_frame(320, 240)
    lab = Labeller()
    on = ControlState(face="me", label_on=True)
    assert lab.apply(frame, on) is not frame
    for state in (ControlState(face="me"), ControlState(face="me", label_on=True, swap_enabled=False),
                  ControlState(face="me", label_on=True, bypass=True), ControlState(label_on=True)):
        assert lab.apply(frame, state) is frame


def test_daemon_shows_and_hides_the_label(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "data/faces").mkdir(parents=True)
    shutil.copy(media_path(FACE), home / "data/faces/biden.jpg")
    with running_daemon(home, default_args(WEBCAM, "--label", "AI face")) as d:
        assert d.status()["label"] == "AI face"

        def last_frame() -> np.ndarray:
            return np.load(d.vcam / "last.npy")

        wait_until(lambda: ink_share(last_frame()) > 0.99, "the label on Swap Cam")
        assert d.request("label", "off")["label"] is None
        wait_until(lambda: ink_share(last_frame()) < 0.5, "the label gone")
        wait_until(lambda: d.settings.exists() and load_settings(d.settings)[0].label == "",
                   "the choice saved")  # fmt: skip
        r = d.cli("label", "on")
        assert r.returncode == 0, r.stderr
        wait_until(lambda: ink_share(last_frame()) > 0.99, "the label back")
