"""The one way photos and still inputs are read: bounded in file size and pixels, bombs refused unread.

The image's header is read first (Pillow reads only the header on open), so a small file that declares a
huge picture is refused before any pixel is decoded; then OpenCV decodes it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np

MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_SIDE = 8192
MAX_PIXELS = 40_000_000  # 8K UHD is 33 MP
MIN_SIDE = 16


class ImageError(ValueError):
    """An image that cannot be used; the message is one line naming the file and why."""


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) the file declares, from its header alone; ImageError when it is not an image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's own bomb warning: our limits are below it
            with Image.open(path) as im:
                return int(im.size[0]), int(im.size[1])
    except Image.DecompressionBombError:
        raise ImageError(f"{path}: declares a picture far too large to open; refused") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not a readable image") from None
    except OSError as e:
        raise ImageError(f"{path}: cannot read it ({e.strerror or e})") from None
    except Exception as e:  # a damaged header can raise anything from a format plugin
        raise ImageError(f"{path}: not a readable image ({type(e).__name__})") from None


def check_size(path: Path | str, width: int, height: int) -> None:
    """ImageError unless a picture of width x height is within the limits."""
    if width < MIN_SIDE or height < MIN_SIDE:
        raise ImageError(f"{path}: {width}x{height} is too small (at least {MIN_SIDE}x{MIN_SIDE})")
    if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
        raise ImageError(
            f"{path}: {width}x{height} is too large (at most {MAX_SIDE} pixels a side and "
            f"{MAX_PIXELS // 1_000_000} megapixels); scale it down"
        )


def load_image(path: str | Path) -> np.ndarray:
    """The image as BGR uint8, or ImageError (one line) for a missing, unreadable, tiny or huge one."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError as e:
        raise ImageError(f"{p}: cannot read it ({e.strerror or e})") from None
    if st.st_size > MAX_FILE_BYTES:
        raise ImageError(f"{p}: {st.st_size // (1 << 20)} MB is too large for a photo (at most "
                         f"{MAX_FILE_BYTES >> 20} MB)")
    check_size(p, *image_size(p))
    try:
        data = p.read_bytes()
    except OSError as e:
        raise ImageError(f"{p}: cannot read it ({e.strerror or e})") from None
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.ndim != 3:
        raise ImageError(f"{p}: not a readable image")
    check_size(p, image.shape[1], image.shape[0])
    return image
