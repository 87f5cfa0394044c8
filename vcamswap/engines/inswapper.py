"""The neural engine: SCRFD detection, ArcFace source identity, and the swap model `preset.model` names
(inswapper_128, or GHOST's ghost_N_256: engines.ghost, engines.swapmodels), on onnxruntime.

insightface's own SCRFD and ArcFaceONNX classes do detection decoding and embedding (built on sessions made
here, from absolute paths, so no code path of theirs can download); the swap session is driven directly so
that on CUDA it can use I/O binding. Alignment follows insightface's `norm_crop` for a 128 px crop: the
112 px ArcFace template unscaled, shifted 8 px right, which is what inswapper_128 was trained on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from vcamswap.choices import check_model
from vcamswap.compose.blend import finish
from vcamswap.compose.occlusion import Occluder
from vcamswap.engines import EngineError, EngineUnavailable, SwapItem, boost, swapmodels
from vcamswap.engines.ghost_swaps import GhostSwaps
from vcamswap.engines.neural import (
    EMBED_SIZE,
    SWAP_SIZE,
    InswapperSource,
    arcface_crop,
    check_output,
    from_pred,
    latent_of,
    read_emap,
    swap_mask,
    to_blob,
)
from vcamswap.engines.precision import (
    FP16_PROVIDERS,
    PrecisionError,
    choose_swap_model,
    parse_precision,
    wanted_precision,
)
from vcamswap.engines.runners import BoundRunner, PlainRunner, ScrfdDetector
from vcamswap.modelstore.installed import missing_for_model
from vcamswap.modelstore.manifest import OFFLINE_HINT, install_hint, missing_models
from vcamswap.presets import Preset
from vcamswap.runtime import gpu, providers
from vcamswap.settings import default_models_dir
from vcamswap.types import FaceGeometry, SwapOutput, check_bgr

log = logging.getLogger("vcamswap.inswapper")
__all__ = ["BoundRunner", "InswapperEngine", "InswapperSource", "PlainRunner", "ScrfdDetector"]


# ----------------------------------------------------------------------------------------------- engine


class InswapperEngine(GhostSwaps):
    name = "inswapper"
    in_flight = 1
    boosts = True  # follows the preset's pixel boost (engines.boost)

    def __init__(
        self,
        models_dir: Path | str | None = None,
        provider: str | None = None,
        threads: int | None = None,
        io_binding: bool | None = None,
        precision: str | None = None,
        cuda_graph: bool | None = None,
        model: str | None = None,
    ) -> None:
        self.models_dir = Path(models_dir).expanduser() if models_dir else default_models_dir()
        try:
            self.model = check_model(model or "inswapper_128")  # the one loaded at start; preset.model picks
        except ValueError as e:
            raise EngineUnavailable(f"inswapper: {e}") from None
        missing = missing_for_model(self.model, self.models_dir)
        if missing:
            raise EngineUnavailable(
                f"inswapper: model{'s' if len(missing) > 1 else ''} {', '.join(missing)} not installed in "
                f"{self.models_dir}; {install_hint(missing)}"
            )
        try:
            from insightface.model_zoo import SCRFD, ArcFaceONNX
        except ImportError as e:
            raise EngineUnavailable(
                f"inswapper: insightface is not importable ({e}); pip install 'vcamswap[neural]'"
            ) from None
        try:
            self.choice = providers.choose(provider)
            asked = parse_precision(precision)
        except (providers.ProviderError, PrecisionError) as e:
            raise EngineUnavailable(f"inswapper: {e}") from None
        if self.choice.note:
            log.warning("%s", self.choice.note)
        fast = gpu.fast_fp16(gpu.compute_capability()) if self.choice.name in FP16_PROVIDERS else False
        # TensorRT makes its own fp16 kernels from either file: it follows what was asked, not which file runs.
        self.fp16 = wanted_precision(asked, self.choice.name, fast) == "fp16"
        self.threads = threads or providers.default_threads()
        det_session = self._session("det_10g")
        self._scrfd = self._load("det_10g", lambda p: SCRFD(model_file=str(p), session=det_session))
        arc_session = self._session("w600k_r50")
        self._arcface = self._load("w600k_r50", lambda p: ArcFaceONNX(model_file=str(p), session=arc_session))
        self._check_shared()
        # inswapper_128 loads whenever it is installed (the default model, and the source latent needs emap).
        self.has_inswapper = not missing_models(["inswapper_128"], self.models_dir)
        if self.has_inswapper:
            self.swap_model = choose_swap_model(self.models_dir, asked, self.choice.name, fast)
            if self.swap_model.note:
                (log.warning if asked == "fp16" else log.info)("inswapper: %s", self.swap_model.note)
            self.emap = self._load("inswapper_128", read_emap)  # the fp32 original's: the fp16 copy keeps it
            self.swap_session, self.runner, self.cuda_graph = self._swap_runner(io_binding, cuda_graph)
            self._check_interfaces()
            self.batch_session = self._batch_session()
        self._ghosts = {}
        self._converter = None
        self._ghost_arcface = None
        if swapmodels.is_ghost(self.model):
            try:
                self.ghost_generator(self.model)
                self.load_ghost_identity()
            except EngineError as e:
                raise EngineUnavailable(str(e)) from None
        self._detectors: dict[int, ScrfdDetector] = {}
        self.batched_calls = 0  # swap_many calls that ran every face in one model call
        self.tiles_swapped = 0  # 128 px model inputs swapped: 1, 4 or 16 per face with pixel boost
        log.info("%s", self.start_line())

    def _swap_runner(
        self, io_binding: bool | None, cuda_graph: bool | None
    ) -> tuple[ort.InferenceSession, PlainRunner | BoundRunner, bool]:
        """The swap session and its runner: on a GPU bound buffers, replayed as a CUDA graph where onnxruntime
        allows it (tried once at start; any refusal falls back to plain bound runs with one line saying why)."""
        on_gpu = self.choice.name in providers.DEVICE_OF and io_binding is not False
        if on_gpu if cuda_graph is None else cuda_graph:
            try:
                session = providers.create_session(self.swap_model.path, self.choice, self.threads, self.models_dir,
                                                   self.fp16, cuda_graph=True)
                device = providers.device_of(session)
                if device != "cpu":
                    runner = BoundRunner(session, device)
                    runner.warm_up()  # the first run records the graph: a refusal shows here, not mid-call
                    return session, runner, True
            except Exception as e:  # onnxruntime refuses graphs with nodes off the GPU or with free shapes
                reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
                log.warning("inswapper: CUDA graphs not used for %s (%s); running without them",
                            self.swap_model.path.name, reason)
        session = self._session("inswapper_128", self.swap_model.path)
        device = providers.device_of(session)
        use_binding = device != "cpu" if io_binding is None else io_binding
        return session, BoundRunner(session, device) if use_binding else PlainRunner(session), False

    # -- loading

    def path(self, name: str) -> Path:
        return (self.models_dir / f"{name}.onnx").resolve()

    def _session(self, name: str, path: Path | None = None) -> ort.InferenceSession:
        return self._load(
            name,
            lambda p: providers.create_session(p, self.choice, self.threads, self.models_dir, self.fp16),
            path,
        )

    def _load(self, name: str, loader: Any, path: Path | None = None) -> Any:
        path = path or self.path(name)
        try:
            return loader(path)
        except Exception as e:  # onnxruntime/onnx/insightface raise many types for a bad file
            reason = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
            raise EngineUnavailable(
                f"inswapper: {path} cannot be loaded ({reason}); it may be corrupt: "
                f"{_reinstall_hint(name, path)}"
            ) from None

    def _batch_session(self) -> ort.InferenceSession | None:
        """The session that takes several faces per call: the swap model itself when its batch is dynamic,
        else the copy `vcamswap models download` made beside it (modelstore.batch); None: face by face."""
        # onnx loads only for the batched model
        from vcamswap.modelstore.batch import current_batched

        dim = self.swap_session.get_inputs()[0].shape[0]
        if not isinstance(dim, int):
            return self.swap_session
        path = current_batched(self.models_dir)
        if path is None:
            return None
        try:
            return providers.create_session(path, self.choice, self.threads, self.models_dir / "trt-cache")
        except Exception as e:  # a damaged copy only costs the batching
            log.warning("inswapper: %s cannot be loaded (%s); faces are swapped one call each", path,
                        str(e).splitlines()[0][:160] if str(e) else type(e).__name__)
            return None

    def _check_interfaces(self) -> None:
        ins = {i.name: i.shape for i in self.swap_session.get_inputs()}
        types = {i.name: i.type for i in self.swap_session.get_inputs()}
        outs = self.swap_session.get_outputs()
        ok = (
            list(ins) == ["target", "source"]
            and list(ins["target"])[1:] == [3, SWAP_SIZE, SWAP_SIZE]
            and list(ins["source"])[-1] == EMBED_SIZE
            and set(types.values()) == {"tensor(float)"}  # an fp16 copy keeps float32 in and out
            and len(outs) == 1
            and self.emap.shape == (EMBED_SIZE, EMBED_SIZE)
        )
        if not ok:
            raise EngineUnavailable(
                f"inswapper: {self.swap_model.path} is not an inswapper_128 model (inputs {ins}, "
                f"emap {self.emap.shape}); {install_hint(['inswapper_128'])}"
            )

    def _check_shared(self) -> None:
        if getattr(self._arcface, "output_shape", [None, EMBED_SIZE])[-1] != EMBED_SIZE:
            raise EngineUnavailable(
                f"inswapper: {self.path('w600k_r50')} does not give 512-d embeddings; {install_hint(['w600k_r50'])}"
            )
        if getattr(self._scrfd, "use_kps", False) is not True:
            raise EngineUnavailable(
                f"inswapper: {self.path('det_10g')} is not a SCRFD model with keypoints; {install_hint(['det_10g'])}"
            )

    def placement(self) -> dict[str, str]:
        """Which provider each model runs on; for the swap model also its precision and file."""
        out = {"det_10g": providers.runs_on(self._scrfd.session), "w600k_r50": providers.runs_on(self._arcface.session)}
        if self.has_inswapper:
            graph = ", CUDA graph" if self.cuda_graph else ""
            swap = f"{self.swap_model.precision}, {self.swap_model.path.name}{graph}"
            out["inswapper_128"] = f"{providers.runs_on(self.swap_session)} ({swap})"
        return out | self.ghost_placement()

    def start_line(self) -> str:
        """Where the engine runs and the swap model it starts with, then where each other model runs."""
        where = self.placement()
        model = where.pop(self.model, "not loaded")
        others = ", ".join(f"{name} {place}" for name, place in where.items())
        line = f"inswapper engine on {self.choice.name}: model {self.model} on {model} ({others})"
        return f"{line}; GHOST identity: {self.identity_path()}" if swapmodels.is_ghost(self.model) else line

    # -- Engine protocol

    def crop_size(self, preset: Preset) -> int:
        """inswapper: the preset's boost, 128 (the model's input) or 256 / 512 swapped in tiles; GHOST: 224
        (not preset.crop_size, which is the lite engine's)."""
        return swapmodels.crop_size(preset)

    def template(self, size: int) -> np.ndarray:
        return swapmodels.template(size)

    def finish(
        self, out: SwapOutput, crop: np.ndarray, preset: Preset, points: np.ndarray | None,
        occlusion: Occluder | None,
    ) -> SwapOutput:
        return finish(out, crop, preset, points, occlusion)  # it paints the whole face

    def make_detector(self, preset: Preset) -> ScrfdDetector:
        size = preset.det_size
        if size not in self._detectors:
            self._detectors[size] = ScrfdDetector(self._scrfd, size)
        return self._detectors[size]

    def embed(self, image: np.ndarray, kps: np.ndarray) -> np.ndarray:
        """The L2-normalised ArcFace embedding of the face at `kps` (insightface's norm_crop + get_feat)."""
        return self.embed_aligned(arcface_crop(image, kps, int(self._arcface.input_size[0])))

    def embed_aligned(self, aligned: np.ndarray) -> np.ndarray:
        """The embedding of a face already aligned to the ArcFace template (what a remote client sends)."""
        feat = self._raw_embedding(aligned)
        return feat / float(np.linalg.norm(feat))

    def _raw_embedding(self, aligned: np.ndarray) -> np.ndarray:
        """ArcFace's (512,) output as it comes, not normalised (what GHOST's identity converter takes)."""
        feat = np.asarray(self._arcface.get_feat(aligned), np.float32).reshape(-1)
        norm = float(np.linalg.norm(feat))
        if feat.size != EMBED_SIZE or not np.isfinite(feat).all() or norm < 1e-6:
            raise ValueError("the face recogniser gave no usable embedding for this source face")
        return feat

    def prepare_source(self, image: np.ndarray, face: FaceGeometry) -> InswapperSource:
        check_bgr(image, "source face", 2)
        raw = self._raw_embedding(arcface_crop(image, face.kps, int(self._arcface.input_size[0])))
        embedding = raw / float(np.linalg.norm(raw))
        latent = latent_of(embedding, self.emap) if self.has_inswapper else np.zeros((1, EMBED_SIZE), np.float32)
        return InswapperSource(embedding, latent, self.ghost_source(raw, image, face.kps))

    def swap_many(self, items: Sequence[SwapItem[InswapperSource]], preset: Preset) -> list[SwapOutput]:
        """All faces of a frame, every boost tile of each, in one model call when a batching session is
        there, else one call each (GHOST: one call each)."""
        if swapmodels.is_ghost(preset.model):
            return [self.swap(i.crop, i.face, i.source, preset) for i in items]
        if len(items) < 2 or self.batch_session is None:
            return [self.swap(i.crop, i.face, i.source, preset) for i in items]
        blobs = [self._blob(i.crop, i.source) for i in items]
        pairs = list(zip(items, blobs, strict=True))
        latents = np.concatenate([np.repeat(i.source.latent, len(b), axis=0) for i, b in pairs])
        preds = self._run_batch(np.concatenate(blobs), latents.astype(np.float32))
        if preds is None:
            return [self.swap(i.crop, i.face, i.source, preset) for i in items]
        ends = np.cumsum([len(b) for b in blobs])
        return [self._output(preds[end - len(b):end], i.face, preset) for (i, b), end in zip(pairs, ends, strict=True)]

    def swap(self, crop: np.ndarray, face: FaceGeometry, source: InswapperSource, preset: Preset) -> SwapOutput:
        if swapmodels.is_ghost(preset.model):
            return self.ghost_swap(crop, face, source, preset)
        if not self.has_inswapper:
            raise EngineError(f"inswapper_128 is not installed in {self.models_dir}; "
                              f"{install_hint(['inswapper_128'])}")
        blob = self._blob(crop, source)
        if len(blob) > 1:
            return self._output(self._run_tiles(blob, source.latent), face, preset)
        pred = self.runner.run(blob, source.latent)
        self.tiles_swapped += 1
        return self._output(pred, face, preset)

    def _run_tiles(self, blob: np.ndarray, latent: np.ndarray) -> np.ndarray:
        """One face's boost tiles: one call of the batching session, else one runner call per tile."""
        if self.batch_session is not None:
            preds = self._run_batch(blob, np.repeat(latent, len(blob), axis=0).astype(np.float32))
            if preds is not None:
                return preds
        self.tiles_swapped += len(blob)
        return np.concatenate([self.runner.run(tile[None], latent) for tile in blob])

    def _run_batch(self, blobs: np.ndarray, latents: np.ndarray) -> np.ndarray | None:
        """One call of the batching session; None (and no more batching) when it fails."""
        assert self.batch_session is not None
        try:
            preds: np.ndarray = self.batch_session.run(None, {"target": blobs, "source": latents})[0]
        except Exception as e:  # onnxruntime's error types vary by provider; one line, then face by face
            log.warning("inswapper: the batched swap failed (%s); faces are swapped one call each",
                        str(e).splitlines()[0][:160] if str(e) else type(e).__name__)
            self.batch_session = None
            return None
        self.batched_calls += 1
        self.tiles_swapped += len(blobs)
        return preds

    def _blob(self, crop: np.ndarray, source: InswapperSource) -> np.ndarray:
        """The model's (k*k, 3, 128, 128) RGB [0, 1] input for one aligned crop of 128 * k pixels (k = 1: the
        crop itself, else its boost tiles); refuses what is not one."""
        check_bgr(crop, "aligned crop", 2)
        if crop.shape[0] != crop.shape[1]:
            raise ValueError(f"aligned crop must be square, got {crop.shape[1]}x{crop.shape[0]}")
        k = boost.factor(crop.shape[0])
        if not isinstance(source, InswapperSource):
            raise TypeError(f"source payload is a {type(source).__name__}, not one made by this engine")
        if k == 1:
            return to_blob(crop)
        return np.concatenate([to_blob(np.ascontiguousarray(t)) for t in boost.implode(crop, k)])

    def swap_crop(self, crop: np.ndarray, latent: np.ndarray) -> np.ndarray:
        """The swapped 128x128 BGR crop for a checked aligned crop and a source latent (local or served)."""
        pred = self.runner.run(to_blob(crop), latent)
        check_output(pred)
        return from_pred(pred)

    def _output(self, pred: np.ndarray, face: FaceGeometry, preset: Preset) -> SwapOutput:
        """One face's (k*k, 3, 128, 128) model output -> the swapped BGR crop of 128 * k and its blend mask."""
        check_output(pred)
        if len(pred) == 1:
            return SwapOutput(from_pred(pred), swap_mask(face, preset))
        k = int(round(len(pred) ** 0.5))
        crop = boost.explode(np.stack([from_pred(pred[t:t + 1]) for t in range(len(pred))]), k)
        return SwapOutput(crop, swap_mask(face, preset, SWAP_SIZE * k))


def _reinstall_hint(name: str, path: Path) -> str:
    if path.name.endswith(".fp16.onnx"):
        return "make it again with 'vcamswap models convert --fp16 --overwrite', or run with --precision fp32"
    return (f"check it with 'vcamswap models verify', reinstall it with 'vcamswap models download {name} --force' "
            f"({OFFLINE_HINT})")
