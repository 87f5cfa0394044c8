"""Which swap model file the neural engine runs: the float32 original or its local fp16 copy.

`auto` takes fp16 on the providers that gain from it (CUDA, TensorRT, on a GPU with fast fp16) when the
copy made by `vcamswap models convert --fp16` is current, fp32 everywhere else: onnxruntime's CPU kernels
are float32 for most operators, so on a CPU an fp16 graph only adds casts (on a 2-core Xeon with AVX512-FP16,
1.3 s fp32 against 1.4-1.7 s fp16 per face for the full-size swap model). `fp32`/`fp16` force one; fp16
without a current copy falls back to fp32 with a note saying how to make it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, NamedTuple

from vcamswap.choices import PRECISIONS, Precision
from vcamswap.modelstore.fp16 import SWAP_MODEL, fp16_files, fp16_state

Resolved = Literal["fp32", "fp16"]
FP16_PROVIDERS = frozenset({"cuda", "tensorrt"})
CONVERT_HINT = "run 'vcamswap models convert --fp16'"


class PrecisionError(ValueError):
    """An unknown precision name; the message lists the valid ones."""


def parse_precision(text: str | None) -> Precision:
    key = (text or "auto").strip().lower()
    for p in PRECISIONS:
        if key == p:
            return p
    raise PrecisionError(f"unknown precision {text!r}; choose one of {', '.join(PRECISIONS)}")


def wanted_precision(requested: Precision, provider: str, fast_fp16: bool) -> Resolved:
    """What the request means on this provider, before looking at which files exist."""
    if requested != "auto":
        return requested
    return "fp16" if provider in FP16_PROVIDERS and fast_fp16 else "fp32"


class SwapModel(NamedTuple):
    path: Path
    precision: Resolved
    note: str | None  # why it is not what was asked for (or why the ask is a poor fit here)


def choose_swap_model(models_dir: Path, requested: Precision, provider: str, fast_fp16: bool) -> SwapModel:
    files = fp16_files(models_dir, SWAP_MODEL)
    want = wanted_precision(requested, provider, fast_fp16)
    if want == "fp32":
        return SwapModel(files.source, "fp32", None)
    state = fp16_state(models_dir, SWAP_MODEL)
    if state == "ok":
        slow = provider not in FP16_PROVIDERS or not fast_fp16
        note = f"fp16 asked for on {provider}, where it is usually slower than fp32" if slow else None
        return SwapModel(files.copy, "fp16", note)
    reason = {
        "missing": f"no fp16 copy of {files.source.name}",
        "stale": f"{files.copy.name} was made from another {files.source.name}",
        "unrecorded": f"{files.copy.name} has no record of being made from {files.source.name}",
    }.get(state, f"{files.source.name} is missing")
    hint = CONVERT_HINT[:-1] + " --overwrite'" if state in ("stale", "unrecorded") else CONVERT_HINT
    return SwapModel(files.source, "fp32", f"{reason}; using fp32 ({hint} for fp16)")
