"""The live path on the lite engine: real video, real models, real files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers.cli import run_cli
from helpers.frames import frames, read_frames
from helpers.lite import face_mask, morph_points
from helpers.media import SOURCE, WEBCAM
from helpers.pipeline import Driven, build, drive

from vcamswap.compose.align import align
from vcamswap.controls import Controls, ControlState
from vcamswap.engines.lite.engine import LiteEngine
from vcamswap.engines.lite.mesh import mesh_warp
from vcamswap.engines.lite.source import LiteSource, lite_template
from vcamswap.faces.analyzer import FaceAnalyzer
from vcamswap.faces.detector import BlazeFaceDetector
from vcamswap.faces.landmarker import FaceMesh, kps5_from_mesh
from vcamswap.faces.library import FaceLibrary
from vcamswap.faces.tracking import Tracker
from vcamswap.types import Frame, apply_affine


@pytest.fixture(scope="module")
def models(detector: BlazeFaceDetector, mesh: FaceMesh) -> tuple[BlazeFaceDetector, FaceMesh]:
    return detector, mesh


def make_pipeline(models: tuple[BlazeFaceDetector, FaceMesh], faces_dir: Path, face: str) -> Driven:
    detector, mesh = models
    return build(LiteEngine(), detector, mesh, faces_dir, face)


def canonical_view(image: np.ndarray, points: np.ndarray, src: LiteSource, size: int = 256) -> np.ndarray:
    """The face of `image` (given its mesh points) unwarped onto the source photo's mesh, grey and normalised."""
    crop, m = align(image, kps5_from_mesh(points), lite_template(size), size)
    # Where the engine put the source's texture: the tracked points reshaped toward the source's proportions.
    pts = morph_points(apply_affine(points[:, :2], m), src.points * size, src.blend)
    grey = cv2.cvtColor(mesh_warp(crop, pts, src.points * size, src.triangles), cv2.COLOR_BGR2GRAY)
    return grey.astype(np.float32)


def skin_mask(src: LiteSource, size: int = 256) -> np.ndarray:
    """Where the swap replaces the face: the oval minus eyes and mouth (kept from the camera), eroded."""
    skin = cv2.resize(src.skin, (size, size)) if src.skin is not None else 1.0
    return (face_mask(src.points * size, size, 0.08) * skin) > 0.9


def distance(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Normalised difference of the two faces' features: the lighting (low frequencies) is the camera's by
    design, so it is taken out of both before they are compared."""
    sigma = a.shape[0] / 16
    a = (a - cv2.GaussianBlur(a, (0, 0), sigma))[mask]
    b = (b - cv2.GaussianBlur(b, (0, 0), sigma))[mask]
    a = (a - a.mean()) / (a.std() + 1e-6)
    b = (b - b.mean()) / (b.std() + 1e-6)
    return float(np.sqrt(np.mean((a - b) ** 2)))


def test_face_in_real_video_is_swapped(media: Path, models: tuple[BlazeFaceDetector, FaceMesh], tmp_path: Path) -> None:
    pipe = make_pipeline(models, tmp_path, str(media / SOURCE))
    name = pipe.controls.snapshot().face
    assert name is not None
    source = pipe.source(name)
    assert source is not None
    src = source.payload
    assert isinstance(src, LiteSource)
    ref = cv2.cvtColor(src.texture_at(256)[..., :3], cv2.COLOR_BGR2GRAY).astype(np.float32)
    mask = skin_mask(src)
    frames = read_frames(media / WEBCAM, 12, step=20)
    for i, image in enumerate(frames):
        result = pipe.process(Frame(image, i, 0.0))
        assert result.swapped and result.face is not None, f"frame {i}: no swap"
        pts = result.face.geometry.points
        assert pts is not None
        before = distance(canonical_view(image, pts, src), ref, mask)
        after = distance(canonical_view(result.image, pts, src), ref, mask)
        # Unswapped, the camera's face and the source photo are unrelated (distance ~1.4 for normalised
        # pixels); swapped, the source's texture sits on the tracked face.
        assert after < 0.6 * before, f"frame {i}: distance to the source {after:.2f}, before the swap {before:.2f}"
        # Only the face's region changes: the frame's corners are the camera's pixels.
        x0, y0, x1, y1 = result.face.geometry.bbox.astype(int)
        outside = np.ones(image.shape[:2], bool)
        outside[max(0, y0 - 40) : y1 + 40, max(0, x0 - 40) : x1 + 40] = False
        assert np.array_equal(result.image[outside], image[outside])


def test_no_face_passes_through(models: tuple[BlazeFaceDetector, FaceMesh], media: Path, tmp_path: Path) -> None:
    pipe = make_pipeline(models, tmp_path, str(media / SOURCE))
    rng = np.random.default_rng(0)
    blank = np.full((480, 640, 3), 128, np.uint8)
    noise = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
    for i, image in enumerate([blank, noise]):
        result = pipe.process(Frame(image, i, 0.0))
        assert not result.swapped
        assert result.image is image or np.array_equal(result.image, image)


def test_swap_off_and_face_switch_apply_at_next_frame(
    models: tuple[BlazeFaceDetector, FaceMesh], media: Path, tmp_path: Path
) -> None:
    faces = tmp_path / "faces"
    faces.mkdir()
    for name in ("obama_official_portrait.jpg", "tom_cruise.jpg"):
        (faces / name).write_bytes((media / "faces/single" / name).read_bytes())
    pipe = make_pipeline(models, faces, "obama_official_portrait")
    image = read_frames(media / WEBCAM, 1)[0]
    first = pipe.process(Frame(image, 0, 0.0))
    assert first.swapped
    pipe.controls.toggle()
    off = pipe.process(Frame(image, 1, 0.0))
    assert not off.swapped and np.array_equal(off.image, image)
    pipe.controls.toggle()
    pipe.controls.next_face()
    assert pipe.controls.snapshot().face == "tom_cruise"
    other = pipe.process(Frame(image, 2, 0.0))
    assert other.swapped and not np.array_equal(other.image, first.image)


def test_unusable_faces_are_skipped_not_fatal(models: tuple[BlazeFaceDetector, FaceMesh], tmp_path: Path) -> None:
    faces = tmp_path / "faces"
    faces.mkdir()
    (faces / "broken.jpg").write_bytes(b"not a jpeg at all")
    cv2.imwrite(str(faces / "noface.png"), np.full((200, 200, 3), 90, np.uint8))
    library = FaceLibrary(faces, FaceAnalyzer(*models))
    assert library.get("broken") is None
    assert library.get("noface") is None
    assert library.check_all() == {"broken": "unreadable or no face found", "noface": "unreadable or no face found"}


def test_cli_swaps_a_real_video_into_a_file(media: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    proc = run_cli("run", "--input", str(media / WEBCAM), "--face", str(media / SOURCE),
                   "--output", str(out), "--max-frames", "30")
    assert proc.returncode == 0, proc.stderr
    assert "swapped=30" in proc.stdout
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 30
    assert (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (640, 480)


def test_cli_without_camera_plays_the_demo(tmp_path: Path) -> None:
    out = tmp_path / "demo.mp4"
    proc = run_cli("run", "--output", str(out), "--max-frames", "20")
    assert proc.returncode == 0, proc.stderr
    assert "no camera found" in proc.stderr and "demo" in proc.stderr
    assert "swapped=20" in proc.stdout
    assert out.stat().st_size > 10_000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--camera", "7"], "no camera found (camera 7)"),
        (["--camera", "/dev/video99"], "no camera at /dev/video99"),
        (["--input", "/nonexistent/clip.mp4"], "input not found: /nonexistent/clip.mp4"),
        (["--face", "nobody"], "no face named 'nobody'"),
        (["--output", "weird:thing"], "weird:thing"),
    ],
)
def test_bad_input_gives_one_line_error(args: list[str], message: str, tmp_path: Path) -> None:
    proc = run_cli("run", *args, "--max-frames", "1", "--output", str(tmp_path / "x.mp4"), timeout=60)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("vcamswap: error:"), proc.stderr
    assert message in lines[-1]
    assert "Traceback" not in proc.stderr


def test_face_without_a_face_keeps_running(media: Path, tmp_path: Path) -> None:
    noface = tmp_path / "wall.png"
    cv2.imwrite(str(noface), np.full((300, 300, 3), 200, np.uint8))
    out = tmp_path / "out.mp4"
    proc = run_cli("run", "--input", str(media / WEBCAM), "--face", str(noface), "--output", str(out),
                   "--max-frames", "10")
    assert proc.returncode == 0, proc.stderr
    assert "no face found in" in proc.stderr
    assert "frames=10 swapped=0" in proc.stdout


def test_a_changed_face_photo_is_analysed_again(
    models: tuple[BlazeFaceDetector, FaceMesh], media: Path, tmp_path: Path
) -> None:
    faces = tmp_path / "faces"
    faces.mkdir()
    photo = faces / "me.jpg"
    photo.write_bytes((media / SOURCE).read_bytes())
    library = FaceLibrary(faces, FaceAnalyzer(*models))
    first = library.get("me")
    assert first is not None and library.get("me") is first  # unchanged file: the cached analysis
    photo.write_bytes((media / "faces/single/tom_cruise.jpg").read_bytes())
    second = library.get("me")
    assert second is not None and second.digest != first.digest
    assert not np.array_equal(second.geometry.points, first.geometry.points)


# ------------------------------------------------------------------------------------ frame skipping


def moving(img: np.ndarray, k: int) -> np.ndarray:
    """The frame as if the head moved: 14 px right, 6 px down and 2 degrees per step about the face."""
    m = cv2.getRotationMatrix2D((323.0, 180.0), 2.0 * k, 1.0)
    m[:, 2] += (14.0 * k, 6.0 * k)
    return cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), borderMode=cv2.BORDER_REFLECT)


def skipping_pipeline(detector, mesh, swap_interval: int) -> Driven:
    from vcamswap.capture.demo import demo_face
    from vcamswap.faces.analyzer import FaceAnalyzer
    from vcamswap.faces.library import FaceLibrary

    library = FaceLibrary(Path("/nonexistent-faces"), FaceAnalyzer(detector, mesh))
    name = library.resolve(str(demo_face()))
    controls = Controls(ControlState(face=name, preset="balanced"))
    return drive(LiteEngine(), Tracker(detector, mesh, 4, 0.0), library, controls,
                 lambda p: p.with_knobs(swap_interval=swap_interval, smoothing=0.0))


def test_skipped_frames_repaste_at_the_current_pose(media: Path, detector, mesh) -> None:
    base = next(frames(media / WEBCAM, 1))
    seq = [moving(base, k) for k in range(3)]
    skipping = skipping_pipeline(detector, mesh, swap_interval=3)
    every = skipping_pipeline(detector, mesh, swap_interval=1)
    out_skip = [skipping.process(Frame(img, i, 0.0)) for i, img in enumerate(seq)]
    out_all = [every.process(Frame(img, i, 0.0)) for i, img in enumerate(seq)]
    assert [r.engine_ran for r in out_skip] == [True, False, False]
    assert all(r.swapped for r in out_skip)
    last = 2
    fresh = out_all[last].image.astype(np.float32)
    repasted = out_skip[last].image.astype(np.float32)
    # What a naive skip shows: the previous output's face pixels where the head was two frames ago.
    changed0 = np.abs(out_skip[0].image.astype(np.int16) - seq[0].astype(np.int16)).max(-1) > 0
    ghost = np.where(changed0[..., None], out_skip[0].image, seq[last]).astype(np.float32)
    face = out_all[last].face
    assert face is not None
    x0, y0, x1, y1 = (int(v) for v in face.geometry.bbox)
    region = (slice(max(y0, 0), y1), slice(max(x0, 0), x1))
    err_repaste = float(np.abs(repasted[region] - fresh[region]).mean())
    err_ghost = float(np.abs(ghost[region] - fresh[region]).mean())
    assert err_repaste < 0.4 * err_ghost
    # The pasted face sits where the fresh swap of this frame puts it, not where the head was.
    def changed_centre(out: np.ndarray, src: np.ndarray) -> np.ndarray:
        ys, xs = np.nonzero(np.abs(out.astype(np.int16) - src.astype(np.int16)).max(-1) > 8)
        return np.array([xs.mean(), ys.mean()])

    c_fresh = changed_centre(out_all[last].image, seq[last])
    c_skip = changed_centre(out_skip[last].image, seq[last])
    c_then = changed_centre(out_skip[0].image, seq[0])
    assert np.linalg.norm(c_skip - c_fresh) < 3.0
    assert np.linalg.norm(c_then - c_fresh) > 20.0  # the head really moved between the two
