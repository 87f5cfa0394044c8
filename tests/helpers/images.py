"""Image files made by the tests."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from helpers.faces import read
from helpers.media import media_root


def png_declaring(path: Path, width: int, height: int) -> Path:
    """A small PNG whose header declares width x height (a decompression bomb when large)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 4_000_000, 9)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def jpeg_declaring(width: int, height: int) -> bytes:
    """A few hundred bytes of JPEG whose frame header declares width x height (a bomb when large)."""
    ok, buf = cv2.imencode(".jpg", np.full((16, 16, 3), 128, np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 50])
    assert ok
    data = bytearray(buf.tobytes())
    sof = data.index(b"\xff\xc0")  # baseline frame header: FFC0, length, precision, height, width
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


class Hand(NamedTuple):
    """A real hand holding a real microphone, cut out of a real photo, to put in front of a face."""

    patch: np.ndarray
    mask: np.ndarray  # bool, patch-sized


def hand(face_width: float) -> Hand:
    """The hand of faces/single/lin_manuel_miranda.png, scaled to cover 70% of a face `face_width` wide."""
    photo = read(media_root(), "faces/single/lin_manuel_miranda.png")
    outline = np.array([(385, 480), (420, 462), (470, 470), (480, 500), (540, 520), (565, 560), (560, 611),
                        (400, 611), (390, 560)], np.int32)
    x, y, w, h = cv2.boundingRect(outline)
    full = np.zeros(photo.shape[:2], np.uint8)
    cv2.fillPoly(full, [outline], 255)
    s = face_width * 0.7 / w
    patch = cv2.resize(photo[y : y + h, x : x + w], None, fx=s, fy=s)
    return Hand(patch, cv2.resize(full[y : y + h, x : x + w], None, fx=s, fy=s) > 127)


def in_front(
    image: np.ndarray, held: Hand, bbox: np.ndarray, at: tuple[float, float] = (0.05, 0.55)
) -> tuple[np.ndarray, np.ndarray]:
    """`image` with the hand's top left at `at` (shares of the face box `bbox`: by default over the lower left
    of the face), and where the hand is (bool)."""
    x0, y0, x1, y1 = bbox.astype(int)
    ox, oy = int(x0 + at[0] * (x1 - x0)), int(y0 + at[1] * (y1 - y0))
    shown = image.copy()
    region = shown[oy : oy + held.patch.shape[0], ox : ox + held.patch.shape[1]]
    m = held.mask[: region.shape[0], : region.shape[1]]
    region[m] = held.patch[: region.shape[0], : region.shape[1]][m]
    where = np.zeros(image.shape[:2], bool)
    where[oy : oy + region.shape[0], ox : ox + region.shape[1]] = m
    return shown, where


def swapped_over(shown: np.ndarray, output: np.ndarray, where: np.ndarray) -> float:
    """Share of the pixels in `where` that the output changed (by more than 20 grey levels)."""
    return float((np.abs(output.astype(np.int16) - shown.astype(np.int16)).max(2)[where] > 20).mean())
