"""Runs every configuration, interleaved over repeats."""

from __future__ import annotations

import logging
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vcamswap.capture.source import Capture
from vcamswap.choices import parse_codec
from vcamswap.engines.remote import codec
from vcamswap.engines.remote.client import parse_server
from vcamswap.engines.remote.measure import pipelined_rate, server_stats
from vcamswap.faces.detector import BlazeFaceDetector
from vcamswap.faces.landmarker import FaceMesh
from vcamswap.faces.tracking import Tracker
from vcamswap.presets import get_preset
from vcamswap.tools.bench.delay import start_relay
from vcamswap.tools.bench.identity import Recognizer, identity
from vcamswap.tools.bench.metrics import (
    IDENTITY_SAMPLES,
    RANDOM_NOTE,
    SMOOTH_WINDOW,
    STEADY_MAX,
    STILL_FRAMES,
    Config,
    PassData,
    RunResult,
    Steadiness,
    summarize,
)
from vcamswap.tools.bench.passes import fresh_keypoints, speed_pass, steadiness, tracked_keypoints
from vcamswap.tools.bench.realism import Landmarks68
from vcamswap.tools.bench.realism import summarize as realism
from vcamswap.tools.bench.rig import EngineSetup, FixedFace, PassKnobs, make_engine, make_stages

log = logging.getLogger("vcamswap.bench")
RATE_S = 4.0  # seconds of each swaps/s figure


@dataclass
class BenchOptions:
    input: str
    engines: list[str]
    presets: list[str]
    frames: int
    realtime: bool
    throughput: bool
    tracking: list[bool]
    quality: bool
    face: str
    models: str | None = None
    provider: str | None = None
    precision: str | None = None  # the neural swap model's (auto when None)
    adaptive: bool = False
    likeness: tuple[float, ...] = (0.0,)  # the lite engine's likeness values, each a configuration
    repeat: int = 1
    steady_frames: int = 0  # 0: the whole file (up to STEADY_MAX frames)
    remote: dict[str, object] | None = None  # the remote engine's options (server, token_file, codec_name, ...)
    delays: list[int] | None = None  # ms added each way to the remote engine's requests, one pass each
    remote_rates: bool = True  # the remote engine's swaps/s with 1 and N in flight, per codec (16 s per delay)
    knobs: PassKnobs = PassKnobs()  # swap model, boost, occlusion over every preset (None: the preset's)
    measure_every: int = 0  # --quality on every k-th frame (0: the step giving at most IDENTITY_SAMPLES frames)
    steadiness: bool = True  # the tracker's jitter/accuracy pass over the clip (no engine)


def measure_step(frames: int) -> int:
    """The fixed step that measures at most IDENTITY_SAMPLES of `frames` frames."""
    return max(1, -(-frames // IDENTITY_SAMPLES))


def run_bench(opts: BenchOptions, emit: Callable[[str], None] = print) -> tuple[list[RunResult], dict[str, object]]:
    probe = Capture(input=opts.input, realtime=False)
    info = probe.info
    probe.stop()
    total = info.frame_count or opts.frames
    frames = min(opts.frames, total) if info.kind == "file" else opts.frames
    blaze = BlazeFaceDetector()
    mesh = FaceMesh()
    face = FixedFace(Path(opts.face), blaze, mesh)
    notes: list[str] = []
    rec: Recognizer | None = None
    landmarks = Landmarks68() if opts.quality else None
    if opts.quality:
        missing = Recognizer.available()
        if missing:
            notes.append(f"identity not measured: dlib is missing; {missing}")
            emit(f"note: {notes[-1]}")
        else:
            rec = Recognizer()
    load_before = _load_average()
    emit(f"input {info.name}: {info.width}x{info.height} @ {info.fps:.1f} fps, {frames} frames per pass; "
         f"{os.cpu_count()} CPU cores, load average {load_before:.2f}")
    # Steadiness is cheap (no engine): it covers the whole clip, however few frames the timed passes take.
    file_frames = info.frame_count if info.kind == "file" else 0
    steady_frames = opts.steady_frames or min(file_frames or frames, STEADY_MAX)
    if file_frames:
        steady_frames = min(steady_frames, file_frames)
    fresh = fresh_keypoints(opts.input, steady_frames, blaze, mesh) if opts.steadiness else None
    items: list[tuple[EngineSetup, Config]] = []
    servers: dict[str, dict[str, object]] = {}  # remote variant's label -> its options (server: a delay relay)
    for engine_name in opts.engines:
        for label, remote in _variants(engine_name, opts):
            engine_opts = {k: v for k, v in remote.items() if k != "meter"} if remote else None
            setup = make_engine(engine_name, opts.models, opts.provider, blaze, opts.precision, engine_opts)
            if remote:
                servers[label] = remote
            if setup.random_weights:
                notes.append(RANDOM_NOTE)
                emit(f"note: {RANDOM_NOTE}")
            items += [(setup, Config(label, p, t, k)) for p in opts.presets for t in opts.tracking
                      for k in opts.likeness]
    results = {config: RunResult(config) for _, config in items}
    # Quality is measured every `step`-th frame, a fixed step so the flicker's frame pairs all span the same time.
    step = opts.measure_every or measure_step(frames)
    sample_at = set(range(0, frames, step))
    source_image = face.library.get(face.name).image  # type: ignore[union-attr]
    thr: dict[Config, list[PassData]] = {c: [] for _, c in items}
    rt: dict[Config, list[PassData]] = {c: [] for _, c in items}
    # Repeats go round all configurations in turn, so a burst of other work on the machine hits them alike.
    for rep in range(opts.repeat):
        for setup, config in items:
            if opts.throughput:
                keep = sample_at if opts.quality and rep == 0 else None
                stages = make_stages(setup, face, mesh, blaze, config, False, False, opts.knobs)
                data, samples = speed_pass(*stages, opts.input, frames, False, keep)
                thr[config].append(data)
                emit(f"{config.label} [{rep + 1}/{opts.repeat}]: throughput {data.fps:.1f} fps")
                if rec is not None and samples:
                    results[config].identity = identity(samples, source_image, rec)
                if landmarks is not None and samples:
                    shots = [(x.index, x.frame, x.output) for x in samples if x.bbox is not None]
                    results[config].realism = realism(shots, landmarks, step)
            if opts.realtime:
                stages = make_stages(setup, face, mesh, blaze, config, opts.adaptive, True, opts.knobs)
                data, _ = speed_pass(*stages, opts.input, frames, True)
                rt[config].append(data)
                emit(f"{config.label} [{rep + 1}/{opts.repeat}]: realtime {data.fps:.1f} fps, dropped {data.dropped}")
    steady_cache: dict[tuple[object, ...], Steadiness] = {}
    for setup, config in items:
        result = results[config]
        result.throughput = summarize(thr[config]) if thr[config] else None
        result.realtime = summarize(rt[config]) if rt[config] else None
        if fresh is not None:
            preset = get_preset(config.preset)
            detector = setup.detector_for(preset) or blaze
            kind = "blaze" if setup.random_weights or detector is blaze else config.engine
            key = (kind, preset.det_size if kind != "blaze" else 0, preset.detect_interval, preset.smoothing,
                   config.tracking)
            if key not in steady_cache:
                track_detector = blaze if kind == "blaze" else detector
                tracker = Tracker(track_detector, mesh, preset.detect_interval, preset.smoothing, config.tracking)
                tracked = tracked_keypoints(opts.input, steady_frames, tracker)
                steady_cache[key] = steadiness(tracked, fresh, tracker, info.fps)
            result.steadiness = steady_cache[key]
        emit(_progress(result))
    meta: dict[str, object] = {
        "input": info.name,
        "width": info.width,
        "height": info.height,
        "source_fps": info.fps,
        "frames": frames,
        "steadiness_frames": steady_frames if opts.steadiness else 0,
        "measure_step": step,
        "face": opts.face,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            # Other work on the machine skews timings; these say how busy it was around the run.
            "load_average_before": round(load_before, 2),
            "load_average_after": round(_load_average(), 2),
        },
        "definitions": {
            "jitter_px": f"RMS residual of the 5 keypoints about a Savitzky-Golay trajectory ({SMOOTH_WINDOW} frames,"
                         f" order 2) on the stillest {STILL_FRAMES} frames",
            "accuracy_px": "mean distance of the tracked keypoints from detection + landmarks on the same frame",
            "reference": "tracking off: detection + landmarks on every frame, no smoothing",
            "identity": "dlib 128-d face descriptor distances (two photos of one person are usually < 0.6)",
            "realism": "tools/bench/realism.py: foreign = share of skin pixels > 20 delta E from the skin's median, "
                       "output minus camera; tone = cheeks' delta E output vs camera; seam = gradient along the "
                       "swap's edge, output / camera; occluders = edges around the eyes, output / camera; "
                       "under_nose = share of the band under the nose > 10 L* darker than the rest of the skin, output "
                       "minus camera; dark = share of the skin whose smoothed lightness is > 8 L* below the camera's "
                       "there, beyond the face's median shift",
            "expression": "tools/bench/expression.py, on every measure_step-th frame: mouth_corr / eye_corr = "
                          "Pearson r over the frames of the output's mouth opening (inner lips' gap / inter-ocular "
                          "distance) / eye aspect ratio against the camera's (null: under 5 frames or constant); "
                          "flicker = sum of mean |frame - previous| in the skin, output over camera, over frames "
                          "one step apart (1 = changes as much as the camera's face, > 1 flickers)",
        },
        "notes": notes,
    }
    if "remote" in opts.engines and opts.remote and opts.remote_rates:
        meta["remote"] = {label: remote_figures(remote, emit, label) for label, remote in servers.items()}
        meta["remote_delay"] = ("added with a TCP relay holding every byte the given ms each way (round trip + 2x); "
                                "the pipeline passes swap one request at a time, the swaps/s figures keep N in flight; "
                                "wire bytes: what the relay carried per swap each way (framing and TLS included)")
    return list(results.values()), meta


def _variants(engine: str, opts: BenchOptions) -> list[tuple[str, dict[str, object] | None]]:
    """One (label, remote options) per added delay for the remote engine; the engine itself otherwise."""
    if engine != "remote" or not opts.remote:
        return [(engine, None)]

    address = parse_server(str(opts.remote["server"]))
    out: list[tuple[str, dict[str, object] | None]] = []
    for ms in opts.delays or [0]:
        server = str(address)
        extra: dict[str, object] = {}
        if opts.delays:  # a relay at 0 ms too: it counts the bytes on the wire alike for every delay
            relay = start_relay(address.host, address.port, ms / 1000.0)
            server, extra = f"{address.scheme}://127.0.0.1:{relay.port}", {"meter": relay.meter}
        out.append((f"remote+{ms}ms" if opts.delays else "remote", {**opts.remote, "server": server, **extra}))
    return out


def remote_figures(remote: dict[str, object], emit: Callable[[str], None], label: str = "remote") -> dict[str, object]:
    """Swaps/s with one and with N requests in flight per codec, the round trip's parts, the server's batches.

    The pipeline passes above swap one request at a time; these say what keeping `in_flight` requests going
    gives, whatever the round trip."""
    server, token = str(remote["server"]), remote.get("token_file")
    token_file = str(token) if token else None
    n = int(str(remote.get("in_flight") or 4))
    meter = remote.get("meter")
    ca = str(remote["ca_file"]) if remote.get("ca_file") else None
    out: dict[str, object] = {}
    for codec_name in ("raw", "jpeg:90"):
        for k in sorted({1, n}):
            before = _stats(server, token_file, codec_name)
            r = pipelined_rate(server, token_file, seconds=RATE_S, in_flight=k, codec_name=codec_name,
                               meter=meter if callable(meter) else None, ca_file=ca)
            after = _stats(server, token_file, codec_name)
            extra: dict[str, object] = {}
            parts = f"encode {r['encode_ms']:.2f} ms"
            if before is not None and after is not None:
                calls = int(str(after["executions"])) - int(str(before["executions"]))
                reqs = int(str(after["requests"])) - int(str(before["requests"]))
                r["server_ms"] = float(str(after["compute_ms"])) + float(str(after["queue_ms"]))
                r["network_ms_p50"] = r["rtt_ms_p50"] - r["server_ms"] - r["encode_ms"]
                r["mean_batch"] = reqs / max(calls, 1)
                extra = {"batch_sizes": after["batch_sizes"]}
                parts += (f", server {r['server_ms']:.1f} ms, network {r['network_ms_p50']:.1f} ms), "
                          f"mean batch {r['mean_batch']:.2f}")
            out[f"{codec_name} x{k}"] = {**r, **extra}
            emit(f"{label} {codec_name}, {k} in flight: {r['swaps_per_s']:.1f} swaps/s, round trip p50 "
                 f"{r['rtt_ms_p50']:.1f} ms p95 {r['rtt_ms_p95']:.1f} ms ({parts}); crop "
                 f"{r['bytes_up']:.0f} B, on the wire {r['wire_up']:.0f} B up {r['wire_down']:.0f} B down")
    return out


def _stats(server: str, token_file: str | None, codec_name: str) -> dict[str, object] | None:
    """Triton's statistics where the server gives them (a stock Triton); None where it refuses (vcamswap serve)."""
    if parse_server(server).http:
        return None
    try:
        return server_stats(server, token_file, codec.swap_model(parse_codec(codec_name)))
    except Exception as e:  # refused or away: the rates stand without the server's own figures
        log.debug("no server statistics from %s: %s", server, e)
        return None


def _load_average() -> float:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # Windows
        return float("nan")


def _progress(r: RunResult) -> str:
    parts = [r.config.label]
    if r.throughput:
        parts.append(f"throughput {r.throughput.fps:.1f} fps")
    if r.realtime:
        parts.append(f"realtime {r.realtime.fps:.1f} fps p95 {r.realtime.latency_ms['p95']:.0f} ms "
                     f"dropped {r.realtime.dropped}")
    if r.steadiness:
        parts.append(f"jitter {r.steadiness.jitter_px:.3f} px (ref {r.steadiness.reference_jitter_px:.3f}) "
                     f"accuracy {r.steadiness.accuracy_px:.2f} px")
    if r.realism:
        q = r.realism
        parts.append(f"foreign {q.foreign_mean:.3f}/{q.foreign_max:.3f} tone dE {q.tone_delta_e:.1f} "
                     f"seam {q.seam:.2f} occluders {q.occluders:.2f} under nose {q.under_nose:.3f} "
                     f"dark {q.dark_mean:.3f}/{q.dark_max:.3f} "
                     f"mouth r {q.mouth_corr:.2f} eye r {q.eye_corr:.2f} flicker {q.flicker:.2f} ({q.landmarks})")
    if r.identity:
        parts.append(f"identity {r.identity.to_source:.3f}/{r.identity.to_target:.3f} "
                     f"closer {r.identity.closer_to_source:.0%}")
    return "; ".join(parts)
