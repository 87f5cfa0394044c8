"""The occluder model on onnxruntime: the stand-in (XSeg's exact interface) on real frames with a real object
pasted in front of the face, the mask's steadiness, the composite keeping the object, and make_occluder."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import onnxruntime as ort
import pytest
from helpers.frames import read_frames
from helpers.media import WEBCAM, media_path

from vcamswap.compose.align import align
from vcamswap.compose.blend import paste_back
from vcamswap.compose.occlusion import CameraSkin, ModelOccluder, Occluder, make_occluder
from vcamswap.engines.neural import SWAP_SIZE, swap_template
from vcamswap.faces.detector import BlazeFaceDetector
from vcamswap.faces.landmarker import FaceMesh
from vcamswap.modelstore.manifest import ModelError
from vcamswap.modelstore.standins import OCCLUDER_PATCH, expected_occluder, occluder_model, save
from vcamswap.types import SwapOutput

OBJECT = "faces/single/eileen_collins_astronaut.png"  # the helmet in her arm: a real object, not skin
HELMET = (slice(330, 512), slice(370, 512))  # rows, columns of the helmet in that photo
# Where the object goes in a 128 crop: over the subject's right cheek and jaw, clear of the central patch
# the stand-in takes the face's colour from (a real occluder model has no such blind spot).
COVER = (slice(60, 110), slice(8, 44))


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> ort.InferenceSession:
    path = save(occluder_model(), tmp_path_factory.mktemp("occ") / "xseg_3.onnx")
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


class Shot(NamedTuple):
    image: np.ndarray  # the camera frame
    crop: np.ndarray  # its 128 aligned crop, as the neural engine cuts it
    m: np.ndarray  # frame -> crop
    points: np.ndarray  # FaceMesh points in the crop


@pytest.fixture(scope="module")
def frames(detector: BlazeFaceDetector, mesh: FaceMesh) -> list[Shot]:
    out = []
    for image in read_frames(media_path(WEBCAM), 12):
        found = detector.detect(image)
        assert found, "no face in a frame of the webcam clip"
        crop, m = align(image, found[0].kps, swap_template(SWAP_SIZE), SWAP_SIZE)
        points = mesh.run(image, mesh.roi_from_detection(found[0])).points[:, :2]
        out.append(Shot(image, crop, m, points @ m[:, :2].T + m[:, 2]))
    return out


def with_object(crop: np.ndarray) -> np.ndarray:
    helmet = cv2.imread(str(media_path(OBJECT)))[HELMET]
    rows, cols = COVER
    covered = crop.copy()
    covered[rows, cols] = cv2.resize(helmet, (cols.stop - cols.start, rows.stop - rows.start),
                                     interpolation=cv2.INTER_AREA)
    return covered


def inner(region: tuple[slice, slice], by: int = 6) -> tuple[slice, slice]:
    return tuple(slice(s.start + by, s.stop - by) for s in region)  # type: ignore[return-value]


OTHER_CHEEK = (slice(62, 80), slice(78, 94))  # the subject's left cheek, never covered


def test_standin_has_the_xseg_interface(session: ort.InferenceSession, frames: list[Shot]) -> None:
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, inp.shape, inp.type) == ("input", ["batch", 256, 256, 3], "tensor(float)")
    assert (out.name, out.shape) == ("output", ["batch", 256, 256, 1])
    crops = [cv2.resize(f.crop, (256, 256), interpolation=cv2.INTER_AREA) for f in frames[:2]]
    blob = np.stack(crops).astype(np.float32) / 255.0  # NHWC, BGR, 0..1
    got = session.run(None, {"input": blob})[0]
    assert got.shape == (2, 256, 256, 1) and 0.0 <= got.min() and got.max() <= 1.0
    want = cv2.blur(expected_occluder(blob[0]), (5, 5))  # its 5x5 mean, away from the border
    np.testing.assert_allclose(got[0, 4:-4, 4:-4, 0], want[4:-4, 4:-4], atol=1e-4)


def test_an_object_in_front_of_the_face_stays_the_cameras(session: ort.InferenceSession, frames: list[Shot]) -> None:
    crop = frames[0].crop
    occ = ModelOccluder(session)
    clear = occ(crop)
    occ.reset()
    covered = occ(with_object(crop))
    assert clear.shape == covered.shape == (SWAP_SIZE, SWAP_SIZE) and clear.dtype == np.float32
    # Control: the same region is face while nothing is in front of it.
    assert clear[inner(COVER)].mean() > 0.6
    assert covered[inner(COVER)].max() < 0.05
    # The rest of the face stays face.
    assert covered[OTHER_CHEEK].mean() > 0.8 and abs(covered[OTHER_CHEEK].mean() - clear[OTHER_CHEEK].mean()) < 0.05
    lo, hi = (int(v * SWAP_SIZE / 256) for v in OCCLUDER_PATCH)
    assert covered[lo:hi, lo:hi].mean() > 0.8


def test_the_composite_shows_the_object_over_the_swap(session: ort.InferenceSession, frames: list[Shot]) -> None:
    """Pasted back into the real frame, the swap covers the face but not the object in front of it."""
    image, crop, m, _ = frames[0]
    covered_crop = with_object(crop)
    # The camera frame with the object really in it: warp the covered crop back over the face.
    camera = paste_back(image.copy(), SwapOutput(covered_crop, np.ones(crop.shape[:2], np.float32)), m)
    cam_crop = cv2.warpAffine(camera, m, (SWAP_SIZE, SWAP_SIZE), flags=cv2.INTER_LINEAR)
    swap = np.full_like(crop, (40, 200, 40))  # a swap that is easy to tell from both face and helmet
    face = np.zeros(crop.shape[:2], np.float32)
    cv2.ellipse(face, (64, 70), (44, 56), 0, 0, 360, 1.0, -1)
    keep = ModelOccluder(session)(cam_crop)
    out = paste_back(camera.copy(), SwapOutput(swap, face * keep), m)
    back = cv2.warpAffine(out, m, (SWAP_SIZE, SWAP_SIZE), flags=cv2.INTER_LINEAR).astype(np.int16)
    helmet_px = inner(COVER, 8)
    assert np.abs(back[helmet_px] - cam_crop[helmet_px].astype(np.int16)).mean() < 3  # the camera's object
    assert np.abs(back[OTHER_CHEEK] - np.int16(swap[0, 0])).mean() < 60  # the swap on the free cheek
    # Control: without the occluder the swap covers the object.
    plain = paste_back(camera.copy(), SwapOutput(swap, face), m)
    plain_back = cv2.warpAffine(plain, m, (SWAP_SIZE, SWAP_SIZE), flags=cv2.INTER_LINEAR).astype(np.int16)
    assert np.abs(plain_back[helmet_px] - cam_crop[helmet_px].astype(np.int16)).mean() > 40


def test_the_mask_is_steady_and_an_object_shows_at_once(session: ort.InferenceSession, frames: list[Shot]) -> None:
    occ = ModelOccluder(session)
    masks = [occ(f.crop) for f in frames[:8]]
    raw = [occ.predict(f.crop) for f in frames[:8]]  # control: the model's map as it comes

    def steps(seq: list[np.ndarray]) -> list[float]:
        return [float(np.abs(a - b).mean()) for a, b in zip(seq, seq[1:], strict=False)]

    # Frame to frame the mask barely moves (crop coordinates follow the head), less than the raw map does.
    assert max(steps(masks)) < 0.05, steps(masks)
    assert np.mean(steps(masks)) < np.mean(steps(raw)), (steps(masks), steps(raw))
    crop = frames[8].crop
    assert occ(with_object(crop))[inner(COVER)].max() < 0.05  # in front: shown the very frame it arrives
    back = [float(occ(frames[9 + i % 3].crop)[inner(COVER)].mean()) for i in range(6)]
    level = float(np.mean([ModelOccluder(session)(frames[9 + i].crop)[inner(COVER)].mean() for i in range(3)]))
    # The face comes back over a few frames, not at once, and all the way.
    assert back[0] < 0.6 * level and back[-1] > 0.9 * level and back[0] < back[1] < back[2], (back, level)


def test_both_occluders_follow_one_contract(session: ort.InferenceSession, frames: list[Shot]) -> None:
    for occ in (CameraSkin(), ModelOccluder(session)):
        assert isinstance(occ, Occluder) and occ.mask is None
        mask = occ(frames[0].crop, frames[0].points)
        assert occ.mask is mask and mask.shape == (SWAP_SIZE, SWAP_SIZE) and mask.dtype == np.float32
        occ.reset()
        assert occ.mask is None
    # Without the mesh's points the skin model has nothing to sample: it keeps the whole face.
    assert CameraSkin()(frames[0].crop, None).min() == 1.0


def test_make_occluder_rules(tmp_path: Path) -> None:
    assert make_occluder("off", tmp_path) is None
    assert isinstance(make_occluder("fast", tmp_path), CameraSkin)
    with pytest.raises(ModelError) as e:
        make_occluder("model", tmp_path)
    assert "\n" not in str(e.value) and "vcamswap models download occluder" in str(e.value)
    (tmp_path / "xseg_3.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot be loaded.*vcamswap models download occluder --force") as e:
        make_occluder("model", tmp_path)
    assert "\n" not in str(e.value)
    save(occluder_model(), tmp_path / "xseg_3.onnx")
    occ = make_occluder("model", tmp_path, provider="cpu")
    assert isinstance(occ, ModelOccluder) and occ.size == 256
    with pytest.raises(ValueError, match="unknown occlusion"):
        make_occluder("everything", tmp_path)  # type: ignore[arg-type]


def test_doctor_says_an_optional_model_is_missing_only_when_settings_ask_for_it(tmp_path: Path) -> None:
    from vcamswap.checks import Context
    from vcamswap.engines.checks import check_engines
    from vcamswap.settings import Settings

    def lines(settings: Settings) -> dict[str, tuple[bool, str, str | None]]:
        found = check_engines(Context(settings, tmp_path / "s.toml"))
        return {line.topic: (line.ok, line.text, line.fix) for line in found}

    plain = lines(Settings(engine="inswapper", models=str(tmp_path)))
    assert plain["model xseg_3"][:2] == (True, "not installed (optional occluder: 'vcamswap models download occluder')")
    assert plain["model gfpgan_1.4"][0] and "optional enhancer" in plain["model gfpgan_1.4"][1]
    asked = lines(Settings(engine="inswapper", models=str(tmp_path), occlusion="model", enhance=2))
    assert asked["model xseg_3"][0] is False and asked["model xseg_3"][2] == "vcamswap models download occluder"
    assert asked["model gfpgan_1.4"][0] is False and asked["model gfpgan_1.4"][2] == "vcamswap models download enhancer"
