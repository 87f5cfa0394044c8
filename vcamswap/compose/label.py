"""The disclosure label: a small, legible "AI face" tag in a corner of Swap Cam while a face is swapped.

Off by default; `--label TEXT` (or `label = "..."` in the settings) turns it on, the tray and
`vcamswap label on|off` toggle it. The tag is drawn once per text and frame size and blended into each
frame's corner, so a frame costs one small copy.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from vcamswap.controls import DEFAULT_LABEL, ControlState

__all__ = ["DEFAULT_LABEL", "Labeller", "check_label", "render_tag"]
log = logging.getLogger("vcamswap.compose")
MAX_LABEL_CHARS = 40
_FONT = cv2.FONT_HERSHEY_SIMPLEX
BOX_OPACITY = 0.75
MIN_TEXT_PX = 8.0  # smaller letters cannot be read on a call: the tag is left out


def check_label(text: str | None) -> str | None:
    """The label as given (None or "" = off), or ValueError with one line: the font has ASCII only."""
    if not text:
        return None
    if len(text) > MAX_LABEL_CHARS:
        raise ValueError(f"--label: at most {MAX_LABEL_CHARS} characters, got {len(text)}")
    if not all(" " <= c <= "~" for c in text):
        raise ValueError(f"--label {text!r}: use letters, digits and punctuation of plain ASCII")
    return text


@dataclass(frozen=True)
class _Tag:
    x: int
    y: int
    patch: np.ndarray  # BGR, float32
    alpha: np.ndarray  # HxWx1, float32


def render_tag(text: str, width: int, height: int) -> _Tag | None:
    """The tag for a frame size: text about 1/24 of the frame's height, white on a dark box, bottom left.

    A frame too narrow for that size gets smaller letters; None when even MIN_TEXT_PX letters do not fit.
    """
    margin = max(1, min(round(height * 0.025), width // 20, height // 20))
    target = max(12.0, height / 24)
    box = _box_size(text, target)
    room_w, room_h = width - 2 * margin, height - 2 * margin
    if box[0] > room_w or box[1] > room_h:
        target *= min(room_w / box[0], room_h / box[1])
        box = _box_size(text, target)
    if target < MIN_TEXT_PX or box[0] > room_w or box[1] > room_h:
        return None
    scale, thickness, pad = _metrics(target)
    (_, th), _ = cv2.getTextSize(text, _FONT, scale, thickness)
    patch = np.zeros((box[1], box[0], 3), np.uint8)
    cv2.putText(patch, text, (pad, pad + th), _FONT, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    ink = patch[:, :, :1].astype(np.float32) / 255.0
    alpha = BOX_OPACITY + (1.0 - BOX_OPACITY) * ink  # the text itself is fully opaque
    return _Tag(margin, height - margin - box[1], patch.astype(np.float32), alpha)


def _metrics(target: float) -> tuple[float, int, int]:
    """Font scale, stroke thickness and box padding for letters `target` pixels tall."""
    (_, base_h), _ = cv2.getTextSize("Ag", _FONT, 1.0, 1)
    return target / base_h, max(1, round(target / 11)), max(2, round(target * 0.45))


def _box_size(text: str, target: float) -> tuple[int, int]:
    scale, thickness, pad = _metrics(target)
    (tw, th), baseline = cv2.getTextSize(text, _FONT, scale, thickness)
    return tw + 2 * pad, th + baseline + 2 * pad


class Labeller:
    """Adds the label to frames while the state asks for it; caches the tag per text and size."""

    def __init__(self) -> None:
        self._key: tuple[str, int, int] | None = None
        self._tag: _Tag | None = None

    def apply(self, image: np.ndarray, state: ControlState) -> np.ndarray:
        if not (state.label_on and state.swapping):
            return image
        return self.draw(image, state.label_text)

    def draw(self, image: np.ndarray, text: str) -> np.ndarray:
        h, w = image.shape[:2]
        key = (text, w, h)
        if key != self._key:
            self._tag, self._key = render_tag(text, w, h), key
            if self._tag is None:
                log.warning("the label %r does not fit a %dx%d picture: it is left out", text, w, h)
        t = self._tag
        if t is None:
            return image
        out = image.copy()
        ph, pw = t.patch.shape[:2]
        roi = out[t.y:t.y + ph, t.x:t.x + pw].astype(np.float32)
        out[t.y:t.y + ph, t.x:t.x + pw] = (roi * (1.0 - t.alpha) + t.patch * t.alpha).astype(np.uint8)
        return out
