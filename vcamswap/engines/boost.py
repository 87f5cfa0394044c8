"""Pixel boost: the 128 px swap model run on a larger aligned crop, split into sub-pixel tiles.

A crop of 128 * k pixels (k = 2 for 256, 4 for 512) is cut into k * k tiles of 128: tile (i, j) holds every
k-th pixel from row i and column j, `crop[i::k, j::k]`. Each tile is the whole face at 128 px, shifted by a
fraction of a pixel, which is what the model was trained on; swapping every tile and interleaving them again
gives a face of 128 * k pixels whose detail comes from k * k model calls (4x or 16x the work per face).
The crop is aligned to the same template, scaled by k (neural.swap_template(size)).
"""

from __future__ import annotations

import numpy as np

from vcamswap.presets import BOOSTS, check_boost

MODEL_SIZE = 128  # inswapper_128's input and output side
__all__ = ["BOOSTS", "MODEL_SIZE", "check_boost", "explode", "factor", "implode", "step_down", "tiles_of"]


def factor(size: int) -> int:
    """k for a crop of `size` pixels (128 * k); ValueError for a size that is not a boost's."""
    if size not in BOOSTS:
        sizes = ", ".join(f"{b}x{b}" for b in BOOSTS)
        raise ValueError(f"aligned crop must be {sizes}, got {size}x{size}")
    return size // MODEL_SIZE


def tiles_of(size: int) -> int:
    """Model calls per face for a crop of `size` pixels."""
    return factor(size) ** 2


def step_down(boost: int) -> int:
    """The next smaller boost (512 -> 256 -> 128), 128 staying 128."""
    return max(MODEL_SIZE, boost // 2)


def implode(crop: np.ndarray, k: int) -> np.ndarray:
    """(128k, 128k, C) -> (k*k, 128, 128, C): tile i*k + j is crop[i::k, j::k]."""
    side, channels = crop.shape[0] // k, crop.shape[2]
    tiles = crop.reshape(side, k, side, k, channels).transpose(1, 3, 0, 2, 4)
    return tiles.reshape(k * k, side, side, channels)


def explode(tiles: np.ndarray, k: int) -> np.ndarray:
    """The inverse of implode: (k*k, 128, 128, C) -> (128k, 128k, C), each tile back on its sub-pixel grid."""
    side, channels = tiles.shape[1], tiles.shape[3]
    crop = tiles.reshape(k, k, side, side, channels).transpose(2, 0, 3, 1, 4)
    return np.ascontiguousarray(crop.reshape(side * k, side * k, channels))
