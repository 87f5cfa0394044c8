"""`vcamswap serve --export-repo DIR`: a Triton model repository the stock Triton container serves with its
onnxruntime (or TensorRT) backend and no Python, for a fleet behind a load balancer.

It answers the same two requests as `vcamswap serve` (engines/remote/codec.py, raw crops), as ensembles of
ONNX models: the swap model and ArcFace as installed, plus tiny models built here for the steps around
them, so every client's request is the same as for `vcamswap serve`:

  vcamswap_swap   = swap_pre (uint8 BGR HWC -> RGB [0,1] CHW) -> inswapper_128 -> swap_post (-> uint8 BGR HWC)
  vcamswap_source = source_pre (uint8 BGR -> (x - 127.5) / 127.5 RGB) -> w600k_r50 -> latent (L2, @ emap, L2)

The latent step is the swap model's emap as a model of its own. A swap model whose batch dimension is fixed
(inswapper_128 as published) is served one crop per call, with several instances; when its graph takes a
batch, the exported copy is made batched and dynamic batching joins clients' crops.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from vcamswap.engines.neural import read_emap
from vcamswap.engines.remote import codec
from vcamswap.modelstore.onnxgraph import build_model, const

INSTANCES = 2
SWAP, ARC = "inswapper_128", "w600k_r50"


class ExportError(ValueError):
    """The repository cannot be written as asked; one line."""


def _model(nodes: list[onnx.NodeProto], inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto],
           inits: list[onnx.TensorProto], name: str) -> onnx.ModelProto:
    return build_model(nodes, inputs, outputs, inits, name, "vcamswap-export")


def pre_model(size: int, scale: float, offset: float, name: str) -> onnx.ModelProto:
    """uint8 [N,size,size,3] BGR -> float [N,3,size,size] RGB as (x * scale + offset)."""
    x = helper.make_tensor_value_info("crop", TensorProto.UINT8, ["N", size, size, 3])
    y = helper.make_tensor_value_info("blob", TensorProto.FLOAT, ["N", 3, size, size])
    nodes = [
        helper.make_node("Cast", ["crop"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["f", "scale"], ["scaled"]),
        helper.make_node("Add", ["scaled", "offset"], ["norm"]),
        helper.make_node("Gather", ["norm", "bgr_to_rgb"], ["rgb"], axis=3),
        helper.make_node("Transpose", ["rgb"], ["blob"], perm=[0, 3, 1, 2]),
    ]
    inits = [const("scale", np.float32(scale)), const("offset", np.float32(offset)),
             const("bgr_to_rgb", np.array([2, 1, 0], np.int64))]
    return _model(nodes, [x], [y], inits, name)


def post_model(size: int = codec.SWAP_SIZE) -> onnx.ModelProto:
    """float [N,3,size,size] RGB [0,1] -> uint8 [N,size,size,3] BGR, rounded as the local engine rounds."""
    x = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 3, size, size])
    y = helper.make_tensor_value_info("swapped", TensorProto.UINT8, ["N", size, size, 3])
    nodes = [
        helper.make_node("Transpose", ["output"], ["hwc"], perm=[0, 2, 3, 1]),
        helper.make_node("Gather", ["hwc", "rgb_to_bgr"], ["bgr"], axis=3),
        helper.make_node("Mul", ["bgr", "full"], ["scaled"]),
        helper.make_node("Add", ["scaled", "half"], ["rounded"]),
        helper.make_node("Clip", ["rounded", "lo", "hi"], ["clipped"]),
        helper.make_node("Floor", ["clipped"], ["whole"]),
        helper.make_node("Cast", ["whole"], ["swapped"], to=TensorProto.UINT8),
    ]
    inits = [const("rgb_to_bgr", np.array([2, 1, 0], np.int64)), const("full", np.float32(255.0)),
             const("half", np.float32(0.5)), const("lo", np.float32(0.0)), const("hi", np.float32(255.0))]
    return _model(nodes, [x], [y], inits, "swap_post")


def latent_model(emap: np.ndarray) -> onnx.ModelProto:
    """embedding [N,512] -> latent [N,512]: L2-normalised (normalised embedding @ emap), as latent_of does."""
    x = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", codec.LATENT_SIZE])
    y = helper.make_tensor_value_info("latent", TensorProto.FLOAT, ["N", codec.LATENT_SIZE])
    nodes = [
        helper.make_node("ReduceL2", ["embedding"], ["n1"], axes=[1], keepdims=1),
        helper.make_node("Div", ["embedding", "n1"], ["unit"]),
        helper.make_node("MatMul", ["unit", "emap"], ["mapped"]),
        helper.make_node("ReduceL2", ["mapped"], ["n2"], axes=[1], keepdims=1),
        helper.make_node("Div", ["mapped", "n2"], ["latent"]),
    ]
    return _model(nodes, [x], [y], [const("emap", emap.astype(np.float32))], "latent")


# ----------------------------------------------------------------------------------------------- configs


def _dims(shape: list[int], batch: int) -> str:
    return ", ".join(str(d) for d in (shape if batch else [1, *shape]))


def tensor(name: str, dtype: str, shape: list[int], batch: int) -> str:
    return f'  {{ name: "{name}" data_type: {dtype} dims: [ {_dims(shape, batch)} ] }}'


def onnx_config(name: str, inputs: list[str], outputs: list[str], batch: int, queue_delay_us: int) -> str:
    lines = [f'name: "{name}"', 'backend: "onnxruntime"', f"max_batch_size: {batch}",
             "input [", ",\n".join(inputs), "]", "output [", ",\n".join(outputs), "]",
             f"instance_group [ {{ count: {1 if batch else INSTANCES} kind: KIND_AUTO }} ]"]
    if batch:
        lines.append(f"dynamic_batching {{ max_queue_delay_microseconds: {queue_delay_us} }}")
    return "\n".join(lines) + "\n"


def ensemble_config(name: str, inputs: list[str], outputs: list[str], batch: int,
                    steps: list[tuple[str, dict[str, str], dict[str, str]]]) -> str:
    """steps: (model, {model input: ensemble tensor}, {model output: ensemble tensor})."""
    body = []
    for model, ins, outs in steps:
        maps = [f'        input_map {{ key: "{k}" value: "{v}" }}' for k, v in ins.items()]
        maps += [f'        output_map {{ key: "{k}" value: "{v}" }}' for k, v in outs.items()]
        head = f'      {{\n        model_name: "{model}"\n        model_version: -1\n'
        body.append(head + "\n".join(maps) + "\n      }")
    return "\n".join([f'name: "{name}"', 'platform: "ensemble"', f"max_batch_size: {batch}",
                      "input [", ",\n".join(inputs), "]", "output [", ",\n".join(outputs), "]",
                      "ensemble_scheduling {", "  step [", ",\n".join(body), "  ]", "}"]) + "\n"


# ----------------------------------------------------------------------------------------------- export


def batched_swap_model(path: Path) -> onnx.ModelProto | None:
    """The swap model with a free batch dimension when its graph runs at batch 2 as at batch 1; else None."""
    import onnxruntime as ort

    model = onnx.load(str(path))
    for v in [*model.graph.input, *model.graph.output]:
        v.type.tensor_type.shape.dim[0].ClearField("dim_value")
        v.type.tensor_type.shape.dim[0].dim_param = "N"
    try:
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(0)
        target = rng.random((2, 3, codec.SWAP_SIZE, codec.SWAP_SIZE), np.float32)
        source = rng.standard_normal((2, codec.LATENT_SIZE)).astype(np.float32)
        both = sess.run(None, {"target": target, "source": source})[0]
        one = sess.run(None, {"target": target[1:], "source": source[1:]})[0]
    except Exception:  # a graph with the batch baked in (a Reshape to 1, ...): served one crop per call
        return None
    return model if np.allclose(both[1:], one, atol=1e-4) else None


def export_repo(models_dir: Path, out: Path, max_batch: int = 16, queue_delay_us: int = 2000) -> Iterator[str]:
    """Write the repository; yields one line per model written."""
    for name in (SWAP, ARC):
        if not (models_dir / f"{name}.onnx").is_file():
            raise ExportError(f"{models_dir / (name + '.onnx')} is missing: install it with 'vcamswap models download'")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"{out} exists and is not an empty folder: give a new one (nothing is overwritten)")
    swap_batched = batched_swap_model(models_dir / f"{SWAP}.onnx")
    sb = max_batch if swap_batched is not None else 0  # the swap path's max_batch_size
    size, arc, lat = codec.SWAP_SIZE, codec.ARC_SIZE, codec.LATENT_SIZE
    emap = read_emap(models_dir / f"{SWAP}.onnx")
    files: dict[str, onnx.ModelProto | Path] = {
        SWAP: swap_batched if swap_batched is not None else models_dir / f"{SWAP}.onnx",
        ARC: models_dir / f"{ARC}.onnx",
        "vcamswap_latent": latent_model(emap),
        "vcamswap_swap_pre": pre_model(size, 1.0 / 255.0, 0.0, "swap_pre"),
        "vcamswap_swap_post": post_model(size),
        "vcamswap_source_pre": pre_model(arc, 1.0 / 127.5, -1.0, "source_pre"),
    }
    fp, u8 = "TYPE_FP32", "TYPE_UINT8"
    configs = {
        SWAP: onnx_config(SWAP, [tensor("target", fp, [3, size, size], sb), tensor("source", fp, [lat], sb)],
                          [tensor("output", fp, [3, size, size], sb)], sb, queue_delay_us),
        ARC: onnx_config(ARC, [tensor("input.1", fp, [3, arc, arc], max_batch)], [tensor("683", fp, [lat], max_batch)],
                         max_batch, queue_delay_us),
        "vcamswap_latent": onnx_config("vcamswap_latent", [tensor("embedding", fp, [lat], max_batch)],
                                       [tensor("latent", fp, [lat], max_batch)], max_batch, queue_delay_us),
        "vcamswap_swap_pre": onnx_config("vcamswap_swap_pre", [tensor("crop", u8, [size, size, 3], sb)],
                                         [tensor("blob", fp, [3, size, size], sb)], sb, queue_delay_us),
        "vcamswap_swap_post": onnx_config("vcamswap_swap_post", [tensor("output", fp, [3, size, size], sb)],
                                          [tensor("swapped", u8, [size, size, 3], sb)], sb, queue_delay_us),
        "vcamswap_source_pre": onnx_config("vcamswap_source_pre", [tensor("crop", u8, [arc, arc, 3], max_batch)],
                                           [tensor("blob", fp, [3, arc, arc], max_batch)], max_batch, queue_delay_us),
        codec.SWAP_MODEL: ensemble_config(
            codec.SWAP_MODEL, [tensor("crop", u8, [size, size, 3], sb), tensor("latent", fp, [lat], sb)],
            [tensor("swapped", u8, [size, size, 3], sb)], sb,
            [("vcamswap_swap_pre", {"crop": "crop"}, {"blob": "blob"}),
             (SWAP, {"target": "blob", "source": "latent"}, {"output": "output"}),
             ("vcamswap_swap_post", {"output": "output"}, {"swapped": "swapped"})]),
        codec.SOURCE_MODEL: ensemble_config(
            codec.SOURCE_MODEL, [tensor("crop", u8, [arc, arc, 3], max_batch)],
            [tensor("latent", fp, [lat], max_batch)], max_batch,
            [("vcamswap_source_pre", {"crop": "crop"}, {"blob": "blob"}),
             (ARC, {"input.1": "blob"}, {"683": "embedding"}),
             ("vcamswap_latent", {"embedding": "embedding"}, {"latent": "latent"})]),
    }
    out.mkdir(parents=True, exist_ok=True)
    for name, config in configs.items():
        folder = out / name
        (folder / "1").mkdir(parents=True)
        (folder / "config.pbtxt").write_text(config)
        source = files.get(name)
        if isinstance(source, Path):
            shutil.copyfile(source, folder / "1" / "model.onnx")
        elif source is not None:
            onnx.save(source, str(folder / "1" / "model.onnx"))
        kind = "ensemble" if name not in files else "onnx"
        batching = f"dynamic batching up to {configs[name].split('max_batch_size: ')[1].split()[0]}"
        yield f"{folder}: {kind}, {batching if 'max_batch_size: 0' not in config else 'one per call'}"
    if swap_batched is None:
        yield (f"note: {SWAP}'s batch dimension is fixed: crops are swapped one per call on {INSTANCES} instances "
               "(more instances: raise instance_group count)")
    yield (f"serve it: docker run --gpus all --rm -p 8001:8001 -v {out.resolve()}:/models "
           "nvcr.io/nvidia/tritonserver:24.08-py3 tritonserver --model-repository=/models")
