"""The swap server (`vcamswap serve`) against hostile users of its machine, hostile clients and hostile input:
model control refused whatever the token, no secret in the process list, crops in private shared memory and
nothing left after a crash, JPEG bombs refused unread, bad settings refused in one line, refusals short and
logged in one line each. The real server (Triton through PyTriton) and the real tritonclient throughout."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from helpers.images import jpeg_declaring
from helpers.server import (
    Server,
    free_ports,
    listening_tcp_ports,
    listening_unix_paths,
    serve_python,
    shm_files,
    token_file_with,
)

from vcamswap.engines.remote import codec
from vcamswap.engines.remote.client import read_token
from vcamswap.safepath import read_at_most
from vcamswap.serve.gate import RateLimitedLog, client_line
from vcamswap.serve.server import ServeError, read_tls

grpcclient = pytest.importorskip("tritonclient.grpc", reason="pip install vcamswap[remote]")
from tritonclient.utils import InferenceServerException  # noqa: E402

TOKEN = "hostile-serve-token-5c1e9a"
HEADERS = {"triton-grpc-protocol-triton-access-token": TOKEN}
BOMB_SIDE = 20000


@pytest.fixture(scope="module")
def token_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return token_file_with(tmp_path_factory, TOKEN)


@pytest.fixture(scope="module")
def server(models_dir: Path, token_file: Path) -> Iterator[Server]:
    s = Server(models_dir, token_file, metrics=False).start()  # as a user starts it: no metrics asked for
    yield s
    s.stop()


def client(server: Server) -> grpcclient.InferenceServerClient:
    return grpcclient.InferenceServerClient(f"127.0.0.1:{server.ports[0]}")


def _input(name: str, array: np.ndarray) -> grpcclient.InferInput:
    from tritonclient.utils import np_to_triton_dtype

    t = grpcclient.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
    t.set_data_from_numpy(array)
    return t


def crop(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (codec.SWAP_SIZE, codec.SWAP_SIZE, 3), dtype=np.uint8)


def latent() -> np.ndarray:
    v = np.random.default_rng(1).standard_normal((1, codec.LATENT_SIZE)).astype(np.float32)
    return v / np.linalg.norm(v)


def swap_raw(server: Server, lat: np.ndarray) -> np.ndarray:
    r = client(server).infer(codec.SWAP_MODEL, [_input("crop", crop()[None]), _input("latent", lat)],
                             headers=HEADERS, client_timeout=60)
    out: np.ndarray = r.as_numpy("swapped")
    return out


def swap_jpeg(server: Server, data: bytes) -> np.ndarray:
    inputs = [_input("crop", np.frombuffer(data, np.uint8)), _input("latent", latent()),
              _input("quality", np.array([90], np.int32))]
    r = client(server).infer(codec.SWAP_JPEG_MODEL, inputs, headers=HEADERS, client_timeout=60)
    out: np.ndarray = r.as_numpy("swapped")
    return out


def refusal(call: object, *args: object) -> str:
    """The message of the refusal `call(*args)` must end in."""
    with pytest.raises(InferenceServerException) as e:
        call(*args)  # type: ignore[operator]
    return str(e.value.message())


# ----------------------------------------------------------------------------------------------- who can reach what


def test_only_the_gate_and_its_http_door_listen_and_triton_is_behind_a_private_socket(server: Server) -> None:
    """No metrics port unless asked: the TCP ports are the gate's and its HTTP door's (on 127.0.0.1 only,
    tests/test_remote_https.py); Triton's own socket is in a folder no other user can enter."""
    pids = server.pids()
    assert listening_tcp_ports(pids) == {server.ports[0], server.ports[2]}
    sockets = listening_unix_paths(pids)
    assert sockets, "Triton listens nowhere the tests can see"
    for path in sockets:
        parents = [p for p in Path(path).parents if p != Path("/")]
        assert any(p.stat().st_uid == os.getuid() and not p.stat().st_mode & 0o077 for p in parents), path


EVIL_CONFIG = json.dumps({
    "name": "evil", "backend": "python", "max_batch_size": 0,
    "input": [{"name": "x", "data_type": "TYPE_FP32", "dims": [1]}],
    "output": [{"name": "y", "data_type": "TYPE_FP32", "dims": [1]}]})
EVIL_MODEL = """
import pathlib
class TritonPythonModel:
    def initialize(self, args):
        pathlib.Path({marker!r}).write_text("model.py ran as the server's user")
    def execute(self, requests):
        return []
"""
HTTP_LOAD = """
import json, sys
import tritonclient.http as httpclient
port, token, config, model_py = sys.argv[1:5]
out = []
for headers in ({}, {"triton-access-token": token}):
    try:
        c = httpclient.InferenceServerClient(f"127.0.0.1:{port}", connection_timeout=10, network_timeout=10)
        c.load_model("evil", headers=headers, config=config, files={"file:1/model.py": open(model_py, "rb").read()})
        out.append("loaded")
    except Exception as e:
        out.append(type(e).__name__)
print(json.dumps(out))
"""


def test_model_control_is_refused_with_and_without_the_token(server: Server, tmp_path: Path) -> None:
    """A Python-backend model whose model.py would run as the server's user: loading it is refused on every
    port the server listens on, over gRPC and HTTP, with the token and without; nothing can be unloaded."""
    marker = tmp_path / "ran"
    model_py = tmp_path / "model.py"
    model_py.write_text(EVIL_MODEL.format(marker=str(marker)))
    files = {"file:1/model.py": model_py.read_bytes()}
    ports = listening_tcp_ports(server.pids())
    assert server.ports[0] in ports
    for port in ports:
        c = grpcclient.InferenceServerClient(f"127.0.0.1:{port}")
        for headers in ({}, HEADERS):
            with pytest.raises(InferenceServerException):
                c.load_model("evil", headers=headers, config=EVIL_CONFIG, files=files)
            with pytest.raises(InferenceServerException):
                c.unload_model(codec.SWAP_MODEL, headers=headers)
            with pytest.raises(InferenceServerException):
                c.get_model_repository_index(headers=headers)
        r = subprocess.run([str(serve_python()), "-c", HTTP_LOAD, str(port), TOKEN, EVIL_CONFIG, str(model_py)],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert "loaded" not in json.loads(r.stdout.strip().splitlines()[-1]), r.stdout
    assert not marker.exists()
    assert client(server).is_model_ready(codec.SWAP_MODEL)
    assert swap_raw(server, latent()).shape == (1, codec.SWAP_SIZE, codec.SWAP_SIZE, 3)  # inference still served


def test_no_process_shows_the_token_or_a_secret_on_its_command_line(server: Server) -> None:
    """/proc/PID/cmdline is readable by every user of the machine."""
    mine = set(server.pids())
    assert len(mine) >= 3  # the server, Triton and its stubs are all looked at
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmdline = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        assert TOKEN not in cmdline, f"pid {d.name} shows the token"
        if int(d.name) in mine:
            assert "restricted" not in cmdline and "access-token" not in cmdline, cmdline[:300]


def test_shared_memory_is_private_during_a_session(server: Server) -> None:
    swap_raw(server, latent())
    swap_jpeg(server, codec.encode_jpeg(crop(), 90))
    files = shm_files(server.pids())
    assert files, "the server maps no shared memory: nothing to look at"
    for f in files:
        st = os.stat(f)
        assert st.st_uid == os.getuid() and not st.st_mode & 0o077, f"{f} is {oct(st.st_mode & 0o777)}"


# ----------------------------------------------------------------------------------------------- bad requests


def test_refusals_are_one_short_line_without_paths(server: Server) -> None:
    bad_latent = latent()
    bad_latent[0, 7] = np.nan
    for message, says in ((refusal(swap_raw, server, bad_latent), "NaN"),
                          (refusal(swap_jpeg, server, b"\xff\xd8 not a jpeg at all"), "JPEG")):
        assert says in message, message
        assert "\n" not in message and len(message) <= 200, message
        assert "Traceback" not in message and not re.search(r"/\w+/", message) and ".py" not in message, message
    assert swap_raw(server, latent()).shape[0] == 1  # still served


def test_bad_requests_are_logged_one_short_line_each_and_rate_limited(server: Server) -> None:
    bad_latent = latent()
    bad_latent[0, 0] = np.inf
    start = len(server.log)
    sent = 0
    for i in range(60):
        if i % 2:
            refusal(swap_raw, server, bad_latent)
        else:
            refusal(swap_jpeg, server, b"garbage")
        sent += 1
    swap_raw(server, latent())  # answered after every refusal: the log of those is written by now
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any("refused" in x for x in server.log[start:]):
        time.sleep(0.05)
    new = server.log[start:]
    refusals = [x for x in new if "refused" in x]
    assert refusals, new[-10:]
    assert len(new) <= 25 < sent, new  # a burst of lines a minute, then one line saying how many more
    assert all(len(x) <= 300 for x in new) and not any("Traceback" in x or 'File "' in x for x in new), new


def test_rate_limited_log_says_how_many_it_held_back(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    limited = RateLimitedLog(burst=3, window=60.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="vcamswap.serve"):
        said = [limited.warn(f"refused {i}") for i in range(8)]
        now[0] = 61.0
        said.append(limited.warn("refused 8"))
    assert said == [True] * 3 + [False] * 5 + [True]
    assert [r.getMessage() for r in caplog.records] == [
        "refused 0", "refused 1", "refused 2", "5 more refused requests not shown", "refused 8"]


def test_client_line_keeps_the_reason_and_drops_tracebacks_and_paths() -> None:
    traceback = ('Failed to process the request(s), message: Traceback (most recent call last):\n  File '
                 '"/srv/app/site-packages/pytriton/proxy/inference.py", line 9\n'
                 "vcamswap.serve.models.Refused: the crop is not a 128x128 JPEG (no image)\n\nAt:\n  /x/model.py(4)")
    assert client_line(traceback) == "the crop is not a 128x128 JPEG (no image)"
    assert client_line("Traceback (most recent call last):\n  File \"/a/b.py\"\nKeyError: 'x'") == \
        "the server could not process the request"
    assert client_line("cannot open /home/me/secret/file.txt now") == "cannot open <path> now"
    assert client_line("the source latent holds NaN/inf values") == "the source latent holds NaN/inf values"


# ----------------------------------------------------------------------------------------------- JPEG bombs


BOMB_PROBE = """
import json, resource, sys, time
import numpy as np
from vcamswap.engines.remote import codec
data = open(sys.argv[1], "rb").read()
codec.decode_jpeg(codec.encode_jpeg(np.full((128, 128, 3), 90, np.uint8), 90))  # the decoder loaded
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
try:
    codec.decode_jpeg(data)
    error = None
except codec.CodecError as e:
    error = str(e)
seconds = time.perf_counter() - t0
print(json.dumps({"error": error, "seconds": seconds,
                  "grown_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base}))
"""


def test_a_jpeg_declaring_20000x20000_is_refused_by_the_codec_unread(tmp_path: Path) -> None:
    """The function both the server and the laptop decode crops with: peak memory of a fresh process."""
    bomb = jpeg_declaring(BOMB_SIDE, BOMB_SIDE)
    assert len(bomb) < 1000
    (tmp_path / "bomb.jpg").write_bytes(bomb)
    repo = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, "-c", BOMB_PROBE, str(tmp_path / "bomb.jpg")], capture_output=True,
                       text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(repo)})
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["error"] and f"{BOMB_SIDE}x{BOMB_SIDE}" in got["error"], got
    assert got["seconds"] < 0.05, got  # the bound asked for; decoding it takes seconds
    assert got["grown_kb"] < 32 * 1024, got  # decoding it takes over a gigabyte


def test_jpeg_sizes_are_read_from_every_frame_header_kind() -> None:
    import cv2

    image = crop()
    progressive = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes()
    for data in (codec.encode_jpeg(image, 90), progressive):
        assert codec.jpeg_size(data) == (128, 128)
        assert codec.decode_jpeg(data).shape == (128, 128, 3)
    for junk in (b"", b"\xff\xd8", b"\xff\xd8\xff\xda\x00\x02", b"GIF89a", jpeg_declaring(128, 128)[:20]):
        with pytest.raises(codec.CodecError):
            codec.decode_jpeg(junk)


def _peak_rss_kb(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        m = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
        total += int(m.group(1)) if m else 0
    return total


def test_a_jpeg_bomb_through_the_server_is_refused_fast_and_small(server: Server) -> None:
    good = codec.encode_jpeg(crop(), 90)
    control = []
    for _ in range(3):
        t0 = time.perf_counter()
        swap_jpeg(server, good)
        control.append(time.perf_counter() - t0)
    pids = server.pids()
    before = _peak_rss_kb(pids)
    t0 = time.perf_counter()
    message = refusal(swap_jpeg, server, jpeg_declaring(BOMB_SIDE, BOMB_SIDE))
    took = time.perf_counter() - t0
    assert f"{BOMB_SIDE}x{BOMB_SIDE}" in message, message
    # Under 50 ms as asked, or (on a machine too busy for that) no slower than twice an answered swap.
    assert took < max(0.05, 2 * statistics.median(control)), (took, control)
    assert _peak_rss_kb(pids) - before < 64 * 1024  # the server's peak memory did not move


# ----------------------------------------------------------------------------------------------- bad settings


def _one_error_line(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    errors = [x for x in r.stderr.strip().splitlines() if "error:" in x]
    assert len(errors) == 1, r.stderr
    return errors[0]


def _serve(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(serve_python()), "-m", "vcamswap", "serve", *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("args", [("--metrics-port", "70000"), ("--metrics-port", "-1"),
                                  ("--listen", "127.0.0.1:70000"), ("--listen", "127.0.0.1:-1")])
def test_out_of_range_ports_are_one_line(models_dir: Path, args: tuple[str, ...]) -> None:
    line = _one_error_line(_serve("--models", str(models_dir), *args))
    assert "port" in line.lower() or "HOST:PORT" in line, line


def _openssl_pair(folder: Path, name: str) -> tuple[Path, Path]:
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-days", "2", "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return cert, key


def test_a_swapped_or_mismatched_tls_pair_is_one_line_at_once(models_dir: Path, token_file: Path,
                                                              tmp_path: Path) -> None:
    import shutil

    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed (apt install openssl)")
    cert, key = _openssl_pair(tmp_path, "one")
    other_key = _openssl_pair(tmp_path, "two")[1]
    grpc_port, metrics_port = free_ports(2)
    for pair in ((key, cert), (cert, other_key)):
        line = _one_error_line(_serve("--models", str(models_dir), "--listen", f"127.0.0.1:{grpc_port}",
                                      "--metrics-port", str(metrics_port), "--tls", str(pair[0]), str(pair[1]),
                                      "--token-file", str(token_file)))
        assert "not a certificate and its key" in line or "holds no PEM" in line, line


def sparse_gigabyte(path: Path) -> Path:
    """A 1 GB file that takes no disk: reading it through would take over a gigabyte of memory."""
    with path.open("wb") as f:
        f.truncate(1 << 30)
    return path


@contextlib.contextmanager
def memory_peak() -> Iterator[list[int]]:
    """The most memory Python held in the block, in the list it yields (filled when the block ends)."""
    tracemalloc.start()
    peak: list[int] = []
    try:
        yield peak
        peak.append(tracemalloc.get_traced_memory()[1])
    finally:
        tracemalloc.stop()


def test_a_huge_token_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    big = sparse_gigabyte(tmp_path / "token")
    with memory_peak() as peak, pytest.raises(ValueError, match=r"over \d+ bytes, not a token file") as e:
        read_token(big)
    assert "\n" not in str(e.value)
    assert peak[0] < 1 << 20, peak
    line = _one_error_line(_serve("--token-file", str(big)))
    assert "token file" in line, line



def test_a_huge_pem_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    big = sparse_gigabyte(tmp_path / "cert.pem")
    with memory_peak() as peak, pytest.raises(ServeError, match=r"^--tls: the certificate \S+ is over 1 MB, not a PEM"):
        read_tls(big, big)
    assert peak[0] < 4 << 20, peak  # the 1 MB read to tell


def test_a_small_file_is_read_whole_up_to_its_limit(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_bytes(b"x" * 10)
    assert read_at_most(path, 10) == b"x" * 10 and read_at_most(path, 9) is None
    with pytest.raises(OSError):
        read_at_most(tmp_path / "missing", 10)


# ----------------------------------------------------------------------------------------------- after a crash


def test_a_killed_server_leaves_nothing_after_the_next_start(server: Server) -> None:
    """Last in the module: kill -9 of the whole server, then a new start removes what the old one left."""
    swap_jpeg(server, codec.encode_jpeg(crop(), 90))
    pids = server.pids()
    files = shm_files(pids)
    folders = {str(Path(p).parent) for p in listening_unix_paths(pids)}
    assert files and folders
    server.kill()
    assert all(Path(f).exists() for f in files)  # kill -9 leaves them: there is something to clean
    server.start()
    assert not [f for f in files if Path(f).exists()]
    assert not [d for d in folders if Path(d).exists()]
    for f in shm_files(server.pids()):
        assert not os.stat(f).st_mode & 0o077, f
