"""What limits a source photo, said in one line: the photo is still accepted, the user learns why a swap may
look weaker and what a better photo would be.

Each check reads what the lite engine itself depends on: how much of the face is the person's skin (hair,
glasses, a beard or a hat hand those parts to the camera's face), the face's size against the largest crop,
one-sided light (its shading is relit away, but a cheek in deep shadow has no texture left), closed eyes or
an open mouth (the camera's eyes and lips are drawn over the photo's, so the photo's shape around them
shows), and JPEG blocking (8x8 blocks are magnified on a close face).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import cv2
import numpy as np

from vcamswap.compose.skin import EYES_AND_LIPS, oval, protected
from vcamswap.engines.lite.photo_skin import photo_skin_mask
from vcamswap.engines.lite.source import aligned_source, parsed_skin
from vcamswap.faces.landmarks import FACE_OVAL, LEFT_EYE, RIGHT_EYE
from vcamswap.types import FaceGeometry

if TYPE_CHECKING:
    from vcamswap.compose.parsing import FaceParser

MIN_FACE_PX = 240  # the quality preset's 320 px crop spans the face at about 0.75 of its side
MAX_COVERED = 0.4  # share not taken: even a clear photo loses ~0.15-0.35 (shadowed edges, highlights)
MAX_SIDE_LIGHT = 0.25  # lightness difference between the two cheeks, over the brighter one
MIN_EYE_OPEN = 0.14  # eye height over width
MAX_MOUTH_OPEN = 0.12  # lip gap over mouth width
MAX_SMILE = 0.45  # mouth width over face width (neutral: 0.33-0.41)
MAX_BLOCKINESS = 1.35  # gradient on 8x8 block edges over gradient elsewhere

# Two points on each cheek for the side-light check (subject's right, then left).
CHEEKS = ((205, 50), (425, 280))
LIP_TOP, LIP_BOTTOM = 13, 14
MOUTH_CORNERS = (61, 291)


class PhotoReport(NamedTuple):
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def line(self) -> str:
        return "; ".join(self.problems)


def _eye_open(points: np.ndarray, eye: tuple[int, ...]) -> float:
    pts = points[list(eye)]
    w = float(np.ptp(pts[:, 0])) or 1.0
    return float(np.ptp(pts[:, 1])) / w


def covered_share(texture: np.ndarray, points: np.ndarray, parsed: np.ndarray | None = None) -> float:
    """Share of the face (oval less eyes and lips) that the engine will not take from this photo; `parsed`:
    the face parser's face map of the texture, when the parser is installed (engines.lite.source)."""
    shape = texture.shape[:2]
    skin, _ = photo_skin_mask(texture, points)
    skin = parsed_skin(skin, parsed)
    face = (oval(points, shape) > 0) & (protected(points, shape, EYES_AND_LIPS, grow=0.03) < 0.5)
    return float((skin[face] < 0.5).mean()) if face.any() else 0.0


def blockiness(image: np.ndarray) -> float:
    """Mean horizontal+vertical step across 8-pixel block edges over the mean step elsewhere."""
    g = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
    dx = np.abs(np.diff(g, axis=1))
    dy = np.abs(np.diff(g, axis=0))
    on_x, on_y = dx[:, 7::8], dy[7::8, :]
    off_x = np.delete(dx, np.s_[7::8], axis=1)
    off_y = np.delete(dy, np.s_[7::8], axis=0)
    on = (on_x.mean() + on_y.mean()) / 2
    off = (off_x.mean() + off_y.mean()) / 2
    return float(on / max(off, 1e-3))


def assess(
    image: np.ndarray, points: np.ndarray, texture: np.ndarray, tex_points: np.ndarray,
    parser: FaceParser | None = None,
) -> PhotoReport:
    """`points`: the photo's FaceMesh points; `texture`/`tex_points`: the face aligned as the engine sees it;
    `parser`: the face parser when it is installed (the lite engine then decides the skin with it too)."""
    problems: list[str] = []
    covered = covered_share(texture, tex_points, None if parser is None else parser.face(texture))
    if covered > MAX_COVERED:
        problems.append(f"hair, glasses or a beard cover {covered:.0%} of the face (that part stays the camera's)")
    width = float(np.ptp(points[list(FACE_OVAL), 0]))
    if width < MIN_FACE_PX:
        problems.append(f"the face is {width:.0f} px wide, under {MIN_FACE_PX} px: the swap will look soft")
    lab = cv2.cvtColor(texture, cv2.COLOR_BGR2LAB)
    r = max(2, int(0.03 * float(np.ptp(tex_points[list(FACE_OVAL), 0]))))
    cheeks = []
    for side in CHEEKS:
        values = []
        for i in side:
            x, y = np.round(tex_points[i]).astype(int)
            values.append(float(np.median(lab[max(0, y - r) : y + r, max(0, x - r) : x + r, 0])))
        cheeks.append(float(np.mean(values)))
    if abs(cheeks[0] - cheeks[1]) / max(max(cheeks), 1.0) > MAX_SIDE_LIGHT:
        problems.append("strong light from one side")
    if min(_eye_open(points, RIGHT_EYE), _eye_open(points, LEFT_EYE)) < MIN_EYE_OPEN:
        problems.append("the eyes are closed or nearly")
    mouth_w = float(np.linalg.norm(points[MOUTH_CORNERS[0]] - points[MOUTH_CORNERS[1]])) or 1.0
    smile = mouth_w / (width or 1.0) > MAX_SMILE
    if float(np.linalg.norm(points[LIP_TOP] - points[LIP_BOTTOM])) / mouth_w > MAX_MOUTH_OPEN:
        problems.append("a broad smile with open lips" if smile else "the mouth is open")
    elif smile:
        problems.append("a broad smile (its cheek folds show on the swap)")
    if blockiness(image) > MAX_BLOCKINESS:
        problems.append("heavy JPEG compression")
    return PhotoReport(tuple(problems))


def photo_report(image: np.ndarray, face: FaceGeometry, parser: FaceParser | None = None) -> PhotoReport:
    """The report of a photo whose face the analyzer found (FaceMesh points required)."""
    if face.points is None:
        return PhotoReport(("no face landmarks",))
    texture, aligned = aligned_source(image, face)
    return assess(image, face.points, texture, aligned, parser)


def photo_note(image: np.ndarray, face: FaceGeometry, parser: FaceParser | None = None) -> str:
    """What limits a photo, in the one line `faces add`, `faces list` and the tray show; '' when nothing does."""
    return photo_report(image, face, parser).line()
