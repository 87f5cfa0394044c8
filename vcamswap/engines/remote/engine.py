"""The `remote` engine: inswapper_128 on a Triton server, the rest of the frame on this machine.

The source face is aligned here to ArcFace's template and goes up once: the server answers the swap
model's latent, cached here per face digest (and there, by the same digest). Per frame the aligned 128 px
crop goes up (raw or JPEG) with the 2 KB latent, so the server keeps no per-client state and any replica of
a pool can answer; the swapped crop comes back and gets the same mask the local neural engine gives it.

`in_flight` workers call swap_many at once; each call is bounded by the timeout. While the server is away
swap_many raises EngineError at once (the frame passes through) and the client reconnects by itself.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vcamswap.choices import CodecError, parse_codec
from vcamswap.compose.blend import finish
from vcamswap.compose.occlusion import Occluder
from vcamswap.engines import EngineError, EngineUnavailable, SwapItem
from vcamswap.engines.neural import arcface_crop, swap_mask, swap_template
from vcamswap.engines.remote import codec
from vcamswap.engines.remote.client import Client, RemoteError, ServerDown, check_ca, parse_server, read_token
from vcamswap.presets import Preset
from vcamswap.types import FaceGeometry, SwapOutput, check_bgr

log = logging.getLogger("vcamswap.remote")

DEFAULT_IN_FLIGHT = 4
DEFAULT_TIMEOUT = 1.0  # seconds a swap may take end to end before the frame passes through


@dataclass
class RemoteSource:
    """A source face for the remote engine: its aligned crop, digest, and the latent once the server gave it."""

    aligned: np.ndarray  # 112x112 BGR, the ArcFace-aligned source face
    digest: str
    latent: np.ndarray | None = None  # (1, 512) float32; None until the server was reachable
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)


class RemoteEngine:
    name = "remote"

    def __init__(self, server: str | None = None, token_file: str | Path | None = None, codec_name: str = "jpeg:90",
                 in_flight: int = DEFAULT_IN_FLIGHT, timeout: float = DEFAULT_TIMEOUT, ca_file: str | None = None
                 ) -> None:
        if not server:
            raise EngineUnavailable("remote: no server given; pass --server grpc://HOST:PORT or https://HOST "
                                    "(see 'vcamswap serve')")
        try:
            self.address = parse_server(server)
            self.codec = parse_codec(codec_name)
            token = read_token(token_file)
            ca_file = check_ca(ca_file)
        except ValueError as e:
            raise EngineUnavailable(f"remote: {e}") from None
        try:
            if not self.address.http:  # the HTTPS transport needs nothing beyond the standard library
                import tritonclient.grpc  # noqa: F401
        except ImportError as e:
            raise EngineUnavailable(f"remote: tritonclient is not importable ({e}); "
                                    "pip install 'vcamswap[remote]'") from None
        if ca_file and not self.address.tls:
            log.warning("--server-ca is for TLS servers (grpcs://, https://); %s is plain, the CA is not used",
                        self.address)
        self.in_flight = max(1, int(in_flight))
        self.client = Client(self.address, token, timeout, ca_file)
        self._latents: dict[str, np.ndarray] = {}  # digest -> latent: a face switched back to costs nothing
        self._lock = threading.Lock()
        try:
            self.client.check([codec.SOURCE_MODEL, codec.swap_model(self.codec)])
        except ServerDown as e:  # it may come later: frames pass through until then
            self.client.mark_down(str(e).split(": ", 1)[-1])
        except RemoteError as e:
            self.client.close()
            hint = ""
            if self.codec.kind == "jpeg" and "does not serve" in str(e):
                hint = "; a repository exported for the stock container takes raw crops: --remote-codec raw"
            raise EngineUnavailable(f"remote: {e}{hint}") from None
        log.info("remote engine: %s (%s crops, %d in flight)", self.address, self.codec, self.in_flight)

    # -- Engine protocol

    def healthy(self) -> bool:
        return self.client.up

    def crop_size(self, preset: Preset) -> int:
        return codec.SWAP_SIZE

    def template(self, size: int) -> np.ndarray:
        return swap_template(size)

    def finish(
        self, out: SwapOutput, crop: np.ndarray, preset: Preset, points: np.ndarray | None,
        occlusion: Occluder | None,
    ) -> SwapOutput:
        return finish(out, crop, preset, points, occlusion)  # the server paints the whole face

    def make_detector(self, preset: Preset) -> None:
        return None  # the embedded BlazeFace: detection stays on this machine

    def prepare_source(self, image: np.ndarray, face: FaceGeometry) -> RemoteSource:
        check_bgr(image, "source face", 2)
        aligned = arcface_crop(image, face.kps, codec.ARC_SIZE)
        source = RemoteSource(aligned, codec.digest(aligned))
        try:
            self.latent(source)
        except EngineError as e:  # the server is away: the latent is asked for again at the first swap
            log.info("source face kept for later: %s", e)
        return source

    def latent(self, source: RemoteSource) -> np.ndarray:
        """The source's latent: from memory, else asked of the server once."""
        if source.latent is not None:
            return source.latent
        with source._lock:
            if source.latent is None:
                with self._lock:
                    known = self._latents.get(source.digest)
                if known is None:
                    out = self._call(codec.SOURCE_MODEL, [("crop", source.aligned[None])], "latent")
                    known = np.ascontiguousarray(out.reshape(1, codec.LATENT_SIZE).astype(np.float32))
                    if not np.isfinite(known).all():
                        raise EngineError("the swap server gave no usable latent for this source face")
                    with self._lock:
                        self._latents[source.digest] = known
                source.latent = known
        return source.latent

    def swap_many(self, items: Sequence[SwapItem[RemoteSource]], preset: Preset) -> list[SwapOutput]:
        return [self.swap(i.crop, i.face, i.source, preset) for i in items]

    def swap(self, crop: np.ndarray, face: FaceGeometry, source: RemoteSource, preset: Preset) -> SwapOutput:
        if not isinstance(source, RemoteSource):
            raise TypeError(f"source payload is a {type(source).__name__}, not one made by this engine")
        try:
            crop = codec.check_crop(crop)
        except CodecError as e:
            raise EngineError(f"remote: {e}") from None
        swapped = self.swap_crop(crop, self.latent(source))
        return SwapOutput(swapped, swap_mask(face, preset))

    def swap_crop(self, crop: np.ndarray, latent: np.ndarray) -> np.ndarray:
        """The server's swap of one checked 128x128 crop."""
        lat = latent.reshape(1, codec.LATENT_SIZE).astype(np.float32)
        if self.codec.kind == "raw":
            out = self._call(codec.SWAP_MODEL, [("crop", crop[None]), ("latent", lat)], "swapped")
            try:
                return codec.check_crop(out.reshape(out.shape[1:]) if out.ndim == 4 else out)
            except CodecError as e:
                raise EngineError(f"remote: the server's answer: {e}") from None
        data = np.frombuffer(codec.encode_jpeg(crop, self.codec.quality), np.uint8)
        quality = np.array([self.codec.quality], np.int32)
        out = self._call(codec.SWAP_JPEG_MODEL, [("crop", data), ("latent", lat), ("quality", quality)], "swapped")
        try:
            return codec.decode_jpeg(out.astype(np.uint8).tobytes())
        except CodecError as e:
            raise EngineError(f"remote: the server's answer: {e}") from None

    def _call(self, model: str, inputs: list[tuple[str, np.ndarray]], output: str) -> np.ndarray:
        try:
            return self.client.infer(model, inputs, output)
        except RemoteError as e:  # ServerDown included: one line, the same each time, so it is said once
            raise EngineError(str(e)) from None

    @property
    def rtt_ms(self) -> float | None:
        return self.client.rtt_ms

    def close(self) -> None:
        self.client.close()

