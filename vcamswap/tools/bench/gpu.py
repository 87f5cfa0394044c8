"""The GPU benchmark in one go, offline, in a few minutes on an NVIDIA machine:

    python -m vcamswap.tools.bench.gpu [--out DIR] [--dlc DEEP_LIVE_CAM_DIR] [--provider cpu --frames 20 ...]

1. builds models of inswapper_128's, det_10g's, GHOST's three generators' and the BiSeNet parser's
   architecture (random weights, real cost: modelstore.arch, arch_ghost) and fp16 copies with `models
   convert --fp16`'s converter (tools/bench/gpu_models.py says which copies the engine runs);
2. for CUDA fp32, CUDA fp16 and TensorRT fp16 runs `vcamswap bench`'s passes on a 1280x720 clip (the demo
   clip at that size unless --input) for every model (gpu_models.PASSES: inswapper_128 at boost 128, 256
   and 512, ghost_1/2/3_256, inswapper_128 with --occlusion parser): fps, per-stage ms, capture -> publish
   latency p95;
3. per variant, the engine's swap alone (1 face) and `swap_many` with 1, 2 and 4 faces (inswapper batches
   them in one call, GHOST runs one call each): ms per call and per face, for inswapper_128 and each GHOST;
   one face at each pixel boost (128, 256, 512): ms per face and the ratios to 128; and each GHOST and the
   parser on a bare session (fp16: the converted copies);
4. with --dlc, Deep-Live-Cam's `process_frame` on the same models, clip and GPU, and our fps over its fps.

Each part runs in its own try: a failure is reported in one line and the rest goes on. A table goes to
stdout, every figure to DIR/gpu_bench.json. `--provider cpu` runs the CPU variants (fp32, fp16) instead, as
a dry run of the whole script (use a small --width/--height/--frames/--channels there; --channels also
narrows GHOST and the parser by the same factor). --passes picks some of the passes by label.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import numpy as np

from vcamswap.engines import SwapItem, create_engine
from vcamswap.modelstore.fp16 import fp16_files, make_fp16
from vcamswap.presets import get_preset
from vcamswap.tools.bench.gpu_models import FACE_COUNTS, PASSES, PassTarget, models_table, time_calls

log = logging.getLogger("vcamswap.bench")
T = TypeVar("T")


class Variant(NamedTuple):
    label: str
    provider: str
    precision: str


GPU_VARIANTS = (Variant("cuda fp32", "cuda", "fp32"), Variant("cuda fp16", "cuda", "fp16"),
                Variant("tensorrt fp16", "tensorrt", "fp16"))
CPU_VARIANTS = (Variant("cpu fp32", "cpu", "fp32"), Variant("cpu fp16", "cpu", "fp16"))


@dataclass
class Report:
    """Everything measured, and every part that failed (with its reason), for the JSON."""

    deadline: float = float("inf")  # time.perf_counter() past which parts are skipped, not started
    meta: dict[str, Any] = field(default_factory=dict)
    bench: dict[str, dict[str, Any]] = field(default_factory=dict)
    faces: dict[str, dict[str, Any]] = field(default_factory=dict)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)  # GHOST and the parser on bare sessions
    dlc: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: list[dict[str, str]] = field(default_factory=list)


def attempt(report: Report, part: str, fn: Callable[[], T], emit: Callable[[str], None]) -> T | None:
    """Run one part; a failure is one line on screen and an entry in the JSON, never the end of the run."""
    t0 = time.perf_counter()
    if t0 > report.deadline:
        report.errors.append({"part": part, "error": "skipped: past --max-seconds"})
        emit(f"-- {part}: skipped (past --max-seconds)")
        return None
    emit(f"-- {part} ...")
    try:
        value = fn()
    except Exception as e:  # any library, any reason: the other parts still run
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        report.errors.append({"part": part, "error": f"{type(e).__name__}: {reason}"})
        log.debug("%s failed:\n%s", part, traceback.format_exc())
        emit(f"-- {part}: FAILED ({type(e).__name__}: {reason})")
        return None
    emit(f"-- {part}: done in {time.perf_counter() - t0:.1f} s")
    return value


# ----------------------------------------------------------------------------------------------- parts


def build_models(folder: Path, channels: int) -> dict[str, Any]:
    # cv2 and onnxruntime load for the part that needs them; a failing part does not stop the others
    from vcamswap.tools.bench.rig import random_weight_models

    t0 = time.perf_counter()
    random_weight_models(folder, channels)
    built = time.perf_counter() - t0
    made = make_fp16(folder)
    # onnx loads only to build the models
    from vcamswap.modelstore.batch import ensure_batched
    from vcamswap.tools.bench.gpu_models import build_more

    ensure_batched(folder)  # as `models download` does: swap_many's faces and boost tiles in one call

    fp16_s = round(time.perf_counter() - t0 - built, 1)
    return {"folder": str(folder), "channels": channels, "build_s": round(built, 1), "fp16": str(made.copy),
            "fp16_s": fp16_s, "more": build_more(folder, channels)}


def require_provider(v: Variant) -> None:
    """Refuse a variant whose provider this onnxruntime lacks (the engine would quietly run on another)."""
    # onnxruntime loads for the part that needs it; a failing part does not stop the others
    from vcamswap.runtime import providers

    if v.provider != "cpu" and v.provider not in providers.present():
        raise RuntimeError(f"{v.provider} is not in this onnxruntime build (present: "
                           f"{', '.join(providers.present())})")


def bench_variant(v: Variant, clip: str, models: Path, frames: int, preset: str, target: PassTarget
                  ) -> dict[str, Any]:
    """`vcamswap bench`'s throughput and realtime passes for one provider, precision and model."""
    # cv2 and onnxruntime load for the part that needs them; a failing part does not stop the others
    from vcamswap.capture.demo import demo_face
    from vcamswap.tools.bench.rig import PassKnobs
    from vcamswap.tools.bench.run import BenchOptions, run_bench

    require_provider(v)
    knobs = PassKnobs(target.model, target.boost, target.occlusion, str(models), v.provider)
    opts = BenchOptions(input=clip, engines=["inswapper"], presets=[preset], frames=frames, realtime=True,
                        throughput=True, tracking=[True], quality=False, face=str(demo_face()), models=str(models),
                        provider=v.provider, precision=v.precision, steady_frames=frames, knobs=knobs)
    results, _ = run_bench(opts, lambda line: log.info("%s", line))
    r = results[0]
    thr, rt = r.throughput, r.realtime
    return {
        "fps": thr.fps if thr else None,
        "stage_ms": thr.stage_ms if thr else {},
        "realtime_fps": rt.fps if rt else None,
        "latency_ms": rt.latency_ms if rt else {},
        "dropped": rt.dropped if rt else None,
        "late": rt.late if rt else None,
        "stale": rt.stale if rt else None,
    }


def faces_variant(v: Variant, models: Path, frame: np.ndarray, runs: int) -> dict[str, Any]:
    """The engine alone: swap() on one face, swap_many() on 1/2/4 faces of one frame (through the protocol)."""
    # cv2 and onnxruntime load for the part that needs them; a failing part does not stop the others
    from vcamswap.capture.demo import demo_face
    from vcamswap.compose.align import align
    from vcamswap.faces.analyzer import FaceAnalyzer
    from vcamswap.faces.detector import BlazeFaceDetector
    from vcamswap.faces.landmarker import FaceMesh
    from vcamswap.imageio import load_image

    require_provider(v)
    engine = create_engine("inswapper", models_dir=models, provider=v.provider, precision=v.precision)
    analyzer = FaceAnalyzer(BlazeFaceDetector(), FaceMesh())
    source_img = load_image(demo_face())
    source_geom, target_geom = analyzer(source_img), analyzer(frame)
    if source_geom is None or target_geom is None:
        raise RuntimeError("no face found in the source photo or the clip's first frame")
    preset = get_preset("balanced")
    size = engine.crop_size(preset)
    crop, m = align(frame, target_geom.kps, engine.template(size), size)
    item = SwapItem(crop, target_geom.transformed(m), engine.prepare_source(source_img, source_geom))
    out: dict[str, Any] = {
        "placement": getattr(engine, "placement", dict)(),
        "swap_1_face_ms": time_calls(lambda: engine.swap(item.crop, item.face, item.source, preset), runs),
    }
    for n in FACE_COUNTS:
        t = time_calls(lambda n=n: engine.swap_many([item] * n, preset), runs)  # type: ignore[misc]
        out[f"swap_many_{n}_ms"] = t
        out[f"swap_many_{n}_ms_per_face"] = round(t["median"] / n, 3)
    from vcamswap.tools.bench.boost import boost_costs

    out.update(boost_costs(engine, frame, target_geom, item.source, runs))  # pixel boost: ms per face
    from vcamswap.tools.bench.gpu_models import ghost_faces

    out["ghost"] = ghost_faces(engine, frame, target_geom, item.source, runs)
    out["placement"] = getattr(engine, "placement", dict)()  # now with the GHOST sessions
    return out


def sessions_variant(v: Variant, models: Path, runs: int) -> dict[str, Any]:
    from vcamswap.tools.bench.gpu_models import session_costs

    require_provider(v)
    return session_costs(v.provider, v.precision, models, runs)


def dlc_variant(v: Variant, dlc_dir: Path, models: Path, clip: str, frames: int, work: Path) -> dict[str, Any]:
    # cv2 and onnxruntime load for the part that needs them; a failing part does not stop the others
    from vcamswap.capture.demo import demo_face
    from vcamswap.faces.detector import BlazeFaceDetector
    from vcamswap.imageio import load_image
    from vcamswap.runtime import providers
    from vcamswap.tools.bench.dlc import run_dlc
    from vcamswap.tools.bench.passes import read_frames

    require_provider(v)
    files = fp16_files(models)
    # Deep-Live-Cam gives TensorRT no engine cache: every start would rebuild for minutes, so it runs on CUDA.
    chain = list(providers.choose("cuda" if v.provider == "tensorrt" else v.provider).chain)
    run = run_dlc(dlc_dir, models, files.copy if v.precision == "fp16" else files.source, chain,
                  list(read_frames(clip, frames)), load_image(demo_face()), BlazeFaceDetector(), work)
    return asdict(run)


# ----------------------------------------------------------------------------------------------- report


def table(report: Report) -> str:
    head = ["variant", "fps", "rt fps", "p95 ms", "swap ms", "track ms", "paste ms", "1 face ms",
            "x1 ms/f", "x2 ms/f", "x4 ms/f", "b256/128", "b512/128", "DLC fps", "ours/DLC", "placement"]
    rows = [head]
    for label in dict.fromkeys([*(k.split(" | ")[0] for k in report.bench), *report.faces, *report.dlc]):
        b, f, d = report.bench.get(f"{label} | {PASSES[0].label}", {}), report.faces.get(label, {}), \
            report.dlc.get(label, {})
        stage = b.get("stage_ms", {})

        def st(name: str, stage: dict[str, Any] = stage) -> str:
            s = stage.get(name)
            return f"{s['median']:.1f}/{s['p95']:.1f}" if s and s.get("n") else "-"

        def num(x: object, spec: str = ".1f") -> str:
            return format(x, spec) if isinstance(x, (int, float)) else "-"

        ratio = b.get("fps") / d["fps"] if b.get("fps") and d.get("fps") else None
        rows.append([
            label, num(b.get("fps")), num(b.get("realtime_fps")), num(b.get("latency_ms", {}).get("p95"), ".0f"),
            st("swap"), st("track"), st("paste"), num(f.get("swap_1_face_ms", {}).get("median"), ".2f"),
            *[num(f.get(f"swap_many_{n}_ms_per_face"), ".2f") for n in FACE_COUNTS],
            num(f.get("boost_256_over_128"), ".2f"), num(f.get("boost_512_over_128"), ".2f"),
            num(d.get("fps")), num(ratio, ".2f"), f.get("placement", {}).get("inswapper_128", "-"),
        ])
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def machine() -> dict[str, Any]:
    import os
    import platform

    import onnxruntime as ort

    # onnxruntime loads for the part that needs it; a failing part does not stop the others
    from vcamswap.runtime import gpu, providers

    return {"platform": platform.platform(), "cpus": os.cpu_count(), "onnxruntime": ort.__version__,
            "providers": providers.available(), "compute_capability": gpu.compute_capability()}


# ----------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m vcamswap.tools.bench.gpu", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("gpu-bench"), help="models, caches and JSON (default ./gpu-bench)")
    ap.add_argument("--provider", choices=["gpu", "cpu"], default="gpu",
                    help="gpu: CUDA fp32, CUDA fp16, TensorRT fp16 (default); cpu: a dry run on the CPU")
    ap.add_argument("--input", help="the clip (default: the demo clip made at --width x --height)")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--frames", type=int, default=150, help="frames per bench pass (default 150)")
    ap.add_argument("--runs", type=int, default=50, help="timed calls per swap measurement (default 50)")
    ap.add_argument("--channels", type=int, default=1024,
                    help="width of the swap model (1024 = inswapper_128's cost; less for a quick CPU dry run)")
    ap.add_argument("--preset", default="balanced")
    ap.add_argument("--passes", default=",".join(t.label for t in PASSES),
                    help="bench passes by label, comma-separated (default all: " + ", ".join(t.label for t in PASSES)
                    + ")")
    ap.add_argument("--dlc", type=Path, help="a Deep-Live-Cam checkout: time its process_frame alongside")
    ap.add_argument("--max-seconds", type=float, default=480,
                    help="start no part after this many seconds (default 480), so a slow build cannot eat the slot")
    ap.add_argument("-v", "--verbose", action="store_true", help="show the bench's own progress lines")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    # cv2 and onnxruntime load for the parts that need them
    from vcamswap.capture.demo import demo_clip
    from vcamswap.tools.bench.passes import read_frames

    args = parse_args(argv)
    unknown = {p.strip() for p in args.passes.split(",")} - {t.label for t in PASSES}
    if unknown:
        raise SystemExit(f"vcamswap: error: unknown pass {', '.join(sorted(unknown))}; choose from "
                         f"{', '.join(t.label for t in PASSES)}")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    out: Path = args.out.expanduser()
    out.mkdir(parents=True, exist_ok=True)
    models = out / "models"
    emit: Callable[[str], None] = lambda line: print(line, flush=True)  # noqa: E731
    t0 = time.perf_counter()
    report = Report(deadline=t0 + args.max_seconds)
    report.meta["machine"] = attempt(report, "machine", machine, emit)
    report.meta["models"] = attempt(report, "models", lambda: build_models(models, args.channels), emit)
    clip = args.input or attempt(report, "clip", lambda: str(demo_clip(args.width, args.height, 30.0,
                                                                       seconds=args.frames / 30.0 + 2)), emit)
    report.meta.update(clip=clip, frames=args.frames, preset=args.preset, runs=args.runs)
    first = next(iter(read_frames(clip, 1)), None) if clip else None
    variants = CPU_VARIANTS if args.provider == "cpu" else GPU_VARIANTS
    passes = [t for t in PASSES if t.label in {p.strip() for p in args.passes.split(",")}]
    if report.meta["models"] and clip:
        for v in variants:
            for t in passes:
                b = attempt(report, f"bench {v.label} | {t.label}",
                            partial(bench_variant, v, clip, models, args.frames, args.preset, t), emit)
                if b is not None:
                    report.bench[f"{v.label} | {t.label}"] = b
            if first is not None:
                f = attempt(report, f"faces {v.label}", partial(faces_variant, v, models, first, args.runs), emit)
                if f is not None:
                    report.faces[v.label] = f
            s = attempt(report, f"sessions {v.label}", partial(sessions_variant, v, models, args.runs), emit)
            if s is not None:
                report.sessions[v.label] = s
            if args.dlc is not None:
                d = attempt(report, f"Deep-Live-Cam {v.label}",
                            partial(dlc_variant, v, args.dlc.expanduser(), models, clip, args.frames, out), emit)
                if d is not None:
                    report.dlc[v.label] = d
    report.meta["seconds"] = round(time.perf_counter() - t0, 1)
    path = out / "gpu_bench.json"
    path.write_text(json.dumps({k: v for k, v in asdict(report).items() if k != "deadline"}, indent=2,
                               default=str) + "\n")
    print()
    print(table(report))
    print()
    print(models_table(report.bench, report.faces, report.sessions, args.width, args.height))
    print(f"\n{len(report.errors)} part(s) failed; figures in {path} ({report.meta['seconds']} s)")
    return 1 if report.errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
