"""`vcamswap bench`: speed, steadiness, accuracy and identity of engines and presets on a real clip.

Each configuration (engine x preset x tracking on/off) gets:

* throughput: the file fed as fast as the pipeline takes it (Capture(realtime=False)): fps, per-stage ms
  (median, p95), detector calls per frame;
* realtime (--realtime): the file paced like a camera at its fps: output fps, dropped frames, capture ->
  publish latency p50/p95/p99;
* steadiness: the tracker alone over the clip. jitter = RMS residual of the 5 keypoints about a smooth
  trajectory (Savitzky-Golay, 0.5 s) on the stillest 3 s of the clip, i.e. motion the head did not make;
  accuracy = mean distance of the keypoints from a fresh detection on the same frame; track losses per
  minute. The reference is detection + landmarks on every frame with no smoothing, measured in the same run;
* batch (--batch 1,2,4, alone): the neural swap model for N faces of a frame, one call each against one
  batched call (tools/bench/batching.py), on --models or the random-weight architecture models;
* identity (--quality): dlib's face descriptor (an independent recogniser) of the output face against the
  source face and against the person in front of the camera, frame by frame;
* realism (--quality, tools/bench/realism.py): foreign pixels, tone, seam, occluders, under the nose;
* expression and flicker (--quality, tools/bench/expression.py): mouth r / eye r = Pearson correlation over the
  measured frames of the output's mouth opening (inner lips' gap over the inter-ocular distance) / eye aspect
  ratio with the camera's, each read from its own 68 landmarks ("n/a" under 5 frames or when a series does not
  change); flicker = the face's frame-to-frame change (mean grey difference in the skin), output over camera,
  summed over pairs of measured frames one step apart (1 = as much as the camera's face, above 1 = flickers).

--quality measures every k-th frame of the throughput pass, a fixed step (--measure-every, else the step
that gives at most 60 frames: every frame up to 60 frames, every 2nd up to 120, ...), so every flicker pair
spans the same time. `python -m vcamswap.tools.bench.grid` runs it over source photos x clips x likeness.

`--engine inswapper` without installed weights runs models with inswapper_128's and det_10g's architecture
and random weights (the cost is real, the picture is not) with faces found by BlazeFace; the output says so.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from vcamswap.capture.demo import demo_face
from vcamswap.choices import PRECISIONS, PRESET_NAMES
from vcamswap.tools.bench.batching import run_batch_bench
from vcamswap.tools.bench.metrics import STEADY_MAX, WARMUP_FRAMES
from vcamswap.tools.bench.report import LEGEND, clean_json, table, to_json
from vcamswap.tools.bench.rig import random_weight_models
from vcamswap.tools.bench.run import BenchOptions, run_bench

log = logging.getLogger("vcamswap.bench")


def register(sub: Any) -> None:
    p = sub.add_parser("bench", help="measure speed, steadiness and identity of engines and presets on a clip")
    p.add_argument("--input", help="a video file (a real face; see docs/presets.md); needed except with --batch")
    p.add_argument("--engine", action="append", choices=["lite", "inswapper", "remote"],
                   help="repeatable (default lite)")
    p.add_argument("--server", help="remote engine: grpc://HOST:PORT or https://HOST of 'vcamswap serve'")
    p.add_argument("--server-ca", help="remote engine: the CA that signed the server's TLS certificate")
    p.add_argument("--token-file", help="remote engine: the server's token")
    p.add_argument("--remote-codec", default="jpeg:90", help="remote engine: raw or jpeg:Q in the pipeline passes")
    p.add_argument("--remote-in-flight", type=int, default=4, help="remote engine: requests in flight (default 4)")
    p.add_argument("--delay-ms", type=delays_arg, metavar="MS,MS,...",
                   help="remote engine: delays added each way, one pass each (e.g. 0,40,100)")
    p.add_argument("--no-remote-rates", dest="remote_rates", action="store_false",
                   help="remote engine: only the pipeline passes, not the swaps/s with N in flight (16 s a delay)")
    p.add_argument("--preset", action="append", choices=list(PRESET_NAMES), help="repeatable (default all)")
    p.add_argument("--likeness", type=float, action="append",
                   help="lite engine: a likeness 0..1 to measure, repeatable, interleaved (default 0)")
    p.add_argument("--frames", type=int, default=300, help="frames per pass (default 300, at most the file's)")
    p.add_argument("--realtime", action="store_true", help="also run paced like a camera: output fps, latency")
    p.add_argument("--no-throughput", dest="throughput", action="store_false", help="skip the as-fast-as-possible pass")
    p.add_argument("--tracking", choices=["on", "off", "both"], default="both",
                   help="tracking between detections, detection on every frame, or both (default)")
    p.add_argument("--quality", action="store_true",
                   help="identity with dlib's recogniser ('vcamswap[eval]'), realism, expression (mouth r, eye r) "
                        "and flicker of the output against the camera")
    p.add_argument("--measure-every", type=int, default=0, metavar="K",
                   help="--quality on every K-th frame (default: the step that gives at most 60 frames)")
    p.add_argument("--adaptive", action="store_true", help="adaptive quality on in the realtime pass")
    p.add_argument("--repeat", type=int, default=1,
                   help="timed passes per configuration, interleaved; fps is their median (default 1)")
    p.add_argument("--steady-frames", type=int, default=0,
                   help=f"frames for jitter/accuracy/losses (default: the whole file, at most {STEADY_MAX})")
    p.add_argument("--face", help="source face image (default: the demo face)")
    p.add_argument("--models", help="models folder for the neural engine")
    p.add_argument("--provider", help="onnxruntime execution provider")
    p.add_argument("--precision", choices=list(PRECISIONS), help="neural swap model precision (default auto)")
    p.add_argument("--json", type=Path, help="write every figure to this JSON file")
    p.add_argument("--batch", type=_counts, metavar="N,N,...",
                   help="only time the neural swap for N faces per frame: one call each against one batched call")
    p.add_argument("--runs", type=int, default=5, help="timed runs per face count with --batch (default 5)")
    p.set_defaults(func=cmd_bench)


def delays_arg(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give whole milliseconds, e.g. 0,40,100") from None
    if any(not 0 <= v <= 5000 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: each delay must be 0 to 5000 ms")
    return values


def _counts(text: str) -> list[int]:
    try:
        counts = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of face counts like 1,2,4") from None
    if not counts or any(not 1 <= c <= 16 for c in counts):
        raise argparse.ArgumentTypeError(f"{text!r}: face counts must be 1 to 16")
    return counts


def cmd_batch(args: argparse.Namespace) -> int:
    models = Path(args.models).expanduser() if args.models else random_weight_models()
    figures = run_batch_bench(models, args.provider, args.batch, max(1, args.runs), lambda s: print(s, flush=True))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        rows = [{**f._asdict(), "speedup": f.speedup} for f in figures]
        args.json.write_text(json.dumps({"models": str(models), "batch": rows}, indent=2) + "\n")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    if args.batch:
        return cmd_batch(args)
    if not args.input:
        print("vcamswap: error: bench needs --input VIDEO (or --batch)", file=sys.stderr)
        return 2

    if args.frames < WARMUP_FRAMES + 5:
        print(f"vcamswap: error: --frames must be at least {WARMUP_FRAMES + 5}", file=sys.stderr)
        return 2
    if args.measure_every < 0:
        print("vcamswap: error: --measure-every must be 1 or more", file=sys.stderr)
        return 2
    if "remote" in (args.engine or []) and not args.server:
        print("vcamswap: error: --engine remote needs --server grpc://HOST:PORT", file=sys.stderr)
        return 2
    tracking = {"on": [True], "off": [False], "both": [True, False]}[args.tracking]
    opts = BenchOptions(
        input=args.input,
        engines=args.engine or ["lite"],
        presets=args.preset or list(PRESET_NAMES),
        frames=args.frames,
        realtime=args.realtime,
        throughput=args.throughput,
        tracking=tracking,
        quality=args.quality,
        face=args.face or str(demo_face()),
        models=args.models,
        provider=args.provider,
        precision=args.precision,
        adaptive=args.adaptive,
        likeness=tuple(args.likeness or [0.0]),
        repeat=max(1, args.repeat),
        steady_frames=args.steady_frames,
        remote={"server": args.server, "token_file": args.token_file, "codec_name": args.remote_codec,
                "in_flight": args.remote_in_flight, "ca_file": args.server_ca} if args.server else None,
        delays=args.delay_ms,
        remote_rates=args.remote_rates,
        measure_every=args.measure_every,
    )
    results, meta = run_bench(opts, lambda line: print(line, flush=True))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(clean_json(to_json(results, meta)), indent=2, allow_nan=False) + "\n")
    for note in meta["notes"]:  # type: ignore[attr-defined]
        print(f"note: {note}")
    print()
    print(LEGEND)
    print(table(results), flush=True)
    return 0
