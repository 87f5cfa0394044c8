"""The engine switched on a running loop: built off the loop while frames go on being published, swapped in
between two frames, refused in one line (the old engine staying) when it cannot be built. The real loop, the
real camera-paced file source and the real engines (the neural one on its stand-in models)."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from daemon_util import wait_until
from helpers.media import SOURCE, WEBCAM, media_path

from vcamswap.controls import Controls, initial_state
from vcamswap.engines import Engine, create_engine
from vcamswap.engines.inswapper import ScrfdDetector
from vcamswap.live.build import Live, Stages, build_run, engine_options, make_loop, open_capture
from vcamswap.live.loop import LiveLoop
from vcamswap.live.switch import EngineSwitch
from vcamswap.modelstore.installed import file_names, model_files
from vcamswap.outputs.sinkset import SinkSet
from vcamswap.settings import Settings


@dataclass
class Running:
    controls: Controls
    stages: Stages
    loop: LiveLoop
    switch: EngineSwitch
    gate: threading.Event  # the engines are built for real, and held back until the test opens this
    built: list[str]

    def published(self) -> int:
        return self.loop.stats.frames


@pytest.fixture
def running(tmp_path: Path, models_dir: Path) -> Iterator[Running]:
    faces = tmp_path / "faces"
    faces.mkdir()
    shutil.copy(media_path(SOURCE), faces / "obama.jpg")
    settings = Settings(input=str(media_path(WEBCAM)), faces=str(faces), models=str(models_dir), provider="cpu")
    controls = Controls(initial_state(settings))
    capture, _ = open_capture(settings, realtime=True)
    stages = build_run(settings, controls)
    gate, built = threading.Event(), []

    def make(name: str) -> Engine[Any]:
        engine = create_engine(name, **engine_options(replace(settings, engine=name)))
        built.append(name)
        gate.wait(60)
        return engine

    switch = EngineSwitch(settings, controls, stages, make)
    sinks = SinkSet([])
    sinks.open(capture.info.width, capture.info.height, capture.info.fps)
    loop = make_loop(Live(capture, stages, controls), sinks, between_frames=switch.apply)
    capture.start()
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        yield Running(controls, stages, loop, switch, gate, built)
    finally:
        controls.stop()
        thread.join(30)
        capture.stop()


def engine_of(r: Running) -> str:
    return r.loop.pipeline.engine.name


def test_frames_flow_while_the_new_engine_is_built_and_it_takes_over_between_frames(running: Running) -> None:
    r = running
    assert engine_of(r) == "lite" and r.controls.snapshot().engine == "lite"
    assert r.loop.adaptive is not None and r.loop.adaptive.models == ()  # lite runs no swap model
    r.controls.set_engine("inswapper")
    wait_until(lambda: r.built == ["inswapper"], "the neural engine built (held back)")
    during = r.published()
    wait_until(lambda: r.published() >= during + 15, "frames published while the engine is held back")
    assert engine_of(r) == "lite" and r.controls.snapshot().engine_wanted == "inswapper"

    r.gate.set()
    wait_until(lambda: r.controls.snapshot().engine == "inswapper", "the neural engine in force")
    assert engine_of(r) == "inswapper" and r.switch.switches == 1
    assert r.stages.sources.engine is r.loop.pipeline.engine and r.loop.inputs.sources is r.stages.sources
    assert r.stages.sources.usable("obama")  # prepared for it while it was built, not by the loop
    after = r.published()
    wait_until(lambda: r.published() >= after + 10, "frames published by the neural engine's loop")
    assert isinstance(r.loop.pipeline.tracker.detector, ScrfdDetector)  # its own detector took over
    assert r.loop.adaptive.models == ("inswapper_128",)  # the installed models it may step down to

    r.controls.set_engine("lite")
    wait_until(lambda: engine_of(r) == "lite" and r.controls.snapshot().engine == "lite", "back to lite")
    assert r.loop.pipeline.tracker.detector is r.stages.detector  # the embedded detector again
    assert r.loop.adaptive.models == () and r.switch.switches == 2
    back = r.published()
    wait_until(lambda: r.published() >= back + 10, "frames published by lite again")


def test_an_engine_that_cannot_be_built_leaves_the_old_one_in_force(running: Running) -> None:
    r = running
    r.gate.set()
    r.controls.set_engine("remote")  # no server given
    wait_until(lambda: r.controls.snapshot().engine_problem, "the reason said")
    snap = r.controls.snapshot()
    assert snap.engine == "lite" and snap.engine_wanted is None and engine_of(r) == "lite"
    assert snap.engine_problem is not None and snap.engine_problem.startswith("remote: no server given")
    assert "\n" not in snap.engine_problem
    before = r.published()
    wait_until(lambda: r.published() >= before + 10, "frames still published")
    with pytest.raises(ValueError, match="unknown engine 'gpu'"):
        r.controls.set_engine("gpu")


def test_asking_for_the_engine_in_force_cancels_a_build_under_way(running: Running) -> None:
    r = running
    r.controls.set_engine("inswapper")
    wait_until(lambda: r.built == ["inswapper"], "the neural engine built (held back)")
    r.controls.set_engine("lite")  # changed one's mind before it was ready
    assert r.controls.snapshot().engine_wanted is None
    r.gate.set()
    frames = r.published()
    wait_until(lambda: r.published() >= frames + 15, "frames after the build ended")
    assert engine_of(r) == "lite" and r.switch.switches == 0


def test_a_model_chosen_at_start_needs_its_files_and_reaches_the_engine_in_the_preset(
    tmp_path: Path, models_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`--model` (or the setting) whose files are missing: one line with the command that fetches them, and the
    default model. One that is installed is what every frame's preset carries to the engine."""
    models = tmp_path / "models"
    shutil.copytree(models_dir, models)
    settings = Settings(input=str(media_path(WEBCAM)), faces=str(tmp_path / "faces"), models=str(models),
                        model="ghost_3_256")
    controls = Controls(initial_state(settings))
    with caplog.at_level("WARNING"):
        stages = build_run(settings, controls)
    assert controls.snapshot().model == "inswapper_128"
    said = [r.getMessage() for r in caplog.records if "ghost_3_256" in r.getMessage()]
    assert len(said) == 1 and "vcamswap models download ghost_3_256" in said[0] and "using inswapper_128" in said[0]

    for name in file_names("ghost_2_256"):  # its files appear (the lite engine in force never loads them)
        (models / name).write_bytes(b"weights")
    controls.set_swap_models(model_files(models))
    again = Controls(initial_state(replace(settings, model="ghost_2_256")))
    build_run(replace(settings, model="ghost_2_256"), again)
    assert again.snapshot().model == "ghost_2_256"  # installed now: taken as chosen
    loop = make_loop(Live(open_capture(settings, realtime=False)[0], stages, controls), SinkSet([]))
    try:
        assert loop.inputs()[1].model == "inswapper_128"
        controls.set_model("ghost_2_256")
        assert loop.inputs()[1].model == "ghost_2_256"  # the next frame's preset, as the engine gets it
    finally:
        loop.capture.stop()
