"""The bench's table and JSON."""

from __future__ import annotations

import logging
import math
from dataclasses import asdict

import numpy as np

from vcamswap.tools.bench.metrics import RunResult

log = logging.getLogger("vcamswap.bench")


def _fmt(v: float | None, spec: str = ".1f") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return format(v, spec)


TABLE_COLUMNS = (
    "config", "fps", "rt fps", "p95 ms", "drop", "late", "stale", "det/f", "track ms", "swap ms", "paste ms",
    "jitter px", "vs ref", "acc px", "loss/min", "id src", "id tgt", "closer", "foreign", "tone dE", "seam",
    "occl", "mouth r", "eye r", "flicker",
)


LEGEND = (
    "fps: as fast as possible | rt fps, p95 ms, drop, late, stale: paced like a camera (output fps, "
    "capture->publish latency, dropped frames, swaps pasted a frame or more after their own frame, faces shown "
    "unswapped as their newest swap was too old for the pose) | det/f: detector calls per frame | stage ms: "
    "median/p95 | jitter: keypoint px on a still stretch, vs ref = against detection on every frame | "
    "acc px: from a fresh detection | id src/tgt: dlib "
    "distance of the output face to the source / to the camera's person, closer: frames closer to the source | "
    "foreign: skin pixels the swap brought in (mean/max) | tone dE: cheeks against the camera's | seam, occl: "
    "edges along the swap's border / around the eyes, output over camera | mouth r, eye r: correlation over the "
    "frames of the output's mouth opening / eye openness with the camera's (n/a: under 5 frames or no change) | "
    "flicker: frame-to-frame change of the face, output over camera (1 = as much, > 1 flickers)"
)


def corr(v: float | None) -> str:
    """A correlation, 'n/a' where there is none (too few frames, a constant series)."""
    return "n/a" if v is None or math.isnan(v) else f"{v:.2f}"


def _stage(stage_ms: dict[str, dict[str, float]], name: str) -> str:
    """'median/p95' of one stage."""
    s = stage_ms.get(name)
    return f"{s['median']:.1f}/{s['p95']:.1f}" if s and s.get("n") else "-"


def table(results: list[RunResult]) -> str:
    rows = [list(TABLE_COLUMNS)]
    for r in results:
        t, rt, st, idt = r.throughput, r.realtime, r.steadiness, r.identity
        speed = t or rt
        stage = speed.stage_ms if speed else {}
        rows.append([
            r.config.label,
            _fmt(t.fps if t else None),
            _fmt(rt.fps if rt else None),
            _fmt(rt.latency_ms.get("p95") if rt else None, ".0f"),
            str(rt.dropped) if rt else "-",
            str(rt.late) if rt else "-",
            str(rt.stale) if rt else "-",
            _fmt(speed.detector_calls_per_frame if speed else st.detector_calls_per_frame if st else None, ".3f"),
            _stage(stage, "track"),
            _stage(stage, "swap"),
            _stage(stage, "paste"),
            _fmt(st.jitter_px if st else None, ".3f"),
            _fmt(st.jitter_ratio if st else None, ".2f"),
            _fmt(st.accuracy_px if st else None, ".2f"),
            _fmt(st.losses_per_min if st else None, ".1f"),
            _fmt(idt.to_source if idt else None, ".3f"),
            _fmt(idt.to_target if idt else None, ".3f"),
            _fmt(idt.closer_to_source * 100 if idt else None, ".0f") + ("%" if idt else ""),
            f"{q.foreign_mean:.3f}/{q.foreign_max:.3f}" if (q := r.realism) else "-",
            _fmt(q.tone_delta_e if q else None),
            _fmt(q.seam if q else None, ".2f"),
            _fmt(q.occluders if q else None, ".2f"),
            corr(q.mouth_corr) if q else "-",
            corr(q.eye_corr) if q else "-",
            corr(q.flicker) if q else "-",
        ])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
             for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def to_json(results: list[RunResult], meta: dict[str, object]) -> dict[str, object]:
    runs = []
    for r in results:
        d = asdict(r)
        d["config"] = {**asdict(r.config), "label": r.config.label}
        runs.append(d)
    ratios = _ratios(results)
    return {**meta, "runs": runs, "ratios": ratios}


def _ratios(results: list[RunResult]) -> dict[str, dict[str, float]]:
    """Tracking on versus detection on every frame, per engine and preset, from this run's medians."""
    out: dict[str, dict[str, float]] = {}
    by = {(r.config.engine, r.config.preset, r.config.tracking): r for r in results}
    for (engine, preset, tracking), on in by.items():
        off = by.get((engine, preset, False))
        if not tracking or off is None:
            continue
        d: dict[str, float] = {}
        if on.throughput and off.throughput and off.throughput.fps:
            d["fps_tracking_vs_detect_all"] = round(on.throughput.fps / off.throughput.fps, 3)
        if on.steadiness and off.steadiness and off.steadiness.jitter_px:
            d["jitter_tracking_vs_detect_all"] = round(on.steadiness.jitter_px / off.steadiness.jitter_px, 3)
        if on.throughput and off.throughput and off.throughput.detector_calls_per_frame:
            d["detector_calls_tracking_vs_detect_all"] = round(
                on.throughput.detector_calls_per_frame / off.throughput.detector_calls_per_frame, 3
            )
        out[f"{engine}/{preset}"] = d
    return out


def clean_json(o: object) -> object:
    """Plain JSON values: NaN and infinities become null (strict JSON has no NaN), numpy scalars Python's."""
    if isinstance(o, dict):
        return {str(k): clean_json(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [clean_json(v) for v in o]
    if isinstance(o, np.generic):
        o = o.item()
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return o
