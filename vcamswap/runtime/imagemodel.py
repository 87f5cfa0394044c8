"""What an image-to-image model takes: its input and output names and the side of the square image it expects,
read from the session and checked before the first frame, so that a foreign model is refused in one line."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, NamedTuple, Protocol

Layout = Literal["NCHW", "NHWC"]

# Where the colour channels and the image's side stand in the input shape, and how an error says the shape.
_AXES: dict[Layout, tuple[int, int, str]] = {"NCHW": (1, 2, "1 x 3 x S x S"), "NHWC": (3, 1, "N x S x S x 3")}


class ModelIO(Protocol):
    """The part of onnxruntime's InferenceSession read here."""

    def get_inputs(self) -> Sequence[Any]: ...

    def get_outputs(self) -> Sequence[Any]: ...


class ImageModel(NamedTuple):
    input: str
    output: str
    size: int  # the square side the model takes


def image_model(session: ModelIO, what: str, layout: Layout, default_size: int) -> ImageModel:
    """The first input and output of a model taking one square BGR/RGB image in `layout`; ValueError naming
    `what` when the input is not 4-D with 3 channels. A free side (a dynamic axis) runs at `default_size`."""
    inp, out = session.get_inputs()[0], session.get_outputs()[0]
    shape = list(inp.shape)
    channels, side, expected = _AXES[layout]
    if len(shape) != 4 or shape[channels] != 3:
        raise ValueError(f"{what} model input {inp.name} has shape {shape}, expected {expected}")
    size = shape[side] if isinstance(shape[side], int) else default_size
    return ImageModel(inp.name, out.name, size)
