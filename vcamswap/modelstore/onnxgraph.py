"""Small ONNX graphs made here (the stand-in models, the random-weight architecture models, the exported
repository's pre- and post-processing steps): one opset and IR version for all, checked when built."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

OPSET = 13
IR_VERSION = 8  # readable by every onnxruntime the project supports


def build_model(
    nodes: list[onnx.NodeProto],
    inputs: list[onnx.ValueInfoProto],
    outputs: list[onnx.ValueInfoProto],
    inits: list[onnx.TensorProto],
    name: str,
    producer: str,
) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name=producer)
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def const(name: str, value: np.ndarray | np.floating) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)
