"""A bench pass's knobs (swap model, boost, occlusion) reach the preset every frame is processed with."""

from __future__ import annotations

from pathlib import Path

import pytest

from vcamswap.faces.detector import BlazeFaceDetector
from vcamswap.faces.landmarker import FaceMesh
from vcamswap.presets import get_preset
from vcamswap.tools.bench.metrics import Config
from vcamswap.tools.bench.rig import FixedFace, PassKnobs, make_engine, make_stages


@pytest.fixture(scope="module")
def rig() -> tuple[BlazeFaceDetector, FaceMesh, FixedFace]:
    from vcamswap.capture.demo import demo_face

    blaze, mesh = BlazeFaceDetector(), FaceMesh()
    return blaze, mesh, FixedFace(Path(demo_face()), blaze, mesh)


def test_pass_knobs_set_model_boost_and_occlusion_over_the_preset(
    rig: tuple[BlazeFaceDetector, FaceMesh, FixedFace], tmp_path: Path
) -> None:
    blaze, mesh, face = rig
    setup = make_engine("lite", None, None, blaze)
    config = Config("lite", "balanced", True)
    knobs = PassKnobs("ghost_2_256", None, "parser", str(tmp_path))
    stages, _ = make_stages(setup, face, mesh, blaze, config, False, False, knobs)
    assert stages.tune is not None
    preset = stages.tune(get_preset("balanced"))
    assert (preset.model, preset.occlusion) == ("ghost_2_256", "parser")
    plain, _ = make_stages(setup, face, mesh, blaze, config, False, False)
    assert plain.tune is not None and plain.tune(get_preset("balanced")).model == "inswapper_128"


def test_pass_knobs_refuse_an_unknown_model(rig: tuple[BlazeFaceDetector, FaceMesh, FixedFace]) -> None:
    blaze, mesh, face = rig
    setup = make_engine("lite", None, None, blaze)
    with pytest.raises(ValueError, match="unknown model 'ghost_9_256'"):
        make_stages(setup, face, mesh, blaze, Config("lite", "balanced", True), False, False,
                    PassKnobs("ghost_9_256"))
