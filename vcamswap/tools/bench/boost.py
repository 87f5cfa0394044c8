"""What pixel boost costs: the neural engine's swap of one face at 128, 256 and 512, in ms per face.

    python -m vcamswap.tools.bench.boost [--models DIR] [--provider cpu] [--runs 5] [--channels 1024]

Without --models it times random-weight models of inswapper_128's real architecture and cost (built once in
the cache dir, as `vcamswap bench` does), with the dynamic-batch copy `vcamswap models download` makes, so
each boost's tiles go to the model in one call. The runs of the three boosts are interleaved, so a machine
that gets busier mid-run slows them alike and the ratios to 128 hold. `python -m vcamswap.tools.bench.gpu`
reports the same figures per GPU variant.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from vcamswap.presets import BOOSTS, get_preset, with_overrides
from vcamswap.types import FaceGeometry


def boost_costs(engine: Any, frame: np.ndarray, face: FaceGeometry, source: Any, runs: int) -> dict[str, Any]:
    """Median ms of engine.swap on the face of `frame` aligned at each boost, and each one's ratio to 128."""
    from vcamswap.compose.align import align

    calls = []
    for b in BOOSTS:
        preset = with_overrides(get_preset("balanced"), boost=b)
        size = engine.crop_size(preset)
        crop, m = align(frame, face.kps, engine.template(size), size)
        calls.append((b, crop, face.transformed(m), preset))
    ms: dict[int, list[float]] = {b: [] for b in BOOSTS}
    for run in range(runs + 1):  # the first round warms up
        for b, crop, in_crop, preset in calls:
            t0 = time.perf_counter()
            engine.swap(crop, in_crop, source, preset)
            if run:
                ms[b].append(1000.0 * (time.perf_counter() - t0))
    med = {b: float(np.median(v)) for b, v in ms.items()}
    out: dict[str, Any] = {f"boost_{b}_ms_per_face": round(med[b], 3) for b in BOOSTS}
    out.update({f"boost_{b}_over_128": round(med[b] / med[BOOSTS[0]], 2) for b in BOOSTS[1:]})
    out["batched"] = getattr(engine, "batch_session", None) is not None
    return out


def measure(models: Path, provider: str | None, runs: int, input_path: str | None) -> dict[str, Any]:
    from vcamswap.capture.demo import demo_clip, demo_face
    from vcamswap.engines import create_engine
    from vcamswap.faces.analyzer import FaceAnalyzer
    from vcamswap.faces.detector import BlazeFaceDetector
    from vcamswap.faces.landmarker import FaceMesh
    from vcamswap.imageio import load_image
    from vcamswap.tools.bench.passes import read_frames

    engine = create_engine("inswapper", models_dir=models, provider=provider)
    analyzer = FaceAnalyzer(BlazeFaceDetector(), FaceMesh())
    frame = next(iter(read_frames(input_path or str(demo_clip(1280, 720)), 1)))
    source_img = load_image(demo_face())
    target, source = analyzer(frame), analyzer(source_img)
    if target is None or source is None:
        raise SystemExit("vcamswap: error: no face found in the source photo or the clip's first frame")
    costs = boost_costs(engine, frame, target, engine.prepare_source(source_img, source), runs)
    return {"placement": getattr(engine, "placement", dict)(), **costs}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vcamswap.tools.bench.boost", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=Path, help="an installed models folder (default: random-weight models)")
    ap.add_argument("--provider", help="onnxruntime provider (default: best present)")
    ap.add_argument("--runs", type=int, default=5, help="timed swaps per boost (default 5)")
    ap.add_argument("--channels", type=int, default=1024, help="random-weight model width (1024 = real cost)")
    ap.add_argument("--input", help="the clip or image whose first frame holds the face (default: demo clip)")
    args = ap.parse_args(argv)
    models = args.models
    if models is None:
        from vcamswap.modelstore.batch import ensure_batched
        from vcamswap.tools.bench.rig import cache_dir, random_weight_models

        narrow = cache_dir() / f"bench-random-weights-{args.channels}"  # the real-size folder stays as it is
        models = random_weight_models(None if args.channels == 1024 else narrow, args.channels)
        ensure_batched(models)
    r = measure(models.expanduser(), args.provider, max(1, args.runs), args.input)
    print(f"inswapper_128 on {r['placement']['inswapper_128']}, tiles batched: {'yes' if r['batched'] else 'no'}")
    for b in BOOSTS:
        ratio = f"  ({r[f'boost_{b}_over_128']:.2f}x 128)" if b != BOOSTS[0] else ""
        print(f"boost {b}: {r[f'boost_{b}_ms_per_face']:9.1f} ms per face, {(b // 128) ** 2:2d} tiles{ratio}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
