"""Swap Mic against a real PulseAudio server started here (null sinks stand in for the sound card):
tone bursts into the microphone arrive on Swap Mic delayed as the video is, a new delay cross-fades without
a click, and no module outlives the daemon, even a killed one."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from daemon_util import DaemonProcess, default_args, wait_until

from vcamswap.daemon.desktop.audio_sync import (
    SOURCE,
    AudioSyncUnavailable,
    SwapMic,
    ours,
    parse_audio_sync,
    target_delay_ms,
)

RATE = 48000
MIC = "test_speaker.monitor"  # the user's "microphone": whatever is played into test_speaker
TOLERANCE_MS = 10.0

SERVER_CONFIG = """\
load-module module-native-protocol-unix auth-anonymous=1 socket={socket}
load-module module-null-sink sink_name=test_speaker
load-module module-null-sink sink_name=probe channels=2 channel_map=front-left,front-right
set-default-sink test_speaker
set-default-source test_speaker.monitor
"""


@pytest.fixture(scope="module")
def pulse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A PulseAudio server of our own; yields the environment that reaches it."""
    if shutil.which("pulseaudio") is None or shutil.which("pactl") is None:
        pytest.skip("pulseaudio and pulseaudio-utils are not installed")
    home = tmp_path_factory.mktemp("pulse")
    (home / "run").mkdir()
    socket = home / "run" / "native"
    (home / "default.pa").write_text(SERVER_CONFIG.format(socket=socket))
    env = {**os.environ, "HOME": str(home), "XDG_RUNTIME_DIR": str(home / "run"), "PULSE_SERVER": f"unix:{socket}",
           "XDG_CONFIG_HOME": str(home / "config")}  # fmt: skip
    env.pop("DBUS_SESSION_BUS_ADDRESS", None)
    proc = subprocess.Popen(
        ["pulseaudio", "-n", "-F", str(home / "default.pa"), "--daemonize=no", "--exit-idle-time=-1",
         "--disallow-exit", "--use-pid-file=no", "--log-target=stderr"],
        env=env, stdout=subprocess.DEVNULL, stderr=(home / "server.log").open("wb"),
    )  # fmt: skip
    try:
        wait_until(lambda: subprocess.run(["pactl", "info"], env=env, capture_output=True).returncode == 0,
                   "the PulseAudio server answering")  # fmt: skip
        yield env
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture
def in_process(pulse: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("PULSE_SERVER", pulse["PULSE_SERVER"])
    return pulse


def pactl(env: dict[str, str], *args: str) -> str:
    return subprocess.run(["pactl", *args], env=env, capture_output=True, text=True, check=True).stdout


def burst_train(count: int = 3, gap_s: float = 0.5, length_s: float = 0.05) -> np.ndarray:
    t = np.arange(int(length_s * RATE)) / RATE
    burst = (0.5 * np.sin(2 * np.pi * 1000 * t) * 32767).astype(np.int16)
    silence = np.zeros(int(gap_s * RATE), np.int16)
    return np.concatenate([silence] + [np.concatenate([burst, silence]) for _ in range(count)])


def record_while_playing(env: dict[str, str], device: str, channels: int, signal: np.ndarray) -> np.ndarray:
    """Record from `device` while `signal` plays into the microphone: 0.5 s before it, 0.7 s after it.

    The samples are read to the last one before parec is stopped (stopping it drops what it still holds)."""
    want = (int(0.5 * RATE) + signal.size + int(0.7 * RATE)) * channels * 2
    rec = subprocess.Popen(["parec", f"--device={device}", "--format=s16le", f"--channels={channels}",
                            f"--rate={RATE}", "--latency-msec=20", "--raw"],
                           env=env, stdout=subprocess.PIPE)  # fmt: skip
    assert rec.stdout is not None
    chunks: list[bytes] = []
    try:
        first = rec.stdout.read(int(0.5 * RATE) * channels * 2)  # the recording runs before the first sound
        chunks.append(first)
        play = subprocess.Popen(["pacat", "--device=test_speaker", "--format=s16le", "--channels=1",
                                 f"--rate={RATE}", "--raw"], stdin=subprocess.PIPE, env=env)  # fmt: skip
        assert play.stdin is not None
        play.stdin.write(signal.tobytes())
        play.stdin.close()
        got = len(first)
        while got < want:
            chunk = rec.stdout.read1(want - got)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        play.wait(timeout=30)
    finally:
        rec.terminate()
        rec.wait(timeout=30)
    data = b"".join(chunks)
    return np.frombuffer(data[: len(data) // (2 * channels) * 2 * channels], np.int16).reshape(-1, channels).astype(
        np.float64)


def onsets(x: np.ndarray) -> np.ndarray:
    loud = np.flatnonzero(np.abs(x) > 3000)
    starts = loud[np.insert(np.diff(loud) > RATE * 0.2, 0, True)] if loud.size else loud
    return starts / RATE


class Probe:
    """Mic on the left, Swap Mic on the right of one recording, through two loopbacks of equal latency."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        args = ["latency_msec=40", "channels=1", "remix=false", "adjust_time=1"]
        self.modules = [
            pactl(env, "load-module", "module-loopback", f"source={MIC}", "sink=probe", "channel_map=front-left",
                  *args),
            pactl(env, "load-module", "module-loopback", f"source={SOURCE}", "sink=probe", "channel_map=front-right",
                  *args),
        ]  # fmt: skip

    def delay_ms(self) -> float:
        data = record_while_playing(self.env, "probe.monitor", 2, burst_train())
        left, right = onsets(data[:, 0]), onsets(data[:, 1])
        assert len(left) == len(right) == 3, (left, right, len(data) / RATE)
        return float(np.median(right - left) * 1000)

    def settled_delay_ms(self) -> float:
        """Measured until two measurements in a row agree (fresh loopbacks settle within seconds)."""
        last = self.delay_ms()
        for _ in range(8):
            now = self.delay_ms()
            if abs(now - last) < 2.0:
                return now
            last = now
        pytest.fail(f"the delay never settled (last {last:.1f} ms)")

    def close(self) -> None:
        for m in self.modules:
            pactl(self.env, "unload-module", m.strip())


def our_module_count(env: dict[str, str]) -> int:
    names = ("sink_name=vcamswap_mic_sink", "source_name=vcamswap_swap_mic", "sink=vcamswap_mic_sink")
    return sum(any(n in line for n in names) for line in pactl(env, "list", "modules", "short").splitlines())


# ---------------------------------------------------------------------------------------------------------


def test_audio_sync_values() -> None:
    assert parse_audio_sync(None) == "auto" and parse_audio_sync("off") == "off" and parse_audio_sync("120") == 120
    assert parse_audio_sync("85ms") == 85
    with pytest.raises(ValueError, match="say auto, off or a delay in ms"):
        parse_audio_sync("soon")
    assert target_delay_ms(50.0, 30.0) == 83  # capture -> publish plus the frame the virtual camera holds
    assert target_delay_ms(0.0, 0.0) == 10


class Recording:
    """A recorder's stdout read as it arrives, in a thread, so nothing waits in a pipe when it is stopped."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self.proc, self.stdout = proc, proc.stdout
        self.chunks: list[bytes] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while chunk := self.stdout.read1(65536):
            self.chunks.append(chunk)

    def samples(self) -> int:
        return sum(len(c) for c in list(self.chunks)) // 2

    def stop(self) -> np.ndarray:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.thread.join(timeout=10)
        data = b"".join(self.chunks)
        return np.frombuffer(data[: len(data) // 2 * 2], np.int16)


def test_swap_mic_delays_and_cross_fades_without_a_click(in_process: dict[str, str]) -> None:
    env = in_process
    mic = SwapMic()
    mic.start(120)
    probe = Probe(env)
    try:
        assert SOURCE in pactl(env, "list", "sources", "short")
        assert "Description: Swap Mic" in pactl(env, "list", "sources")
        assert abs(probe.settled_delay_ms() - 120) <= TOLERANCE_MS

        # A steady 1 kHz tone through a change of delay of whole periods: any gap or step would show.
        t = np.arange(int(3.0 * RATE)) / RATE
        amp = 0.4 * 32767
        tone = (amp * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)
        rec = subprocess.Popen(["parec", f"--device={SOURCE}", "--format=s16le", "--channels=1", f"--rate={RATE}",
                                "--latency-msec=20", "--raw"], env=env, stdout=subprocess.PIPE)  # fmt: skip
        recorded = Recording(rec)
        # The tone starts only once the recorder streams: on a busy machine parec takes longer than any fixed wait.
        wait_until(lambda: recorded.samples() > RATE // 10, "the recorder to stream")
        play = subprocess.Popen(["pacat", "--device=test_speaker", "--format=s16le", "--channels=1",
                                 f"--rate={RATE}", "--raw"], env=env, stdin=subprocess.PIPE)  # fmt: skip
        assert play.stdin is not None
        play.stdin.write(tone[: RATE].tobytes())
        play.stdin.flush()
        mic.set_delay(160)  # while the tone plays
        play.stdin.write(tone[RATE:].tobytes())
        play.stdin.close()
        play.wait(timeout=30)
        # Stopped once it holds the whole tone and half a second of its delayed tail, not after a fixed sleep:
        # what parec has not written out by then would be lost with it.
        start = recorded.samples()
        wait_until(lambda: recorded.samples() > start + RATE // 2, "the delayed tone's tail to be recorded")
        got = recorded.stop().astype(np.float64)
        loud = np.flatnonzero(np.abs(got) > amp * 0.5)
        body = got[loud[0] + RATE // 50: loud[-1] - RATE // 50]  # the tone, less its own start and end
        assert body.size > 2 * RATE
        window = RATE // 500  # 2 ms: a 1 kHz tone peaks twice in each
        peaks = np.abs(body[: body.size // window * window]).reshape(-1, window).max(axis=1)
        assert peaks.min() > 0.8 * amp, "a dip or gap while the delay changed"
        max_step = 2 * np.pi * 1000 / RATE * amp
        assert np.abs(np.diff(body)).max() < 1.3 * max_step, "a click while the delay changed"

        assert abs(probe.settled_delay_ms() - 160) <= TOLERANCE_MS
    finally:
        probe.close()
        mic.stop()
    assert ours() == []


def test_no_sound_server_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PULSE_SERVER", f"unix:{tmp_path / 'nothing'}")
    with pytest.raises(AudioSyncUnavailable, match="^no PulseAudio or PipeWire answers"):
        from vcamswap.daemon.desktop.audio_sync import server_name

        server_name()


def daemon(home: Path, env: dict[str, str], *extra: str) -> DaemonProcess:
    env = {k: v for k, v in env.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    return DaemonProcess(home, default_args() + list(extra), env)


def swap_mic_delay(d: DaemonProcess) -> int | None:
    d.check_alive()
    return d.status()["audio_sync"]["delay_ms"]


def test_daemon_swap_mic_fixed_delay_and_no_stale_modules(pulse: dict[str, str], tmp_path: Path) -> None:
    d = daemon(tmp_path / "home", pulse, "--audio-sync", "120")
    try:
        d.start()
        wait_until(lambda: swap_mic_delay(d) == 120, "Swap Mic with 120 ms")
        probe = Probe(pulse)
        try:
            assert abs(probe.settled_delay_ms() - 120) <= TOLERANCE_MS
        finally:
            probe.close()
        assert our_module_count(pulse) == 3
        d.kill()  # a crash: nothing could clean up
        assert our_module_count(pulse) == 3
        d.start()
        wait_until(lambda: swap_mic_delay(d) == 120, "Swap Mic again after the restart")
        assert our_module_count(pulse) == 3, "the killed daemon's modules were not removed"
        assert d.stop() == 0
    finally:
        d.kill()
    assert our_module_count(pulse) == 0


def test_daemon_swap_mic_follows_the_video_latency(pulse: dict[str, str], tmp_path: Path) -> None:
    d = daemon(tmp_path / "home", pulse)  # auto is the default
    try:
        d.start()

        def following() -> dict[str, float] | None:
            st = d.status()
            delay = st["audio_sync"]["delay_ms"]
            if delay is None or not st.get("fps"):
                return None
            target = target_delay_ms(st["latency_ms"], st["fps"])
            return {"delay": delay, "target": target} if abs(delay - target) <= TOLERANCE_MS else None

        wait_until(following, "Swap Mic's delay on the video's latency")
        probe = Probe(pulse)
        try:
            probe.delay_ms(), probe.delay_ms()  # the probe's own fresh loopbacks settle
            for _ in range(8):  # a measurement counts while the delay holds still through it
                before = swap_mic_delay(d)
                measured = probe.delay_ms()
                if before is not None and swap_mic_delay(d) == before:
                    assert abs(measured - before) <= TOLERANCE_MS, (measured, before)
                    break
            else:
                pytest.fail("the delay kept changing")
        finally:
            probe.close()
        assert d.stop() == 0
    finally:
        d.kill()
    assert our_module_count(pulse) == 0


def test_swap_mic_comes_back_when_the_microphone_goes(in_process: dict[str, str]) -> None:
    from vcamswap.daemon.desktop.audio_sync import AudioSync

    env = in_process
    usb = pactl(env, "load-module", "module-null-sink", "sink_name=usb_headset").strip()
    pactl(env, "set-default-source", "usb_headset.monitor")
    sync = AudioSync("auto", lambda: (50.0, 30.0))
    sync.POLL_S = 0.2
    try:
        sync.start()
        assert sync.mic.mic == "usb_headset.monitor" and sync.mic.delay_ms == 83
        pactl(env, "unload-module", usb)  # unplugged: PulseAudio drops the loopback reading from it
        wait_until(lambda: sync.mic.mic == MIC and sync.mic.alive(), "Swap Mic on the remaining microphone")
        assert sync.status()["delay_ms"] == 83 and len(ours()) == 3
    finally:
        sync.stop()
        pactl(env, "set-default-source", MIC)
    assert ours() == []
