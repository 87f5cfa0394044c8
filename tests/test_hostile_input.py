"""Hostile and careless input, one test (or table row) per finding: every command gives one line and a
non-zero exit where it fails, nothing outside the product's folders is written, no user file is replaced.

Real parts throughout: CLI runs in subprocesses, real files and folders, local HTTP servers on 127.0.0.1,
the control socket, and another uid (nobody) for the permission cases where this runs as root.
"""

from __future__ import annotations

import gc
import io
import json
import os
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest
from daemon_util import WEBCAM, media_path, wait_until
from helpers.images import png_declaring

from vcamswap.control.client import request
from vcamswap.control.ipc import ControlServer
from vcamswap.control.protocol import MAX_CLIENTS, Reply, Request
from vcamswap.modelstore.download import Fetcher, Installer, Progress
from vcamswap.modelstore.manifest import OversizeError, load_manifest
from vcamswap.outputs.mjpeg import MjpegSink
from vcamswap.outputs.sinkset import parse_output
from vcamswap.settings import SettingsFile

SOURCE = "faces/single/obama_official_portrait.jpg"
NOBODY = 65534


# ----------------------------------------------------------------------------------------------- helpers


def cli(*args: str, timeout: float = 240, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vcamswap", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    """A non-zero exit whose last stderr line is the error, with no traceback; returns that line."""
    assert proc.returncode != 0, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines, proc.stderr
    last = lines[-1]
    assert "error" in last, proc.stderr
    for needle in needles:
        assert needle in last, proc.stderr
    return last


def tiny_png(path: Path) -> Path:
    cv2.imwrite(str(path), np.full((1, 1, 3), 128, np.uint8))
    return path


def faces_dir() -> Path:
    return Path(os.environ["VCAMSWAP_DATA_DIR"]) / "faces"


def settings_file() -> Path:
    return Path(os.environ["VCAMSWAP_CONFIG_DIR"]) / "settings.toml"


def shared_dir() -> Path:
    """A folder another uid can reach (the test's tmp_path sits under a private folder)."""
    d = Path(tempfile.mkdtemp(prefix="vcamswap-hostile-", dir="/tmp"))
    d.chmod(0o777)
    return d


CHILD_WAIT_S = 180.0  # far more than any command run as nobody takes


def as_nobody(fn: Callable[[], int], out: Path) -> tuple[int, str]:
    """fn() in a forked child running as uid nobody; (exit code, what it printed on stdout and stderr)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to act as another user")
    # Sessions other tests dropped may still await the collector, their native thread pools alive in this
    # process. Collected in a forked child, where those threads do not exist, one would wait forever on them:
    # collect here first, and never in the child.
    gc.collect()
    with out.open("w") as f:
        fd = f.fileno()
        pid = os.fork()
        if pid == 0:  # child: no return from here
            gc.disable()
            code = 99
            try:
                os.dup2(fd, 1)
                os.dup2(fd, 2)
                sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", closefd=False), line_buffering=True)
                sys.stderr = io.TextIOWrapper(os.fdopen(2, "wb", closefd=False), line_buffering=True)
                os.setgid(NOBODY)
                os.setuid(NOBODY)
                code = fn()
            except BaseException:
                import traceback

                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
    deadline = time.monotonic() + CHILD_WAIT_S
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0:
        if time.monotonic() > deadline:  # a stuck child fails the test instead of hanging the suite
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail(f"the child running as nobody did not end in {CHILD_WAIT_S:.0f} s: {out.read_text()[-500:]}")
        time.sleep(0.05)
    return os.waitstatus_to_exitcode(done[1]), out.read_text()


def nobody_can_read(path: Path, out: Path) -> bool:
    """Whether uid nobody can open `path`: a checkout in a private folder (0700) hides the embedded models."""

    def probe() -> int:
        path.open("rb").close()
        return 0

    return as_nobody(probe, out)[0] == 0


def main_as_nobody(argv: list[str], out: Path) -> tuple[int, str]:
    """`vcamswap ARGV` in-process as nobody; what it needs is imported first (the interpreter's own files
    are not readable by that user here)."""
    import vcamswap.live.build
    import vcamswap.live.loop  # noqa: F401
    from vcamswap.cli import build_parser, main

    build_parser()
    from PIL import Image

    Image.init()  # every format plugin

    home = Path(tempfile.mkdtemp(prefix="vcamswap-nobody-", dir="/tmp"))
    home.chmod(0o777)

    def run() -> int:
        import logging

        for name in ("CONFIG", "DATA", "CACHE", "RUNTIME"):
            os.environ[f"VCAMSWAP_{name}_DIR"] = str(home / name.lower())

        logging.getLogger().handlers.clear()  # main() sets up its own stderr handler in the child
        return main(argv)

    try:
        return as_nobody(run, out)
    finally:
        shutil.rmtree(home)


# ----------------------------------------------------------------------------------------------- 1. faces add


@pytest.mark.parametrize("name", ["../../../somewhere/victim", "/ABS/victim", "../../../somewhere/", ".", "..",
                                  "a\nb", ".hidden"])
def test_1_faces_add_never_writes_outside_the_faces_folder(name: str, media: Path, tmp_path: Path) -> None:
    victim_dir = tmp_path / "somewhere"
    victim_dir.mkdir()
    victim = victim_dir / "victim.jpg"
    victim.write_bytes(b"the user's own file")
    name = name.replace("/ABS", str(victim_dir))
    photo = tmp_path / "photo.jpg"
    shutil.copy(media / SOURCE, photo)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    proc = cli("faces", "add", str(photo), "--name", name)
    assert_one_line_error(proc, "name")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert victim.read_bytes() == b"the user's own file"
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    assert not faces_dir().exists() or not any(faces_dir().iterdir())


def test_1_a_dot_named_photo_and_a_folder_name_are_refused(media: Path, tmp_path: Path) -> None:
    dotfile = tmp_path / ".bashrc"
    shutil.copy(media / SOURCE, dotfile)
    target = tmp_path / "dir"
    target.mkdir()
    (target / ".bashrc").write_text("export PS1=mine\n")
    proc = cli("faces", "add", str(dotfile), "--name", f"../../../{target}/")
    assert_one_line_error(proc)
    assert (target / ".bashrc").read_text() == "export PS1=mine\n"
    assert_one_line_error(cli("faces", "add", str(dotfile)))


# ----------------------------------------------------------------------------------------------- 2. outputs


def test_2_run_never_writes_over_its_input(media: Path, tmp_path: Path) -> None:
    clip = tmp_path / "out" / "same.mp4"
    clip.parent.mkdir()
    shutil.copy(media_path(WEBCAM), clip)
    original = clip.read_bytes()
    for extra in ([], ["--overwrite"]):
        proc = cli("run", "--input", str(clip), "--output", str(clip), *extra, timeout=120)
        assert_one_line_error(proc, "is the input")
        assert clip.read_bytes() == original
    link = tmp_path / "link.mp4"
    link.symlink_to(clip)
    assert_one_line_error(cli("run", "--input", str(clip), "--output", str(link), "--overwrite"), "is the input")
    assert clip.read_bytes() == original


def test_2_an_existing_output_file_needs_overwrite(media: Path, tmp_path: Path) -> None:
    out = tmp_path / "mine.mp4"
    out.write_bytes(b"the user's video")
    args = ["run", "--input", str(media / SOURCE), "--output", str(out), "--max-frames", "2"]
    assert_one_line_error(cli(*args), "exists already", "--overwrite")
    assert out.read_bytes() == b"the user's video"
    proc = cli(*args, "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert cv2.VideoCapture(str(out)).get(cv2.CAP_PROP_FRAME_COUNT) == 2


# ----------------------------------------------------------------------------------------------- 3. bad photos


@pytest.fixture
def bad_photos(tmp_path: Path) -> dict[str, Path]:
    d = tmp_path / "bad"
    d.mkdir()
    return {
        "tiny": tiny_png(d / "tiny.png"),
        "bomb": png_declaring(d / "bomb.png", 50000, 50000),
        "huge": png_declaring(d / "huge.png", 12000, 12000),
        "garbage": (d / "garbage.jpg", (d / "garbage.jpg").write_bytes(b"\xff\xd8 not really"))[0],
    }


@pytest.mark.parametrize("which", ["tiny", "bomb", "huge", "garbage"])
def test_3_faces_add_refuses_a_bad_photo_in_one_line(which: str, bad_photos: dict[str, Path]) -> None:
    proc = cli("faces", "add", str(bad_photos[which]))
    assert_one_line_error(proc, bad_photos[which].name)
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not faces_dir().exists() or not any(faces_dir().iterdir())  # nothing left in the folder


@pytest.mark.parametrize("which", ["tiny", "bomb"])
def test_3_run_with_a_bad_face_skips_it_in_one_line(which: str, bad_photos: dict[str, Path], media: Path,
                                                    tmp_path: Path) -> None:
    proc = cli("run", "--input", str(media / WEBCAM), "--face", str(bad_photos[which]),
               "--output", str(tmp_path / "o.mp4"), "--max-frames", "5")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"face {which}:" in proc.stderr and "skipped" in proc.stderr
    assert "frames=5" in proc.stdout


# The daemon cases (the loop keeps publishing through each bad photo) are in test_hostile_daemon.py.


# ----------------------------------------------------------------------------------------------- 4. downloads


class _Mirror(BaseHTTPRequestHandler):
    body = b""
    length: int | None = None

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(200)
        if self.length is not None:
            self.send_header("Content-Length", str(self.length))
        self.end_headers()
        try:
            for i in range(0, len(self.body), 1 << 16):
                self.wfile.write(self.body[i:i + (1 << 16)])
        except OSError:
            pass


@pytest.fixture
def mirror() -> Iterator[type[_Mirror]]:
    handler = type("Mirror", (_Mirror,), {})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    handler.url = f"http://127.0.0.1:{httpd.server_address[1]}/det.onnx"  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield handler
    httpd.shutdown()
    httpd.server_close()


def manifest_for(path: Path, data: bytes, url: str = "https://127.0.0.1:9/none") -> Path:
    import hashlib

    path.write_text(
        f'schema = 1\n[models.det]\nfile = "det.onnx"\nsize = {len(data)}\n'
        f'sha256 = "{hashlib.sha256(data).hexdigest()}"\nlicence = "test"\nsources = [{{ url = "{url}" }}]\n'
    )
    return path


@pytest.mark.parametrize("declared", [True, False])
def test_4_a_mirror_sending_too_much_is_cut_at_the_manifest_size(mirror: type[_Mirror], declared: bool,
                                                                 tmp_path: Path) -> None:
    model = b"m" * 9000
    mirror.body = b"x" * 20_000_000
    mirror.length = len(mirror.body) if declared else None
    manifest = load_manifest(manifest_for(tmp_path / "m.toml", model, mirror.url))  # type: ignore[attr-defined]
    models = tmp_path / "models"
    with pytest.raises(OversizeError, match="9000( bytes)? the manifest lists"):
        Installer(models, Fetcher(retries=0, timeout=10)).download(manifest.get("det"))
    assert not [p for p in models.rglob("*") if p.is_file()]


def test_4_the_progress_line_stays_one_short_line() -> None:
    stream = io.StringIO()
    bar = Progress("det", 9000, stream=stream)
    bar.update(100_000_000)
    bar.close()
    assert max(len(line) for line in stream.getvalue().splitlines()) < 100


def test_4_a_zip_bomb_is_refused_from_its_directory_before_writing(tmp_path: Path) -> None:
    model = b"m" * 9000
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("det.onnx", "w", force_zip64=True) as f:
        for _ in range(64):
            f.write(b"\0" * (1 << 20))  # 64 MiB of zeros in a zip of about 64 KB
    assert bomb.stat().st_size < 1_000_000
    m = manifest_for(tmp_path / "m.toml", model)
    models = tmp_path / "models"
    proc = cli("models", "download", "det", "--from", str(bomb), "--manifest", str(m), "--models", str(models))
    assert_one_line_error(proc, f"has {64 << 20} bytes, not the 9000")
    assert not [p for p in models.rglob("*") if p.is_file()] if models.exists() else True


# ----------------------------------------------------------------------------------------------- 5. settings


def test_5_a_read_only_settings_file_is_left_as_it_is(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "settings.toml"
    path.write_text('# my comment\npreset = "fast"\n')
    path.chmod(0o444)
    inode = path.stat().st_ino
    sf = SettingsFile(path)
    assert sf.save_changes({"face": "obama"}) is False
    assert path.read_text() == '# my comment\npreset = "fast"\n'
    assert path.stat().st_ino == inode and stat.S_IMODE(path.stat().st_mode) == 0o444
    assert "read-only" in caplog.text


def test_5_a_symlinked_settings_file_is_written_through_keeping_its_mode(tmp_path: Path) -> None:
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    real = dotfiles / "vcamswap.toml"
    real.write_text('preset = "fast"\n')
    real.chmod(0o640)
    inode = real.stat().st_ino
    link = tmp_path / "settings.toml"
    link.symlink_to(real)
    assert SettingsFile(link).save_changes({"face": "obama"}) is True
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert 'face = "obama"' in real.read_text() and 'preset = "fast"' in real.read_text()
    assert real.stat().st_ino == inode and stat.S_IMODE(real.stat().st_mode) == 0o640
    assert sorted(p.name for p in dotfiles.iterdir()) == ["vcamswap.toml"]


# ----------------------------------------------------------------------------------------------- 6. run outputs


def _busy_port() -> tuple[socket.socket, int]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    return s, int(s.getsockname()[1])


def test_6_run_fails_when_no_output_can_work(media: Path, tmp_path: Path) -> None:
    held, port = _busy_port()
    try:
        still = str(media / SOURCE)
        assert_one_line_error(cli("run", "--input", still, "--output", f"mjpeg:{port}", "--max-frames", "2"),
                              f"mjpeg:{port}", "cannot serve MJPEG")
        assert_one_line_error(cli("run", "--input", still, "--output", "vcam", "--max-frames", "2"), "vcam")
        a_file = tmp_path / "file"
        a_file.write_text("x")
        assert_one_line_error(cli("run", "--input", still, "--output", str(a_file / "o.mp4"), "--max-frames", "2"),
                              "cannot create")
    finally:
        held.close()


def test_6_partial_failure_keeps_the_rest_and_names_the_cause(media: Path, tmp_path: Path) -> None:
    held, port = _busy_port()
    try:
        out = tmp_path / "o.mp4"
        proc = cli("run", "--input", str(media / SOURCE), "--output", f"mjpeg:{port}", "--output", str(out),
                   "--max-frames", "3")
    finally:
        held.close()
    assert proc.returncode == 0, proc.stderr
    assert f"output mjpeg:{port} unavailable: cannot serve MJPEG" in proc.stderr
    assert cv2.VideoCapture(str(out)).get(cv2.CAP_PROP_FRAME_COUNT) == 3


def test_6_a_read_only_output_folder_is_named_as_the_cause(media: Path, tmp_path: Path) -> None:
    # `run` loads the embedded models before it opens its outputs: the other user must be able to read them.
    from vcamswap.paths import embedded_model

    if not nobody_can_read(embedded_model("face_landmark.onnx"), tmp_path / "probe.txt"):
        pytest.skip("this checkout's folder is private to its owner: another user cannot load the models")
    shared = shared_dir()
    try:
        ro = shared / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        photo = shared / "me.jpg"
        shutil.copy(media / SOURCE, photo)
        photo.chmod(0o644)
        rc, out = main_as_nobody(["run", "--input", str(photo), "--output", str(ro / "o.mp4"), "--max-frames", "1"],
                                 tmp_path / "out.txt")
        assert rc == 2, out
        assert "Traceback" not in out and "not writable" in out.strip().splitlines()[-1], out
        assert list(ro.iterdir()) == []
    finally:
        shutil.rmtree(shared)


@pytest.mark.parametrize(("which", "needle"), [("tiny", "too small"), ("huge", "too large"), ("bomb", "large")])
def test_6_and_7_a_bad_still_input_is_one_line(which: str, needle: str, bad_photos: dict[str, Path],
                                               tmp_path: Path) -> None:
    proc = cli("run", "--input", str(bad_photos[which]), "--output", str(tmp_path / "o.mp4"), "--max-frames", "1")
    assert_one_line_error(proc, needle)
    assert not (tmp_path / "o.mp4").exists()


# ----------------------------------------------------------------------------------------------- 7. tracebacks


@pytest.mark.parametrize("args", [["--fps", "0"], ["--fps", "-30"], ["--fps", "nan"], ["--fps", "inf"],
                                  ["--target-fps", "-1"], ["--max-frames", "-1"], ["--max-frames", "0"],
                                  ["--width", "0"]])
def test_7_and_9_bad_numbers_are_refused_in_one_line(args: list[str], tmp_path: Path) -> None:
    proc = cli("run", *args, "--output", str(tmp_path / "o.mp4"), timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"argument {args[0]}" in proc.stderr.strip().splitlines()[-1]
    assert "no frame was read" not in proc.stderr


def test_7_fps_zero_in_the_settings_file_is_one_line(media: Path, tmp_path: Path) -> None:
    settings_file().write_text("fps = 0\n")
    out = tmp_path / "o.mp4"
    proc = cli("run", "--input", str(media / SOURCE), "--output", str(out), "--max-frames", "2")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "'fps': must be a number above 0" in proc.stderr
    assert settings_file().read_text() == "fps = 0\n"


def test_7_faces_commands_when_the_faces_path_is_a_file(media: Path) -> None:
    faces_dir().parent.mkdir(parents=True, exist_ok=True)
    faces_dir().write_text("not a folder")
    proc = cli("faces", "add", str(media / SOURCE))
    assert_one_line_error(proc, "faces folder")
    assert_one_line_error(cli("faces", "remove", "obama"), "no face named")
    assert faces_dir().read_text() == "not a folder"


def test_7_faces_add_and_remove_on_a_read_only_folder(media: Path, tmp_path: Path) -> None:
    shared = shared_dir()
    try:
        faces = shared / "faces"
        faces.mkdir()
        shutil.copy(media / SOURCE, faces / "obama.jpg")
        photo = shared / "me.jpg"
        shutil.copy(media / SOURCE, photo)
        for p in (faces / "obama.jpg", photo):
            p.chmod(0o644)
        faces.chmod(0o555)
        rc, out = main_as_nobody(["faces", "add", str(photo), "--faces", str(faces)], tmp_path / "a.txt")
        assert rc == 2 and "Traceback" not in out and "cannot write to the faces folder" in out, out
        rc, out = main_as_nobody(["faces", "remove", "obama", "--faces", str(faces)], tmp_path / "r.txt")
        assert rc == 2 and "Traceback" not in out and "cannot remove" in out, out
        assert sorted(p.name for p in faces.iterdir()) == ["obama.jpg"]
    finally:
        shutil.rmtree(shared)


def test_7_models_verify_on_an_unreadable_file(tmp_path: Path) -> None:
    shared = shared_dir()
    try:
        data = b"m" * 1000
        m = manifest_for(shared / "m.toml", data)
        m.chmod(0o644)
        models = shared / "models"
        models.mkdir()
        (models / "det.onnx").write_bytes(data)
        (models / "det.onnx").chmod(0o000)
        rc, out = main_as_nobody(["models", "verify", "det", "--manifest", str(m), "--models", str(models)],
                                 tmp_path / "v.txt")
        assert rc == 1 and "Traceback" not in out, out
        assert "cannot read" in out and "Permission denied" in out, out
    finally:
        shutil.rmtree(shared)


def _echo(req: Request) -> Reply:
    return {"ok": True, "cmd": req["cmd"]}


@pytest.fixture
def control() -> Iterator[ControlServer]:
    s = ControlServer(_echo)
    s.start()
    yield s
    s.close()


def test_7_a_deeply_nested_request_is_one_error_reply(control: ControlServer,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(20)
        s.connect(control.address)
        s.sendall(b"[" * 50_000 + b"\n")
        reply = json.loads(s.makefile("rb").readline())
    assert reply == {"ok": False, "error": "malformed request: nested too deeply"}
    assert "RecursionError" not in caplog.text and "Traceback" not in caplog.text
    assert request({"cmd": "ping"}, control.address)["ok"]


def test_7_clients_that_go_away_leave_the_log_quiet(capfd: pytest.CaptureFixture[str],
                                                    caplog: pytest.LogCaptureFixture) -> None:
    sink = MjpegSink(0)
    sink.open(1920, 1080, 30)
    try:
        sink.send(np.random.default_rng(0).integers(0, 255, (1080, 1920, 3), np.uint8))  # a big JPEG
        for _ in range(10):
            s = socket.create_connection(("127.0.0.1", sink.port), timeout=10)
            s.sendall(b"GET /snapshot.jpg HTTP/1.0\r\n\r\n")
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()  # reset: the server's write fails
        wait_until(lambda: sink._server is not None and sink._server._active == 0, "the requests finished")
    finally:
        sink.close()
    err = capfd.readouterr().err
    assert "Traceback" not in err and "BrokenPipeError" not in err and "ConnectionResetError" not in err
    assert "Traceback" not in caplog.text


# ----------------------------------------------------------------------------------------------- 8. MJPEG


def http_status(port: int, path: str, host: str | None = None) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        head = f"GET {path} HTTP/1.1\r\n" + (f"Host: {host}\r\n" if host is not None else "") + "\r\n"
        s.sendall(head.encode())
        line = s.makefile("rb").readline().decode()
    return int(line.split()[1])


@pytest.fixture
def preview() -> Iterator[MjpegSink]:
    sink = parse_output("mjpeg:0")
    assert isinstance(sink, MjpegSink)
    sink.open(64, 48, 30)
    sink.send(np.zeros((48, 64, 3), np.uint8))
    yield sink
    sink.close()


def test_8_the_preview_needs_the_users_token_and_a_local_host(preview: MjpegSink) -> None:
    from vcamswap.outputs.previewauth import token_path

    token = preview.token
    assert token and preview.url == f"http://127.0.0.1:{preview.port}/?token={token}"
    assert stat.S_IMODE(token_path().stat().st_mode) == 0o600 and token_path().read_text().strip() == token
    port = preview.port
    ok = f"/snapshot.jpg?token={token}"
    assert http_status(port, ok, f"127.0.0.1:{port}") == 200
    assert http_status(port, ok, f"localhost:{port}") == 200
    assert http_status(port, "/snapshot.jpg", f"127.0.0.1:{port}") == 403
    assert http_status(port, "/snapshot.jpg?token=guess", f"127.0.0.1:{port}") == 403
    assert http_status(port, "/stream.mjpg", f"127.0.0.1:{port}") == 403
    assert http_status(port, ok, "evil.example.com") == 403  # DNS rebinding
    assert http_status(port, ok, f"evil.example.com:{port}") == 403
    again = parse_output("mjpeg:0")
    assert isinstance(again, MjpegSink) and again.token == token  # the same across restarts: bookmarks keep working


def test_8_another_local_user_gets_403(preview: MjpegSink, tmp_path: Path) -> None:
    from vcamswap.outputs.previewauth import token_path

    port, path = preview.port, token_path()

    def other_user() -> int:
        try:
            path.read_text()
            return 3  # the token must not be readable by another uid
        except PermissionError:
            pass
        codes = [http_status(port, p, f"127.0.0.1:{port}") for p in ("/", "/stream.mjpg", "/snapshot.jpg")]
        print(codes)
        return 0 if codes == [403, 403, 403] else 4

    rc, out = as_nobody(other_user, tmp_path / "nobody.txt")
    assert rc == 0, out


def test_8_held_connections_are_capped_and_time_out(preview: MjpegSink) -> None:
    base = threading.active_count()
    held = []
    try:
        for _ in range(120):  # more than the old backlog of 5 ever let through at once
            s = socket.create_connection(("127.0.0.1", preview.port), timeout=30)
            s.sendall(b"GET /snapshot.jpg HTT")  # a partial request, never finished
            held.append(s)
        server = preview._server
        assert server is not None
        # Unfinished requests wait in one thread (at most MAX_PENDING of them), none holds a thread of its own.
        wait_until(lambda: server.gate.pending == len(held), "every unfinished request waited for")
        assert threading.active_count() <= base and server._active == 0
        # The server drops a request that never completes (liveness bound, not a timing assertion).
        wait_until(lambda: server.gate.pending == 0, "stalled requests dropped by the request deadline", timeout=60)
    finally:
        for s in held:
            s.close()
    token = preview.token
    assert http_status(preview.port, f"/snapshot.jpg?token={token}", "127.0.0.1") == 200


# ----------------------------------------------------------------------------------------------- 9. small ones


def test_9_a_tif_is_refused_not_added_unseen(media: Path, tmp_path: Path) -> None:
    tif = tmp_path / "me.tif"
    cv2.imwrite(str(tif), np.asarray(cv2.imread(str(media / SOURCE))))
    assert_one_line_error(cli("faces", "add", str(tif)), ".tif")
    assert not faces_dir().exists() or not any(faces_dir().iterdir())


def test_9_a_newline_name_never_breaks_faces_list(media: Path) -> None:
    faces_dir().mkdir(parents=True)
    shutil.copy(media / SOURCE, faces_dir() / "two\nlines.jpg")  # made by hand in the folder
    shutil.copy(media / SOURCE, faces_dir() / "obama.jpg")
    assert_one_line_error(cli("faces", "add", str(media / SOURCE), "--name", "a\nb"), "control character")
    proc = cli("faces", "list")
    assert proc.returncode == 0
    # One line per usable face: name, path and (a third column) what limits the photo, if anything.
    assert [line.split("\t")[:2] for line in proc.stdout.splitlines()] == [["obama", str(faces_dir() / "obama.jpg")]]


def test_9_re_adding_a_face_never_overwrites_it(media: Path) -> None:
    faces_dir().mkdir(parents=True)
    (faces_dir() / "obama.jpg").write_bytes(b"the user's own")
    assert_one_line_error(cli("faces", "add", str(media / SOURCE), "--name", "obama"), "exists already")
    assert_one_line_error(cli("faces", "add", str(media / SOURCE), "--name", "OBAMA"), "exists already")
    assert (faces_dir() / "obama.jpg").read_bytes() == b"the user's own"


def test_9_a_truncated_video_is_said_and_not_looped(media: Path, tmp_path: Path) -> None:
    data = media_path(WEBCAM).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 4])
    declared = int(cv2.VideoCapture(str(cut)).get(cv2.CAP_PROP_FRAME_COUNT))
    out = tmp_path / "o.mp4"
    proc = cli("run", "--input", str(cut), "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    assert f"of the {declared} frames it declares could be read" in proc.stderr
    written = int(cv2.VideoCapture(str(out)).get(cv2.CAP_PROP_FRAME_COUNT))
    assert 0 < written < declared  # the readable frames once, not looped up to the declared count


def test_9_a_full_control_socket_never_breaks_a_pipe(control: ControlServer) -> None:
    idle = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(MAX_CLIENTS)]
    try:
        for s in idle:
            s.settimeout(None)
            s.connect(control.address)
        # A full table drops the client idle longest to serve a new one: the CLI gets in, the idle one is told.
        proc = cli("status", timeout=60)
        assert proc.returncode == 0 and "Broken pipe" not in proc.stderr, proc.stderr
        idle[0].settimeout(20)
        assert json.loads(idle[0].makefile("rb").readline()) == {"ok": False, "error": "too many connections"}
    finally:
        for s in idle:
            s.close()
