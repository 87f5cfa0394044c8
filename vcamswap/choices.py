"""The words a setting or an option may take, in one place: the settings validate them, the command line
offers them, and the stages that act on them take their types from here.

Nothing here imports the stages (the presets' knobs, the tracker, the remote engine's wire contract), so the
settings stay light: reading a settings file loads no image or network library.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

PresetName = Literal["fast", "balanced", "quality"]
PRESET_NAMES: tuple[PresetName, ...] = ("fast", "balanced", "quality")

# What keeps the camera's occluders (hands, glasses, a mug) in front of the swap: nothing, the camera's own
# skin model (compose.skin, CPU), the optional occluder model on onnxruntime (`vcamswap models download
# occluder`), or the optional face parser (`vcamswap models download parser`), which swaps only the face's
# skin, brows, eyes, nose and lips and keeps hair, glasses, a hat and all else the camera's.
OcclusionKind = Literal["off", "fast", "model", "parser"]
OCCLUSION_KINDS: tuple[OcclusionKind, ...] = ("off", "fast", "model", "parser")

Targets = Literal["one", "all"]  # the face of the frame (sticky), or every face in view
TARGETS: tuple[Targets, ...] = ("one", "all")

# The neural swap model's precisions (engines.precision chooses the file).
Precision = Literal["auto", "fp32", "fp16"]
PRECISIONS: tuple[Precision, ...] = ("auto", "fp32", "fp16")

# The neural engine's swap models, by the name the manifest gives their weights (engines.swapmodels runs each,
# `vcamswap models download NAME` fetches it). inswapper_128 is the default: the one model the neural engine
# has always run. GHOST's generators are sber-swap's AEI-Net with 1, 2 or 3 AAD blocks at 256 px.
SwapModelName = Literal["inswapper_128", "ghost_1_256", "ghost_2_256", "ghost_3_256"]
SWAP_MODELS: tuple[SwapModelName, ...] = ("inswapper_128", "ghost_1_256", "ghost_2_256", "ghost_3_256")
DEFAULT_SWAP_MODEL: SwapModelName = "inswapper_128"
# What adaptive quality steps a model down to when a frame does not fit (a lighter model of the same family).
MODEL_STEP_DOWN: dict[SwapModelName, SwapModelName] = {"ghost_3_256": "ghost_2_256", "ghost_2_256": "ghost_1_256"}


def check_model(name: str) -> SwapModelName:
    """The model's name, or ValueError with one line unless it is one of SWAP_MODELS."""
    for m in SWAP_MODELS:
        if name == m:
            return m
    raise ValueError(f"unknown model {name!r}; choose one of {', '.join(SWAP_MODELS)}")


# The swap engines (engines.ENGINES builds them); a running daemon switches between them (live.switch).
EngineName = Literal["lite", "inswapper", "remote"]
ENGINE_NAMES: tuple[EngineName, ...] = ("lite", "inswapper", "remote")
# The engines that run the swap model chosen (SWAP_MODELS); the others swap with their own.
MODEL_ENGINES: tuple[EngineName, ...] = ("inswapper",)


def check_engine(name: str) -> EngineName:
    """The engine's name, or ValueError with one line unless it is one of ENGINE_NAMES."""
    for e in ENGINE_NAMES:
        if name == e:
            return e
    raise ValueError(f"unknown engine {name!r}; choose one of {', '.join(ENGINE_NAMES)}")


# What the remote engine's frames get while the server is away: the camera's face, or a swap here (lite).
REMOTE_FALLBACKS = ("passthrough", "lite")


class CodecError(ValueError):
    """A crop that cannot be encoded or decoded (bad bytes from the other side, a bad setting)."""


class Codec(NamedTuple):
    """How the remote engine's crops travel (engines.remote.codec encodes them and names the model)."""

    kind: str  # "raw" | "jpeg"
    quality: int  # JPEG quality 1..100; 0 for raw

    def __str__(self) -> str:
        return "raw" if self.kind == "raw" else f"jpeg:{self.quality}"


def parse_codec(text: str) -> Codec:
    """`raw` or `jpeg:Q` (Q 1..100; `jpeg` alone is quality 90)."""
    t = text.strip().lower()
    if t == "raw":
        return Codec("raw", 0)
    if t == "jpeg" or t.startswith("jpeg:"):
        q = t.partition(":")[2] or "90"
        if not q.isdigit() or not 1 <= int(q) <= 100:
            raise CodecError(f"remote codec {text!r}: the JPEG quality must be a whole number 1 to 100")
        return Codec("jpeg", int(q))
    raise CodecError(f"remote codec {text!r}: choose raw or jpeg:QUALITY (e.g. jpeg:90)")
