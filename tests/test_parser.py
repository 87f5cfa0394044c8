"""The optional face parser: the stand-in (BiSeNet's exact interface) on real images, `--occlusion parser`
keeping a real object and real glasses frames in front of the swap, make_occluder's rules, and the lite
engine parsing each source photo once (never a frame) when the parser is installed."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from helpers.frames import read_frames
from helpers.media import SOURCE, WEBCAM, media_path
from onnx import TensorProto, helper, numpy_helper
from test_occluder import COVER, OTHER_CHEEK, inner, with_object

from vcamswap.compose.align import align
from vcamswap.compose.blend import paste_back
from vcamswap.compose.occlusion import CameraSkin, Occluder, ParserOccluder, make_occluder
from vcamswap.compose.parsing import CLASSES, FACE_CLASSES, FaceParser, face_of, open_parser
from vcamswap.engines.lite.engine import LiteEngine
from vcamswap.engines.lite.quality import covered_share
from vcamswap.engines.lite.source import aligned_source
from vcamswap.engines.neural import SWAP_SIZE, swap_template
from vcamswap.faces.analyzer import FaceAnalyzer
from vcamswap.faces.detector import BlazeFaceDetector
from vcamswap.faces.landmarker import FaceMesh
from vcamswap.modelstore.manifest import ModelError
from vcamswap.modelstore.onnxgraph import build_model
from vcamswap.modelstore.standin_parser import IMAGENET_MEAN, IMAGENET_STD, expected_labels, parser_model
from vcamswap.modelstore.standins import occluder_model, save
from vcamswap.types import FaceGeometry, Frame, SwapOutput

GLASSES = "faces/hard/glasses_beard_brown_skin_man_sundar_pichai.jpg"
# Pieces of that photo's dark glasses frame, marked by hand (x0, y0, x1, y1 in the photo's pixels): the left
# and right rims' top bars and the bridge over the nose.
FRAME_PIECES = ((470, 448, 510, 452), (725, 435, 765, 439), (595, 461, 625, 472))
GREEN = (40, 200, 40)  # a swap easy to tell from face, frame and object


@pytest.fixture(scope="module")
def parser_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("parser")
    save(parser_model(), folder / "bisenet_resnet_34.onnx")
    return folder


@pytest.fixture(scope="module")
def parser(parser_dir: Path) -> FaceParser:
    return open_parser(parser_dir, "cpu", 1)


@pytest.fixture(scope="module")
def webcam_crops(detector: BlazeFaceDetector) -> list[np.ndarray]:
    out = []
    for image in read_frames(media_path(WEBCAM), 4):
        found = detector.detect(image)
        assert found, "no face in a frame of the webcam clip"
        out.append(align(image, found[0].kps, swap_template(SWAP_SIZE), SWAP_SIZE)[0])
    return out


def test_the_classes_are_celebamask_hqs_and_the_face_is_skin_brows_eyes_nose_mouth_lips() -> None:
    assert len(CLASSES) == 19 and CLASSES[0] == "background" and CLASSES[6] == "eye_g" and CLASSES[17] == "hair"
    assert [CLASSES[i] for i in FACE_CLASSES] == [
        "skin", "l_brow", "r_brow", "l_eye", "r_eye", "nose", "mouth", "u_lip", "l_lip"]
    face = face_of(np.arange(19, dtype=np.uint8)[None])[0]
    assert [CLASSES[i] for i in np.flatnonzero(face == 0)] == [
        "background", "eye_g", "l_ear", "r_ear", "ear_r", "neck", "neck_l", "cloth", "hair", "hat"]


def test_standin_has_the_bisenet_interface(parser: FaceParser, webcam_crops: list[np.ndarray]) -> None:
    session = parser.session
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, inp.shape, inp.type) == ("input", ["batch_size", 3, 512, 512], "tensor(float)")
    assert (out.name, out.shape, out.type) == ("output", ["batch_size", 19, 512, 512], "tensor(float)")
    rgb = cv2.cvtColor(cv2.resize(webcam_crops[0], (512, 512)), cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
    blob = ((rgb - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)[None]
    logits = session.run(None, {"input": np.ascontiguousarray(blob)})[0]
    assert logits.shape == (1, 19, 512, 512) and logits.dtype == np.float32
    got, want = logits[0].argmax(0), expected_labels(rgb)
    assert (got == want).mean() > 0.999  # float rounding may flip a pixel on a tie
    # On a real face crop it finds skin around the centre and something else at the corners.
    assert (got[192:320, 192:320] == 1).mean() > 0.8 and (got == 1).mean() < 0.9


def test_an_object_in_front_of_the_face_stays_the_cameras(parser: FaceParser, webcam_crops: list[np.ndarray]) -> None:
    crop = webcam_crops[0]
    occ = ParserOccluder(parser)
    clear = occ(crop)
    occ.reset()
    covered = occ(with_object(crop))
    assert clear.shape == covered.shape == (SWAP_SIZE, SWAP_SIZE) and clear.dtype == np.float32
    assert clear[inner(COVER)].mean() > 0.6  # control: the same region is face with nothing in front of it
    assert covered[inner(COVER)].max() < 0.05
    assert covered[OTHER_CHEEK].mean() > 0.8 and abs(covered[OTHER_CHEEK].mean() - clear[OTHER_CHEEK].mean()) < 0.05


def hand_occluder(where: tuple[slice, slice], crop: int = SWAP_SIZE) -> onnx.ModelProto:
    """An occluder of XSeg's exact interface (NHWC BGR 0..1 in, N x 256x256x1 face map out) that sees a hand
    at `where` (rows, columns of a `crop` px aligned crop) and face everywhere else: what the real XSeg says of
    a skin-coloured hand, which the parser may call skin."""
    side, k = 256, 256 / crop
    face = np.ones((1, side, side, 1), np.float32)
    face[0, round(where[0].start * k):round(where[0].stop * k), round(where[1].start * k):round(where[1].stop * k)] = 0
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", side, side, 3])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", side, side, 1])
    consts = {"hand_map": face, "zero": np.zeros((), np.float32), "first": np.array([0], np.int64),
              "second": np.array([1], np.int64), "channels": np.array([3], np.int64)}
    inits = [numpy_helper.from_array(v, k) for k, v in consts.items()]
    nodes = [helper.make_node("Slice", ["input", "first", "second", "channels"], ["blue"]),
             helper.make_node("Mul", ["blue", "zero"], ["nothing"]),  # the output's batch follows the input's
             helper.make_node("Add", ["nothing", "hand_map"], ["output"])]
    return build_model(nodes, [x], [y], inits, "hand_standin", "vcamswap-test")


def with_skin_object(crop: np.ndarray) -> np.ndarray:
    """The crop with the person's own cheek stretched over COVER: a skin-coloured thing in front of the face."""
    rows, cols = COVER
    cheek = crop[OTHER_CHEEK]
    out = crop.copy()
    out[rows, cols] = cv2.resize(cheek, (cols.stop - cols.start, rows.stop - rows.start))
    return out


def test_with_the_occluder_model_installed_a_skin_coloured_hand_stays_the_cameras(
        parser_dir: Path, webcam_crops: list[np.ndarray], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "bisenet_resnet_34.onnx").write_bytes((parser_dir / "bisenet_resnet_34.onnx").read_bytes())
    crop = with_skin_object(webcam_crops[0])
    alone = make_occluder("parser", folder, provider="cpu")
    assert isinstance(alone, ParserOccluder) and alone.occluder is None  # no occluder model installed
    # Control: the parser calls the skin-coloured thing face, so alone it would swap over it.
    assert alone(crop)[inner(COVER)].mean() > 0.6
    save(hand_occluder(COVER), folder / "xseg_3.onnx")
    paired = make_occluder("parser", folder, provider="cpu")
    assert isinstance(paired, ParserOccluder) and paired.occluder is not None
    mask = paired(crop)
    assert mask[inner(COVER)].max() < 0.05 and mask[OTHER_CHEEK].mean() > 0.8
    # A broken occluder file leaves the parser alone, said once in one line; the parser still runs.
    (folder / "xseg_3.onnx").write_bytes(b"not a model")
    caplog.set_level(logging.WARNING, "vcamswap.occlusion")
    broken = make_occluder("parser", folder, provider="cpu")
    assert isinstance(broken, ParserOccluder) and broken.occluder is None
    said = [r.getMessage() for r in caplog.records if r.name == "vcamswap.occlusion"]
    assert len(said) == 1 and "\n" not in said[0] and "parser decides alone" in said[0], said


def frame_share(image: np.ndarray, out: np.ndarray) -> float:
    """Share of the hand-marked glasses frame that `out` swapped over (0: the camera's frame, 1: the swap)."""
    cam = image.astype(np.float32)
    moved = np.abs(out.astype(np.float32) - cam).sum(-1)
    full = np.abs(np.float32(GREEN) - cam).sum(-1)
    pieces = [(moved[y0:y1, x0:x1].sum(), full[y0:y1, x0:x1].sum()) for x0, y0, x1, y1 in FRAME_PIECES]
    return float(sum(m for m, _ in pieces) / sum(f for _, f in pieces))


def composite(image: np.ndarray, face: FaceGeometry, size: int, occluder: Occluder | None) -> np.ndarray:
    """A flat green swap over the face ellipse of a `size` crop, pasted back with the occluder's mask."""
    crop, m = align(image, face.kps, swap_template(size), size)
    assert face.points is not None
    points = face.points[:, :2] @ m[:, :2].T + m[:, 2]
    ellipse = np.zeros((size, size), np.float32)
    k = size / SWAP_SIZE
    cv2.ellipse(ellipse, (int(64 * k), int(70 * k)), (int(44 * k), int(56 * k)), 0, 0, 360, 1.0, -1)
    keep = occluder(crop, points) if occluder is not None else 1.0
    swap = np.full_like(crop, GREEN)
    return paste_back(image.copy(), SwapOutput(swap, (ellipse * keep).astype(np.float32)), m)


@pytest.mark.parametrize("size", [SWAP_SIZE, 256])
def test_real_glasses_frames_stay_the_cameras(parser: FaceParser, analyzer: FaceAnalyzer, size: int) -> None:
    """A real photo with dark-rimmed glasses as the camera frame: with the parser the frame stays the camera's,
    at the neural engine's crop and with pixel boost."""
    image = cv2.imread(str(media_path(GLASSES)))
    face = analyzer(image)
    assert face is not None
    plain = frame_share(image, composite(image, face, size, None))
    assert plain > 0.9, f"control: without an occluder the swap covers {plain:.0%} of the frame"
    kept = frame_share(image, composite(image, face, size, ParserOccluder(parser)))
    assert kept < 0.1, f"the parser let the swap cover {kept:.0%} of the glasses frame"
    # The swap still covers the face below the glasses (the cheek under the left eye, in the photo).
    out = composite(image, face, size, ParserOccluder(parser))
    cheek = np.abs(out[600:640, 420:460].astype(np.float32) - np.float32(GREEN)).mean()
    assert cheek < 40, cheek


def test_make_occluder_parser_rules(tmp_path: Path, parser_dir: Path) -> None:
    with pytest.raises(ModelError) as e:
        make_occluder("parser", tmp_path)
    assert "\n" not in str(e.value) and "vcamswap models download parser" in str(e.value)
    (tmp_path / "bisenet_resnet_34.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot be loaded.*vcamswap models download parser --force") as e:
        make_occluder("parser", tmp_path)
    assert "\n" not in str(e.value)
    save(occluder_model(), tmp_path / "bisenet_resnet_34.onnx")  # a model, but not a parser
    with pytest.raises(ModelError, match="parser model input.*vcamswap models download parser --force") as e:
        make_occluder("parser", tmp_path, provider="cpu")
    assert "\n" not in str(e.value)
    occ = make_occluder("parser", parser_dir, provider="cpu")
    assert isinstance(occ, ParserOccluder) and isinstance(occ, Occluder) and occ.parser.size == 512


def test_the_lite_engine_parses_each_source_once_not_each_frame(
    parser_dir: Path, detector: BlazeFaceDetector, mesh: FaceMesh, tmp_path: Path
) -> None:
    from helpers.pipeline import build

    engine = LiteEngine(parser_dir)
    driven = build(engine, detector, mesh, tmp_path / "faces", str(media_path(SOURCE)))
    frames = read_frames(media_path(WEBCAM), 8)
    results = [driven.process(Frame(image, i, 0.0)) for i, image in enumerate(frames)]
    assert all(r.swapped for r in results)
    assert engine.parser is not None and engine.parser.calls == 1  # 8 frames, one source: parsed once
    image = cv2.imread(str(media_path(GLASSES)))
    face = FaceAnalyzer(detector, mesh)(image)
    assert face is not None
    engine.prepare_source(image, face)
    assert engine.parser.calls == 2  # a second source: parsed once more


def test_the_lite_source_takes_the_parsers_word_and_is_unchanged_without_it(
    parser_dir: Path, analyzer: FaceAnalyzer, tmp_path: Path
) -> None:
    image = cv2.imread(str(media_path(GLASSES)))
    face = analyzer(image)
    assert face is not None
    plain = LiteEngine().prepare_source(image, face)
    absent = LiteEngine(tmp_path).prepare_source(image, face)  # a models folder without the parser
    assert plain.skin is not None and absent.skin is not None
    assert np.array_equal(plain.skin, absent.skin) and np.array_equal(plain.texture, absent.texture)
    parsed = LiteEngine(parser_dir).prepare_source(image, face)
    assert parsed.skin is not None
    # The parser only ever takes skin away from the colour model's (hair, glasses, whatever is not face) ...
    assert (parsed.skin <= plain.skin + 1e-6).all()
    # ... and here it does: the stand-in hands dark pixels (the frames, the brows' edges, the hair) to the camera.
    assert float((plain.skin - parsed.skin).mean()) > 0.005
    # The photo's report reads the same decision: more of this face is not taken from it.
    texture, points = aligned_source(image, face)
    by_colour = covered_share(texture, points)
    with_parser = covered_share(texture, points, open_parser(parser_dir, "cpu", 1).face(texture))
    assert with_parser > by_colour + 0.01, (by_colour, with_parser)


def test_a_parser_that_will_not_load_leaves_the_lite_engine_on_colour(
    tmp_path: Path, analyzer: FaceAnalyzer, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "bisenet_resnet_34.onnx").write_bytes(b"not a model")
    image = cv2.imread(str(media_path(SOURCE)))
    face = analyzer(image)
    assert face is not None
    engine = LiteEngine(tmp_path)
    with caplog.at_level("WARNING"):
        broken = engine.prepare_source(image, face)
        engine.prepare_source(image, face)
    plain = LiteEngine().prepare_source(image, face)
    assert broken.skin is not None and plain.skin is not None and np.array_equal(broken.skin, plain.skin)
    said = [r.getMessage() for r in caplog.records if "bisenet_resnet_34" in r.getMessage()]
    assert len(said) == 1 and "\n" not in said[0] and "download parser --force" in said[0]


def test_camera_skin_and_parser_share_the_occluder_contract(parser: FaceParser, webcam_crops: list[np.ndarray]) -> None:
    for occ in (CameraSkin(), ParserOccluder(parser)):
        mask = occ(webcam_crops[0], None)
        assert occ.mask is mask and mask.shape == (SWAP_SIZE, SWAP_SIZE) and mask.dtype == np.float32
        occ.reset()
        assert occ.mask is None


def test_parser_is_an_occlusion_kind_everywhere_the_kinds_are_offered(tmp_path: Path) -> None:
    """Settings, the command line, presets, the controls (daemon, tray, panel intents), `vcamswap occlusion` and
    the panel's buttons all take "parser"; the doctor names the command that installs it when asked for."""
    from vcamswap.checks import Context
    from vcamswap.choices import OCCLUSION_KINDS
    from vcamswap.cli import build_parser
    from vcamswap.controls import Controls, ControlState
    from vcamswap.engines.checks import check_engines
    from vcamswap.presets import get_preset, with_overrides
    from vcamswap.settings import Settings, parse_settings

    assert "parser" in OCCLUSION_KINDS
    assert parse_settings('occlusion = "parser"\n').occlusion == "parser"
    assert build_parser().parse_args(["run", "--occlusion", "parser"]).occlusion == "parser"
    assert build_parser().parse_args(["occlusion", "parser"]).kind == "parser"
    assert with_overrides(get_preset("balanced"), occlusion="parser").occlusion == "parser"
    assert Controls(ControlState()).set_occlusion("parser").occlusion == "parser"
    panel = (Path(__file__).resolve().parents[1] / "vcamswap/panel/static/index.html").read_text(encoding="utf-8")
    seg = panel.split('id="occlusion"', 1)[1].split("</div>", 1)[0]
    assert all(f'data-value="{kind}"' in seg for kind in OCCLUSION_KINDS)
    found = check_engines(Context(Settings(models=str(tmp_path), occlusion="parser"), tmp_path / "s.toml"))
    line = next(x for x in found if x.topic == "model bisenet_resnet_34")
    assert line.ok is False and line.fix == "vcamswap models download parser"
    found = check_engines(Context(Settings(models=str(tmp_path)), tmp_path / "s.toml"))
    line = next(x for x in found if x.topic == "model bisenet_resnet_34")
    assert line.ok and "optional parser" in line.text


def test_the_live_pipeline_runs_the_parser_occluder_on_every_swap(
    parser_dir: Path, detector: BlazeFaceDetector, mesh: FaceMesh, tmp_path: Path
) -> None:
    """`occlusion = "parser"` in the preset: the pipeline makes one parser occluder for the face and runs it on
    each composed frame; the lite engine (no parser in its folder) parses nothing itself."""
    from helpers.pipeline import build

    from vcamswap.choices import OcclusionKind
    from vcamswap.live.pipeline import Pipeline

    made: list[Occluder | None] = []

    def occluders(kind: OcclusionKind) -> Occluder | None:
        made.append(make_occluder(kind, parser_dir, "cpu", 1))
        return made[-1]

    engine = LiteEngine()
    driven = build(engine, detector, mesh, tmp_path / "faces", str(media_path(SOURCE)),
                   adjust=lambda p: p.with_knobs(occlusion="parser"))
    driven.pipeline = Pipeline(engine, driven.pipeline.tracker, occluders, realtime=False)
    results = [driven.process(Frame(image, i, 0.0)) for i, image in enumerate(read_frames(media_path(WEBCAM), 6))]
    swapped = sum(r.swapped for r in results)
    assert engine.parser is None and swapped >= 4 and len(made) == 1 and isinstance(made[0], ParserOccluder)
    assert made[0].parser.calls == swapped


def test_faces_list_judges_a_photo_with_the_parser_when_it_is_installed(
    parser_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`vcamswap faces list` says how much of a photo's face stays the camera's as the lite engine will decide
    it: by colour alone without the parser, with the parser (here the stand-in) when the settings' models
    folder holds it."""
    import shutil

    from vcamswap.cli import main

    faces = tmp_path / "faces"
    faces.mkdir()
    shutil.copy(media_path(GLASSES), faces / "glasses.jpg")

    def covered(models: Path) -> int:
        settings = tmp_path / f"{models.name}.toml"
        settings.write_text(f'models = "{models}"\n', encoding="utf-8")
        assert main(["faces", "list", "--faces", str(faces), "--settings", str(settings)]) == 0
        line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("glasses\t"))
        return int(line.split("cover ")[1].split("%")[0])

    by_colour, with_parser = covered(tmp_path / "none"), covered(parser_dir)
    assert with_parser > by_colour, (by_colour, with_parser)
