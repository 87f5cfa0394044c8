"""The GPU benchmark script end to end, as its CPU dry run: a small clip, few frames, a narrow swap model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vcamswap.tools.bench import gpu

pytest.importorskip("onnxconverter_common", reason="the fp16 copy needs 'vcamswap[fp16]'")


def test_dry_run_measures_every_variant_and_survives_a_failing_part(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VCAMSWAP_CACHE_DIR", str(tmp_path / "cache"))
    not_dlc = tmp_path / "no-such-checkout"
    rc = gpu.main(["--provider", "cpu", "--out", str(tmp_path / "out"), "--width", "320", "--height", "240",
                   "--frames", "16", "--runs", "2", "--channels", "32", "--dlc", str(not_dlc)])
    assert rc == 1  # the Deep-Live-Cam part failed, and said so
    report = json.loads((tmp_path / "out" / "gpu_bench.json").read_text())
    assert [e["part"] for e in report["errors"]] == ["Deep-Live-Cam cpu fp32", "Deep-Live-Cam cpu fp16"]
    assert "is not a Deep-Live-Cam checkout" in report["errors"][0]["error"]
    for label, precision in (("cpu fp32", "fp32"), ("cpu fp16", "fp16")):
        bench, faces = report["bench"][label], report["faces"][label]
        assert bench["fps"] > 0 and bench["stage_ms"]["swap"]["n"] > 0 and bench["latency_ms"]["p95"] > 0
        assert faces["placement"]["inswapper_128"].startswith(f"cpu ({precision}, inswapper_128.")
        assert all(faces[f"swap_many_{n}_ms"]["median"] > 0 for n in gpu.FACE_COUNTS)
        assert all(faces[f"boost_{b}_ms_per_face"] > 0 for b in (128, 256, 512)) and faces["boost_512_over_128"] > 0
    out = capsys.readouterr().out
    assert "-- Deep-Live-Cam cpu fp16: FAILED (FileNotFoundError:" in out
    assert out.count("\ncpu fp") == 2  # one table row per variant
