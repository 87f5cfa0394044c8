"""Swap Mic: the user's microphone, delayed by as much as the video, so that lips and voice stay together.

The video reaches the call through capture, the swap and the virtual camera; the microphone would go
straight in. With PulseAudio or PipeWire (through its PulseAudio server), three modules make a microphone
named "Swap Mic":

    default mic --module-loopback (latency = the delay)--> vcamswap_mic_sink (module-null-sink)
    vcamswap_mic_sink.monitor --module-remap-source--> vcamswap_swap_mic, shown as "Swap Mic"

module-loopback holds its latency by resampling, so the delay is steady to a millisecond. A new delay is a
second loopback with the new latency: it starts silent (it first fills its own buffer), its volume rises
while the old one's falls, then the old one goes. No gap, no click. Our modules are known by their
arguments (our sink's and source's names), so a daemon that was killed leaves nothing the next one does not
find and remove.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("vcamswap.audio")

SINK = "vcamswap_mic_sink"
SOURCE = "vcamswap_swap_mic"
MIC_LABEL = "Swap Mic"
MARKER = "vcamswap_"
MIN_DELAY_MS, MAX_DELAY_MS = 10, 2000
FADE_S, FADE_STEPS = 0.3, 12
PACTL_TIMEOUT_S = 5.0


class AudioSyncUnavailable(Exception):
    """No Swap Mic here (no sound server, no pactl, a module refused); one-line reason."""


def parse_audio_sync(text: str | int | None) -> str | int:
    """'auto', 'off' or a fixed delay in ms; ValueError with one line otherwise."""
    value = "auto" if text is None else str(text).strip().lower()
    if value in ("auto", "off"):
        return value
    ms = value.removesuffix("ms").strip()
    if not ms.isdigit() or not MIN_DELAY_MS <= int(ms) <= MAX_DELAY_MS:
        raise ValueError(f"--audio-sync {text!r}: say auto, off or a delay in ms ({MIN_DELAY_MS}..{MAX_DELAY_MS})")
    return int(ms)


def pactl(*args: str) -> str:
    """pactl's output; AudioSyncUnavailable with its one-line complaint."""
    exe = shutil.which("pactl")
    if exe is None:
        raise AudioSyncUnavailable("pactl is not installed (apt install pulseaudio-utils)")
    try:
        r = subprocess.run([exe, *args], capture_output=True, text=True, timeout=PACTL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise AudioSyncUnavailable("the sound server does not answer") from None
    if r.returncode != 0:
        why = " ".join((r.stderr or r.stdout).split()) or f"exit status {r.returncode}"
        raise AudioSyncUnavailable(f"pactl {args[0]}: {why}")
    return r.stdout


def server_name() -> str:
    """'PulseAudio (on PipeWire 1.0.5)' or 'pulseaudio'; AudioSyncUnavailable when none answers."""
    try:
        info = pactl("info")
    except AudioSyncUnavailable as e:
        raise AudioSyncUnavailable(f"no PulseAudio or PipeWire answers ({e})") from None
    m = re.search(r"^Server Name:\s*(.+)$", info, re.MULTILINE)
    return m.group(1).strip() if m else "a PulseAudio server"


@dataclass(frozen=True)
class Module:
    index: int
    name: str
    args: str


def modules() -> list[Module]:
    out = []
    for line in pactl("list", "modules", "short").splitlines():
        parts = line.split("\t")
        if len(parts) >= 2 and parts[0].strip().isdigit():
            out.append(Module(int(parts[0]), parts[1].strip(), parts[2].strip() if len(parts) > 2 else ""))
    return out


def ours() -> list[Module]:
    """The modules we load: our sink, our source, the loopbacks into our sink (not other apps' users of them)."""
    mine = (f"sink_name={SINK}", f"source_name={SOURCE}", f"sink={SINK}")
    return [m for m in modules() if any(re.search(rf"(^|\s){re.escape(a)}(\s|$)", m.args) for a in mine)]


def remove_ours() -> int:
    """Unload every Swap Mic module (a killed daemon's too), newest first; how many there were."""
    found = sorted(ours(), key=lambda m: m.index, reverse=True)
    for m in found:
        try:
            pactl("unload-module", str(m.index))
        except AudioSyncUnavailable as e:  # already gone with its master
            log.debug("unloading module %d: %s", m.index, e)
    return len(found)


def _sink_input_of(module: int) -> int | None:
    current: int | None = None
    for line in pactl("list", "sink-inputs").splitlines():
        m = re.match(r"Sink Input #(\d+)", line.strip())
        if m:
            current = int(m.group(1))
        elif line.strip() == f"Owner Module: {module}" and current is not None:
            return current
    return None


def _volume(sink_input: int, share: float) -> None:
    pactl("set-sink-input-volume", str(sink_input), f"{round(share * 100)}%")


class SwapMic:
    """The three modules, and the delay they hold."""

    def __init__(self) -> None:
        self.mic: str | None = None
        self.delay_ms: int | None = None
        self._loopback: int | None = None
        self._lock = threading.Lock()

    def start(self, delay_ms: int) -> None:
        stale = remove_ours()
        if stale:
            log.info("removed %d Swap Mic module(s) left by an earlier run", stale)
        mic = pactl("get-default-source").strip()
        if not mic or mic.startswith(MARKER):
            raise AudioSyncUnavailable("no default microphone to delay (choose one in the sound settings)")
        self.mic = mic
        try:
            pactl("load-module", "module-null-sink", f"sink_name={SINK}",
                  f"sink_properties=\"device.description='{MIC_LABEL} (vcamswap internal)'\"")
            pactl("load-module", "module-remap-source", f"master={SINK}.monitor", f"source_name={SOURCE}",
                  f"source_properties=\"device.description='{MIC_LABEL}' device.icon_name=audio-input-microphone\"")
            self._loopback = self._load_loopback(delay_ms)
        except AudioSyncUnavailable:
            remove_ours()
            raise
        self.delay_ms = delay_ms

    def _load_loopback(self, delay_ms: int) -> int:
        assert self.mic is not None
        out = pactl("load-module", "module-loopback", f"source={self.mic}", f"sink={SINK}",
                    f"latency_msec={delay_ms}", "source_dont_move=true", "sink_dont_move=true",
                    "sink_input_properties=\"media.name='vcamswap_delay'\"")
        return int(out.strip())

    def set_delay(self, delay_ms: int) -> None:
        """Cross-fade to a loopback with the new latency."""
        with self._lock:
            old = self._loopback
            if old is None or delay_ms == self.delay_ms:
                return
            new = self._load_loopback(delay_ms)
            new_input = _sink_input_of(new)
            old_input = _sink_input_of(old)
            if new_input is not None:
                _volume(new_input, 0.0)  # still inside its silent start: nothing doubled is heard
            for step in range(1, FADE_STEPS + 1):
                time.sleep(FADE_S / FADE_STEPS)
                share = step / FADE_STEPS
                if new_input is not None:
                    _volume(new_input, share)
                if old_input is not None:
                    _volume(old_input, 1.0 - share)
            pactl("unload-module", str(old))
            self._loopback, self.delay_ms = new, delay_ms

    def alive(self) -> bool:
        return self._loopback is not None and any(m.index == self._loopback for m in modules())

    def stop(self) -> None:
        with self._lock:
            self._loopback = None
            remove_ours()


def target_delay_ms(latency_ms: float, fps: float) -> int:
    """What the video lags: capture -> publish, plus the frame the virtual camera holds (v4l2loopback and
    OBS's camera keep one)."""
    frame_ms = 1000.0 / fps if fps > 0 else 0.0
    return int(round(min(MAX_DELAY_MS, max(MIN_DELAY_MS, latency_ms + frame_ms))))


class AudioSync:
    """Keeps Swap Mic's delay on the video's: fixed, or following the measured latency (auto)."""

    POLL_S = 2.0
    FOLLOW_MS = 5  # a change smaller than this is left alone (well inside the 45 ms people notice)
    SMOOTHING = 0.3

    def __init__(self, mode: str | int, measure: Callable[[], tuple[float, float] | None]) -> None:
        self.mode = mode
        self.measure = measure  # (latency ms, fps), or None while there are no frames yet
        self.mic = SwapMic()
        self.error: str | None = None
        self.server: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._smoothed: float | None = None

    def start(self) -> None:
        """Create Swap Mic (AudioSyncUnavailable if not) and follow the latency in a thread."""
        if self.mode == "off":  # only tidy up after an earlier run that was killed
            try:
                remove_ours()
            except AudioSyncUnavailable:
                pass
            return
        self.server = server_name()
        self.mic.start(self.mode if isinstance(self.mode, int) else self._first_target())
        if self.mode == "auto":
            self._thread = threading.Thread(target=self._follow, name="vcamswap-audio-sync", daemon=True)
            self._thread.start()

    def _first_target(self) -> int:
        m = self.measure()
        return target_delay_ms(*m) if m else 100

    def _follow(self) -> None:
        said: set[str] = set()
        while not self._stop.wait(self.POLL_S):
            try:
                self._follow_once()
            except Exception as e:  # the sound server answering oddly must not end Swap Mic's following
                line = f"{type(e).__name__}: {e}".splitlines()[0]
                if line not in said:
                    said.add(line)
                    log.warning("Swap Mic: %s; going on", line)

    def _follow_once(self) -> None:
        if not self._keep_alive():
            return
        m = self.measure()
        if m is None:
            return
        raw = target_delay_ms(*m)
        s = self._smoothed
        s = raw if s is None else s + self.SMOOTHING * (raw - s)
        self._smoothed = s
        current = self.mic.delay_ms or 0
        try:
            if abs(s - current) >= self.FOLLOW_MS:
                self.mic.set_delay(int(round(s)))
            self.error = None
        except AudioSyncUnavailable as e:
            if self.error is None:
                log.warning("Swap Mic: %s", e)
            self.error = str(e)

    def _keep_alive(self) -> bool:
        """The microphone went away (unplugged): PulseAudio dropped our loopback; make Swap Mic again from the
        default microphone now. False while that fails."""
        try:
            if self.mic.alive():
                return True
            delay = self.mic.delay_ms or self._first_target()
            self.mic.start(delay)
        except AudioSyncUnavailable as e:
            if self.error is None:
                log.warning("Swap Mic: %s; retrying", e)
            self.error = str(e)
            return False
        log.info("Swap Mic: the microphone changed; now %s delayed by %d ms", self.mic.mic, delay)
        self.error = None
        return True

    def status(self) -> dict[str, object]:
        return {"mode": self.mode, "delay_ms": self.mic.delay_ms, "mic": self.mic.mic,
                "source": SOURCE if self.mic.delay_ms is not None else None, "server": self.server,
                "error": self.error}

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.mode != "off":
            try:
                self.mic.stop()
            except AudioSyncUnavailable as e:
                log.debug("Swap Mic: %s", e)


def doctor_report(mode: str) -> tuple[bool, str, str | None]:
    """(ok, line, fix) for `vcamswap doctor`; asks the sound server, changes nothing."""
    try:
        value = parse_audio_sync(mode)
    except ValueError as e:
        return False, str(e), "set audio_sync to auto, off or a number of ms"
    if value == "off":
        return True, "Swap Mic off (audio_sync = off)", None
    try:
        server = server_name()
    except AudioSyncUnavailable as e:
        return False, f"no Swap Mic: {e}", "install and start PipeWire (with pipewire-pulse) or PulseAudio"
    how = "following the video's latency" if value == "auto" else f"{value} ms"
    return True, f"Swap Mic through {server}, {how}", None
