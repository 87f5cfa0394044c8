"""The one mutable object shared by the pipeline, tray, hotkeys and control socket.

Everyone changes state through these methods; the pipeline reads an immutable snapshot once per frame,
so a change applies at the next frame and never half-way through one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from vcamswap.choices import DEFAULT_SWAP_MODEL, OCCLUSION_KINDS, TARGETS, check_engine, check_model
from vcamswap.modelstore.installed import ModelFiles, files_of, not_installed
from vcamswap.presets import PRESETS, check_boost, next_preset, parse_likeness
from vcamswap.settings import MAX_ENHANCE_EVERY

if TYPE_CHECKING:
    from vcamswap.settings import Settings

DEFAULT_LABEL = "AI face"


@dataclass(frozen=True)
class ControlState:
    swap_enabled: bool = True
    face: str | None = None  # name of the source face in the faces folder
    preset: str = "balanced"
    likeness: float = 0.0  # how much of the source person the lite engine shows, 0..1 (docs/lite.md)
    targets: str = "one"  # one of TARGETS
    bypass: bool = False  # held hotkey: show the real face while held
    paused: bool = False  # camera released, a still "paused" frame is published
    preview: bool = False
    running: bool = True
    faces: tuple[str, ...] = field(default_factory=tuple)  # the faces available, for next/prev and menus
    label_on: bool = False  # the disclosure label in a corner of Swap Cam while swapping
    label_text: str = DEFAULT_LABEL
    # (name, what limits that photo) for the faces whose photo has a limit worth saying (engines.lite.quality)
    face_notes: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    # The user's compose knobs over every preset, chosen while running (None: the settings' or the preset's)
    occlusion: str | None = None  # one of OCCLUSION_KINDS
    enhance: int | None = None  # the face enhancer every N swaps, 0 = off
    boost: int | None = None  # neural engine's pixel boost, one of BOOSTS
    model: str = DEFAULT_SWAP_MODEL  # the neural engine's swap model, one of SWAP_MODELS
    swap_models: tuple[ModelFiles, ...] = ()  # each swap model and the files it lacks; () until looked at
    engine: str = "lite"  # the engine in force
    engine_wanted: str | None = None  # an engine asked for while running, being built off the live loop
    engine_problem: str | None = None  # why the engine asked for last could not be built

    @property
    def swapping(self) -> bool:
        return self.swap_enabled and not self.bypass and not self.paused and self.face is not None


def initial_state(settings: Settings) -> ControlState:
    """The controls at start, from the settings."""
    return ControlState(swap_enabled=settings.swap, preset=settings.preset, likeness=settings.likeness,
                        targets=settings.targets, model=settings.model, engine=settings.engine,
                        label_on=bool(settings.label),
                        label_text=settings.label or DEFAULT_LABEL)


LIKENESS_STEPS = (0.0, 0.25, 0.5, 0.75, 1.0)  # the tray's choices; any value 0..1 is accepted


def parse_count(value: int | str, what: str, top: int) -> int:
    """A whole number 0..top from a number or its text; a clear one-line error otherwise."""
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ValueError(f"{what} must be a whole number from 0 to {top}, not {value!r}") from None
    if not 0 <= number <= top:
        raise ValueError(f"{what} must be from 0 to {top}, not {value!r}")
    return number


Listener = Callable[[ControlState, ControlState], None]


class Controls:
    def __init__(self, state: ControlState | None = None) -> None:
        self._lock = threading.Lock()
        self._state = state or ControlState()
        self._listeners: list[Listener] = []
        self._stopped = threading.Event()

    def snapshot(self) -> ControlState:
        with self._lock:
            return self._state

    def subscribe(self, listener: Listener) -> None:
        """listener(old, new) runs on the changing thread after each change; keep it short."""
        with self._lock:
            self._listeners.append(listener)

    def _update(self, **changes: object) -> ControlState:
        return self._update_from(lambda _: changes)

    def _update_from(self, changes_of: Callable[[ControlState], dict[str, object]]) -> ControlState:
        """Apply the changes computed from the state under the lock (a read-then-write no other change splits)."""
        with self._lock:
            old = self._state
            new = replace(old, **changes_of(old))  # type: ignore[arg-type]
            self._state = new
            listeners = list(self._listeners)
        if new != old:
            for listener in listeners:
                listener(old, new)
        if not new.running:
            self._stopped.set()
        return new

    def toggle(self) -> ControlState:
        with self._lock:
            enabled = not self._state.swap_enabled
        return self._update(swap_enabled=enabled)

    def set_swap(self, enabled: bool) -> ControlState:
        return self._update(swap_enabled=enabled)

    def set_bypass(self, held: bool) -> ControlState:
        return self._update(bypass=held)

    def set_paused(self, paused: bool) -> ControlState:
        return self._update(paused=paused)

    def set_preview(self, on: bool) -> ControlState:
        return self._update(preview=on)

    def set_label(self, on: bool) -> ControlState:
        return self._update(label_on=on)

    def set_preset(self, name: str) -> ControlState:
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
        return self._update(preset=name)

    def set_likeness(self, value: float | str) -> ControlState:
        return self._update(likeness=parse_likeness(value))

    def set_targets(self, which: str) -> ControlState:
        if which not in TARGETS:
            raise ValueError(f"unknown targets {which!r}; choose one of {', '.join(TARGETS)}")
        return self._update(targets=which)

    def set_occlusion(self, kind: str) -> ControlState:
        if kind not in OCCLUSION_KINDS:
            raise ValueError(f"unknown occlusion {kind!r}; choose one of {', '.join(OCCLUSION_KINDS)}")
        return self._update(occlusion=kind)

    def set_enhance(self, every: int | str) -> ControlState:
        return self._update(enhance=parse_count(every, "enhance (0 = off, N = every N swaps)", MAX_ENHANCE_EVERY))

    def set_boost(self, boost: int | str) -> ControlState:
        try:
            size = int(str(boost).strip())
        except ValueError:
            raise ValueError(f"boost must be 128, 256 or 512, not {boost!r}") from None
        return self._update(boost=check_boost(size))

    def set_swap_models(self, models: Sequence[ModelFiles]) -> ControlState:
        """What the models folder holds now (the daemon looks again when asked and every few seconds)."""
        return self._update(swap_models=tuple(models))

    def set_model(self, name: str, check: bool = True) -> ControlState:
        """The swap model; refused in one line, the current one staying, when its files are not installed.
        `check` False: the start's fallback, taken whether or not its files are there."""
        model = check_model(name)
        files = files_of(self.snapshot().swap_models, model)
        if check and files is not None and not files.installed:
            raise ValueError(not_installed(model, files.missing))
        return self._update(model=model)

    def set_engine(self, name: str) -> ControlState:
        """Ask for an engine: live.switch builds it off the loop and swaps it in (engine_ready) or says why it
        cannot (engine_failed); asking for the engine in force cancels a build under way."""
        engine = check_engine(name)
        return self._update_from(lambda s: {"engine_wanted": None if engine == s.engine else engine,
                                            "engine_problem": None})

    def engine_ready(self, name: str) -> ControlState:
        """The engine `name` is in force from this frame on."""
        return self._update_from(lambda s: {"engine": name, "engine_problem": None,
                                            "engine_wanted": None if s.engine_wanted == name else s.engine_wanted})

    def engine_failed(self, name: str, problem: str) -> ControlState:
        """The engine `name` could not be built; the one in force stays (nothing changes if it was no longer
        wanted)."""
        return self._update_from(lambda s: {"engine_wanted": None, "engine_problem": problem}
                                 if s.engine_wanted == name else {})

    def cycle_preset(self, step: int = 1) -> ControlState:
        return self._update(preset=next_preset(self.snapshot().preset, step))

    def set_faces(self, names: Sequence[str], moved: Callable[[str], str | None] | None = None) -> ControlState:
        """The faces folder changed: keep the current face if it is still there, else follow it to its new
        name (`moved`: the name its photo has now, for a renamed photo), else take the next one."""
        names = tuple(names)
        with self._lock:
            cur = self._state.face
            old_names = self._state.faces
        renamed = moved(cur) if moved is not None and cur is not None and cur not in names else None
        face = cur if cur in names else renamed if renamed in names else _successor(cur, old_names, names)
        return self._update(faces=names, face=face)

    def set_face_notes(self, notes: Sequence[tuple[str, str]]) -> ControlState:
        return self._update(face_notes=tuple(notes))

    def set_face(self, name: str) -> ControlState:
        faces = self.snapshot().faces
        if faces and name not in faces:
            raise ValueError(f"no face named {name!r}; faces: {', '.join(faces)}")
        return self._update(face=name)

    def next_face(self, step: int = 1) -> ControlState:
        with self._lock:
            faces, cur = self._state.faces, self._state.face
        if not faces:
            return self.snapshot()
        i = faces.index(cur) if cur is not None and cur in faces else (-step if step > 0 else 0)
        return self._update(face=faces[(i + step) % len(faces)])

    def stop(self) -> ControlState:
        return self._update(running=False)

    def wait_stopped(self, timeout: float | None = None) -> bool:
        return self._stopped.wait(timeout)


def _successor(cur: str | None, old: Sequence[str], new: Sequence[str]) -> str | None:
    """The face that followed `cur` in the old list and still exists; else the first face."""
    if not new:
        return None
    if cur is not None and cur in old:
        i = list(old).index(cur)
        for name in list(old[i + 1 :]) + list(old[:i]):
            if name in new:
                return name
    return new[0]
