"""How the neural engine drives its sessions: inswapper's runners (plain, or I/O-bound device buffers) and
the SCRFD detector at one input size."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnxruntime as ort

from vcamswap.engines.neural import DET_THRESHOLD, EMBED_SIZE, SWAP_SIZE
from vcamswap.types import Detection, check_bgr


class PlainRunner:
    """session.run: inputs and outputs through host memory (CPU, CoreML, DirectML, OpenVINO)."""

    def __init__(self, session: ort.InferenceSession) -> None:
        self.session = session
        self.output = session.get_outputs()[0].name

    def run(self, blob: np.ndarray, latent: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.session.run([self.output], {"target": blob, "source": latent})[0]
        return out


class BoundRunner:
    """I/O binding: inputs and output live in fixed device buffers bound once.

    Per frame only the 128x128 crop goes up and the swapped crop comes down; the latent is copied up only
    when the source face changes. Fixed addresses also keep the binding valid for CUDA graphs.
    """

    def __init__(self, session: ort.InferenceSession, device: str, device_id: int = 0) -> None:
        self.session = session
        shape = [1, 3, SWAP_SIZE, SWAP_SIZE]
        self.target = ort.OrtValue.ortvalue_from_shape_and_type(shape, np.float32, device, device_id)
        self.latent = ort.OrtValue.ortvalue_from_shape_and_type([1, EMBED_SIZE], np.float32, device, device_id)
        self.output = ort.OrtValue.ortvalue_from_shape_and_type(shape, np.float32, device, device_id)
        self.binding = session.io_binding()
        self.binding.bind_ortvalue_input("target", self.target)
        self.binding.bind_ortvalue_input("source", self.latent)
        self.binding.bind_ortvalue_output(session.get_outputs()[0].name, self.output)
        self._latent_host: np.ndarray | None = None
        self.latent_uploads = 0

    def run(self, blob: np.ndarray, latent: np.ndarray) -> np.ndarray:
        self.target.update_inplace(np.ascontiguousarray(blob, np.float32))
        if latent is not self._latent_host:  # the payload is cached per source face: identity is enough
            self.latent.update_inplace(np.ascontiguousarray(latent, np.float32).reshape(1, EMBED_SIZE))
            self._latent_host = latent
            self.latent_uploads += 1
        self.session.run_with_iobinding(self.binding)
        out: np.ndarray = self.binding.copy_outputs_to_cpu()[0]
        return out

    def warm_up(self) -> None:
        """One run on zeros (the first run is where onnxruntime records a CUDA graph)."""
        self.run(np.zeros((1, 3, SWAP_SIZE, SWAP_SIZE), np.float32), np.zeros((1, EMBED_SIZE), np.float32))


# ----------------------------------------------------------------------------------------------- detector


class ScrfdDetector:
    """SCRFD at one input size; `detect` returns types.Detection, best score first."""

    def __init__(self, model: Any, det_size: int, threshold: float = DET_THRESHOLD) -> None:
        if det_size < 32 or det_size % 32:
            raise ValueError(f"detector size must be a multiple of 32, got {det_size}")
        self.model, self.det_size, self.threshold = model, det_size, threshold

    def detect(self, image_bgr: np.ndarray) -> list[Detection]:
        check_bgr(image_bgr, min_side=2)
        # input_size given: insightface 2.1 otherwise runs every default size (128 and 640) per frame.
        boxes, kpss = self.model.detect(image_bgr, input_size=(self.det_size, self.det_size),
                                        det_thresh=self.threshold)
        if kpss is None:
            return []
        dets = [
            Detection(b[:4].astype(np.float32), k.astype(np.float32), float(b[4]))
            for b, k in zip(boxes, kpss, strict=True)
        ]
        return sorted(dets, key=lambda d: -d.score)
