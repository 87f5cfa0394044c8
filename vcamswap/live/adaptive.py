"""Adaptive quality: when the pipeline cannot keep the target fps, step the preset's knobs down; when there is
headroom again, step them back up.

It is owned by the live loop, which feeds it the busy time of each frame (pipeline + outputs, not the wait
for the camera) and applies it to the preset of the next frame. The load is the mean busy time over recent
frames divided by the frame budget (1 / target fps): the mean, because with frame skipping most frames are
cheap and every k-th is expensive, and the mean is what sets the fps.

Hysteresis keeps it from oscillating: it steps down as soon as the load has been over `down` for a few
frames, but up only after a long stretch under `up` (a wide gap between the two), only when the load last
measured at the better level fitted too, and after a step up that had to be undone the wait before the
next try doubles.

It counts faces: each frame's busy time comes with the number of faces swapped in it. A change in that number
is a change in the work per frame, not in the machine's speed, so the measurement restarts (a second person
walking in is judged on frames with two faces, after `settle` of them, not averaged with the one-face past);
what a step down bought is remembered per number of faces; and frames without a face never step quality up,
since they measure nothing of the swap's cost: when the face comes back, the level is one known to fit.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace

from vcamswap.choices import MODEL_STEP_DOWN, SWAP_MODELS, SwapModelName
from vcamswap.presets import BOOSTS, Preset

Knobs = Callable[[Preset], Preset]


@dataclass(frozen=True)
class Step:
    name: str
    apply: Knobs


def _swap_more(p: Preset) -> Preset:
    return replace(p, swap_interval=p.swap_interval + 1)


def _enhancer_off_or_swap_more(p: Preset) -> Preset:
    """The face enhancer, when it runs, is the dearest and least visible work: it goes first. Without it
    this is the ladder's usual first step."""
    return replace(p, enhance_every=0) if p.enhance_every > 0 else _swap_more(p)


def _detect_less(p: Preset) -> Preset:
    return replace(p, detect_interval=min(p.detect_interval * 2, 32))


def _detector_smaller(p: Preset) -> Preset:
    return replace(p, det_size=max(160, p.det_size // 2 if p.det_size > 320 else p.det_size - 64))


def _crop_smaller(p: Preset) -> Preset:
    return replace(p, crop_size=max(128, (int(p.crop_size * 0.75) // 16) * 16))


# Cheapest visible loss first: dropping the enhancer only softens detail; skipping the engine on some frames
# re-pastes the last swap at the current pose, which is hard to see; a smaller crop is the most visible, so it
# comes last.
LADDER: tuple[Step, ...] = (
    Step("enhancer off (else swap interval +1)", _enhancer_off_or_swap_more),
    Step("detect interval x2", _detect_less),
    Step("detector size down", _detector_smaller),
    Step("swap interval +1", _swap_more),
    Step("crop size down", _crop_smaller),
    Step("swap interval +1", _swap_more),
    Step("detect interval x2", _detect_less),
    Step("crop size down", _crop_smaller),
)


def _boost_down(p: Preset) -> Preset:
    return replace(p, boost=max(BOOSTS[0], p.boost // 2))


BOOST_DOWN = Step("boost down", _boost_down)


def model_steps(model: str, models: Collection[str]) -> tuple[Step, ...]:
    """The lighter models of the same family that `model` steps down to (MODEL_STEP_DOWN), lightest last, each
    only when it is among `models` (the installed ones of an engine that runs them)."""
    steps: list[Step] = []
    lighter = next((MODEL_STEP_DOWN[m] for m in MODEL_STEP_DOWN if m == model), None)
    while lighter is not None:
        if lighter in models:
            steps.append(Step(f"model {lighter}", _use_model(lighter)))
        lighter = MODEL_STEP_DOWN.get(lighter)
    return tuple(steps)


def _use_model(model: SwapModelName) -> Knobs:
    return lambda p: replace(p, model=model)


def ladder_for(preset: Preset, ladder: tuple[Step, ...] = LADDER, models: Collection[str] = ()) -> tuple[Step, ...]:
    """A lighter swap model first (ghost_3_256 -> ghost_2_256 -> ghost_1_256, those of `models` only: the
    face stays as sharp, the generator has fewer blocks), then the preset's pixel boost stepped down (512 -> 256
    -> 128): it multiplies every swap's model calls by 4 or 16, the dearest knob there is, and a webcam face
    rarely shows all of it; then the ladder."""
    boosts = (BOOST_DOWN,) * sum(1 for b in BOOSTS if b < preset.boost)
    return model_steps(preset.model, models) + boosts + ladder


def degrade(preset: Preset, level: int, ladder: tuple[Step, ...] = LADDER, models: Collection[str] = ()) -> Preset:
    """The preset with the first `level` steps of its ladder (ladder_for) applied."""
    return apply_steps(preset, ladder_for(preset, ladder, models), level)


def apply_steps(preset: Preset, steps: tuple[Step, ...], level: int) -> Preset:
    for step in steps[: max(0, level)]:
        preset = step.apply(preset)
    return preset


@dataclass(frozen=True)
class Change:
    frame: int
    level: int
    load: float  # the load that triggered it
    reason: str  # "down" | "up" | "preset" | "engine"


class AdaptiveQuality:
    def __init__(
        self,
        target_fps: float,
        *,
        down: float = 0.9,
        up: float = 0.6,
        settle: int = 8,
        window: int = 30,
        hold_up: int = 90,
        ladder: tuple[Step, ...] = LADDER,
        enabled: bool = True,
        explicit_target: bool = True,
    ) -> None:
        if target_fps <= 0:
            raise ValueError(f"target fps must be positive, got {target_fps}")
        if not 0 < up < down:
            raise ValueError(f"need 0 < up < down, got up={up} down={down}")
        self.target_fps = target_fps
        self.explicit_target = explicit_target  # False: follow the source's fps once it is known
        self.down, self.up = down, up
        self.settle, self.window = settle, window
        self.hold_up_base = hold_up
        self.ladder = ladder
        self._steps = ladder  # the ladder of the preset in force, with its boost steps (ladder_for)
        self.enabled = enabled
        self.level = 0
        self.frames = 0
        self.changes: list[Change] = []
        self._times: deque[float] = deque(maxlen=window)
        self._since_change = 0
        self._calm = 0  # frames in a row with the load under `up`
        # per level: calm frames needed before stepping up
        self._hold_up = [hold_up] * (len(ladder) + len(BOOSTS) + len(SWAP_MODELS))
        self._gain: dict[tuple[int, int], float] = {}  # per (level, faces): load one level better / load here
        self._pending: tuple[int, float] | None = None  # (level stepped down to, load before the step)
        self._base: tuple[object, ...] | None = None  # what the ladder in force was made for
        self._faces = 1
        # The swap models it may step down to: the installed ones while the engine runs them (the live loop
        # says so every frame), none otherwise.
        self.models: tuple[str, ...] = ()  # faces per frame the current measurement is made with

    def set_source_fps(self, fps: float) -> None:
        """The camera's real fps, known once it is open; the target unless one was given."""
        if not self.explicit_target and fps > 0:
            self.target_fps = fps

    @property
    def budget(self) -> float:
        return 1.0 / self.target_fps

    @property
    def load(self) -> float:
        """Mean busy time of the frames since the last change (up to `window`), over the frame budget."""
        if not self._times:
            return 0.0
        return (sum(self._times) / len(self._times)) / self.budget

    def __call__(self, preset: Preset) -> Preset:
        """The chosen preset, degraded to the current level (the live loop applies it to every frame)."""
        base = (preset.name, preset.model, preset.boost, self.models)
        if self._base != base:
            # Another preset, model or boost was picked, or the models at hand changed: the ladder is another
            # one, tried from full quality.
            if self._base is not None and self.level:
                self._set_level(0, self.load, "preset")
            self._base = base
            self._steps = ladder_for(preset, self.ladder, self.models)
        return apply_steps(preset, self._steps, self.level) if self.enabled else preset

    def restart(self) -> None:
        """Another engine took over: what was measured was the old engine's; start again from full quality."""
        if self.level:
            self._set_level(0, self.load, "engine")
        self._gain.clear()
        self._pending = None
        self._base = None
        self._restart()

    def observe(self, busy_seconds: float, faces: int = 1) -> None:
        """One frame's busy time (processing and output, not the wait for the next camera frame) and the
        number of faces swapped in it."""
        if faces != self._faces:
            self._faces = faces
            self._restart()
            self._pending = None  # the step's gain would be measured against another amount of work
        self.frames += 1
        self._since_change += 1
        self._times.append(max(0.0, busy_seconds))
        if not self.enabled or self._since_change < self.settle:
            return
        load = self.load
        if self._since_change == self.window and self._pending and self._pending[0] == self.level:
            self._gain[(self.level, faces)] = self._pending[1] / max(load, 1e-6)  # what the last step down bought
            self._pending = None
        if load > self.down and self.level < len(self._steps):
            self._set_level(self.level + 1, load, "down")
            return
        self._calm = self._calm + 1 if load < self.up and faces > 0 else 0
        if self.level > 0 and self._calm >= self._hold_up[self.level] and self.predicted_up() < self.down * 0.9:
            self._set_level(self.level - 1, load, "up")

    def predicted_up(self) -> float:
        """The load expected one level better: today's load times what that step was measured to cost."""
        return self.load * self._gain.get((self.level, self._faces), 1.0)

    def _set_level(self, level: int, load: float, reason: str) -> None:
        last = self.changes[-1] if self.changes else None
        if (
            reason == "down"
            and last is not None
            and last.reason == "up"
            and last.level == level - 1
            and self.frames - last.frame < 4 * self.hold_up_base
        ):
            # The last step up had to be undone soon: wait twice as long before trying it again.
            self._hold_up[level] = min(self._hold_up[level] * 2, self.hold_up_base * 16)
        self._pending = (level, load) if reason == "down" else None
        self.level = level
        self.changes.append(Change(self.frames, level, load, reason))
        self._restart()

    def _restart(self) -> None:
        self._times.clear()
        self._since_change = 0
        self._calm = 0
