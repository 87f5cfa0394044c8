"""The one check of an image model's input (vcamswap.runtime.imagemodel), on real onnxruntime sessions of small
graphs: the enhancer (NCHW) and the occluder (NHWC) read their names and side from it and refuse a foreign
layout in one line."""

from __future__ import annotations

import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from vcamswap.compose.enhance import LiveEnhancer
from vcamswap.compose.occlusion import ModelOccluder
from vcamswap.modelstore.onnxgraph import build_model
from vcamswap.runtime.imagemodel import ImageModel, image_model


def identity_session(shape: list[int | str]) -> ort.InferenceSession:
    """A model that hands its input back: input `img` of `shape`, output `out`."""
    x = helper.make_tensor_value_info("img", TensorProto.FLOAT, shape)
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, shape)
    model = build_model([helper.make_node("Identity", ["img"], ["out"])], [x], [y], [], "identity", "test")
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def test_the_side_is_read_from_the_model_or_defaults_when_free() -> None:
    assert image_model(identity_session([1, 3, 384, 384]), "enhancer", "NCHW", 512) == ImageModel("img", "out", 384)
    assert image_model(identity_session([1, 3, "S", "S"]), "enhancer", "NCHW", 512).size == 512
    assert image_model(identity_session(["N", 192, 192, 3]), "occluder", "NHWC", 256).size == 192
    assert image_model(identity_session(["N", "S", "S", 3]), "occluder", "NHWC", 256).size == 256


def test_the_enhancer_and_the_occluder_take_their_input_from_the_check() -> None:
    enhancer = LiveEnhancer(1, identity_session([1, 3, 384, 384]))
    occluder = ModelOccluder(identity_session(["N", "S", "S", 3]))
    assert (enhancer.input, enhancer.output, enhancer.size) == ("img", "out", 384)
    assert (occluder.input, occluder.output, occluder.size) == ("img", "out", 256)


def test_a_foreign_layout_is_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match=r"^enhancer model input img has shape \[1, 256, 256, 3\], "
                                         r"expected 1 x 3 x S x S$"):
        LiveEnhancer(1, identity_session([1, 256, 256, 3]))
    with pytest.raises(ValueError, match=r"^occluder model input img has shape \[1, 3, 256, 256\], "
                                         r"expected N x S x S x 3$"):
        ModelOccluder(identity_session([1, 3, 256, 256]))
    with pytest.raises(ValueError, match="expected N x S x S x 3"):
        ModelOccluder(identity_session([256, 256, 3]))
