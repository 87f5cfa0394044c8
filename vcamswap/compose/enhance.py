"""The face enhancer in live mode: a restorer (GFPGAN 1.4's interface) run every N swaps, its detail re-used.

A restorer costs several times the swap itself, and what it adds (sharper eyes, lashes, skin texture) barely
changes from one frame to the next in the face-aligned crop, which moves with the head. So it runs on the
swapped crop every `every`-th call only; what it added (its output minus its input, in the crop's
coordinates) is kept and added to the swaps in between. Restorers are trained on FFHQ's alignment, so given
the engine's template the crop is first re-framed onto FFHQ's (at the crop's own resolution) and the detail
framed back. A new key (another source face, track, engine or crop
size) drops the kept detail at once: detail of one face is never laid over another.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from vcamswap.compose.align import similarity
from vcamswap.modelstore.manifest import ENHANCER_MODEL, ModelError
from vcamswap.modelstore.optional import open_optional
from vcamswap.runtime.imagemodel import image_model
from vcamswap.types import SwapOutput

# FFHQ's 5-point alignment (eyes, nose tip, mouth corners) in a unit square: what GFPGAN and GPEN expect.
FFHQ_TEMPLATE = np.array(
    [[0.37691676, 0.46864664], [0.62285697, 0.46912813], [0.50123859, 0.61331904],
     [0.39308822, 0.72541100], [0.61150205, 0.72490465]], np.float32,
)


class Session(Protocol):
    """The part of onnxruntime's InferenceSession the enhancer uses (the seam a test can count calls at)."""

    def run(self, output_names: list[str] | None, input_feed: dict[str, Any]) -> Sequence[Any]: ...

    def get_inputs(self) -> Sequence[Any]: ...

    def get_outputs(self) -> Sequence[Any]: ...


class LiveEnhancer:
    """Runs the enhancer on every `every`-th call for one key and re-uses its detail in between; 0 = off.

    `every` may change between calls (adaptive quality sets it to 0 when over budget); `runs` counts the
    model calls, for the stats. `template`: the engine's 5 template points in a unit square (its
    `template(size) / size`); None runs the model on the crop as it is.
    """

    def __init__(
        self, every: int, session: Session, strength: float = 1.0, template: np.ndarray | None = None
    ) -> None:
        if every < 0:
            raise ValueError(f"enhance every must be 0 (off) or more, not {every}")
        self.input, self.output, self.size = image_model(session, "enhancer", "NCHW", default_size=512)
        self.session = session
        self.every = every
        self.strength = strength
        self.template = None if template is None else np.asarray(template, np.float32).reshape(5, 2)
        self.runs = 0
        self._key: Hashable | None = None
        self._detail: np.ndarray | None = None
        self._since = 0  # calls since the model last ran for this key

    def reset(self) -> None:
        self._key, self._detail, self._since = None, None, 0

    def detail(self, crop: np.ndarray) -> np.ndarray:
        """What the model adds to a BGR uint8 crop: (S, S, 3) float32, in grey levels, in the crop's coordinates."""
        if self.template is None:
            return self._model_detail(crop)
        size = crop.shape[0]
        m = similarity(self.template * size, FFHQ_TEMPLATE * size)  # the crop -> FFHQ's framing, same resolution
        framed = cv2.warpAffine(crop, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        detail = self._model_detail(framed)
        return cv2.warpAffine(detail, cv2.invertAffineTransform(m), (size, size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    def _model_detail(self, crop: np.ndarray) -> np.ndarray:
        size = crop.shape[0]
        # One pass for resize, BGR -> RGB, NCHW and [-1, 1]; the difference is taken in the model's own units
        # and turned back into grey levels after the (linear) resize down, where it is a quarter of the work.
        blob = cv2.dnn.blobFromImage(crop, 1.0 / 127.5, (self.size, self.size), (127.5, 127.5, 127.5), swapRB=True)
        raw = np.asarray(self.session.run([self.output], {self.input: blob})[0], np.float32)
        self.runs += 1
        if raw.shape[-2:] != (self.size, self.size) or not np.isfinite(raw).all():
            return np.zeros((size, size, 3), np.float32)  # a broken output adds nothing, never noise
        diff = raw.reshape(3, self.size, self.size).clip(-1.0, 1.0) - blob[0]
        bgr = cv2.merge([diff[2], diff[1], diff[0]])
        back = cv2.INTER_AREA if size < self.size else cv2.INTER_LINEAR
        return cv2.resize(bgr, (size, size), interpolation=back) * np.float32(127.5)

    def apply(self, out: SwapOutput, crop_size: int, key: tuple[Hashable, ...]) -> SwapOutput:
        """`out` with the enhancer's detail added to its crop (its mask and layers as they were)."""
        if self.every <= 0:
            self.reset()
            return out
        if out.crop.shape[:2] != (crop_size, crop_size):
            raise ValueError(f"swap crop is {out.crop.shape[1]}x{out.crop.shape[0]}, expected {crop_size}")
        full_key = (*key, crop_size)
        if full_key != self._key:
            self.reset()
            self._key = full_key
        if self._detail is None or self._since >= self.every:
            self._detail, self._since = self.detail(out.crop), 0
        self._since += 1
        img = out.crop.astype(np.float32) + self.strength * self._detail
        return out._replace(crop=np.clip(img + 0.5, 0, 255).astype(np.uint8))


def make_enhancer(
    every: int, models_dir: Path, provider: str | None = None, threads: int | None = None,
    template: np.ndarray | None = None,
) -> LiveEnhancer | None:
    """The enhancer for `enhance_every` = `every`: None when 0; ModelError (one line naming
    `vcamswap models download enhancer`) when it is asked for and not installed."""
    if every <= 0:
        return None

    session = open_optional(ENHANCER_MODEL, "enhancer", models_dir, provider, threads)
    try:
        return LiveEnhancer(every, session, template=template)
    except ValueError as e:
        raise ModelError(f"{e}; reinstall it with 'vcamswap models download enhancer --force'") from None
