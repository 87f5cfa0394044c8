"""GHOST (ghost_N_256) in the neural engine, on stand-ins with the real files' interfaces.

The differential test re-enacts, step by step, what ai-forever/ghost's inference does to a target face
(utils/inference: insightface 0.2.1's `estimate_norm(kps, 224, mode='None')`, written out below with the same
skimage SimilarityTransform it uses; cv2.warpAffine to 224; cv2.resize to 256; BGR->RGB, /255, (x-0.5)/0.5;
the generator; (y*0.5+0.5)*255, RGB->BGR, truncation to uint8 as torch's `.type(torch.uint8)` does;
cv2.resize back to 224) and to the source face (core.model_inference: the 224 crop, RGB, normalize_and_torch,
F.interpolate(scale_factor=0.5, mode='bilinear', align_corners=True), its own ArcFace, the raw output as
`source`). F.interpolate is the one torch op that is not elementwise: `torch_bilinear` re-enacts it from its
definition, per output sample, and is checked against cv2 where the two must agree. Where GHOST's ArcFace is
not installed, FaceFusion's path is compared instead (w600k_r50 on the arcface_112_v2 crop made with
cv2.estimateAffinePartial2D and INTER_AREA, /127.5 - 1, RGB; the raw embedding through crossface_ghost; its raw
output as `source`). The reference runs its networks in fp16 on a GPU; both paths here run the same fp32
stand-ins.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest
from helpers.faces import face_of, read
from helpers.frames import read_frames
from helpers.pipeline import build
from skimage import transform as trans

from vcamswap.compose.align import align
from vcamswap.engines import EngineError, EngineUnavailable
from vcamswap.engines.ghost import CROP_SIZE, ghost_template
from vcamswap.engines.ghost_arcface import arcface_blob, halve, interpolation_matrix, source_crop
from vcamswap.engines.inswapper import InswapperEngine, InswapperSource
from vcamswap.faces.analyzer import FaceAnalyzer
from vcamswap.faces.detector import BlazeFaceDetector
from vcamswap.faces.landmarker import FaceMesh
from vcamswap.modelstore import standins, standins_ghost
from vcamswap.modelstore.installed import missing_for_model
from vcamswap.presets import Preset, get_preset
from vcamswap.types import FaceGeometry, Frame

TARGET = "faces/single/obama_official_portrait.jpg"
SOURCE = "faces/single/biden.jpg"
WEBCAM = "videos/webcam/webcam_640x480_30fps_s18_woman.mp4"

# insightface 0.2.1's five 112 px pose templates ("set 2"), as utils/face_align.py lists them.
SET2_112 = np.array([
    [[51.642, 50.115], [57.617, 49.990], [35.740, 69.007], [51.157, 89.050], [57.025, 89.702]],
    [[45.031, 50.118], [65.568, 50.872], [39.677, 68.111], [45.177, 86.190], [64.246, 86.758]],
    [[39.730, 51.138], [72.270, 51.138], [56.000, 68.493], [42.463, 87.010], [69.537, 87.010]],
    [[46.845, 50.872], [67.382, 50.118], [72.737, 68.111], [48.167, 86.758], [67.236, 86.190]],
    [[54.796, 49.990], [60.771, 50.115], [76.673, 69.007], [55.388, 89.702], [61.257, 89.050]],
], np.float32)
ARCFACE_112_V2 = np.array([[0.34191607, 0.46157411], [0.65653393, 0.45983393], [0.50022500, 0.64050536],
                           [0.37097589, 0.82469196], [0.63151696, 0.82325089]])  # FaceFusion's, x 112


@pytest.fixture(scope="module")
def ghost_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ghost-standins")
    standins.make_all(out)
    standins_ghost.make_ghost(out)
    return out


@pytest.fixture(scope="module")
def engine(ghost_dir: Path) -> InswapperEngine:
    return InswapperEngine(ghost_dir, provider="cpu", threads=1, model="ghost_1_256")


@pytest.fixture(scope="module")
def converter_dir(ghost_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stand-ins without GHOST's own ArcFace: only FaceFusion's converter gives the identity."""
    folder = tmp_path_factory.mktemp("ghost-converter")
    for f in ghost_dir.glob("*.onnx"):
        if f.name != standins_ghost.ARCFACE_FILE:
            (folder / f.name).symlink_to(f)
    return folder


@pytest.fixture(scope="module")
def converter_engine(converter_dir: Path) -> InswapperEngine:
    return InswapperEngine(converter_dir, provider="cpu", threads=1, model="ghost_1_256")


def ghost_preset(model: str = "ghost_1_256") -> Preset:
    return get_preset("balanced").with_knobs(model=model)


# ----------------------------------------------------------------------------------------------- the reference


def reference_estimate_norm(lmk: np.ndarray, image_size: int) -> tuple[np.ndarray, int]:
    """insightface 0.2.1 estimate_norm(lmk, image_size, mode='None'): the least-residual of the 5 templates."""
    src = SET2_112 * (image_size / 112)
    tform = trans.SimilarityTransform()
    lmk_tran = np.insert(lmk, 2, values=np.ones(5), axis=1)
    best_m, best_i, best_err = None, -1, float("inf")
    for i in range(src.shape[0]):
        tform.estimate(lmk, src[i])
        m = tform.params[0:2, :]
        err = float(np.sum(np.sqrt(np.sum((np.dot(m, lmk_tran.T).T - src[i]) ** 2, axis=1))))
        if err < best_err:
            best_m, best_i, best_err = m, i, err
    assert best_m is not None
    return best_m, best_i


def reference_crop(frame: np.ndarray, kps: np.ndarray) -> tuple[np.ndarray, int]:
    m, index = reference_estimate_norm(kps, 224)
    return cv2.warpAffine(frame, m, (224, 224), borderValue=0.0), index


def reference_swap(crop224: np.ndarray, source: np.ndarray, generator: ort.InferenceSession) -> np.ndarray:
    resized = cv2.resize(crop224, (256, 256))  # video_processing.resize_frames
    x = resized[:, :, [2, 1, 0]] / 255.0  # core.transform_target_to_torch
    x = ((x - 0.5) / 0.5).transpose(2, 0, 1)[None].astype(np.float32)
    y = generator.run(None, {"target": x, "source": source.astype(np.float32)})[0]
    y = (y.transpose(0, 2, 3, 1) * 0.5 + 0.5) * 255  # faceshifter_run.faceshifter_batch
    y = y[:, :, :, [2, 1, 0]].astype(np.uint8)  # torch's uint8 cast truncates, as numpy's does
    return cv2.resize(y[0], (224, 224))  # video_processing.get_final_video


def torch_bilinear(x: np.ndarray, out_h: int, out_w: int, align_corners: bool) -> np.ndarray:
    """F.interpolate(x, (out_h, out_w), mode='bilinear', align_corners=...) of an NCHW array, from its
    definition: output (i, j) reads the input at (sy(i), sx(j)), sy(i) = i * (H - 1) / (out_h - 1) with aligned
    corners, else max((i + 0.5) * H / out_h - 0.5, 0); the four neighbours floor/floor+1 (clamped to the edge)
    weighted by the fractional parts."""
    h, w = x.shape[2:]

    def positions(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        i = np.arange(n_out, dtype=np.float64)
        src = i * (n_in - 1) / (n_out - 1) if align_corners else np.maximum((i + 0.5) * n_in / n_out - 0.5, 0)
        i0 = np.floor(src).astype(int)
        return i0, np.minimum(i0 + 1, n_in - 1), src - i0

    y0, y1, fy = positions(out_h, h)
    x0, x1, fx = positions(out_w, w)
    xd = x.astype(np.float64)
    fy, fx = fy[:, None], fx[None, :]
    top = xd[:, :, y0][:, :, :, x0] * (1 - fx) + xd[:, :, y0][:, :, :, x1] * fx
    bottom = xd[:, :, y1][:, :, :, x0] * (1 - fx) + xd[:, :, y1][:, :, :, x1] * fx
    return top * (1 - fy) + bottom * fy


def reference_source(crop224: np.ndarray, arcface: ort.InferenceSession) -> np.ndarray:
    """core.model_inference on inference.py's source crop: BGR -> RGB, normalize_and_torch, the halving, netArc."""
    rgb = crop224[:, :, ::-1]  # inference.py: source.append(img[:, :, ::-1])
    x = rgb.astype(np.float32)
    if x.max() > 1.0:  # image_processing.normalize_and_torch
        x = x / 255.0
    x = (x.transpose(2, 0, 1)[None] - 0.5) / 0.5
    halved = torch_bilinear(x, 112, 112, align_corners=True).astype(np.float32)
    out: np.ndarray = arcface.run(None, {arcface.get_inputs()[0].name: halved})[0]
    return out


def facefusion_source(frame: np.ndarray, kps: np.ndarray, recogniser: ort.InferenceSession,
                      converter: ort.InferenceSession) -> np.ndarray:
    m = cv2.estimateAffinePartial2D(kps, ARCFACE_112_V2 * 112, method=cv2.RANSAC, ransacReprojThreshold=100)[0]
    crop = cv2.warpAffine(frame, m, (112, 112), borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_AREA)
    x = (crop / 127.5 - 1)[:, :, ::-1].transpose(2, 0, 1)[None].astype(np.float32)
    raw = recogniser.run(None, {recogniser.get_inputs()[0].name: x})[0].ravel()
    out: np.ndarray = converter.run(None, {"input": raw.reshape(-1, 512)})[0]
    return out.reshape(1, -1)


# ----------------------------------------------------------------------------------------------- differential


@pytest.mark.filterwarnings("ignore:`estimate` is deprecated")  # the reference's own call, kept as it is
def test_crop_and_swap_match_the_reference_steps(
    engine: InswapperEngine, ghost_dir: Path, analyzer: FaceAnalyzer, media: Path
) -> None:
    frame = read(media, TARGET)
    face = face_of(analyzer, frame)
    ref_crop, index = reference_crop(frame, face.kps)
    assert index == 2  # a frontal face: the reference picks the frontal template, the one the engine uses
    ours, m = align(frame, face.kps, engine.template(engine.crop_size(ghost_preset())), CROP_SIZE)
    assert ours.shape == (224, 224, 3)
    assert int(np.abs(ours.astype(int) - ref_crop.astype(int)).max()) <= 2

    source_img = read(media, SOURCE)
    source_kps = face_of(analyzer, source_img).kps
    payload = engine.prepare_source(source_img, face_of(analyzer, source_img))
    sess = {n: ort.InferenceSession(str(ghost_dir / f), providers=["CPUExecutionProvider"])
            for n, f in (("ghost_1_256", "ghost_1_256.onnx"), ("arcface", standins_ghost.ARCFACE_FILE))}
    # The source crop: the reference's (its frontal template for a frontal face) within 2 grey levels.
    ref_src_crop, src_index = reference_crop(source_img, source_kps)
    our_src_crop = source_crop(source_img, source_kps)
    assert src_index == 2 and int(np.abs(our_src_crop.astype(int) - ref_src_crop.astype(int)).max()) <= 2
    # From the crop on, the identity is the reference's to 1e-5: RGB, [-1, 1], halved with aligned corners, raw.
    ref_source = reference_source(ref_src_crop, sess["arcface"])
    own = engine.ghost_arcface()
    assert own is not None
    np.testing.assert_allclose(own.embed(ref_src_crop), ref_source, rtol=0, atol=1e-5)
    assert payload.ghost is not None
    np.testing.assert_allclose(payload.ghost, reference_source(our_src_crop, sess["arcface"]), rtol=0, atol=1e-5)
    np.testing.assert_allclose(payload.ghost, ref_source, rtol=0, atol=0.02 * float(np.abs(ref_source).max()))
    assert abs(float(np.linalg.norm(ref_source)) - 1.0) > 0.1  # raw: not of unit length here

    out = engine.swap(ours, face.transformed(m), payload, ghost_preset())
    expected = reference_swap(ref_crop, payload.ghost, sess["ghost_1_256"])
    diff = np.abs(out.crop.astype(int) - expected.astype(int))
    assert out.crop.shape == expected.shape == (224, 224, 3)
    assert int(diff.max()) <= 2, f"max difference {diff.max()} grey levels"
    assert float(np.abs(out.crop.astype(int) - ours.astype(int)).mean()) > 10  # the swap did change the crop


def test_without_its_own_arcface_the_source_is_facefusions(
    converter_engine: InswapperEngine, converter_dir: Path, analyzer: FaceAnalyzer, media: Path
) -> None:
    """Without ghost_arcface the identity is FaceFusion's: crossface_ghost of w600k_r50 on its own crop."""
    image = read(media, SOURCE)
    payload = converter_engine.prepare_source(image, face_of(analyzer, image))
    sess = {n: ort.InferenceSession(str(converter_dir / f"{n}.onnx"), providers=["CPUExecutionProvider"])
            for n in ("w600k_r50", "crossface_ghost")}
    ref = facefusion_source(image, face_of(analyzer, image).kps, sess["w600k_r50"], sess["crossface_ghost"])
    assert payload.ghost is not None
    np.testing.assert_allclose(payload.ghost, ref, rtol=0, atol=0.02 * float(np.abs(ref).max()))
    assert "GHOST identity: w600k_r50 through crossface_ghost" in converter_engine.start_line()


def test_the_start_line_names_the_identity_path(engine: InswapperEngine) -> None:
    assert "GHOST identity: GHOST's own ArcFace (ghost_arcface" in engine.start_line()


def test_halving_is_torchs_bilinear_with_aligned_corners() -> None:
    """The engine's 224 -> 112 halving is F.interpolate's with align_corners=True (samples at i * 223 / 111),
    checked against the definition; the definition agrees with cv2 where cv2 samples the same positions."""
    x = np.random.default_rng(3).uniform(-1, 1, (1, 3, 224, 224)).astype(np.float32)
    ours = halve(x)
    np.testing.assert_allclose(ours, torch_bilinear(x, 112, 112, align_corners=True), rtol=0, atol=1e-6)
    assert np.isclose(interpolation_matrix(224, 112, True)[1, 3], 223 / 111 - 2)  # sample 1 sits at 2.009
    img = x[0].transpose(1, 2, 0)
    # Half-pixel centres: cv2.resize INTER_LINEAR (float input, exact weights).
    np.testing.assert_allclose(torch_bilinear(x, 112, 112, align_corners=False)[0].transpose(1, 2, 0),
                               cv2.resize(img, (112, 112), interpolation=cv2.INTER_LINEAR), rtol=0, atol=1e-5)
    # Aligned corners: output (i, j) reads input (i, j) * 223/111, a warp cv2 does in 1/32 px steps.
    k = 223 / 111
    warped = cv2.warpAffine(img, np.array([[k, 0, 0], [0, k, 0]]), (112, 112),
                            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
    assert float(np.abs(ours[0].transpose(1, 2, 0) - warped).max()) < 2 / 32 * 2
    # ... and the two conventions do differ: the reference's choice matters.
    assert float(np.abs(ours - halve_without_aligned_corners(x)).max()) > 0.1


def halve_without_aligned_corners(x: np.ndarray) -> np.ndarray:
    return cv2.resize(x[0].transpose(1, 2, 0), (112, 112), interpolation=cv2.INTER_LINEAR).transpose(2, 0, 1)[None]


def test_arcface_blob_is_rgb_in_minus_one_to_one() -> None:
    crop = np.zeros((224, 224, 3), np.uint8)
    crop[..., 2] = 255  # red in BGR
    blob = arcface_blob(crop)
    assert blob.shape == (1, 3, 112, 112)
    assert np.allclose(blob[0, 0], 1.0) and np.allclose(blob[0, 1:], -1.0)


def test_source_is_the_converted_raw_embedding(converter_engine: InswapperEngine, analyzer: FaceAnalyzer,
                                               media: Path) -> None:
    """The converter's input is w600k_r50's raw output, not the normalised one."""
    image = read(media, SOURCE)
    face = face_of(analyzer, image)
    payload = converter_engine.prepare_source(image, face)
    from vcamswap.engines.neural import arcface_crop

    crop = arcface_crop(image, face.kps, 112)
    blob = ((crop[:, :, ::-1].astype(np.float32) - 127.5) / 127.5).transpose(2, 0, 1)[None]
    raw = standins.arcface_reference(blob)
    assert payload.ghost is not None
    np.testing.assert_allclose(payload.ghost, standins_ghost.expected_source(raw), rtol=1e-4, atol=1e-4)
    assert abs(float(np.linalg.norm(raw)) - 1.0) > 0.1  # the raw embedding is not of unit length here


@pytest.mark.parametrize("blocks", [1, 2, 3])
def test_each_model_runs_its_own_generator(engine: InswapperEngine, blocks: int) -> None:
    crop = np.random.default_rng(blocks).integers(0, 256, (224, 224, 3), np.uint8)
    source = np.linspace(-2, 2, 512, dtype=np.float32).reshape(1, 512)
    payload = InswapperSource(np.ones(512, np.float32), np.zeros((1, 512), np.float32), source)
    face = face_of_template()
    out = engine.swap(crop, face, payload, ghost_preset(f"ghost_{blocks}_256"))
    from vcamswap.engines.ghost import from_pred, to_blob

    want = from_pred(standins_ghost.expected_ghost(to_blob(crop), source, blocks))
    assert int(np.abs(out.crop.astype(int) - want.astype(int)).max()) <= 1
    other = from_pred(standins_ghost.expected_ghost(to_blob(crop), source, blocks % 3 + 1))
    assert int(np.abs(out.crop.astype(int) - other.astype(int)).max()) > 5


def face_of_template() -> FaceGeometry:
    return FaceGeometry(np.array([40, 40, 184, 200], np.float32), ghost_template(), None, 1.0)


def test_mask_is_the_oval_over_ghosts_template(engine: InswapperEngine) -> None:
    payload = InswapperSource(np.ones(512, np.float32), np.zeros((1, 512), np.float32), np.ones((1, 512), np.float32))
    crop = np.random.default_rng(0).integers(0, 256, (224, 224, 3), np.uint8)
    out = engine.swap(crop, face_of_template(), payload, ghost_preset().with_knobs(mouth_mask=False))
    t = ghost_template()
    assert out.mask.shape == (224, 224)
    assert out.mask[round(float(t[2, 1])), round(float(t[2, 0]))] > 0.99  # the nose
    assert out.mask[3, 3] == 0 and out.mask[220, 220] == 0  # the corners


# ----------------------------------------------------------------------------------------------- availability


def test_ghost_runs_without_inswapper_installed(ghost_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    for f in ghost_dir.glob("*.onnx"):
        if f.name != "inswapper_128.onnx":
            (folder / f.name).symlink_to(f)
    engine = InswapperEngine(folder, provider="cpu", threads=1, model="ghost_2_256")
    assert not engine.has_inswapper and "ghost_2_256" in engine.placement()
    payload = InswapperSource(np.ones(512, np.float32), np.zeros((1, 512), np.float32), np.ones((1, 512), np.float32))
    crop = np.random.default_rng(1).integers(0, 256, (224, 224, 3), np.uint8)
    assert engine.swap(crop, face_of_template(), payload, ghost_preset("ghost_2_256")).crop.shape == (224, 224, 3)
    with pytest.raises(EngineError, match="vcamswap models download inswapper_128"):
        engine.swap(np.zeros((128, 128, 3), np.uint8), face_of_template(), payload, get_preset("balanced"))


def test_missing_ghost_files_say_what_to_download(ghost_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    for name in ("det_10g", "w600k_r50", "inswapper_128", "ghost_1_256"):
        (folder / f"{name}.onnx").symlink_to(ghost_dir / f"{name}.onnx")
    assert missing_for_model("ghost_1_256", folder) == ("ghost_arcface",)  # neither identity: the default named
    with pytest.raises(EngineUnavailable, match="ghost_arcface"):
        InswapperEngine(folder, provider="cpu", threads=1, model="ghost_1_256")
    engine = InswapperEngine(folder, provider="cpu", threads=1)  # inswapper_128 as before
    payload = InswapperSource(np.ones(512, np.float32), np.zeros((1, 512), np.float32))  # made without converter
    crop = np.full((224, 224, 3), 90, np.uint8)
    with pytest.raises(EngineError, match="vcamswap models download ghost_arcface"):
        engine.swap(crop, face_of_template(), payload, ghost_preset())
    payload = payload._replace(ghost=np.ones((1, 512), np.float32))
    with pytest.raises(EngineError, match="vcamswap models download ghost_3_256"):
        engine.swap(crop, face_of_template(), payload, ghost_preset("ghost_3_256"))


def test_a_file_that_is_not_a_ghost_generator_is_refused(ghost_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    for f in ghost_dir.glob("*.onnx"):
        (folder / f.name).symlink_to(f)
    (folder / "ghost_1_256.onnx").unlink()
    (folder / "ghost_1_256.onnx").write_bytes((ghost_dir / "inswapper_128.onnx").read_bytes())
    with pytest.raises(EngineUnavailable, match="ghost_1_256.onnx cannot be loaded .*not a GHOST 256 generator"):
        InswapperEngine(folder, provider="cpu", threads=1, model="ghost_1_256")


# ----------------------------------------------------------------------------------------------- end to end


def test_a_real_clip_is_swapped_with_ghost(engine: InswapperEngine, detector: BlazeFaceDetector, mesh: FaceMesh,
                                           media: Path, tmp_path: Path) -> None:
    """The webcam clip through the live pipeline with `model` ghost_1_256 in force: every frame after the face
    was found is swapped, and the face (the middle of its box) differs from the camera's."""
    driven = build(engine, detector, mesh, tmp_path / "faces", str(media / SOURCE),
                   adjust=lambda p: p.with_knobs(model="ghost_1_256"))
    changed = []
    for i, image in enumerate(read_frames(media / WEBCAM, 12)):
        result = driven.process(Frame(image, i, 0.0))
        if i < 4:
            continue
        assert result.swapped and result.face is not None
        x0, y0, x1, y1 = (int(v) for v in result.face.geometry.bbox)
        w, h = x1 - x0, y1 - y0
        box = (slice(y0 + h // 4, y1 - h // 4), slice(x0 + w // 4, x1 - w // 4))
        changed.append(float(np.abs(result.image[box].astype(int) - image[box].astype(int)).mean()))
    assert len(changed) == 8 and min(changed) > 3, changed


@pytest.mark.parametrize("identity", ["ghost_arcface", "crossface_ghost"])
def test_either_identity_model_makes_ghost_installed(ghost_dir: Path, tmp_path: Path, identity: str) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    for name in ("det_10g", "w600k_r50", "ghost_2_256"):
        (folder / f"{name}.onnx").symlink_to(ghost_dir / f"{name}.onnx")
    assert missing_for_model("ghost_2_256", folder) == ("ghost_arcface",)
    file = standins_ghost.ARCFACE_FILE if identity == "ghost_arcface" else "crossface_ghost.onnx"
    (folder / file).symlink_to(ghost_dir / file)
    assert missing_for_model("ghost_2_256", folder) == ()
    engine = InswapperEngine(folder, provider="cpu", threads=1, model="ghost_2_256")
    assert identity in engine.placement()
