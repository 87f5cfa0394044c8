"""Runtime quality presets. Every knob here can change between two frames without a restart."""

from __future__ import annotations

from dataclasses import dataclass, replace

from vcamswap.choices import DEFAULT_SWAP_MODEL, OCCLUSION_KINDS, OcclusionKind, SwapModelName

# The lite engine's likeness when the user has not chosen one (docs/lite.md says how it was chosen).
DEFAULT_LIKENESS = 0.0
# Pixel boost of the neural engine (engines.boost): the swapped face's side in pixels, 1, 4 or 16 model calls.
BOOSTS: tuple[int, ...] = (128, 256, 512)


def check_boost(boost: int) -> int:
    """The boost itself, or ValueError with one line unless it is one of BOOSTS."""
    if boost not in BOOSTS:
        raise ValueError(f"boost must be one of {', '.join(map(str, BOOSTS))}, not {boost}")
    return boost


def parse_likeness(value: float | str) -> float:
    """A likeness from a number or its text, 0..1; a clear one-line error otherwise."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"likeness must be a number from 0 to 1, not {value!r}") from None
    if not 0.0 <= number <= 1.0:  # also rejects nan
        raise ValueError(f"likeness must be from 0 to 1, not {value!r}")
    return number


@dataclass(frozen=True)
class Preset:
    name: str
    det_size: int  # detector input size (SCRFD); BlazeFace is fixed at 128
    detect_interval: int  # run the detector every N frames (or at once when the track is lost)
    swap_interval: int  # run the engine every k-th frame, re-paste the last swap in between
    color_match: bool
    mask_feather: float  # feather width as a fraction of the aligned crop size
    crop_size: int  # aligned crop size for the lite engine (the neural engine is fixed at 128)
    smoothing: float  # 0 = raw keypoints, 1 = heavy smoothing (Kalman measurement-noise scale)
    mouth_mask: bool  # let the real mouth show through (neural engine)
    # A preset may run on a CPU with either engine, so none needs an optional model: every preset keeps the
    # camera's occluders with the CPU skin model ("fast", what the lite engine is tuned with) and runs no
    # enhancer (0; GFPGAN costs seconds per call on a CPU). `run --occlusion model` and `--enhance N` turn
    # them on for a GPU.
    occlusion: OcclusionKind = "fast"
    enhance_every: int = 0  # run the face enhancer every N engine calls, re-use its detail between; 0 = off
    # How much of the source person the lite engine shows, 0..1 (docs/lite.md): the user's setting, applied to
    # every preset.
    likeness: float = 0.0
    boost: int = 128  # neural engine: swapped face side, 128 (one model call), 256 (4 calls) or 512 (16)
    # Neural engine: the swap model in force (choices.SWAP_MODELS); the user's setting, which adaptive quality
    # may step down (choices.MODEL_STEP_DOWN).
    model: SwapModelName = DEFAULT_SWAP_MODEL

    def with_knobs(self, **knobs: object) -> Preset:
        return replace(self, **knobs)  # type: ignore[arg-type]


# Boost: inswapper_128 costs ~167 G multiply-adds a call, a second or more per face on a CPU, milliseconds on a
# GPU; 256 and 512 cost 4x and 16x (measured 3.9x and 16.6x, `python -m vcamswap.tools.bench.boost`). fast and
# balanced keep one call per face (128): they are what a CPU runs. quality takes 256: sharp where the face is
# large, real time on a GPU, and adaptive quality steps it back to 128 first when a frame does not fit. 512 only
# by asking (`--boost 512`): 16 calls a face rarely fit a 30 fps frame. The lite engine ignores it.
# Tuned with `vcamswap bench` (docs/presets.md has the measured table). Identity (dlib distance to the source)
# gets worse as the feather grows, since more of the camera's skin shows through the soft edge, so feathers stay
# small; steadiness barely depends on the detection interval because detections only check a followed face.
PRESETS: dict[str, Preset] = {
    "fast": Preset(
        "fast", det_size=320, detect_interval=8, swap_interval=2, color_match=True, mask_feather=0.05,
        crop_size=192, smoothing=0.6, mouth_mask=False,
    ),
    "balanced": Preset(
        "balanced", det_size=320, detect_interval=4, swap_interval=1, color_match=True, mask_feather=0.05,
        crop_size=256, smoothing=0.5, mouth_mask=False,
    ),
    "quality": Preset(
        "quality", det_size=640, detect_interval=2, swap_interval=1, color_match=True, mask_feather=0.06,
        crop_size=320, smoothing=0.4, mouth_mask=True, boost=256,
    ),
}


def with_overrides(
    preset: Preset, occlusion: str | None = None, enhance_every: int | None = None, boost: int | None = None
) -> Preset:
    """The preset with the user's `occlusion`, `enhance` and `boost` settings in force (None keeps the preset's)."""
    if occlusion is not None and occlusion not in OCCLUSION_KINDS:
        raise ValueError(f"unknown occlusion {occlusion!r}; choose one of {', '.join(OCCLUSION_KINDS)}")
    if enhance_every is not None and enhance_every < 0:
        raise ValueError(f"enhance must be 0 (off) or a number of frames, not {enhance_every}")
    knobs: dict[str, object] = {} if boost is None else {"boost": check_boost(boost)}
    if occlusion is not None:
        knobs["occlusion"] = occlusion
    if enhance_every is not None:
        knobs["enhance_every"] = enhance_every
    return preset.with_knobs(**knobs) if knobs else preset


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None


def next_preset(name: str, step: int = 1) -> str:
    names = list(PRESETS)
    i = names.index(name) if name in names else 0
    return names[(i + step) % len(names)]
