"""The neural models: manifest, download with resume, checksum, atomic install, offline install.

A model file only ever appears under its final name after its size and SHA-256 matched the manifest:
downloads go to `NAME.onnx.part` (resumed with an HTTP Range request after a cut), archive members and
local copies to a temporary file, and a rename publishes the checked file. A file that fails the check is
discarded and never installed.

    vcamswap models list | download [NAME] [--from DIR_OR_FILE] | verify [NAME] | path [NAME]

This module: the manifest and the checks of installed files; download.py fetches and installs them.
"""

from __future__ import annotations

import importlib.resources
import logging
import os
import sys
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal, NamedTuple
from urllib.parse import urlparse

from vcamswap.paths import sha256_file

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

log = logging.getLogger("vcamswap.models")

NeuralModel = Literal["det_10g", "w600k_r50", "inswapper_128"]
NEURAL_MODELS: tuple[NeuralModel, ...] = ("det_10g", "w600k_r50", "inswapper_128")
# Optional models, also named by the role they play (`vcamswap models download occluder`): never required.
OCCLUDER_MODEL, ENHANCER_MODEL, PARSER_MODEL = "xseg_3", "gfpgan_1.4", "bisenet_resnet_34"

_MODELS_PACKAGE = "vcamswap._models"  # wheels install the repository's models/ folder under this name
_REPO_MODELS = Path(__file__).resolve().parents[2] / "models"
_CHUNK = 1 << 16
_DOWNLOADS = ".downloads"  # archives being fetched, inside the models folder
MANIFEST_ENV = "VCAMSWAP_MANIFEST"
OFFLINE_HINT = "offline: 'vcamswap models download --from DIR_OR_FILE'"


class ModelError(Exception):
    """A model cannot be installed or checked; the message is one line that says what to do."""


class ManifestError(ModelError):
    """The manifest is missing or malformed."""


class DownloadError(ModelError):
    """The network transfer failed; a partial download is kept for the next attempt."""


class ChecksumError(ModelError):
    """A file does not match the manifest's size or SHA-256; it was not installed."""


class OversizeError(ChecksumError):
    """A server sent (or offered) more bytes than the manifest lists; the transfer was cut and dropped."""


@dataclass(frozen=True)
class Source:
    url: str
    member: str | None = None  # set when the url is a zip archive holding the model
    archive_size: int | None = None
    archive_sha256: str | None = None

    @property
    def archive_name(self) -> str:
        return PurePosixPath(urlparse(self.url).path).name or "download"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    file: str
    size: int  # the exact size, or the most it may be when exact_size is False
    sha256: str  # "" when only a CRC32 is published
    description: str = ""
    licence: str = ""
    sources: tuple[Source, ...] = field(default_factory=tuple)
    optional: bool = False  # fetched only when asked for by name or role
    role: str = ""  # what an optional model does ("occluder", "enhancer"); a name for it on the command line
    crc32: str = ""  # 8 hex digits where the publisher gives a CRC32 (FaceFusion's .hash files); "" otherwise
    exact_size: bool = True  # False: only an upper bound is published (`max_size`)
    requires: tuple[str, ...] = ()  # models fetched with this one (an identity model it cannot run without)

    def size_fits(self, size: int) -> bool:
        return size == self.size if self.exact_size else 0 < size <= self.size

    def size_text(self) -> str:
        return f"{self.size}" if self.exact_size else f"at most {self.size}"


class Manifest(NamedTuple):
    models: dict[str, ModelSpec]
    path: Path

    def get(self, name: str) -> ModelSpec:
        """The model of that name, or of that role (`occluder`)."""
        if name in self.models:
            return self.models[name]
        for spec in self.models.values():
            if spec.role and spec.role == name:
                return spec
        roles = [s.role for s in self.models.values() if s.role]
        raise ModelError(f"unknown model {name!r}; choose one of {', '.join([*self.models, *roles])}")

    def select(self, names: Iterable[str] | None, optional: bool = False) -> list[ModelSpec]:
        """The named models; without names the required ones (and the optional ones too if `optional`)."""
        wanted = list(names or [])
        if wanted:
            named = [self.get(n) for n in wanted]
            with_needs = [t for s in named for t in (s, *(self.get(r) for r in s.requires))]
            return list({id(s): s for s in with_needs}.values())
        return [s for s in self.models.values() if optional or not s.optional]


# --------------------------------------------------------------------------------------------- manifest


def manifest_path() -> Path:
    """$VCAMSWAP_MANIFEST (a mirror's manifest, for every command and the daemon), else models/manifest.toml of
    the installation (wheel) or of the source checkout."""
    chosen = os.environ.get(MANIFEST_ENV, "").strip()
    if chosen:
        return Path(chosen).expanduser()
    candidates: list[Path] = []
    try:
        packaged = importlib.resources.files(_MODELS_PACKAGE) / "manifest.toml"
        if isinstance(packaged, Path):
            candidates.append(packaged)
    except ModuleNotFoundError:
        pass
    candidates.append(_REPO_MODELS / "manifest.toml")
    for path in candidates:
        if path.is_file():
            return path
    raise ManifestError(f"model manifest not found (looked in {', '.join(str(p) for p in candidates)})")


def load_manifest(path: Path | None = None) -> Manifest:
    path = path or manifest_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ManifestError(f"cannot read the model manifest {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ManifestError(f"model manifest {path}: {e}") from None
    table = data.get("models")
    if not isinstance(table, dict) or not table:
        raise ManifestError(f"model manifest {path}: no [models.NAME] tables")
    return Manifest({name: _spec(name, entry, path) for name, entry in table.items()}, path)


def _spec(name: str, entry: object, path: Path) -> ModelSpec:
    where = f"model manifest {path}: models.{name}"
    if not isinstance(entry, dict):
        raise ManifestError(f"{where} must be a table")
    exact = "max_size" not in entry
    try:
        file, size = str(entry["file"]), int(entry["size"] if exact else entry["max_size"])
        sha, crc = str(entry.get("sha256", "")).lower(), str(entry.get("crc32", "")).lower()
    except (KeyError, TypeError, ValueError) as e:
        raise ManifestError(f"{where}: missing or bad field {e}") from None
    if Path(file).name != file or not file:
        raise ManifestError(f"{where}: file must be a plain file name, got {file!r}")
    if not sha and not crc:
        raise ManifestError(f"{where}: needs a sha256 or a crc32")
    if sha and (len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha)):
        raise ManifestError(f"{where}: sha256 must be 64 hex digits")
    if crc and (len(crc) != 8 or any(c not in "0123456789abcdef" for c in crc)):
        raise ManifestError(f"{where}: crc32 must be 8 hex digits")
    requires = entry.get("requires", [])
    if not isinstance(requires, list) or not all(isinstance(r, str) for r in requires):
        raise ManifestError(f"{where}: requires must be a list of model names")
    sources = tuple(_source(s, where) for s in entry.get("sources", []))
    optional = entry.get("optional", False)
    if not isinstance(optional, bool):
        raise ManifestError(f"{where}: optional must be true or false")
    return ModelSpec(
        name, file, size, sha, str(entry.get("description", "")), str(entry.get("licence", "")), sources,
        optional, str(entry.get("role", "")), crc, exact, tuple(requires),
    )


def _source(entry: object, where: str) -> Source:
    if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
        raise ManifestError(f"{where}: each source needs a url")
    archive_size = entry.get("archive_size")
    archive_sha = entry.get("archive_sha256")
    return Source(
        entry["url"],
        entry.get("member"),
        int(archive_size) if archive_size is not None else None,
        str(archive_sha).lower() if archive_sha is not None else None,
    )


# --------------------------------------------------------------------------------------------- checks


class ModelStatus(NamedTuple):
    name: str
    state: Literal["ok", "present", "missing", "size", "checksum", "unreadable"]  # present: size ok, no hash
    path: Path
    detail: str


def model_path(spec: ModelSpec, models_dir: Path) -> Path:
    return models_dir / spec.file


def status(spec: ModelSpec, models_dir: Path, deep: bool = True) -> ModelStatus:
    """Installed and intact? `deep` hashes the file (a second or two for the big ones)."""
    path = model_path(spec, models_dir)
    if not path.is_file():
        return ModelStatus(spec.name, "missing", path, f"{spec.file} not in {models_dir}")
    size = path.stat().st_size
    if not spec.size_fits(size):
        return ModelStatus(spec.name, "size", path, f"{path} has {size} bytes, expected {spec.size_text()}")
    if not deep:
        return ModelStatus(spec.name, "present", path, "size matches (checksum not checked)")
    try:
        wrong = digest_mismatch(spec, path)
    except OSError as e:
        return ModelStatus(spec.name, "unreadable", path, f"cannot read {path}: {e.strerror or e}")
    if wrong:
        return ModelStatus(spec.name, "checksum", path, f"{path}: {wrong}")
    return ModelStatus(spec.name, "ok", path, f"{'SHA-256' if spec.sha256 else 'CRC32'} verified")


def crc32_file(path: Path) -> str:
    crc = 0
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            crc = zlib.crc32(chunk, crc)
    return f"{crc & 0xFFFFFFFF:08x}"


def digest_mismatch(spec: ModelSpec, path: Path) -> str:
    """What does not match the manifest's checksums ("" when every one given does)."""
    if spec.sha256:
        digest = sha256_file(path)
        if digest != spec.sha256:
            return f"SHA-256 {digest[:12]}…, expected {spec.sha256[:12]}…"
    if spec.crc32:
        crc = crc32_file(path)
        if crc != spec.crc32:
            return f"CRC32 {crc}, expected {spec.crc32}"
    return ""


def check_spec(path: Path, spec: ModelSpec, origin: str) -> None:
    """Raise ChecksumError unless `path` fits the model's size and matches its checksums."""
    got = path.stat().st_size
    if not spec.size_fits(got):
        raise ChecksumError(f"{spec.file} from {origin} has {got} bytes, expected {spec.size_text()}; not "
                            f"installed. {_retry_hint(spec)}")
    wrong = digest_mismatch(spec, path)
    if wrong:
        raise ChecksumError(f"{spec.file} from {origin} does not match the manifest ({wrong}); not installed. "
                            f"{_retry_hint(spec)}")


def missing_models(names: Iterable[str], models_dir: Path, manifest: Manifest | None = None) -> list[str]:
    """Names whose file is absent (no hashing: the engine reports a corrupt file when it fails to load)."""
    files = _files_for(names, manifest)
    return [n for n, f in files.items() if not (models_dir / f).is_file()]


def _files_for(names: Iterable[str], manifest: Manifest | None) -> dict[str, str]:
    if manifest is None:
        try:
            manifest = load_manifest()
        except ManifestError:
            return {n: f"{n}.onnx" for n in names}
    return {n: manifest.models[n].file if n in manifest.models else f"{n}.onnx" for n in names}


def install_hint(names: Iterable[str] = ()) -> str:
    target = " ".join(names)
    cmd = f"vcamswap models download {target}".rstrip()
    return f"run '{cmd}' ({OFFLINE_HINT})"


def _check(path: Path, size: int | None, sha256: str | None, what: str, origin: str, retry: str) -> None:
    """Raise ChecksumError unless `path` has the expected size and SHA-256."""
    got_size = path.stat().st_size
    if size is not None and got_size != size:
        raise ChecksumError(f"{what} from {origin} has {got_size} bytes, expected {size}; not installed. {retry}")
    if sha256 is not None:
        digest = sha256_file(path)
        if digest != sha256:
            raise ChecksumError(
                f"{what} from {origin} does not match the manifest (SHA-256 {digest[:12]}…, expected "
                f"{sha256[:12]}…); not installed. {retry}"
            )


def _retry_hint(spec: ModelSpec) -> str:
    return (
        f"Try 'vcamswap models download {spec.name}' again later, or fetch {spec.file} yourself and run "
        f"'vcamswap models download {spec.name} --from FILE'"
    )
