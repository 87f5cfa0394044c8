"""Every face in view: the tracker's `all` path on a real two-person photo, one track per face with sticky ids,
its own smoothing and the preset's detection cadence; `one` stays the single sticky face."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from vcamswap.faces.multitrack import MAX_FACES
from vcamswap.faces.tracking import Tracker
from vcamswap.types import TrackedFace

TWO = "faces/multi/obama_biden_two_people.jpg"
OBAMA_X, BIDEN_X = 308.0, 861.0  # box centres (x) in the photo: Obama left, Biden right


def two_people(media: Path) -> np.ndarray:
    img = cv2.imread(str(media / TWO))
    assert img is not None
    return img


def moved(img: np.ndarray, k: int) -> np.ndarray:
    """Frame k of a small camera move made from the photo: 4 px left and 1 % larger per frame."""
    h, w = img.shape[:2]
    s = 1.0 + 0.01 * k
    m = np.float32([[s, 0, -4.0 * k + (1 - s) * w / 2], [0, s, (1 - s) * h / 2]])
    return cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REPLICATE)


def centre_x(face: TrackedFace) -> float:
    return float(face.geometry.bbox[0] + face.geometry.bbox[2]) / 2


@pytest.mark.parametrize("tracking", [True, False], ids=["tracked", "detect-every-frame"])
def test_all_finds_both_people_with_ids_that_stay(media: Path, detector, mesh, tracking: bool) -> None:
    img = two_people(media)
    tracker = Tracker(detector, mesh, detect_interval=3, tracking=tracking)
    stages: list[str] = []
    tracker.on_time = lambda stage, s: stages.append(stage)
    seen: list[list[TrackedFace]] = []
    for _ in range(4):  # the same frame again and again: nothing may change
        seen.append(tracker.track(img, "all"))
    for k in range(1, 16):
        seen.append(tracker.track(moved(img, k), "all"))
    assert all(len(faces) == 2 for faces in seen)
    ids = [tuple(f.track_id for f in faces) for faces in seen]
    assert len(set(ids)) == 1 and len(set(ids[0])) == 2  # two ids, the same on every frame
    left = [min(faces, key=centre_x) for faces in seen]
    assert len({f.track_id for f in left}) == 1  # the left id stays on the left person
    assert abs(centre_x(left[0]) - OBAMA_X) < 30 and abs(centre_x(max(seen[0], key=centre_x)) - BIDEN_X) < 30
    assert tracker.losses == 0
    # The preset's cadence: one detection per `detect_interval` frames for both faces together.
    assert tracker.detector_calls == (7 if tracking else 19)
    assert [f.detected for f in seen[1]] == [not tracking] * 2
    assert stages.count("detect") == tracker.detector_calls
    assert stages.count("landmarks") >= 2 * 19  # each face's mesh, every frame


def test_each_face_has_its_own_smoothing(media: Path, detector, mesh) -> None:
    """Smoothed points of each face stay on that face: a shared filter would drag one towards the other."""
    img = two_people(media)
    tracker = Tracker(detector, mesh, detect_interval=4, smoothing=0.8)
    fresh = Tracker(detector, mesh, tracking=False)
    for k in range(12):
        frame = moved(img, k)
        faces = tracker.track(frame, "all")
        ref = fresh.track(frame, "all")
        assert len(faces) == len(ref) == 2
        for f, r in zip(faces, ref, strict=True):
            eyes = float(np.linalg.norm(r.geometry.kps[0] - r.geometry.kps[1]))
            assert float(np.abs(f.geometry.kps - r.geometry.kps).max()) < 0.25 * eyes
    multi = tracker._multi
    assert multi is not None and len({id(t.smoother) for t in multi.tracks}) == 2


def test_a_face_that_leaves_ends_its_track_and_a_new_one_gets_a_new_id(media: Path, detector, mesh) -> None:
    img = two_people(media)
    covered = img.copy()
    covered[:, 560:] = cv2.blur(covered[:, 560:], (61, 61))  # the right person walks out of view
    tracker = Tracker(detector, mesh, detect_interval=2)
    first = tracker.track(img, "all")
    left_id = min(first, key=centre_x).track_id
    right_id = max(first, key=centre_x).track_id
    for _ in range(8):
        faces = tracker.track(covered, "all")
    assert [f.track_id for f in faces] == [left_id]
    assert tracker.losses == 1
    back = tracker.track(img, "all")
    assert len(back) == 2 and min(back, key=centre_x).track_id == left_id
    assert max(back, key=centre_x).track_id not in (left_id, right_id)


def test_one_finds_one_face_and_is_update(media: Path, detector, mesh) -> None:
    img = two_people(media)
    tracker = Tracker(detector, mesh, detect_interval=2)
    reference = Tracker(detector, mesh, detect_interval=2)
    for k in range(6):
        frame = moved(img, k)
        faces = tracker.track(frame, "one")
        face = reference.update(frame)
        assert face is not None and len(faces) == 1
        assert faces[0].track_id == face.track_id
        np.testing.assert_array_equal(faces[0].geometry.kps, face.geometry.kps)
    assert tracker.detector_calls == reference.detector_calls
    # Switching modes forgets the other mode's faces without counting a loss.
    assert len(tracker.track(img, "all")) == 2 and len(tracker.track(img, "one")) == 1
    assert tracker.losses == 0
    with pytest.raises(ValueError, match="targets"):
        tracker.track(img, "some")  # type: ignore[arg-type]


def test_at_most_max_faces_are_tracked_largest_first(media: Path, detector, mesh) -> None:
    """Six faces in view (crops of the photo tiled 3 x 2, the bottom row smaller): the four largest are tracked."""
    img = two_people(media)
    side = 260
    obama, biden = img[0:330, 140:470], img[20:350, 700:1030]

    def shrunk(face: np.ndarray) -> np.ndarray:
        s = int(side * 0.8)
        o = (side - s) // 2
        return cv2.copyMakeBorder(cv2.resize(face, (s, s)), o, side - s - o, o, side - s - o, cv2.BORDER_REPLICATE)

    top = np.hstack([cv2.resize(f, (side, side)) for f in (obama, biden, obama)])
    canvas = np.vstack([top, np.hstack([shrunk(f) for f in (biden, obama, biden)])])
    assert len(detector.detect(canvas)) == 6
    tracker = Tracker(detector, mesh, detect_interval=2)
    for _ in range(3):
        faces = tracker.track(canvas, "all")
    assert len(faces) == MAX_FACES == 4
    assert sum(centre_y(f) < side for f in faces) == 3  # the three large faces are among them


def centre_y(face: TrackedFace) -> float:
    return float(face.geometry.bbox[1] + face.geometry.bbox[3]) / 2
