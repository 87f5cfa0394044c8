"""The disclosure label: a small, legible "AI face" tag in a corner of Swap Cam while a face is swapped.

Off by default; `--label TEXT` (or `label = "..."` in the settings) turns it on, the tray and
`vcamswap label on|off` toggle it. The tag is drawn once per text and frame size and blended into each
frame's corner, so a frame costs one small copy.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vcamswap.controls import DEFAULT_LABEL, ControlState

__all__ = ["DEFAULT_LABEL", "Labeller", "check_label", "render_tag"]
MAX_LABEL_CHARS = 40
_FONT = cv2.FONT_HERSHEY_SIMPLEX
BOX_OPACITY = 0.75


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


def render_tag(text: str, width: int, height: int) -> _Tag:
    """The tag for a frame size: text about 1/24 of the frame's height, white on a dark box, bottom left."""
    target = max(12.0, height / 24)
    (_, base_h), _ = cv2.getTextSize("Ag", _FONT, 1.0, 1)
    scale = target / base_h
    thickness = max(1, round(target / 11))
    (tw, th), baseline = cv2.getTextSize(text, _FONT, scale, thickness)
    pad = max(4, round(target * 0.45))
    box_w, box_h = min(width, tw + 2 * pad), min(height, th + baseline + 2 * pad)
    margin = max(4, round(height * 0.025))
    x, y = margin, max(0, height - margin - box_h)
    box_w, box_h = min(box_w, width - x), min(box_h, height - y)
    patch = np.zeros((box_h, box_w, 3), np.uint8)
    cv2.putText(patch, text, (pad, pad + th), _FONT, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    ink = patch[:, :, :1].astype(np.float32) / 255.0
    alpha = BOX_OPACITY + (1.0 - BOX_OPACITY) * ink  # the text itself is fully opaque
    return _Tag(x, y, patch.astype(np.float32), alpha)


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
        if key != self._key or self._tag is None:
            self._tag, self._key = render_tag(text, w, h), key
        t = self._tag
        out = image.copy()
        ph, pw = t.patch.shape[:2]
        roi = out[t.y:t.y + ph, t.x:t.x + pw].astype(np.float32)
        out[t.y:t.y + ph, t.x:t.x + pw] = (roi * (1.0 - t.alpha) + t.patch * t.alpha).astype(np.uint8)
        return out
