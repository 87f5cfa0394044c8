"""Fetching and installing the neural models: download with resume, checksum, atomic install, offline install."""

from __future__ import annotations

import hashlib
import http.client
import logging
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

from vcamswap import __version__
from vcamswap.atomic import commit, replacing
from vcamswap.modelstore.manifest import (
    _CHUNK,
    _DOWNLOADS,
    OFFLINE_HINT,
    ChecksumError,
    DownloadError,
    ModelError,
    ModelSpec,
    OversizeError,
    Source,
    _check,
    _retry_hint,
    check_spec,
    crc32_file,
    model_path,
    status,
)

log = logging.getLogger("vcamswap.models")


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
            fill = min(width, int(width * self.done / self.total))
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
    max_bytes: int | None = None  # the most one file may bring; None: the size fetch() is told

    def fetch(self, url: str, part: Path, size: int | None, label: str, most: int | None = None) -> None:
        """`size`: the exact size when known; `most`: else the most the file may have (None: no bound)."""
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
                    self._transfer(url, part, have, bar, size if size is not None else most)
                    return
                except OversizeError:
                    part.unlink(missing_ok=True)
                    raise
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

    def _transfer(self, url: str, part: Path, have: int, bar: Progress, size: int | None = None) -> None:
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
            limit = self.max_bytes if self.max_bytes is not None else size
            if limit is not None and expected is not None and expected.isdigit() and start + int(expected) > limit:
                raise OversizeError(f"{url}: the server offers {start + int(expected)} bytes, more than the "
                                    f"{limit} the manifest lists; not downloaded")
            got = 0
            with part.open("ab" if resumed else "wb") as f:
                while True:
                    chunk = resp.read(_CHUNK)
                    if not chunk:
                        break
                    if limit is not None and start + got + len(chunk) > limit:
                        f.truncate(0)
                        raise OversizeError(f"{url}: the server sent more than the {limit} bytes the manifest "
                                            "lists; not installed")
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
        self.fetcher.fetch(src.url, part, spec.size if spec.exact_size else None, spec.name, spec.size)
        try:
            check_spec(part, spec, src.url)
        except ChecksumError:
            part.unlink(missing_ok=True)  # resuming a corrupt file would only rebuild the same mismatch
            raise
        commit(part, final)

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
            commit(part, done)
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
        if not spec.size_fits(size):  # cheap refusal before hashing hundreds of MB
            raise ChecksumError(
                f"{candidate} has {size} bytes, not the {spec.size_text()} of {spec.file}; not installed. "
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
                declared = zf.getinfo(name).file_size
                if not spec.size_fits(declared):  # refused from the zip's directory, before a byte is written
                    raise ChecksumError(
                        f"{origin}:{name} has {declared} bytes, not the {spec.size_text()} of {spec.file}; not "
                        "installed. "
                        f"Use an unmodified copy of {spec.file}"
                    )
                with zf.open(name) as inp:
                    self._publish(spec, inp, f"{origin}:{name}")
        except zipfile.BadZipFile as e:
            raise ChecksumError(f"{origin} is not a readable zip ({e}); {_retry_hint(spec)}") from None

    def _publish(self, spec: ModelSpec, inp: IO[bytes], origin: str) -> None:
        """Copy into a temporary file beside the final one, hashing on the way; rename only if it matches."""
        h = hashlib.sha256()
        size = 0
        with replacing(model_path(spec, self.models_dir)) as tmp:
            with tmp.open("wb") as out:
                for chunk in iter(lambda: inp.read(1 << 20), b""):
                    h.update(chunk)
                    size += len(chunk)
                    if size > spec.size:  # a header that lied: stop at once, never write past the size
                        break
                    out.write(chunk)
            digest = h.hexdigest()
            crc = crc32_file(tmp) if spec.crc32 and spec.size_fits(size) else ""
            if not spec.size_fits(size) or (spec.sha256 and digest != spec.sha256) or crc != spec.crc32:
                raise ChecksumError(
                    f"{spec.file} from {origin} does not match the manifest ({size} bytes, SHA-256 "
                    f"{digest[:12]}…{f', CRC32 {crc}' if crc else ''}; expected {spec.size_text()} bytes, "
                    f"{spec.sha256[:12] or 'CRC32 ' + spec.crc32}…); not installed. Use an unmodified copy of "
                    f"{spec.file}"
                )


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
