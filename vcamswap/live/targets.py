"""Who is who among the faces in view: `--map CAMERA_PERSON_PHOTO=SOURCE_FACE` gives each person their source.

Each mapped photo of a camera person is analysed and embedded (ArcFace, the neural engine's `embed`) once, at
start. A tracked face is embedded when its track starts and again every RECHECK_S seconds, never per frame;
the photo it is closest to (cosine similarity at least MATCH_SIMILARITY) decides its source, and a face
that matches none gets the default source (the chosen face). Without a map nothing is embedded at all.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np

from vcamswap.faces.library import FaceError
from vcamswap.imageio import ImageError, load_image
from vcamswap.live.sources import PreparedSource, Sources
from vcamswap.logonce import WarnOnce
from vcamswap.types import FaceGeometry, TrackedFace

log = logging.getLogger("vcamswap.targets")

# ArcFace (w600k_r50) cosine similarity: photos of one person mostly score 0.5-0.8, two people rarely
# above 0.25; 0.4 is FaceFusion's reference-face default (distance 0.6) and leaves room for pose and light.
MATCH_SIMILARITY = 0.4
# A track can change person without being lost (two people crossing); re-embedding every few seconds bounds
# how long a wrong source can show, at the cost of one ArcFace run per face per period.
RECHECK_S = 3.0


@runtime_checkable
class Embedder(Protocol):
    def embed(self, image: np.ndarray, kps: np.ndarray) -> np.ndarray:
        """The L2-normalised identity embedding of the face at `kps`; ValueError when there is none."""
        ...


Analyzer = Callable[[np.ndarray], "FaceGeometry | None"]


class Person(NamedTuple):
    """One map entry: the camera person's photo, its embedding, and the source face they get."""

    photo: str
    embedding: np.ndarray  # (512,) L2-normalised
    face: str  # a name the library resolves


@dataclass
class Decision:
    person: int | None  # index into the people, None: matched nobody
    similarity: float
    at: float  # clock time of the embedding


class TargetRouter:
    """route(image, faces, default) -> one prepared source per face, in order."""

    def __init__(
        self,
        people: Sequence[Person] = (),
        embedder: Embedder | None = None,
        sources: Sources | None = None,
        threshold: float = MATCH_SIMILARITY,
        recheck_s: float = RECHECK_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if people and (embedder is None or sources is None):
            raise ValueError("a map needs the neural engine's embedder and the sources")
        self.people = list(people)
        self.embedder = embedder
        self.sources = sources
        self.threshold = threshold
        self.recheck_s = recheck_s
        self.clock = clock
        self._decided: dict[int, Decision] = {}
        self._prepared: dict[str, tuple[float, PreparedSource[Any] | None]] = {}  # face -> (when, source)
        self.embeddings = 0  # ArcFace runs on camera faces, for stats and tests
        self._warn_once = WarnOnce(log)  # a face that cannot be recognised fails on every frame

    @property
    def active(self) -> bool:
        return bool(self.people)

    def route(
        self, image: np.ndarray, faces: Sequence[TrackedFace], default: PreparedSource[Any] | None
    ) -> list[PreparedSource[Any] | None]:
        if not self.people:
            return [default] * len(faces)
        now = self.clock()
        out: list[PreparedSource[Any] | None] = []
        for face in faces:
            d = self._decided.get(face.track_id)
            if d is None or now - d.at >= self.recheck_s:
                d = self._decided[face.track_id] = self._decide(image, face, now)
            out.append(default if d.person is None else self._source(self.people[d.person].face, now) or default)
        alive = {f.track_id for f in faces}
        for gone in [t for t in self._decided if t not in alive]:  # an ended track is decided anew if it returns
            del self._decided[gone]
        return out

    def decision(self, track_id: int) -> Decision | None:
        return self._decided.get(track_id)

    def _decide(self, image: np.ndarray, face: TrackedFace, now: float) -> Decision:
        assert self.embedder is not None
        self.embeddings += 1
        try:
            emb = self.embedder.embed(image, face.geometry.kps)
        except (ValueError, RuntimeError) as e:
            self._warn_once(f"face {face.track_id} cannot be recognised ({e}); it gets the chosen face")
            return Decision(None, 0.0, now)
        sims = np.array([float(emb @ p.embedding) for p in self.people])
        best = int(np.argmax(sims))
        matched = bool(sims[best] >= self.threshold)
        return Decision(best if matched else None, float(sims[best]), now)

    def _source(self, name: str, now: float) -> PreparedSource[Any] | None:
        """The mapped source face, prepared through Sources; looked up again with each re-check period so a
        photo replaced in the faces folder is picked up, never per frame."""
        assert self.sources is not None
        known = self._prepared.get(name)
        if known is None or now - known[0] >= self.recheck_s:
            known = self._prepared[name] = (now, self.sources.prepare(name))
        return known[1]


def load_people(
    mapping: Mapping[str, str], embedder: Embedder, analyze: Analyzer, resolve: Callable[[str], str]
) -> list[Person]:
    """The map's entries, embedded once. A photo path that does not exist or a source face that is not known
    is a FaceError (one line, at start); a photo that is unreadable or shows no face is skipped with one line."""
    people: list[Person] = []
    for photo, face in mapping.items():
        path = Path(photo).expanduser()
        if not path.is_file():
            raise FaceError(f"--map: camera person's photo not found: {path}")
        name = resolve(face)
        try:
            image = load_image(path)
            geometry = analyze(image)
            if geometry is None:
                raise ValueError("no face found")
            embedding = embedder.embed(image, geometry.kps)
        except (ImageError, ValueError) as e:
            log.warning("--map: %s cannot be used (%s); that person gets the chosen face", path, e)
            continue
        people.append(Person(str(path), embedding, name))
    return people
