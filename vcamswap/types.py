"""Data that crosses stage boundaries. Arrays are float32 pixel coordinates of the frame they came from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import numpy as np


class Detection(NamedTuple):
    """One face from a detector.

    kps order (image left to right as seen on screen): the eye on the image's left, the eye on the
    image's right, nose tip, mouth corner on the image's left, mouth corner on the image's right.
    This is insightface's order, so SCRFD output maps one to one.
    """

    bbox: np.ndarray  # (4,) x1, y1, x2, y2
    kps: np.ndarray  # (5, 2)
    score: float


class FaceDetector(Protocol):
    """Anything that finds faces in a BGR image: BlazeFace, an engine's own detector."""

    def detect(self, image_bgr: np.ndarray) -> list[Detection]: ...


class FaceGeometry(NamedTuple):
    """Where a face is in one image: box, 5 keypoints, and the dense mesh when a landmarker ran."""

    bbox: np.ndarray  # (4,) x1, y1, x2, y2
    kps: np.ndarray  # (5, 2), same order as Detection.kps
    points: np.ndarray | None  # (468, 2) FaceMesh points, or None
    score: float

    def transformed(self, m: np.ndarray) -> FaceGeometry:
        """The same face after a 2x3 affine `m` (e.g. into an aligned crop)."""
        kps = apply_affine(self.kps, m)
        pts = None if self.points is None else apply_affine(self.points, m)
        corners = apply_affine(
            np.array([[self.bbox[0], self.bbox[1]], [self.bbox[2], self.bbox[3]]], np.float32), m
        )
        bbox = np.array([*corners.min(0), *corners.max(0)], np.float32)
        return FaceGeometry(bbox, kps, pts, self.score)


class TrackedFace(NamedTuple):
    """The face the tracker follows in the current frame."""

    geometry: FaceGeometry
    track_id: int
    detected: bool  # True when the detector ran on this frame, False when followed


class FeatureLayer(NamedTuple):
    """The camera's own features (eyes, lips) to lay over an engine's skin after compositing's colour match.

    `alpha` is where they cover the skin (0 wherever every part's mask is 0); each part is a camera image
    (uint8, crop-sized, read only where its mask is not 0) and its mask.
    """

    alpha: np.ndarray  # (S, S) float32 in [0, 1]
    parts: tuple[tuple[np.ndarray, np.ndarray], ...]


class Warp(NamedTuple):
    """A smooth move of the camera's crop that an engine asks compose to apply before laying its face in: the
    face's outline has moved (the lite engine's likeness), and the camera's cheek line and jaw edge go with it."""

    field: np.ndarray  # (G, G, 2) float32: per grid cell, where its camera pixel comes from, relative, crop px
    points: np.ndarray  # (468, 2) the face's points after the move, in the crop
    likeness: float  # 0..1, how far toward the source's face (the relight's scale and tone follow it)


class SwapOutput(NamedTuple):
    """What an engine returns, in the aligned crop's coordinates: the swapped face, not yet colour-matched
    (the engine's finish, Engine.finish, applies the preset's colour match and lays `features` over it)."""

    crop: np.ndarray  # (S, S, 3) uint8 BGR
    mask: np.ndarray  # (S, S) float32 in [0, 1]; 0 keeps the camera's pixel
    features: FeatureLayer | None = None
    # (S, S) float32 in [0, 1]: where `crop` is the source's own skin. An engine that knows it gets the
    # camera's lighting transferred from skin pixels only and the camera's occluders kept in front.
    skin: np.ndarray | None = None
    warp: Warp | None = None  # the camera's crop moved by this before the face is laid in (None: as it is)


@dataclass(frozen=True)
class Frame:
    """A captured frame with its capture timestamp (time.perf_counter seconds)."""

    image: np.ndarray
    index: int
    t_capture: float


@dataclass(frozen=True)
class SourceFace:
    """A source face from the faces folder, analysed once and cached by content (the engine's payload for
    it lives beside it, in live.sources, keyed by engine and digest)."""

    name: str
    path: str
    digest: str
    image: np.ndarray
    geometry: FaceGeometry


def apply_affine(points: np.ndarray, m: np.ndarray) -> np.ndarray:
    pts = np.asarray(points, np.float32)
    return (pts @ m[:, :2].T + m[:, 2]).astype(np.float32)


def check_bgr(image: Any, what: str = "image", min_side: int = 1) -> np.ndarray:
    """The image itself when it is an HxWx3 uint8 (BGR) array at least `min_side` pixels each way, else
    ValueError naming `what`: the one check at every stage boundary that takes pictures."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        desc = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"{what}: expected an HxWx3 uint8 BGR image, got {desc}")
    if image.shape[0] < min_side or image.shape[1] < min_side:
        raise ValueError(f"{what}: too small ({image.shape[1]}x{image.shape[0]})")
    return image
