"""ONNX graphs with the real models' architecture and cost but random weights, for timing.

inswapper_128 (the swap model whose cost dominates a neural frame):

    target 1x3x128x128 -> 7x7 conv 128 @128 -> 3x3/2 conv 256 @64 -> 3x3/2 conv 512 @32 -> 3x3 conv 1024 @32
    -> 6 residual style blocks at 32x32: two 3x3 1024->1024 convs, each followed by AdaIN whose scale and
       shift come from the 512-d `source` latent
    -> bilinear x2, 3x3 conv 512 @64 -> bilinear x2, 3x3 conv 256 @128 -> 3x3 conv 128 @128 -> 7x7 conv 3, tanh
    -> output 1x3x128x128 in [0, 1]; a 512x512 `emap` is the last initializer, as in the real file.

About 167 G multiply-adds per face (printed by `macs`); the same I/O names, shapes and dtypes as the real
model, so the engine loads it unchanged. `fp16=True` stores the weights in float16 and casts at the edges
(inputs and output stay float32), like the fp16 variant GPUs run.

`build_scrfd_arch` does the same for the detector: a ResNet-style backbone, an FPN and SCRFD's shared
heads at strides 8/16/32, with det_10g's I/O (about 13 G multiply-adds at 640x640, 3.3 G at 320x320).

    python models/make_inswapper_arch.py OUT.onnx [--fp16] [--scrfd OUT_DET.onnx] [--time] [--threads 2]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from vcamswap.modelstore.onnxgraph import IR_VERSION, OPSET

SCRFD_OUTPUTS = ("448", "471", "494", "451", "474", "497", "454", "477", "500")


@dataclass
class Graph:
    """A tiny ONNX graph builder that counts multiply-adds as it goes."""

    fp16: bool = False
    seed: int = 0
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    inits: list[onnx.TensorProto] = field(default_factory=list)
    macs: int = 0
    _n: int = 0

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    @property
    def dtype(self) -> type:
        return np.float16 if self.fp16 else np.float32

    def name(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}_{self._n}"

    def init(self, prefix: str, value: np.ndarray, keep_fp32: bool = False) -> str:
        n = self.name(prefix)
        arr = value if keep_fp32 or value.dtype.kind != "f" else value.astype(self.dtype)
        self.inits.append(numpy_helper.from_array(arr, n))
        return n

    def node(self, op: str, inputs: list[str], **attrs: Any) -> str:
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def conv(self, x: str, cin: int, cout: int, k: int, hw_out: int, stride: int = 1, reflect: bool = False,
             bias: float = 0.0, gain: float = 1.0) -> str:
        """k x k convolution; `hw_out` is the output side, used for the multiply-add count."""
        std = gain * np.sqrt(2.0 / (cin * k * k))
        w = self.init("w", (self.rng.standard_normal((cout, cin, k, k)) * std).astype(np.float32))
        b = self.init("b", np.full(cout, bias, np.float32))
        p = k // 2
        if reflect and p:
            pads = self.init("pads", np.array([0, 0, p, p, 0, 0, p, p], np.int64))
            x = self.node("Pad", [x, pads], mode="reflect")
            pad_attr = [0, 0, 0, 0]
        else:
            pad_attr = [p, p, p, p]
        self.macs += cin * cout * k * k * hw_out * hw_out
        return self.node("Conv", [x, w, b], kernel_shape=[k, k], strides=[stride, stride], pads=pad_attr)

    def gemm(self, x: str, cin: int, cout: int) -> str:
        w = self.init("w", (self.rng.standard_normal((cin, cout)) * 0.02).astype(np.float32))
        b = self.init("b", np.zeros(cout, np.float32))
        self.macs += cin * cout
        return self.node("Gemm", [x, w, b])

    def lrelu(self, x: str) -> str:
        return self.node("LeakyRelu", [x], alpha=0.2)

    def up2(self, x: str) -> str:
        scales = self.init("scales", np.array([1, 1, 2, 2], np.float32), keep_fp32=True)
        roi = self.init("roi", np.zeros(0, np.float32), keep_fp32=True)
        return self.node("Resize", [x, roi, scales], mode="linear")


def _adain(g: Graph, x: str, latent: str, channels: int) -> str:
    """Instance-normalise x, then scale and shift it per channel from the latent (style modulation)."""
    ones = g.init("in_scale", np.ones(channels, np.float32))
    zeros = g.init("in_bias", np.zeros(channels, np.float32))
    normed = g.node("InstanceNormalization", [x, ones, zeros], epsilon=1e-5)
    style = g.gemm(latent, 512, 2 * channels)  # (1, 2C): scale then shift
    shape = g.init("style_shape", np.array([1, 2 * channels, 1, 1], np.int64))
    style4 = g.node("Reshape", [style, shape])
    split = g.init("split", np.array([channels, channels], np.int64))
    scale_name, shift_name = g.name("gamma"), g.name("beta")
    g.nodes.append(helper.make_node("Split", [style4, split], [scale_name, shift_name], axis=1))
    one = g.init("one", np.ones((), np.float32))
    gain = g.node("Add", [scale_name, one])
    return g.node("Add", [g.node("Mul", [normed, gain]), shift_name])


def inswapper_graph(fp16: bool = False, channels: int = 1024, seed: int = 0) -> tuple[onnx.ModelProto, int]:
    """The model and its multiply-adds per face. `channels` < 1024 builds a cheaper look-alike (tests)."""
    g = Graph(fp16=fp16, seed=seed)
    c1, c2, c3 = channels // 8, channels // 4, channels // 2
    x, latent = "target", "source"
    if fp16:
        x = g.node("Cast", [x], to=TensorProto.FLOAT16)
        latent = g.node("Cast", [latent], to=TensorProto.FLOAT16)
    x = g.lrelu(g.conv(x, 3, c1, 7, 128, reflect=True))
    x = g.lrelu(g.conv(x, c1, c2, 3, 64, stride=2))
    x = g.lrelu(g.conv(x, c2, c3, 3, 32, stride=2))
    x = g.lrelu(g.conv(x, c3, channels, 3, 32))
    for _ in range(6):
        y = g.node("Relu", [_adain(g, g.conv(x, channels, channels, 3, 32, reflect=True), latent, channels)])
        y = _adain(g, g.conv(y, channels, channels, 3, 32, reflect=True), latent, channels)
        x = g.node("Add", [x, y])
    x = g.lrelu(g.conv(g.up2(x), channels, c3, 3, 64))
    x = g.lrelu(g.conv(g.up2(x), c3, c2, 3, 128))
    x = g.lrelu(g.conv(x, c2, c1, 3, 128))
    x = g.node("Tanh", [g.conv(x, c1, 3, 7, 128, reflect=True, gain=0.05)])  # a face-like range, not saturated
    half = g.init("half", np.full((), 0.5, np.float32))
    x = g.node("Add", [g.node("Mul", [x, half]), half])  # tanh -> [0, 1], as the engine expects
    if fp16:
        x = g.node("Cast", [x], to=TensorProto.FLOAT)
    g.nodes.append(helper.make_node("Identity", [x], ["output"], name="output"))
    rng = np.random.default_rng(seed + 1)
    emap, _ = np.linalg.qr(rng.standard_normal((512, 512)))
    g.inits.append(numpy_helper.from_array(emap.astype(np.float32), "emap"))  # last, unused, as in the real file
    graph = helper.make_graph(
        g.nodes, "inswapper_128_arch",
        [helper.make_tensor_value_info("target", TensorProto.FLOAT, [1, 3, 128, 128]),
         helper.make_tensor_value_info("source", TensorProto.FLOAT, [1, 512])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 128, 128])],
        initializer=g.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="vcamswap-arch")
    model.ir_version = IR_VERSION
    return model, g.macs


def build_arch_model(path: Path | str, fp16: bool = False, channels: int = 1024) -> int:
    """Write the inswapper_128-architecture model to `path`; returns its multiply-adds per face."""
    model, macs = inswapper_graph(fp16, channels)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return macs


# ----------------------------------------------------------------------------------------------- SCRFD


def scrfd_graph(widths: tuple[int, int, int, int] = (56, 112, 224, 448), seed: int = 0) -> onnx.ModelProto:
    """det_10g's interface on a ResNet-style backbone (2 blocks per stage), FPN and shared heads."""
    g = Graph(seed=seed)
    x = g.lrelu(g.conv("input.1", 3, widths[0], 3, 1, stride=2))  # MAC counts here are per output pixel
    x = g.lrelu(g.conv(x, widths[0], widths[0], 3, 1, stride=2))
    feats: list[tuple[str, int]] = []
    cin = widths[0]
    for stage, cout in enumerate(widths):
        for block in range(2):
            stride = 2 if block == 0 and stage > 0 else 1
            y = g.lrelu(g.conv(x, cin, cout, 3, 1, stride=stride))
            y = g.conv(y, cout, cout, 3, 1)
            skip = x if stride == 1 and cin == cout else g.conv(x, cin, cout, 1, 1, stride=stride)
            x = g.lrelu(g.node("Add", [y, skip]))
            cin = cout
        if stage > 0:
            feats.append((x, cout))
    fpn = 64
    lat = [g.conv(f, c, fpn, 1, 1) for f, c in feats]
    outs: dict[str, list[str]] = {"score": [], "bbox": [], "kps": []}
    top = lat[2]
    merged = [lat[0], lat[1], top]
    merged[1] = g.node("Add", [lat[1], g.up2(top)])
    merged[0] = g.node("Add", [lat[0], g.up2(merged[1])])
    for level in merged:
        h = g.lrelu(g.conv(level, fpn, fpn, 3, 1))
        h = g.lrelu(g.conv(h, fpn, fpn, 3, 1))
        for kind, width, bias in (("score", 1, -10.0), ("bbox", 4, 0.0), ("kps", 10, 0.0)):
            # Near-zero weights, score bias -10: nothing passes the threshold, as on a frame without faces.
            y = g.conv(h, fpn, 2 * width, 3, 1, bias=bias, gain=1e-4)  # 2 anchors per cell
            y = g.node("Transpose", [y], perm=[0, 2, 3, 1])
            shape = g.init("shape", np.array([-1, width], np.int64))
            y = g.node("Reshape", [y, shape])
            outs[kind].append(g.node("Sigmoid", [y]) if kind == "score" else y)
    outputs = []
    for internal, name, width in zip(outs["score"] + outs["bbox"] + outs["kps"], SCRFD_OUTPUTS,
                                     [1] * 3 + [4] * 3 + [10] * 3, strict=True):
        g.nodes.append(helper.make_node("Identity", [internal], [name], name=f"out_{name}"))
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [f"n_{name}", width]))
    graph = helper.make_graph(
        g.nodes, "scrfd_arch", [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, "?", "?"])],
        outputs, initializer=g.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="vcamswap-arch")
    model.ir_version = IR_VERSION
    return model


def build_scrfd_model(path: Path | str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(scrfd_graph(), str(path))


def count_macs(model: onnx.ModelProto, input_hw: tuple[int, int]) -> int:
    """Multiply-adds of the Conv and Gemm nodes for one input of `input_hw`, from inferred shapes."""
    from onnx import shape_inference

    m = onnx.ModelProto()
    m.CopyFrom(model)
    dims = m.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_value, dims[3].dim_value = input_hw
    inferred = shape_inference.infer_shapes(m)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in inferred.graph.value_info}
    weights = {t.name: list(t.dims) for t in m.graph.initializer}
    total = 0
    for node in m.graph.node:
        if node.op_type == "Conv":
            w = weights[node.input[1]]
            out = shapes[node.output[0]]
            total += int(np.prod(w)) * out[2] * out[3]
        elif node.op_type == "Gemm":
            total += int(np.prod(weights[node.input[1]]))
    return total


# ----------------------------------------------------------------------------------------------- timing


def time_session(path: Path, feeds: dict[str, np.ndarray], threads: int, runs: int) -> float:
    """Median ms per run of a CPU session with `threads` intra-op threads (after one warm-up run)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    sess.run(None, feeds)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(None, feeds)
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, help="where to write the inswapper_128-architecture model")
    ap.add_argument("--fp16", action="store_true")
    ap.add_argument("--scrfd", type=Path, help="also write a det_10g-architecture detector here")
    ap.add_argument("--time", action="store_true", help="time them on the CPU")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    macs = build_arch_model(args.out, fp16=args.fp16)
    print(f"{args.out}: {macs / 1e9:.1f} G multiply-adds per face, {args.out.stat().st_size / 1e6:.0f} MB")
    if args.time and not args.fp16:
        rng = np.random.default_rng(0)
        feeds = {"target": rng.random((1, 3, 128, 128), np.float32),
                 "source": rng.standard_normal((1, 512)).astype(np.float32)}
        print(f"  {time_session(args.out, feeds, args.threads, args.runs):.0f} ms per face ({args.threads} threads)")
    if args.scrfd:
        build_scrfd_model(args.scrfd)
        model = onnx.load(str(args.scrfd))
        for size in (320, 640):
            line = f"{args.scrfd} at {size}: {count_macs(model, (size, size)) / 1e9:.1f} G multiply-adds"
            if args.time:
                x = np.random.default_rng(0).random((1, 3, size, size), np.float32)
                line += f", {time_session(args.scrfd, {'input.1': x}, args.threads, args.runs):.0f} ms"
            print(line)


if __name__ == "__main__":
    main()
