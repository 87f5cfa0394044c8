"""Parsing the --output specs, and the set of live sinks: one failing sink never stops the others."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from vcamswap.outputs.base import OutputUnavailable, Sink, one_line
from vcamswap.outputs.file import FILE_FOURCC, FileSink
from vcamswap.outputs.mjpeg import DEFAULT_MJPEG_PORT, MjpegSink
from vcamswap.outputs.preview import PreviewSink
from vcamswap.outputs.previewauth import preview_token
from vcamswap.outputs.vcam import VirtualCamSink
from vcamswap.types import check_bgr

log = logging.getLogger("vcamswap.outputs")

def parse_output(
    spec: str,
    *,
    vcam_backend: str | None = None,
    vcam_device: str | None = None,
    overwrite: bool = False,
    protect: str | None = None,
    crash_safe: bool = False,
) -> Sink:
    """A sink for a CLI output: vcam, preview, mjpeg, mjpeg:PORT, or a .mp4/.avi/.mkv path.

    The MJPEG preview asks for this user's token; a file never replaces `protect` (the input) and replaces
    another existing file only with `overwrite`; `crash_safe` records a .mp4 as Matroska (FileSink).
    """
    text = spec.strip()
    key = text.lower()
    if key == "vcam":
        return VirtualCamSink(backend=vcam_backend, device=vcam_device)
    if key == "preview":
        return PreviewSink()
    if key == "mjpeg" or key.startswith("mjpeg:"):
        port = text.split(":", 1)[1] if ":" in text else str(DEFAULT_MJPEG_PORT)
        if not port.isdigit() or int(port) > 65535:
            raise ValueError(f"bad MJPEG port in '{spec}': expected mjpeg:PORT with PORT 0-65535")
        return MjpegSink(int(port), token=preview_token())
    if Path(text).suffix.lower() in FILE_FOURCC and Path(text).stem:
        return FileSink(text, overwrite=overwrite, protect=protect, crash_safe=crash_safe)
    raise ValueError(f"unknown output '{spec}': expected vcam, preview, mjpeg[:PORT] or a .mp4/.avi/.mkv path")


class SinkState(NamedTuple):
    name: str
    live: bool
    error: str | None  # the last reason it is not live


@dataclass
class _Slot:
    sink: Sink
    live: bool = False
    error: str | None = None
    next_retry: float = 0.0


class SinkSet:
    """Several sinks fed the same frames; one failing sink never stops the others.

    A sink that raises (OutputUnavailable or anything else) is closed, logged once per distinct reason,
    and re-opened at most every `retry_interval_s`.
    """

    def __init__(
        self,
        sinks: Sequence[Sink],
        *,
        retry_interval_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._slots = [_Slot(s) for s in sinks]
        self._retry = retry_interval_s
        self._clock = clock
        self._format: tuple[int, int, float] | None = None

    def __iter__(self) -> Iterator[Sink]:
        return iter(s.sink for s in self._slots)

    def __len__(self) -> int:
        return len(self._slots)

    def __enter__(self) -> SinkSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def live(self) -> list[str]:
        """Names of the sinks that are working now."""
        return [s.sink.name for s in self._slots if s.live]

    def states(self) -> list[SinkState]:
        return [SinkState(s.sink.name, s.live, s.error) for s in self._slots]

    def _down(self, slot: _Slot, reason: str) -> None:
        slot.live = False
        slot.next_retry = self._clock() + self._retry
        if reason != slot.error:
            log.warning("output %s unavailable: %s", slot.sink.name, reason)
        else:
            log.debug("output %s still unavailable: %s", slot.sink.name, reason)
        slot.error = reason

    def _try_open(self, slot: _Slot) -> None:
        assert self._format is not None
        try:
            slot.sink.open(*self._format)
        except Exception as e:  # OutputUnavailable, or a sink bug that must not stop the others
            self._down(slot, _reason(e))
            return
        if slot.error is not None:
            log.info("output %s is live again", slot.sink.name)
        slot.live, slot.error = True, None

    def open(self, width: int, height: int, fps: float) -> None:
        self._format = (width, height, fps)
        for slot in self._slots:
            if not slot.live:
                self._try_open(slot)

    def send(self, frame_bgr: np.ndarray) -> None:
        """Send to every live sink; re-open failed ones whose retry time has come."""
        if self._format is None:
            raise RuntimeError("SinkSet.send before open")
        frame = check_bgr(frame_bgr, "frame")
        for slot in self._slots:
            if not slot.live:
                if self._clock() < slot.next_retry:
                    continue
                self._try_open(slot)
                if not slot.live:
                    continue
            try:
                slot.sink.send(frame)
            except Exception as e:
                _close_quietly(slot.sink)
                self._down(slot, _reason(e))

    def close(self) -> None:
        for slot in self._slots:
            _close_quietly(slot.sink)
            slot.live = False
        self._format = None


def _reason(e: Exception) -> str:
    if isinstance(e, OutputUnavailable):
        return str(e)
    return f"{type(e).__name__}: {one_line(str(e))}"


def _close_quietly(sink: Sink) -> None:
    try:
        sink.close()
    except Exception as e:
        log.debug("closing output %s: %s", sink.name, e)


