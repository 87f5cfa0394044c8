"""The neural models: manifest, download with resume, checksum, atomic install, offline install.

A model file only ever appears under its final name after its size and SHA-256 matched the manifest:
downloads go to `NAME.onnx.part` (resumed with an HTTP Range request after a cut), archive members and
local copies to a temporary file, and a rename publishes the checked file. A file that fails the check is
discarded and never installed.

    vcamswap models list | download [NAME] [--from DIR_OR_FILE] | verify [NAME] | path [NAME]
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import importlib.resources
import logging
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Literal, NamedTuple
from urllib.parse import urlparse

from vcamswap import __version__
from vcamswap.paths import sha256_file

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

log = logging.getLogger("vcamswap.models")

NeuralModel = Literal["det_10g", "w600k_r50", "inswapper_128"]
NEURAL_MODELS: tuple[NeuralModel, ...] = ("det_10g", "w600k_r50", "inswapper_128")

_MODELS_PACKAGE = "vcamswap._models"  # wheels install the repository's models/ folder under this name
_REPO_MODELS = Path(__file__).resolve().parents[2] / "models"
_CHUNK = 1 << 16
_DOWNLOADS = ".downloads"  # archives being fetched, inside the models folder
OFFLINE_HINT = "offline: 'vcamswap models download --from DIR_OR_FILE'"


class ModelError(Exception):
    """A model cannot be installed or checked; the message is one line that says what to do."""


class ManifestError(ModelError):
    """The manifest is missing or malformed."""


class DownloadError(ModelError):
    """The network transfer failed; a partial download is kept for the next attempt."""


class ChecksumError(ModelError):
    """A file does not match the manifest's size or SHA-256; it was not installed."""


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
    size: int
    sha256: str
    description: str = ""
    licence: str = ""
    sources: tuple[Source, ...] = field(default_factory=tuple)


class Manifest(NamedTuple):
    models: dict[str, ModelSpec]
    path: Path

    def get(self, name: str) -> ModelSpec:
        try:
            return self.models[name]
        except KeyError:
            raise ModelError(f"unknown model {name!r}; choose one of {', '.join(self.models)}") from None

    def select(self, names: Iterable[str] | None) -> list[ModelSpec]:
        wanted = list(names or [])
        return [self.get(n) for n in wanted] if wanted else list(self.models.values())


# --------------------------------------------------------------------------------------------- manifest


def manifest_path() -> Path:
    """models/manifest.toml of the installation (wheel) or of the source checkout."""
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
    try:
        file, size, sha = str(entry["file"]), int(entry["size"]), str(entry["sha256"]).lower()
    except (KeyError, TypeError, ValueError) as e:
        raise ManifestError(f"{where}: missing or bad field {e}") from None
    if Path(file).name != file or not file:
        raise ManifestError(f"{where}: file must be a plain file name, got {file!r}")
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise ManifestError(f"{where}: sha256 must be 64 hex digits")
    sources = tuple(_source(s, where) for s in entry.get("sources", []))
    return ModelSpec(
        name, file, size, sha, str(entry.get("description", "")), str(entry.get("licence", "")), sources
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
    state: Literal["ok", "present", "missing", "size", "checksum"]  # present = size ok, hash not checked
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
    if size != spec.size:
        return ModelStatus(spec.name, "size", path, f"{path} has {size} bytes, expected {spec.size}")
    if not deep:
        return ModelStatus(spec.name, "present", path, "size matches (checksum not checked)")
    digest = sha256_file(path)
    if digest != spec.sha256:
        return ModelStatus(spec.name, "checksum", path, f"{path}: SHA-256 {digest[:12]}…, expected {spec.sha256[:12]}…")
    return ModelStatus(spec.name, "ok", path, "SHA-256 verified")


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


# --------------------------------------------------------------------------------------------- progress


class Progress:
    """A one-line progress bar on stderr (redrawn in place on a terminal, a line per quarter otherwise)."""

    def __init__(self, label: str, total: int | None, stream: IO[str] | None = None, enabled: bool = True) -> None:
        self.label, self.total, self.done = label, total, 0
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._t0 = time.monotonic()
        self._last_draw = 0.0
        self._last_quarter = -1

    def start_at(self, done: int) -> None:
        self.done = done

    def update(self, n: int) -> None:
        self.done += n
        if not self.enabled:
            return
        now = time.monotonic()
        if self.tty and now - self._last_draw >= 0.2:
            self._last_draw = now
            self.stream.write("\r" + self._line(now))
            self.stream.flush()
        elif not self.tty and self.total:
            quarter = 4 * self.done // self.total
            if quarter != self._last_quarter and quarter < 4:
                self._last_quarter = quarter
                self.stream.write(self._line(now) + "\n")

    def close(self) -> None:
        if self.enabled:
            self.stream.write(("\r" if self.tty else "") + self._line(time.monotonic()) + "\n")
            self.stream.flush()

    def _line(self, now: float) -> str:
        rate = self.done / max(now - self._t0, 1e-6) / 1e6
        mb = self.done / 1e6
        if self.total:
            pct = 100 * self.done / self.total
            width = 24
            fill = int(width * self.done / self.total)
            bar = "#" * fill + "-" * (width - fill)
            return f"{self.label} [{bar}] {pct:5.1f}% {mb:.1f}/{self.total / 1e6:.1f} MB {rate:.1f} MB/s"
        return f"{self.label} {mb:.1f} MB {rate:.1f} MB/s"


ProgressFactory = Callable[[str, int | None], Progress]


def no_progress(label: str, total: int | None) -> Progress:
    return Progress(label, total, enabled=False)


# --------------------------------------------------------------------------------------------- download


_RETRY_HTTP = (408, 429, 500, 502, 503, 504)
_MAX_STALLED = 1  # retries in a row that may bring no new byte


@dataclass
class Fetcher:
    """HTTP(S) transfer into a `.part` file, resumed with a Range request after a cut or a restart."""

    retries: int = 5
    timeout: float = 30.0
    retry_delay: float = 1.0
    progress: ProgressFactory = no_progress
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (url, Range) sent, for diagnostics

    def fetch(self, url: str, part: Path, size: int | None, label: str) -> None:
        part.parent.mkdir(parents=True, exist_ok=True)
        bar = self.progress(label, size)
        failures = stalled = 0
        try:
            while True:
                have = part.stat().st_size if part.exists() else 0
                if size is not None and have >= size:
                    if have > size:  # a part longer than the file cannot be resumed
                        part.unlink()
                        continue
                    return
                try:
                    self._transfer(url, part, have, bar)
                    return
                except urllib.error.HTTPError as e:
                    if e.code == 416 and have:  # nothing left past `have`: let the checksum decide
                        return
                    if e.code not in _RETRY_HTTP or failures >= self.retries:
                        raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from None
                except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
                    kept = part.stat().st_size if part.exists() else 0
                    # An unreachable host fails fast; a transfer that keeps moving gets every retry.
                    stalled = 0 if kept > have else stalled + 1
                    if failures >= self.retries or stalled > _MAX_STALLED:
                        where = f"{kept} bytes kept in {part}; run the command again to resume" if kept else (
                            "nothing downloaded")
                        raise DownloadError(f"{url}: {_reason(e)} ({where})") from None
                failures += 1
                log.info("download of %s interrupted; resuming (%d/%d)", url, failures, self.retries)
                time.sleep(self.retry_delay * failures)
        finally:
            bar.close()

    def _transfer(self, url: str, part: Path, have: int, bar: Progress) -> None:
        headers = {"User-Agent": f"vcamswap/{__version__}"}
        if have:
            headers["Range"] = f"bytes={have}-"
        self.requests.append((url, headers.get("Range")))
        req = urllib.request.Request(url, headers=headers)
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            resumed = have > 0 and resp.status == 206
            if resumed and not str(resp.headers.get("Content-Range", "")).startswith(f"bytes {have}-"):
                raise DownloadError(f"{url}: server resumed at the wrong offset ({resp.headers.get('Content-Range')})")
            start = have if resumed else 0
            bar.start_at(start)
            expected = resp.headers.get("Content-Length")
            got = 0
            with part.open("ab" if resumed else "wb") as f:
                while True:
                    chunk = resp.read(_CHUNK)
                    if not chunk:
                        break
                    f.write(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
            if expected is not None and got < int(expected):
                raise http.client.IncompleteRead(b"", int(expected) - got)


def _reason(e: BaseException) -> str:
    if isinstance(e, urllib.error.URLError) and not isinstance(e, urllib.error.HTTPError):
        return str(e.reason)
    if isinstance(e, http.client.IncompleteRead):
        return "connection closed before the end of the file"
    return str(e) or type(e).__name__


@dataclass
class Installer:
    """Installs models into one folder from their manifest sources or from a local copy."""

    models_dir: Path
    fetcher: Fetcher = field(default_factory=Fetcher)
    _archives: dict[str, Path] = field(default_factory=dict)

    # -- from the network

    def download(self, spec: ModelSpec, force: bool = False) -> Path:
        """The installed, verified file; fetched from the first source that works."""
        final = model_path(spec, self.models_dir)
        if not force and final.is_file() and status(spec, self.models_dir).state == "ok":
            return final
        if not spec.sources:
            raise ModelError(f"{spec.name}: the manifest lists no source; {OFFLINE_HINT}")
        errors: list[ModelError] = []
        for i, src in enumerate(spec.sources):
            try:
                if src.member is None:
                    self._download_file(spec, src)
                else:
                    self._install_member(spec, self._archive(src), src.member, src.url)
                return final
            except (DownloadError, ChecksumError) as e:
                if i + 1 < len(spec.sources):
                    log.warning("%s; trying the next source", e)
                errors.append(e)
        if len(errors) == 1:
            raise errors[0]
        kind = ChecksumError if all(isinstance(e, ChecksumError) for e in errors) else DownloadError
        raise kind(f"{spec.name}: none of the {len(errors)} sources worked (last: {errors[-1]})")

    def _download_file(self, spec: ModelSpec, src: Source) -> None:
        final = model_path(spec, self.models_dir)
        part = final.with_name(final.name + ".part")
        self.fetcher.fetch(src.url, part, spec.size, spec.name)
        try:
            _check(part, spec.size, spec.sha256, spec.file, src.url, _retry_hint(spec))
        except ChecksumError:
            part.unlink(missing_ok=True)  # resuming a corrupt file would only rebuild the same mismatch
            raise
        os.replace(part, final)

    def _archive(self, src: Source) -> Path:
        """The verified archive behind `src`, fetched once per installer (several models share buffalo_l)."""
        if src.url in self._archives:
            return self._archives[src.url]
        folder = self.models_dir / _DOWNLOADS
        done = folder / src.archive_name
        part = done.with_name(done.name + ".part")
        retry = "Run the command again later, or use --from with a copy of the archive"
        if done.is_file():
            try:
                _check(done, src.archive_size, src.archive_sha256, done.name, str(done), retry)
            except ChecksumError:
                done.unlink()
        if not done.is_file():
            self.fetcher.fetch(src.url, part, src.archive_size, src.archive_name)
            try:
                _check(part, src.archive_size, src.archive_sha256, src.archive_name, src.url, retry)
            except ChecksumError:
                part.unlink(missing_ok=True)
                raise
            os.replace(part, done)
        self._archives[src.url] = done
        return done

    def cleanup(self) -> None:
        """Drop finished archives (their models are installed); partial ones stay for resuming."""
        for path in self._archives.values():
            path.unlink(missing_ok=True)
        self._archives.clear()
        folder = self.models_dir / _DOWNLOADS
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()

    # -- from a local copy

    def install_from(self, specs: list[ModelSpec], source: Path) -> list[ModelSpec]:
        """Install every spec found in `source` (a model file, a zip, or a folder of them)."""
        if not source.exists():
            raise ModelError(f"no such file or folder: {source}")
        installed: list[ModelSpec] = []
        problems: list[ChecksumError] = []
        for spec in specs:
            for candidate in _local_candidates(spec, source):
                try:
                    if self._install_local(spec, candidate):
                        installed.append(spec)
                        break
                except ChecksumError as e:
                    problems.append(e)
        if not installed and problems:
            raise problems[0]
        if not installed:
            names = ", ".join(s.name for s in specs)
            raise ModelError(f"{source} holds none of {names} (looked for {', '.join(s.file for s in specs)})")
        return installed

    def _install_local(self, spec: ModelSpec, candidate: Path) -> bool:
        """True once installed; False when `candidate` is a zip without the model."""
        if candidate.suffix.lower() == ".zip" and zipfile.is_zipfile(candidate):
            member = _find_member(candidate, spec)
            if member is None:
                return False
            self._install_member(spec, candidate, member, str(candidate))
            return True
        size = candidate.stat().st_size
        if size != spec.size:  # cheap refusal before hashing hundreds of MB
            raise ChecksumError(
                f"{candidate} has {size} bytes, not the {spec.size} of {spec.file}; not installed. "
                f"Use an unmodified copy of {spec.file}"
            )
        with candidate.open("rb") as inp:
            self._publish(spec, inp, str(candidate))
        return True

    def _install_member(self, spec: ModelSpec, archive: Path, member: str, origin: str) -> None:
        try:
            with zipfile.ZipFile(archive) as zf:
                name = _member_name(zf, member)
                if name is None:
                    raise ChecksumError(f"{origin} has no {member}; {_retry_hint(spec)}")
                with zf.open(name) as inp:
                    self._publish(spec, inp, f"{origin}:{name}")
        except zipfile.BadZipFile as e:
            raise ChecksumError(f"{origin} is not a readable zip ({e}); {_retry_hint(spec)}") from None

    def _publish(self, spec: ModelSpec, inp: IO[bytes], origin: str) -> None:
        """Copy into a temporary file beside the final one, hashing on the way; rename only if it matches."""
        self.models_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{spec.file}.", suffix=".tmp", dir=self.models_dir)
        tmp = Path(tmp_name)
        h = hashlib.sha256()
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in iter(lambda: inp.read(1 << 20), b""):
                    h.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            digest = h.hexdigest()
            if size != spec.size or digest != spec.sha256:
                raise ChecksumError(
                    f"{spec.file} from {origin} does not match the manifest ({size} bytes, SHA-256 "
                    f"{digest[:12]}…; expected {spec.size} bytes, {spec.sha256[:12]}…); not installed. "
                    f"Use an unmodified copy of {spec.file}"
                )
            os.replace(tmp, model_path(spec, self.models_dir))
        finally:
            tmp.unlink(missing_ok=True)


def _member_name(zf: zipfile.ZipFile, member: str) -> str | None:
    """The archive entry for `member`, at the top level or in a folder (buffalo_l/det_10g.onnx)."""
    names = zf.namelist()
    if member in names:
        return member
    for name in names:
        if PurePosixPath(name).name == member:
            return name
    return None


def _find_member(archive: Path, spec: ModelSpec) -> str | None:
    wanted = {spec.file} | {s.member for s in spec.sources if s.member}
    try:
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                if PurePosixPath(name).name in wanted:
                    return name
    except zipfile.BadZipFile:
        return None
    return None


def _local_candidates(spec: ModelSpec, source: Path) -> Iterator[Path]:
    """Files in `source` that may hold `spec`: the file by name (also one folder down), then zips."""
    if source.is_file():
        yield source
        return
    seen: set[Path] = set()
    direct = [source / spec.file, *sorted(source.glob(f"*/{spec.file}"))]
    archives = [source / s.archive_name for s in spec.sources if s.member]
    zips = sorted(source.glob("*.zip"))
    for path in [*direct, *archives, *zips]:
        if path.is_file() and path not in seen:
            seen.add(path)
            yield path


# --------------------------------------------------------------------------------------------- CLI


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list, download, verify the neural engine's models")
    p.add_argument("action", choices=["list", "download", "verify", "path"])
    p.add_argument("names", nargs="*", metavar="NAME", help=f"model names (default: all): {', '.join(NEURAL_MODELS)}")
    p.add_argument("--from", dest="source", type=Path, metavar="DIR_OR_FILE",
                   help="install from a local copy (a model file, buffalo_l.zip, or a folder) instead of the network")
    p.add_argument("--models", help="models folder (default: the platform's data dir)")
    p.add_argument("--manifest", type=Path, help="a manifest other than the shipped one (e.g. an internal mirror)")
    p.add_argument("--force", action="store_true", help="download again even when the file verifies")
    p.add_argument("--settings", type=Path)
    p.set_defaults(func=cmd_models)


def cmd_models(args: argparse.Namespace) -> int:
    from vcamswap.cli import settings_from_args

    models_dir = settings_from_args(args).models_dir()
    try:
        manifest = load_manifest(args.manifest)
        specs = manifest.select(args.names)
        if args.action == "list":
            return _cmd_list(specs, models_dir)
        if args.action == "path":
            _out(str(model_path(specs[0], models_dir)) if args.names else str(models_dir))
            return 0
        if args.action == "verify":
            return _cmd_verify(specs, models_dir)
        return _cmd_download(specs, models_dir, args.source, args.force)
    except ModelError as e:
        print(f"vcamswap: error: {e}", file=sys.stderr, flush=True)
        return 2


def _cmd_list(specs: list[ModelSpec], models_dir: Path) -> int:
    _out(f"models folder: {models_dir}")
    for spec in specs:
        st = status(spec, models_dir, deep=False)
        state = {"present": "installed", "missing": "missing", "size": "wrong size"}.get(st.state, st.state)
        _out(f"{spec.name}\t{spec.size / 1e6:.1f} MB\t{state}\t{spec.licence}")
    return 0


def _cmd_verify(specs: list[ModelSpec], models_dir: Path) -> int:
    bad = 0
    for spec in specs:
        st = status(spec, models_dir)
        if st.state == "ok":
            _out(f"OK       {spec.name}: {st.detail}")
        else:
            bad += 1
            _out(f"problem  {spec.name}: {st.detail}; fix: {install_hint([spec.name])}")
    return 1 if bad else 0


def _cmd_download(specs: list[ModelSpec], models_dir: Path, source: Path | None, force: bool) -> int:
    installer = Installer(models_dir, Fetcher(progress=_bar))
    if source is not None:
        for spec in installer.install_from(specs, source.expanduser()):
            _out(f"installed {spec.name} from {source} -> {model_path(spec, models_dir)}")
        return 0
    try:
        for spec in specs:
            if not force and status(spec, models_dir).state == "ok":
                _out(f"already installed {spec.name} -> {model_path(spec, models_dir)}")
                continue
            _out(f"installed {spec.name} -> {installer.download(spec, force=True)}")
    finally:
        installer.cleanup()
    return 0


def _bar(label: str, total: int | None) -> Progress:
    return Progress(label, total)


def _out(line: str) -> None:
    print(line, flush=True)
