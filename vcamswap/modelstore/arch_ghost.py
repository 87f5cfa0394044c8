"""ONNX graphs with the real architecture and cost of GHOST's generators and the BiSeNet face parser, random
weights, for timing (as modelstore.arch does for inswapper_128 and det_10g).

GHOST (ai-forever/ghost, network/AEI_Net.py and AADLayer.py; backbone "unet", c_id 512), at 256x256:

* attributes encoder, a U-Net: seven 4x4 stride-2 convs 3 -> 32 -> 64 -> 128 -> 256 -> 512 -> 1024 -> 1024
  (256 px down to 2 px), six 4x4 stride-2 transposed convs back up to 128 px, each concatenated with the
  encoder feature of its size, and a bilinear x2: eight attribute maps, 1024@2 ... 2048@4 ... 64@256;
* generator: a 2x2 transposed conv of the 512-d identity to 1024@2, then eight AAD ResBlks (1024 -> 1024 @2,
  @4, @8; 1024 -> 512 @16; 512 -> 256 @32; 256 -> 128 @64; 128 -> 64 @128; 64 -> 3 @256) with a bilinear x2
  between them, and tanh. A ResBlk is `blocks` x [AAD layer, ReLU, 3x3 conv] plus, where cin != cout, one
  more on the skip. An AAD layer instance-normalises h, then blends (gamma_attr * h + beta_attr, from two 1x1
  convs of the attribute map) with (gamma_id * h + beta_id, from two linear layers of the identity) by a
  sigmoid mask from a 1x1 conv of h.
* The export's interface (FaceFusion's ghost_N_256.onnx): `target` 1x3x256x256 and `source` 1x512 ->
  `output` 1x3x256x256. The encoder's BatchNorms are folded into conv biases, as an eval-mode export does.

16.4, 31.1 and 45.9 G multiply-adds per face for 1, 2 and 3 blocks (printed by `main`); the parameters
make 514.0 and 737.5 MB of float32 weights for 1 and 2 blocks, against FaceFusion's published 514.9 and
738.7 MB. The 3-block graph (961 MB) is 106 MB over the published ghost_3_256 file, though every block adds
the same layers: its figures are an upper bound.

BiSeNet (yakhyo/face-parsing, after zllrunning; the `bisenet_resnet_34` export) at 512x512: a ResNet-34
context path (features at strides 8, 16, 32), attention refinement on the 16 and 32 features with the global
average, nearest x2 and 3x3 heads; no separate spatial path (the stride-8 ResNet feature stands in for it, as
in the reference); the feature fusion module; the main head and the two auxiliary heads the export keeps as
extra outputs, each upsampled bilinearly to 512. Approximated: BatchNorm folded into biases; the global
average's nearest upsample is a broadcast add. 23.4 G multiply-adds; the ResNet-34 part alone is 3.66 G
at 224 px (published: 3.6 G); 93.6 MB of float32 weights, as the published file.

    python -m vcamswap.modelstore.arch_ghost [--out DIR] [--time] [--repeats 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from vcamswap.modelstore.arch import Graph, build_arch_model
from vcamswap.modelstore.onnxgraph import IR_VERSION, OPSET

GHOST_BLOCKS = (1, 2, 3)
GHOST_SIZE, PARSER_SIZE, PARSER_CLASSES, ID_SIZE = 256, 512, 19, 512
# Published float32 file sizes, for the parameter check (README's model table).
PUBLISHED_MB = {"ghost_1_256": 514.9, "ghost_2_256": 738.7, "ghost_3_256": 855.5, "bisenet_resnet_34": 93.6}


def _conv(g: Graph, x: str, cin: int, cout: int, k: int, hw_out: int, stride: int = 1, pad: int | None = None,
          gain: float = 1.0) -> str:
    """k x k conv with bias (a folded BatchNorm, or the conv's own); He-scaled random weights."""
    w = g.init("w", (g.rng.standard_normal((cout, cin, k, k)) * gain * np.sqrt(2.0 / (cin * k * k)))
               .astype(np.float32))
    b = g.init("b", np.zeros(cout, np.float32))
    p = k // 2 if pad is None else pad
    g.macs += cin * cout * k * k * hw_out * hw_out
    return g.node("Conv", [x, w, b], kernel_shape=[k, k], strides=[stride, stride], pads=[p, p, p, p])


def _deconv(g: Graph, x: str, cin: int, cout: int, k: int, hw_in: int, stride: int, pad: int) -> str:
    """Transposed conv: every input pixel scatters a k x k x cout patch."""
    w = g.init("w", (g.rng.standard_normal((cin, cout, k, k)) * np.sqrt(2.0 / (cin * k * k / stride ** 2)))
               .astype(np.float32))
    b = g.init("b", np.zeros(cout, np.float32))
    g.macs += cin * cout * k * k * hw_in * hw_in
    return g.node("ConvTranspose", [x, w, b], kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4)


def _lrelu(g: Graph, x: str) -> str:
    return g.node("LeakyRelu", [x], alpha=0.1)  # the reference's slope


def _up(g: Graph, x: str, mode: str = "linear") -> str:
    """x2 upsample: bilinear with aligned corners (F.interpolate(..., align_corners=True)) or nearest."""
    scales = g.init("scales", np.array([1, 1, 2, 2], np.float32), keep_fp32=True)
    roi = g.init("roi", np.zeros(0, np.float32), keep_fp32=True)
    if mode == "nearest":
        return g.node("Resize", [x, roi, scales], mode="nearest")
    return g.node("Resize", [x, roi, scales], mode="linear", coordinate_transformation_mode="align_corners")


def _per_channel(g: Graph, z: str, cout: int) -> str:
    """A linear layer of the identity, as a 1 x C x 1 x 1 tensor to broadcast over h."""
    shape = g.init("shape", np.array([1, cout, 1, 1], np.int64))
    return g.node("Reshape", [g.gemm(z, ID_SIZE, cout), shape])


def _aad(g: Graph, h: str, attr: str, z: str, cx: int, cattr: int, hw: int) -> str:
    ones, zeros = g.init("one", np.ones(cx, np.float32)), g.init("zero", np.zeros(cx, np.float32))
    h = g.node("InstanceNormalization", [h, ones, zeros], epsilon=1e-5)
    a = g.node("Add", [g.node("Mul", [_conv(g, attr, cattr, cx, 1, hw, gain=0.5), h]),
                       _conv(g, attr, cattr, cx, 1, hw, gain=0.5)])
    i = g.node("Add", [g.node("Mul", [_per_channel(g, z, cx), h]), _per_channel(g, z, cx)])
    m = g.node("Sigmoid", [_conv(g, h, cx, 1, 1, hw)])
    g.macs += cx * hw * hw * 4  # the two blends and the (1 - M) mix, elementwise; small beside the convs
    return g.node("Add", [a, g.node("Mul", [m, g.node("Sub", [i, a])])])  # (1 - M) * A + M * I


def _add_blocks(g: Graph, h: str, attr: str, z: str, cin: int, cout: int, cattr: int, hw: int, n: int) -> str:
    for i in range(n):
        h = _conv(g, g.node("Relu", [_aad(g, h, attr, z, cin, cattr, hw)]), cin, cout if i == n - 1 else cin, 3,
                  hw, gain=0.5)
    return h


def _aad_resblk(g: Graph, h: str, attr: str, z: str, cin: int, cout: int, cattr: int, hw: int, n: int) -> str:
    x = _add_blocks(g, h, attr, z, cin, cout, cattr, hw, n)
    skip = h if cin == cout else _add_blocks(g, h, attr, z, cin, cout, cattr, hw, 1)
    return g.node("Add", [x, skip])


def _finish(g: Graph, name: str, inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto]
            ) -> onnx.ModelProto:
    graph = helper.make_graph(g.nodes, name, inputs, outputs, initializer=g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="vcamswap-arch")
    model.ir_version = IR_VERSION
    return model


def ghost_graph(blocks: int = 2, div: int = 1, seed: int = 0) -> tuple[onnx.ModelProto, int]:
    """GHOST's generator with `blocks` AAD blocks per ResBlk, and its multiply-adds per face. `div` > 1
    divides every inner channel count (a cheaper look-alike for tests); 1 is the real cost."""
    g = Graph(seed=seed + blocks)
    enc = [c // div for c in (32, 64, 128, 256, 512, 1024, 1024)]
    feats, x, cin, hw = [], "target", 3, GHOST_SIZE
    for c in enc:
        hw //= 2
        x = _lrelu(g, _conv(g, x, cin, c, 4, hw, stride=2, pad=1))
        feats.append((x, c))
        cin = c
    attrs = [(x, cin)]  # 1024@2
    for (skip, cs), cout in zip(reversed(feats[:-1]), reversed(enc[:-1]), strict=True):
        y = _lrelu(g, _deconv(g, x, cin, cout, 4, hw, 2, 1))
        hw *= 2
        x, cin = g.node("Concat", [y, skip], axis=1), cout + cs
        attrs.append((x, cin))
    attrs.append((_up(g, x), cin))  # 64@256
    shape = g.init("id_shape", np.array([1, ID_SIZE, 1, 1], np.int64))
    c1 = 1024 // div
    h = _deconv(g, g.node("Reshape", ["source", shape]), ID_SIZE, c1, 2, 1, 1, 0)  # 1024@2
    chans = [c1, c1, c1, c1, 512 // div, 256 // div, 128 // div, 64 // div, 3]
    hw = 2
    for level, (attr, cattr) in enumerate(attrs):
        h = _aad_resblk(g, h, attr, "source", chans[level], chans[level + 1], cattr, hw, blocks)
        if level < len(attrs) - 1:
            h, hw = _up(g, h), hw * 2
    g.nodes.append(helper.make_node("Tanh", [h], ["output"], name="output"))
    side = [1, 3, GHOST_SIZE, GHOST_SIZE]
    model = _finish(g, f"ghost_{blocks}_256_arch",
                    [helper.make_tensor_value_info("target", TensorProto.FLOAT, side),
                     helper.make_tensor_value_info("source", TensorProto.FLOAT, [1, ID_SIZE])],
                    [helper.make_tensor_value_info("output", TensorProto.FLOAT, side)])
    return model, g.macs


# ----------------------------------------------------------------------------------------------- BiSeNet


def _cbr(g: Graph, x: str, cin: int, cout: int, k: int, hw: int, stride: int = 1) -> str:
    return g.node("Relu", [_conv(g, x, cin, cout, k, hw, stride)])


def _basic_block(g: Graph, x: str, cin: int, cout: int, hw: int, stride: int) -> str:
    y = _conv(g, _cbr(g, x, cin, cout, 3, hw, stride), cout, cout, 3, hw, gain=0.5)
    skip = x if stride == 1 and cin == cout else _conv(g, x, cin, cout, 1, hw, stride)
    return g.node("Relu", [g.node("Add", [y, skip])])


def _attention(g: Graph, x: str, c: int, mid: int | None = None) -> str:
    """x times a per-channel sigmoid gate from its global average (ARM: one 1x1; FFM: 1x1, ReLU, 1x1)."""
    pooled = g.node("GlobalAveragePool", [x])
    if mid is None:
        gate = _conv(g, pooled, c, c, 1, 1)
    else:
        gate = _conv(g, g.node("Relu", [_conv(g, pooled, c, mid, 1, 1)]), mid, c, 1, 1)
    return g.node("Mul", [x, g.node("Sigmoid", [gate])])


def _head(g: Graph, x: str, cin: int, mid: int, hw: int, classes: int, size: int) -> str:
    logits = _conv(g, _cbr(g, x, cin, mid, 3, hw), mid, classes, 1, hw)
    scales = g.init("scales", np.array([1, 1, size // hw, size // hw], np.float32), keep_fp32=True)
    roi = g.init("roi", np.zeros(0, np.float32), keep_fp32=True)
    return g.node("Resize", [logits, roi, scales], mode="linear", coordinate_transformation_mode="align_corners")


def bisenet_graph(div: int = 1, size: int = PARSER_SIZE, seed: int = 0) -> tuple[onnx.ModelProto, int]:
    """The ResNet-34 BiSeNet face parser at `size` and its multiply-adds; `div` > 1: narrower (tests)."""
    g = Graph(seed=seed)
    w = [c // div for c in (64, 128, 256, 512)]
    hw = size // 2
    x = _cbr(g, "input", 3, w[0], 7, hw, 2)
    hw //= 2
    x = g.node("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    feats, cin = [], w[0]
    for stage, (cout, n) in enumerate(zip(w, (3, 4, 6, 3), strict=True)):
        for i in range(n):
            stride = 2 if i == 0 and stage > 0 else 1
            hw //= stride
            x = _basic_block(g, x, cin, cout, hw, stride)
            cin = cout
        feats.append((x, cout, hw))
    (f8, c8, hw8), (f16, c16, hw16), (f32, c32, hw32) = feats[1:]
    mid = 128 // div
    avg = g.node("Relu", [_conv(g, g.node("GlobalAveragePool", [f32]), c32, mid, 1, 1)])
    arm32 = _attention(g, _cbr(g, f32, c32, mid, 3, hw32), mid)
    up32 = _cbr(g, _up(g, g.node("Add", [arm32, avg]), "nearest"), mid, mid, 3, hw16)  # cp16
    arm16 = _attention(g, _cbr(g, f16, c16, mid, 3, hw16), mid)
    up16 = _cbr(g, _up(g, g.node("Add", [arm16, up32]), "nearest"), mid, mid, 3, hw8)  # cp8
    fused = _cbr(g, g.node("Concat", [f8, up16], axis=1), c8 + mid, 2 * mid, 1, hw8)
    fused = g.node("Add", [_attention(g, fused, 2 * mid, mid // 2), fused])
    heads = [_head(g, fused, 2 * mid, 2 * mid, hw8, PARSER_CLASSES, size),
             _head(g, up16, mid, mid // 2, hw8, PARSER_CLASSES, size),
             _head(g, up32, mid, mid // 2, hw16, PARSER_CLASSES, size)]
    names = ["output", "output_16", "output_32"]  # the export names the first; the others stay outputs
    for internal, name in zip(heads, names, strict=True):
        g.nodes.append(helper.make_node("Identity", [internal], [name], name=name))
    out_shape: list[str | int] = ["batch_size", PARSER_CLASSES, size, size]
    model = _finish(g, "bisenet_resnet_34_arch",
                    [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch_size", 3, size, size])],
                    [helper.make_tensor_value_info(n, TensorProto.FLOAT, out_shape) for n in names])
    return model, g.macs


def resnet34_macs(size: int = 224) -> int:
    """The ResNet-34 backbone's multiply-adds (no classifier) at `size`: 3.6 G at 224, the published figure."""
    g = Graph()
    x, cin, hw = _cbr(g, "x", 3, 64, 7, size // 2, 2), 64, size // 4
    for stage, (cout, n) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3), strict=True)):
        for i in range(n):
            stride = 2 if i == 0 and stage > 0 else 1
            hw //= stride
            x, cin = _basic_block(g, x, cin, cout, hw, stride), cout
    return g.macs


def param_count(model: onnx.ModelProto) -> int:
    return sum(int(np.prod(t.dims)) for t in model.graph.initializer)


def save(model: onnx.ModelProto, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def build_models(folder: Path, div: int = 1) -> dict[str, int]:
    """ghost_1/2/3_256.onnx and bisenet_resnet_34.onnx of the real architecture in `folder`; their MACs."""
    macs = {}
    for n in GHOST_BLOCKS:
        model, macs[f"ghost_{n}_256"] = ghost_graph(n, div)
        save(model, folder / f"ghost_{n}_256.onnx")
    parser, macs["bisenet_resnet_34"] = bisenet_graph(div)
    save(parser, folder / "bisenet_resnet_34.onnx")
    return macs


# ----------------------------------------------------------------------------------------------- timing


def feeds_for(name: str) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    if name.startswith("ghost"):
        return {"target": rng.uniform(-1, 1, (1, 3, GHOST_SIZE, GHOST_SIZE)).astype(np.float32),
                "source": rng.standard_normal((1, ID_SIZE)).astype(np.float32)}
    if name.startswith("bisenet"):
        return {"input": rng.standard_normal((1, 3, PARSER_SIZE, PARSER_SIZE)).astype(np.float32)}
    return {"target": rng.random((1, 3, 128, 128), np.float32),
            "source": rng.standard_normal((1, ID_SIZE)).astype(np.float32)}


def interleaved_ms(paths: dict[str, Path], threads: int, repeats: int) -> dict[str, list[float]]:
    """ms of one run of each model, the models taking turns in every repeat, so a machine that gets busier
    mid-run slows them alike (one warm-up run each first)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads, opts.log_severity_level = threads, 1, 3
    runs = {}
    for name, path in paths.items():
        sess, feeds = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"]), feeds_for(name)
        sess.run(None, feeds)
        runs[name] = (sess, feeds)
    ms: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(repeats):
        for name, (sess, feeds) in runs.items():
            t0 = time.perf_counter()
            sess.run(None, feeds)
            ms[name].append(1000.0 * (time.perf_counter() - t0))
    return ms


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vcamswap.modelstore.arch_ghost", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, help="where to write the models (default: a temporary folder)")
    ap.add_argument("--time", action="store_true", help="time each against inswapper_128's architecture on the CPU")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.out or Path(tmp)
        macs = build_models(folder)
        macs["inswapper_128"] = build_arch_model(folder / "inswapper_128.onnx")
        print(f"ResNet-34 backbone at 224: {resnet34_macs() / 1e9:.2f} G multiply-adds (published: 3.6 G)")
        for name, m in macs.items():
            size = (folder / f"{name}.onnx").stat().st_size / 1e6
            published = f", published {PUBLISHED_MB[name]} MB" if name in PUBLISHED_MB else ""
            print(f"{name}: {m / 1e9:.1f} G multiply-adds per face, {size:.1f} MB{published}")
        if args.time:
            ms = interleaved_ms({n: folder / f"{n}.onnx" for n in macs}, args.threads, args.repeats)
            base = float(np.median(ms["inswapper_128"]))
            print(f"\nCPU, {args.threads} threads, median of {args.repeats} interleaved runs:")
            for name, values in ms.items():
                med = float(np.median(values))
                # the ratio within each repeat, whose runs were back to back, then the median over repeats
                ratio = float(np.median(np.asarray(values) / np.asarray(ms["inswapper_128"])))
                print(f"{name}: {med:.0f} ms per face (min {min(values):.0f}, max {max(values):.0f}), "
                      f"{med / base:.2f}x inswapper_128's median, {ratio:.2f}x per repeat")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
