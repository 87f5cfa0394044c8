"""The GPU benchmark's models beyond inswapper_128: GHOST's three generators and the face parser.

* `build_more` writes random-weight graphs of their real architecture (modelstore.arch_ghost) into the
  bench's models folder, a stand-in crossface_ghost (a 512x512 matmul: the converter runs once per source
  face, not per frame), and fp16 copies made with `models convert --fp16`'s converter (modelstore.fp16's
  half_model). `models convert --fp16` itself refuses them (it makes the swap model's copy, which keeps
  inswapper's emap), and the engine runs GHOST from its float32 file on CUDA (TensorRT builds fp16 kernels
  from it when fp16 is asked): so the copies are timed on bare sessions, as what an fp16 GHOST would gain.
* `PASSES`: what each `vcamswap bench` pass runs: inswapper_128 at each boost, each GHOST, and inswapper_128
  with `--occlusion parser` (the parser on every swapped crop).
* `ghost_faces`: each GHOST through the engine, one face and swap_many of 2 and 4 (GHOST does not batch:
  its exports take one face, so swap_many runs them one call each).
* `session_costs`: ms per call of each model file on a bare session of the variant's provider and precision.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from vcamswap.engines.ghost import CONVERTER, GHOST_MODELS
from vcamswap.modelstore.manifest import PARSER_MODEL
from vcamswap.presets import BOOSTS, get_preset

FACE_COUNTS = (1, 2, 4)
MORE_MARK = ".more-complete"  # in the models folder: GHOST, the parser and their fp16 copies are built


class PassTarget(NamedTuple):
    """One bench pass: its label and what it runs over the preset."""

    label: str
    model: str
    boost: int | None = None
    occlusion: str | None = None


PASSES: tuple[PassTarget, ...] = (
    *(PassTarget(f"inswapper_128 b{b}", "inswapper_128", boost=b) for b in BOOSTS),
    *(PassTarget(m, m) for m in GHOST_MODELS),
    PassTarget("inswapper_128 + parser", "inswapper_128", boost=BOOSTS[0], occlusion="parser"),
)


def channel_div(channels: int) -> int:
    """The GHOST/parser width divisor matching the swap model's --channels (1024: the real cost)."""
    return max(1, 1024 // max(1, channels))


def build_more(folder: Path, channels: int) -> dict[str, Any]:
    """GHOST's generators, its converter stand-in, the parser and the fp16 copies in `folder`; their MACs."""
    # onnx loads only to build the models
    import onnx

    from vcamswap.modelstore import arch_ghost, standins, standins_ghost
    from vcamswap.modelstore.fp16 import half_model

    mark = folder / MORE_MARK
    div = channel_div(channels)
    if mark.is_file() and mark.read_text().startswith(f"div {div}\n"):
        return {"div": div, "cached": True}
    t0 = time.perf_counter()
    macs = arch_ghost.build_models(folder, div)
    standins.save(standins_ghost.converter_model(), folder / f"{CONVERTER}.onnx")
    for name in (*GHOST_MODELS, PARSER_MODEL):
        half = half_model(onnx.load(str(folder / f"{name}.onnx")), name)
        arch_ghost.save(half, folder / f"{name}.fp16.onnx")
    mark.write_text(f"div {div}\n")
    return {"div": div, "gmacs": {k: round(v / 1e9, 2) for k, v in macs.items()},
            "build_s": round(time.perf_counter() - t0, 1)}


def time_calls(fn: Callable[[], object], runs: int, warmup: int = 3) -> dict[str, float]:
    """Median and p95 ms of `runs` calls of fn, after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    ms = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        ms.append(1000.0 * (time.perf_counter() - t0))
    a = np.asarray(ms)
    return {"median": round(float(np.median(a)), 3), "p95": round(float(np.percentile(a, 95)), 3), "runs": runs}


def ghost_faces(engine: Any, frame: np.ndarray, face: Any, source: Any, runs: int) -> dict[str, Any]:
    """Each GHOST model through the engine: swap() of one face, swap_many() of 1/2/4, ms per face."""
    from vcamswap.compose.align import align
    from vcamswap.engines import SwapItem

    out: dict[str, Any] = {}
    for name in GHOST_MODELS:
        preset = get_preset("balanced").with_knobs(model=name)
        size = engine.crop_size(preset)
        crop, m = align(frame, face.kps, engine.template(size), size)
        out[name] = _ghost_row(engine, SwapItem(crop, face.transformed(m), source), preset, runs)
    return out


def _ghost_row(engine: Any, item: Any, preset: Any, runs: int) -> dict[str, Any]:
    swap_1 = time_calls(lambda: engine.swap(item.crop, item.face, item.source, preset), runs, warmup=2)
    row: dict[str, Any] = {"swap_1_face_ms": swap_1, "batched": False}
    for n in FACE_COUNTS:
        t = time_calls(partial(engine.swap_many, [item] * n, preset), runs, warmup=2)
        row[f"swap_many_{n}_ms_per_face"] = round(t["median"] / n, 3)
    return row


def session_costs(provider: str, precision: str, folder: Path, runs: int) -> dict[str, Any]:
    """ms per call of GHOST's generators and the parser on bare sessions: the float32 files for fp32, the
    fp16 copies for fp16 (TensorRT: the float32 file with its fp16 kernels, as the engine runs it)."""
    from vcamswap.modelstore.arch_ghost import feeds_for
    from vcamswap.runtime import providers

    choice = providers.choose(provider)
    out: dict[str, Any] = {}
    for name in (*GHOST_MODELS, PARSER_MODEL):
        copy = precision == "fp16" and provider != "tensorrt"
        path = folder / f"{name}.fp16.onnx" if copy else folder / f"{name}.onnx"
        session = providers.create_session(path, choice, None, folder, fp16=precision == "fp16")
        feeds = feeds_for(name)
        first = session.get_outputs()[0].name
        out[name] = {"file": path.name, "on": providers.runs_on(session),
                     **time_calls(partial(session.run, [first], feeds), runs, warmup=2)}
    return out


# ----------------------------------------------------------------------------------------------- table


def models_table(bench: dict[str, dict[str, Any]], faces: dict[str, dict[str, Any]],
                 sessions: dict[str, dict[str, Any]], width: int, height: int) -> str:
    """One row per variant and model: ms per face (median, p95) through the engine, ms per face with 2 and 4
    faces, the bare-session ms, and the pass's fps at the clip's size and capture -> publish p95."""
    head = ["variant", "model", "ms/face", "p95 ms", "x2 ms/f", "x4 ms/f", "batched", "session ms",
            f"fps {width}x{height}", "rt fps", "latency p95"]
    rows = [head]
    variants = dict.fromkeys(label.split(" | ")[0] for label in [*bench, *faces, *sessions])
    for v in variants:
        f, s = faces.get(v, {}), sessions.get(v, {})
        for target in PASSES:
            b = bench.get(f"{v} | {target.label}", {})
            row = _face_cells(f, target) + [_num(s.get(_session_key(target), {}).get("median"), ".1f")]
            rows.append([v, target.label, *row, _num(b.get("fps")), _num(b.get("realtime_fps")),
                         _num(b.get("latency_ms", {}).get("p95"), ".0f")])
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def _session_key(target: PassTarget) -> str:
    return PARSER_MODEL if target.occlusion == "parser" else target.model


def _face_cells(f: dict[str, Any], target: PassTarget) -> list[str]:
    """ms/face, p95, x2, x4 and batched for the model of `target` from faces_variant's figures."""
    if target.model in GHOST_MODELS:
        g = f.get("ghost", {}).get(target.model, {})
        one = g.get("swap_1_face_ms", {})
        return [_num(one.get("median"), ".2f"), _num(one.get("p95"), ".2f"),
                _num(g.get("swap_many_2_ms_per_face"), ".2f"), _num(g.get("swap_many_4_ms_per_face"), ".2f"),
                "no" if g else "-"]
    if target.occlusion is not None:
        return ["-"] * 5
    b = target.boost or BOOSTS[0]
    boosted = f.get(f"boost_{b}_ms_per_face")
    if b != BOOSTS[0]:
        return [_num(boosted, ".2f"), "-", "-", "-", "yes" if f.get("batched") else "-"]
    one = f.get("swap_1_face_ms", {})
    return [_num(one.get("median"), ".2f"), _num(one.get("p95"), ".2f"),
            _num(f.get("swap_many_2_ms_per_face"), ".2f"), _num(f.get("swap_many_4_ms_per_face"), ".2f"),
            "yes" if f.get("batched") else ("no" if f else "-")]


def _num(x: object, spec: str = ".1f") -> str:
    return format(x, spec) if isinstance(x, (int, float)) else "-"
