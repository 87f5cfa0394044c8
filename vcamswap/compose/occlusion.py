"""What is in front of the camera's face: glasses, a fringe, a hand or a mug show the camera, not the swap.

Two occluders share one contract (`Occluder`): called with the face-aligned crop (and its FaceMesh points,
when known), they return a mask of the crop, 1 = the camera's own face, 0 = something in front of it.

* `CameraSkin` ("fast", CPU): every pixel is judged against a model of the camera person's own skin
  (compose.skin, fitted on their cheeks), which follows the light smoothly across frames.
* `ModelOccluder` ("model"): the optional XSeg occluder on onnxruntime (`vcamswap models download
  occluder`), which also knows a skin-coloured hand from a cheek.
* `ParserOccluder` ("parser"): the optional face parser (compose.parsing, `vcamswap models download parser`):
  only the skin, brows, eyes, nose and lips are swapped; hair, glasses, a hat and all else stay the camera's.
  BiSeNet has no hand class and calls a hand skin by its look, so when the occluder model is installed too its
  verdict is added (what either calls "not face" stays the camera's), as the peers pair a region mask with XSeg.

All keep their mask in crop coordinates, which move with the head, and settle it the same way: something
coming in front of the face shows at once, the face comes back over a few frames, so sensor noise never
makes the mask flicker. reset() when the followed face changes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import cv2
import numpy as np

from vcamswap.choices import OCCLUSION_KINDS, OcclusionKind
from vcamswap.compose.parsing import FaceParser, open_parser
from vcamswap.compose.skin import SkinModel, skin_mask
from vcamswap.modelstore.manifest import OCCLUDER_MODEL, ModelError, missing_models
from vcamswap.modelstore.optional import open_optional
from vcamswap.runtime.imagemodel import image_model

if TYPE_CHECKING:
    import onnxruntime as ort

log = logging.getLogger("vcamswap.occlusion")


@runtime_checkable
class Occluder(Protocol):
    """The camera's face mask of one followed face, steady over frames."""

    @property
    def mask(self) -> np.ndarray | None:
        """The last mask (S, S) float32 0..1, or None before the first call or after reset()."""
        ...

    def reset(self) -> None:
        """Forget the followed face (the track changed)."""
        ...

    def __call__(self, crop: np.ndarray, points: np.ndarray | None) -> np.ndarray:
        """(S, S) float32 0..1 for an (S, S, 3) BGR uint8 crop: 1 = the camera's face, 0 = in front of it."""
        ...


def settle(mask: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
    """Drops at once (an occluder shows the frame it arrives), rises halfway per call (no flicker)."""
    if previous is not None and previous.shape == mask.shape:
        mask = np.minimum(mask, 0.5 * mask + 0.5 * previous)
    return mask.astype(np.float32, copy=False)


class Settled:
    """What every occluder keeps between calls: its last mask, settled over frames, forgotten on reset()."""

    def __init__(self) -> None:
        self._mask: np.ndarray | None = None

    @property
    def mask(self) -> np.ndarray | None:
        """The last mask (0..1, crop-sized): 1 is the camera's own face."""
        return self._mask

    def reset(self) -> None:
        self._mask = None

    def _settle(self, mask: np.ndarray) -> np.ndarray:
        self._mask = settle(mask, self._mask)
        return self._mask


class CameraSkin(Settled):
    """The camera's skin mask for one followed face; reset() when the track changes."""

    def __init__(self) -> None:
        super().__init__()
        self._model: SkinModel | None = None

    def reset(self) -> None:
        super().reset()
        self._model = None

    def __call__(self, crop: np.ndarray, points: np.ndarray | None) -> np.ndarray:
        size = crop.shape[0]
        if points is None:  # no cheeks to sample without the mesh: keep the whole face
            return self._settle(np.ones((size, size), np.float32))
        half = max(64, size // 2)  # half resolution: the mask is soft anyway, and it costs a quarter
        small = cv2.resize(crop, (half, half), interpolation=cv2.INTER_AREA)
        mask, self._model = skin_mask(small, points * (half / size), self._model)
        mask = cv2.resize(mask, (size, size), interpolation=cv2.INTER_LINEAR)
        return self._settle(mask)


class ModelOccluder(Settled):
    """The occluder model (XSeg's interface: NHWC BGR 0..1 in, a 1-channel face map out) on one crop per call.

    The model's map is resized to the crop, softened and pulled a little inside the face (as FaceFusion does
    with the same model), so an occluder's edge is covered rather than cut along; then settled over frames.
    """

    def __init__(self, session: ort.InferenceSession) -> None:
        super().__init__()
        self.input, self.output, self.size = image_model(session, "occluder", "NHWC", default_size=256)
        self.session = session

    def predict(self, crop: np.ndarray) -> np.ndarray:
        """The model's face map for one crop, at the crop's size, 0..1 (not softened, not settled)."""
        size = crop.shape[0]
        shrink = cv2.INTER_AREA if size > self.size else cv2.INTER_LINEAR
        blob = cv2.resize(crop, (self.size, self.size), interpolation=shrink)
        blob = (blob.astype(np.float32) / 255.0)[None]
        face = np.asarray(self.session.run([self.output], {self.input: blob})[0], np.float32)
        face = face.reshape(self.size, self.size)
        face = np.nan_to_num(face, nan=1.0).clip(0.0, 1.0)  # a broken output must not erase the swap
        return cv2.resize(face, (size, size), interpolation=cv2.INTER_LINEAR)

    def __call__(self, crop: np.ndarray, points: np.ndarray | None = None) -> np.ndarray:
        face = self.predict(crop)
        sigma = max(1.0, crop.shape[0] / 50.0)  # FaceFusion's 5 px at a 256 crop
        face = (cv2.GaussianBlur(face, (0, 0), sigma).clip(0.5, 1.0) - 0.5) * 2.0
        return self._settle(face)


def kept_out(face: np.ndarray) -> np.ndarray:
    """A hard face map with what is not face grown a little and softened past it: a glasses frame or a strand
    a pixel or two wide stays whole in front of the swap (blurring alone would cover most of it)."""
    grow = max(2, round(face.shape[0] / 48))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
    return cv2.GaussianBlur(cv2.erode(face, kernel), (0, 0), grow / 2.0).astype(np.float32)


class ParserOccluder(Settled):
    """The face parser on one crop per call: the parsed face classes (less what the occluder model, when given,
    sees in front of the face) with what is not face grown a little, softened, then settled over frames."""

    def __init__(self, parser: FaceParser, occluder: ModelOccluder | None = None) -> None:
        super().__init__()
        self.parser = parser
        self.occluder = occluder

    def __call__(self, crop: np.ndarray, points: np.ndarray | None = None) -> np.ndarray:
        face = self.parser.face(crop)
        if self.occluder is not None:  # a hand, which the parser may call skin, is not face to XSeg
            face = np.minimum(face, (self.occluder.predict(crop) > 0.5).astype(np.float32))
        return self._settle(kept_out(face))


def make_occluder(
    kind: OcclusionKind, models_dir: Path, provider: str | None = None, threads: int | None = None
) -> Occluder | None:
    """The occluder a preset's `occlusion` asks for: None ("off"), CameraSkin ("fast"), the occluder model
    ("model") or the face parser ("parser").

    "model" or "parser" without its model installed raises ModelError, one line naming `vcamswap models
    download occluder` (or `parser`).
    """
    if kind == "off":
        return None
    if kind == "fast":
        return CameraSkin()
    if kind == "model":
        return open_occluder(models_dir, provider, threads)
    if kind == "parser":
        parser = open_parser(models_dir, provider, threads)
        return ParserOccluder(parser, with_occluder(models_dir, provider, threads))
    raise ValueError(f"unknown occlusion {kind!r}; choose one of {', '.join(OCCLUSION_KINDS)}")


def open_occluder(models_dir: Path, provider: str | None = None, threads: int | None = None) -> ModelOccluder:
    """The installed occluder model; ModelError with one line naming its download when missing or broken."""
    session = open_optional(OCCLUDER_MODEL, "occluder", models_dir, provider, threads)
    try:
        return ModelOccluder(session)
    except ValueError as e:
        raise ModelError(f"{e}; reinstall it with 'vcamswap models download occluder --force'") from None


def with_occluder(models_dir: Path, provider: str | None, threads: int | None) -> ModelOccluder | None:
    """The occluder model to pair with the parser when it is installed; None when it is not, or (said once)
    when it will not load: the parser then decides alone."""
    if missing_models([OCCLUDER_MODEL], models_dir):
        return None
    try:
        return open_occluder(models_dir, provider, threads)
    except ModelError as e:
        log.warning("%s; the face parser decides alone what is in front of the face", e)
        return None
