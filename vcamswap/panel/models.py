"""The panel's models section: every model of the manifest with its licence, size and state, a full check on
request (remembered while the file stays as it was), and one download at a time in a thread of its own through
the same Installer as `vcamswap models download NAME` (resumed, checked, installed atomically)."""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vcamswap.modelstore.download import Fetcher, Installer, Progress
from vcamswap.modelstore.manifest import Manifest, ModelError, ModelSpec, load_manifest, model_path, status

log = logging.getLogger("vcamswap.panel")

STATE_WORDS = {"ok": "verified", "present": "installed", "missing": "missing", "size": "wrong size",
               "checksum": "corrupt", "unreadable": "unreadable"}


class Busy(ModelError):
    """Another model is downloading."""


@dataclass(frozen=True)
class Download:
    """Where the panel's download stands."""

    name: str
    state: str  # "downloading" | "installing" | "done" | "failed"
    done: int = 0  # bytes so far
    total: int | None = None  # bytes in all (an archive's when the model comes in one)
    text: str = ""  # one line: what was installed, or why it failed


class Reporter(Progress):
    """A progress bar that draws nothing and hands its figures on."""

    def __init__(self, label: str, total: int | None, report: Any) -> None:
        super().__init__(label, total, enabled=False)
        self.report = report

    def start_at(self, done: int) -> None:
        super().start_at(done)
        self.report(self.done, self.total)

    def update(self, n: int) -> None:
        super().update(n)
        self.report(self.done, self.total)


def one_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]


class Models:
    def __init__(self, models_dir: Path | None) -> None:
        self.models_dir = models_dir
        self._lock = threading.Lock()
        self._download: Download | None = None
        self._verified: dict[str, tuple[tuple[int, int], str, str]] = {}  # name -> ((mtime, size), state, detail)
        self.version = 0  # counts changes of the download, for the event stream

    def _manifest(self) -> tuple[Manifest, Path]:
        if self.models_dir is None:
            raise ModelError("the daemon has no models folder")
        return load_manifest(), self.models_dir

    def spec(self, name: str) -> tuple[ModelSpec, Path]:
        """The model of exactly that name in the manifest (roles and paths are not names)."""
        manifest, folder = self._manifest()
        if name not in manifest.models:
            raise ModelError(f"unknown model {name!r}; the manifest lists {', '.join(manifest.models)}")
        return manifest.models[name], folder

    # -- the list

    def listing(self) -> list[dict[str, Any]]:
        """The models as `vcamswap models list` shows them, each with what its last check found."""
        try:
            manifest, folder = self._manifest()
        except ModelError:
            return []
        out = []
        for spec in manifest.models.values():
            st = status(spec, folder, deep=False)
            state: str = st.state
            detail = st.detail
            kept = self._verified.get(spec.name)
            if kept is not None and st.state == "present" and kept[0] == stamp(model_path(spec, folder)):
                state, detail = kept[1], kept[2]  # checked, and the file is as it was then
            out.append({"name": spec.name, "installed": state in ("ok", "present"), "state": state,
                        "state_text": STATE_WORDS.get(state, state), "detail": detail, "licence": spec.licence,
                        "size_mb": round(spec.size / 1e6, 1), "role": spec.role, "optional": spec.optional,
                        "description": spec.description})
        return out

    def verify(self, name: str) -> dict[str, str]:
        """Size and SHA-256 of the installed file against the manifest (a second or two for the big ones)."""
        spec, folder = self.spec(name)
        path = model_path(spec, folder)
        before = stamp(path)
        st = status(spec, folder, deep=True)
        if st.state in ("ok", "checksum") and stamp(path) == before:
            self._verified[name] = (before, st.state, st.detail)
        else:
            self._verified.pop(name, None)
        return {"name": name, "state": st.state, "state_text": STATE_WORDS.get(st.state, st.state),
                "detail": st.detail}

    # -- the download

    def download_view(self) -> dict[str, Any] | None:
        with self._lock:
            return None if self._download is None else asdict(self._download)

    def _set(self, download: Download) -> None:
        with self._lock:
            self._download = download
            self.version += 1

    def download(self, name: str) -> dict[str, Any]:
        """Start fetching `name` in a thread of its own; Busy while another one is."""
        spec, folder = self.spec(name)
        if not spec.sources:
            raise ModelError(f"{name}: the manifest lists no source; install it with "
                             f"'vcamswap models download {name} --from FILE'")
        with self._lock:
            if self._download is not None and self._download.state in ("downloading", "installing"):
                raise Busy(f"{self._download.name} is downloading; one download at a time")
            self._download = Download(name, "downloading", 0, spec.size)
            self.version += 1
        fetch = Fetcher()
        fetch.progress = lambda label, total: Reporter(label, total, self._progress(name))
        threading.Thread(target=self._run, args=(spec, folder, fetch), name="vcamswap-model-download",
                         daemon=True).start()
        view = self.download_view()
        assert view is not None
        return view

    def _progress(self, name: str) -> Any:
        def report(done: int, total: int | None) -> None:
            self._set(Download(name, "downloading", done, total))

        return report

    def _run(self, spec: ModelSpec, folder: Path, fetcher: Fetcher) -> None:
        installer = Installer(folder, fetcher)
        try:
            path = installer.download(spec)
            self._set(Download(spec.name, "installing", spec.size, spec.size, "checked; finishing"))
            text = f"installed {spec.name} -> {path}" + batch_copy(spec, folder)
            self._verified[spec.name] = (stamp(path), "ok", "SHA-256 verified")
            self._set(Download(spec.name, "done", spec.size, spec.size, text))
            log.info("%s (from the control panel)", text)
        except Exception as e:  # a download failing must never take the daemon down; said in one line
            line = one_line(e) if isinstance(e, (ModelError, OSError)) else f"{type(e).__name__}: {one_line(e)}"
            self._set(Download(spec.name, "failed", 0, spec.size, line))
            log.warning("download of %s from the control panel failed: %s", spec.name, line)
        finally:
            installer.cleanup()


def batch_copy(spec: ModelSpec, folder: Path) -> str:
    """As `vcamswap models download`: beside a swap model that fixes batch to 1, a copy that swaps several faces
    per call. What was done, as the end of a line."""
    from vcamswap.modelstore.batch import SWAP_MODEL, ensure_batched  # onnx loads only for the swap model

    if spec.name != SWAP_MODEL:
        return ""
    result = ensure_batched(folder)
    if result.outcome == "made":
        return "; made its batched copy"
    if result.outcome == "cannot-batch":
        return f"; its graph does not batch ({result.detail})"
    return ""


def stamp(path: Path) -> tuple[int, int]:
    """(mtime in ns, size) of a file, or (0, -1) without one: a check holds while this stays."""
    try:
        st = path.stat()
    except OSError:
        return (0, -1)
    return (st.st_mtime_ns, st.st_size)
