"""Small hostile and careless cases, one test per finding: the user's settings comments survive a save, a label
that does not fit is left out, a broken model and a device given as input are one line, the preview token stays
out of the logs, and a daemon's recording survives kill -9.

Real parts throughout: CLI runs and daemons in subprocesses, real files, real OpenCV reading what was written.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from daemon_util import WEBCAM, DaemonProcess, default_args, media_path, running_daemon, wait_until

from vcamswap.compose.label import Labeller
from vcamswap.outputs.mjpeg import MjpegSink

FACES = {"obama": "faces/single/obama_official_portrait.jpg", "biden": "faces/single/biden.jpg"}


def cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vcamswap", *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    """The one stderr line of a failed command (no traceback)."""
    assert proc.returncode != 0, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) >= 1 and lines[-1].startswith("vcamswap: error: "), proc.stderr
    return lines[-1]


def webcam_frame(width: int, height: int) -> np.ndarray:
    cap = cv2.VideoCapture(str(media_path(WEBCAM)))
    ok, frame = cap.read()
    cap.release()
    assert ok
    return cv2.resize(frame, (width, height))


def frames_in(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


# ----------------------------------------------------------------------------------------------- a. settings

COMMENTED_SETTINGS = """\
# My vcamswap settings: read by the daemon at start.
face = "obama"   # the one I use for calls

# Quality first: this laptop has a GPU.
preset = 'fast'
output = [
    "vcam",  # for Zoom
]

[hotkeys]
# F-keys clash with my editor
toggle = "<ctrl>+<alt>+<shift>+s"
"""


def test_a_saving_a_change_keeps_the_users_comments(tmp_path: Path) -> None:
    d = DaemonProcess(tmp_path)
    for name, rel in FACES.items():
        shutil.copy(media_path(rel), d.faces / f"{name}{Path(rel).suffix}")
    d.settings.write_text(COMMENTED_SETTINGS)
    with running_daemon(tmp_path) as d:
        assert d.status()["face"] == "obama"
        for args in (("face", "biden"), ("preset", "quality"), ("toggle",)):
            r = d.cli(*args)
            assert r.returncode == 0, r.stderr
        wait_until(lambda: "swap = false" in d.settings.read_text(), "the changes saved")
    expected = (COMMENTED_SETTINGS.replace('face = "obama"', 'face = "biden"')
                .replace("preset = 'fast'", 'preset = "quality"')
                .replace('    "vcam",  # for Zoom\n]\n', '    "vcam",  # for Zoom\n]\nswap = false\n'))
    assert d.settings.read_text() == expected


# ----------------------------------------------------------------------------------------------- b. label


def test_b_a_label_on_a_16x720_input_is_left_out_not_a_crash(tmp_path: Path) -> None:
    tall = tmp_path / "tall.png"
    cv2.imwrite(str(tall), webcam_frame(16, 720))
    out = tmp_path / "out.mp4"
    proc = cli("run", "--input", str(tall), "--label", "AI face", "--output", str(out), "--max-frames", "3")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "does not fit a 16x720 picture" in proc.stderr
    assert frames_in(out) == 3
    frame = webcam_frame(16, 720)
    assert np.array_equal(Labeller().draw(frame, "AI face"), frame)


def test_b_a_narrow_frame_gets_smaller_letters_inside_the_frame() -> None:
    frame = webcam_frame(120, 720)
    out = Labeller().draw(frame, "AI face")
    changed = np.argwhere((out != frame).any(axis=2))
    assert changed.size, "the label was left out though smaller letters fit"
    (x0, x1), y1 = (changed[:, 1].min(), changed[:, 1].max()), changed[:, 0].max()
    assert x0 > 0 and x1 < 119 and y1 < 719  # the whole box within the frame, margins kept


# ----------------------------------------------------------------------------------------------- c. fp16


@pytest.mark.parametrize("kind", ["empty", "not-the-swap-model"])
def test_c_convert_fp16_on_an_empty_or_foreign_model_is_one_line(kind: str, tmp_path: Path) -> None:
    pytest.importorskip("onnxconverter_common", reason="fp16 conversion needs 'vcamswap[fp16]'")
    import onnx
    from onnx import TensorProto, helper

    source = tmp_path / "inswapper_128.onnx"
    if kind == "empty":
        source.write_bytes(b"")
    else:  # a valid ONNX file, but one node and no weights
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
        graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
        onnx.save(helper.make_model(graph), str(source))
    before = source.read_bytes()
    line = one_line_error(cli("models", "convert", "--fp16", "--models", str(tmp_path)))
    assert str(source) in line and "vcamswap models download inswapper_128 --force" in line
    assert ("empty file" if kind == "empty" else "not the swap model") in line
    assert source.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == [source.name]


# ----------------------------------------------------------------------------------------------- d. token


def test_d_the_preview_token_is_printed_once_and_never_logged(tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    sink = MjpegSink(0, token="t0ken" * 8)
    with caplog.at_level(logging.DEBUG, logger="vcamswap"):
        sink.open(64, 48, 30)
        port = sink.port
        sink.close()
    assert f"127.0.0.1:{port}" in caplog.text and "t0ken" not in caplog.text, caplog.text

    proc = cli("run", "--input", str(media_path(WEBCAM)), "--output", "mjpeg:0", "--output",
               str(tmp_path / "o.mp4"), "--max-frames", "3")
    assert proc.returncode == 0, proc.stderr
    from vcamswap.outputs.previewauth import token_path

    token = token_path().read_text().strip()
    assert token not in proc.stderr and "MJPEG preview at http://127.0.0.1:" in proc.stderr, proc.stderr
    urls = [ln for ln in proc.stdout.splitlines() if token in ln]
    assert len(urls) == 1 and re.fullmatch(rf"MJPEG preview: http://127\.0\.0\.1:\d+/\?token={token}", urls[0])


# ----------------------------------------------------------------------------------------------- f. /dev/zero


@pytest.mark.parametrize(("path", "says"), [("/dev/zero", "is a character device, not a video or image file"),
                                            ("FOLDER", "is a folder, not a video or image file")])
def test_f_a_device_or_folder_as_input_says_what_it_is(path: str, says: str, tmp_path: Path) -> None:
    path = str(tmp_path) if path == "FOLDER" else path
    line = one_line_error(cli("run", "--input", path, "--output", str(tmp_path / "o.mp4"), "--max-frames", "3"))
    assert line == f"vcamswap: error: input {path} {says}" + ("; a camera is --camera N or --camera /dev/videoN"
                                                              if path == "/dev/zero" else "")
    assert not (tmp_path / "o.mp4").exists()


# ----------------------------------------------------------------------------------------------- e. recording


def test_e_a_daemons_recording_survives_kill_9_and_run_still_writes_the_mp4(tmp_path: Path) -> None:
    asked = tmp_path / "rec.mp4"
    d = DaemonProcess(tmp_path / "home", default_args(WEBCAM, "--output", str(asked)))
    try:
        d.start()
        st = wait_until(lambda: (s := d.status())["frames"] >= 90 and s, "90 frames recorded")
        files = [o for o in st["outputs"] if o["name"].startswith(str(tmp_path))]
        assert len(files) == 1 and files[0]["live"], st["outputs"]
    finally:
        d.kill()  # SIGKILL: nothing is closed or flushed by the daemon
    recorded = sorted(tmp_path.glob("rec.*"))
    assert len(recorded) == 1 and files[0]["name"] == str(recorded[0])
    assert frames_in(recorded[0]) >= 30  # what was recorded up to the kill opens and plays
    assert recorded[0].name == "rec.mkv"  # Matroska, named as such (docs: README, Outputs)
    assert "recording to" in d.log() and "rec.mp4" in d.log()

    demo = tmp_path / "swapped.mp4"  # README's first command: `run` still writes the .mp4 it is given
    proc = cli("run", "--input", str(media_path(WEBCAM)), "--output", str(demo), "--max-frames", "30")
    assert proc.returncode == 0, proc.stderr
    assert frames_in(demo) >= 30 and not demo.with_suffix(".mkv").exists()
