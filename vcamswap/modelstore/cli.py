"""`vcamswap models list | download [NAME] [--from DIR_OR_FILE] | verify [NAME] | path [NAME] | convert --fp16`.

Without names, `download` fetches the required models only; an optional one (the occluder, the enhancer,
the parser) is fetched when named, by its name or its role. `--from` without names installs whatever the
copy holds.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from vcamswap.modelstore.download import Fetcher, Installer, Progress
from vcamswap.modelstore.fp16 import SWAP_MODEL, fp16_files, fp16_state, make_fp16
from vcamswap.modelstore.manifest import (
    NEURAL_MODELS,
    ModelError,
    ModelSpec,
    install_hint,
    load_manifest,
    model_path,
    status,
)
from vcamswap.options import settings_from_args

log = logging.getLogger("vcamswap.models")


# --------------------------------------------------------------------------------------------- CLI


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list, download, verify the neural engine's models")
    p.add_argument("action", choices=["list", "download", "verify", "path", "convert"])
    p.add_argument("names", nargs="*", metavar="NAME",
                   help=f"model names or roles (default: the required ones, {', '.join(NEURAL_MODELS)}); "
                        "optional: occluder, enhancer, parser")
    p.add_argument("--from", dest="source", type=Path, metavar="DIR_OR_FILE",
                   help="install from a local copy (a model file, buffalo_l.zip, or a folder) instead of the network")
    p.add_argument("--models", help="models folder (default: the platform's data dir)")
    p.add_argument("--manifest", type=Path, help="a manifest other than the shipped one (e.g. an internal mirror)")
    p.add_argument("--force", action="store_true", help="download again even when the file verifies")
    p.add_argument("--fp16", action="store_true",
                   help="convert: make inswapper_128.fp16.onnx from the installed model (for GPUs; needs "
                        "onnxconverter-common)")
    p.add_argument("--overwrite", action="store_true", help="convert: replace an fp16 file this command did not make")
    p.add_argument("--settings", type=Path)
    p.set_defaults(func=cmd_models)


def cmd_models(args: argparse.Namespace) -> int:
    models_dir = settings_from_args(args).models_dir()
    try:
        manifest = load_manifest(args.manifest)
        # list shows every model; verify also checks the optional ones that are installed; a local copy
        # installs whatever it holds; a plain download fetches the required ones only.
        everything = args.action in ("list", "verify") or (args.action == "download" and args.source is not None)
        specs = manifest.select(args.names, optional=everything)
        if args.action == "list":
            return _cmd_list(specs, models_dir)
        if args.action == "path":
            _out(str(model_path(specs[0], models_dir)) if args.names else str(models_dir))
            return 0
        if args.action == "verify":
            if not args.names:
                specs = [s for s in specs if not s.optional or model_path(s, models_dir).is_file()]
            return _cmd_verify(specs, models_dir)
        if args.action == "convert":
            return _cmd_convert(args.names, models_dir, args.fp16, args.overwrite)
        return _cmd_download(specs, models_dir, args.source, args.force)
    except ModelError as e:
        print(f"vcamswap: error: {e}", file=sys.stderr, flush=True)
        return 2


def _cmd_list(specs: list[ModelSpec], models_dir: Path) -> int:
    _out(f"models folder: {models_dir}")
    for spec in specs:
        st = status(spec, models_dir, deep=False)
        state = {"present": "installed", "missing": "missing", "size": "wrong size"}.get(st.state, st.state)
        kind = f"\toptional {spec.role}".rstrip() if spec.optional else ""
        _out(f"{spec.name}\t{spec.size / 1e6:.1f} MB\t{state}\t{spec.licence}{kind}")
    _list_fp16(models_dir)
    return 0


def _list_fp16(models_dir: Path) -> None:
    """The local fp16 copy, when there is one: current, or why the engine will not use it."""
    files = fp16_files(models_dir)
    if files.copy.is_file():
        state = {"ok": "made from the installed original", "stale": "stale (made from another original)",
                 "unrecorded": "not made by 'models convert'", "no-source": "original missing"}[fp16_state(models_dir)]
        _out(f"{files.copy.stem}\t{files.copy.stat().st_size / 1e6:.1f} MB\t{state}\tlocal fp16 copy")


def _cmd_verify(specs: list[ModelSpec], models_dir: Path) -> int:
    bad = 0
    for spec in specs:
        st = status(spec, models_dir)
        if st.state == "ok":
            _out(f"OK       {spec.name}: {st.detail}")
        else:
            bad += 1
            _out(f"problem  {spec.name}: {st.detail}; fix: {install_hint([spec.name])}")
    return 1 if bad else 0


def _cmd_download(specs: list[ModelSpec], models_dir: Path, source: Path | None, force: bool) -> int:
    installer = Installer(models_dir, Fetcher(progress=_bar))
    if source is not None:
        for spec in installer.install_from(specs, source.expanduser()):
            _out(f"installed {spec.name} from {source} -> {model_path(spec, models_dir)}")
        _batch_copy(specs, models_dir)
        return 0
    try:
        for spec in specs:
            if not force and status(spec, models_dir).state == "ok":
                _out(f"already installed {spec.name} -> {model_path(spec, models_dir)}")
                continue
            _out(f"installed {spec.name} -> {installer.download(spec, force=True)}")
    finally:
        installer.cleanup()
    _batch_copy(specs, models_dir)
    return 0


def _batch_copy(specs: list[ModelSpec], models_dir: Path) -> None:
    """Once, beside an installed swap model that fixes batch to 1: a copy that swaps several faces per call."""
    # onnx loads only to make the batched copy
    from vcamswap.modelstore.batch import SWAP_MODEL, ensure_batched

    if SWAP_MODEL not in {s.name for s in specs} or not status_ok(specs, models_dir, SWAP_MODEL):
        return
    result = ensure_batched(models_dir)
    if result.outcome == "made":
        _out(f"made {result.path.name if result.path else ''} (several faces per swap call; "
             f"{SWAP_MODEL}.onnx unchanged) -> {result.path}")
    elif result.outcome == "present":
        _out(f"already made {result.path}")
    elif result.outcome == "cannot-batch":
        _out(f"{SWAP_MODEL}: its graph does not batch ({result.detail}); faces are swapped one call each")


def status_ok(specs: list[ModelSpec], models_dir: Path, name: str) -> bool:
    spec = next(s for s in specs if s.name == name)
    return status(spec, models_dir, deep=False).state in ("ok", "present")


def _cmd_convert(names: list[str], models_dir: Path, fp16: bool, overwrite: bool) -> int:
    if not fp16:
        raise ModelError("convert needs --fp16 (the one conversion there is): 'vcamswap models convert --fp16'")
    if any(n != SWAP_MODEL for n in names):
        raise ModelError(f"only {SWAP_MODEL} has an fp16 copy (it is the per-frame model; the others gain nothing)")
    t0 = time.monotonic()
    result = make_fp16(models_dir, SWAP_MODEL, overwrite)
    if result.action == "current":
        _out(f"already made {result.copy} (from the installed {SWAP_MODEL}.onnx)")
    else:
        _out(f"made {result.copy} in {time.monotonic() - t0:.0f} s; the neural engine uses it on CUDA and TensorRT")
    return 0


def _bar(label: str, total: int | None) -> Progress:
    return Progress(label, total)


def _out(line: str) -> None:
    print(line, flush=True)
