"""A still frame with a banner, for when there is nothing live to show: camera lost, paused, none yet.

Apps watching the virtual camera need a steady stream, so the loop and the daemon keep sending it.
"""

from __future__ import annotations

import cv2
import numpy as np

from vcamswap.outputs.sinkset import SinkSet


def banner(image: np.ndarray, text: str) -> np.ndarray:
    """A copy of the frame with a dark band and a message, for 'camera lost' and 'paused' frames."""
    out = (image * 0.5).astype(np.uint8)
    h, w = out.shape[:2]
    scale = max(0.6, w / 900)
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
    y = h // 2
    cv2.rectangle(out, (0, y - th - 16), (w, y + 16), (0, 0, 0), -1)
    cv2.putText(out, text, ((w - tw) // 2, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 2, cv2.LINE_AA)
    return out


class StillPublisher:
    """Sends a banner over a still image to the sinks; the banner is drawn once per image and text."""

    def __init__(self, sinks: SinkSet) -> None:
        self.sinks = sinks
        self._key: tuple[int, str] | None = None
        self._frame: np.ndarray | None = None

    def publish(self, image: np.ndarray, text: str) -> None:
        key = (id(image), text)
        if self._frame is None or key != self._key:
            self._frame, self._key = banner(image, text), key
        self.sinks.send(self._frame)
