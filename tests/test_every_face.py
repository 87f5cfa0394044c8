"""Every face in view through the whole pipeline, built as `run` builds it: on a real two-person photo,
`targets all` swaps both people, `one` only the followed one; with the neural engine the two faces go to
the swap model in one batched call, and `--map` gives each person a source of their own."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from helpers.media import media_path

from vcamswap.controls import Controls, initial_state
from vcamswap.engines.inswapper import InswapperEngine
from vcamswap.live.build import Stages, build_stages, initial_face
from vcamswap.live.pipeline import FrameResult
from vcamswap.modelstore.batch import ensure_batched
from vcamswap.presets import get_preset
from vcamswap.settings import Settings
from vcamswap.types import Frame, TrackedFace

TWO = "faces/multi/obama_biden_two_people.jpg"
SOURCE_A = "faces/single/eileen_collins_astronaut.png"
SOURCE_B = "faces/single/lin_manuel_miranda.png"


@pytest.fixture(scope="module")
def models(models_dir: Path) -> Path:
    ensure_batched(models_dir)
    return models_dir


def run_photo(settings: Settings, frames: int = 4) -> tuple[np.ndarray, FrameResult, Stages]:
    """The photo as a still camera, through the stages `run` builds (frame-exact)."""
    controls = Controls(initial_state(settings))
    # The embedded BlazeFace finds the people (the stand-in SCRFD only finds its own test blob).
    stages = build_stages(settings, controls, realtime=False, detector_for=lambda preset: None)
    controls.set_face(initial_face(settings, stages.library) or "")
    image = cv2.imread(str(media_path(TWO)))
    result = None
    for i in range(frames):
        state = controls.snapshot()
        preset = stages.tune(get_preset(state.preset)) if stages.tune else get_preset(state.preset)
        result = stages.pipeline.process(Frame(image, i, 0.0), state, preset, stages.sources.current(state.face))
    stages.pipeline.close()
    assert result is not None
    return image, result, stages


def box_change(image: np.ndarray, output: np.ndarray, face: TrackedFace) -> float:
    """Mean change inside a face's box."""
    x0, y0, x1, y1 = face.geometry.bbox.astype(int)
    diff = np.abs(output.astype(np.int16) - image.astype(np.int16))[max(y0, 0):y1, max(x0, 0):x1]
    return float(diff.mean())


def settings(engine: str, models: Path, tmp: Path, **more: Any) -> Settings:
    options: dict[str, Any] = {"face": str(media_path(SOURCE_A)), **more}
    return Settings(engine=engine, models=str(models), provider="cpu", faces=str(tmp / "faces"), **options)


@pytest.mark.parametrize("engine", ["lite", "inswapper"])
def test_all_swaps_both_people_and_one_only_the_followed_one(engine: str, models: Path, tmp_path: Path) -> None:
    image, every, stages = run_photo(settings(engine, models, tmp_path, targets="all"))
    assert stages.pipeline.engine.name == engine
    assert len(every.faces) == 2 and every.swapped_faces == 2
    assert min(box_change(image, every.image, f) for f in every.faces) > 4
    _, one, _ = run_photo(settings(engine, models, tmp_path, targets="one"))
    assert one.swapped_faces == 1
    changes = sorted(box_change(image, one.image, f) for f in every.faces)
    assert changes[0] < 0.5 and changes[1] > 4, changes


def test_the_neural_engine_swaps_both_faces_in_one_model_call(models: Path, tmp_path: Path) -> None:
    _, result, stages = run_photo(settings("inswapper", models, tmp_path, targets="all"), frames=3)
    engine = stages.pipeline.engine
    assert isinstance(engine, InswapperEngine) and result.swapped_faces == 2
    assert engine.batched_calls == 3, "each frame's two faces went to the model in one call"


def test_map_gives_each_person_their_own_source(models: Path, tmp_path: Path) -> None:
    """Each person's own photo (cut from the picture) maps them to a source; the output of each face is the
    one that source alone gives it."""
    image = cv2.imread(str(media_path(TWO)))
    left, right = tmp_path / "left_person.png", tmp_path / "right_person.png"
    half = image.shape[1] // 2
    cv2.imwrite(str(left), image[:, :half])
    cv2.imwrite(str(right), image[:, half:])
    faces = tmp_path / "faces"
    faces.mkdir()
    for name, rel in (("a", SOURCE_A), ("b", SOURCE_B)):
        (faces / f"{name}.png").write_bytes(media_path(rel).read_bytes())
    base = settings("inswapper", models, tmp_path, targets="all", face="a")
    _, only_a, _ = run_photo(base)
    _, only_b, _ = run_photo(dataclasses.replace(base, face="b"))
    _, mapped, _ = run_photo(dataclasses.replace(base, map={str(left): "a", str(right): "b"}))
    by_side = sorted(mapped.faces, key=lambda f: float(f.geometry.bbox[0]))
    assert len(by_side) == 2

    def gap(x: np.ndarray, y: np.ndarray, face: TrackedFace) -> float:
        x0, y0, x1, y1 = face.geometry.bbox.astype(int)
        return float(np.abs(x[max(y0, 0):y1, max(x0, 0):x1].astype(np.int16) - y[max(y0, 0):y1, max(x0, 0):x1]).mean())

    for face, own, other in zip(by_side, (only_a, only_b), (only_b, only_a), strict=True):
        between = gap(own.image, other.image, face)  # how differently the two sources swap this face
        assert between > 0.5, "control: the two sources swap a face differently"
        assert gap(mapped.image, own.image, face) < 0.2 * between, "the face has its mapped source's swap"
