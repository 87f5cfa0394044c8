"""`vcamswap doctor` on this machine and on stand-in device trees: every line OK or problem with a fix."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest

from vcamswap.capture import checks as capture_checks
from vcamswap.checks import Check, Context, Line
from vcamswap.cli import main
from vcamswap.engines import checks as engines_checks
from vcamswap.faces import checks as faces_checks
from vcamswap.outputs import checks as outputs_checks
from vcamswap.outputs import v4l2
from vcamswap.settings import Settings
from vcamswap.tools import doctor
from vcamswap.tools.doctor import register_check, run_checks


def standins() -> ModuleType:
    from vcamswap.modelstore import standins

    return standins


def lines_of(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def doctor_here(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, settings_text: str
) -> tuple[int, list[str], str]:
    """`vcamswap doctor` on this machine with a settings file saying `settings_text`: exit code, lines, summary."""
    settings = tmp_path / "settings.toml"
    settings.write_text(settings_text, encoding="utf-8")
    code = main(["doctor", "--settings", str(settings), "--models", str(tmp_path / "models")])
    captured = capsys.readouterr()
    return code, lines_of(captured.out), captured.err.strip()


def problems(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("problem")]


def test_doctor_runs_here_and_every_line_is_ok_or_a_problem_with_a_fix(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, summary = doctor_here(capsys, tmp_path, 'engine = "lite"\npreset = "fast"\n')
    assert out, "doctor printed nothing"
    for line in out:
        assert line.startswith(("OK ", "problem ")), line
        if line.startswith("problem"):
            assert " -- fix: " in line, line
    topics = {line.split(":")[0].split(None, 1)[1] for line in out}
    assert {"settings", "camera", "virtual camera", "engine lite", "engine", "providers", "faces"} <= topics
    assert any(line.startswith("OK       settings: ") and "parsed" in line for line in out)
    assert any(line.startswith("OK       engine lite: embedded models load") for line in out)
    assert any("providers: present: " in line and "cpu" in line for line in out)
    # Neural models are optional with the lite engine: reported, not a problem.
    assert any(line.startswith("OK       model inswapper_128: not installed") for line in out)
    # The exit code and the summary count the problems this machine has (a camera, say: CI has none).
    found = len(problems(out))
    assert (code, summary) == ((1, f"{found} problem{'s' if found != 1 else ''} found") if found
                               else (0, "all checks passed"))

    # The control: the same machine with a broken settings file has exactly that problem more, and fails.
    broken_code, broken, broken_summary = doctor_here(capsys, tmp_path, 'engine = "lite"\npreset = \n')
    added = [line for line in problems(broken) if line not in problems(out)]
    assert len(problems(broken)) == found + 1 and len(added) == 1 and added[0].startswith("problem  settings: ")
    assert broken_code == 1 and broken_summary == f"{found + 1} problem{'s' if found else ''} found"


def test_broken_settings_are_reported_with_line_and_column(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    settings = tmp_path / "settings.toml"
    settings.write_text('engine = "lite"\npreset = \n', encoding="utf-8")
    ctx = Context(Settings(), settings, *_load(settings)[1:])
    [line] = list(doctor.check_settings(ctx))
    assert not line.ok and "line 2" in line.text and "column" in line.text and str(settings) in line.fix  # type: ignore[operator]


def _load(path: Path) -> tuple[Settings, str | None]:
    from vcamswap.settings import load_settings

    return load_settings(path)


# ----------------------------------------------------------------------------------------------- devices


def fake_v4l(root: Path, nodes: dict[int, tuple[str, bool]]) -> tuple[str, str]:
    """A sysfs/dev pair: video N -> (name, virtual). Virtual ones live under devices/virtual as on Linux."""
    sysfs, dev = root / "sys" / "class" / "video4linux", root / "dev"
    sysfs.mkdir(parents=True)
    dev.mkdir()
    for n, (name, virtual) in nodes.items():
        real = root / "sys" / "devices" / ("virtual" if virtual else "pci0000:00/usb1") / "video4linux" / f"video{n}"
        real.mkdir(parents=True)
        (real / "name").write_text(name + "\n", encoding="utf-8")
        (sysfs / f"video{n}").symlink_to(real)
        (dev / f"video{n}").write_bytes(b"")
    return str(sysfs), str(dev)


def check(ctx: Context, fn: Check) -> list[Line]:
    return list(fn(ctx))


def test_cameras_and_loopback_devices_are_told_apart(tmp_path: Path) -> None:
    sysfs, dev = fake_v4l(tmp_path, {0: ("Integrated Camera", False), 10: ("Swap Cam", True)})
    ctx = Context(Settings(), tmp_path / "s.toml", system="Linux", sysfs=sysfs, dev=dev)
    nodes = v4l2.video_nodes(sysfs, dev)
    assert [(n.path.endswith("video0"), n.label, n.virtual) for n in nodes] == [
        (True, "Integrated Camera", False), (False, "Swap Cam", True)
    ]
    [cam] = check(ctx, capture_checks.check_cameras)  # the node is not a real device: it opens nothing
    assert not cam.ok and "no camera delivers frames" in cam.text and "Integrated Camera" in cam.text
    vcam = check(ctx, outputs_checks.check_virtual_camera)
    assert vcam[0].ok and "v4l2loopback" in vcam[0].text
    assert vcam[1] == Line(True, "virtual camera", f"'Swap Cam' is {dev}/video10")

    listed = check(Context(Settings(), tmp_path / "s.toml", system="Linux", sysfs=sysfs, dev=dev,
                           probe_cameras=False), capture_checks.check_cameras)
    assert listed == [Line(True, "camera", f"{dev}/video0 (Integrated Camera) present (not opened)")]


def test_a_loopback_device_with_another_name_is_a_problem(tmp_path: Path) -> None:
    sysfs, dev = fake_v4l(tmp_path, {10: ("Dummy video device", True)})
    settings = Settings(vcam_device="/dev/video3")
    lines = check(Context(settings, tmp_path / "s.toml", system="Linux", sysfs=sysfs, dev=dev),
                  outputs_checks.check_virtual_camera)
    named = lines[1]
    assert not named.ok and "no device named 'Swap Cam'" in named.text and "Dummy video device" in named.text
    assert named.fix and 'card_label="Swap Cam"' in named.fix and f"--vcam-device {dev}/video10" in named.fix
    assert not lines[2].ok and "vcam_device /dev/video3 is not a v4l2loopback device" in lines[2].text
    ctx = Context(settings, tmp_path / "s.toml", system="Linux", sysfs=sysfs, dev=dev)
    cams = check(ctx, capture_checks.check_cameras)
    assert not cams[0].ok and "no camera device" in cams[0].text  # a loopback device is not a camera


# ----------------------------------------------------------------------------------------------- models, providers


def test_installed_models_are_verified_and_placed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ms = standins()
    models = tmp_path / "models"
    paths = ms.make_all(models)
    manifest = tmp_path / "manifest.toml"
    rows = ["schema = 1"]
    for name, p in paths.items():
        data = p.read_bytes()
        rows += [f"[models.{name}]", f'file = "{p.name}"', f"size = {len(data)}",
                 f'sha256 = "{hashlib.sha256(data).hexdigest()}"', "sources = []"]
    manifest.write_text("\n".join(rows) + "\n", encoding="utf-8")
    settings = Settings(engine="inswapper", models=str(models), provider="cpu")
    ctx = Context(settings, tmp_path / "s.toml", manifest=manifest, load_models=True)
    lines = check(ctx, engines_checks.check_engines) + check(ctx, engines_checks.check_providers)
    text = "\n".join(line.render() for line in lines)
    for name in paths:
        assert f"OK       model {name}: installed and verified" in text
        assert f"OK       providers: {name} runs on cpu" in text
    assert "OK       engine: 'inswapper' selected" in text
    assert "using cpu (asked for; chain CPUExecutionProvider)" in text

    # A damaged file is a problem with the reinstall command; the engine falls back.
    data = paths["inswapper_128"].read_bytes()
    paths["inswapper_128"].write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    lines = check(Context(settings, tmp_path / "s.toml", manifest=manifest), engines_checks.check_engines)
    bad = [line for line in lines if line.topic == "model inswapper_128"]
    assert not bad[0].ok and "SHA-256" in bad[0].text and bad[0].fix == "vcamswap models download inswapper_128 --force"
    shutil.rmtree(models)
    lines = check(Context(settings, tmp_path / "s.toml", manifest=manifest), engines_checks.check_engines)
    assert any(not line.ok and "will use 'lite'" in line.text for line in lines)


def test_an_absent_provider_is_a_problem_with_the_package_to_install(tmp_path: Path) -> None:
    lines = check(Context(Settings(provider="cuda"), tmp_path / "s.toml"), engines_checks.check_providers)
    bad = [line for line in lines if not line.ok]
    assert len(bad) == 1 and "cuda is not available here" in bad[0].text
    assert bad[0].fix and "onnxruntime-gpu" in bad[0].fix
    lines = check(Context(Settings(provider="warp-drive"), tmp_path / "s.toml"), engines_checks.check_providers)
    assert not lines[0].ok and "unknown execution provider" in lines[0].text


# ----------------------------------------------------------------------------------------------- faces, extension


def test_faces_folder_counts_the_usable_ones(media: Path, tmp_path: Path) -> None:
    faces = tmp_path / "faces"
    faces.mkdir()
    shutil.copy(media / "faces" / "single" / "biden.jpg", faces / "biden.jpg")
    cv2.imwrite(str(faces / "wall.png"), np.full((200, 200, 3), 180, np.uint8))
    lines = check(Context(Settings(faces=str(faces)), tmp_path / "s.toml"), faces_checks.check_faces)
    assert lines[0] == Line(True, "faces", f"1 of 2 usable in {faces}", "vcamswap faces add PHOTO.jpg")
    assert not lines[1].ok and lines[1].topic == "face wall" and "vcamswap faces remove wall" in (lines[1].fix or "")
    empty = check(Context(Settings(faces=str(tmp_path / "none")), tmp_path / "s.toml"), faces_checks.check_faces)
    assert not empty[0].ok and empty[0].fix == "vcamswap faces add PHOTO.jpg"


def test_checks_can_be_added_and_a_crashing_one_is_reported(tmp_path: Path) -> None:
    def check_tray(ctx: Context) -> Iterable[Line]:
        yield Line(True, "tray", "icon shown")

    def check_hotkeys(ctx: Context) -> Iterable[Line]:
        raise RuntimeError("no X display\nmore detail")

    before = list(doctor.CHECKS)
    try:
        register_check(check_tray)
        register_check(check_hotkeys)
        register_check(check_tray)
        assert doctor.CHECKS[-2:] == [check_tray, check_hotkeys]
        ctx = Context(Settings(), tmp_path / "s.toml", probe_cameras=False, hash_models=False)
        lines = run_checks(ctx, [doctor.check_settings, *doctor.CHECKS[-2:]])
    finally:
        doctor.CHECKS[:] = before
    assert lines[1] == Line(True, "tray", "icon shown")
    assert not lines[2].ok and lines[2].topic == "hotkeys" and lines[2].text == "check failed: no X display"
