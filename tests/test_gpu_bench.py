"""The GPU benchmark script end to end, as its CPU dry run: a small clip, few frames, narrow models (the swap
model at 32 channels, GHOST and the parser narrowed by the same factor, from the same builders)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from vcamswap.engines.ghost import GHOST_MODELS
from vcamswap.modelstore.manifest import PARSER_MODEL
from vcamswap.tools.bench import gpu
from vcamswap.tools.bench.gpu_models import PASSES

pytest.importorskip("onnxconverter_common", reason="the fp16 copy needs 'vcamswap[fp16]'")


def test_dry_run_measures_every_model_and_variant_and_survives_a_failing_part(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("VCAMSWAP_CACHE_DIR", str(tmp_path / "cache"))
    caplog.set_level(logging.WARNING)
    not_dlc = tmp_path / "no-such-checkout"
    rc = gpu.main(["--provider", "cpu", "--out", str(tmp_path / "out"), "--width", "320", "--height", "240",
                   "--frames", "8", "--runs", "2", "--channels", "32", "--dlc", str(not_dlc)])
    assert rc == 1  # the Deep-Live-Cam part failed, and said so
    report = json.loads((tmp_path / "out" / "gpu_bench.json").read_text())
    assert [e["part"] for e in report["errors"]] == ["Deep-Live-Cam cpu fp32", "Deep-Live-Cam cpu fp16"]
    assert "is not a Deep-Live-Cam checkout" in report["errors"][0]["error"]
    # Every GHOST and the parser ran in their passes: none fell back (a missing or broken model says so once).
    fallbacks = [r.getMessage() for r in caplog.records if r.name.startswith("vcamswap")
                 and ("not installed" in r.getMessage() or "instead" in r.getMessage())]
    assert fallbacks == []
    assert set(report["meta"]["models"]["more"]["gmacs"]) == {*GHOST_MODELS, PARSER_MODEL}
    for label, precision in (("cpu fp32", "fp32"), ("cpu fp16", "fp16")):
        for target in PASSES:
            bench = report["bench"][f"{label} | {target.label}"]
            assert bench["fps"] > 0 and bench["stage_ms"]["swap"]["n"] > 0 and bench["latency_ms"]["p95"] > 0
        faces = report["faces"][label]
        assert faces["placement"]["inswapper_128"].startswith(f"cpu ({precision}, inswapper_128.")
        assert all(faces[f"swap_many_{n}_ms"]["median"] > 0 for n in gpu.FACE_COUNTS)
        assert all(faces[f"boost_{b}_ms_per_face"] > 0 for b in (128, 256, 512)) and faces["boost_512_over_128"] > 0
        assert faces["batched"]  # inswapper_128's faces and tiles go in one call, with the batched copy
        for name in GHOST_MODELS:
            ghost = faces["ghost"][name]
            assert ghost["swap_1_face_ms"]["median"] > 0 and ghost["swap_1_face_ms"]["p95"] > 0
            assert all(ghost[f"swap_many_{n}_ms_per_face"] > 0 for n in gpu.FACE_COUNTS) and not ghost["batched"]
            assert faces["placement"][name] == "cpu"
        sessions = report["sessions"][label]
        for name in (*GHOST_MODELS, PARSER_MODEL):
            assert sessions[name]["median"] > 0 and sessions[name]["on"] == "cpu"
            assert sessions[name]["file"] == (f"{name}.fp16.onnx" if precision == "fp16" else f"{name}.onnx")
    out = capsys.readouterr().out
    assert "-- Deep-Live-Cam cpu fp16: FAILED (FileNotFoundError:" in out
    assert out.count("\ncpu fp") == 2 + 2 * len(PASSES)  # a row per variant, then one per variant and model
    assert "\ncpu fp16  ghost_3_256 " in out


def test_an_unknown_pass_is_one_line_before_anything_is_built(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="unknown pass ghost_9_256; choose from inswapper_128 b128, "):
        gpu.main(["--provider", "cpu", "--out", str(tmp_path / "out"), "--passes", "ghost_2_256,ghost_9_256"])
    assert not (tmp_path / "out").exists()
