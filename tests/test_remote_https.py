"""The HTTPS transport: the swap server's HTTP door (KServe v2 on 127.0.0.1) behind a real TLS-terminating reverse
proxy (Debian's nginx, a certificate of a CA made here with openssl), the remote engine speaking https:// to it,
tritonclient.http speaking to the door, the same refusals as the gRPC gate, and `serve --tunnel` with a
stand-in cloudflared at the OS boundary (tests/tunnel_stub). The real server (Triton through PyTriton) with
the stand-in models throughout."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from helpers.faces import face_of, read
from helpers.images import jpeg_declaring
from helpers.server import Server, free_ports, serve_python, token_file_with
from helpers.tls import Nginx, make_ca, make_server_cert, need_openssl, start_nginx

from vcamswap.compose.align import align
from vcamswap.engines import EngineError, EngineUnavailable, create_engine
from vcamswap.engines.neural import swap_template
from vcamswap.engines.remote import codec
from vcamswap.engines.remote.client import parse_server
from vcamswap.engines.remote.engine import RemoteEngine
from vcamswap.engines.remote.measure import pipelined_rate
from vcamswap.faces.analyzer import FaceAnalyzer
from vcamswap.presets import get_preset
from vcamswap.serve.tunnel import TOOLS
from vcamswap.tools.bench.delay import start_relay

TOKEN = "https-test-token-7d2f"
SOURCE = "faces/single/biden.jpg"
TARGET = "faces/resolution_ladder/obama-720p.jpg"
WEBCAM = "videos/webcam/webcam_640x480_30fps_s18_woman.mp4"
STUB = Path(__file__).parent / "tunnel_stub"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def token_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return token_file_with(tmp_path_factory, TOKEN)


@pytest.fixture(scope="module")
def server(models_dir: Path, token_file: Path) -> Iterator[Server]:
    s = Server(models_dir, token_file, metrics=False).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    need_openssl()
    d = tmp_path_factory.mktemp("pki")
    ca = make_ca(d, "https-test-ca")
    cert, key = make_server_cert(d, ca)
    return {"ca": ca[0], "cert": cert, "key": key}


@pytest.fixture(scope="module")
def nginx(server: Server, pki: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    n = start_nginx(tmp_path_factory.mktemp("nginx"), free_ports(1)[0], server.ports[2], pki["cert"], pki["key"])
    yield n
    n.stop()


def engine(url: str, token_file: Path | None, ca: Path | None, **options: object) -> RemoteEngine:
    e = create_engine("remote", server=url, token_file=token_file, ca_file=str(ca) if ca else None, **options)
    assert isinstance(e, RemoteEngine)
    return e


def http(url: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
         method: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url + path, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def one_line_error(body: bytes) -> str:
    line = json.loads(body)["error"]
    assert isinstance(line, str) and "\n" not in line and len(line) <= 200 and "Traceback" not in line, body
    assert "/tmp" not in line and "/home" not in line and "site-packages" not in line, line
    return line


# ----------------------------------------------------------------------------------------------- the swap


def test_a_swap_through_nginx_tls_equals_the_grpc_swap(server: Server, nginx: Nginx, pki: dict[str, Path],
                                                       token_file: Path, analyzer: FaceAnalyzer, media: Path) -> None:
    """The same face, swapped over https:// through the reverse proxy and over grpc://: the same pixels (raw);
    the JPEG codec works over HTTPS too."""
    image = read(media, TARGET)
    face = face_of(analyzer, image)
    crop, m = align(image, face.kps, swap_template(128), 128)
    geometry = face.transformed(m)
    source_image = read(media, SOURCE)
    source_face = face_of(analyzer, source_image)
    preset = get_preset("fast")
    over_https = engine(nginx.url, token_file, pki["ca"], codec_name="raw")
    over_grpc = engine(server.url, token_file, None, codec_name="raw")
    jpeg = engine(nginx.url, token_file, pki["ca"], codec_name="jpeg:90")
    try:
        assert over_https.address.transport == "HTTPS"
        got = over_https.swap(crop, geometry, over_https.prepare_source(source_image, source_face), preset)
        want = over_grpc.swap(crop, geometry, over_grpc.prepare_source(source_image, source_face), preset)
        assert np.array_equal(got.crop, want.crop) and float(np.abs(got.crop.astype(int) - crop).mean()) > 5
        via_jpeg = jpeg.swap(crop, geometry, jpeg.prepare_source(source_image, source_face), preset)
        assert float(np.abs(via_jpeg.crop.astype(int) - want.crop).mean()) < 12  # JPEG both ways at q90
    finally:
        for e in (over_https, over_grpc, jpeg):
            e.close()


def test_a_wrong_or_missing_token_is_refused_in_one_line(nginx: Nginx, pki: dict[str, Path], tmp_path: Path,
                                                         media: Path) -> None:
    from helpers.cli import run_cli

    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-token\n")
    for token in (wrong, None):
        with pytest.raises(EngineUnavailable) as e:
            engine(nginx.url, token, pki["ca"])
        line = str(e.value)
        assert "\n" not in line and "refused the token" in line and "--token-file" in line, line
    r = run_cli("run", "--engine", "remote", "--server", nginx.url, "--server-ca", str(pki["ca"]), "--token-file",
                str(wrong), "--input", str(media / WEBCAM), "--max-frames", "2", "--no-adaptive",
                "--output", str(tmp_path / "out.mp4"), timeout=120)
    lines = r.stderr.strip().splitlines()
    assert r.returncode != 0 and len(lines) == 1 and "refused the token" in lines[0], r.stderr
    assert not (tmp_path / "out.mp4").exists()


def test_without_the_ca_the_certificate_is_one_line(nginx: Nginx, token_file: Path) -> None:
    with pytest.raises(EngineUnavailable, match=r"not signed by a CA this machine trusts.*--server-ca"):
        engine(nginx.url, token_file, None)


def test_several_requests_stay_in_flight_over_https(nginx: Nginx, pki: dict[str, Path], token_file: Path) -> None:
    """Through a relay adding 40 ms each way in front of nginx: 4 in flight give well over twice the swaps a
    second of 1 (keep-alive connections, one per request in flight); the relay counts each swap's wire bytes."""
    relay = start_relay("127.0.0.1", nginx.port, 0.040)
    try:
        url = f"https://127.0.0.1:{relay.port}"
        one = pipelined_rate(url, token_file, 2.5, 1, "raw", relay.meter, str(pki["ca"]))
        four = pipelined_rate(url, token_file, 2.5, 4, "raw", relay.meter, str(pki["ca"]))
    finally:
        relay.stop.set()
    assert one["errors"] == 0 and four["errors"] == 0
    assert four["swaps_per_s"] > 2.0 * one["swaps_per_s"], (one, four)
    raw = codec.RAW_BYTES + 4 * codec.LATENT_SIZE
    assert raw < one["wire_up"] < 1.2 * raw and codec.RAW_BYTES < one["wire_down"] < 1.2 * codec.RAW_BYTES, one


def test_a_proxy_whose_server_is_away_means_the_engine_waits_for_it(pki: dict[str, Path], token_file: Path,
                                                                     tmp_path: Path) -> None:
    """nginx answers 502 for a server that is not there: the engine takes it as away (frames pass through or go
    to lite) and says so in one line at once, not as a refusal."""
    dead_port, port = free_ports(2)
    n = start_nginx(tmp_path / "nginx", port, dead_port, pki["cert"], pki["key"])
    try:
        e = engine(n.url, token_file, pki["ca"], codec_name="raw")
        assert not e.healthy()
        t0 = time.monotonic()
        with pytest.raises(EngineError, match="unreachable; reconnecting"):
            e.swap_crop(np.zeros((128, 128, 3), np.uint8), np.zeros((1, 512), np.float32))
        assert time.monotonic() - t0 < 0.5  # no network while away: the frame is not held
        e.close()
    finally:
        n.stop()


# ----------------------------------------------------------------------------------------------- the door's rules


def test_the_http_door_listens_on_loopback_only(server: Server) -> None:
    rows = [r.split() for t in ("/proc/net/tcp", "/proc/net/tcp6") for r in Path(t).read_text().splitlines()[1:]]
    hex_port = f"{server.ports[2]:04X}"
    listening = [r[1] for r in rows if r[3] == "0A" and r[1].endswith(":" + hex_port)]
    assert listening == ["0100007F:" + hex_port], listening


def test_the_http_door_refuses_what_the_gate_refuses_in_one_line(server: Server) -> None:
    url, token = server.http_url, {"triton-access-token": TOKEN}
    assert http(url, "/v2/health/ready")[0] == 200 and http(url, "/v2/health/live")[0] == 200  # open to probes
    assert http(url, "/v2/models/vcamswap_swap/ready")[0] == 200
    assert http(url, "/v2/models/vcamswap_swap")[0] == 403
    for method, path in (("GET", "/v2/repository/index"), ("POST", "/v2/repository/models/vcamswap_swap/unload"),
                         ("GET", "/v2/models/vcamswap_swap/config"), ("GET", "/v2/models/vcamswap_swap/stats"),
                         ("POST", "/v2/systemsharedmemory/register"), ("POST", "/v2/logging"), ("GET", "/metrics")):
        status, body = http(url, path, b"{}" if method == "POST" else None, token, method)
        assert status == 404 and "not served here" in one_line_error(body), (path, body)
    status, body = http(url, "/v2/models/vcamswap_swap/infer", b"{not json", token)
    assert status == 400 and "not JSON" in one_line_error(body)
    header = json.dumps({"inputs": [{"name": "crop", "datatype": "UINT8", "shape": [1, 128, 128, 3],
                                     "parameters": {"binary_data_size": 10}}]}).encode()
    status, body = http(url, "/v2/models/vcamswap_swap/infer", header + b"x" * 10,
                        {**token, "Inference-Header-Content-Length": str(len(header))})
    assert status == 400 and "does not match" in one_line_error(body)
    assert http(url, "/v2/models/no_such_model", None, token)[0] in (400, 404)
    deadline = time.monotonic() + 5
    while not (said := [x for x in server.log if "refused HTTP" in x]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert said and all(len(x) < 400 and TOKEN not in x for x in said), said  # logged, one short line each


def read_to_close(s: socket.socket) -> str:
    """Everything the door sends before it closes the connection (headers and body come in two writes)."""
    out = b""
    while chunk := s.recv(4096):
        out += chunk
    return out.decode()


def test_a_body_over_the_limit_is_refused_unread_and_chunked_bodies_too(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.ports[2]), 10) as s:
        s.sendall("POST /v2/models/vcamswap_swap/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 900000000\r\n"
                  f"triton-access-token: {TOKEN}\r\n\r\n".encode())
        answer = read_to_close(s)
    assert answer.startswith("HTTP/1.1 413") and "over the 8 MB limit" in answer
    with socket.create_connection(("127.0.0.1", server.ports[2]), 10) as s:
        s.sendall(b"POST /v2/models/vcamswap_swap/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        assert read_to_close(s).startswith("HTTP/1.1 411")


def test_a_jpeg_bomb_over_http_is_refused_in_one_line(server: Server) -> None:
    from vcamswap.engines.remote import v2wire

    bomb = np.frombuffer(jpeg_declaring(20000, 20000), np.uint8)
    lat = np.full((1, codec.LATENT_SIZE), codec.LATENT_SIZE ** -0.5, np.float32)
    body, n = v2wire.infer_request([("crop", bomb), ("latent", lat), ("quality", np.array([90], np.int32))],
                                   "swapped")
    t0 = time.monotonic()
    status, answer = http(server.http_url, f"/v2/models/{codec.SWAP_JPEG_MODEL}/infer", body,
                          {"triton-access-token": TOKEN, "Inference-Header-Content-Length": str(n)})
    assert status >= 400 and "20000x20000" in one_line_error(answer)
    assert time.monotonic() - t0 < 10


def test_tritonclient_http_speaks_to_the_door(server: Server) -> None:
    """The door is KServe v2 as Triton speaks it: tritonclient.http (in the server's environment, which has
    its HTTP extra) asks health and metadata and swaps, binary and JSON outputs alike; a bad token is refused."""
    script = f"""
import numpy as np, tritonclient.http as h
from tritonclient.utils import InferenceServerException
c = h.InferenceServerClient("127.0.0.1:{server.ports[2]}")
tok = {{"triton-access-token": "{TOKEN}"}}
assert c.is_server_live() and c.is_server_ready() and c.is_model_ready("vcamswap_swap")
meta = c.get_model_metadata("vcamswap_swap", headers=tok)
crop = np.random.default_rng(0).integers(0, 256, (1, 128, 128, 3)).astype(np.uint8)
a = h.InferInput("crop", [1, 128, 128, 3], "UINT8"); a.set_data_from_numpy(crop)
b = h.InferInput("latent", [1, 512], "FP32")
b.set_data_from_numpy(np.full((1, 512), 512 ** -0.5, np.float32), binary_data=False)
binary = c.infer("vcamswap_swap", [a, b], headers=tok).as_numpy("swapped")
as_json = c.infer("vcamswap_swap", [a, b], headers=tok,
                  outputs=[h.InferRequestedOutput("swapped", binary_data=False)]).as_numpy("swapped")
try:
    c.infer("vcamswap_swap", [a, b], headers={{"triton-access-token": "wrong"}})
    refused = ""
except InferenceServerException as e:
    refused = str(e)
print(meta["inputs"][0]["name"], binary.shape, bool((binary == as_json).all()), refused)
"""
    r = subprocess.run([str(serve_python()), "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split(" ", 6)[:6] == ["crop", "(1,", "128,", "128,", "3)", "True"], r.stdout
    assert "needs its token" in r.stdout


# ----------------------------------------------------------------------------------------------- the address


def test_server_addresses() -> None:
    assert parse_server("https://abc.trycloudflare.com") == ("abc.trycloudflare.com", 443, True, True)
    assert str(parse_server("http://127.0.0.1:8000")) == "http://127.0.0.1:8000"
    assert parse_server("grpc://h:1").transport == "gRPC" and parse_server("https://h").transport == "HTTPS"
    with pytest.raises(ValueError, match="for this machine only"):
        parse_server("http://10.0.0.5:8000")
    with pytest.raises(ValueError, match="without a path"):
        parse_server("https://h/some/path")


def test_doctor_names_the_transport_and_its_round_trip(server: Server, nginx: Nginx, pki: dict[str, Path],
                                                       token_file: Path, tmp_path: Path) -> None:
    from vcamswap.checks import Context
    from vcamswap.engines.remote.checks import check_remote
    from vcamswap.settings import Settings

    def lines(url: str, ca: str | None) -> list[tuple[bool, str]]:
        s = Settings(engine="remote", server=url, token_file=str(token_file), server_ca=ca)  # type: ignore[call-arg]
        return [(x.ok, x.text) for x in check_remote(Context(s, tmp_path / "s.toml"))]

    https = lines(nginx.url, str(pki["ca"]))
    assert [ok for ok, _ in https] == [True, True], https
    assert https[1][1].startswith("HTTPS (KServe v2 over HTTP/1.1 and TLS") and "swap round trip" in https[1][1]
    grpc = lines(server.url, None)
    assert grpc[1][1].startswith("gRPC (Triton's gRPC): swap round trip"), grpc


# ----------------------------------------------------------------------------------------------- the tunnel


def test_tunnel_urls_are_read_from_each_tools_own_output() -> None:
    cloudflared = ["2024-05-01T10:00:00Z INF Thank you for trying Cloudflare Tunnel. ... following: "
                   "https://developers.cloudflare.com/cloudflare-one/connections/connect-networks",
                   "2024-05-01T10:00:01Z INF |  Your quick Tunnel has been created! Visit it at (it may take some "
                   "time to be reachable):  |",
                   "2024-05-01T10:00:01Z INF |  https://seasonal-deck-organisms-sf.trycloudflare.com              |"]
    found = [m.group(1) for line in cloudflared if (m := TOOLS["cloudflared"].url.search(line))]
    assert found == ["https://seasonal-deck-organisms-sf.trycloudflare.com"]
    ngrok = ['{"addr":"http://127.0.0.1:8000","lvl":"info","msg":"started tunnel","name":"command_line",'
             '"obj":"tunnels","t":"2024-05-01T10:00:01Z","url":"https://1a2b-34-56-78-90.ngrok-free.app"}',
             '{"lvl":"info","msg":"client session established","obj":"tunnels.session","url":"https://x.example"}']
    found = [m.group(1) for line in ngrok if (m := TOOLS["ngrok"].url.search(line))]
    assert found == ["https://1a2b-34-56-78-90.ngrok-free.app"]


def _serve_fails(models_dir: Path, env: dict[str, str], *args: str) -> str:
    r = subprocess.run([sys.executable, "-m", "vcamswap", "serve", "--models", str(models_dir), *args],
                       capture_output=True, text=True, timeout=60, env={**os.environ, **env}, cwd=REPO)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("vcamswap: error: "), r.stderr
    return lines[0]


def test_a_tunnel_tool_not_on_path_or_no_token_is_one_line(models_dir: Path, token_file: Path,
                                                           tmp_path: Path) -> None:
    line = _serve_fails(models_dir, {"PATH": str(tmp_path)}, "--tunnel", "cloudflared", "--token-file",
                        str(token_file))
    assert "cloudflared is not on PATH" in line and "install cloudflared" in line
    line = _serve_fails(models_dir, {"PATH": str(tmp_path)}, "--tunnel", "ngrok", "--token-file", str(token_file))
    assert "ngrok is not on PATH" in line and "authtoken" in line
    line = _serve_fails(models_dir, {"PATH": f"{STUB}:{os.environ['PATH']}"}, "--tunnel", "cloudflared")
    assert "needs a shared token" in line


def test_serve_tunnel_prints_the_laptops_line_and_swaps_through_it(models_dir: Path, token_file: Path,
                                                                   pki: dict[str, Path], tmp_path: Path) -> None:
    """`serve --tunnel cloudflared` with the stand-in: started toward the HTTP door, its URL read from its box,
    health asked through it, and the printed line is one the laptop can run as is."""
    args_file = tmp_path / "args"
    env = {"PATH": f"{STUB}:{os.environ['PATH']}", "SSL_CERT_FILE": str(pki["ca"]),
           "TUNNEL_STUB_CERT": str(pki["cert"]), "TUNNEL_STUB_KEY": str(pki["key"]),
           "TUNNEL_STUB_ARGS": str(args_file)}
    srv = Server(models_dir, token_file, metrics=False, extra=("--tunnel", "cloudflared")).start(env=env)
    try:
        assert args_file.read_text() == f"tunnel --no-autoupdate --url http://127.0.0.1:{srv.ports[2]}"
        (line,) = [x for x in srv.log if "swap server ready" in x]
        assert line.split("run  ", 1)[1].startswith("vcamswap run --engine remote --server https://localhost:")
        assert line.endswith("--token-file FILE (the same token)")
        url = line.split("--server ", 1)[1].split()[0]
        e = engine(url, token_file, pki["ca"], codec_name="raw")
        crop = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
        out = e.swap_crop(crop, np.full((1, 512), 512 ** -0.5, np.float32))
        assert out.shape == (128, 128, 3)
        e.close()
    finally:
        srv.stop()
