"""Stand-ins with the exact interfaces of GHOST's ONNX files (engines.ghost), built at test time.

* `ghost_N_256.onnx` (N = 1, 2, 3 AAD blocks): `target` 1x3x256x256 (RGB, [-1, 1]) + `source` 1x512 ->
  `output` 1x3x256x256 in [-1, 1]. The output is `(1 - a) * target + a * tanh(COLOUR_GAIN * source[:3])` per
  RGB channel, with a = ghost_alpha(N), so a test can tell which of the three ran, that the crop came in as
  the reference prepares it, and that the source was crossface_ghost's output (see `expected_ghost`).
* `crossface_ghost.onnx`: `input` Nx512 -> `output` Nx512, a fixed orthogonal matrix times CONVERTER_SCALE
  (not normalised, as the real converter's output is not), so GHOST's source is `raw @ M` (`expected_source`).
* `ghost_arcface_backbone.onnx` (GHOST's own ArcFace): one input Nx3x112x112 (RGB, [-1, 1]; the real file's
  input name is not published and the engine takes it by position) -> `output` Nx512, raw: a 4x4 average pool
  then a fixed projection (`expected_arcface`), fine enough that the sampling positions of the 224 -> 112
  halving, the channel order and the normalisation each change the embedding.

    python models/make_standins.py OUT_DIR   (makes these too)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from vcamswap.modelstore.onnxgraph import build_model, const
from vcamswap.modelstore.standins import save

GHOST_SIZE = 256
COLOUR_GAIN = 0.5
CONVERTER_SCALE = 3.0


def ghost_alpha(blocks: int) -> float:
    return 0.4 + 0.1 * blocks


def ghost_model(blocks: int = 1) -> onnx.ModelProto:
    side = GHOST_SIZE
    target = helper.make_tensor_value_info("target", TensorProto.FLOAT, [1, 3, side, side])
    source = helper.make_tensor_value_info("source", TensorProto.FLOAT, [1, 512])
    output = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, side, side])
    a = ghost_alpha(blocks)
    inits = [
        const("starts", np.array([0], np.int64)),
        const("ends", np.array([3], np.int64)),
        const("axes", np.array([1], np.int64)),
        const("gain", np.array(COLOUR_GAIN, np.float32)),
        const("keep", np.array(1.0 - a, np.float32)),
        const("alpha", np.array(a, np.float32)),
        const("chw", np.array([1, 3, 1, 1], np.int64)),
    ]
    nodes = [
        helper.make_node("Slice", ["source", "starts", "ends", "axes"], ["rgb_id"]),
        helper.make_node("Mul", ["rgb_id", "gain"], ["rgb_logit"]),
        helper.make_node("Tanh", ["rgb_logit"], ["rgb"]),
        helper.make_node("Reshape", ["rgb", "chw"], ["colour"]),
        helper.make_node("Mul", ["colour", "alpha"], ["tint"]),
        helper.make_node("Mul", ["target", "keep"], ["kept"]),
        helper.make_node("Add", ["kept", "tint"], ["output"]),
    ]
    return build_model(nodes, [target, source], [output], inits, f"ghost_{blocks}_standin", "vcamswap-standin")


def expected_ghost(target_blob: np.ndarray, source: np.ndarray, blocks: int = 1) -> np.ndarray:
    """The stand-in's output for a 1x3x256x256 [-1, 1] target and a (1, 512) source, in numpy."""
    a = ghost_alpha(blocks)
    colour = np.tanh(COLOUR_GAIN * np.asarray(source, np.float32).reshape(-1)[:3])
    return ((1.0 - a) * target_blob + a * colour[None, :, None, None]).astype(np.float32)


def converter_matrix(seed: int = 7) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((512, 512)))
    return (q * CONVERTER_SCALE).astype(np.float32)


def converter_model() -> onnx.ModelProto:
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 512])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 512])
    node = helper.make_node("MatMul", ["input", "m"], ["output"], name="convert")
    return build_model([node], [x], [y], [const("m", converter_matrix())], "crossface_standin", "vcamswap-standin")


def expected_source(raw_embedding: np.ndarray) -> np.ndarray:
    """GHOST's source for a raw (not normalised) w600k_r50 embedding: what the converter stand-in gives."""
    return (np.asarray(raw_embedding, np.float32).reshape(1, 512) @ converter_matrix()).astype(np.float32)


ARCFACE_POOL = 4
ARCFACE_FILE = "ghost_arcface_backbone.onnx"


def arcface_weights(seed: int = 11) -> np.ndarray:
    n = 3 * (112 // ARCFACE_POOL) ** 2
    return (np.random.default_rng(seed).standard_normal((n, 512)) * (4.0 / np.sqrt(n))).astype(np.float32)


def arcface_model() -> onnx.ModelProto:
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 112, 112])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 512])
    k = ARCFACE_POOL
    nodes = [
        helper.make_node("AveragePool", ["input"], ["pooled"], kernel_shape=[k, k], strides=[k, k]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "proj"], ["output"]),
    ]
    return build_model(nodes, [x], [y], [const("proj", arcface_weights())], "ghost_arcface_standin",
                       "vcamswap-standin")


def expected_arcface(blob: np.ndarray) -> np.ndarray:
    """The ArcFace stand-in's raw output for an Nx3x112x112 blob, in numpy (float64)."""
    k, n = ARCFACE_POOL, 112 // ARCFACE_POOL
    pooled = blob.astype(np.float64).reshape(len(blob), 3, n, k, n, k).mean(axis=(3, 5)).reshape(len(blob), -1)
    return pooled @ arcface_weights().astype(np.float64)


def make_ghost(out_dir: Path) -> dict[str, Path]:
    """ghost_N_256.onnx (N = 1, 2, 3), crossface_ghost.onnx and ghost_arcface_backbone.onnx in `out_dir`."""
    made = {f"ghost_{n}_256": save(ghost_model(n), out_dir / f"ghost_{n}_256.onnx") for n in (1, 2, 3)}
    made["crossface_ghost"] = save(converter_model(), out_dir / "crossface_ghost.onnx")
    made["ghost_arcface"] = save(arcface_model(), out_dir / ARCFACE_FILE)
    return made
