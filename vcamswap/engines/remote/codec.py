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


def decode_jpeg(data: bytes, size: int = SWAP_SIZE) -> np.ndarray:
    """A size x size BGR crop from JPEG bytes; CodecError for anything else (never a huge or odd image)."""
    if not data or len(data) > 4 * RAW_BYTES:
        raise CodecError(f"a crop of {len(data)} bytes is not a JPEG of a {size}x{size} crop")
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
