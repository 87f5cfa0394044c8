"""Convert mediapipe's BlazeFace (short range) and FaceMesh tflite models to ONNX.

Run once by a maintainer; the resulting .onnx files are committed under models/lite, so the product
needs neither TensorFlow nor the mediapipe wheel at run time.

    python models/convert_mediapipe.py [--wheel PATH] [--out models/lite] [--check]

Without --wheel the script fetches mediapipe==0.10.21 with `pip download` (the last release whose wheel
carries these files; any platform's wheel holds the same bytes). --check runs the original tflite with
ai-edge-litert and the ONNX with onnxruntime on real faces and fails when they disagree.

Layout: the ONNX model keeps the tflite interface exactly (input NHWC float32, outputs with the original
names and shapes); inside, the graph runs NCHW and transposes only where a reshape needs NHWC order.
Only the operators these two models use are supported; anything else raises UnsupportedModelError.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import onnx
import tflite
from onnx import TensorProto, helper, numpy_helper

MEDIAPIPE_VERSION = "0.10.21"
# Any platform's wheel carries the same model bytes; this one is fetched when no wheel is given.
WHEEL_PLATFORM = "manylinux_2_28_x86_64"
WHEEL_PYTHON = "3.11"

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WHEEL_DIR = REPO_ROOT / ".whl"
DEFAULT_OUT = REPO_ROOT / "models" / "lite"


class ModelSpec(NamedTuple):
    member: str  # path inside the wheel
    onnx_name: str
    input_range: tuple[float, float]  # what mediapipe's graph normalises pixels to


MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        "mediapipe/modules/face_detection/face_detection_short_range.tflite",
        "face_detection_short_range.onnx",
        (-1.0, 1.0),
    ),
    ModelSpec("mediapipe/modules/face_landmark/face_landmark.tflite", "face_landmark.onnx", (0.0, 1.0)),
)

OPSET = 13
IR_VERSION = 8  # readable by onnxruntime >= 1.10

# NHWC axis -> NCHW axis
_NHWC_TO_NCHW_AXIS = (0, 2, 3, 1)


class UnsupportedModelError(ValueError):
    """The tflite model uses something this converter does not translate."""


# ---------------------------------------------------------------------------------------------------------
# tflite reading


_BUILTIN_NAMES: dict[int, str] = {
    v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_") and isinstance(v, int)
}

_NP_DTYPES: dict[int, type[np.generic]] = {
    tflite.TensorType.FLOAT32: np.float32,
    tflite.TensorType.FLOAT16: np.float16,
    tflite.TensorType.INT32: np.int32,
    tflite.TensorType.INT64: np.int64,
}


class TfTensor(NamedTuple):
    idx: int
    name: str
    shape: tuple[int, ...]
    data: np.ndarray | None  # constant contents, None for activations


class TfOp(NamedTuple):
    kind: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: object  # the flatbuffer options table of the op's kind, or None


_OPTION_CLASSES: dict[str, type] = {
    "CONV_2D": tflite.Conv2DOptions,
    "DEPTHWISE_CONV_2D": tflite.DepthwiseConv2DOptions,
    "ADD": tflite.AddOptions,
    "MAX_POOL_2D": tflite.Pool2DOptions,
    "RESHAPE": tflite.ReshapeOptions,
    "CONCATENATION": tflite.ConcatenationOptions,
}


class TfGraph(NamedTuple):
    tensors: list[TfTensor]
    ops: list[TfOp]
    inputs: list[int]
    outputs: list[int]


def read_tflite(data: bytes) -> TfGraph:
    model = tflite.Model.GetRootAsModel(data, 0)
    if model.SubgraphsLength() != 1:
        raise UnsupportedModelError(f"expected one subgraph, found {model.SubgraphsLength()}")
    graph = model.Subgraphs(0)
    tensors = [_read_tensor(model, graph.Tensors(i), i) for i in range(graph.TensorsLength())]
    ops = [_read_op(model, graph.Operators(i)) for i in range(graph.OperatorsLength())]
    return TfGraph(
        tensors, ops, [int(i) for i in graph.InputsAsNumpy()], [int(i) for i in graph.OutputsAsNumpy()]
    )


def _read_tensor(model: tflite.Model, t: tflite.Tensor, index: int) -> TfTensor:
    shape = tuple(int(s) for s in t.ShapeAsNumpy()) if t.ShapeLength() else ()
    buf = model.Buffers(t.Buffer())
    data: np.ndarray | None = None
    if buf is not None and buf.DataLength() > 0:
        if t.Type() not in _NP_DTYPES:
            raise UnsupportedModelError(f"tensor {t.Name().decode()}: type {t.Type()} not supported")
        raw = buf.DataAsNumpy().tobytes()
        data = np.frombuffer(raw, dtype=_NP_DTYPES[t.Type()]).reshape(shape)
    return TfTensor(index, t.Name().decode(), shape, data)


def _read_op(model: tflite.Model, op: tflite.Operator) -> TfOp:
    code = model.OperatorCodes(op.OpcodeIndex())
    # Newer files keep small codes in the deprecated byte too; the larger of the two is the real one.
    kind = _BUILTIN_NAMES.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "UNKNOWN")
    options: object = None
    table = op.BuiltinOptions()
    if kind in _OPTION_CLASSES and table is not None:
        options = _OPTION_CLASSES[kind]()
        options.Init(table.Bytes, table.Pos)  # type: ignore[attr-defined]
    inputs = tuple(int(i) for i in op.InputsAsNumpy()) if op.InputsLength() else ()
    outputs = tuple(int(i) for i in op.OutputsAsNumpy())
    return TfOp(kind, inputs, outputs, options)


# ---------------------------------------------------------------------------------------------------------
# ONNX emission


def same_pads(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow SAME padding (the extra pixel goes after), as explicit begin/end pads."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _spatial_pads(
    in_shape: tuple[int, ...],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    dil: tuple[int, int],
    pad: int,
) -> list[int]:
    if pad == tflite.Padding.VALID:
        return [0, 0, 0, 0]
    if pad != tflite.Padding.SAME:
        raise UnsupportedModelError(f"padding mode {pad} not supported")
    top, bottom = same_pads(in_shape[1], kernel[0], stride[0], dil[0])
    left, right = same_pads(in_shape[2], kernel[1], stride[1], dil[1])
    return [top, left, bottom, right]


def _to_nchw_constant(arr: np.ndarray) -> np.ndarray:
    """A constant broadcast against an NHWC activation, rearranged to broadcast the same way in NCHW."""
    if arr.ndim > 4:
        raise UnsupportedModelError(f"constant of rank {arr.ndim} against a 4-D activation")
    a4 = arr.reshape((1,) * (4 - arr.ndim) + arr.shape)
    return np.ascontiguousarray(a4.transpose(0, 3, 1, 2))


class OnnxBuilder:
    """Emits ONNX nodes while tracking which activations are held in NCHW."""

    def __init__(self, graph: TfGraph) -> None:
        self.g = graph
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.consts: dict[int, np.ndarray] = {}  # tflite tensor index -> fp32/int constant (tflite layout)
        self.names: dict[int, str] = {}  # tflite tensor index -> ONNX name in the layout held
        self.nchw: set[int] = set()  # tflite tensors whose ONNX value is NCHW
        self._other_layout: dict[int, str] = {}  # cached transposes
        self._uid = 0
        for t in graph.tensors:
            if t.data is not None:
                self.consts[t.idx] = t.data

    def fresh(self, base: str) -> str:
        self._uid += 1
        return f"{base}__{self._uid}"

    def add_init(self, base: str, arr: np.ndarray) -> str:
        name = self.fresh(base)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def node(self, op: str, inputs: Sequence[str], base: str, **attrs: Any) -> str:
        out = self.fresh(base)
        self.nodes.append(helper.make_node(op, list(inputs), [out], name=out, **attrs))
        return out

    def tensor(self, idx: int) -> TfTensor:
        return self.g.tensors[idx]

    def const(self, idx: int) -> np.ndarray:
        if idx not in self.consts:
            raise UnsupportedModelError(f"tensor {self.tensor(idx).name} must be a constant")
        return self.consts[idx]

    def as_nchw(self, idx: int) -> str:
        if idx in self.nchw:
            return self.names[idx]
        if len(self.tensor(idx).shape) != 4:
            raise UnsupportedModelError(f"{self.tensor(idx).name}: expected a 4-D activation")
        if idx not in self._other_layout:
            self._other_layout[idx] = self.node("Transpose", [self.names[idx]], "to_nchw", perm=[0, 3, 1, 2])
        return self._other_layout[idx]

    def as_tflite_layout(self, idx: int) -> str:
        if idx not in self.nchw:
            return self.names[idx]
        if idx not in self._other_layout:
            self._other_layout[idx] = self.node("Transpose", [self.names[idx]], "to_nhwc", perm=[0, 2, 3, 1])
        return self._other_layout[idx]

    def set_output(self, idx: int, name: str, nchw: bool) -> None:
        self.names[idx] = name
        if nchw:
            self.nchw.add(idx)

    def activation(self, x: str, fused: int) -> str:
        if fused == tflite.ActivationFunctionType.NONE:
            return x
        if fused == tflite.ActivationFunctionType.RELU:
            return self.node("Relu", [x], "relu")
        if fused in (tflite.ActivationFunctionType.RELU6, tflite.ActivationFunctionType.RELU_N1_TO_1):
            lo, hi = (0.0, 6.0) if fused == tflite.ActivationFunctionType.RELU6 else (-1.0, 1.0)
            lo_n = self.add_init("clip_lo", np.array(lo, np.float32))
            hi_n = self.add_init("clip_hi", np.array(hi, np.float32))
            return self.node("Clip", [x, lo_n, hi_n], "clip")
        raise UnsupportedModelError(f"fused activation {fused} not supported")

    # --- operators --------------------------------------------------------------------------------------

    def convert_op(self, op: TfOp) -> None:
        handler = getattr(self, f"op_{op.kind.lower()}", None)
        if handler is None:
            raise UnsupportedModelError(f"operator {op.kind} not supported")
        handler(op)

    def op_dequantize(self, op: TfOp) -> None:
        # fp16 weights: fold into fp32 constants, the graph then runs in fp32 like tflite's CPU path.
        self.consts[op.outputs[0]] = self.const(op.inputs[0]).astype(np.float32)

    def _conv(self, op: TfOp, depthwise: bool) -> None:
        o = op.options
        x_idx, w_idx = op.inputs[0], op.inputs[1]
        in_shape = self.tensor(x_idx).shape
        w = self.const(w_idx).astype(np.float32)
        if depthwise:
            # tflite [1, kh, kw, C*M] -> ONNX grouped conv [C*M, 1, kh, kw], group = C
            kernel = (w.shape[1], w.shape[2])
            w_onnx = w.transpose(3, 0, 1, 2)
            group = in_shape[3]
            if w.shape[3] != group * o.DepthMultiplier() and o.DepthMultiplier() != 0:  # type: ignore[attr-defined]
                raise UnsupportedModelError("depthwise conv: channels do not match the depth multiplier")
        else:
            # tflite [O, kh, kw, I] -> ONNX [O, I, kh, kw]
            kernel = (w.shape[1], w.shape[2])
            w_onnx = w.transpose(0, 3, 1, 2)
            group = 1
            if w.shape[3] != in_shape[3]:
                raise UnsupportedModelError("grouped CONV_2D not supported")
        stride = (o.StrideH(), o.StrideW())  # type: ignore[attr-defined]
        dil = (o.DilationHFactor() or 1, o.DilationWFactor() or 1)  # type: ignore[attr-defined]
        pads = _spatial_pads(in_shape, kernel, stride, dil, o.Padding())  # type: ignore[attr-defined]
        inputs = [self.as_nchw(x_idx), self.add_init("w", w_onnx)]
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            inputs.append(self.add_init("b", self.const(op.inputs[2]).astype(np.float32)))
        y = self.node(
            "Conv",
            inputs,
            "conv",
            kernel_shape=list(kernel),
            strides=list(stride),
            dilations=list(dil),
            pads=pads,
            group=group,
        )
        y = self.activation(y, o.FusedActivationFunction())  # type: ignore[attr-defined]
        self.set_output(op.outputs[0], y, nchw=True)

    def op_conv_2d(self, op: TfOp) -> None:
        self._conv(op, depthwise=False)

    def op_depthwise_conv_2d(self, op: TfOp) -> None:
        self._conv(op, depthwise=True)

    def _operand(self, idx: int, nchw: bool) -> str:
        if idx in self.consts:
            arr = self.consts[idx].astype(np.float32)
            return self.add_init("k", _to_nchw_constant(arr) if nchw else arr)
        return self.as_nchw(idx) if nchw else self.as_tflite_layout(idx)

    def _four_d(self, idx: int) -> bool:
        return len(self.tensor(idx).shape) == 4

    def op_add(self, op: TfOp) -> None:
        a, b = op.inputs
        nchw = self._four_d(op.outputs[0])
        y = self.node("Add", [self._operand(a, nchw), self._operand(b, nchw)], "add")
        y = self.activation(y, op.options.FusedActivationFunction() if op.options else 0)  # type: ignore[attr-defined]
        self.set_output(op.outputs[0], y, nchw)

    def op_relu(self, op: TfOp) -> None:
        nchw = op.inputs[0] in self.nchw
        self.set_output(op.outputs[0], self.node("Relu", [self.names[op.inputs[0]]], "relu"), nchw)

    def op_prelu(self, op: TfOp) -> None:
        x, alpha = op.inputs
        a = self.const(alpha).astype(np.float32)
        channels = self.tensor(x).shape[-1]
        if not self._four_d(x) or a.size != channels:
            raise UnsupportedModelError("PRELU: only per-channel alpha on a 4-D activation is supported")
        # onnxruntime's CPU PRelu is slow and breaks its blocked-layout (NCHWc) conv chain: 2.7 of the
        # 3.6 ms FaceMesh took. Written as  y = x + (1 - a) * relu(-x)  with two depthwise 1x1 convs,
        # both fuse (Conv+Relu, Conv+Add) and the model runs ~4x faster; same values up to rounding.
        x_n = self.as_nchw(x)
        neg_w = self.add_init("neg_w", np.full((channels, 1, 1, 1), -1.0, np.float32))
        neg = self.node("Conv", [x_n, neg_w], "prelu_neg", kernel_shape=[1, 1], group=channels)
        neg = self.node("Relu", [neg], "prelu_relu")
        scale_w = self.add_init("prelu_w", (1.0 - a).reshape(channels, 1, 1, 1))
        scaled = self.node("Conv", [neg, scale_w], "prelu_scale", kernel_shape=[1, 1], group=channels)
        self.set_output(op.outputs[0], self.node("Add", [scaled, x_n], "prelu"), nchw=True)

    def op_pad(self, op: TfOp) -> None:
        x = op.inputs[0]
        paddings = self.const(op.inputs[1]).astype(np.int64)  # [rank, 2] in tflite axis order
        nchw = self._four_d(x)
        if nchw:
            paddings = paddings[list(_NHWC_TO_NCHW_AXIS.index(i) for i in range(4))]
        pads = self.add_init("pads", np.concatenate([paddings[:, 0], paddings[:, 1]]))
        y = self.node("Pad", [self._operand(x, nchw), pads], "pad", mode="constant")
        self.set_output(op.outputs[0], y, nchw)

    def op_max_pool_2d(self, op: TfOp) -> None:
        o = op.options
        x = op.inputs[0]
        kernel = (o.FilterHeight(), o.FilterWidth())  # type: ignore[attr-defined]
        stride = (o.StrideH(), o.StrideW())  # type: ignore[attr-defined]
        # Padded cells never win a max in tflite, the same as ONNX MaxPool's pads.
        pads = _spatial_pads(self.tensor(x).shape, kernel, stride, (1, 1), o.Padding())  # type: ignore[attr-defined]
        y = self.node(
            "MaxPool",
            [self.as_nchw(x)],
            "maxpool",
            kernel_shape=list(kernel),
            strides=list(stride),
            pads=pads,
        )
        y = self.activation(y, o.FusedActivationFunction())  # type: ignore[attr-defined]
        self.set_output(op.outputs[0], y, nchw=True)

    def op_reshape(self, op: TfOp) -> None:
        # A reshape's element order is NHWC's: go back to the tflite layout first.
        shape = np.array(self.tensor(op.outputs[0]).shape, np.int64)
        y = self.node(
            "Reshape", [self.as_tflite_layout(op.inputs[0]), self.add_init("shape", shape)], "reshape"
        )
        self.set_output(op.outputs[0], y, nchw=False)

    def op_concatenation(self, op: TfOp) -> None:
        axis = int(op.options.Axis())  # type: ignore[attr-defined]
        rank = len(self.tensor(op.outputs[0]).shape)
        axis %= rank
        nchw = rank == 4 and all(i in self.nchw for i in op.inputs)
        if nchw:
            axis = _NHWC_TO_NCHW_AXIS[axis]
        y = self.node("Concat", [self._operand(i, nchw) for i in op.inputs], "concat", axis=axis)
        y = self.activation(y, op.options.FusedActivationFunction())  # type: ignore[attr-defined]
        self.set_output(op.outputs[0], y, nchw)


def convert(tflite_bytes: bytes, graph_name: str) -> onnx.ModelProto:
    """Translate one tflite model to an ONNX model with the same NHWC interface."""
    graph = read_tflite(tflite_bytes)
    b = OnnxBuilder(graph)
    graph_inputs = []
    for idx in graph.inputs:
        t = graph.tensors[idx]
        graph_inputs.append(helper.make_tensor_value_info(t.name, TensorProto.FLOAT, list(t.shape)))
        b.set_output(idx, t.name, nchw=False)
    for op in graph.ops:
        b.convert_op(op)
    graph_outputs = []
    for idx in graph.outputs:
        t = graph.tensors[idx]
        b.nodes.append(
            helper.make_node("Identity", [b.as_tflite_layout(idx)], [t.name], name=f"{t.name}_out")
        )
        graph_outputs.append(helper.make_tensor_value_info(t.name, TensorProto.FLOAT, list(t.shape)))
    onnx_graph = helper.make_graph(b.nodes, graph_name, graph_inputs, graph_outputs, b.initializers)
    model = helper.make_model(
        onnx_graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="vcamswap-convert-mediapipe",
        doc_string=f"Converted from mediapipe {MEDIAPIPE_VERSION} {graph_name}.tflite (Apache-2.0).",
    )
    model.ir_version = IR_VERSION
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    onnx.checker.check_model(model, full_check=True)
    return model


# ---------------------------------------------------------------------------------------------------------
# wheel handling


def fetch_wheel(dest: Path) -> Path:
    """Download the mediapipe wheel (no dependencies) into `dest` with pip."""
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--platform", WHEEL_PLATFORM, "--python-version", WHEEL_PYTHON,
        "-d", str(dest), f"mediapipe=={MEDIAPIPE_VERSION}",
    ]  # fmt: skip
    subprocess.run(cmd, check=True)
    found = find_wheel(dest)
    if found is None:
        raise FileNotFoundError(f"pip download left no mediapipe {MEDIAPIPE_VERSION} wheel in {dest}")
    return found


def find_wheel(folder: Path) -> Path | None:
    wheels = sorted(folder.glob(f"mediapipe-{MEDIAPIPE_VERSION}-*.whl"))
    return wheels[0] if wheels else None


def read_models_from_wheel(wheel: Path) -> dict[str, bytes]:
    """ONNX file name -> the tflite bytes it is converted from."""
    if not wheel.is_file():
        raise FileNotFoundError(f"mediapipe wheel not found: {wheel}")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        missing = [m.member for m in MODELS if m.member not in names]
        if missing:
            raise FileNotFoundError(f"{wheel.name} does not contain {', '.join(missing)}")
        return {m.onnx_name: z.read(m.member) for m in MODELS}


# ---------------------------------------------------------------------------------------------------------
# parity check


def media_dir() -> Path:
    import os

    env = os.environ.get("VCAMSWAP_MEDIA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "media"


def _letterbox(image: np.ndarray, size: int) -> np.ndarray:
    import cv2

    h, w = image.shape[:2]
    side = max(h, w)
    canvas = np.zeros((side, side, 3), np.uint8)
    canvas[(side - h) // 2 : (side - h) // 2 + h, (side - w) // 2 : (side - w) // 2 + w] = image
    return cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA)


def _face_crop(image: np.ndarray, size: int) -> np.ndarray:
    """The centre square scaled down; the portraits and talking-head clips used have the face there."""
    import cv2

    h, w = image.shape[:2]
    side = int(min(h, w) * 0.7)
    y0, x0 = (h - side) // 2, (w - side) // 2
    return cv2.resize(image[y0 : y0 + side, x0 : x0 + side], (size, size), interpolation=cv2.INTER_AREA)


def sample_images() -> Iterator[tuple[str, np.ndarray]]:
    """Real faces (RGB): the single-face portraits and a few frames of a talking-head video."""
    import cv2

    root = media_dir()
    paths = sorted((root / "faces" / "single").glob("*.*"))
    if not paths:
        raise FileNotFoundError(f"no test faces under {root / 'faces' / 'single'} (set VCAMSWAP_MEDIA)")
    for p in paths:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is not None:
            yield p.name, cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    cap = cv2.VideoCapture(str(root / "videos" / "real" / "lp_d3_woman_headturn_512.mp4"))
    for i in range(0, 300, 60):
        cap.set(cv2.CAP_PROP_POS_FRAMES, i)
        ok, frame = cap.read()
        if ok:
            yield f"lp_d3#{i}", cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    cap.release()


def model_input(spec: ModelSpec, rgb: np.ndarray, size: int) -> np.ndarray:
    img = _letterbox(rgb, size) if spec.input_range[0] < 0 else _face_crop(rgb, size)
    lo, hi = spec.input_range
    return (img.astype(np.float32) * ((hi - lo) / 255.0) + lo)[None]


class Parity(NamedTuple):
    model: str
    output: str
    max_abs_diff: float
    max_abs_value: float
    samples: int


def parity(wheel: Path, onnx_dir: Path, threads: int = 1) -> list[Parity]:
    """Max abs difference between tflite (ai-edge-litert) and ONNX (onnxruntime) on real faces."""
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter

    blobs = read_models_from_wheel(wheel)
    images = list(sample_images())
    results: list[Parity] = []
    for spec in MODELS:
        interp = Interpreter(model_content=blobs[spec.onnx_name], num_threads=threads)
        interp.allocate_tensors()
        in_det = interp.get_input_details()[0]
        out_dets = interp.get_output_details()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        sess = ort.InferenceSession(str(onnx_dir / spec.onnx_name), opts, providers=["CPUExecutionProvider"])
        size = int(in_det["shape"][1])
        diffs = {d["name"]: 0.0 for d in out_dets}
        peaks = {d["name"]: 0.0 for d in out_dets}
        for _, rgb in images:
            x = model_input(spec, rgb, size)
            interp.set_tensor(in_det["index"], x)
            interp.invoke()
            got = dict(
                zip([o.name for o in sess.get_outputs()], sess.run(None, {in_det["name"]: x}), strict=True)
            )
            for d in out_dets:
                ref = interp.get_tensor(d["index"])
                diffs[d["name"]] = max(diffs[d["name"]], float(np.abs(got[d["name"]] - ref).max()))
                peaks[d["name"]] = max(peaks[d["name"]], float(np.abs(ref).max()))
        results.extend(Parity(spec.onnx_name, n, diffs[n], peaks[n], len(images)) for n in diffs)
    return results


def parity_ok(p: Parity) -> bool:
    # fp32 both sides with different summation order: allow a few ulps of the output's magnitude.
    return p.max_abs_diff <= 1e-5 * max(1.0, p.max_abs_value)


# ---------------------------------------------------------------------------------------------------------
# CLI


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--wheel", type=Path, help=f"mediapipe {MEDIAPIPE_VERSION} wheel (default: pip download)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: models/lite)")
    ap.add_argument("--check", action="store_true", help="compare ONNX against tflite on real faces")
    args = ap.parse_args(argv)

    wheel: Path | None = args.wheel or find_wheel(DEFAULT_WHEEL_DIR)
    if wheel is None:
        wheel = fetch_wheel(DEFAULT_WHEEL_DIR)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, blob in read_models_from_wheel(wheel).items():
        model = convert(blob, Path(name).stem)
        target = args.out / name
        # Write atomically so a failed run never leaves a truncated model behind.
        with tempfile.NamedTemporaryFile(dir=args.out, suffix=".tmp", delete=False) as tmp:
            tmp.write(model.SerializeToString())
        Path(tmp.name).replace(target)
        digest = hashlib.sha256(target.read_bytes()).hexdigest()
        print(f"{target}  {target.stat().st_size} bytes  sha256 {digest}  (tflite sha256 "
              f"{hashlib.sha256(blob).hexdigest()})")  # fmt: skip

    if args.check:
        failed = False
        for p in parity(wheel, args.out):
            ok = parity_ok(p)
            failed |= not ok
            verdict = "ok" if ok else "MISMATCH"
            print(
                f"{p.model:34s} {p.output:16s} max|diff| {p.max_abs_diff:.3g}  "
                f"(max|ref| {p.max_abs_value:.3g}, {p.samples} faces)  {verdict}"
            )
        if failed:
            print("parity check failed", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
