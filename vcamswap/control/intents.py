"""The one table of intents: what the control socket, the tray menu and the hotkeys can ask of the daemon.

Every intent is a change of the shared Controls (never a restart): `run(controls, "face", "next")`. The
socket offers the intents in SOCKET_COMMANDS by name; the tray and the hotkeys call the same entries.
"""

from __future__ import annotations

from collections.abc import Callable

from vcamswap.controls import Controls, ControlState

Intent = Callable[[Controls, "str | None"], ControlState]


def on_off(arg: str | None) -> bool:
    if arg in ("on", "true", "1"):
        return True
    if arg in ("off", "false", "0"):
        return False
    raise ValueError(f"expected on or off, got {arg!r}")


def _face(c: Controls, arg: str | None) -> ControlState:
    if not arg:
        raise ValueError("face: say next, prev or a face name")
    if arg == "next":
        return c.next_face(1)
    if arg in ("prev", "previous"):
        return c.next_face(-1)
    return c.set_face(arg)


def _stop(c: Controls, arg: str | None) -> ControlState:
    c.stop()
    return c.snapshot()


INTENTS: dict[str, Intent] = {
    "toggle": lambda c, _: c.toggle(),
    "swap": lambda c, arg: c.set_swap(on_off(arg)),
    "face": _face,
    "select_face": lambda c, arg: c.set_face(arg or ""),  # exactly this name (a menu entry)
    "next_face": lambda c, _: c.next_face(1),
    "prev_face": lambda c, _: c.next_face(-1),
    "preset": lambda c, arg: c.cycle_preset() if arg == "next" else c.set_preset(arg or ""),
    "cycle_quality": lambda c, _: c.cycle_preset(),
    "targets": lambda c, arg: c.set_targets(arg or ""),
    "likeness": lambda c, arg: c.set_likeness(arg or ""),
    "pause": lambda c, _: c.set_paused(True),
    "resume": lambda c, _: c.set_paused(False),
    "toggle_pause": lambda c, _: c.set_paused(not c.snapshot().paused),
    "preview": lambda c, arg: c.set_preview(on_off(arg)),
    "toggle_preview": lambda c, _: c.set_preview(not c.snapshot().preview),
    "bypass": lambda c, arg: c.set_bypass(on_off(arg)),
    "label": lambda c, arg: c.set_label(on_off(arg)),
    "toggle_label": lambda c, _: c.set_label(not c.snapshot().label_on),
    "occlusion": lambda c, arg: c.set_occlusion(arg or ""),
    "enhance": lambda c, arg: c.set_enhance(arg or ""),
    "boost": lambda c, arg: c.set_boost(arg or ""),
    "model": lambda c, arg: c.set_model(arg or ""),
    "engine": lambda c, arg: c.set_engine(arg or ""),
    "stop": _stop,
}

# What `vcamswap <command>` may send over the socket (ping and status are answered by the daemon itself).
# bypass: the hotkey's "real face while held", which the panel holds with a button or a key.
SOCKET_COMMANDS = ("status", "toggle", "swap", "face", "preset", "likeness", "targets", "pause", "resume", "preview",
                   "bypass", "label", "occlusion", "enhance", "boost", "model", "engine", "stop")


def run(controls: Controls, intent: str, arg: str | None = None) -> ControlState:
    """Apply one intent; ValueError (one line) for a bad argument."""
    return INTENTS[intent](controls, arg)


def bind(controls: Controls, intent: str, arg: str | None = None) -> Callable[[], ControlState]:
    """The intent as a callable without arguments, for a menu item or a hotkey."""
    return lambda: run(controls, intent, arg)


def controls_dict(s: ControlState) -> dict[str, object]:
    return {"swap": s.swap_enabled, "face": s.face, "preset": s.preset, "likeness": s.likeness,
            "targets": s.targets, "paused": s.paused,
            "label": s.label_text if s.label_on else None,
            "occlusion": s.occlusion, "enhance": s.enhance, "boost": s.boost, "model": s.model,
            "engine": s.engine, "engine_pending": s.engine_wanted, "engine_problem": s.engine_problem}
