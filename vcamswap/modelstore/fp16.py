"""A local float16 copy of the swap model, for GPUs with fast fp16 (`vcamswap models convert --fp16`).

`inswapper_128.onnx` -> `inswapper_128.fp16.onnx` beside it, with onnxconverter-common, nothing downloaded.
Inputs and output stay float32 (keep_io_types), so the engine feeds the copy exactly like the original; the
512x512 `emap` stays the float32 last initializer, so the source latent is the same with either file.

A record beside the copy (`inswapper_128.fp16.json`) says what it was made from (the source's SHA-256, size
and mtime) and what the copy's own SHA-256 is: a changed source makes the copy stale (the engine then uses
the original), and a copy that no record vouches for is the user's file, replaced only with --overwrite.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, NamedTuple

from vcamswap.atomic import replacing, write_atomic
from vcamswap.modelstore.manifest import ModelError, install_hint
from vcamswap.paths import sha256_file

if TYPE_CHECKING:
    import onnx

log = logging.getLogger("vcamswap.models")

SWAP_MODEL = "inswapper_128"
EMAP_NAME = "emap"  # read by position (the last initializer), named here only to find it again
CONVERTER_HINT = "pip install onnxconverter-common (or 'vcamswap[gpu]')"


class ConvertError(ModelError):
    """The fp16 copy cannot be made; one line saying why and what to do."""


@dataclass(frozen=True)
class Fp16Record:
    """What an fp16 copy was made from, written beside it as JSON."""

    source: str  # file name of the float32 original, in the same folder
    source_sha256: str
    source_size: int
    source_mtime_ns: int
    sha256: str  # of the fp16 copy itself
    converter: str  # "onnxconverter-common X.Y.Z"


class Fp16Files(NamedTuple):
    source: Path
    copy: Path
    record: Path


Fp16State = Literal["ok", "missing", "stale", "unrecorded", "no-source"]


def fp16_files(models_dir: Path, name: str = SWAP_MODEL) -> Fp16Files:
    return Fp16Files(models_dir / f"{name}.onnx", models_dir / f"{name}.fp16.onnx", models_dir / f"{name}.fp16.json")


def read_record(path: Path) -> Fp16Record | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Fp16Record(**{k: data[k] for k in Fp16Record.__dataclass_fields__})
    except (OSError, ValueError, KeyError, TypeError):
        return None


def fp16_state(models_dir: Path, name: str = SWAP_MODEL, hash_copy: bool = False) -> Fp16State:
    """Whether the fp16 copy may stand in for the installed original.

    The source is hashed only when its size or mtime differ from the record (a copied-over original with the
    same bytes is still current); `hash_copy` also checks the copy's own bytes (convert does, the engine not).
    """
    files = fp16_files(models_dir, name)
    if not files.source.is_file():
        return "no-source"
    if not files.copy.is_file():
        return "missing"
    rec = read_record(files.record)
    if rec is None or rec.source != files.source.name:
        return "unrecorded"
    st = files.source.stat()
    if (st.st_size, st.st_mtime_ns) != (rec.source_size, rec.source_mtime_ns):
        if st.st_size != rec.source_size or sha256_file(files.source) != rec.source_sha256:
            return "stale"
    if hash_copy and sha256_file(files.copy) != rec.sha256:
        return "unrecorded"
    return "ok"


def convert_model(source: Path, dest: Path) -> str:
    """Write the fp16 version of `source` to `dest` atomically; returns the converter's name and version."""
    try:
        import onnx
        import onnxconverter_common
    except ImportError:
        raise ConvertError(f"fp16 conversion needs onnxconverter-common: {CONVERTER_HINT}") from None
    try:
        model = onnx.load(str(source))
    except Exception as e:  # protobuf raises several types for a truncated or foreign file
        raise ConvertError(f"{source} cannot be read as an ONNX model ({_first(e)}); reinstall it with "
                           f"'vcamswap models download {source.stem} --force'") from None
    _check_swap_model(model, source)
    emap = onnx.TensorProto()
    emap.CopyFrom(model.graph.initializer[-1])
    half = half_model(model, str(source))
    _restore_last_initializer(half, emap)
    del model
    with replacing(dest) as tmp:
        onnx.save(half, str(tmp))
    return f"onnxconverter-common {onnxconverter_common.__version__}"


def half_model(model: onnx.ModelProto, what: str = "the model") -> onnx.ModelProto:
    """`model` with float16 weights and float32 inputs and outputs (keep_io_types), so its feeds and buffers
    are the same as the original's. Any float32 graph: the GPU benchmark makes GHOST's and the parser's
    copies with it (the engine runs only the swap model's copy)."""
    try:
        from onnxconverter_common import float16
    except ImportError:
        raise ConvertError(f"fp16 conversion needs onnxconverter-common: {CONVERTER_HINT}") from None
    try:
        with warnings.catch_warnings():  # one warning per weight clamped to fp16's range: expected, not news
            warnings.simplefilter("ignore", UserWarning)
            half: onnx.ModelProto = float16.convert_float_to_float16(model, keep_io_types=True)
    except Exception as e:  # the converter raises bare ValueError/KeyError on graphs it cannot handle
        raise ConvertError(f"{what} could not be converted to fp16 ({_first(e)})") from None
    return half


def _check_swap_model(model: object, source: Path) -> None:
    """An empty file parses as an empty model: refuse anything without nodes and the 512x512 emap last."""
    graph = model.graph  # type: ignore[attr-defined]
    last = graph.initializer[-1] if graph.initializer else None
    if not graph.node or last is None or list(last.dims) != [512, 512]:
        what = "an empty file" if source.stat().st_size == 0 else "not the swap model (no nodes or no 512x512 emap)"
        raise ConvertError(f"{source} is {what}; reinstall it with 'vcamswap models download {source.stem} --force'")


def _restore_last_initializer(model: object, original: object) -> None:
    """Put the float32 emap back as the last initializer (the converter turned it to fp16)."""
    inits = model.graph.initializer  # type: ignore[attr-defined]
    for i, t in enumerate(inits):
        if t.name == original.name:  # type: ignore[attr-defined]
            del inits[i]
            break
    inits.append(original)


class ConvertResult(NamedTuple):
    copy: Path
    action: Literal["made", "current"]


def make_fp16(models_dir: Path, name: str = SWAP_MODEL, overwrite: bool = False) -> ConvertResult:
    """Make (or confirm) `NAME.fp16.onnx` from the installed `NAME.onnx`; the original is only read.

    An existing copy is kept when its record matches the source and its bytes; any other existing copy is
    replaced only with `overwrite`.
    """
    files = fp16_files(models_dir, name)
    state = fp16_state(models_dir, name, hash_copy=True)
    if state == "no-source":
        raise ConvertError(f"{files.source} is not installed; {install_hint([name])}")
    if state == "ok":
        return ConvertResult(files.copy, "current")
    if state != "missing" and not overwrite:
        why = "was made from another " if state == "stale" else "is not one this command made from "
        raise ConvertError(f"{files.copy} exists and {why}{files.source.name}; add --overwrite to replace it")
    try:
        st = files.source.stat()
        source_sha = sha256_file(files.source)
        converter = convert_model(files.source, files.copy)
        rec = Fp16Record(files.source.name, source_sha, st.st_size, st.st_mtime_ns, sha256_file(files.copy),
                         converter)
        _write_record(files.record, rec)
    except OSError as e:  # a read-only models folder, a full disk
        raise ConvertError(f"cannot write the fp16 copy in {models_dir}: {e.strerror or e}") from None
    return ConvertResult(files.copy, "made")


def _write_record(path: Path, rec: Fp16Record) -> None:
    write_atomic(path, json.dumps(asdict(rec), indent=2) + "\n")


def _first(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:160] if text else type(e).__name__
