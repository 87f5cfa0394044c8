"""The remote engine against a real Triton server (`vcamswap serve` through PyTriton) serving the stand-in
models: the same swap as the local neural engine, the token enforced, two clients batched together, the
server killed and restarted mid-stream, and pipelining under 80 ms of added round trip (netem)."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from helpers.faces import face_of, read
from helpers.frames import read_frames
from helpers.media import media_path
from helpers.pipeline import Driven, build
from helpers.server import Server, free_ports, token_file_with
from helpers.tls import make_ca, make_server_cert

from vcamswap.compose.align import align
from vcamswap.compose.blend import finish
from vcamswap.engines import EngineError, EngineUnavailable, SwapItem, create_engine
from vcamswap.engines.fallback import FallbackEngine
from vcamswap.engines.inswapper import InswapperEngine
from vcamswap.engines.neural import swap_template
from vcamswap.engines.remote import codec
from vcamswap.engines.remote.engine import RemoteEngine
from vcamswap.faces.analyzer import FaceAnalyzer
from vcamswap.faces.detector import BlazeFaceDetector
from vcamswap.faces.landmarker import FaceMesh
from vcamswap.presets import get_preset
from vcamswap.types import FaceGeometry, Frame, SwapOutput

pytest.importorskip("tritonclient.grpc", reason="tritonclient is not installed: pip install 'vcamswap[remote]'")

SOURCE = "faces/single/biden.jpg"
TARGET = "faces/resolution_ladder/obama-720p.jpg"
WEBCAM = "videos/webcam/webcam_640x480_30fps_s18_woman.mp4"
TOKEN = "s3cret-token-for-tests"


@pytest.fixture(scope="module")
def token_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return token_file_with(tmp_path_factory, TOKEN)


@pytest.fixture(scope="module")
def server(models_dir: Path, token_file: Path) -> Iterator[Server]:
    # A 5 ms queue delay lets the batcher join requests of concurrent clients even on a busy 2-core machine.
    s = Server(models_dir, token_file, extra=("--queue-delay-us", "5000")).start()
    yield s
    s.stop()


def remote(server: Server, token_file: Path | None, **options: object) -> RemoteEngine:
    engine = create_engine("remote", server=server.url, token_file=token_file, **options)
    assert isinstance(engine, RemoteEngine)
    return engine


def target_crop(analyzer: FaceAnalyzer, media: Path) -> tuple[np.ndarray, FaceGeometry]:
    image = read(media, TARGET)
    face = face_of(analyzer, image)
    crop, m = align(image, face.kps, swap_template(128), 128)
    return crop, face.transformed(m)


# ----------------------------------------------------------------------------------------------- the swap


def test_remote_swap_equals_the_local_swap_of_the_same_crop(
    server: Server, token_file: Path, models_dir: Path, analyzer: FaceAnalyzer, media: Path
) -> None:
    local = InswapperEngine(models_dir, provider="cpu", threads=1)
    engine = remote(server, token_file, codec_name="raw")
    source_image = read(media, SOURCE)
    source_face = face_of(analyzer, source_image)
    lsrc, rsrc = local.prepare_source(source_image, source_face), engine.prepare_source(source_image, source_face)
    assert rsrc.latent is not None
    np.testing.assert_allclose(rsrc.latent, lsrc.latent, atol=1e-5)
    crop, face = target_crop(analyzer, media)
    preset = get_preset("balanced")
    want = local.swap(crop, face, lsrc, preset)
    got = engine.swap_many([SwapItem(crop, face, rsrc)], preset)[0]
    assert np.array_equal(got.crop, want.crop)
    assert np.array_equal(got.mask, want.mask)
    assert float(np.abs(got.crop.astype(int) - crop.astype(int)).mean()) > 5  # the swap changed the crop
    # The same source again: the latent comes from memory, the same object as before.
    assert engine.prepare_source(source_image, source_face).latent is rsrc.latent
    jpeg = remote(server, token_file, codec_name="jpeg:90").swap(crop, face, rsrc, preset)
    assert float(np.abs(jpeg.crop.astype(int) - want.crop.astype(int)).mean()) < 3.0
    engine.close()


def test_bad_crops_are_one_line_engine_errors(server: Server, token_file: Path, analyzer: FaceAnalyzer,
                                              media: Path) -> None:
    engine = remote(server, token_file)
    source_image = read(media, SOURCE)
    src = engine.prepare_source(source_image, face_of(analyzer, source_image))
    crop, face = target_crop(analyzer, media)
    with pytest.raises(EngineError, match=r"128x128x3 uint8") as e:
        engine.swap(crop[:64], face, src, get_preset("fast"))
    assert "\n" not in str(e.value)
    assert engine.swap(crop, face, src, get_preset("fast")).crop.shape == (128, 128, 3)  # still served


# ----------------------------------------------------------------------------------------------- the token


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_a_missing_or_wrong_token_is_refused_in_one_line(server: Server, tmp_path: Path, token: str | None) -> None:
    token_file = None
    if token is not None:
        token_file = tmp_path / "token"
        token_file.write_text(token)
    with pytest.raises(EngineUnavailable) as e:
        create_engine("remote", server=server.url, token_file=token_file)
    assert "refused the token" in str(e.value) and "\n" not in str(e.value)


def test_run_refuses_a_missing_token_in_one_line(server: Server, media: Path, tmp_path: Path) -> None:
    from helpers.cli import run_cli

    out = tmp_path / "out.mp4"
    r = run_cli("run", "--engine", "remote", "--server", server.url, "--input", str(media / WEBCAM),
                "--output", str(out), "--max-frames", "3", "--no-adaptive", timeout=120)
    lines = [x for x in r.stderr.splitlines() if "refused the token" in x]
    assert r.returncode != 0 and len(lines) == 1 and lines[0].startswith("vcamswap: error:"), r.stderr
    assert "Traceback" not in r.stderr and not out.exists()


def test_doctor_checks_the_server_the_token_and_the_models(server: Server, token_file: Path, tmp_path: Path) -> None:
    from vcamswap.checks import Context
    from vcamswap.engines.remote.checks import check_remote
    from vcamswap.settings import Settings

    def lines(**settings: object) -> list[str]:
        out = check_remote(Context(Settings(engine="remote", **settings), tmp_path / "s.toml"))  # type: ignore[arg-type]
        return [("ok " if x.ok else "problem ") + x.text for x in out]

    first, transport = lines(server=server.url, token_file=str(token_file), remote_codec="raw")
    assert first == f"ok {server.url} answers, takes the token and serves vcamswap_swap (raw crops)"
    assert transport.startswith("ok gRPC (Triton's gRPC): swap round trip ")
    wrong = tmp_path / "wrong"
    wrong.write_text("nope")
    (line,) = lines(server=server.url, token_file=str(wrong))
    assert line.startswith("problem") and "refused the token" in line
    (line,) = lines(server=f"grpc://127.0.0.1:{free_ports(1)[0]}", token_file=str(token_file))
    assert line.startswith("problem") and "127.0.0.1" in line


# ----------------------------------------------------------------------------------------------- two clients


def _metric(text: str, name: str, model: str) -> float:
    m = re.search(rf'^{name}{{[^}}]*model="{model}"[^}}]*}} (\S+)$', text, re.M)
    assert m, f"{name} for {model} not in the metrics"
    return float(m.group(1))


def test_two_clients_at_once_are_both_served_in_shared_batches(
    server: Server, token_file: Path, analyzer: FaceAnalyzer, media: Path
) -> None:
    text = urllib.request.urlopen(server.metrics_url, timeout=5).read().decode()
    req0 = _metric(text, "nv_inference_request_success", "vcamswap_swap")
    exe0 = _metric(text, "nv_inference_exec_count", "vcamswap_swap")
    clients = [remote(server, token_file, codec_name="raw"), remote(server, token_file, codec_name="raw")]
    source_image = read(media, SOURCE)
    source_face = face_of(analyzer, source_image)
    sources = [c.prepare_source(source_image, source_face) for c in clients]
    crop, face = target_crop(analyzer, media)
    preset = get_preset("fast")
    per_client = 24

    def work(i: int) -> np.ndarray:
        c = clients[i % 2]
        return c.swap_many([SwapItem(crop, face, sources[i % 2])], preset)[0].crop

    with ThreadPoolExecutor(max_workers=8) as pool:  # 4 in flight per client, as the live loop keeps them
        results = list(pool.map(work, range(2 * per_client)))
    assert all(np.array_equal(r, results[0]) for r in results)
    text = urllib.request.urlopen(server.metrics_url, timeout=5).read().decode()
    requests = _metric(text, "nv_inference_request_success", "vcamswap_swap") - req0
    executions = _metric(text, "nv_inference_exec_count", "vcamswap_swap") - exe0
    assert requests == 2 * per_client
    assert executions < requests, "no two requests were ever joined in one model call"


# ----------------------------------------------------------------------------------------------- pipelining


def _netns_with_netem(name: str) -> str | None:
    """Make network namespace `name` with 40 ms of netem on its loopback (80 ms round trip); why not, or None."""
    if shutil.which("ip") is None or shutil.which("tc") is None:
        return "ip/tc (iproute2) are not installed"
    steps = [["ip", "netns", "add", name], ["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"],
             ["ip", "netns", "exec", name, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "40ms"]]
    for cmd in steps:
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
            return f"{' '.join(cmd[:3])}... failed: {r.stderr.strip() or r.returncode}"
    return None


PIPELINE_PROBE = """
import json, sys, time
from vcamswap.engines.remote.measure import pipelined_rate
print(json.dumps(pipelined_rate(sys.argv[1], sys.argv[2], seconds=4.0, in_flight=int(sys.argv[3]))))
"""


# Four requests in flight against one at a time, through the same delay in the same test: a ratio, so a busy
# machine cannot trip it (about 3.8 measured with two busy loops beside it; 1 if the requests did not overlap).
PIPELINED = 2.5


def test_pipelining_through_a_delay_relay_multiplies_the_swap_rate_with_80ms_added(server: Server,
                                                                                   token_file: Path) -> None:
    """The same, everywhere: a TCP relay holds every byte 40 ms each way (real sockets, the real server)."""
    from vcamswap.engines.remote.measure import pipelined_rate
    from vcamswap.tools.bench.delay import start_relay

    relay = start_relay("127.0.0.1", server.ports[0], 0.040)
    try:
        url = f"grpc://127.0.0.1:{relay.port}"
        one = pipelined_rate(url, token_file, seconds=3.0, in_flight=1, codec_name="raw")
        four = pipelined_rate(url, token_file, seconds=3.0, in_flight=4, codec_name="raw")
    finally:
        relay.stop.set()
    assert one["rtt_ms_p50"] >= 80, one  # the delay is really there
    assert one["swaps_per_s"] < 13, one  # one at a time: bound by the round trip
    # Four in flight: four round trips overlap (the clip's 30 fps on an idle machine), whatever the load.
    assert four["swaps_per_s"] >= PIPELINED * one["swaps_per_s"], (one, four)
    assert one["errors"] == four["errors"] == 0


def test_pipelining_multiplies_the_swap_rate_with_80ms_round_trip(models_dir: Path, token_file: Path,
                                                                  tmp_path: Path) -> None:
    name = f"vcs-remote-{int(time.time() * 1000) % 10**8}"
    why = _netns_with_netem(name)
    if why:
        pytest.skip(f"no netem in a network namespace here ({why})")
    try:
        prefix = ("ip", "netns", "exec", name)
        srv = Server(models_dir, token_file, prefix=prefix).start()
        try:
            import json

            out = {}
            for in_flight in (1, 4):
                r = subprocess.run([*prefix, sys.executable, "-c", PIPELINE_PROBE, srv.url, str(token_file),
                                    str(in_flight)], capture_output=True, text=True, timeout=120)
                assert r.returncode == 0, r.stderr
                out[in_flight] = json.loads(r.stdout.strip().splitlines()[-1])
        finally:
            srv.stop()
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
    assert out[1]["rtt_ms_p50"] >= 75, out  # the delay is really there
    assert out[1]["swaps_per_s"] < 14, out  # one at a time: bound by the round trip
    assert out[4]["swaps_per_s"] >= PIPELINED * out[1]["swaps_per_s"], out  # four round trips overlap


def test_the_server_refuses_off_loopback_without_tls_or_token(models_dir: Path) -> None:
    from helpers.server import serve_python

    py = serve_python()
    r = subprocess.run([str(py), "-m", "vcamswap", "serve", "--models", str(models_dir), "--listen", "0.0.0.0:18991"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--tls CERT KEY" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([str(py), "-m", "vcamswap", "serve", "--models", str(models_dir), "--listen", "0.0.0.0:18991",
                        "--insecure"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "token" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_the_server_on_a_python_without_shared_libpython_says_so_in_one_line(models_dir: Path) -> None:
    import sysconfig

    if sysconfig.get_config_var("Py_ENABLE_SHARED"):
        pytest.skip("this test Python has a shared libpython")
    r = subprocess.run([sys.executable, "-m", "vcamswap", "serve", "--models", str(models_dir), "--listen",
                        "127.0.0.1:18992"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "shared libpython" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_bench_realtime_passes_report_late_and_stale_swaps(server: Server, token_file: Path, media: Path,
                                                           tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`vcamswap bench --realtime` of the remote engine with 60 ms added each way: swaps come back frames after
    the frame they were cut from, and the table and JSON say how many (and how many faces were held back)."""
    from vcamswap.cli import main

    out = tmp_path / "bench.json"
    rc = main(["bench", "--engine", "remote", "--server", server.url, "--token-file", str(token_file),
               "--remote-codec", "raw", "--input", str(media / WEBCAM), "--frames", "45", "--preset", "fast",
               "--tracking", "on", "--realtime", "--no-throughput", "--steady-frames", "30", "--delay-ms", "0,60",
               "--no-remote-rates", "--json", str(out)])
    assert rc == 0
    data = json.loads(out.read_text())
    assert "remote" not in data  # --no-remote-rates: no swaps/s figures
    runs = {r["config"]["label"]: r["realtime"] for r in data["runs"]}
    assert set(runs) == {"remote+0ms/fast/track", "remote+60ms/fast/track"}
    slow = runs["remote+60ms/fast/track"]
    swaps = slow["engine_runs_per_frame"] * slow["frames"]
    assert slow["stage_ms"]["engine"]["median"] >= 120, slow["stage_ms"]  # the delay is really there
    # A swap takes 4 frame times or more: each one that was pasted was pasted late (else it was held back).
    assert 0 < slow["late"] <= swaps + 1 and slow["late"] + slow["stale"] >= swaps / 2, slow
    assert all(isinstance(r["late"], int) and isinstance(r["stale"], int) for r in runs.values())
    lines = capsys.readouterr().out.strip().splitlines()
    header = lines[-4].split()
    assert header[:8] == ["config", "fps", "rt", "fps", "p95", "ms", "drop", "late"] and header[8] == "stale"
    for row in lines[-2:]:
        cells = row.split()
        rt = runs[cells[0]]
        assert (int(cells[5]), int(cells[6])) == (rt["late"], rt["stale"]), row


# ----------------------------------------------------------------------------------------------- TLS


def _one_error_line(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vcamswap: error: remote: "), r.stderr
    return lines[0]


def test_tls_end_to_end_with_a_private_ca(models_dir: Path, token_file: Path, server: Server, analyzer: FaceAnalyzer,
                                          media: Path, tmp_path: Path) -> None:
    """`serve --tls` with a certificate of a CA made here: the client given the CA swaps; without it, with the
    wrong CA, or with grpc:// for grpcs:// (and the reverse), it stops with one line saying which."""
    from helpers.cli import run_cli

    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed (apt install openssl)")
    ca = make_ca(tmp_path, "vcamswap-test-ca")
    cert, key = make_server_cert(tmp_path, ca)
    other_ca = make_ca(tmp_path, "another-ca")[0]
    srv = Server(models_dir, token_file, extra=("--tls", str(cert), str(key))).start()
    try:
        url = srv.url
        assert url.startswith("grpcs://")
        assert any(f"--server {url}" in line for line in srv.log)  # the line to give the laptop says grpcs
        common = ("--engine", "remote", "--token-file", str(token_file), "--input", str(media / WEBCAM),
                  "--max-frames", "6", "--no-adaptive")
        out = tmp_path / "out.mp4"
        r = run_cli("run", *common, "--server", url, "--server-ca", str(ca[0]), "--output", str(out), timeout=180)
        assert r.returncode == 0, r.stderr
        done = re.search(r"frames=(\d+) swapped=(\d+)", r.stdout)
        assert done and int(done.group(1)) == 6 and int(done.group(2)) >= 5, r.stdout
        assert out.stat().st_size > 0

        line = _one_error_line(run_cli("run", *common, "--server", url, "--output", str(tmp_path / "a.mp4")))
        assert "not signed by a CA this machine trusts" in line and "--server-ca" in line
        plain = f"grpc://127.0.0.1:{srv.ports[0]}"
        line = _one_error_line(run_cli("run", *common, "--server", plain, "--output", str(tmp_path / "b.mp4")))
        assert f"speaks TLS; use {url}" in line
        assert not (tmp_path / "a.mp4").exists() and not (tmp_path / "b.mp4").exists()

        # The same checks in the engine, and the swap over TLS equals the swap over plain gRPC.
        with pytest.raises(EngineUnavailable, match=r"not signed by the CA in .*another-ca\.pem"):
            create_engine("remote", server=url, token_file=token_file, ca_file=str(other_ca))
        with pytest.raises(EngineUnavailable, match=r"holds no PEM certificate"):
            create_engine("remote", server=url, token_file=token_file, ca_file=str(key))
        with pytest.raises(EngineUnavailable, match=rf"does not speak TLS; use {re.escape(server.url)}"):
            create_engine("remote", server=server.url.replace("grpc://", "grpcs://"), token_file=token_file)
        over_tls = remote(srv, token_file, codec_name="raw", ca_file=str(ca[0]))
        plain_engine = remote(server, token_file, codec_name="raw")
        source_image = read(media, SOURCE)
        source_face = face_of(analyzer, source_image)
        crop, face = target_crop(analyzer, media)
        preset = get_preset("fast")
        got = over_tls.swap(crop, face, over_tls.prepare_source(source_image, source_face), preset)
        want = plain_engine.swap(crop, face, plain_engine.prepare_source(source_image, source_face), preset)
        assert np.array_equal(got.crop, want.crop) and float(np.abs(got.crop.astype(int) - crop).mean()) > 5
        over_tls.close()
        plain_engine.close()
    finally:
        srv.stop()


# ----------------------------------------------------------------------------------------------- the server goes away


def test_killing_the_server_mid_stream_keeps_publishing_and_resumes(
    server: Server, token_file: Path, media: Path, detector: BlazeFaceDetector, mesh: FaceMesh, tmp_path: Path
) -> None:
    """Last in the module: it kills the module's server and starts it again on the same ports."""
    remote_engine = remote(server, token_file, timeout=AWAY_TIMEOUT_S)
    engine = FallbackEngine(remote_engine, create_engine("lite"))
    driven = build(engine, detector, mesh, tmp_path / "faces", str(media / SOURCE), preset="fast")
    frames = read_frames(media / WEBCAM, 40)
    seq = iter(range(10**6))

    def step() -> tuple[bool, int]:
        i = next(seq)
        result = driven.process(Frame(frames[i % len(frames)], i, time.perf_counter()))
        return result.swapped, engine.crop_size(get_preset("fast"))

    assert step() == (True, 128)  # swapped by the server
    server.kill()
    deadline = time.monotonic() + HANG_S  # bounds a hang only: a busy machine takes what it takes
    sizes = {128}
    while 192 not in sizes and time.monotonic() < deadline:  # the stream goes on until lite takes over
        sizes.add(step()[1])
    assert 192 in sizes, "the lite engine never took over"
    assert step() == (True, 192)  # swapped here while the server is away
    away_s, network_s = away_and_network_call(remote_engine, driven, server.ports[0])
    assert away_s < network_s / 10, f"a frame while away took {away_s:.3f} s; a call that waits took {network_s:.3f} s"
    server.start()
    deadline = time.monotonic() + HANG_S
    resumed = False
    while not resumed and time.monotonic() < deadline:
        resumed = step() == (True, 128)
        time.sleep(0.02)
    assert resumed, "the server's swaps never came back"


def test_the_fallback_finishes_each_swap_as_the_engine_that_made_it(analyzer: FaceAnalyzer, media: Path) -> None:
    """While the server is away the lite engine swaps, and its output is finished as the lite engine finishes
    it (relit from the camera's skin, the camera's features laid back); a crop cut for the server is finished
    as a whole-face swap. The control: the whole-face finish of the lite output is another picture."""
    away = create_engine("remote", server=f"grpc://127.0.0.1:{free_ports(1)[0]}", timeout=AWAY_TIMEOUT_S)
    assert isinstance(away, RemoteEngine)
    engine = FallbackEngine(away, create_engine("lite"))
    try:
        preset = get_preset("fast")
        size = engine.crop_size(preset)
        assert size != codec.SWAP_SIZE  # the server is away: the crop is cut for the lite engine
        image, source_image = read(media, TARGET), read(media, SOURCE)
        face = face_of(analyzer, image)
        crop, m = align(image, face.kps, engine.template(size), size)
        in_crop = face.transformed(m)
        out = engine.swap(crop, in_crop, engine.prepare_source(source_image, face_of(analyzer, source_image)), preset)
        got = engine.finish(out, crop, preset, in_crop.points, None)
        want = engine.lite.finish(out, crop, preset, in_crop.points, None)
        assert np.array_equal(got.crop, want.crop) and np.array_equal(got.mask, want.mask)
        assert not np.array_equal(got.crop, finish(out, crop, preset, in_crop.points, None).crop)
        served, _ = target_crop(analyzer, media)
        painted = SwapOutput(255 - served, np.ones(served.shape[:2], np.float32))
        got = engine.finish(painted, served, preset, None, None)
        assert np.array_equal(got.crop, finish(painted, served, preset, None, None).crop)
    finally:
        engine.close()


AWAY_TIMEOUT_S = 3.0  # the remote engine's bound on a call in the test above, which the control call waits out
HANG_S = 60.0


def away_and_network_call(remote_engine: RemoteEngine, driven: Driven, port: int) -> tuple[float, float]:
    """Seconds a swap takes while the server is away, and (the control) seconds a call that goes out on the
    network takes: the server's port now takes connections and never answers, so a call that went out
    waits the whole timeout."""
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    src = driven.source(driven.controls.snapshot().face or "")
    assert src is not None
    crop = np.zeros((128, 128, 3), np.uint8)
    with socket.socket() as hole:
        hole.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        hole.bind(("127.0.0.1", port))
        hole.listen(64)
        # A channel of its own (gRPC otherwise shares the engine's connection, failed at once while away).
        control = grpcclient.InferenceServerClient(f"127.0.0.1:{port}",
                                                   channel_args=[("grpc.use_local_subchannel_pool", 1)])
        try:
            t0 = time.perf_counter()
            with pytest.raises(InferenceServerException):
                control.is_server_live(client_timeout=AWAY_TIMEOUT_S)
            network_s = time.perf_counter() - t0
        finally:
            control.close()
        t0 = time.perf_counter()
        with pytest.raises(EngineError):
            remote_engine.swap(crop, src.face.geometry, src.payload.remote, get_preset("fast"))
        away_s = time.perf_counter() - t0
    return away_s, network_s


def test_a_running_lite_daemon_switches_to_the_server_and_back(server: Server, token_file: Path,
                                                              tmp_path: Path) -> None:
    """`vcamswap engine remote` on a lite daemon given a server: the remote engine is built (its server reached)
    while lite goes on publishing, then swaps frames on the server; `engine lite` brings lite back."""
    from daemon_util import default_args, running_daemon, wait_until

    faces = tmp_path / "data" / "faces"
    faces.mkdir(parents=True)
    shutil.copy(media_path(SOURCE), faces / "biden.jpg")
    args = default_args() + ["--server", server.url, "--token-file", str(token_file), "--preset", "fast"]
    with running_daemon(tmp_path, args) as d:
        assert d.status()["engine"] == "lite"
        published = d.vcam_frames()
        assert d.request("engine", "remote")["engine_pending"] == "remote"
        wait_until(lambda: d.status()["engine"] == "remote", "the remote engine in force")
        assert d.vcam_frames() > published
        st = wait_until(lambda: (s := d.status())["remote"]["healthy"] and s.get("stage_ms", {}).get("engine")
                        and s, "swaps answered by the server")
        assert st["remote"]["server"] == server.url
        r = d.cli("engine", "lite")
        assert r.returncode == 0 and r.stdout.strip().splitlines()[-1] == "engine lite in force", r.stderr
        frames = d.vcam_frames()
        wait_until(lambda: d.vcam_frames() > frames + 10, "frames published by lite again")
        assert "remote" not in d.status()


def test_tray_and_status_show_the_server_its_round_trip_and_when_it_is_away(server: Server, token_file: Path,
                                                                          tmp_path: Path) -> None:
    """The daemon with the real tray under Xvfb, after the restart above: its menu line, tooltip and `vcamswap
    status` say where the server is and how fast it answers; the server killed, that it is away, while frames
    keep reaching the virtual camera. Kills the module's server for good."""
    from daemon_util import (
        DaemonProcess,
        default_args,
        gtk_tray_desktop,
        tray_choose,
        tray_tooltip,
        wait_until,
    )

    faces = tmp_path / "data" / "faces"
    faces.mkdir(parents=True)
    shutil.copy(media_path(SOURCE), faces / "biden.jpg")
    args = [a for a in default_args() if a != "--no-tray"]
    args += ["--engine", "remote", "--server", server.url, "--token-file", str(token_file), "--preset", "fast"]
    with gtk_tray_desktop() as env:
        d = DaemonProcess(tmp_path, args, env).start()
        try:
            wait_until(lambda: "tray icon ready (gtk)" in d.log(), "tray icon ready")
            st = wait_until(lambda: (s := d.status()).get("stage_ms", {}).get("engine") and s, "swaps answered")
            info = st["remote"]
            assert st["engine"] == "remote" and info["server"] == server.url and info["healthy"] is True
            assert info["fallback"] == "passthrough" and info["rtt_ms"] > 0, info
            assert re.fullmatch(rf"Server {re.escape(server.url)} — \d+ ms", info["line"]), info
            wait_until(lambda: re.search(r" · server \d+ ms", tray_tooltip(env)), "the round trip in the tooltip")
            r = d.cli("status")
            assert r.returncode == 0 and json.loads(r.stdout)["remote"]["server"] == server.url, r.stderr
            # The server's line is shown but cannot be chosen: the first item a key reaches is still Swap.
            tray_choose(env, ["Down", "Return"])
            wait_until(lambda: d.status()["swap"] is False, "the menu turned the swap off")
            tray_choose(env, ["Down", "Return"])
            wait_until(lambda: d.status()["swap"] is True, "the menu turned the swap on")

            server.kill()
            away = wait_until(lambda: not (s := d.status())["remote"]["healthy"] and s, "status: server away")
            assert away["remote"]["line"] == "Server away — passing through"
            wait_until(lambda: tray_tooltip(env).endswith(" · server away"), "the tooltip says the server is away")
            frames = d.vcam_frames()
            wait_until(lambda: d.vcam_frames() > frames + 15, "frames reaching the virtual camera while away")
            assert d.stop() == 0
        finally:
            d.kill()

