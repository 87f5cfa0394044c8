"""The model manager against a real HTTP server on 127.0.0.1: resume after a cut, checksums, atomic
installs, archives, mirrors, offline installs, and the `vcamswap models` command end to end."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import NamedTuple

import pytest

from vcamswap.cli import main
from vcamswap.modelstore.download import Fetcher, Installer, Progress
from vcamswap.modelstore.manifest import NEURAL_MODELS, ChecksumError, DownloadError, ModelError, load_manifest, status

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------------------------- server


@dataclass
class Served:
    files: dict[str, bytes] = field(default_factory=dict)
    cut_once: set[str] = field(default_factory=set)  # paths whose first response stops halfway
    no_range: bool = False
    requests: list[tuple[str, str | None]] = field(default_factory=list)


class Handler(BaseHTTPRequestHandler):
    served: Served

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:  # noqa: N802
        s = self.server.served  # type: ignore[attr-defined]
        rng = self.headers.get("Range")
        s.requests.append((self.path, rng))
        data = s.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        start = 0
        if rng and not s.no_range:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if self.path in s.cut_once:
            s.cut_once.discard(self.path)
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def server() -> Iterator[tuple[str, Served]]:
    served = Served()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.served = served  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", served
    httpd.shutdown()
    httpd.server_close()


# ----------------------------------------------------------------------------------------------- helpers


def blob(name: str, size: int = 300_000) -> bytes:
    """Deterministic stand-in model bytes."""
    out = bytearray()
    seed = name.encode()
    while len(out) < size:
        seed = hashlib.sha256(seed).digest()
        out += seed
    return bytes(out[:size])


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_manifest(path: Path, entries: dict[str, tuple[bytes, list[dict[str, object]]]]) -> Path:
    lines = ["schema = 1", ""]
    for name, (data, sources) in entries.items():
        lines += [
            f"[models.{name}]",
            f'file = "{name}.onnx"',
            f"size = {len(data)}",
            f'sha256 = "{sha(data)}"',
            'licence = "test"',
            "sources = [",
        ]
        for src in sources:
            fields = ", ".join(f'{k} = "{v}"' if isinstance(v, str) else f"{k} = {v}" for k, v in src.items())
            lines.append(f"    {{ {fields} }},")
        lines += ["]", ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def installer(models_dir: Path, retries: int = 3) -> Installer:
    return Installer(models_dir, Fetcher(retries=retries, timeout=10, retry_delay=0.0))


def leftovers(models_dir: Path) -> list[str]:
    return sorted(p.name for p in models_dir.rglob("*") if p.is_file() and not p.name.endswith(".onnx"))


# ----------------------------------------------------------------------------------------------- manifest


def test_shipped_manifest_names_the_three_models_with_checksums() -> None:
    manifest = load_manifest()
    assert tuple(s.name for s in manifest.select(None)) == NEURAL_MODELS
    sizes = {"det_10g": 16923827, "w600k_r50": 174383860, "inswapper_128": 554253681}
    for name, spec in manifest.models.items():
        if spec.optional:
            continue
        assert spec.file == f"{name}.onnx" and spec.size == sizes[name]
        assert len(spec.sha256) == 64 and spec.sources and "non-commercial" in spec.licence
        assert all(s.url.startswith("https://") for s in spec.sources)
    for name in ("det_10g", "w600k_r50"):
        archive = manifest.models[name].sources[0]
        assert archive.archive_name == "buffalo_l.zip" and archive.member == f"{name}.onnx"
        assert archive.archive_size == 288621354 and archive.archive_sha256


def test_shipped_manifest_lists_the_optional_occluder_enhancer_and_parser() -> None:
    manifest = load_manifest()
    optional = {s.name: s for s in manifest.select(None, optional=True) if s.optional and s.role}
    # the swap models (tests/test_ghost_manifest.py) are optional too but play no role
    assert set(optional) == {"xseg_3", "gfpgan_1.4", "bisenet_resnet_34"}
    assert manifest.get("occluder") is optional["xseg_3"] and manifest.get("enhancer") is optional["gfpgan_1.4"]
    assert manifest.get("parser") is optional["bisenet_resnet_34"]
    sizes = {name: spec.size for name, spec in optional.items()}
    assert sizes == {"xseg_3": 70327709, "gfpgan_1.4": 340299087, "bisenet_resnet_34": 93632546}
    assert "MIT" in optional["bisenet_resnet_34"].licence
    for spec in optional.values():
        assert spec.file == f"{spec.name}.onnx" and len(spec.sha256) == 64 and spec.licence
        assert [s.url.split("/")[2] for s in spec.sources] == ["github.com", "huggingface.co"]
        assert all(s.url.endswith("/" + spec.file) for s in spec.sources)


def test_bad_manifest_is_a_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "m.toml"
    bad.write_text('[models.x]\nfile = "x.onnx"\nsize = 3\nsha256 = "abc"\n', encoding="utf-8")
    with pytest.raises(ModelError, match="sha256 must be 64 hex digits"):
        load_manifest(bad)
    bad.write_text("[models.x\n", encoding="utf-8")
    with pytest.raises(ModelError, match=r"m\.toml"):
        load_manifest(bad)


# ----------------------------------------------------------------------------------------------- download


def test_download_resumes_after_the_connection_is_cut(server: tuple[str, Served], tmp_path: Path) -> None:
    base, served = server
    data = blob("swap", 1_000_000)
    served.files["/m/swap.onnx"] = data
    served.cut_once.add("/m/swap.onnx")
    manifest = load_manifest(write_manifest(tmp_path / "m.toml", {"swap": (data, [{"url": f"{base}/m/swap.onnx"}])}))
    models = tmp_path / "models"
    path = installer(models).download(manifest.get("swap"))
    assert path.read_bytes() == data
    assert served.requests == [("/m/swap.onnx", None), ("/m/swap.onnx", f"bytes={len(data) // 2}-")]
    assert leftovers(models) == []
    assert status(manifest.get("swap"), models).state == "ok"


def test_a_part_left_by_an_earlier_run_is_resumed(server: tuple[str, Served], tmp_path: Path) -> None:
    base, served = server
    data = blob("swap", 400_000)
    served.files["/swap.onnx"] = data
    manifest = load_manifest(write_manifest(tmp_path / "m.toml", {"swap": (data, [{"url": f"{base}/swap.onnx"}])}))
    models = tmp_path / "models"
    models.mkdir()
    (models / "swap.onnx.part").write_bytes(data[:123_456])
    installer(models).download(manifest.get("swap"))
    assert served.requests == [("/swap.onnx", "bytes=123456-")]
    assert (models / "swap.onnx").read_bytes() == data


def test_a_server_without_ranges_restarts_the_file(server: tuple[str, Served], tmp_path: Path) -> None:
    base, served = server
    data = blob("swap", 200_000)
    served.files["/swap.onnx"] = data
    served.no_range = True
    manifest = load_manifest(write_manifest(tmp_path / "m.toml", {"swap": (data, [{"url": f"{base}/swap.onnx"}])}))
    models = tmp_path / "models"
    models.mkdir()
    (models / "swap.onnx.part").write_bytes(b"x" * 5000)
    installer(models).download(manifest.get("swap"))
    assert (models / "swap.onnx").read_bytes() == data


def test_a_cut_with_no_retries_left_keeps_only_the_part(server: tuple[str, Served], tmp_path: Path) -> None:
    base, served = server
    data = blob("swap", 500_000)
    served.files["/swap.onnx"] = data
    served.cut_once.add("/swap.onnx")
    manifest = load_manifest(write_manifest(tmp_path / "m.toml", {"swap": (data, [{"url": f"{base}/swap.onnx"}])}))
    models = tmp_path / "models"
    with pytest.raises(DownloadError, match="run the command again to resume") as e:
        installer(models, retries=0).download(manifest.get("swap"))
    assert "\n" not in str(e.value)
    assert not (models / "swap.onnx").exists()  # never a half file under the final name
    assert (models / "swap.onnx.part").read_bytes() == data[: len(data) // 2]
    installer(models).download(manifest.get("swap"))  # the next run finishes it
    assert (models / "swap.onnx").read_bytes() == data


def test_a_checksum_mismatch_is_refused(server: tuple[str, Served], tmp_path: Path) -> None:
    base, served = server
    data = blob("swap", 300_000)
    corrupt = bytearray(data)
    corrupt[1000] ^= 0xFF
    served.files["/swap.onnx"] = bytes(corrupt)
    manifest = load_manifest(write_manifest(tmp_path / "m.toml", {"swap": (data, [{"url": f"{base}/swap.onnx"}])}))
    models = tmp_path / "models"
    with pytest.raises(ChecksumError) as e:
        installer(models).download(manifest.get("swap"))
    msg = str(e.value)
    assert "does not match the manifest" in msg and "not installed" in msg and "--from FILE" in msg
    assert "\n" not in msg
    assert not (models / "swap.onnx").exists() and leftovers(models) == []


def test_the_next_mirror_is_tried(server: tuple[str, Served], tmp_path: Path) -> None:
    base, served = server
    data = blob("swap", 100_000)
    served.files["/mirror/swap.onnx"] = data
    sources = [{"url": f"{base}/gone/swap.onnx"}, {"url": f"{base}/mirror/swap.onnx"}]
    manifest = load_manifest(write_manifest(tmp_path / "m.toml", {"swap": (data, sources)}))
    path = installer(tmp_path / "models").download(manifest.get("swap"))
    assert path.read_bytes() == data
    assert [r[0] for r in served.requests] == ["/gone/swap.onnx", "/mirror/swap.onnx"]


def zip_of(files: dict[str, bytes], folder: str = "") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(folder + name, data)
    return buf.getvalue()


def test_two_models_from_one_archive_fetch_it_once(server: tuple[str, Served], tmp_path: Path) -> None:
    base, served = server
    det, rec = blob("det", 120_000), blob("rec", 220_000)
    archive = zip_of({"det.onnx": det, "rec.onnx": rec, "other.onnx": b"x"}, folder="pack/")
    served.files["/pack.zip"] = archive
    served.cut_once.add("/pack.zip")

    def src(member: str) -> dict[str, object]:
        return {"url": f"{base}/pack.zip", "member": member, "archive_size": len(archive),
                "archive_sha256": sha(archive)}

    manifest = load_manifest(write_manifest(
        tmp_path / "m.toml", {"det": (det, [src("det.onnx")]), "rec": (rec, [src("rec.onnx")])}
    ))
    models = tmp_path / "models"
    inst = installer(models)
    inst.download(manifest.get("det"))
    inst.download(manifest.get("rec"))
    inst.cleanup()
    assert (models / "det.onnx").read_bytes() == det and (models / "rec.onnx").read_bytes() == rec
    assert [r[0] for r in served.requests] == ["/pack.zip", "/pack.zip"]  # the cut, then the resume
    assert served.requests[1][1] is not None
    assert leftovers(models) == [] and not (models / ".downloads").exists()


def test_a_corrupt_archive_is_refused(server: tuple[str, Served], tmp_path: Path) -> None:
    base, served = server
    det = blob("det", 50_000)
    archive = zip_of({"det.onnx": det})
    served.files["/pack.zip"] = archive[:-10] + b"0123456789"
    source = {"url": f"{base}/pack.zip", "member": "det.onnx", "archive_size": len(archive),
              "archive_sha256": sha(archive)}
    manifest = load_manifest(write_manifest(tmp_path / "m.toml", {"det": (det, [source])}))
    models = tmp_path / "models"
    with pytest.raises(ChecksumError, match="pack.zip .* does not match the manifest"):
        installer(models).download(manifest.get("det"))
    assert not (models / "det.onnx").exists()


# ----------------------------------------------------------------------------------------------- offline


def test_install_from_a_file_a_folder_or_a_zip(tmp_path: Path) -> None:
    det, rec = blob("det", 80_000), blob("rec", 90_000)
    manifest = load_manifest(write_manifest(
        tmp_path / "m.toml",
        {"det": (det, [{"url": "https://example.invalid/det.onnx"}]),
         "rec": (rec, [{"url": "https://example.invalid/rec.onnx"}])},
    ))
    specs = list(manifest.models.values())
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "renamed-detector.onnx").write_bytes(det)
    models = tmp_path / "models"
    # A file under another name is recognised by its size and checksum.
    assert [s.name for s in installer(models).install_from(specs, copy / "renamed-detector.onnx")] == ["det"]
    assert (models / "det.onnx").read_bytes() == det
    # A folder with the file one level down, and a zip.
    (copy / "sub").mkdir()
    (copy / "sub" / "rec.onnx").write_bytes(rec)
    (models / "det.onnx").unlink()
    (copy / "buffalo.zip").write_bytes(zip_of({"det.onnx": det}, folder="buffalo/"))
    installed = installer(models).install_from(specs, copy)
    assert [s.name for s in installed] == ["det", "rec"]
    assert (models / "rec.onnx").read_bytes() == rec and (models / "det.onnx").read_bytes() == det
    assert leftovers(models) == []


def test_install_from_refuses_a_modified_copy(tmp_path: Path) -> None:
    det = blob("det", 80_000)
    manifest = load_manifest(write_manifest(tmp_path / "m.toml", {"det": (det, [])}))
    bad = tmp_path / "det.onnx"
    bad.write_bytes(det[:-1] + b"\x00")
    models = tmp_path / "models"
    with pytest.raises(ChecksumError, match="does not match the manifest.*not installed") as e:
        installer(models).install_from([manifest.get("det")], bad)
    assert "\n" not in str(e.value)
    bad.write_bytes(det[:-5])
    with pytest.raises(ChecksumError, match="79995 bytes"):
        installer(models).install_from([manifest.get("det")], bad)
    assert not (models / "det.onnx").exists() and leftovers(models) == []
    with pytest.raises(ModelError, match="no such file"):
        installer(models).install_from([manifest.get("det")], tmp_path / "absent")


def test_progress_bar_reports_quarters_off_a_terminal() -> None:
    out = io.StringIO()
    bar = Progress("det", 1000, stream=out)
    for _ in range(10):
        bar.update(100)
    bar.close()
    lines = out.getvalue().splitlines()
    assert [line.split("]")[1].split("%")[0].strip() for line in lines] == ["10.0", "30.0", "50.0", "80.0", "100.0"]


# ----------------------------------------------------------------------------------------------- CLI


class Result(NamedTuple):
    returncode: int
    stdout: str
    stderr: str


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> Result:
    """`vcamswap models ...` through the real argument parser, in this process (a process each is slow)."""
    code = main(["models", *args])
    out = capsys.readouterr()
    return Result(code, out.out, out.err)


def test_models_command_end_to_end(
    server: tuple[str, Served], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, served = server
    det, rec = blob("det", 150_000), blob("rec", 160_000)
    served.files["/det.onnx"], served.files["/rec.onnx"] = det, rec
    served.cut_once.add("/rec.onnx")
    manifest = write_manifest(
        tmp_path / "m.toml",
        {"det": (det, [{"url": f"{base}/det.onnx"}]), "rec": (rec, [{"url": f"{base}/rec.onnx"}])},
    )
    models = tmp_path / "models"
    common = ["--manifest", str(manifest), "--models", str(models)]

    r = cli(capsys, "list", *common)
    assert r.returncode == 0 and "rec\t0.2 MB\tmissing" in r.stdout
    # The real entry point, once, in its own process.
    r = subprocess.run(
        [sys.executable, "-m", "vcamswap", "models", "download", *common],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )
    assert r.returncode == 0, r.stderr
    assert f"installed det -> {models / 'det.onnx'}" in r.stdout and "installed rec" in r.stdout
    assert "rec [" in r.stderr and "100.0%" in r.stderr  # progress on stderr
    assert (models / "rec.onnx").read_bytes() == rec
    r = cli(capsys, "download", "det", *common)
    assert r.returncode == 0 and "already installed det" in r.stdout
    r = cli(capsys, "verify", *common)
    assert r.returncode == 0 and r.stdout.count("OK ") == 2
    assert cli(capsys, "path", "rec", *common).stdout.strip() == str(models / "rec.onnx")

    (models / "rec.onnx").write_bytes(rec[:-1] + b"\x01")
    r = cli(capsys, "verify", *common)
    assert r.returncode == 1
    assert "problem  rec:" in r.stdout and "vcamswap models download rec" in r.stdout

    served.files["/det.onnx"] = det[::-1]
    (models / "det.onnx").unlink()
    r = cli(capsys, "download", "det", *common)
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith("vcamswap: error: det.onnx from")
    assert not (models / "det.onnx").exists()

    offline = tmp_path / "offline"
    offline.mkdir()
    (offline / "det.onnx").write_bytes(det)
    r = cli(capsys, "download", "det", "--from", str(offline), *common)
    assert r.returncode == 0 and "installed det from" in r.stdout
    assert (models / "det.onnx").read_bytes() == det

    r = cli(capsys, "download", "nosuch", *common)
    assert r.returncode == 2 and "unknown model 'nosuch'" in r.stderr


def test_optional_models_come_only_when_asked_for(
    server: tuple[str, Served], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A plain download leaves the occluder out; by role it is fetched; --from installs and verifies it."""
    from vcamswap.compose.occlusion import ModelOccluder, make_occluder
    from vcamswap.modelstore.standins import occluder_model, save

    base, served = server
    det = blob("det", 50_000)
    standin = save(occluder_model(), tmp_path / "copy" / "occluder-copy.onnx").read_bytes()
    served.files["/det.onnx"], served.files["/xseg_3.onnx"] = det, standin
    manifest = write_manifest(
        tmp_path / "m.toml",
        {"det": (det, [{"url": f"{base}/det.onnx"}]), "xseg_3": (standin, [{"url": f"{base}/xseg_3.onnx"}])},
    )
    text = manifest.read_text(encoding="utf-8")
    manifest.write_text(text.replace('[models.xseg_3]\n', '[models.xseg_3]\noptional = true\nrole = "occluder"\n'),
                        encoding="utf-8")
    models = tmp_path / "models"
    common = ["--manifest", str(manifest), "--models", str(models)]

    r = cli(capsys, "list", *common)
    assert "xseg_3\t" in r.stdout and r.stdout.rstrip().endswith("optional occluder")
    r = cli(capsys, "download", *common)
    assert r.returncode == 0 and "installed det" in r.stdout and "xseg_3" not in r.stdout
    assert not (models / "xseg_3.onnx").exists() and all(path != "/xseg_3.onnx" for path, _ in served.requests)
    r = cli(capsys, "verify", *common)  # an optional model that is not installed is no problem
    assert r.returncode == 0 and r.stdout.count("OK ") == 1
    r = cli(capsys, "download", "occluder", *common)
    assert r.returncode == 0 and f"installed xseg_3 -> {models / 'xseg_3.onnx'}" in r.stdout
    (models / "xseg_3.onnx").unlink()

    r = cli(capsys, "download", "occluder", "--from", str(tmp_path / "copy" / "occluder-copy.onnx"), *common)
    assert r.returncode == 0 and "installed xseg_3 from" in r.stdout
    r = cli(capsys, "verify", *common)
    assert r.returncode == 0 and "OK       xseg_3: SHA-256 verified" in r.stdout
    assert isinstance(make_occluder("model", models, provider="cpu"), ModelOccluder)
    # A copy that is not the listed file is refused, and the installed one stays.
    (tmp_path / "copy" / "occluder-copy.onnx").write_bytes(standin[:-1] + b"\x00")
    r = cli(capsys, "download", "occluder", "--from", str(tmp_path / "copy" / "occluder-copy.onnx"), *common)
    assert r.returncode == 2 and "does not match the manifest" in r.stderr
    assert (models / "xseg_3.onnx").read_bytes() == standin


def test_an_unreachable_server_fails_fast_with_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = blob("swap", 1000)
    manifest = load_manifest(write_manifest(
        tmp_path / "m.toml", {"swap": (data, [{"url": f"http://127.0.0.1:{port}/swap.onnx"}])}
    ))
    inst = installer(tmp_path / "models", retries=5)
    with pytest.raises(DownloadError, match=r"nothing downloaded") as e:
        inst.download(manifest.get("swap"))
    assert "\n" not in str(e.value)
    assert len(inst.fetcher.requests) == 2  # one retry, not five, when no byte ever arrives
    assert not (tmp_path / "models" / "swap.onnx").exists()


def test_the_parser_is_fetched_by_its_role_and_listed_with_its_licence(
    server: tuple[str, Served], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`vcamswap models download parser` fetches the face parser (here the stand-in, served locally, under a
    manifest that lists it like the shipped one) and make_occluder("parser") then opens it; `models list`
    with the shipped manifest shows its size and licence."""
    from vcamswap.compose.occlusion import ParserOccluder, make_occluder
    from vcamswap.modelstore.standin_parser import parser_model
    from vcamswap.modelstore.standins import save

    base, served = server
    standin = save(parser_model(), tmp_path / "copy" / "bisenet_resnet_34.onnx").read_bytes()
    served.files["/bisenet_resnet_34.onnx"] = standin
    manifest = write_manifest(
        tmp_path / "m.toml", {"bisenet_resnet_34": (standin, [{"url": f"{base}/bisenet_resnet_34.onnx"}])}
    )
    text = manifest.read_text(encoding="utf-8")
    entry = "[models.bisenet_resnet_34]\n"
    manifest.write_text(text.replace(entry, entry + 'optional = true\nrole = "parser"\n'), encoding="utf-8")
    models = tmp_path / "models"
    common = ["--manifest", str(manifest), "--models", str(models)]
    r = cli(capsys, "download", *common)
    assert r.returncode == 0 and not (models / "bisenet_resnet_34.onnx").exists()
    r = cli(capsys, "download", "parser", *common)
    assert r.returncode == 0 and f"installed bisenet_resnet_34 -> {models / 'bisenet_resnet_34.onnx'}" in r.stdout
    assert isinstance(make_occluder("parser", models, provider="cpu"), ParserOccluder)

    r = cli(capsys, "list", "--models", str(tmp_path / "empty"))
    line = next(x for x in r.stdout.splitlines() if x.startswith("bisenet_resnet_34\t"))
    assert line.split("\t")[1:] == ["93.6 MB", "missing", "face-parsing (yakhyo, after zllrunning): MIT",
                                    "optional parser"]
