"""The neural engine driven by stand-in models with the real interfaces: loading, detection decoding,
source identity, alignment, swap, masks, paste-back, provider choice and the failure paths."""

from __future__ import annotations

import logging
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import onnxruntime as ort
import pytest
from helpers.faces import face_of, read
from helpers.frames import read_frames
from helpers.pipeline import build, drive, hand_over_face

from vcamswap.compose.align import align
from vcamswap.compose.blend import paste_back
from vcamswap.compose.enhance import LiveEnhancer, make_enhancer
from vcamswap.controls import Controls, ControlState
from vcamswap.engines import EngineUnavailable, create_engine
from vcamswap.engines.inswapper import BoundRunner, InswapperEngine, InswapperSource
from vcamswap.engines.neural import SwapOutputError, face_mask, swap_template
from vcamswap.faces.analyzer import FaceAnalyzer
from vcamswap.faces.detector import BlazeFaceDetector
from vcamswap.faces.landmarker import FaceMesh
from vcamswap.faces.library import FaceLibrary
from vcamswap.faces.tracking import Tracker
from vcamswap.live.build import load_engine
from vcamswap.live.pipeline import Pipeline, occluders_in
from vcamswap.presets import get_preset
from vcamswap.runtime import providers
from vcamswap.settings import Settings
from vcamswap.types import FaceGeometry, Frame

SOURCE_A = "faces/single/biden.jpg"
SOURCE_B = "faces/single/tom_cruise.jpg"
TARGET = "faces/resolution_ladder/obama-720p.jpg"
WEBCAM = "videos/webcam/webcam_640x480_30fps_s18_woman.mp4"


def load_standins() -> ModuleType:
    from vcamswap.modelstore import standins

    return standins


@pytest.fixture(scope="module")
def ms() -> ModuleType:
    return load_standins()


@pytest.fixture(scope="module")
def engine(models_dir: Path) -> InswapperEngine:
    return InswapperEngine(models_dir, provider="cpu", threads=1)


# ----------------------------------------------------------------------------------------------- geometry


def test_template_is_insightface_norm_crop_for_128() -> None:
    """Keypoints already in the engine's template are left where they are by insightface's own alignment."""
    from insightface.utils import face_align

    kps = swap_template(128) * 1.7 + np.array([40.0, 25.0], np.float32)
    m = face_align.estimate_norm(kps, 128)
    mapped = kps @ m[:, :2].T + m[:, 2]
    np.testing.assert_allclose(mapped, swap_template(128), atol=1e-3)


# ----------------------------------------------------------------------------------------------- detector


@pytest.mark.parametrize("det_size", [320, 640])
@pytest.mark.parametrize("shape", [(480, 640), (640, 480)])
def test_scrfd_detects_the_blob_at_its_known_box(
    engine: InswapperEngine, ms: ModuleType, det_size: int, shape: tuple[int, int]
) -> None:
    h, w = shape
    scale = det_size / max(w, h)
    centre = (320, 192) if w > h else (192, 320)
    image = ms.blob_image(w, h, centre, det_size)
    dets = engine.make_detector(get_preset("quality" if det_size == 640 else "fast")).detect(image)
    assert engine.make_detector(get_preset("balanced")).det_size == 320
    assert len(dets) == 1
    box, kps = ms.expected_detection(centre, scale)
    np.testing.assert_allclose(dets[0].bbox, box, atol=1.0)
    np.testing.assert_allclose(dets[0].kps, kps, atol=1.0)
    assert dets[0].score > 0.99


def test_scrfd_finds_nothing_on_a_dark_frame_and_refuses_bad_input(engine: InswapperEngine) -> None:
    detector = engine.make_detector(get_preset("fast"))
    assert detector.detect(np.full((480, 640, 3), 20, np.uint8)) == []
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        detector.detect(np.zeros((480, 640), np.float32))


# ----------------------------------------------------------------------------------------------- source


def test_source_embedding_is_arcface_of_insightface_alignment(
    engine: InswapperEngine, ms: ModuleType, analyzer: FaceAnalyzer, media: Path
) -> None:
    from insightface.utils import face_align

    image = read(media, SOURCE_A)
    face = face_of(analyzer, image)
    payload = engine.prepare_source(image, face)
    assert isinstance(payload, InswapperSource)
    # Independently: insightface's norm_crop, the stand-in's maths in numpy.
    aligned = face_align.norm_crop(image, face.kps, 112)
    blob = (aligned[..., ::-1].astype(np.float32) - 127.5) / 127.5
    ref = ms.arcface_reference(blob.transpose(2, 0, 1)[None])[0]
    ref /= np.linalg.norm(ref)
    assert float(payload.embedding @ ref) > 0.995
    # The swap model's input is the embedding through emap, normalised; emap is not the identity.
    np.testing.assert_allclose(payload.latent, ms.latent_of(payload.embedding), atol=1e-5)
    assert abs(float(payload.latent[0] @ payload.embedding)) < 0.5
    assert payload.latent.dtype == np.float32 and payload.latent.shape == (1, 512)


# ----------------------------------------------------------------------------------------------- swap


def test_swap_applies_the_model_to_the_aligned_face(
    engine: InswapperEngine, ms: ModuleType, analyzer: FaceAnalyzer, media: Path
) -> None:
    target = read(media, TARGET)
    face = face_of(analyzer, target)
    src_a, src_b = read(media, SOURCE_A), read(media, SOURCE_B)
    pay_a = engine.prepare_source(src_a, face_of(analyzer, src_a))
    pay_b = engine.prepare_source(src_b, face_of(analyzer, src_b))
    preset = get_preset("balanced")
    crop, m = align(target, face.kps, engine.template(128), engine.crop_size(preset))
    out = engine.swap(crop, face.transformed(m), pay_a, preset)
    assert out.crop.shape == (128, 128, 3) and out.crop.dtype == np.uint8
    rgb01 = crop[..., ::-1].astype(np.float32).transpose(2, 0, 1) / 255.0
    expected = ms.expected_swap(rgb01, pay_a.latent)
    expected_bgr = (expected.transpose(1, 2, 0)[..., ::-1] * 255.0).round()
    assert np.abs(out.crop.astype(np.float32) - expected_bgr).max() <= 1.0
    other = engine.swap(crop, face.transformed(m), pay_b, preset)
    assert np.abs(other.crop.astype(np.int16) - out.crop.astype(np.int16)).mean() > 5  # the source matters

    # The mask covers the face, not the crop's corners; the aligned face's nose is inside.
    nose = np.round(engine.template(128)[2]).astype(int)
    assert out.mask.dtype == np.float32 and out.mask.shape == (128, 128)
    assert out.mask[nose[1], nose[0]] > 0.99
    assert out.mask[:6, :6].max() == 0 and out.mask[-6:, -6:].max() == 0

    # Paste-back changes the face region and leaves the rest of the frame alone.
    result = paste_back(target.copy(), out, m)
    inv = cv2.invertAffineTransform(m)
    nx, ny = (nose.astype(np.float32) @ inv[:, :2].T + inv[:, 2]).astype(int)
    assert np.abs(result[ny, nx].astype(int) - target[ny, nx].astype(int)).sum() > 10
    assert np.array_equal(result[:40, :40], target[:40, :40])


def test_mouth_mask_lets_the_real_mouth_through(
    engine: InswapperEngine, analyzer: FaceAnalyzer, ms: ModuleType, media: Path
) -> None:
    target = read(media, TARGET)
    face = face_of(analyzer, target)
    payload = engine.prepare_source(target, face)
    crop, m = align(target, face.kps, engine.template(128), 128)
    in_crop = face.transformed(m)
    mouth = np.round((in_crop.kps[3] + in_crop.kps[4]) / 2).astype(int)
    with_mouth = engine.swap(crop, in_crop, payload, get_preset("quality"))
    without = engine.swap(crop, in_crop, payload, get_preset("balanced"))
    assert get_preset("quality").mouth_mask and not get_preset("balanced").mouth_mask
    assert without.mask[mouth[1], mouth[0]] > 0.95
    assert with_mouth.mask[mouth[1], mouth[0]] < 0.1
    nose = np.round(in_crop.kps[2]).astype(int)
    assert with_mouth.mask[nose[1], nose[0]] > 0.9
    # From the 5 keypoints alone (no FaceMesh points) the mouth is still kept.
    bare = FaceGeometry(in_crop.bbox, in_crop.kps, None, in_crop.score)
    assert engine.swap(crop, bare, payload, get_preset("quality")).mask[mouth[1], mouth[0]] < 0.1


def test_face_mask_is_cached_and_read_only() -> None:
    a = face_mask(128, 0.08)
    assert a is face_mask(128, 0.08)
    assert not a.flags.writeable
    assert 0.0 <= a.min() and a.max() <= 1.0


def test_bad_swap_input_is_refused(engine: InswapperEngine) -> None:
    face = FaceGeometry(np.zeros(4, np.float32), swap_template(), None, 1.0)
    payload = InswapperSource(np.ones(512, np.float32), np.ones((1, 512), np.float32))
    with pytest.raises(ValueError, match="128x128"):
        engine.swap(np.zeros((64, 64, 3), np.uint8), face, payload, get_preset("fast"))
    with pytest.raises(TypeError, match="not one made by this engine"):
        engine.swap(np.zeros((128, 128, 3), np.uint8), face, {"lite": 1}, get_preset("fast"))


@pytest.mark.parametrize("mode", ["nan", "constant"])
def test_unusable_model_output_raises(ms: ModuleType, tmp_path: Path, mode: str) -> None:
    ms.make_all(tmp_path, swap_mode=mode)
    engine = InswapperEngine(tmp_path, provider="cpu", threads=1)
    face = FaceGeometry(np.zeros(4, np.float32), swap_template(), None, 1.0)
    crop = np.random.default_rng(0).integers(0, 255, (128, 128, 3), np.uint8)
    payload = InswapperSource(np.ones(512, np.float32), np.ones((1, 512), np.float32))
    with pytest.raises(SwapOutputError, match="NaN" if mode == "nan" else "flat"):
        engine.swap(crop, face, payload, get_preset("fast"))


# ----------------------------------------------------------------------------------------------- providers


def test_io_binding_runner_matches_plain_run(models_dir: Path, engine: InswapperEngine) -> None:
    """The device path (used on CUDA) run on the CPU device: same output, latent uploaded once per source."""
    bound = InswapperEngine(models_dir, provider="cpu", threads=1, io_binding=True)
    assert isinstance(bound.runner, BoundRunner)
    rng = np.random.default_rng(1)
    crop = rng.integers(0, 255, (128, 128, 3), np.uint8)
    face = FaceGeometry(np.zeros(4, np.float32), swap_template(), None, 1.0)
    lat_a = rng.standard_normal((1, 512)).astype(np.float32)
    lat_b = rng.standard_normal((1, 512)).astype(np.float32)
    for lat in (lat_a, lat_a, lat_b, lat_b):
        payload = InswapperSource(np.zeros(512, np.float32), lat)
        a = bound.swap(crop, face, payload, get_preset("fast")).crop
        b = engine.swap(crop, face, payload, get_preset("fast")).crop
        assert np.array_equal(a, b)
    assert bound.runner.latent_uploads == 2


def test_provider_choice() -> None:
    avail = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert providers.choose(None, avail).chain == (
        "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"
    )
    assert providers.choose("cuda", avail).chain == ("CUDAExecutionProvider", "CPUExecutionProvider")
    assert providers.choose("CUDAExecutionProvider", avail).name == "cuda"
    assert providers.choose(None, ["DmlExecutionProvider", "CPUExecutionProvider"]).name == "directml"
    assert providers.choose("dml", ["DmlExecutionProvider", "CPUExecutionProvider"]).name == "directml"
    assert providers.choose(None, ["OpenVINOExecutionProvider", "CPUExecutionProvider"]).name == "openvino"
    mac_gpu = ["CoreMLExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert providers.choose(None, mac_gpu).name == "cuda"
    absent = providers.choose("coreml", ["CPUExecutionProvider"])
    assert absent.name == "cpu" and absent.note and "coreml is not available" in absent.note
    with pytest.raises(providers.ProviderError, match="unknown execution provider 'cudaa'"):
        providers.choose("cudaa", avail)
    # Here: the real onnxruntime build.
    here = providers.choose(None)
    assert here.chain[-1] == "CPUExecutionProvider"
    assert here.name in providers.present()


def test_engine_reports_where_models_run(engine: InswapperEngine) -> None:
    assert engine.choice.chain == ("CPUExecutionProvider",)
    swap = "cpu (fp32, inswapper_128.onnx)"
    assert engine.placement() == {"det_10g": "cpu", "w600k_r50": "cpu", "inswapper_128": swap}
    assert engine.swap_session.get_session_options().intra_op_num_threads == 1


def test_unknown_provider_makes_the_engine_unavailable(models_dir: Path) -> None:
    with pytest.raises(EngineUnavailable, match="unknown execution provider"):
        InswapperEngine(models_dir, provider="quantum")


# ----------------------------------------------------------------------------------------------- unavailable


def test_missing_models_name_the_download_command(tmp_path: Path, ms: ModuleType) -> None:
    with pytest.raises(EngineUnavailable) as e:
        create_engine("inswapper", models_dir=tmp_path, provider=None)
    msg = str(e.value)
    assert "\n" not in msg
    assert "det_10g, w600k_r50, inswapper_128" in msg
    assert "vcamswap models download" in msg and "--from" in msg
    ms.save(ms.scrfd_model(), tmp_path / "det_10g.onnx")
    with pytest.raises(EngineUnavailable, match=r"models w600k_r50, inswapper_128 not installed"):
        InswapperEngine(tmp_path)


def test_corrupt_model_is_unavailable_with_the_fix(models_dir: Path, tmp_path: Path) -> None:
    for f in models_dir.glob("*.onnx"):
        (tmp_path / f.name).write_bytes(f.read_bytes())
    data = (tmp_path / "inswapper_128.onnx").read_bytes()
    (tmp_path / "inswapper_128.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(EngineUnavailable) as e:
        InswapperEngine(tmp_path)
    msg = str(e.value)
    assert "inswapper_128.onnx cannot be loaded" in msg and "vcamswap models download inswapper_128" in msg
    assert "\n" not in msg


def test_wrong_model_in_the_swapper_slot_is_refused(models_dir: Path, ms: ModuleType, tmp_path: Path) -> None:
    for f in models_dir.glob("*.onnx"):
        (tmp_path / f.name).write_bytes(f.read_bytes())
    ms.save(ms.arcface_model(), tmp_path / "inswapper_128.onnx")
    with pytest.raises(EngineUnavailable, match="is not an inswapper_128 model"):
        InswapperEngine(tmp_path)


def test_app_falls_back_to_lite_with_one_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(engine="inswapper", models=str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="vcamswap"):
        engine = load_engine(settings)
    assert engine.name == "lite"
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "vcamswap models download" in warnings[0] and "using the lite engine" in warnings[0]


def test_app_loads_the_neural_engine_when_models_are_installed(
    models_dir: Path, engine: InswapperEngine, analyzer: FaceAnalyzer, media: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """No fallback, nothing said: the app's engine runs the installed models, swapping a real face as the engine
    built directly on them (the control) does."""
    with caplog.at_level(logging.WARNING, logger="vcamswap"):
        loaded = load_engine(Settings(engine="inswapper", models=str(models_dir), provider="cpu"))
    assert isinstance(loaded, InswapperEngine) and loaded.name == "inswapper"
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    source = read(media, SOURCE_A)
    source_face = face_of(analyzer, source)
    target = read(media, TARGET)
    target_face = face_of(analyzer, target)
    crop, m = align(target, target_face.kps, swap_template(128), 128)
    preset = get_preset("balanced")
    got = loaded.swap(crop, target_face.transformed(m), loaded.prepare_source(source, source_face), preset)
    want = engine.swap(crop, target_face.transformed(m), engine.prepare_source(source, source_face), preset)
    assert np.abs(got.crop.astype(int) - want.crop.astype(int)).max() <= 1  # thread counts may differ
    assert float(np.abs(got.crop.astype(int) - crop.astype(int)).mean()) > 5  # and it swapped


# ----------------------------------------------------------------------------------------------- live path


def run_pipeline(engine: InswapperEngine, media: Path, tmp_path: Path, frames: int) -> list[tuple[np.ndarray, object]]:
    detector, mesh = BlazeFaceDetector(), FaceMesh()
    library = FaceLibrary(tmp_path / "faces", FaceAnalyzer(detector, mesh))
    controls = Controls(ControlState(preset="balanced"))
    name = library.resolve(str(media / SOURCE_A))
    controls.set_faces(library.names())
    controls.set_face(name)
    pipeline = drive(engine, Tracker(detector, mesh, 4), library, controls)
    cap = cv2.VideoCapture(str(media / WEBCAM))
    out = []
    for i in range(frames):
        ok, image = cap.read()
        assert ok
        out.append((image, pipeline.process(Frame(image, i, 0.0))))
    cap.release()
    return out


def test_live_pipeline_swaps_the_face_and_keeps_the_background(
    engine: InswapperEngine, media: Path, tmp_path: Path
) -> None:
    results = run_pipeline(engine, media, tmp_path, 6)
    assert all(r.swapped and r.engine_ran for _, r in results)  # type: ignore[attr-defined]
    for image, r in results:
        diff = np.abs(r.image.astype(np.int16) - image.astype(np.int16)).sum(axis=2)  # type: ignore[attr-defined]
        x0, y0, x1, y1 = r.face.geometry.bbox.astype(int)  # type: ignore[attr-defined]
        inside = diff[max(y0, 0):y1, max(x0, 0):x1]
        assert inside.mean() > 20  # the face was tinted by the stand-in
        outside = diff.copy()
        pad = (x1 - x0) // 2
        outside[max(y0 - pad, 0):y1 + pad, max(x0 - pad, 0):x1 + pad] = 0
        assert outside.max() == 0  # nothing outside the face's region is touched


def test_nan_output_passes_the_frame_through(ms: ModuleType, media: Path, tmp_path: Path) -> None:
    ms.make_all(tmp_path / "nan", swap_mode="nan")
    engine = InswapperEngine(tmp_path / "nan", provider="cpu", threads=1)
    for image, r in run_pipeline(engine, media, tmp_path, 2):
        assert np.array_equal(r.image, image) and not r.swapped  # type: ignore[attr-defined]



# ----------------------------------------------------------------------------------------------- architecture


def load_arch() -> ModuleType:
    from vcamswap.modelstore import arch

    return arch


@pytest.mark.parametrize("fp16", [False, True])
def test_architecture_model_runs_in_the_engine(
    models_dir: Path, tmp_path: Path, fp16: bool
) -> None:
    """A narrow build of the inswapper_128 architecture: same interface, loads and swaps unchanged."""
    import onnx

    arch = load_arch()
    for name in ("det_10g.onnx", "w600k_r50.onnx"):
        (tmp_path / name).write_bytes((models_dir / name).read_bytes())
    macs = arch.build_arch_model(tmp_path / "inswapper_128.onnx", fp16=fp16, channels=64)
    model = onnx.load(str(tmp_path / "inswapper_128.onnx"))
    assert macs == arch.count_macs(model, (128, 128))  # the builder's count agrees with shape inference
    assert model.graph.initializer[-1].name == "emap" and list(model.graph.initializer[-1].dims) == [512, 512]
    engine = InswapperEngine(tmp_path, provider="cpu", threads=1)
    face = FaceGeometry(np.zeros(4, np.float32), swap_template(), None, 1.0)
    crop = np.random.default_rng(0).integers(0, 255, (128, 128, 3), np.uint8)
    payload = InswapperSource(np.ones(512, np.float32) / np.sqrt(512), engine.emap[:1].copy())
    out = engine.swap(crop, face, payload, get_preset("fast"))
    assert out.crop.shape == (128, 128, 3) and out.crop.std() > 1


def test_full_architecture_cost_is_about_170_g_multiply_adds() -> None:
    """The residual blocks dominate: 12 convs of 3x3x1024x1024 at 32x32, plus the encoder and decoder."""
    per_block_conv = 9 * 1024 * 1024 * 32 * 32
    encoder = 49 * 3 * 128 * 128**2 + 9 * 128 * 256 * 64**2 + 9 * 256 * 512 * 32**2 + 9 * 512 * 1024 * 32**2
    decoder = 9 * 1024 * 512 * 64**2 + 9 * 512 * 256 * 128**2 + 9 * 256 * 128 * 128**2 + 49 * 128 * 3 * 128**2
    styles = 12 * 512 * 2048
    expected = 12 * per_block_conv + encoder + decoder + styles
    arch = load_arch()
    # The narrow build scales the same formula: channels / 1024 on every width but the RGB ends.
    c = 64
    narrow = (12 * 9 * c * c * 32 * 32 + 49 * 3 * (c // 8) * 128**2 + 9 * (c // 8) * (c // 4) * 64**2
              + 9 * (c // 4) * (c // 2) * 32**2 + 9 * (c // 2) * c * 32**2 + 9 * c * (c // 2) * 64**2
              + 9 * (c // 2) * (c // 4) * 128**2 + 9 * (c // 4) * (c // 8) * 128**2 + 49 * (c // 8) * 3 * 128**2
              + 12 * 512 * 2 * c)
    assert arch.inswapper_graph(channels=c)[1] == narrow
    assert 160e9 < expected < 175e9


def test_detector_architecture_has_det_10g_interface(tmp_path: Path) -> None:
    from insightface.model_zoo import SCRFD

    arch = load_arch()
    arch.build_scrfd_model(tmp_path / "det.onnx")
    session = ort.InferenceSession(str(tmp_path / "det.onnx"), providers=["CPUExecutionProvider"])
    det = SCRFD(model_file=str(tmp_path / "det.onnx"), session=session)
    assert det.use_kps and det.fmc == 3 and det._num_anchors == 2
    boxes, kps = det.detect(np.zeros((240, 320, 3), np.uint8), input_size=(320, 320))
    assert boxes.shape == (0, 5)  # nothing passes the threshold: timing without NMS noise


@pytest.mark.parametrize("kind", ["fast", "model", "off"])
def test_a_hand_in_front_of_the_face_stays_a_hand(
    ms: ModuleType, models_dir: Path, media: Path, tmp_path: Path, kind: str, detector: BlazeFaceDetector,
    mesh: FaceMesh,
) -> None:
    """The neural engine paints the whole face; the one masking step keeps a real hand in front of it, by the
    camera's skin colour (fast) or the occluder model (model); with occlusion off it is swapped over."""
    ms.make_optional(models_dir)
    engine = InswapperEngine(models_dir, provider="cpu", threads=1)
    driven = build(engine, detector, mesh, tmp_path / "faces", str(media / SOURCE_A),
                   adjust=lambda p: p.with_knobs(occlusion=kind, color_match=False))
    driven.pipeline = Pipeline(engine, driven.pipeline.tracker,
                               occluders_in(models_dir, "cpu"), realtime=False)
    # The occluder stand-in takes the face's colour from the crop's centre (the real model has no such blind
    # spot), so for it the hand covers the chin, clear of that centre.
    at = (0.3, 0.8) if kind == "model" else (0.05, 0.55)
    over = hand_over_face(driven, read_frames(media / WEBCAM, 24), 12, at)
    if kind == "off":
        assert min(over) > 0.3, "control: without occlusion the swap covers the hand"
    else:
        assert max(over) < 0.1, [round(o, 2) for o in over]


def test_the_enhancer_runs_every_nth_swap_in_the_live_pipeline(
    ms: ModuleType, models_dir: Path, media: Path, tmp_path: Path, detector: BlazeFaceDetector, mesh: FaceMesh
) -> None:
    """`enhance_every` 3: the model runs on swaps 1, 4, 7 of a face; the swaps between re-use its detail, so
    every output carries it (the stand-in sharpens a known box of the crop)."""
    ms.make_optional(models_dir)
    engine = InswapperEngine(models_dir, provider="cpu", threads=1)
    made: list[LiveEnhancer] = []

    def enhancer(every: int, template: np.ndarray) -> LiveEnhancer | None:
        e = make_enhancer(every, models_dir, "cpu", template=template)
        assert e is not None
        made.append(e)
        return e

    outputs = {}
    for every in (0, 3):
        driven = build(engine, detector, mesh, tmp_path / "faces", str(media / SOURCE_A),
                       adjust=lambda p, n=every: p.with_knobs(enhance_every=n))
        driven.pipeline = Pipeline(engine, driven.pipeline.tracker, enhancer=enhancer, realtime=False)
        outputs[every] = [driven.process(Frame(image, i, 0.0)).image for i, image in
                          enumerate(read_frames(media / WEBCAM, 7))]
    assert len(made) == 1 and made[0].runs == 3, "made once for the face, run on swaps 1, 4 and 7"
    for plain, enhanced in zip(outputs[0], outputs[3], strict=True):
        assert np.abs(plain.astype(np.int16) - enhanced.astype(np.int16)).max() > 0, "each frame has the detail"


# ----------------------------------------------------------------------------------------------- insightface


@pytest.mark.parametrize("swap_model", ["standin", "architecture"])
def test_engine_agrees_with_insightfaces_own_inswapper_and_arcface(
    models_dir: Path, analyzer: FaceAnalyzer, media: Path, tmp_path: Path, swap_model: str
) -> None:
    """insightface's INSwapper.get and ArcFaceONNX.get on the same model files and keypoints: the engine's
    embedding and latent agree to 1e-5, its alignment matrix to 1e-5 and its swapped crop to 2 grey levels
    (insightface truncates to uint8 where the engine rounds)."""
    from insightface.app.common import Face
    from insightface.model_zoo.arcface_onnx import ArcFaceONNX
    from insightface.model_zoo.inswapper import INSwapper
    from insightface.utils import face_align

    for name in ("det_10g.onnx", "w600k_r50.onnx", "inswapper_128.onnx"):
        (tmp_path / name).write_bytes((models_dir / name).read_bytes())
    if swap_model == "architecture":  # the real graph's shape (AdaIN from the latent) at low width
        load_arch().build_arch_model(tmp_path / "inswapper_128.onnx", channels=64)
    engine = InswapperEngine(tmp_path, provider="cpu", threads=1)
    cpu = ["CPUExecutionProvider"]
    ref_arcface = ArcFaceONNX(str(tmp_path / "w600k_r50.onnx"),
                              ort.InferenceSession(str(tmp_path / "w600k_r50.onnx"), providers=cpu))
    ref_swapper = INSwapper(str(tmp_path / "inswapper_128.onnx"),
                            ort.InferenceSession(str(tmp_path / "inswapper_128.onnx"), providers=cpu))

    source_img, target_img = read(media, SOURCE_A), read(media, TARGET)
    source_geo, target_geo = face_of(analyzer, source_img), face_of(analyzer, target_img)
    source_face, target_face = Face(kps=source_geo.kps), Face(kps=target_geo.kps)
    ref_arcface.get(source_img, source_face)
    payload = engine.prepare_source(source_img, source_geo)
    np.testing.assert_allclose(payload.embedding, source_face.normed_embedding, atol=1e-5)
    ref_latent = source_face.normed_embedding.reshape(1, -1) @ ref_swapper.emap
    ref_latent /= np.linalg.norm(ref_latent)
    np.testing.assert_allclose(payload.latent, ref_latent, atol=1e-5)

    preset = get_preset("balanced")
    crop, m = align(target_img, target_geo.kps, engine.template(128), engine.crop_size(preset))
    np.testing.assert_allclose(m, face_align.estimate_norm(target_geo.kps, 128), atol=1e-5)
    ref_crop, ref_m = ref_swapper.get(target_img, target_face, source_face, paste_back=False)
    np.testing.assert_allclose(m, ref_m, atol=1e-5)
    out = engine.swap(crop, target_geo.transformed(m), payload, preset)
    assert np.abs(out.crop.astype(np.int16) - ref_crop.astype(np.int16)).max() <= 2
    assert np.abs(out.crop.astype(np.int16) - crop.astype(np.int16)).mean() > 2  # the model did change the face
