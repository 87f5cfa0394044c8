"""Soak: a real daemon on a looping clip with the swap on; memory and threads stay flat, fps stays steady.

Short in the default run (VCAMSWAP_SOAK_SECONDS, default 20); CI's long run sets VCAMSWAP_SOAK_SECONDS=300.
VCAMSWAP_SOAK_REPORT=FILE writes the samples as JSON.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import time
from pathlib import Path

import pytest
from daemon_util import DaemonProcess, default_args, media_path, running_daemon

SECONDS = float(os.environ.get("VCAMSWAP_SOAK_SECONDS") or 20)
RSS_GROWTH_LIMIT_MIB = 30.0  # after warm-up; a leak of one frame per second would pass this in ~30 s at 640x480


def test_soak_memory_threads_fps_stay_flat(tmp_path: Path, record_property: pytest.RecordProperty) -> None:
    faces = tmp_path / "data" / "faces"
    faces.mkdir(parents=True)
    shutil.copy(media_path("faces/single/obama_official_portrait.jpg"), faces / "obama.jpg")
    shutil.copy(media_path("faces/single/biden.jpg"), faces / "biden.jpg")
    # Four people with hard cuts: the tracker loses and finds faces again and again.
    args = default_args("videos/webcam/webcam_640x480_30fps_mix4.mp4")
    with running_daemon(tmp_path, args) as d:
        warmup = max(8.0, SECONDS / 4)
        samples = sample(d, warmup + SECONDS)
        assert d.stop() == 0
    steady = [s for s in samples if s["t"] >= warmup]
    assert len(steady) >= 5

    rss = [s["rss_mib"] for s in steady]
    start, end = statistics.median(rss[:3]), statistics.median(rss[-3:])
    threads = sorted({s["threads"] for s in steady})
    fps = [s["fps"] for s in steady]
    frames = [s["vcam_frames"] for s in steady]
    summary = {
        "seconds": SECONDS, "rss_start_mib": round(start, 1), "rss_end_mib": round(end, 1),
        "rss_max_mib": round(max(rss), 1), "threads": threads, "fps_median": round(statistics.median(fps), 1),
        "fps_min": round(min(fps), 1), "vcam_frames": frames[-1],
    }
    record_property("soak", json.dumps(summary))
    print(f"\nsoak: {summary}")
    report = os.environ.get("VCAMSWAP_SOAK_REPORT")
    if report:
        Path(report).write_text(json.dumps({"summary": summary, "samples": samples}, indent=1))

    assert end - start <= RSS_GROWTH_LIMIT_MIB, summary
    assert max(rss) - start <= RSS_GROWTH_LIMIT_MIB * 1.5, summary
    assert threads[-1] - threads[0] <= 1, summary  # a thread per request or per reconnect would show here
    # Steady against its own median: the level is the machine's business, the steadiness the daemon's.
    median = statistics.median(fps)
    assert median > 0 and min(fps) >= 0.5 * median, summary
    assert all(b > a for a, b in zip(frames, frames[1:], strict=False)), "the virtual camera stalled"


def sample(d: DaemonProcess, seconds: float) -> list[dict[str, float]]:
    """Once a second: RSS, thread count, fps from `status`; every 5 s change the face or the preset too. A
    sample that took long delays the next rather than bunching them: a second apart, the virtual camera must
    have had a frame in between."""
    out: list[dict[str, float]] = []
    t0 = time.monotonic()
    n = 0
    while (t := time.monotonic() - t0) < seconds:
        st = d.status()
        out.append({
            "t": round(t, 1), "rss_mib": d.rss_kib() / 1024, "threads": d.threads(), "fps": st["fps"],
            "frames": st["frames"], "vcam_frames": d.vcam_frames(), "state": st["state"],
        })
        n += 1
        if n % 10 == 5:
            d.request("face", "next")
        elif n % 10 == 0:
            d.request("preset", ["fast", "balanced", "quality"][(n // 10) % 3])
        time.sleep(max(0.0, t + 1.0 - (time.monotonic() - t0)))
    return out
