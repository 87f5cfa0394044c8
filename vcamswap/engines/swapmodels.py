"""What differs between the neural engine's swap models: crop size, template, the files each needs, boost.

The engine (engines.inswapper) runs whichever model `preset.model` names; this table is where a model's
geometry and files are looked up. Detection (det_10g) and the source's ArcFace embedding (w600k_r50) are
shared by every model.

* inswapper_128: crop 128 (256 / 512 with pixel boost), ArcFace's 112 px template + 8 px in x, input RGB
  [0, 1] at 128, source = (embedding @ emap), L2-normalised.
* ghost_N_256: crop 224, insightface's frontal set-2 template x 2, input RGB [-1, 1] resized to 256, source =
  crossface_ghost(raw embedding), not normalised.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from vcamswap.choices import DEFAULT_SWAP_MODEL, SwapModelName, check_model
from vcamswap.engines import boost, ghost
from vcamswap.engines.neural import swap_template
from vcamswap.modelstore.installed import files_for_model
from vcamswap.presets import Preset


class SwapModelSpec(NamedTuple):
    name: SwapModelName
    boosts: bool  # follows the preset's pixel boost (a 128 px model tiled over a larger crop)


SWAP_MODEL_SPECS: dict[SwapModelName, SwapModelSpec] = {
    "inswapper_128": SwapModelSpec("inswapper_128", True),
    # GHOST already works at 256 (its crop is 224, as the reference's): no boost.
    **{m: SwapModelSpec(m, False) for m in ghost.GHOST_MODELS},
}


def spec_of(name: str | None) -> SwapModelSpec:
    """The model's spec (ValueError with one line for an unknown name); None: the default model."""
    return SWAP_MODEL_SPECS[check_model(name or DEFAULT_SWAP_MODEL)]


def files_of(name: str | None) -> tuple[str, ...]:
    """Every manifest name the model needs to run (modelstore.installed keeps the one list)."""
    return files_for_model(spec_of(name).name)


def is_ghost(name: str) -> bool:
    return name in ghost.GHOST_MODELS


def crop_size(preset: Preset) -> int:
    """The aligned crop the preset's model works in: GHOST's 224, or inswapper's boost (128, 256, 512)."""
    return ghost.CROP_SIZE if is_ghost(preset.model) else boost.check_boost(preset.boost)


def template(size: int) -> np.ndarray:
    """The 5 keypoints of a crop of `size`. The sizes do not overlap (224 is GHOST's, 128/256/512
    inswapper's boosts), so the size alone names the model the crop was made for."""
    return ghost.ghost_template(size) if size == ghost.CROP_SIZE else swap_template(size)
