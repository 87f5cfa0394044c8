"""Triton Inference Server, private to this process: the PyTriton models written into its repository before it
starts, served on a Unix socket in a folder only this user can enter, with no HTTP, model control off and no
secret on its command line.

Whatever reaches Triton reaches it through the socket, that is through this process (serve.gate): other users
of this machine cannot connect, load a model, or read a token from the process list, since there is none.
The proxy transport between Triton's Python stub and this process passes tensors through the Unix socket
too (PYTRITON_NO_TENSORSTORE), so no face crop is put in a shared-memory file of a name nobody could trace back
to this process after a crash; the Python backend's own shared memory is named after this process
(serve.private cleans what a killed server left).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from vcamswap.serve import private

log = logging.getLogger("vcamswap.serve")

SOCKET_NAME = "triton"  # Triton appends ":<port>" to a Unix address
SOCKET_PORT = 1
START_TIMEOUT_S = 120.0
# Triton's Python stub logs each failed request with its whole traceback; the gate says each in one line.
PER_REQUEST_ERROR = "Failed to process the request(s)"
LOG_LINE_MAX = 400
LOG_KEEP = 64 << 10  # what PyTriton keeps of Triton's log in memory
SHM_WATCH_S = 0.005
BACKEND_SHM_BYTES = 4 << 20  # the Python backend's first region per model; it grows by 1 MB steps
BACKEND_SHM_GROWTH = 1 << 20


class LaunchError(Exception):
    """Triton could not start; one line."""


class PrivateTriton:
    """Bind models (before start), start, check, stop. Not thread-safe; one per process."""

    def __init__(self, workdir: Path, metrics_port: int = 0) -> None:
        """workdir: a folder only this user can enter (serve.private.make_workdir); removed by stop."""
        from pytriton.decorators import TritonContext
        from pytriton.utils.workspace import Workspace

        os.environ["PYTRITON_NO_TENSORSTORE"] = "1"  # read by PyTriton here and by its stub inside Triton
        self.workdir = workdir
        self.workspace = Workspace(workdir / "w")
        self.metrics_port = metrics_port
        self.context = TritonContext()
        self.models: list[Any] = []
        self.server: Any = None
        self.failed = threading.Event()
        self.shm_prefix = private.shm_prefix()

    @property
    def socket(self) -> str:
        """The gRPC target of Triton's Unix socket."""
        return f"unix:{self.workspace.path / SOCKET_NAME}:{SOCKET_PORT}"

    def bind(self, model_name: str, infer_func: Callable[..., Any], inputs: Sequence[Any], outputs: Sequence[Any],
             config: Any, strict: bool = True) -> None:
        """As pytriton.triton.Triton.bind, before start: the model is written into the repository."""
        from pytriton.models.model import Model, ModelEvent

        model = Model(model_name=model_name, model_version=1, inference_fn=infer_func, inputs=inputs, outputs=outputs,
                      config=config, workspace=self.workspace, triton_context=self.context, strict=strict)

        def on_event(_model: Any, event: Any, _context: Any = None) -> None:
            if event in (ModelEvent.RUNTIME_TERMINATING, ModelEvent.RUNTIME_TERMINATED):
                self.failed.set()

        model.on_model_event(on_event)
        model.generate_model(self.workspace.model_store_path)
        self.models.append(model)

    def arguments(self, server_dir: Path) -> Any:
        """Triton's command line: nothing on it is secret."""
        from pytriton.server.python_backend_config import PythonBackendConfig
        from pytriton.server.triton_server_config import TritonServerConfig

        backend = PythonBackendConfig()
        backend["shm-region-prefix-name"] = self.shm_prefix
        backend["shm-default-byte-size"] = BACKEND_SHM_BYTES
        backend["shm-growth-byte-size"] = BACKEND_SHM_GROWTH
        c = TritonServerConfig()
        c["model-repository"] = self.workspace.model_store_path.as_posix()
        c["model-control-mode"] = "none"  # every model of the repository loaded at start; no load or unload after
        c["strict-readiness"] = True
        c["exit-on-error"] = True
        c["log-verbose"] = 0
        c["allow-http"] = False
        c["grpc-address"] = f"unix:{self.workspace.path / SOCKET_NAME}"
        c["grpc-port"] = SOCKET_PORT
        c["allow-metrics"] = self.metrics_port > 0
        if self.metrics_port > 0:
            c["metrics-address"] = "127.0.0.1"
            c["metrics-port"] = self.metrics_port
            c["allow-gpu-metrics"] = False
        c["backend-directory"] = (server_dir / "backends").as_posix()
        c["cache-directory"] = (server_dir / "caches").as_posix()
        c["backend-config"] = backend.to_list_args()
        return c

    def _server_dir(self) -> Path:
        """Triton's files, with the Python stub for this interpreter, in the workspace (as PyTriton lays them)."""
        from pytriton.triton import TRITONSERVER_DIST_DIR
        from pytriton.utils.distribution import get_stub_path

        out = self.workspace.path / "tritonserver"
        shutil.copytree(TRITONSERVER_DIST_DIR, out,
                        ignore=shutil.ignore_patterns("python_backend_stubs", "triton_python_backend_stub"))
        stub = get_stub_path(f"{sys.version_info.major}.{sys.version_info.minor}")
        shutil.copy(stub, out / "backends" / "python" / "triton_python_backend_stub")
        return out

    def start(self) -> None:
        """Start Triton and the models' proxies; LaunchError when it does not come up."""
        from pytriton.utils.distribution import get_libs_path

        server_dir = self._server_dir()
        self.server = _server_class()(path=(server_dir / "bin" / "tritonserver").as_posix(), libs_path=get_libs_path(),
                                   config=self.arguments(server_dir))
        self.server.register_on_exit(lambda *_: self.failed.set())
        started = threading.Event()
        watch = threading.Thread(target=self._protect_until, args=(started,), name="shm-protect", daemon=True)
        watch.start()
        try:
            self.server.start()
            self._wait_ready()
            for model in self.models:
                model.setup()
        finally:
            started.set()
            watch.join()
        private.protect_shm(self.shm_prefix)

    def _protect_until(self, done: threading.Event) -> None:
        """Make the Python backend's shared memory private as soon as it appears, while Triton starts."""
        while not done.wait(SHM_WATCH_S):
            private.protect_shm(self.shm_prefix)

    def _wait_ready(self) -> None:
        import tritonclient.grpc as grpcclient
        from tritonclient.utils import InferenceServerException

        client = grpcclient.InferenceServerClient(self.socket)
        deadline = time.monotonic() + START_TIMEOUT_S
        try:
            while time.monotonic() < deadline:
                if self.failed.is_set() or not self.server.is_alive():
                    raise LaunchError("Triton Inference Server stopped while starting (its log is above)")
                try:
                    if client.is_server_ready(client_timeout=1.0):
                        return
                except InferenceServerException:
                    pass
                time.sleep(0.1)
        finally:
            client.close()
        raise LaunchError(f"Triton Inference Server was not ready after {START_TIMEOUT_S:.0f} s (its log is above)")

    def is_alive(self) -> bool:
        """Whether Triton and every model's proxy run; checked every second, so shared memory made since (a
        restarted stub) is made private then."""
        private.protect_shm(self.shm_prefix)
        return (self.server is not None and self.server.is_alive() and not self.failed.is_set()
                and all(m.is_alive() for m in self.models))

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        for model in self.models:
            model.clean()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _server_class() -> type:
    """PyTriton's TritonServer with its log bounded: no per-request tracebacks, no line over LOG_LINE_MAX, and
    at most LOG_KEEP of it kept in memory (PyTriton keeps all of it)."""
    from pytriton.server.triton_server import TritonServer

    class BoundedLogTritonServer(TritonServer):
        _partial = ""  # Triton's output comes in chunks, not lines
        _skipping = False  # the rest of a line already cut short
        _tritonserver_logs: str

        def _record_logs(self, chunk: bytes | str) -> None:
            text = chunk.decode("utf-8", errors="replace") if isinstance(chunk, bytes) else chunk
            *lines, self._partial = (self._partial + text).split("\n")
            for line in lines:
                if not self._skipping:
                    self._line(line)
                self._skipping = False
            if len(self._partial) > 16 * LOG_LINE_MAX and not self._skipping:  # a line without end yet
                self._line(self._partial)
                self._partial, self._skipping = "", True
            elif self._skipping:
                self._partial = ""

        def _line(self, line: str) -> None:
            if PER_REQUEST_ERROR in line:
                return
            if len(line) > LOG_LINE_MAX:
                line = line[:LOG_LINE_MAX] + " ..."
            print(line, flush=True)
            self._tritonserver_logs = (self._tritonserver_logs + line + "\n")[-LOG_KEEP:]

    return BoundedLogTritonServer
