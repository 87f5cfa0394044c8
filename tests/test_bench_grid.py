"""The quality grid (python -m vcamswap.tools.bench.grid) on a tiny real grid: one line per cell, resumable,
and a markdown table per pair."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers.frames import read_frames
from helpers.media import media_path

from vcamswap.tools.bench.grid import MARKDOWN_COLUMNS, main
from vcamswap.tools.bench.metrics import WARMUP_FRAMES

SOURCE = "faces/hard/dark_skin_woman_ffhq00002.png"
TALKING = "videos/real/hdtf_WDA_KatieHill_000_512.mp4"
FRAMES, EVERY = 24, 2


def short_clip(folder: Path) -> Path:
    """The clip's first frames (warm-up and the measured ones), in a folder of its own."""
    folder.mkdir()
    clip = folder / "talking.mp4"
    images = read_frames(media_path(TALKING), WARMUP_FRAMES + FRAMES)
    h, w = images[0].shape[:2]
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter.fourcc(*"mp4v"), 25.0, (w, h))
    for image in images:
        writer.write(image)
    writer.release()
    return clip


def test_grid_writes_a_line_per_cell_resumes_and_prints_tables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clips = short_clip(tmp_path / "clips").parent
    out = tmp_path / "grid.jsonl"
    args = ["--sources", str(media_path(SOURCE)), "--clips", str(clips), "--likeness", "0", "--likeness", "1",
            "--frames", str(FRAMES), "--every", str(EVERY), "--out", str(out), "--markdown"]
    assert main(args) == 0
    first = out.read_text()
    lines = [json.loads(line) for line in first.splitlines()]
    assert [(x["source"], x["clip"], x["likeness"]) for x in lines] == [
        ("dark_skin_woman_ffhq00002.png", "talking.mp4", 0.0), ("dark_skin_woman_ffhq00002.png", "talking.mp4", 1.0)]
    for x in lines:
        q = x["realism"]
        assert x["frames"] == FRAMES and x["measure_step"] == EVERY and q["step"] == EVERY
        assert q["frames"] == FRAMES // EVERY and q["flicker_pairs"] == q["frames"] - 1  # a fixed step throughout
        assert -1.0 <= q["mouth_corr"] <= 1.0 and 0.3 < q["flicker"] < 3.0, q
        assert x["identity"]["frames"] >= 5 and x["seconds"] > 0
    printed = capsys.readouterr()
    assert "2 run, 0 already in" in printed.err

    assert main(args) == 0  # resumed: every cell is in the file already
    assert out.read_text() == first
    printed = capsys.readouterr()
    assert "0 run, 2 already in" in printed.err
    table = printed.out.splitlines()
    assert table[0] == "### dark_skin_woman_ffhq00002.png x talking.mp4"
    assert table[2] == "| " + " | ".join(MARKDOWN_COLUMNS) + " |"
    rows = [r.strip("| ").split(" | ") for r in table[4:]]
    assert [r[0] for r in rows] == ["0", "1"] and all(len(r) == len(MARKDOWN_COLUMNS) for r in rows)
    mouth = MARKDOWN_COLUMNS.index("mouth r")
    assert [float(r[mouth]) for r in rows] == [round(x["realism"]["mouth_corr"], 2) for x in lines]


def test_grid_cut_line_and_bad_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A line cut short by a killed run is not a cell done, and the next line starts on a line of its own; a
    photo without a face is one line of error and the grid goes on."""
    clips = short_clip(tmp_path / "clips").parent
    sources = tmp_path / "sources"
    sources.mkdir()
    (sources / "a_blank.png").write_bytes(cv2.imencode(".png", np.full((256, 256, 3), 128, np.uint8))[1].tobytes())
    (sources / "b_face.png").write_bytes(media_path(SOURCE).read_bytes())
    out = tmp_path / "grid.jsonl"
    out.write_text('{"source": "b_face.png", "clip": "talking.mp4", "likeness": 0.0, "fram')
    assert main(["--sources", str(sources), "--clips", str(clips), "--frames", "16", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "a_blank.png x talking.mp4 likeness 0: no face found in" in err
    lines = out.read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["source"] == "b_face.png"
