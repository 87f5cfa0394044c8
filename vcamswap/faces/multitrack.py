"""Every face in view: one track per face, each with its own id, smoothing and FaceMesh points.

The same cadence as the one-face path: the detector runs every `detect_interval` frames (or at once when a
track was lost, a check missed, or no face is tracked); in between each face is followed by FaceMesh from its
own previous points and must pass the same plausibility checks. A scheduled detection matches detections to
tracks by box overlap (greedy, best overlap first): a matched track keeps its id and its followed points (no
jump), a track the detector misses MAX_MISSES checks in a row ends, and a detection no track covers starts a
new track with a new id. Ids are never reused, so a face that leaves and comes back is a new track.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from vcamswap.faces.follow import MATCH_IOU, MAX_MISSES, box_of, implausible, iou
from vcamswap.faces.landmarker import FaceMesh, MeshResult, Roi, geometry_from_mesh
from vcamswap.faces.smoothing import LandmarkSmoother
from vcamswap.types import Detection, TrackedFace

# Each face costs one FaceMesh run per frame (3-5 ms on a laptop core) plus its swap and paste-back: past four
# faces a CPU frame at 30 fps is spent on landmarks alone, and the batched swap is checked up to four.
MAX_FACES = 4
DUPLICATE_IOU = 0.5  # two tracks this much on top of each other follow one face: the younger one ends


class TrackHost(Protocol):
    """What the every-face path uses of the tracker that owns it (faces.tracking.Tracker): its models and
    their timings, the detection cadence, the track ids and the loss counter, shared with the one-face path."""

    mesh: FaceMesh
    tracking: bool  # False: the reference mode, detector and mesh on every frame, unsmoothed
    losses: int

    @property
    def smoothing(self) -> float: ...

    def run_detector(self, image: np.ndarray) -> list[Detection]: ...

    def run_mesh(self, image: np.ndarray, roi: Roi) -> MeshResult: ...

    def detection_due(self) -> bool: ...

    def skip_detection(self) -> None: ...

    def new_track_id(self) -> int: ...


@dataclass
class FaceTrack:
    """One followed face: its id, its last unsmoothed mesh and its own smoother."""

    track_id: int
    raw: np.ndarray  # (468, 3) the last unsmoothed mesh
    smoother: LandmarkSmoother
    misses: int = 0  # checks in a row where the detector did not see this face


@dataclass
class MultiFaceTracker:
    """The `all` path of faces.tracking.Tracker: uses its detector, mesh, cadence, counters and timings."""

    owner: TrackHost
    max_faces: int = MAX_FACES
    tracks: list[FaceTrack] = field(default_factory=list)

    def clear(self) -> None:
        """Forget every face without counting losses (swap off, source changed, back to one face)."""
        self.tracks = []

    def end_all(self) -> None:
        for t in list(self.tracks):
            self._end(t)

    def set_smoothing(self, value: float) -> None:
        for t in self.tracks:
            t.smoother.smoothing = value

    def step(self, image: np.ndarray) -> list[TrackedFace]:
        """The faces of this frame, in track-id order."""
        if not self.owner.tracking:
            return self._detect_every_frame(image)
        followed, lost = self._follow(image)
        due = self.owner.detection_due()
        if followed and not lost and not due and all(t.misses == 0 for t, _ in followed):
            self.owner.skip_detection()
            return [self._emit(t, res, False) for t, res in followed]
        dets = self.owner.run_detector(image)
        kept: list[tuple[FaceTrack, MeshResult]] = []
        for (t, res), det in zip(followed, _assign(dets, [box_of(r.points) for _, r in followed]), strict=True):
            t.misses = 0 if det is not None else t.misses + 1
            if t.misses >= MAX_MISSES:
                self._end(t)
            else:
                kept.append((t, res))
        out = [self._emit(t, res, True) for t, res in kept]
        out += self._start(image, dets, [box_of(r.points) for _, r in kept])
        return sorted(out, key=lambda f: f.track_id)

    # -- following

    def _follow(self, image: np.ndarray) -> tuple[list[tuple[FaceTrack, MeshResult]], bool]:
        followed: list[tuple[FaceTrack, MeshResult]] = []
        lost = False
        for t in self.tracks:
            res = self.owner.run_mesh(image, self.owner.mesh.roi_from_points(t.raw))
            if implausible(res.points, res.presence, t.raw, image.shape) is not None:
                self._end(t)
                lost = True
                continue
            box = box_of(res.points)
            if any(iou(box, box_of(r.points)) > DUPLICATE_IOU for _, r in followed):
                self._end(t)  # it slid onto an older track's face
                continue
            followed.append((t, res))
        return followed, lost

    # -- starting tracks

    def _start(self, image: np.ndarray, dets: list[Detection], taken: list[np.ndarray]) -> list[TrackedFace]:
        """New tracks for the detections no current track covers, largest first, up to max_faces."""
        fresh = [d for d in dets if all(iou(d.bbox, b) < MATCH_IOU for b in taken)]
        fresh.sort(key=lambda d: -float((d.bbox[2] - d.bbox[0]) * (d.bbox[3] - d.bbox[1])))
        out: list[TrackedFace] = []
        for det in fresh:
            if len(self.tracks) >= self.max_faces:
                break
            res = self.owner.run_mesh(image, self.owner.mesh.roi_from_detection(det))
            box = box_of(res.points)
            if implausible(res.points, res.presence, None, image.shape) is not None:
                continue
            if any(iou(box, b) > DUPLICATE_IOU for b in taken):
                continue  # the detection's mesh landed on a face already tracked
            track = FaceTrack(self.owner.new_track_id(), res.points, LandmarkSmoother(self.owner.smoothing))
            self.tracks.append(track)
            taken.append(box)
            out.append(self._emit(track, res, True))
        return out

    def _detect_every_frame(self, image: np.ndarray) -> list[TrackedFace]:
        """The reference mode: detector and mesh from the detection for every face, every frame, unsmoothed;
        ids carried over by box overlap with the previous frame's faces."""
        dets = self.owner.run_detector(image)
        previous = {t.track_id: t for t in self.tracks}
        old_boxes = [box_of(t.raw) for t in self.tracks]
        old_ids = [t.track_id for t in self.tracks]
        results: list[MeshResult] = []
        for det in sorted(dets, key=lambda d: -float((d.bbox[2] - d.bbox[0]) * (d.bbox[3] - d.bbox[1]))):
            if len(results) >= self.max_faces:
                break
            res = self.owner.run_mesh(image, self.owner.mesh.roi_from_detection(det))
            if implausible(res.points, res.presence, None, image.shape) is None:
                results.append(res)
        owners = _assign_boxes(old_boxes, [box_of(r.points) for r in results])
        tracks: list[FaceTrack] = []
        out: list[TrackedFace] = []
        for res, k in zip(results, owners, strict=True):
            if k is None:
                track = FaceTrack(self.owner.new_track_id(), res.points, LandmarkSmoother(0.0))
            else:
                track = previous.pop(old_ids[k])
            tracks.append(track)
            out.append(self._emit(track, res, True))
        self.owner.losses += len(previous)
        self.tracks = tracks
        return sorted(out, key=lambda f: f.track_id)

    def _end(self, track: FaceTrack) -> None:
        if track in self.tracks:
            self.tracks.remove(track)
            self.owner.losses += 1

    def _emit(self, track: FaceTrack, res: MeshResult, detected: bool) -> TrackedFace:
        track.raw = res.points
        smooth = track.smoother(res.points)
        return TrackedFace(geometry_from_mesh(smooth, res.presence), track.track_id, detected)


def _assign(dets: list[Detection], boxes: list[np.ndarray]) -> list[Detection | None]:
    """For each box, the detection matched to it (each detection to at most one box), or None."""
    picks = _assign_boxes([d.bbox for d in dets], boxes)
    return [None if k is None else dets[k] for k in picks]


def _assign_boxes(candidates: list[np.ndarray], boxes: list[np.ndarray]) -> list[int | None]:
    """Greedy one-to-one matching, best overlap first: for each box the index of its candidate, or None
    when no free candidate overlaps it by MATCH_IOU."""
    pairs = sorted(
        ((iou(c, b), ci, bi) for ci, c in enumerate(candidates) for bi, b in enumerate(boxes)), reverse=True
    )
    picks: list[int | None] = [None] * len(boxes)
    used: set[int] = set()
    for overlap, ci, bi in pairs:
        if overlap < MATCH_IOU:
            break
        if ci in used or picks[bi] is not None:
            continue
        picks[bi] = ci
        used.add(ci)
    return picks
