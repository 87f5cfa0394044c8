"""`vcamswap bench` end to end on a few frames of a real clip, and its steadiness metrics on known signals."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers.frames import read_frames

from vcamswap.cli import main
from vcamswap.tools.bench.identity import Recognizer
from vcamswap.tools.bench.metrics import EVAL_HINT, accuracy_px, jitter_px, still_segment
from vcamswap.tools.bench.report import clean_json
from vcamswap.tools.bench.run import measure_step

S18 = "videos/webcam/webcam_640x480_30fps_s18_woman.mp4"


def test_jitter_is_the_noise_about_a_smooth_trajectory() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(120, dtype=np.float64)
    path = np.stack([100 + 0.8 * t + 5 * np.sin(t / 20), 80 + 0.3 * t], axis=-1)  # a smoothly moving head
    kps = np.repeat(path[:, None, :], 5, axis=1) + np.arange(5)[None, :, None] * 10.0
    assert jitter_px(kps, slice(0, 120)) < 0.01  # motion is not jitter
    noisy = kps + rng.normal(0, 0.5, kps.shape)
    j = jitter_px(noisy, slice(0, 120))
    assert 0.45 < j < 0.75  # ~ the noise's RMS (0.5 * sqrt(2) per point), less what the fit absorbs


def test_still_segment_and_accuracy() -> None:
    t = np.arange(200, dtype=np.float64)
    x = np.where((t > 60) & (t < 150), 100.0, 100 + 3 * np.sin(t / 3))  # still from 61 to 149
    kps = np.repeat(np.stack([x, x], -1)[:, None, :], 5, axis=1)
    seg = still_segment(kps, 60)
    assert 60 <= seg.start and seg.stop <= 151
    other = kps + np.array([3.0, 4.0])
    other[10] = np.nan  # a frame without a face is left out, not counted as an error
    assert accuracy_px(other, kps) == pytest.approx(5.0)


def test_clean_json_has_no_nan() -> None:
    out = clean_json({"a": float("nan"), "b": [np.float32(1.5), (2, float("inf"))], "c": np.int64(3)})
    assert out == {"a": None, "b": [1.5, [2, None]], "c": 3}
    json.dumps(out, allow_nan=False)


def test_bench_runs_and_writes_json(media: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    rc = main([
        "bench", "--input", str(media / S18), "--frames", "40", "--preset", "fast", "--preset", "quality",
        "--tracking", "both", "--steady-frames", "60", "--json", str(out),
    ])
    assert rc == 0
    printed = capsys.readouterr().out
    data = json.loads(out.read_text())
    assert data["frames"] == 40 and data["steadiness_frames"] == 60 and data["width"] == 640
    assert data["machine"]["cpus"] == os.cpu_count()
    labels = [r["config"]["label"] for r in data["runs"]]
    assert labels == ["lite/fast/track", "lite/fast/detect-all", "lite/quality/track", "lite/quality/detect-all"]
    for run in data["runs"]:
        thr = run["throughput"]
        assert thr["frames"] == 40 and thr["fps"] > 0
        assert thr["dropped"] == 0  # as fast as it goes: every frame of the file is processed
        for stage in ("track", "swap", "paste", "detect", "landmarks"):
            assert set(thr["stage_ms"][stage]) == {"median", "p95", "n"}
        st = run["steadiness"]
        assert set(st) >= {"jitter_px", "reference_jitter_px", "jitter_ratio", "accuracy_px", "losses_per_min"}
        assert run["realtime"] is None and run["identity"] is None
    by = {r["config"]["label"]: r for r in data["runs"]}
    # Detection on every frame calls the detector every frame; tracking far less (fast: every 8th frame).
    assert by["lite/fast/detect-all"]["throughput"]["detector_calls_per_frame"] == 1.0
    assert by["lite/fast/track"]["throughput"]["detector_calls_per_frame"] <= 0.2
    assert by["lite/fast/detect-all"]["steadiness"]["accuracy_px"] == 0.0  # it is the reference
    # fast skips the engine on every other frame; quality runs it on every frame
    assert by["lite/fast/track"]["throughput"]["engine_runs_per_frame"] == pytest.approx(0.5, abs=0.05)
    assert by["lite/quality/track"]["throughput"]["engine_runs_per_frame"] == 1.0
    assert set(data["ratios"]) == {"lite/fast", "lite/quality"}
    assert "jitter_tracking_vs_detect_all" in data["ratios"]["lite/fast"]
    # the table comes last, one row per configuration
    table = printed.strip().splitlines()[-6:]
    assert table[0].split()[0] == "config" and set(table[1]) == {"-"}
    assert [r.split()[0] for r in table[2:]] == labels


def test_bench_realtime_reports_latency(media: Path, tmp_path: Path) -> None:
    out = tmp_path / "rt.json"
    rc = main([
        "bench", "--input", str(media / S18), "--frames", "30", "--preset", "balanced", "--tracking", "on",
        "--realtime", "--no-throughput", "--repeat", "2", "--steady-frames", "30", "--json", str(out),
    ])
    assert rc == 0
    run = json.loads(out.read_text())["runs"][0]
    rt = run["realtime"]
    assert run["throughput"] is None
    assert rt["mode"] == "realtime" and rt["frames"] == 60 and len(rt["fps_runs"]) == 2
    assert 0 < rt["latency_ms"]["p50"] <= rt["latency_ms"]["p95"] <= rt["latency_ms"]["p99"]
    assert rt["fps"] > 0
    # Paced like a camera: every frame the input gave was published or counted as dropped. At each end of a
    # pass one frame can be in hand, and the counters are read a frame apart at most (on a busy machine the capture
    # count of a pass was read one short of its published frames: 59 of 60).
    assert rt["captured"] >= rt["frames"] - 2 and abs(rt["captured"] - rt["frames"] - rt["dropped"]) <= 2 * 2, rt


def test_bench_realtime_counts_every_frame_it_could_not_publish_as_dropped(media: Path, tmp_path: Path) -> None:
    """A clip at 240 fps, faster than any machine runs the swap: most frames go unpublished, and each of them
    is counted as dropped."""
    clip = tmp_path / "fast.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter.fourcc(*"mp4v"), 240.0, (640, 480))
    for image in read_frames(media / S18, 60):
        writer.write(image)
    writer.release()
    out = tmp_path / "rt.json"
    assert main(["bench", "--input", str(clip), "--frames", "30", "--preset", "balanced", "--tracking", "on",
                 "--realtime", "--no-throughput", "--steady-frames", "30", "--json", str(out)]) == 0
    rt = json.loads(out.read_text())["runs"][0]["realtime"]
    assert rt["frames"] == 30 and rt["dropped"] > 10, rt
    assert abs(rt["captured"] - rt["frames"] - rt["dropped"]) <= 2, rt


def test_quality_says_how_to_get_dlib_when_missing(
    media: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Identity needs dlib (the optional `eval` extra): without it, whether or not this machine has it, the
    bench says how to install it, measures no identity and still measures realism, with FaceMesh's points."""
    monkeypatch.setitem(sys.modules, "dlib", None)  # `import dlib` fails as where it is not installed
    assert Recognizer.available() is not None and "vcamswap[eval]" in (Recognizer.available() or "")
    out = tmp_path / "q.json"
    assert main(["bench", "--input", str(media / S18), "--frames", "15", "--preset", "fast", "--tracking", "on",
                 "--steady-frames", "15", "--quality", "--measure-every", "2", "--json", str(out)]) == 0
    note = f"identity not measured: dlib is missing; {EVAL_HINT}"
    assert f"note: {note}" in capsys.readouterr().out
    data = json.loads(out.read_text())
    assert note in data["notes"]
    [run] = data["runs"]
    assert run["identity"] is None and run["realism"]["landmarks"] == "facemesh"
    assert data["measure_step"] == run["realism"]["step"] == 2 and run["realism"]["frames"] == 8  # 0, 2, ..., 14


def test_quality_frames_are_a_fixed_step_apart() -> None:
    """At most 60 measured frames, all the same number of frames apart (the flicker's pairs span equal times)."""
    assert [measure_step(n) for n in (15, 60, 61, 120, 121, 300, 1800)] == [1, 1, 2, 2, 3, 5, 30]


def test_bench_identity_with_dlib(media: Path, tmp_path: Path) -> None:
    if Recognizer.available() is not None:
        pytest.fail(Recognizer.available() or "")
    out = tmp_path / "q.json"
    assert main(["bench", "--input", str(media / S18), "--frames", "20", "--preset", "quality",
                 "--tracking", "on", "--quality", "--json", str(out)]) == 0
    ident = json.loads(out.read_text())["runs"][0]["identity"]
    assert ident["frames"] >= 10
    assert ident["to_source"] < ident["to_target"]  # the output looks like the source face, not the camera's


def test_bench_quality_reports_realism(media: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--quality measures the swap's realism on sampled frames, with dlib's landmarks or without them, and how
    its expression follows the camera's on every frame (24 frames: under the 60 measured at most)."""
    out = tmp_path / "r.json"
    face = media / "faces/hard/dark_skin_woman_ffhq00002.png"
    assert main(["bench", "--input", str(media / S18), "--frames", "24", "--preset", "balanced", "--face", str(face),
                 "--tracking", "on", "--quality", "--json", str(out)]) == 0
    real = json.loads(out.read_text())["runs"][0]["realism"]
    assert real["frames"] >= 10 and real["landmarks"] in ("dlib", "facemesh")
    assert real["foreign_mean"] <= 0.02 and 0.0 <= real["tone_delta_e"] < 20.0
    assert real["seam"] <= 1.3 and real["occluders"] >= 0.7
    assert real["step"] == 1 and real["flicker_pairs"] == real["frames"] - 1
    assert real["mouth_corr"] is None or -1.0 <= real["mouth_corr"] <= 1.0  # null: the mouth never moved
    assert 0.3 < real["flicker"] < 3.0
    head, _, row = capsys.readouterr().out.splitlines()[-3:]
    assert head.endswith("flicker") and "mouth r" in head and "eye r" in head
    assert row.split()[-1] == f"{real['flicker']:.2f}"
