"""How the aligned crop travels: raw pixels or JPEG, in both directions, with the model names of each.

The wire contract shared by the client (engines.remote) and the server (vcamswap.serve):

* `vcamswap_source`: `crop` UINT8 [112,112,3] (the source face aligned to the ArcFace template, BGR) ->
  `latent` FP32 [512], the swap model's source input; both sides key it by `digest(crop)`.
* `vcamswap_swap` (raw): `crop` UINT8 [128,128,3] BGR + `latent` FP32 [512] -> `swapped` UINT8 [128,128,3].
* `vcamswap_swap_jpeg`: `crop` UINT8 [-1] (the bytes of a JPEG of the crop) + `latent` FP32 [1,512] +
  `quality` INT32 [1] -> `swapped` UINT8 [-1] (a JPEG at that quality). Not batched (sizes differ per
  request); served by `vcamswap serve` only (an exported repository has no Python to decode images).

The raw models are batched: the client sends a leading batch dimension of 1, the server's dynamic batcher
joins requests of several clients into one model call.
"""

from __future__ import annotations

import hashlib

import cv2
import numpy as np

from vcamswap.choices import Codec, CodecError

SWAP_SIZE = 128
ARC_SIZE = 112
LATENT_SIZE = 512
SOURCE_MODEL = "vcamswap_source"
SWAP_MODEL = "vcamswap_swap"
SWAP_JPEG_MODEL = "vcamswap_swap_jpeg"
RAW_BYTES = SWAP_SIZE * SWAP_SIZE * 3


def swap_model(c: Codec) -> str:
    """The swap model that takes crops sent this way."""
    return SWAP_MODEL if c.kind == "raw" else SWAP_JPEG_MODEL


def encode_jpeg(crop: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise CodecError("the crop could not be encoded as JPEG")
    return buf.tobytes()


# Start-of-frame markers (baseline, extended, progressive, lossless; Huffman or arithmetic): they hold the size.
SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RST0-7: no length field


def jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) a JPEG declares in its frame header, read without decoding; CodecError if there is none."""
    if data[:2] != b"\xff\xd8":
        raise CodecError("the crop is not a JPEG")
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            break
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in STANDALONE:
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no frame header came first
            break
        length = int.from_bytes(data[i + 2:i + 4], "big")
        if marker in SOF_MARKERS and length >= 7 and i + 9 <= len(data):
            return int.from_bytes(data[i + 7:i + 9], "big"), int.from_bytes(data[i + 5:i + 7], "big")
        if length < 2:
            break
        i += 2 + length
    raise CodecError("the crop is not a JPEG (no frame header)")


def decode_jpeg(data: bytes, size: int = SWAP_SIZE) -> np.ndarray:
    """A size x size BGR crop from JPEG bytes; CodecError for anything else (never a huge or odd image).

    The size the JPEG declares is checked before it is decoded: a few hundred bytes can declare 20000x20000,
    which the decoder would allocate in full (the other side may be hostile, in either direction)."""
    if not data or len(data) > 4 * RAW_BYTES:
        raise CodecError(f"a crop of {len(data)} bytes is not a JPEG of a {size}x{size} crop")
    w, h = jpeg_size(data)
    if (w, h) != (size, size):
        raise CodecError(f"the crop is not a {size}x{size} JPEG ({w}x{h})")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.shape != (size, size, 3):
        got = "no image" if image is None else f"{image.shape[1]}x{image.shape[0]}"
        raise CodecError(f"the crop is not a {size}x{size} JPEG ({got})")
    return image


def check_crop(crop: np.ndarray, size: int = SWAP_SIZE) -> np.ndarray:
    """The crop as a contiguous size x size x 3 uint8 array; CodecError otherwise."""
    if crop.dtype != np.uint8 or crop.shape != (size, size, 3):
        raise CodecError(f"a crop must be {size}x{size}x3 uint8, got {crop.shape} {crop.dtype}")
    return np.ascontiguousarray(crop)


def digest(aligned: np.ndarray) -> str:
    """The key of a source face on both sides: a hash of its aligned crop."""
    return hashlib.sha256(np.ascontiguousarray(aligned).tobytes()).hexdigest()[:32]
