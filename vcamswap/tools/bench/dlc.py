"""Deep-Live-Cam's live frame path, timed on our models and clip, for a side-by-side ratio.

Deep-Live-Cam is AGPL: it is never copied here. The user points `--dlc DIR` at their own checkout and its
modules are imported from there. Its swap model is loaded by its own `get_face_swapper` from a folder that
holds our model file under the name it looks for; its face analyser is given our det_10g and ArcFace files.
With random-weight models the detector finds nothing, so, as in our own bench, the detector runs for its cost
and the faces come from BlazeFace. Its GUI module (Qt) is not needed to process frames and is left unloaded
when Qt is absent.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import time
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vcamswap.faces.tracking import FaceDetector

log = logging.getLogger("vcamswap.bench")

DLC_DET_SIZE = 640  # Deep-Live-Cam's face_analyser.DET_SIZE
# The name its loader always falls back to; its preferred inswapper_128_fp16.onnx is left absent, so it runs
# exactly the file given (fp32 or our fp16 copy) whether or not torch sees a GPU.
DLC_MODEL_NAME = "inswapper_128.onnx"


@dataclass
class DlcRun:
    frames: int
    fps: float
    ms_median: float
    ms_p95: float
    model_file: str  # ours, as linked for its loader
    providers: list[str]


class CostOnlyScrfd:
    """insightface's SCRFD interface as Deep-Live-Cam calls it: runs the real-cost detector, returns
    BlazeFace's faces (boxes with scores, 5 keypoints)."""

    def __init__(self, scrfd: Any, faces: FaceDetector) -> None:
        self.scrfd, self.faces = scrfd, faces
        self.model_file = getattr(scrfd, "model_file", None)

    def detect(self, img: np.ndarray, max_num: int = 0, metric: str = "default",
               input_size: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        self.scrfd.detect(img, input_size=input_size or (DLC_DET_SIZE, DLC_DET_SIZE))
        dets = self.faces.detect(img)
        if not dets:
            return np.zeros((0, 5), np.float32), None
        boxes = np.array([[*d.bbox, d.score] for d in dets], np.float32)
        return boxes, np.stack([d.kps for d in dets]).astype(np.float32)


class Analyser:
    """What Deep-Live-Cam reads of insightface's FaceAnalysis: `det_model` and `models`."""

    def __init__(self, det_model: Any, rec_model: Any) -> None:
        self.det_model = det_model
        self.models = {"detection": det_model, "recognition": rec_model}


def import_dlc(dlc_dir: Path) -> tuple[Any, Any, Any]:
    """(modules.globals, modules.face_analyser, modules.processors.frame.face_swapper) from the checkout."""
    if not (dlc_dir / "modules" / "processors" / "frame" / "face_swapper.py").is_file():
        raise FileNotFoundError(f"{dlc_dir} is not a Deep-Live-Cam checkout (no modules/processors/frame/"
                                f"face_swapper.py)")
    sys.path.insert(0, str(dlc_dir))
    try:
        importlib.import_module("PySide6")
    except ImportError:  # its GUI is imported by modules.core, which the frame path needs only for logging
        sys.modules.setdefault("modules.ui", types.ModuleType("modules.ui"))
    globals_ = importlib.import_module("modules.globals")
    analyser = importlib.import_module("modules.face_analyser")
    swapper = importlib.import_module("modules.processors.frame.face_swapper")
    return globals_, analyser, swapper


def dlc_models_folder(work: Path, swap_model: Path) -> Path:
    """A folder holding our swap model under the name Deep-Live-Cam's loader looks for (a link, no copy)."""
    folder = work / f"dlc-{swap_model.stem}"
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / DLC_MODEL_NAME
    if link.is_symlink() or link.exists():
        link.unlink()
    os.symlink(swap_model.resolve(), link)
    return folder


def run_dlc(dlc_dir: Path, models_dir: Path, swap_model: Path, providers: list[str],
            frames: list[np.ndarray], source: np.ndarray, blaze: FaceDetector, work: Path,
            warmup: int = 10) -> DlcRun:
    """Time Deep-Live-Cam's `process_frame` (detection, recognition, swap, paste-back) over `frames`."""
    import onnxruntime as ort
    from insightface.model_zoo import SCRFD, ArcFaceONNX

    g, fa, fs = import_dlc(dlc_dir)
    g.execution_providers = list(providers)
    g.headless = True  # its status lines go to stdout only, not to the GUI
    g.many_faces = False
    session: Callable[[Path], Any] = lambda p: ort.InferenceSession(str(p), providers=list(providers))  # noqa: E731
    det = SCRFD(model_file=str(models_dir / "det_10g.onnx"), session=session(models_dir / "det_10g.onnx"))
    rec = ArcFaceONNX(model_file=str(models_dir / "w600k_r50.onnx"), session=session(models_dir / "w600k_r50.onnx"))
    det.prepare(0, input_size=(DLC_DET_SIZE, DLC_DET_SIZE))
    fa.FACE_ANALYSER = Analyser(CostOnlyScrfd(det, blaze), rec)
    fs.models_dir = str(dlc_models_folder(work, swap_model))
    fs.FACE_SWAPPER = None  # loaded again by its own loader, from the folder above
    if fs.get_face_swapper() is None:
        raise RuntimeError("Deep-Live-Cam's get_face_swapper loaded no model")
    source_face = fa.get_one_face(source)
    if source_face is None:
        raise RuntimeError("no face found in the source image for Deep-Live-Cam")
    times: list[float] = []
    for i, frame in enumerate(frames):
        t0 = time.perf_counter()
        fs.process_frame(source_face, frame.copy())
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    if not times:
        raise ValueError(f"need more than {warmup} frames to time Deep-Live-Cam")
    ms = 1000.0 * np.asarray(times)
    return DlcRun(len(times), round(len(times) / float(np.sum(times)), 2), round(float(np.median(ms)), 2),
                  round(float(np.percentile(ms, 95)), 2), swap_model.name,
                  list(providers))
