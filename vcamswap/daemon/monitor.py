"""The daemon's monitor thread: the faces folder rescanned, what limits each photo, the tray's view
refreshed, and the choices made while running saved to the settings file. It reads the daemon's state."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from vcamswap.controls import ControlState
from vcamswap.daemon.state import DaemonState
from vcamswap.daemon.status import tray_view

log = logging.getLogger("vcamswap.daemon")

FACES_POLL_S = 2.0
MONITOR_PERIOD_S = 1.0


class Monitor:
    """Runs in its own thread until the controls stop; wake() makes it act now rather than next period."""

    def __init__(self, st: DaemonState) -> None:
        self.st = st
        self._photo_notes: dict[str, str] = {}  # photo digest -> what limits it ('' for nothing)
        self._pending: dict[str, object] = {}
        self._pending_lock = threading.Lock()
        self._wake = threading.Event()
        self._failures: set[str] = set()  # what a step raised, said once
        self._save_problem: str | None = None  # why the last save failed, said once until one works
        self._digests: dict[str, str] = {}  # usable face name -> its photo's digest, as of the last rescan

    def wake(self) -> None:
        self._wake.set()

    def run(self) -> None:
        st = self.st
        self._guarded(self.note_faces)  # here, not at start-up: the first frame never waits for the photos' reports
        next_faces = 0.0
        while st.controls.snapshot().running:
            now = time.monotonic()
            if now >= next_faces:
                self._guarded(self.rescan_faces)
                self._guarded(self.rescan_models)
                next_faces = now + FACES_POLL_S
            self._guarded(self.show_tray)
            self._guarded(self.save_pending)
            self._wake.wait(MONITOR_PERIOD_S)
            self._wake.clear()

    def _guarded(self, step: Callable[[], object]) -> None:
        """Run one step of the period; whatever it raises is said in one line (once while it repeats) and the
        thread goes on: without it, photos would no longer be seen and choices no longer saved."""
        try:
            step()
        except Exception as e:
            line = f"{type(e).__name__}: {e}".splitlines()[0] if str(e) else type(e).__name__
            if line not in self._failures:
                self._failures.add(line)
                log.warning("the monitor: %s; going on", line)

    def show_tray(self) -> None:
        tray = self.st.tray
        if tray is not None:
            tray.show(tray_view(self.st))

    def rescan_faces(self) -> None:
        st = self.st
        if st.stages is None:
            return
        from vcamswap.live.build import usable_faces

        library = st.stages.library
        library.refresh()
        st.stages.sources.rescan()
        try:
            names = tuple(usable_faces(library))  # a photo that cannot be used is never offered
        except OSError as e:
            log.debug("faces folder: %s", e)
            return
        if names != st.controls.snapshot().faces:
            old = st.controls.snapshot().face
            new = st.controls.set_faces(names, lambda gone: self._moved(gone, names)).face
            if old != new and old is not None:
                if new is not None and library.digest_of(new) == self._digests.get(old):
                    log.info("face %s is now called %s", old, new)
                else:
                    log.info("face %s is gone; now using %s", old, new or "none")
            self.note_faces()
        self._digests = {n: d for n in names if (d := library.digest_of(n)) is not None}

    def rescan_models(self) -> None:
        """Which swap models the models folder holds now (a few stat calls): a model downloaded while running
        appears in the tray's Model menu and can be chosen."""
        from vcamswap.modelstore.installed import model_files

        self.st.controls.set_swap_models(model_files(self.st.settings.models_dir()))

    def _moved(self, gone: str, names: tuple[str, ...]) -> str | None:
        """The name the photo of the face `gone` has now (it was renamed), or None when no photo has its content."""
        digest = self._digests.get(gone)
        assert self.st.stages is not None
        library = self.st.stages.library
        return next((n for n in names if n not in self._digests and library.digest_of(n) == digest), None) \
            if digest is not None else None

    def note_faces(self) -> None:
        """What limits each photo, for the tray (said once per photo in the log too)."""
        from vcamswap.engines.lite.quality import photo_note

        st = self.st
        if st.stages is None:
            return
        library = st.stages.library
        notes: list[tuple[str, str]] = []
        known: dict[str, str] = {}
        for name in st.controls.snapshot().faces:
            digest = library.digest_of(name)
            line = None if digest is None else known.get(digest, self._photo_notes.get(digest))
            if line is None:  # a photo not seen before: analysed (once) and reported
                face = library.get(name)
                if face is None:
                    continue
                digest, line = face.digest, photo_note(face.image, face.geometry)
                if line:
                    log.info("face %s: %s", name, line)
            known[digest or ""] = line
            if line:
                notes.append((name, line))
        self._photo_notes = known  # none kept for photos gone or replaced
        st.controls.set_face_notes(notes)

    def on_change(self, old: ControlState, new: ControlState) -> None:
        changed: dict[str, object] = {}
        if old.face != new.face and new.face is not None:
            changed["face"] = new.face
        if old.preset != new.preset:
            changed["preset"] = new.preset
        if old.likeness != new.likeness:
            changed["likeness"] = new.likeness
        if old.targets != new.targets:
            changed["targets"] = new.targets
        if old.swap_enabled != new.swap_enabled:
            changed["swap"] = new.swap_enabled
        if old.model != new.model:
            changed["model"] = new.model
        if old.engine != new.engine:  # an engine switched to while running, once it is in force
            changed["engine"] = new.engine
        for knob in ("occlusion", "enhance", "boost"):
            if getattr(old, knob) != getattr(new, knob) and getattr(new, knob) is not None:
                changed[knob] = getattr(new, knob)
        if old.label_on != new.label_on:
            changed["label"] = new.label_text if new.label_on else ""
        if changed:
            with self._pending_lock:
                self._pending.update(changed)
            self._wake.set()

    def save_pending(self) -> None:
        st = self.st
        with self._pending_lock:
            pending, self._pending = self._pending, {}
        if not pending or st.settings_file is None:
            return
        face = pending.get("face")
        # Only a face of the folder is saved: a photo given by path (or the demo) may not be there next time.
        if isinstance(face, str) and st.stages is not None and not st.stages.library.in_folder(face):
            del pending["face"]
        try:
            st.settings_file.save_changes(pending)
        except Exception as e:  # a file being edited can be anything: one line, and the next change tries again
            from vcamswap.settings import settings_problem

            path = st.settings_file.path
            problem = settings_problem(path) or f"{path}: cannot be read ({type(e).__name__}: {e})".splitlines()[0]
            if problem != self._save_problem:
                log.warning("settings not saved: %s (the file is left as it is)", problem)
            self._save_problem = problem
        else:
            self._save_problem = None
