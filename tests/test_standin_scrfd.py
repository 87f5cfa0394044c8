"""The det_10g stand-in that finds real faces (modelstore.standin_scrfd: BlazeFace inside SCRFD's interface):
through insightface's SCRFD as the neural engine runs it, it gives BlazeFace's face on real photos and webcam
frames; `vcamswap run --engine inswapper` with the folder `models/make_standins.py` writes swaps a real clip with
inswapper_128 and with ghost_1_256; a daemon with the neural engine keeps swapping across a model switch."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from daemon_util import REPO, DaemonProcess, default_args, media_path, running_daemon, wait_until
from helpers.cli import run_cli
from helpers.frames import read_frames

from vcamswap.engines.inswapper import InswapperEngine
from vcamswap.faces.detector import BlazeFaceDetector
from vcamswap.presets import get_preset
from vcamswap.types import Detection

PHOTOS = ["biden.jpg", "eileen_collins_astronaut.png", "lin_manuel_miranda.png", "obama_official_portrait.jpg",
          "tom_cruise.jpg", "trump_official_portrait.png"]
CLIP = "videos/webcam/webcam_640x480_30fps_mix4.mp4"  # four people, cuts at frames 282, 633 and 873
CLIP_FRAMES = (100, 450, 750, 1050)  # one of each
SOURCE = "faces/single/obama_official_portrait.jpg"
RUN_FRAMES = 40


@pytest.fixture(scope="module")
def face_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stand-in models folder as the script writes it (its det_10g.onnx finds real faces)."""
    out = tmp_path_factory.mktemp("face-standins")
    r = subprocess.run([sys.executable, str(REPO / "models" / "make_standins.py"), str(out)], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture(scope="module")
def engine(face_models: Path) -> InswapperEngine:
    return InswapperEngine(face_models, provider="cpu", threads=1)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return float(inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter))


def agrees(found: Detection, ref: Detection, points: float = 0.05) -> None:
    """Same box (IoU), the 5 points within `points` x the face width of BlazeFace's, a close score."""
    width = float(ref.bbox[2] - ref.bbox[0])
    assert iou(found.bbox, ref.bbox) > 0.8, (found.bbox, ref.bbox)
    worst = float(np.linalg.norm(found.kps - ref.kps, axis=1).max())
    assert worst < points * width, (found.kps, ref.kps)
    assert abs(found.score - ref.score) < 0.1


def clip_frame(index: int) -> np.ndarray:
    cap = cv2.VideoCapture(str(media_path(CLIP)))
    try:
        cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = cap.read()
    finally:
        cap.release()
    assert ok, f"frame {index} of {CLIP} unreadable"
    return frame


def images() -> list[tuple[str, np.ndarray]]:
    out = [(name, cv2.imread(str(media_path(f"faces/single/{name}")))) for name in PHOTOS]
    return out + [(f"{Path(CLIP).stem}#{i}", clip_frame(i)) for i in CLIP_FRAMES]


@pytest.mark.parametrize("preset", ["fast", "quality"])  # detector sizes 320 and 640
def test_the_standin_finds_the_face_blazeface_finds(engine: InswapperEngine, detector: BlazeFaceDetector,
                                                    preset: str) -> None:
    scrfd = engine.make_detector(get_preset(preset))
    assert scrfd.det_size == (640 if preset == "quality" else 320)
    checked = 0
    for name, image in images():
        ref = detector.detect(image)
        assert ref, name
        found = scrfd.detect(image)
        assert len(found) == 1, name
        agrees(found[0], ref[0])
        checked += 1
    assert checked == len(PHOTOS) + len(CLIP_FRAMES)


def test_the_in_graph_mouth_corners_are_the_detectors() -> None:
    from vcamswap.faces.detector import kps5_from_blazeface
    from vcamswap.modelstore.standin_scrfd import kps6_to_kps5

    kps6 = np.random.default_rng(0).uniform(0, 128, (6, 2)).astype(np.float32)
    np.testing.assert_allclose(kps6_to_kps5() @ kps6, kps5_from_blazeface(kps6), atol=1e-4)


def test_of_several_faces_one_is_found_and_a_faceless_frame_gives_none(
    engine: InswapperEngine, detector: BlazeFaceDetector
) -> None:
    scrfd = engine.make_detector(get_preset("quality"))
    image = cv2.imread(str(media_path("faces/multi/obama_biden_two_people.jpg")))
    ref = detector.detect(image)
    assert len(ref) >= 2
    (found,) = scrfd.detect(image)
    # One face, one of BlazeFace's (the stand-in's square input may rank two close scores the other way round).
    # Each face is ~20 BlazeFace pixels wide here: one pixel of a different resampling is 5% of it.
    agrees(found, max(ref, key=lambda r: iou(found.bbox, r.bbox)), points=0.1)
    assert found.score > ref[0].score - 0.05
    wall = np.full((480, 640, 3), 120, np.uint8)
    cv2.randu(wall, 60, 180)
    assert scrfd.detect(wall) == [] and detector.detect(wall) == []


# ----------------------------------------------------------------------------------------------- end to end


def face_change(output: Path, detector: BlazeFaceDetector, tmp_path: Path, model: str) -> tuple[float, float]:
    """Mean absolute change (output vs input) inside the input's face boxes and well outside them, over a few
    frames; one output frame is kept as a PNG to look at."""
    inside, outside = [], []
    clip = read_frames(media_path(CLIP), RUN_FRAMES)
    swapped = read_frames(output, RUN_FRAMES)
    for k in (5, 20, 35):
        before, after = clip[k], swapped[k]
        diff = np.abs(after.astype(np.float32) - before.astype(np.float32)).mean(axis=2)
        (face,) = detector.detect(before)[:1]
        x1, y1, x2, y2 = face.bbox
        w, h = x2 - x1, y2 - y1
        inner = np.zeros(diff.shape, bool)
        inner[int(y1 + 0.3 * h):int(y2 - 0.2 * h), int(x1 + 0.2 * w):int(x2 - 0.2 * w)] = True
        far = np.ones(diff.shape, bool)
        far[max(0, int(y1 - h)):int(y2 + h), max(0, int(x1 - w)):int(x2 + w)] = False
        inside.append(float(diff[inner].mean()))
        outside.append(float(diff[far].mean()))
        if k == 20:
            cv2.imwrite(str(tmp_path / f"{model}-frame20.png"), np.hstack([before, after]))
    return float(np.mean(inside)), float(np.mean(outside))


@pytest.mark.parametrize("model", ["inswapper_128", "ghost_1_256"])
def test_run_with_the_neural_engine_swaps_a_real_clip(face_models: Path, detector: BlazeFaceDetector,
                                                       tmp_path: Path, model: str) -> None:
    out = tmp_path / f"{model}.mp4"
    proc = run_cli("run", "--engine", "inswapper", "--model", model, "--models", str(face_models), "--input",
                   str(media_path(CLIP)), "--face", str(media_path(SOURCE)), "--output", str(out),
                   "--max-frames", str(RUN_FRAMES))
    assert proc.returncode == 0, proc.stderr
    # The start line names the model in force, where it runs, then the others.
    assert f"inswapper engine on cpu: model {model} on cpu" in proc.stderr, proc.stderr
    done = re.search(r"frames=(\d+) swapped=(\d+)", proc.stdout)
    assert done is not None, proc.stdout
    frames, swapped = int(done[1]), int(done[2])
    assert frames == RUN_FRAMES and swapped >= 0.9 * frames, proc.stdout
    inside, outside = face_change(out, detector, tmp_path, model)
    assert inside > 4 * outside and inside > 8.0, (inside, outside)


def test_the_model_in_force_at_start_is_the_chosen_one_when_installed_else_the_default(
    face_models: Path, tmp_path: Path
) -> None:
    """Without inswapper_128 the engine starts with the GHOST model asked for (not lite); a model whose file is
    missing gives one line and inswapper_128."""
    for missing, asked, started in [("inswapper_128", "ghost_1_256", "ghost_1_256"),
                                    ("ghost_2_256", "ghost_2_256", "inswapper_128")]:
        folder = tmp_path / f"without-{missing}"
        shutil.copytree(face_models, folder, ignore=shutil.ignore_patterns(f"{missing}.onnx"))
        proc = run_cli("run", "--engine", "inswapper", "--model", asked, "--models", str(folder), "--input",
                       str(media_path(CLIP)), "--face", str(media_path(SOURCE)), "--output",
                       str(tmp_path / f"{missing}.mp4"), "--max-frames", "8")
        assert proc.returncode == 0, proc.stderr
        assert f"inswapper engine on cpu: model {started} on cpu" in proc.stderr, proc.stderr
        assert ("is not installed" in proc.stderr) == (asked != started), proc.stderr
        assert "using the lite engine" not in proc.stderr
        assert re.search(r"frames=8 swapped=[1-8]\b", proc.stdout), proc.stdout


def test_the_script_writes_the_blob_detector_when_asked(tmp_path: Path) -> None:
    from vcamswap.modelstore import standin_set

    standin_set.main([str(tmp_path / "blob"), "--blob-detector"])
    standin_set.main([str(tmp_path / "face")])
    names = {kind: onnx.load(str(tmp_path / kind / "det_10g.onnx")).graph.name for kind in ("blob", "face")}
    assert names == {"blob": "scrfd_standin", "face": "scrfd_blazeface_standin"}
    with pytest.raises(SystemExit, match="usage"):
        standin_set.main([str(tmp_path / "x"), "--blob"])


# ----------------------------------------------------------------------------------------------- daemon


@pytest.fixture()
def neural_daemon(tmp_path: Path, face_models: Path) -> Iterator[DaemonProcess]:
    home = tmp_path / "home"
    faces = home / "data" / "faces"
    faces.mkdir(parents=True)
    faces.joinpath("obama.jpg").write_bytes(media_path(SOURCE).read_bytes())
    args = default_args(CLIP) + ["--engine", "inswapper", "--models", str(face_models)]
    with running_daemon(home, args) as d:
        yield d


def swaps_rise(daemon: DaemonProcess, model: str, by: int = 15) -> None:
    start = daemon.status()["swapped"]
    st = wait_until(lambda: (s := daemon.status())["swapped"] >= start + by and s, f"{by} swaps under {model}")
    assert st["engine"] == "inswapper" and st["model"] == model and st["knobs"]["model"] == model


def test_a_neural_daemon_keeps_swapping_across_a_model_switch(neural_daemon: DaemonProcess) -> None:
    d = neural_daemon
    st = d.status()
    assert st["engine"] == "inswapper" and st["model"] == "inswapper_128", st
    swaps_rise(d, "inswapper_128")
    r = d.cli("model", "ghost_1_256")
    assert r.returncode == 0 and r.stdout.strip() == "model ghost_1_256 in force", r.stdout + r.stderr
    swaps_rise(d, "ghost_1_256")
    assert "ghost_1_256 loaded on cpu" in d.log()
    assert "inswapper engine on cpu: model inswapper_128 on cpu" in d.log()
