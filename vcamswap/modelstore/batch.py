"""A copy of the swap model with a dynamic batch dimension, made once at install time.

inswapper_128.onnx fixes its batch to 1 (`target` [1,3,128,128], `source` [1,512]), so several faces of a
frame would need one model call each. `ensure_batched` writes `inswapper_128.batch.onnx` beside it: the same
graph and weights, batch dimension `N` on inputs and outputs, and every Reshape whose target shape starts
with a literal 1 told to copy the batch instead (a 0 in ONNX Reshape). The original file is never written.
The copy is kept only when a 2-face call gives what two 1-face calls of the original give. A small stamp file
beside it records the size and mtime of the original and of the copy (read at engine start without parsing
either model), so a reinstalled original makes the copy stale: the engine then swaps face by face until the
next `vcamswap models download` makes it again.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import onnx
from onnx import numpy_helper

from vcamswap.atomic import replacing

log = logging.getLogger("vcamswap.models")

SWAP_MODEL = "inswapper_128"
BATCH_DIM = "N"
CHECK_TOLERANCE = 1e-4  # fp32 outputs in [0, 1]: far below one grey level (1/255)

Outcome = Literal["made", "present", "not-needed", "cannot-batch", "no-model"]


class BatchResult(NamedTuple):
    outcome: Outcome
    path: Path | None  # the file to batch with (the copy, or the original when it is dynamic already)
    detail: str = ""


def batched_path(models_dir: Path) -> Path:
    return models_dir / f"{SWAP_MODEL}.batch.onnx"


def stamp_path(models_dir: Path) -> Path:
    return models_dir / f"{SWAP_MODEL}.batch.json"


def stamp_of(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


def fixed_batch(model: onnx.ModelProto) -> bool:
    """Whether the first input's leading dimension is a literal 1 (as in the shipped inswapper_128)."""
    dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    return dim.HasField("dim_value") and dim.dim_value == 1


def graph_fixes_batch(path: Path) -> bool:
    return fixed_batch(onnx.load(str(path), load_external_data=False))


def _stamps(original: Path, copy: Path) -> dict[str, str]:
    return {"original": stamp_of(original), "copy": stamp_of(copy)}


def _read_stamps(path: Path) -> dict[str, str] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def dynamic_batch(model: onnx.ModelProto) -> onnx.ModelProto:
    """The same graph with batch dimension N: inputs, outputs and leading-1 Reshape targets."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    for value in list(g.input) + list(g.output):
        dims = value.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_value") and dims[0].dim_value == 1:
            dims[0].dim_param = BATCH_DIM
    del g.value_info[:]  # inferred shapes would still say 1
    shape_inputs = {n.input[1] for n in g.node if n.op_type == "Reshape" and len(n.input) > 1}
    used_elsewhere = {i for n in g.node if n.op_type != "Reshape" for i in n.input}
    for init in g.initializer:
        if init.name in shape_inputs and init.name not in used_elsewhere:
            _batch_shape(init)
    for node in g.node:
        if node.op_type == "Constant" and node.output[0] in shape_inputs and node.output[0] not in used_elsewhere:
            for attr in node.attribute:
                if attr.name == "value":
                    _batch_shape(attr.t)
    return out


def _batch_shape(tensor: onnx.TensorProto) -> None:
    """A Reshape target [1, ...] becomes [0, ...]: copy the input's batch instead of forcing 1."""
    shape = numpy_helper.to_array(tensor)
    if shape.ndim == 1 and shape.size >= 2 and shape.dtype == np.int64 and shape[0] == 1:
        shape = shape.copy()
        shape[0] = 0
        tensor.CopyFrom(numpy_helper.from_array(shape, tensor.name))


def batches_like_single_calls(original: Path, copy: Path, faces: int = 2) -> tuple[bool, str]:
    """Run `faces` random faces through the copy in one call and through the original one by one."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    try:
        one = ort.InferenceSession(str(original), opts, providers=["CPUExecutionProvider"])
        many = ort.InferenceSession(str(copy), opts, providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(0)
        target = rng.random((faces, 3, 128, 128), dtype=np.float32)
        latent = rng.standard_normal((faces, 512)).astype(np.float32)
        latent /= np.linalg.norm(latent, axis=1, keepdims=True)
        batched = many.run(None, {"target": target, "source": latent})[0]
        single = np.concatenate([one.run(None, {"target": target[i:i + 1], "source": latent[i:i + 1]})[0]
                                 for i in range(faces)])
    except Exception as e:  # onnxruntime rejects a graph whose shapes do not follow the batch
        return False, str(e).splitlines()[0][:160] if str(e) else type(e).__name__
    if batched.shape != single.shape:
        return False, f"a {faces}-face call gave shape {batched.shape}, not {single.shape}"
    err = float(np.abs(batched - single).max())
    return err <= CHECK_TOLERANCE, f"largest difference {err:.2e}"


def ensure_batched(models_dir: Path) -> BatchResult:
    """Make the batched copy when the installed swap model fixes batch to 1 and no current copy exists."""
    original = models_dir / f"{SWAP_MODEL}.onnx"
    if not original.is_file():
        return BatchResult("no-model", None)
    model = onnx.load(str(original))
    if not fixed_batch(model):
        return BatchResult("not-needed", original, "the model's batch dimension is dynamic already")
    dest = batched_path(models_dir)
    if current_batched(models_dir) is not None:
        return BatchResult("present", dest)
    copy = dynamic_batch(model)
    del model
    try:
        with replacing(dest) as tmp:
            onnx.save(copy, str(tmp))
            del copy
            ok, detail = batches_like_single_calls(original, tmp)
            if not ok:
                raise _Unlike(detail)  # the copy is dropped, never renamed
    except _Unlike as e:
        dest.unlink(missing_ok=True)  # a stale copy must not be used either
        stamp_path(models_dir).unlink(missing_ok=True)
        return BatchResult("cannot-batch", None, str(e))
    stamp_path(models_dir).write_text(json.dumps(_stamps(original, dest)), encoding="utf-8")
    return BatchResult("made", dest, detail)


class _Unlike(Exception):
    """The batched copy's answers differ from the single calls' (the message says how)."""


def current_batched(models_dir: Path) -> Path | None:
    """The copy to batch with, when it was made from the installed original; None otherwise (face by face)."""
    original = models_dir / f"{SWAP_MODEL}.onnx"
    dest = batched_path(models_dir)
    if not (original.is_file() and dest.is_file()):
        return None
    return dest if _read_stamps(stamp_path(models_dir)) == _stamps(original, dest) else None
