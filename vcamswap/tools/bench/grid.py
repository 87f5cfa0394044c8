"""The quality bench over a grid: every source photo x clip x likeness of the lite engine, one JSON line each.

    python -m vcamswap.tools.bench.grid --sources DIR --clips DIR --likeness 0 --likeness 0.5 --likeness 1 \\
        --frames 60 --out results.jsonl [--every 1] [--markdown]

Each cell is `vcamswap bench --quality` on one clip with one source face: the lite engine, one preset
(balanced), tracking on, the throughput pass only, quality measured on every `--every`-th frame (every frame
by default, so the expression correlations have enough samples). A line is appended as soon as its cell is
done, and cells already in the file are skipped: an interrupted run picks up where it stopped. `--markdown`
prints, from the whole file, a table per (source, clip) pair with a row per likeness.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import NamedTuple

from vcamswap.choices import PRESET_NAMES
from vcamswap.tools.bench.metrics import WARMUP_FRAMES
from vcamswap.tools.bench.report import clean_json
from vcamswap.tools.bench.run import BenchOptions, run_bench

IMAGES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
VIDEOS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}


class Cell(NamedTuple):
    source: Path
    clip: Path
    likeness: float

    @property
    def key(self) -> tuple[str, str, float]:
        return self.source.name, self.clip.name, self.likeness


def media_files(path: Path, kinds: set[str]) -> list[Path]:
    """The file itself, or the folder's files of those kinds, sorted by name."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise SystemExit(f"vcamswap: error: {path}: no such file or folder")
    found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in kinds)
    if not found:
        raise SystemExit(f"vcamswap: error: {path}: no {'/'.join(sorted(kinds))} files")
    return found


def read_lines(out: Path) -> list[dict[str, object]]:
    """The file's records; a line that is not a whole record (a run killed mid-write) is left out."""
    if not out.is_file():
        return []
    records = []
    for line in out.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and {"source", "clip", "likeness"} <= record.keys():
            records.append(record)
    return records


def _key(record: dict[str, object]) -> tuple[str, str, float]:
    return str(record["source"]), str(record["clip"]), float(str(record["likeness"]))


def append(out: Path, record: dict[str, object]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a+") as f:
        f.seek(0, 2)
        if f.tell():  # a line cut short by a killed run stays on its own line
            f.seek(f.tell() - 1)
            last = f.read(1)
            f.seek(0, 2)
            if last != "\n":
                f.write("\n")
        f.write(json.dumps(clean_json(record), allow_nan=False) + "\n")
        f.flush()


def run_cell(cell: Cell, frames: int, every: int, preset: str, emit: Callable[[str], None]) -> dict[str, object]:
    """One bench with quality on; the figures the grid keeps, with the cell's wall time."""
    opts = BenchOptions(
        input=str(cell.clip), engines=["lite"], presets=[preset], frames=frames, realtime=False, throughput=True,
        tracking=[True], quality=True, face=str(cell.source), likeness=(cell.likeness,), measure_every=every,
        steadiness=False,
    )
    t0 = time.perf_counter()
    [result], meta = run_bench(opts, emit)
    return {
        "source": cell.source.name,
        "clip": cell.clip.name,
        "likeness": cell.likeness,
        "preset": preset,
        "frames": meta["frames"],
        "measure_step": meta["measure_step"],
        "seconds": round(time.perf_counter() - t0, 1),
        "fps": result.throughput.fps if result.throughput else None,
        "identity": asdict(result.identity) if result.identity else None,
        "realism": asdict(result.realism) if result.realism else None,
        "notes": meta["notes"],
    }


def run_grid(cells: Sequence[Cell], out: Path, frames: int, every: int, preset: str,
             emit: Callable[[str], None]) -> tuple[int, int]:
    """Runs the cells not yet in `out`, appending a line each; (cells run, cells failed)."""
    done = {_key(r) for r in read_lines(out)}
    ran = failed = 0
    for cell in cells:
        if cell.key in done:
            continue
        label = f"{cell.source.name} x {cell.clip.name} likeness {cell.likeness:g}"
        emit(f"grid: {label}")
        try:
            record = run_cell(cell, frames, every, preset, emit)
        except (Exception, SystemExit) as e:  # one bad photo or clip: said in one line, the grid goes on
            emit(f"grid: {label}: {str(e).removeprefix('vcamswap: error: ') or type(e).__name__}")
            failed += 1
            continue
        append(out, record)
        done.add(cell.key)
        ran += 1
    return ran, failed


def _num(v: object, spec: str) -> str:
    if not isinstance(v, (int, float)) or isinstance(v, bool) or math.isnan(v):
        return "n/a"
    return format(v, spec)


MARKDOWN_COLUMNS = ("likeness", "id src", "id cam", "closer", "mouth r", "eye r", "foreign mean/max", "under nose",
                    "dark mean/max", "tone dE", "seam", "occl", "flicker", "s")


def markdown_row(record: dict[str, object]) -> str:
    idt, q = record.get("identity"), record.get("realism")
    idt, q = idt if isinstance(idt, dict) else {}, q if isinstance(q, dict) else {}
    closer = idt.get("closer_to_source")
    cells = [
        _num(record["likeness"], "g"),
        _num(idt.get("to_source"), ".3f"),
        _num(idt.get("to_target"), ".3f"),
        _num(closer * 100, ".0f") + "%" if isinstance(closer, (int, float)) else "n/a",
        _num(q.get("mouth_corr"), ".2f"),
        _num(q.get("eye_corr"), ".2f"),
        f"{_num(q.get('foreign_mean'), '.3f')}/{_num(q.get('foreign_max'), '.3f')}",
        _num(q.get("under_nose"), ".3f"),
        f"{_num(q.get('dark_mean'), '.3f')}/{_num(q.get('dark_max'), '.3f')}",
        _num(q.get("tone_delta_e"), ".1f"),
        _num(q.get("seam"), ".2f"),
        _num(q.get("occluders"), ".2f"),
        _num(q.get("flicker"), ".2f"),
        _num(record.get("seconds"), ".0f"),
    ]
    return "| " + " | ".join(cells) + " |"


def markdown(records: list[dict[str, object]]) -> str:
    """A table per (source, clip) pair, a row per likeness, in the file's order of pairs."""
    pairs: dict[tuple[str, str], list[dict[str, object]]] = {}
    for r in records:
        pairs.setdefault((str(r["source"]), str(r["clip"])), []).append(r)
    parts = []
    for (source, clip), rows in pairs.items():
        rows = sorted(rows, key=lambda r: float(str(r["likeness"])))
        head = "| " + " | ".join(MARKDOWN_COLUMNS) + " |"
        rule = "|" + "|".join("---" for _ in MARKDOWN_COLUMNS) + "|"
        parts.append("\n".join([f"### {source} x {clip}", "", head, rule, *map(markdown_row, rows)]))
    return "\n\n".join(parts)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m vcamswap.tools.bench.grid", description=__doc__.split("\n")[0])
    p.add_argument("--sources", type=Path, required=True, help="a source photo, or a folder of them")
    p.add_argument("--clips", type=Path, required=True, help="a clip, or a folder of them")
    p.add_argument("--likeness", type=float, action="append", help="lite likeness 0..1, repeatable (default 0)")
    p.add_argument("--frames", type=int, default=60, help="frames per cell (default 60)")
    p.add_argument("--every", type=int, default=1, help="quality measured on every k-th frame (default 1)")
    p.add_argument("--preset", choices=list(PRESET_NAMES), default="balanced", help="default balanced")
    p.add_argument("--out", type=Path, required=True, help="JSON lines, appended to; cells in it are skipped")
    p.add_argument("--markdown", action="store_true", help="then print the file's results as tables")
    args = p.parse_args(argv)
    if args.frames < WARMUP_FRAMES + 5:
        p.error(f"--frames must be at least {WARMUP_FRAMES + 5}")
    if args.every < 1:
        p.error("--every must be 1 or more")
    if any(not 0.0 <= k <= 1.0 for k in args.likeness or []):
        p.error("--likeness must be 0 to 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sources, clips = media_files(args.sources, IMAGES), media_files(args.clips, VIDEOS)
    cells = [Cell(s, c, k) for s in sources for c in clips for k in args.likeness or [0.0]]

    def emit(line: str) -> None:  # progress on stderr, so stdout is the tables alone
        print(line, file=sys.stderr, flush=True)

    ran, failed = run_grid(cells, args.out, args.frames, args.every, args.preset, emit)
    emit(f"grid: {ran} run, {len(cells) - ran - failed} already in {args.out}, {failed} failed")
    if args.markdown:
        print(markdown(read_lines(args.out)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
