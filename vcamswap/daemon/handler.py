"""The control socket's requests (and the panel's, which come the same way): read from the daemon's state,
every change through the one table of intents. A bad request gets one line; nothing here can stop the daemon.
"""

from __future__ import annotations

import os

from vcamswap import __version__
from vcamswap.choices import MODEL_ENGINES, check_engine
from vcamswap.control import intents
from vcamswap.control.protocol import Reply, Request, error_reply
from vcamswap.controls import ControlState
from vcamswap.daemon import status
from vcamswap.daemon.monitor import Monitor
from vcamswap.daemon.state import DaemonState


class Handler:
    def __init__(self, st: DaemonState, monitor: Monitor) -> None:
        self.st, self.monitor = st, monitor

    def __call__(self, req: Request) -> Reply:
        st, controls = self.st, self.st.controls
        cmd = req["cmd"]
        arg = req.get("arg")
        if cmd == "ping":
            return {"ok": True, "pid": os.getpid(), "version": __version__}
        if cmd == "status":
            return status.status(st)
        if cmd == "stop":
            controls.stop()
            return {"ok": True, "pid": os.getpid(), "stopping": True}
        if st.stages is None:
            return error_reply("the daemon is still starting; try again in a moment")
        if arg is not None and not isinstance(arg, str):
            return error_reply(f"'{cmd}': the argument must be a string")
        if cmd not in intents.SOCKET_COMMANDS:
            return error_reply(f"unknown command {cmd!r}; known: {', '.join(intents.SOCKET_COMMANDS)}")
        try:
            self._check(cmd, arg)
            snap = intents.run(controls, cmd, arg)
        except ValueError as e:
            return error_reply(str(e))
        note = self._note(cmd, snap)
        return {"ok": True, **intents.controls_dict(snap), **({"note": note} if note else {})}

    def _check(self, cmd: str, arg: str | None) -> None:
        """What the intent alone cannot know: the engine in force, the faces folder, the models folder now."""
        stages, controls = self.st.stages, self.st.controls
        assert stages is not None
        if cmd == "boost" and not getattr(stages.pipeline.engine, "boosts", False):
            raise ValueError(f"pixel boost is for the inswapper engine; the {stages.pipeline.engine.name} "
                             "engine swaps at its own size")
        if cmd == "face" and arg not in (None, "", "next", "prev", "previous"):
            self.monitor.rescan_faces()  # a photo added a moment ago
            library = stages.library
            if arg not in controls.snapshot().faces and library.path_of(arg) is not None:
                raise ValueError(library.problem(arg) or f"face {arg} cannot be used")
        if cmd == "model":
            self.monitor.rescan_models()  # a model downloaded a moment ago
        if cmd == "engine":
            # the switch module loads the engines package: with the pipeline, not with the CLI
            from vcamswap.live.switch import quick_problem

            name = check_engine(arg or "")
            problem = None if name == controls.snapshot().engine else quick_problem(name, self.st.settings)
            if problem:
                raise ValueError(problem)

    def _note(self, cmd: str, snap: ControlState) -> str | None:
        """A line beside the reply: what a choice does (or not yet) with the engine in force."""
        if cmd == "model" and snap.engine not in MODEL_ENGINES:
            return (f"model {snap.model} saved; the {snap.engine} engine does not use a swap model (it applies "
                    f"with the {' or '.join(MODEL_ENGINES)} engine)")
        if cmd == "engine" and snap.engine_wanted is not None:
            return (f"building the {snap.engine_wanted} engine; the {snap.engine} engine swaps until it is ready "
                    "('vcamswap status' shows it)")
        return None
