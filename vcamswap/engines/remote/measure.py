"""How many swaps a second the server gives with N requests in flight, and what one costs: the figures that
choose `remote_in_flight` and `remote_codec`, used by `vcamswap bench` and the tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from vcamswap.capture.demo import demo_face
from vcamswap.choices import parse_codec
from vcamswap.engines.remote import codec
from vcamswap.engines.remote.client import TOKEN_HEADER, parse_server, read_token
from vcamswap.engines.remote.engine import RemoteEngine


def sample_crop() -> np.ndarray:
    """A real face at the crop's size: the shipped demo face, resized."""
    image = cv2.imread(str(demo_face()))
    if image is None:
        raise RuntimeError("the demo face cannot be read")
    return cv2.resize(image, (codec.SWAP_SIZE, codec.SWAP_SIZE), interpolation=cv2.INTER_AREA)


def pipelined_rate(server: str, token_file: str | Path | None, seconds: float = 4.0, in_flight: int = 4,
                   codec_name: str = "raw", meter: Callable[[], tuple[int, int]] | None = None,
                   ca_file: str | None = None) -> dict[str, float]:
    """Swaps per second with `in_flight` workers calling swap_crop back to back, and the round trips' ms.

    meter: bytes sent and received so far on the way to the server (a relay's counts); read around the timed
    swaps, it gives the wire bytes of one swap each way (headers, framing and TLS included)."""
    engine = RemoteEngine(server, token_file, codec_name=codec_name, in_flight=in_flight, timeout=5.0,
                          ca_file=ca_file)
    crop = sample_crop()
    latent = np.zeros((1, codec.LATENT_SIZE), np.float32)
    latent[0, :3] = 1.0 / np.sqrt(3.0)
    engine.swap_crop(crop, latent)  # warm the channel and the model
    rtts: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def work() -> None:
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            try:
                engine.swap_crop(crop, latent)
            except Exception:  # counted: a rate with failures is not a rate
                with lock:
                    errors[0] += 1
                continue
            with lock:
                rtts.append((time.perf_counter() - t0) * 1000.0)

    threads = [threading.Thread(target=work) for _ in range(in_flight)]
    metered = meter() if meter is not None else (0, 0)
    t_start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t_start
    if meter is not None:
        now = meter()
        metered = (now[0] - metered[0], now[1] - metered[1])
    engine.close()
    t0 = time.perf_counter()
    for _ in range(50):
        c = parse_codec(codec_name)
        payload = codec.encode_jpeg(crop, c.quality) if c.kind == "jpeg" else crop.tobytes()
    encode_ms = (time.perf_counter() - t0) * 1000.0 / 50
    arr = np.asarray(rtts or [float("nan")])
    return {"in_flight": float(in_flight), "swaps_per_s": len(rtts) / elapsed, "errors": float(errors[0]),
            "rtt_ms_p50": float(np.median(arr)), "rtt_ms_p95": float(np.percentile(arr, 95)),
            "encode_ms": encode_ms, "bytes_up": float(len(payload)),
            "wire_up": metered[0] / max(len(rtts) + errors[0], 1) if meter is not None else float("nan"),
            "wire_down": metered[1] / max(len(rtts) + errors[0], 1) if meter is not None else float("nan")}


def server_stats(server: str, token_file: str | Path | None, model: str = codec.SWAP_MODEL) -> dict[str, object]:
    """Triton's own figures for `model`: requests, model calls, mean queue and compute ms, and how many calls
    ran at each batch size (several clients' crops joined in one call)."""
    import tritonclient.grpc as grpcclient

    address = parse_server(server)
    token = read_token(token_file)
    c = grpcclient.InferenceServerClient(address.target, ssl=address.tls)
    try:
        stats = c.get_inference_statistics(model, headers={TOKEN_HEADER: token} if token else None, as_json=True,
                                           client_timeout=5.0)
    finally:
        c.close()
    m = stats["model_stats"][0]
    inf = m["inference_stats"]
    n = max(int(inf["success"].get("count", 0)), 1)

    def ms(key: str) -> float:
        return int(inf[key].get("ns", 0)) / n / 1e6

    batches = {int(b["batch_size"]): int(b["compute_infer"].get("count", 0)) for b in m.get("batch_stats", [])}
    return {"requests": int(m.get("inference_count", 0)), "executions": int(m.get("execution_count", 0)),
            "queue_ms": ms("queue"), "compute_ms": ms("compute_input") + ms("compute_infer") + ms("compute_output"),
            "batch_sizes": dict(sorted(batches.items()))}
