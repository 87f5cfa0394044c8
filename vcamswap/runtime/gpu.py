"""GPU session options: TensorRT's engine and timing caches, fp16 where the GPU has fast fp16, CUDA graphs,
and the progress line while TensorRT builds an engine (minutes on a first run, then read from the cache).

The option builders are pure functions of their inputs, so they are checked without a GPU; only
`compute_capability` asks the machine (nvidia-smi, once).
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import IO, NamedTuple, TypeVar

log = logging.getLogger("vcamswap.providers")

T = TypeVar("T")

# Fast fp16 arithmetic: Volta (7.0) and later, plus the few earlier chips that have it (Jetson TX1 5.3,
# P100 6.0, Jetson TX2 6.2). Other Pascal/Maxwell cards run fp16 at a fraction of fp32's rate.
FAST_FP16_BEFORE_VOLTA = frozenset({(5, 3), (6, 0), (6, 2)})
CACHE_FOLDER = "trt-cache"
BUILT_MARK = "built.json"
WARM_GRACE_S = 10.0  # a warm cache loads in seconds; past this it is rebuilding after all, so say so
# A model with free input sizes (the detector) is built at its first run instead: its session starts at once.
COLD_GRACE_S = 1.0


def fast_fp16(capability: tuple[int, int] | None) -> bool:
    """Whether fp16 runs faster than fp32 on a GPU of this compute capability (unknown: let onnxruntime
    decide, it turns TensorRT's fp16 off itself on a GPU without fast fp16)."""
    if capability is None:
        return True
    return capability >= (7, 0) or capability in FAST_FP16_BEFORE_VOLTA


def parse_capability(text: str) -> tuple[int, int] | None:
    """The first GPU's compute capability from `nvidia-smi --query-gpu=compute_cap` output ("8.6")."""
    for line in text.splitlines():
        major, dot, minor = line.strip().partition(".")
        if dot and major.isdigit() and minor.isdigit():
            return int(major), int(minor)
    return None


@lru_cache(maxsize=1)
def compute_capability() -> tuple[int, int] | None:
    """The first NVIDIA GPU's compute capability, or None when nvidia-smi is absent or too old to say."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "--query-gpu=compute_cap", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_capability(out.stdout) if out.returncode == 0 else None


class TrtCache(NamedTuple):
    """Where TensorRT keeps what it built: engines per model file, one timing cache for all of them."""

    engines: Path
    timing: Path


def trt_cache(models_dir: Path, model: Path) -> TrtCache:
    """`MODELS/trt-cache/<model file stem>/` for engines (so each file's cache state is its own), the timing
    cache in `MODELS/trt-cache/` (layer timings carry over between models and speed up every build)."""
    root = models_dir / CACHE_FOLDER
    return TrtCache(root / model.stem, root)


def trt_options(cache: TrtCache | None, fp16: bool, cuda_graph: bool = False) -> dict[str, str]:
    """TensorRT provider options: cached engines and timings, fp16 kernels when asked, CUDA graphs."""
    opts: dict[str, str] = {"trt_fp16_enable": str(fp16)}
    if cache is not None:
        opts |= {
            "trt_engine_cache_enable": "True",
            "trt_engine_cache_path": str(cache.engines),
            "trt_timing_cache_enable": "True",
            "trt_timing_cache_path": str(cache.timing),
        }
    if cuda_graph:
        opts["trt_cuda_graph_enable"] = "True"
    return opts


def cuda_options(cuda_graph: bool) -> dict[str, str]:
    """CUDA provider options. CUDA graphs replay the whole recorded run: onnxruntime allows it only when
    every node is on CUDA and shapes and buffer addresses are fixed (the bound runner's case)."""
    return {"enable_cuda_graph": "True"} if cuda_graph else {}


# ----------------------------------------------------------------------------------------------- cache state


def _model_key(model: Path) -> dict[str, object]:
    import onnxruntime as ort

    st = model.stat()
    return {"model": model.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "onnxruntime": ort.__version__}


def has_engine(cache: TrtCache) -> bool:
    """Whether TensorRT wrote an engine there (it does at session start for fixed input shapes)."""
    try:
        return any(p.suffix == ".engine" for p in cache.engines.iterdir())
    except OSError:
        return False


def cache_is_warm(cache: TrtCache, model: Path) -> bool:
    """True when an engine was built for this very file (size, mtime) by this onnxruntime and is still there."""
    try:
        mark = json.loads((cache.engines / BUILT_MARK).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return has_engine(cache) and mark == _model_key(model)


def mark_built(cache: TrtCache, model: Path) -> None:
    try:
        (cache.engines / BUILT_MARK).write_text(json.dumps(_model_key(model)) + "\n", encoding="utf-8")
    except OSError as e:  # a read-only models folder: the next start builds again, nothing else is lost
        log.info("TensorRT cache state not saved in %s: %s", cache.engines, e.strerror or e)


# ----------------------------------------------------------------------------------------------- progress


def with_progress(factory: Callable[[], T], label: str, delay: float = 0.0, stream: IO[str] | None = None,
                  every: float | None = None) -> T:
    """Run `factory()` (a session being created) while a thread ticks `label: N s` on stderr.

    Nothing is written when it returns within `delay` seconds. On a terminal the line is redrawn every
    second; elsewhere (a log, the service's journal) a line is written every 10 s.
    """
    out = stream or sys.stderr
    tty = bool(getattr(out, "isatty", lambda: False)())
    step = every if every is not None else (1.0 if tty else 10.0)
    done = threading.Event()
    shown = threading.Event()
    t0 = time.monotonic()

    def tick() -> None:
        if done.wait(delay):
            return
        shown.set()
        while True:
            line = f"{label}: {time.monotonic() - t0:.0f} s"
            out.write(("\r" + line) if tty else (line + "\n"))
            out.flush()
            if done.wait(step):
                return

    thread = threading.Thread(target=tick, name="build-progress", daemon=True)
    thread.start()
    ok = False
    try:
        result = factory()
        ok = True
        return result
    finally:
        done.set()
        thread.join()
        if shown.is_set():
            end = "done" if ok else "failed"
            out.write(("\r" if tty else "") + f"{label}: {end} after {time.monotonic() - t0:.0f} s\n")
            out.flush()
