"""`vcamswap service`: start-up files written into a temporary home, never over the user's changes."""

from __future__ import annotations

import os
import plistlib
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.cli import run_cli

from vcamswap.daemon.service import (
    MARKER,
    TEMPLATE_FILES,
    Target,
    install,
    status,
    target_for,
    uninstall,
    v4l2loopback_command,
)
from vcamswap.outputs.v4l2 import V4L2LOOPBACK_MODPROBE

REPO = Path(__file__).resolve().parents[1]


def service_cli(home: Path, *args: str, path_prefix: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`vcamswap service ...` with `home` as the user's home (and `path_prefix` first on PATH)."""
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / "xdg")}
    if path_prefix is not None:
        env["PATH"] = f"{path_prefix}{os.pathsep}{env['PATH']}"
    return run_cli("service", *args, env=env, timeout=120)


def fake_systemctl(tmp_path: Path, works: bool) -> tuple[Path, Path]:
    """A `systemctl` on PATH standing in for the user's systemd: logs its arguments, succeeds or not."""
    bin_dir, log = tmp_path / "bin", tmp_path / "systemctl.log"
    bin_dir.mkdir(exist_ok=True)
    exe = bin_dir / "systemctl"
    exe.write_text(f'#!/bin/sh\necho "$@" >> {log}\n' + ("exit 0\n" if works else
                   'echo "Failed to connect to bus: No medium found" >&2\nexit 1\n'))
    exe.chmod(0o755)
    return bin_dir, log


def test_templates_in_the_source_tree_match_the_packaged_ones() -> None:
    for rel, text in TEMPLATE_FILES.items():
        on_disk = (REPO / "service" / rel).read_bytes().decode().replace("\r\n", "\n")
        assert on_disk == text, rel


def test_linux_unit_runs_this_interpreter(tmp_path: Path) -> None:
    t = target_for("Linux", tmp_path, {"XDG_CONFIG_HOME": str(tmp_path / "xdg")})
    assert t.path == tmp_path / "xdg" / "systemd" / "user" / "vcamswap.service"
    exec_line = next(line for line in t.content.splitlines() if line.startswith("ExecStart="))
    assert shlex.split(exec_line.removeprefix("ExecStart=")) == [sys.executable, "-m", "vcamswap", "daemon"]
    assert "WantedBy=graphical-session.target" in t.content and MARKER in t.content
    assert target_for("Linux", tmp_path, {}).path == tmp_path / ".config" / "systemd" / "user" / "vcamswap.service"


def test_linux_unit_quotes_odd_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", "/opt/my apps/100%/python3")
    t = target_for("Linux", tmp_path, {})
    assert 'ExecStart="/opt/my apps/100%%/python3" -m vcamswap daemon' in t.content


def test_macos_agent_is_a_valid_plist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", "/Users/a&b/venv/bin/python")
    t = target_for("Darwin", tmp_path, {})
    assert t.path == tmp_path / "Library" / "LaunchAgents" / "org.vcamswap.daemon.plist"
    plist = plistlib.loads(t.content.encode())
    assert plist["ProgramArguments"] == ["/Users/a&b/venv/bin/python", "-m", "vcamswap", "daemon"]
    assert plist["RunAtLoad"] is True and plist["Label"] == "org.vcamswap.daemon"
    assert plist["StandardErrorPath"] == str(tmp_path / "Library" / "Logs" / "vcamswap.log")


def test_windows_startup_file(tmp_path: Path) -> None:
    t = target_for("Windows", tmp_path, {"APPDATA": str(tmp_path / "Roaming")})
    assert t.path == tmp_path / "Roaming" / "Microsoft" / "Windows" / "Start Menu" / "Programs" / "Startup" / \
        "vcamswap.cmd"
    assert f'"{sys.executable}" -m vcamswap daemon' in t.content and t.newline == "\r\n"
    assert install(t, enable=False) == 0
    assert t.path.read_bytes().count(b"\r\n") == len(t.content.splitlines())
    assert install(t, enable=False) == 0  # CRLF on disk still counts as ours
    assert uninstall(t, enable=False) == 0 and not t.path.exists()


def test_macos_install_and_uninstall(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t = target_for("Darwin", tmp_path, {})
    assert install(t) == 0  # launchctl is only called on macOS itself
    assert t.path.read_text() == t.content
    assert uninstall(t) == 0 and not t.path.exists()


def test_cli_install_is_idempotent_and_says_how_to_enable(tmp_path: Path) -> None:
    bin_dir, log = fake_systemctl(tmp_path, works=False)
    unit = tmp_path / "xdg" / "systemd" / "user" / "vcamswap.service"
    r = service_cli(tmp_path, "install", path_prefix=bin_dir)
    assert r.returncode == 0, r.stderr
    assert f"installed {unit}" in r.stdout
    assert "systemctl --user is not usable here (Failed to connect to bus: No medium found)" in r.stdout
    assert "systemctl --user daemon-reload && systemctl --user enable --now vcamswap.service" in r.stdout
    assert "sudo sh -c 'install -m 644 " in r.stdout  # the one command for the v4l2loopback snippets
    content = unit.read_text()
    r = service_cli(tmp_path, "install", path_prefix=bin_dir)
    assert r.returncode == 0 and f"already installed: {unit}" in r.stdout
    assert unit.read_text() == content
    assert log.read_text().splitlines() == ["--user show-environment"] * 2  # asked, never enabled


@pytest.fixture
def linux(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Target:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    return target_for("Linux")


def test_linux_install_status_uninstall(linux: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    bin_dir, _ = fake_systemctl(tmp_path, works=False)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert linux.path == tmp_path / "xdg" / "systemd" / "user" / "vcamswap.service"
    assert install(linux) == 0
    capsys.readouterr()
    assert status(linux) == 0
    out = capsys.readouterr().out
    assert "installed, up to date" in out and "daemon: not running" in out
    assert uninstall(linux) == 0 and not linux.path.exists()
    assert f"removed {linux.path}" in capsys.readouterr().out
    assert uninstall(linux) == 0 and "not installed" in capsys.readouterr().out
    assert status(linux) == 3 and "not installed" in capsys.readouterr().out


def test_linux_install_enables_with_a_working_systemctl(linux: Target, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    bin_dir, log = fake_systemctl(tmp_path, works=True)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert install(linux) == 0
    assert "enabled and started vcamswap.service" in capsys.readouterr().out
    assert log.read_text().splitlines() == [
        "--user show-environment", "--user daemon-reload", "--user enable --now vcamswap.service"]
    log.unlink()
    assert uninstall(linux) == 0
    assert log.read_text().splitlines() == [
        "--user show-environment", "--user disable --now vcamswap.service", "--user daemon-reload"]


def test_a_file_the_user_changed_is_not_replaced_without_force(linux: Target,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert install(linux, enable=False) == 0
    mine = linux.path.read_text().replace("RestartSec=5", "RestartSec=30")
    linux.path.write_text(mine)
    capsys.readouterr()
    assert install(linux) == 1  # not a terminal: nobody to ask, so no
    err = capsys.readouterr().err
    assert "differs from what vcamswap would write" in err and "--force" in err
    assert linux.path.read_text() == mine
    status(linux)
    assert "differs from what this vcamswap would write" in capsys.readouterr().out
    assert install(linux, force=True, enable=False) == 0
    assert f"replaced {linux.path}" in capsys.readouterr().out
    assert "RestartSec=5" in linux.path.read_text()


def test_uninstall_leaves_a_foreign_file_alone(tmp_path: Path) -> None:
    t = target_for("Linux", tmp_path, {})
    t.path.parent.mkdir(parents=True)
    t.path.write_text("[Service]\nExecStart=/usr/bin/something-else\n")
    assert uninstall(t, enable=False) == 1 and t.path.exists()
    assert uninstall(t, force=True, enable=False) == 0 and not t.path.exists()


def test_module_snippets_and_command(tmp_path: Path) -> None:
    cmd = v4l2loopback_command(tmp_path)
    assert (tmp_path / "v4l2loopback.conf").read_text() == V4L2LOOPBACK_MODPROBE
    assert 'options v4l2loopback devices=1 video_nr=10 card_label="Swap Cam" exclusive_caps=1' in \
        V4L2LOOPBACK_MODPROBE.splitlines()
    assert (tmp_path / "v4l2loopback-modules-load.conf").read_text().splitlines()[-1] == "v4l2loopback"
    argv = shlex.split(cmd)
    assert argv[:3] == ["sudo", "sh", "-c"] and len(argv) == 4
    assert shlex.split(argv[3])[:4] == ["install", "-m", "644", str(tmp_path / "v4l2loopback.conf")]
    assert "/etc/modprobe.d/vcamswap-v4l2loopback.conf" in argv[3]
    assert "/etc/modules-load.d/vcamswap-v4l2loopback.conf" in argv[3]


def test_status_without_anything(tmp_path: Path) -> None:
    assert status(target_for("Windows", tmp_path, {"APPDATA": str(tmp_path)})) == 3
