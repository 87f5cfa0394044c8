"""Landmark smoothing: points in, points out, detector-agnostic (norfair-like) with filterpy underneath.

Output points are smoothed: the head's pose (centre, scale, roll of the whole mesh) by a constant-velocity
Kalman filter whose trust in the measurement rises with surprising motion, and the expression (the mesh in the
head's own frame) by a one-euro filter, so a still head does not shimmer and a moving one does not lag.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from vcamswap.faces.landmarker import EYE_OUTER_LEFT, EYE_OUTER_RIGHT

# Kalman noise in units of the face's RMS radius, so the filter behaves the same near and far.
# Tuned with `vcamswap bench` on real clips: still-head jitter against lag on head turns and speech.
KF_MEASURE = 0.02  # measurement sigma at smoothing=1
KF_ACCEL = 0.0005  # process (acceleration) sigma per frame
KF_GATE = 1.0  # innovation (Mahalanobis^2) beyond which the covariance is inflated in proportion
# One-euro filter on the expression (mesh in the head's frame, units of the RMS radius, per frame).
EURO_MIN_CUTOFF = (0.2, 0.002)  # min cutoff at smoothing 0 and 1 (cycles/frame), geometric in between
EURO_BETA = 5.0
EURO_D_CUTOFF = 0.3


class Pose(NamedTuple):
    """A mesh split into the head's similarity pose and its shape in the head's own frame."""

    centre: np.ndarray  # (2,)
    radius: float  # RMS distance of the points from the centre, px
    angle: float  # roll relative to the track's reference shape, radians
    shape: np.ndarray  # (N, 2) points in the head's frame, units of radius


def _rot(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s], [s, c]], np.float64)


def decompose(points: np.ndarray, ref: np.ndarray | None) -> Pose:
    """Pose of `points` against the reference shape: least-squares over all points, so the pose carries
    the mesh's common-mode noise and smoothing it removes that noise from every point."""
    pts = points[:, :2].astype(np.float64)
    centre = pts.mean(0)
    d = pts - centre
    radius = float(np.sqrt((d**2).sum(1).mean())) or 1.0
    if ref is None:
        axis = pts[EYE_OUTER_LEFT] - pts[EYE_OUTER_RIGHT]
        angle = math.atan2(axis[1], axis[0])
    else:
        cross = float((ref[:, 0] * d[:, 1] - ref[:, 1] * d[:, 0]).sum())
        dot = float((ref * d).sum())
        angle = math.atan2(cross, dot)
    shape = (d @ _rot(angle)) / radius  # rows: R^T d
    return Pose(centre, radius, angle, shape)


def compose(pose: Pose) -> np.ndarray:
    return (pose.shape * pose.radius @ _rot(pose.angle).T + pose.centre).astype(np.float32)


class PoseKalman:
    """Constant-velocity Kalman filter on (cx, cy, r*ln(scale), r*roll): all four in pixels.

    When a measurement is far outside what the motion model predicts (the head starts or stops moving), the
    covariance is inflated for that step so the filter follows the measurement instead of lagging behind it.
    """

    def __init__(self, z: np.ndarray, radius: float, smoothing: float) -> None:
        # Imported here: filterpy pulls in scipy.stats (~0.5 s), which CLI commands that never track
        # (`vcamswap status`, `toggle`, ...) should not pay for.
        from filterpy.kalman import KalmanFilter

        kf = KalmanFilter(dim_x=8, dim_z=4)
        kf.F = np.eye(8)
        kf.F[:4, 4:] = np.eye(4)
        kf.H = np.hstack([np.eye(4), np.zeros((4, 4))])
        kf.x = np.concatenate([z, np.zeros(4)])
        self.kf = kf
        self.smoothing = smoothing
        self._tune(radius)
        kf.P = np.diag(np.r_[np.full(4, kf.R[0, 0]), np.full(4, (0.05 * radius) ** 2)])

    def _tune(self, radius: float) -> None:
        from filterpy.common import Q_discrete_white_noise

        r = max(self.smoothing * KF_MEASURE * radius, 1e-3)
        self.kf.R = np.eye(4) * r**2
        self.kf.Q = Q_discrete_white_noise(2, 1.0, (KF_ACCEL * radius) ** 2, block_size=4, order_by_dim=False)

    def step(self, z: np.ndarray, radius: float) -> np.ndarray:
        kf = self.kf
        self._tune(radius)
        kf.predict()
        y = z - kf.H @ kf.x
        s = kf.H @ kf.P @ kf.H.T + kf.R
        d2 = float(y @ np.linalg.solve(s, y))
        if d2 > KF_GATE:
            kf.P = kf.P * (d2 / KF_GATE)
        kf.update(z)
        return np.asarray(kf.x[:4], np.float64)


class OneEuro:
    """Vectorised one-euro filter over (N, 2) points: cutoff rises with each point's speed."""

    def __init__(self, x: np.ndarray, min_cutoff: float) -> None:
        self.x = x.copy()
        self.dx = np.zeros(len(x))
        self.min_cutoff = min_cutoff

    @staticmethod
    def _alpha(cutoff: np.ndarray | float) -> np.ndarray:
        tau = 1.0 / (2 * math.pi * np.asarray(cutoff))
        return np.asarray(1.0 / (1.0 + tau))

    def step(self, x: np.ndarray) -> np.ndarray:
        speed = np.linalg.norm(x - self.x, axis=1)
        self.dx += self._alpha(EURO_D_CUTOFF) * (speed - self.dx)
        a = self._alpha(self.min_cutoff + EURO_BETA * self.dx)[:, None]
        self.x = self.x + a * (x - self.x)
        return self.x


class LandmarkSmoother:
    """Smooths a track's mesh: Kalman on the head's pose, one-euro on the expression. smoothing 0 = raw."""

    def __init__(self, smoothing: float = 0.5) -> None:
        self.smoothing = smoothing
        self._ref: np.ndarray | None = None
        self._kf: PoseKalman | None = None
        self._euro: OneEuro | None = None
        self._angle = 0.0
        self._unit = 1.0

    def reset(self) -> None:
        self._ref, self._kf, self._euro, self._angle = None, None, None, 0.0

    def __call__(self, points: np.ndarray) -> np.ndarray:
        pts = np.asarray(points[:, :2], np.float32)
        if self.smoothing <= 0:
            self.reset()
            return pts
        if self._ref is None:
            self._ref = decompose(pts, None).shape  # roll is measured against the track's first frame
        pose = decompose(pts, self._ref)
        # Keep the roll continuous across +-pi so the filter never sees a 2*pi jump.
        angle = self._angle + math.remainder(pose.angle - self._angle, 2 * math.pi)
        self._angle = angle
        if self._kf is None or self._euro is None:
            self._unit = pose.radius  # scale and roll become pixels at the track's first size
            self._kf = PoseKalman(self._z(pose, angle), pose.radius, self.smoothing)
            self._euro = OneEuro(pose.shape, self._min_cutoff())
            return pts
        self._kf.smoothing = self.smoothing
        self._euro.min_cutoff = self._min_cutoff()
        x = self._kf.step(self._z(pose, angle), pose.radius)
        shape = self._euro.step(pose.shape)
        return compose(Pose(x[:2], math.exp(x[2] / self._unit), x[3] / self._unit, shape))

    def _z(self, pose: Pose, angle: float) -> np.ndarray:
        u = self._unit
        return np.array([pose.centre[0], pose.centre[1], u * math.log(pose.radius), u * angle])

    def _min_cutoff(self) -> float:
        lo, hi = EURO_MIN_CUTOFF
        s = min(max(self.smoothing, 0.0), 1.0)
        return float(lo * (hi / lo) ** s)
