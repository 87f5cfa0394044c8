"""onnxruntime execution providers: which are present, which one a model runs on, and session options.

The best provider present wins, in the order TensorRT, CUDA, CoreML, DirectML, OpenVINO, CPU; `--provider`
overrides it with a short name (`cuda`) or the full name (`CUDAExecutionProvider`). A GPU provider always
has CPU behind it, so an operator the GPU cannot run still runs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal, NamedTuple

import onnxruntime as ort

from vcamswap.runtime import gpu
from vcamswap.runtime.gpu import TrtCache

log = logging.getLogger("vcamswap.providers")

ProviderName = Literal["tensorrt", "cuda", "coreml", "directml", "openvino", "cpu"]

EP_NAMES: dict[ProviderName, str] = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "directml": "DmlExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
PRIORITY: tuple[ProviderName, ...] = ("tensorrt", "cuda", "coreml", "directml", "openvino", "cpu")
ALIASES: dict[str, ProviderName] = {"dml": "directml", "trt": "tensorrt"}

# Providers whose tensors live in device memory, with the device name IOBinding uses for them.
DEVICE_OF: dict[ProviderName, str] = {"tensorrt": "cuda", "cuda": "cuda"}


class ProviderError(ValueError):
    """An unknown execution provider name; the message lists the valid ones."""


class ProviderChoice(NamedTuple):
    name: ProviderName  # the provider the models run on first
    chain: tuple[str, ...]  # full EP names handed to onnxruntime, best first, CPU last
    requested: str | None  # what the user asked for, None = automatic
    note: str | None  # why the choice differs from the request, if it does


def available() -> list[str]:
    """Full names of the providers this onnxruntime build offers."""
    return list(ort.get_available_providers())


def short_name(ep: str) -> ProviderName | None:
    for short, full in EP_NAMES.items():
        if full == ep:
            return short
    return None


def parse_provider(name: str) -> ProviderName:
    """A short provider name from a short, alias or full name (case-insensitive)."""
    key = name.strip().lower().removesuffix("executionprovider")
    key = ALIASES.get(key, key)
    for short in PRIORITY:
        if key == short:
            return short
    valid = ", ".join(PRIORITY)
    raise ProviderError(f"unknown execution provider {name!r}; choose one of {valid} (or a full onnxruntime name)")


def present(avail: Sequence[str] | None = None) -> list[ProviderName]:
    """Short names of the known providers present, best first."""
    names = set(available() if avail is None else avail)
    return [p for p in PRIORITY if EP_NAMES[p] in names]


def chain_for(name: ProviderName, avail: Sequence[str] | None = None) -> tuple[str, ...]:
    """The EP list for onnxruntime: TensorRT keeps CUDA behind it for the nodes it rejects; CPU is always last."""
    names = set(available() if avail is None else avail)
    order: list[ProviderName] = [name]
    if name == "tensorrt":
        order.append("cuda")
    order.append("cpu")
    chain = [EP_NAMES[p] for p in dict.fromkeys(order) if EP_NAMES[p] in names or p == "cpu"]
    return tuple(chain)


def choose(requested: str | None = None, avail: Sequence[str] | None = None) -> ProviderChoice:
    """The provider to use: the request if present, else the best present (with a note saying so)."""
    found = present(avail)
    best: ProviderName = found[0] if found else "cpu"
    if requested is None or requested.strip().lower() in ("", "auto"):
        return ProviderChoice(best, chain_for(best, avail), None, None)
    want = parse_provider(requested)
    if want in found or want == "cpu":
        return ProviderChoice(want, chain_for(want, avail), requested, None)
    have = ", ".join(found) or "cpu"
    note = f"execution provider {want} is not available here (present: {have}); using {best}"
    return ProviderChoice(best, chain_for(best, avail), requested, note)


def session_options(threads: int | None = None) -> ort.SessionOptions:
    """Options shared by every model: a bounded thread pool so the camera and the tray keep a core."""
    opts = ort.SessionOptions()
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3  # unused-initializer notes about the swap model's emap are expected
    return opts


def make_session(model: Path, providers: list[str] | None, threads: int) -> ort.InferenceSession:
    """An onnxruntime session for one of the small lite models."""
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3  # the models are fixed; onnxruntime's notes about them are noise
    return ort.InferenceSession(str(model), opts, providers=providers or ["CPUExecutionProvider"])


def default_threads() -> int:
    """Leave one core to capture, tracking and output when there are several."""
    n = os.cpu_count() or 1
    return max(1, n - 1) if n > 2 else n


def provider_options(chain: Sequence[str], cache: TrtCache | None = None, fp16: bool = True,
                     cuda_graph: bool = False) -> list[dict[str, str]]:
    """Per-provider options. TensorRT: cached engines and timings (building takes minutes), fp16 kernels
    when `fp16`. CUDA graphs go to the provider that runs the nodes: TensorRT's own, or CUDA's when CUDA leads."""
    out: list[dict[str, str]] = []
    for i, ep in enumerate(chain):
        if ep == EP_NAMES["tensorrt"]:
            out.append(gpu.trt_options(cache, fp16, cuda_graph))
        elif ep == EP_NAMES["cuda"]:
            out.append(gpu.cuda_options(cuda_graph and i == 0))
        else:
            out.append({})
    return out


SessionFactory = Callable[..., ort.InferenceSession]


def create_session(
    model: Path,
    choice: ProviderChoice,
    threads: int | None = None,
    models_dir: Path | None = None,
    fp16: bool = True,
    cuda_graph: bool = False,
    factory: SessionFactory = ort.InferenceSession,
) -> ort.InferenceSession:
    """A session on the chosen provider chain; raises onnxruntime's errors for unreadable models.

    With TensorRT in the chain and a models folder, engines and timings are cached there, and a build (an
    empty or outdated cache) is announced with a ticking line while onnxruntime works; a warm cache is quiet.
    `factory` is onnxruntime's constructor (replaceable, to see the announcement without a GPU).
    """
    trt = EP_NAMES["tensorrt"] in choice.chain
    cache = gpu.trt_cache(models_dir, model) if trt and models_dir is not None else None

    def make() -> ort.InferenceSession:
        session: ort.InferenceSession = factory(
            str(model),
            sess_options=session_options(threads),
            providers=list(choice.chain),
            provider_options=provider_options(choice.chain, cache, fp16, cuda_graph),
        )
        return session

    if cache is None:
        return make()
    cache.engines.mkdir(parents=True, exist_ok=True)
    warm = gpu.cache_is_warm(cache, model)
    label = f"building the TensorRT engine for {model.name} (first run only; cached in {cache.engines})"
    session = gpu.with_progress(make, label, delay=gpu.WARM_GRACE_S if warm else gpu.COLD_GRACE_S)
    if not warm and gpu.has_engine(cache):
        gpu.mark_built(cache, model)
    return session


def runs_on(session: ort.InferenceSession) -> str:
    """The provider that takes the model's nodes first (onnxruntime drops the ones that failed to load)."""
    providers = session.get_providers()
    return short_name(providers[0]) or providers[0] if providers else "none"


def device_of(session: ort.InferenceSession) -> str:
    """'cuda' when the session's first provider keeps tensors in GPU memory, else 'cpu'."""
    first = short_name(session.get_providers()[0]) if session.get_providers() else None
    return DEVICE_OF.get(first, "cpu") if first else "cpu"


class ProviderReport(NamedTuple):
    present: list[ProviderName]
    other: list[str]  # providers this build has that vcamswap does not rank (e.g. Azure)
    choice: ProviderChoice


def report(requested: str | None = None) -> ProviderReport:
    """What `doctor` prints: the providers present and the one models will run on."""
    avail = available()
    known = set(EP_NAMES.values())
    return ProviderReport(present(avail), [p for p in avail if p not in known], choose(requested, avail))
