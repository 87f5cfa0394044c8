"""--map: ArcFace embeddings (the neural engine's, on stand-in models) decide which source each person in view
gets; decided once per track and re-checked every few seconds; no map means no model call at all."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers.cli import run_cli

from vcamswap.controls import Controls
from vcamswap.engines import EngineUnavailable
from vcamswap.engines.inswapper import InswapperEngine
from vcamswap.faces.analyzer import FaceAnalyzer
from vcamswap.faces.library import FaceError, FaceLibrary
from vcamswap.faces.tracking import Tracker
from vcamswap.live.build import build_stages
from vcamswap.live.sources import Sources
from vcamswap.live.targets import RECHECK_S, TargetRouter, load_people
from vcamswap.settings import Settings, SettingsError, parse_settings
from vcamswap.types import TrackedFace

TWO = "faces/multi/obama_biden_two_people.jpg"


@pytest.fixture(scope="module")
def engine(models_dir: Path) -> InswapperEngine:
    return InswapperEngine(models_dir, provider="cpu", threads=1)


@pytest.fixture()
def scene(media: Path, tmp_path: Path, detector, mesh) -> dict[str, Path]:
    """A faces folder with two source faces, and a photo of each camera person (cut from the two-person photo)."""
    faces = tmp_path / "faces"
    faces.mkdir()
    shutil.copy(media / "faces/single/tom_cruise.jpg", faces / "tom.jpg")
    shutil.copy(media / "faces/single/alex_lacamoire.jpg", faces / "alex.jpg")
    img = cv2.imread(str(media / TWO))
    left, right = tmp_path / "left_person.png", tmp_path / "right_person.png"
    cv2.imwrite(str(left), img[0:400, 100:520])
    cv2.imwrite(str(right), img[0:420, 650:1100])
    return {"faces": faces, "left": left, "right": right, "stranger": media / "faces/single/lin_manuel_miranda.png"}


def frames_of(media: Path, n: int) -> list[np.ndarray]:
    img = cv2.imread(str(media / TWO))
    h, w = img.shape[:2]
    return [cv2.warpAffine(img, np.float32([[1.0, 0, -6.0 * k], [0, 1.0, 0]]), (w, h),
                           borderMode=cv2.BORDER_REPLICATE) for k in range(n)]


def left_right(faces: list[TrackedFace]) -> tuple[int, int]:
    order = sorted(range(len(faces)), key=lambda i: float(faces[i].geometry.bbox[0]))
    return order[0], order[1]


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def router_for(mapping: dict[str, str], engine: InswapperEngine, folder: Path, detector, mesh,
               clock: Clock) -> tuple[TargetRouter, Sources]:
    analyzer = FaceAnalyzer(detector, mesh)
    library = FaceLibrary(folder, analyzer)
    sources = Sources(library, engine)
    people = load_people(mapping, engine, analyzer, library.resolve)
    return TargetRouter(people, engine, sources, clock=clock), sources


def test_each_person_gets_their_mapped_source(media: Path, engine, scene, detector, mesh) -> None:
    clock = Clock()
    mapping = {str(scene["left"]): "tom", str(scene["right"]): "alex"}
    router, sources = router_for(mapping, engine, scene["faces"], detector, mesh, clock)
    default = sources.prepare("alex")
    tracker = Tracker(detector, mesh, detect_interval=2)
    for frame in frames_of(media, 8):
        faces = tracker.track(frame, "all")
        assert len(faces) == 2
        got = router.route(frame, faces, default)
        left, right = left_right(faces)
        assert [None if s is None else s.face.name for s in (got[left], got[right])] == ["tom", "alex"]
        d = router.decision(faces[left].track_id)
        assert d is not None and d.similarity > 0.99  # the same pixels as the photo, moved
        clock.t += 0.1
    assert router.embeddings == 2  # once per track: 8 frames within the re-check period

    clock.t += RECHECK_S
    router.route(frame, faces, default)
    assert router.embeddings == 4  # re-checked after the period
    # A track that ends is forgotten; a new track for the same person is decided anew.
    router.route(frame, faces[:1], default)
    assert router.decision(faces[1].track_id) is None


def test_an_unmatched_face_gets_the_default_source(media: Path, engine, scene, detector, mesh) -> None:
    router, sources = router_for({str(scene["stranger"]): "tom"}, engine, scene["faces"], detector, mesh, Clock())
    default = sources.prepare("alex")
    frame = frames_of(media, 1)[0]
    faces = Tracker(detector, mesh).track(frame, "all")
    assert router.route(frame, faces, default) == [default, default]
    assert all(d is not None and d.person is None and d.similarity < router.threshold
               for d in (router.decision(f.track_id) for f in faces))
    assert router.route(frame, faces, None) == [None, None]  # no chosen face: those faces stay as they are


def test_no_map_makes_no_model_call(media: Path, detector, mesh) -> None:
    router = TargetRouter()  # no embedder at all: a model call would fail
    frame = frames_of(media, 1)[0]
    faces = Tracker(detector, mesh).track(frame, "all")
    marker = object()
    assert router.route(frame, faces, marker) == [marker, marker]  # type: ignore[arg-type]
    assert router.embeddings == 0 and not router.active


def test_map_is_built_for_the_neural_engine_and_refused_for_lite(models_dir: Path, scene, tmp_path: Path) -> None:
    mapping = {str(scene["left"]): "tom", str(scene["right"]): "alex"}
    s = Settings(engine="inswapper", models=str(models_dir), provider="cpu", faces=str(scene["faces"]), map=mapping)
    stages = build_stages(s, Controls())
    assert stages.router.active and [p.face for p in stages.router.people] == ["tom", "alex"]
    assert build_stages(Settings(faces=str(scene["faces"])), Controls()).router.active is False
    with pytest.raises(EngineUnavailable, match="--map needs the neural engine"):
        build_stages(Settings(engine="lite", faces=str(scene["faces"]), map=mapping), Controls())
    with pytest.raises(FaceError, match="photo not found"):
        build_stages(Settings(engine="inswapper", models=str(models_dir), provider="cpu", faces=str(scene["faces"]),
                              map={str(tmp_path / "nobody.jpg"): "tom"}), Controls())
    with pytest.raises(FaceError, match="no face named 'nobody'"):
        build_stages(Settings(engine="inswapper", models=str(models_dir), provider="cpu", faces=str(scene["faces"]),
                              map={str(scene["left"]): "nobody"}), Controls())


def test_a_photo_without_a_face_is_skipped_in_one_line(models_dir: Path, scene, tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((300, 300, 3), 90, np.uint8))
    s = Settings(engine="inswapper", models=str(models_dir), provider="cpu", faces=str(scene["faces"]),
                 map={str(blank): "tom", str(scene["left"]): "alex"})
    stages = build_stages(s, Controls())
    assert [p.face for p in stages.router.people] == ["alex"]
    lines = [r.getMessage() for r in caplog.records if "blank.png" in r.getMessage()]
    assert len(lines) == 1 and "no face found" in lines[0] and "\n" not in lines[0]


def test_targets_and_map_settings() -> None:
    s = parse_settings('targets = "all"\n[map]\n"/photos/ann.jpg" = "tom"\n')
    assert s.targets == "all" and s.map == {"/photos/ann.jpg": "tom"}
    s = parse_settings('map = ["/photos/ann.jpg=tom", "/photos/bob=1.jpg = alex"]\n')
    assert s.map == {"/photos/ann.jpg": "tom", "/photos/bob=1.jpg": "alex"}  # the face name follows the last '='
    assert parse_settings("").targets == "one" and parse_settings("").map == {}
    with pytest.raises(SettingsError, match="'targets' must be one or all"):
        parse_settings('targets = "some"\n', "f.toml")
    with pytest.raises(SettingsError, match="is not CAMERA_PERSON_PHOTO=SOURCE_FACE"):
        parse_settings('map = ["/photos/ann.jpg"]\n', "f.toml")


def test_run_with_map_on_the_lite_engine_is_one_line(scene, tmp_path: Path) -> None:
    r = run_cli("run", "--engine", "lite", "--input", str(scene["left"]), "--faces", str(scene["faces"]),
                "--map", f"{scene['left']}=tom", "--output", str(tmp_path / "out.mp4"), "--max-frames", "1")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("vcamswap: error: --map needs the neural engine")
    assert "Traceback" not in r.stderr
    r = run_cli("run", "--map", "nothing-to-map", "--max-frames", "1")
    assert r.returncode == 2 and "is not CAMERA_PERSON_PHOTO=SOURCE_FACE" in r.stderr and "Traceback" not in r.stderr
