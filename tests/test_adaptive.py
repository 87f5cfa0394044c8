"""Adaptive quality driven by frame times measured on the real pipeline (replayed, never slept)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from helpers.frames import read_frames
from helpers.pipeline import drive

from vcamswap.capture.demo import demo_face
from vcamswap.controls import Controls, ControlState
from vcamswap.engines.lite.engine import LiteEngine
from vcamswap.faces.analyzer import FaceAnalyzer
from vcamswap.faces.detector import BlazeFaceDetector
from vcamswap.faces.landmarker import FaceMesh
from vcamswap.faces.library import FaceLibrary
from vcamswap.faces.tracking import Tracker
from vcamswap.live.adaptive import LADDER, AdaptiveQuality, degrade, ladder_for
from vcamswap.presets import get_preset, with_overrides
from vcamswap.types import Frame

S18 = "videos/webcam/webcam_640x480_30fps_s18_woman.mp4"
LEVELS = len(LADDER) + 1
OVERLOAD = 1.3  # level 0 needs this much of the frame budget


@pytest.fixture(scope="module")
def measured(media: Path) -> dict[int, np.ndarray]:
    """Per-frame busy times (s) of the real lite pipeline on a real clip, at each level of the ladder."""
    detector, mesh = BlazeFaceDetector(), FaceMesh()
    library = FaceLibrary(Path("/nonexistent-faces"), FaceAnalyzer(detector, mesh))
    name = library.resolve(str(demo_face()))
    images = read_frames(media / S18, 48)
    pipelines = []
    for level in range(LEVELS):
        controls = Controls(ControlState(face=name, preset="balanced"))
        pipeline = drive(LiteEngine(), Tracker(detector, mesh), library, controls,
                         lambda p, lv=level: degrade(p, lv))  # type: ignore[misc]
        pipeline.process(Frame(images[0], 0, 0.0))  # warm-up: source analysis, first allocations
        pipelines.append(pipeline)
    out: dict[int, list[float]] = {level: [] for level in range(LEVELS)}
    # Level by level within each frame, so the levels share whatever else the machine is doing meanwhile.
    for i, img in enumerate(images):
        for level, pipeline in enumerate(pipelines):
            t0 = time.perf_counter()
            pipeline.process(Frame(img, i, t0))
            out[level].append(time.perf_counter() - t0)
    return {level: np.asarray(times) for level, times in out.items()}


def replay(aq: AdaptiveQuality, times: dict[int, np.ndarray], frames: int, scale: float = 1.0) -> list[int]:
    """Closed loop: each frame costs what the level in force measured; returns the level per frame."""
    base = get_preset("balanced")
    levels = []
    for i in range(frames):
        aq(base)
        seq = times[min(aq.level, max(times))]
        aq.observe(float(seq[i % len(seq)]) * scale)
        levels.append(aq.level)
    return levels


def test_levels_really_cost_less(measured: dict[int, np.ndarray]) -> None:
    """The ladder is worth climbing down: the deepest measured level is clearly cheaper than level 0."""
    assert measured[LEVELS - 1].mean() < 0.75 * measured[0].mean()


def test_steps_down_when_behind_and_settles(measured: dict[int, np.ndarray]) -> None:
    mean0 = float(measured[0].mean())
    aq = AdaptiveQuality(target_fps=OVERLOAD / mean0)
    assert any(measured[lv].mean() < 0.85 * aq.budget for lv in range(LEVELS)), "no measured level fits"
    levels = replay(aq, measured, 900)
    assert levels[0] == 0 and max(levels[:60]) > 0  # it reacts within two seconds
    final = levels[-1]
    assert final > 0
    assert measured[final].mean() / aq.budget <= aq.down  # where it settled, the pipeline keeps up
    assert len(set(levels[-600:])) == 1  # and it stays there: no oscillation
    downs = [c for c in aq.changes if c.reason == "down"]
    assert all(c.load > aq.down for c in downs)


def test_steps_back_up_with_headroom_and_hysteresis(measured: dict[int, np.ndarray]) -> None:
    mean0 = float(measured[0].mean())
    aq = AdaptiveQuality(target_fps=OVERLOAD / mean0)
    replay(aq, measured, 600)
    assert aq.level > 0
    # Another app stops using the CPU: everything now takes 35% of the time it did.
    levels = replay(aq, measured, 2000, scale=0.35)
    assert levels[-1] == 0
    # Not at once: it waits for a long calm stretch after each step up (hysteresis).
    first_up = next(i for i, lv in enumerate(levels) if lv < levels[0])
    assert first_up >= aq.hold_up_base
    assert all(c.reason == "up" for c in aq.changes[-(levels[0]):])


def test_no_oscillation_at_the_border(measured: dict[int, np.ndarray]) -> None:
    """The target sits right at level 0's cost: stepping down helps, stepping up would overload again.
    Over a minute of frames the level changes only a handful of times."""
    mean0 = float(measured[0].mean())
    aq = AdaptiveQuality(target_fps=0.95 / mean0)
    levels = replay(aq, measured, 3600)
    changes = sum(1 for a, b in zip(levels, levels[1:], strict=False) if a != b)
    assert changes <= 4


def test_a_preset_switch_starts_at_full_quality(measured: dict[int, np.ndarray]) -> None:
    mean0 = float(measured[0].mean())
    aq = AdaptiveQuality(target_fps=OVERLOAD / mean0)
    replay(aq, measured, 300)
    assert aq.level > 0
    fast = get_preset("fast")
    assert aq(fast) == fast and aq.level == 0
    assert aq.changes[-1].reason == "preset"


def test_degrade_steps_the_documented_knobs() -> None:
    p = get_preset("quality")
    last = degrade(p, len(ladder_for(p)))  # the quality preset's boost steps come first
    assert last.swap_interval > p.swap_interval
    assert last.detect_interval > p.detect_interval
    assert last.det_size < p.det_size
    assert last.crop_size < p.crop_size
    assert degrade(p, 0) == p
    assert degrade(p, 99) == last


def test_adaptive_needs_sane_settings() -> None:
    with pytest.raises(ValueError):
        AdaptiveQuality(0)
    with pytest.raises(ValueError):
        AdaptiveQuality(30, up=0.9, down=0.8)
    aq = AdaptiveQuality(30, explicit_target=False)
    aq.set_source_fps(25.0)
    assert aq.target_fps == 25.0
    fixed = AdaptiveQuality(20)
    fixed.set_source_fps(25.0)
    assert fixed.target_fps == 20


def test_live_loop_feeds_the_adaptive_control(media: Path) -> None:
    """Wired in: build_stages makes it when adaptive is on, and the live loop reports every frame."""
    from vcamswap.capture.source import Capture
    from vcamswap.live.build import build_stages
    from vcamswap.live.loop import LiveLoop
    from vcamswap.outputs.sinkset import SinkSet
    from vcamswap.settings import Settings

    settings = Settings(input=str(media / S18), faces="/nonexistent-faces", adaptive=True)
    controls = Controls(ControlState(preset="balanced"))
    stages = build_stages(settings, controls)
    controls.set_face(stages.library.resolve(str(demo_face())))
    aq = stages.adaptive
    assert isinstance(aq, AdaptiveQuality)
    capture = Capture(input=str(media / S18), realtime=False)
    sinks = SinkSet([])
    sinks.open(capture.info.width, capture.info.height, capture.info.fps)
    capture.start()
    try:
        LiveLoop(capture, stages.pipeline, sinks, controls, stages.sources, adaptive=aq, max_frames=20).run()
    finally:
        capture.stop()
    assert aq.frames == 20 and aq.target_fps == capture.info.fps
    off = build_stages(Settings(adaptive=False, faces="/nonexistent-faces"), controls)
    assert off.adaptive is None


def replay_faces(aq: AdaptiveQuality, times: dict[int, np.ndarray], faces: list[int]) -> list[int]:
    """Closed loop as replay(), with the faces of each frame: k faces cost k times a one-face frame."""
    base = get_preset("balanced")
    levels = []
    for i, k in enumerate(faces):
        aq(base)
        seq = times[min(aq.level, max(times))]
        aq.observe(float(seq[i % len(seq)]) * max(k, 0.05), faces=k)
        levels.append(aq.level)
    return levels


def test_a_second_face_steps_down_and_its_leaving_steps_back_up(measured: dict[int, np.ndarray]) -> None:
    """One face fits at full quality; two do not. The second person walking in is met within a second, and
    once they leave quality returns."""
    mean0 = float(measured[0].mean())
    aq = AdaptiveQuality(target_fps=0.5 / mean0)  # one face: half the budget; two: all of it
    assert set(replay_faces(aq, measured, [1] * 300)) == {0}
    assert any(2 * measured[lv].mean() < 0.85 * aq.budget for lv in range(LEVELS)), "no level fits two faces"
    two = replay_faces(aq, measured, [2] * 900)
    assert max(two[:30]) > 0  # reacted within a second of the second face
    assert 2 * measured[two[-1]].mean() / aq.budget <= aq.down  # settled where two faces fit
    assert len(set(two[-300:])) == 1
    back = replay_faces(aq, measured, [1] * 3000)
    assert back[-1] == 0 and back[0] > 0


def test_frames_without_a_face_never_step_quality_up(measured: dict[int, np.ndarray]) -> None:
    mean0 = float(measured[0].mean())
    aq = AdaptiveQuality(target_fps=OVERLOAD / mean0)
    replay_faces(aq, measured, [1] * 600)
    level = aq.level
    assert level > 0
    assert set(replay_faces(aq, measured, [0] * 2000)) == {level}  # nobody in view: nothing learnt, no change


# ----------------------------------------------------------------------------------------------- swap models

GHOST_BLOCKS = {"ghost_1_256": 1, "ghost_2_256": 2, "ghost_3_256": 3}  # AAD blocks: what a frame's swap costs


def model_run(models: tuple[str, ...], frames: int = 80) -> tuple[AdaptiveQuality, list[tuple[str, int]]]:
    """Closed loop on a cost model by counts: a frame costs 0.6 of the budget per AAD block of the model in force,
    so one block fits and two do not. Returns the controller and each (model, swap interval) it went through."""
    aq = AdaptiveQuality(30.0, settle=4, window=8)
    aq.models = models
    base = get_preset("balanced").with_knobs(model="ghost_3_256")
    seen: list[tuple[str, int]] = []
    for _ in range(frames):
        preset = aq(base)
        aq.observe(GHOST_BLOCKS[preset.model] * 0.6 * aq.budget)
        if not seen or seen[-1] != (preset.model, preset.swap_interval):
            seen.append((preset.model, preset.swap_interval))
    return aq, seen


def test_a_lighter_installed_model_comes_before_the_ladder() -> None:
    aq, seen = model_run(("inswapper_128", "ghost_1_256", "ghost_2_256", "ghost_3_256"))
    assert seen == [("ghost_3_256", 1), ("ghost_2_256", 1), ("ghost_1_256", 1)]  # no frame skipped
    assert aq.level == 2 and [c.reason for c in aq.changes] == ["down", "down"]


def test_only_installed_models_are_stepped_to() -> None:
    aq, seen = model_run(("ghost_1_256", "ghost_3_256"))  # ghost_2_256 is not in the models folder
    assert seen == [("ghost_3_256", 1), ("ghost_1_256", 1)] and aq.level == 1
    aq, seen = model_run(())  # an engine that runs no swap model (lite), or none installed: the ladder itself
    assert {model for model, _ in seen} == {"ghost_3_256"} and seen[1] == ("ghost_3_256", 2)


def test_model_steps_lead_the_boost_steps_and_a_new_model_starts_at_full_quality() -> None:
    top = with_overrides(get_preset("quality"), boost=512).with_knobs(model="ghost_3_256")
    names = [s.name for s in ladder_for(top, models=("ghost_1_256", "ghost_2_256"))]
    assert names[:5] == ["model ghost_2_256", "model ghost_1_256", "boost down", "boost down",
                         "enhancer off (else swap interval +1)"]
    assert ladder_for(top.with_knobs(model="inswapper_128"), models=("ghost_1_256",))[0].name == "boost down"
    aq, _ = model_run(("ghost_1_256", "ghost_2_256"))
    assert aq.level == 2
    chosen = get_preset("balanced").with_knobs(model="ghost_2_256")
    assert aq(chosen) == chosen and aq.level == 0 and aq.changes[-1].reason == "preset"
