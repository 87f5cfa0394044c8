"""Pixel boost of the neural engine: a 256 or 512 px aligned crop swapped as 4 or 16 sub-pixel tiles of 128,
batched in one model call, interleaved back; 128 stays today's single call. The knob, its overrides, and
adaptive quality stepping it down before anything else."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest
from helpers.cli import run_cli
from helpers.faces import face_of, read
from helpers.pipeline import drive

from vcamswap.compose.align import align
from vcamswap.controls import Controls, ControlState
from vcamswap.engines import SwapItem, boost
from vcamswap.engines.inswapper import InswapperEngine, InswapperSource
from vcamswap.engines.lite.engine import LiteEngine
from vcamswap.engines.neural import face_mask, swap_template
from vcamswap.faces.analyzer import FaceAnalyzer
from vcamswap.faces.detector import BlazeFaceDetector
from vcamswap.faces.landmarker import FaceMesh
from vcamswap.faces.library import FaceLibrary
from vcamswap.faces.tracking import Tracker
from vcamswap.live.adaptive import AdaptiveQuality, degrade, ladder_for
from vcamswap.live.build import boost_for
from vcamswap.modelstore import standins
from vcamswap.modelstore.batch import ensure_batched
from vcamswap.presets import PRESETS, get_preset, with_overrides
from vcamswap.settings import Settings, SettingsError, parse_settings
from vcamswap.types import FaceGeometry, Frame

TARGET = "faces/resolution_ladder/obama-720p.jpg"
SOURCE = "faces/single/biden.jpg"
WEBCAM = "videos/webcam/webcam_640x480_30fps_s18_woman.mp4"


def models(folder: Path, mode: standins.SwapMode, batched: bool) -> Path:
    standins.make_all(folder, swap_mode=mode)
    if batched:
        assert ensure_batched(folder).outcome == "made"
    return folder


@pytest.fixture(scope="module")
def identity_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return models(tmp_path_factory.mktemp("identity"), "identity", batched=False)


@pytest.fixture(scope="module")
def identity_batched_dir(identity_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("identity-batched")
    for p in identity_dir.glob("*.onnx"):
        shutil.copy(p, out / p.name)
    assert ensure_batched(out).outcome == "made"
    return out


@pytest.fixture(scope="module")
def blend_batched_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return models(tmp_path_factory.mktemp("blend-batched"), "blend", batched=True)


def aligned(analyzer: FaceAnalyzer, media: Path, size: int) -> tuple[np.ndarray, FaceGeometry]:
    """The real test face aligned to the engine's template at `size`, and its geometry in the crop."""
    image = read(media, TARGET)
    face = face_of(analyzer, image)
    crop, m = align(image, face.kps, swap_template(size), size)
    return crop, face.transformed(m)


def source_of(engine: InswapperEngine, analyzer: FaceAnalyzer, media: Path) -> InswapperSource:
    image = read(media, SOURCE)
    return engine.prepare_source(image, face_of(analyzer, image))


# ----------------------------------------------------------------------------------------------- tiling


@pytest.mark.parametrize("k", [1, 2, 4])
def test_tiles_are_sub_pixel_grids_and_interleave_back(k: int) -> None:
    crop = np.random.default_rng(k).integers(0, 256, (128 * k, 128 * k, 3), np.uint8)
    tiles = boost.implode(crop, k)
    assert tiles.shape == (k * k, 128, 128, 3)
    for i in range(k):
        for j in range(k):
            assert np.array_equal(tiles[i * k + j], crop[i::k, j::k])
    assert np.array_equal(boost.explode(tiles, k), crop)
    assert boost.tiles_of(128 * k) == k * k


def test_the_larger_crop_is_the_128_template_scaled(analyzer: FaceAnalyzer, media: Path) -> None:
    """Every tile of a 256 crop is the face as the 128 crop holds it, a sub-pixel shift apart."""
    np.testing.assert_allclose(swap_template(256), 2 * swap_template(128), rtol=1e-6)
    np.testing.assert_allclose(swap_template(512), 4 * swap_template(128), rtol=1e-6)
    small, _ = aligned(analyzer, media, 128)
    big, _ = aligned(analyzer, media, 256)
    diff = np.abs(big[::2, ::2].astype(np.int16) - small.astype(np.int16))  # tile (0, 0): the same sample points
    assert diff.mean() < 1.0
    shifted = np.abs(big[1::2, 1::2].astype(np.int16) - small.astype(np.int16))  # shifted half a 128-pixel
    assert diff.mean() < shifted.mean() < 16.0  # the same face, half a pixel off


# ----------------------------------------------------------------------------------------------- engine


def test_boost_128_is_the_single_model_call_of_before(
    models_dir: Path, analyzer: FaceAnalyzer, media: Path
) -> None:
    """At 128 the engine feeds the model the crop itself, once, and pastes exactly what it returns."""
    engine = InswapperEngine(models_dir, provider="cpu", threads=1)
    preset = get_preset("balanced")
    assert preset.boost == 128 and engine.crop_size(preset) == 128
    crop, face = aligned(analyzer, media, engine.crop_size(preset))
    src = source_of(engine, analyzer, media)
    out = engine.swap(crop, face, src, preset)
    session = ort.InferenceSession(str(models_dir / "inswapper_128.onnx"), providers=["CPUExecutionProvider"])
    blob = cv2.dnn.blobFromImage(crop, 1.0 / 255.0, (128, 128), (0, 0, 0), swapRB=True)
    pred = session.run(None, {"target": blob, "source": src.latent})[0][0].transpose(1, 2, 0)
    expected = np.clip(pred * 255.0 + 0.5, 0, 255).astype(np.uint8)[..., ::-1]
    assert out.crop.tobytes() == np.ascontiguousarray(expected).tobytes()
    assert np.array_equal(out.mask, face_mask(128, preset.mask_feather))
    assert engine.tiles_swapped == 1 and engine.batched_calls == 0


@pytest.mark.parametrize("size", [256, 512])
@pytest.mark.parametrize("batched", [False, True])
def test_identity_model_gives_the_crop_back_through_the_tiles(
    identity_dir: Path, identity_batched_dir: Path, analyzer: FaceAnalyzer, media: Path, size: int, batched: bool
) -> None:
    engine = InswapperEngine(identity_batched_dir if batched else identity_dir, provider="cpu", threads=1)
    assert (engine.batch_session is not None) == batched
    preset = with_overrides(get_preset("balanced"), boost=size)
    assert engine.crop_size(preset) == size
    crop, face = aligned(analyzer, media, size)
    src = source_of(engine, analyzer, media)
    out = engine.swap(crop, face, src, preset)
    assert out.crop.shape == crop.shape and np.array_equal(out.crop, crop)
    assert out.mask.shape == (size, size) and np.array_equal(out.mask, face_mask(size, preset.mask_feather))
    tiles = (size // 128) ** 2
    assert engine.tiles_swapped == tiles
    assert engine.batched_calls == (1 if batched else 0)  # every tile in one call where the model batches
    # Two faces of a frame: all their tiles in one call.
    both = engine.swap_many([SwapItem(crop, face, src), SwapItem(crop[:, ::-1].copy(), face, src)], preset)
    assert np.array_equal(both[0].crop, crop) and np.array_equal(both[1].crop, crop[:, ::-1])
    assert engine.tiles_swapped == 3 * tiles and engine.batched_calls == (2 if batched else 0)


def test_each_tile_is_swapped_with_the_source(
    blend_batched_dir: Path, analyzer: FaceAnalyzer, media: Path
) -> None:
    """With the tinting stand-in each pixel of the 256 output is the model's output for its own tile."""
    engine = InswapperEngine(blend_batched_dir, provider="cpu", threads=1)
    preset = with_overrides(get_preset("quality"), boost=256)
    crop, face = aligned(analyzer, media, 256)
    src = source_of(engine, analyzer, media)
    out = engine.swap(crop, face, src, preset)
    rgb01 = crop[..., ::-1].astype(np.float32).transpose(2, 0, 1) / 255.0
    expected = standins.expected_swap(rgb01, src.latent)  # per pixel: tiling changes nothing for this model
    expected_bgr = (expected.transpose(1, 2, 0)[..., ::-1] * 255.0).round()
    assert np.abs(out.crop.astype(np.float32) - expected_bgr).max() <= 1.0
    mouth = np.round((face.kps[3] + face.kps[4]) / 2).astype(int)
    assert out.mask.shape == (256, 256) and out.mask[mouth[1], mouth[0]] < 0.1  # quality keeps the mouth


def test_a_crop_of_no_boost_size_is_refused(identity_dir: Path) -> None:
    engine = InswapperEngine(identity_dir, provider="cpu", threads=1)
    payload = InswapperSource(np.ones(512, np.float32), np.ones((1, 512), np.float32))
    face = FaceGeometry(np.zeros(4, np.float32), swap_template(192), None, 1.0)
    with pytest.raises(ValueError, match="128x128, 256x256, 512x512, got 192x192"):
        engine.swap(np.zeros((192, 192, 3), np.uint8), face, payload, get_preset("fast"))
    with pytest.raises(ValueError, match="boost must be one of 128, 256, 512"):
        engine.crop_size(get_preset("fast").with_knobs(boost=300))


def test_the_live_pipeline_pastes_a_boosted_face(blend_batched_dir: Path, media: Path, tmp_path: Path) -> None:
    engine = InswapperEngine(blend_batched_dir, provider="cpu", threads=1)
    detector, mesh = BlazeFaceDetector(), FaceMesh()
    library = FaceLibrary(tmp_path / "faces", FaceAnalyzer(detector, mesh))
    controls = Controls(ControlState(preset="balanced"))
    name = library.resolve(str(media / SOURCE))
    controls.set_faces(library.names())
    controls.set_face(name)
    driven = drive(engine, Tracker(detector, mesh, 4), library, controls, lambda p: with_overrides(p, boost=256))
    cap = cv2.VideoCapture(str(media / WEBCAM))
    for i in range(3):
        ok, image = cap.read()
        assert ok
        r = driven.process(Frame(image, i, 0.0))
        assert r.swapped and r.engine_ran and r.face is not None
        diff = np.abs(r.image.astype(np.int16) - image.astype(np.int16)).sum(axis=2)
        x0, y0, x1, y1 = r.face.geometry.bbox.astype(int)
        assert diff[max(y0, 0):y1, max(x0, 0):x1].mean() > 20  # tinted by the stand-in
        pad = (x1 - x0) // 2
        diff[max(y0 - pad, 0):y1 + pad, max(x0 - pad, 0):x1 + pad] = 0
        assert diff.max() == 0
    cap.release()
    assert engine.tiles_swapped == 3 * 4 and engine.batched_calls == 3


# ----------------------------------------------------------------------------------------------- knob


def test_presets_boost_by_cost_and_the_user_overrides_them() -> None:
    assert {n: p.boost for n, p in PRESETS.items()} == {"fast": 128, "balanced": 128, "quality": 256}
    assert with_overrides(get_preset("fast"), boost=512).boost == 512
    assert with_overrides(get_preset("quality")).boost == 256
    with pytest.raises(ValueError, match="boost must be one of"):
        with_overrides(get_preset("fast"), boost=300)
    assert parse_settings("boost = 512").boost == 512
    with pytest.raises(SettingsError, match="boost must be one of 128, 256, 512, not 300"):
        parse_settings("boost = 300")


def test_boost_reaches_the_neural_engine_only(identity_dir: Path) -> None:
    engine = InswapperEngine(identity_dir, provider="cpu", threads=1)
    assert boost_for(Settings(boost=512), engine) == 512
    assert boost_for(Settings(), engine) is None  # the preset's
    assert boost_for(Settings(boost=512), LiteEngine()) == 128  # adaptive spends no step on it


def test_cli_takes_boost_and_refuses_other_sizes(tmp_path: Path) -> None:
    r = run_cli("run", "--boost", "300", "--output", str(tmp_path / "out.mp4"))
    assert r.returncode == 2 and "--boost: invalid choice: 300" in r.stderr


# ----------------------------------------------------------------------------------------------- adaptive


def test_adaptive_steps_the_boost_down_before_skipping_frames(
    identity_batched_dir: Path, analyzer: FaceAnalyzer, media: Path
) -> None:
    """The real controller and engine: each frame costs what the engine's model calls cost (tiles x a unit);
    16 and 4 tiles overload the budget, 1 fits."""
    engine = InswapperEngine(identity_batched_dir, provider="cpu", threads=1)
    image = read(media, TARGET)
    face = face_of(analyzer, image)
    src = source_of(engine, analyzer, media)
    unit = 0.5 / 30.0  # one tile: half the frame budget at 30 fps
    aq = AdaptiveQuality(30.0, settle=4, window=8)
    base = with_overrides(get_preset("balanced"), boost=512)
    seen: list[tuple[int, int]] = []
    for _ in range(40):
        preset = aq(base)
        size = engine.crop_size(preset)
        crop, m = align(image, face.kps, engine.template(size), size)
        before = engine.tiles_swapped
        engine.swap(crop, face.transformed(m), src, preset)
        aq.observe((engine.tiles_swapped - before) * unit)
        if not seen or seen[-1] != (preset.boost, preset.swap_interval):
            seen.append((preset.boost, preset.swap_interval))
    assert seen == [(512, 1), (256, 1), (128, 1)]  # the boost went first; no frame was skipped
    assert aq.level == 2 and [c.reason for c in aq.changes] == ["down", "down"]


def test_the_ladder_starts_with_the_boost() -> None:
    quality = get_preset("quality")
    assert [s.name for s in ladder_for(quality)][:2] == ["boost down", "enhancer off (else swap interval +1)"]
    assert degrade(quality, 1) == quality.with_knobs(boost=128)
    top = with_overrides(quality, boost=512)
    assert [degrade(top, n).boost for n in range(4)] == [512, 256, 128, 128]
    assert degrade(top, 3).swap_interval == top.swap_interval + 1
    assert ladder_for(get_preset("balanced"))[0].name != "boost down"


# ----------------------------------------------------------------------------------------------- bench


def test_bench_reports_ms_per_face_at_each_boost(
    identity_batched_dir: Path, media: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from vcamswap.tools.bench import boost as bench_boost

    rc = bench_boost.main(["--models", str(identity_batched_dir), "--provider", "cpu", "--runs", "1",
                           "--input", str(media / TARGET)])
    out = capsys.readouterr().out
    assert rc == 0 and "tiles batched: yes" in out
    assert [line.split(":")[0] for line in out.splitlines()[1:]] == ["boost 128", "boost 256", "boost 512"]
    assert "16 tiles" in out and "x 128)" in out
