"""What `vcamswap serve` answers: the source latent step and the swap, on the neural engine's own code.

Each inference function takes one dynamic batch (several clients' requests joined by Triton) and runs the
same preprocessing, model and postprocessing as the local `inswapper` engine, so a crop swapped here
equals the same crop swapped on the laptop. Nothing is written to disk; source latents are kept in memory
per face digest (bounded).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from vcamswap.choices import CodecError
from vcamswap.engines.inswapper import InswapperEngine
from vcamswap.engines.neural import latent_of
from vcamswap.engines.remote import codec

log = logging.getLogger("vcamswap.serve")

LATENT_CACHE = 256  # source faces kept per server: a few per user of a shared pool
MAX_BATCH = 16
QUEUE_DELAY_US = 2000  # how long the batcher may hold a request to join others: far below a frame


class LatentCache:
    """digest -> latent, least recently used out first; thread-safe."""

    def __init__(self, size: int = LATENT_CACHE) -> None:
        self.size = size
        self._items: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: bytes, make: Callable[[], np.ndarray]) -> np.ndarray:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = make()
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value


class Refused(ValueError):
    """A request this server will not answer. Its one line is all the client is told (serve.gate finds it
    after "Refused: " in the error Triton passes on); anything else that goes wrong says only its type."""


def refusing(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` with every error turned into Refused, so no traceback or path of this machine reaches a client."""

    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Refused:
            raise
        except ValueError as e:  # CodecError included: bad input, said as it is
            raise Refused(" ".join(str(e).split())[:200]) from None
        except Exception as e:
            raise Refused(f"the server failed on this request ({type(e).__name__})") from None

    return wrapped


class Handlers:
    """The three models' batch functions over one InswapperEngine."""

    def __init__(self, engine: InswapperEngine) -> None:
        self.engine = engine
        self.cache = LatentCache()

    @refusing
    def source(self, crop: np.ndarray) -> dict[str, np.ndarray]:
        """crop (N,112,112,3) uint8 -> latent (N,512), cached by the crop's digest (the client's key too)."""
        out = np.empty((len(crop), codec.LATENT_SIZE), np.float32)
        for i in range(len(crop)):
            aligned = codec.check_crop(crop[i], codec.ARC_SIZE)
            key = codec.digest(aligned).encode()
            out[i] = self.cache.get(key, functools.partial(self._latent_of, aligned))
        return {"latent": out}

    def _latent_of(self, aligned: np.ndarray) -> np.ndarray:
        return latent_of(self.engine.embed_aligned(aligned), self.engine.emap)

    @refusing
    def swap(self, crop: np.ndarray, latent: np.ndarray) -> dict[str, np.ndarray]:
        """crop (N,128,128,3) uint8 BGR, latent (N,512) -> swapped (N,128,128,3)."""
        out = np.empty((len(crop), codec.SWAP_SIZE, codec.SWAP_SIZE, 3), np.uint8)
        for i in range(len(crop)):
            out[i] = self.engine.swap_crop(codec.check_crop(crop[i]), _latent(latent[i]))
        return {"swapped": out}

    @refusing
    def swap_jpeg(self, requests: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        """Per request: crop (L,) JPEG bytes as uint8, latent (1,512), quality (1,) -> swapped (M,) JPEG bytes."""
        answers = []
        for r in requests:
            q = int(r["quality"].reshape(-1)[0])
            if not 1 <= q <= 100:
                raise CodecError(f"JPEG quality {q} is not 1 to 100")
            image = codec.decode_jpeg(r["crop"].tobytes())
            data = codec.encode_jpeg(self.engine.swap_crop(image, _latent(r["latent"])), q)
            answers.append({"swapped": np.frombuffer(data, np.uint8)})
        return answers


def _latent(row: np.ndarray) -> np.ndarray:
    lat = np.ascontiguousarray(row.reshape(1, codec.LATENT_SIZE), np.float32)
    if not np.isfinite(lat).all():
        raise ValueError("the source latent holds NaN/inf values")
    return lat


def bind(triton: Any, engine: InswapperEngine, max_batch: int = MAX_BATCH,
         queue_delay_us: int = QUEUE_DELAY_US) -> list[str]:
    """Bind the models on a pytriton.Triton; the names bound."""
    from pytriton.decorators import batch
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor

    h = Handlers(engine)
    config = ModelConfig(max_batch_size=max_batch, batcher=DynamicBatcher(max_queue_delay_microseconds=queue_delay_us))
    size, arc = codec.SWAP_SIZE, codec.ARC_SIZE
    crop_t = Tensor(name="crop", dtype=np.uint8, shape=(size, size, 3))
    latent_t = Tensor(name="latent", dtype=np.float32, shape=(codec.LATENT_SIZE,))
    triton.bind(model_name=codec.SOURCE_MODEL, infer_func=batch(h.source),
                inputs=[Tensor(name="crop", dtype=np.uint8, shape=(arc, arc, 3))],
                outputs=[latent_t], config=config, strict=True)
    triton.bind(model_name=codec.SWAP_MODEL, infer_func=batch(h.swap), inputs=[crop_t, latent_t],
                outputs=[Tensor(name="swapped", dtype=np.uint8, shape=(size, size, 3))], config=config, strict=True)
    # JPEG sizes differ per request, so those requests are not batched (they decode in Python anyway).
    triton.bind(model_name=codec.SWAP_JPEG_MODEL, infer_func=h.swap_jpeg,
                inputs=[Tensor(name="crop", dtype=np.uint8, shape=(-1,)),
                        Tensor(name="latent", dtype=np.float32, shape=(1, codec.LATENT_SIZE)),
                        Tensor(name="quality", dtype=np.int32, shape=(1,))],
                outputs=[Tensor(name="swapped", dtype=np.uint8, shape=(-1,))], config=ModelConfig(batching=False),
                strict=True)
    return [codec.SOURCE_MODEL, codec.SWAP_MODEL, codec.SWAP_JPEG_MODEL]
