"""`vcamswap setup` on Linux: the decision logic against sysfs/proc/modprobe stand-ins in a temporary root,
and the test pattern read back through the user-space v4l2 device stand-in (tests/vcam_stub)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vcamswap.outputs.vcam_setup import LoopbackState, Plan, plan_linux, read_state

TESTS = Path(__file__).resolve().parent
STANDINS = TESTS / "setup_stub"
KERNEL = "6.1.0-stand-in"
SWAP_CAM_STEP = "modprobe v4l2loopback devices=1 video_nr=10 'card_label=Swap Cam' exclusive_caps=1"

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="v4l2loopback is Linux only")


def make_root(tmp: Path, installed: bool = True, camera: bool = True) -> Path:
    root = tmp / "root"
    (root / "proc/sys/kernel").mkdir(parents=True)
    (root / "proc/sys/kernel/osrelease").write_text(KERNEL + "\n")
    modules = root / "lib/modules" / KERNEL
    (modules / "kernel/drivers/media").mkdir(parents=True)
    (modules / "modules.builtin").write_text("kernel/drivers/media/usb/uvc/uvcvideo.ko\n")
    if installed:
        (modules / "updates/dkms").mkdir(parents=True)
        (modules / "updates/dkms/v4l2loopback.ko.xz").write_bytes(b"")
    (root / "sys/class/video4linux").mkdir(parents=True)
    (root / "dev").mkdir()
    if camera:  # a USB webcam at /dev/video0 and its metadata node /dev/video1
        for n in (0, 1):
            entry = root / f"sys/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0/video4linux/video{n}"
            entry.mkdir(parents=True)
            (entry / "name").write_text("Integrated Camera\n")
            (root / f"sys/class/video4linux/video{n}").symlink_to(entry)
            (root / f"dev/video{n}").touch()
    return root


def stand_in_env(root: Path) -> dict[str, str]:
    return {**os.environ, "SETUP_STUB_ROOT": str(root), "PATH": f"{STANDINS}{os.pathsep}{os.environ['PATH']}"}


def modprobe(root: Path, *args: str) -> None:
    """Another app loading the module its way (OBS: one device, its own label, exclusive_caps=1)."""
    subprocess.run([str(STANDINS / "modprobe"), *args], env=stand_in_env(root), check=True)


def hold(root: Path, pid: int, comm: str, device: str) -> None:
    (root / f"proc/{pid}/fd").mkdir(parents=True)
    (root / f"proc/{pid}/comm").write_text(comm + "\n")
    (root / f"proc/{pid}/fd/27").symlink_to(device)


def plan_for(root: Path, package_manager: str | None = "apt-get") -> tuple[LoopbackState, Plan]:
    state = read_state(root)
    return state, plan_linux(state, package_manager)


def commands(plan: Plan) -> list[str]:
    return [s.command() for s in plan.steps]


OBS = ("v4l2loopback", "devices=1", "video_nr=2", "card_label=OBS Virtual Camera", "exclusive_caps=1")


# ---------------------------------------------------------------------------------------------------------
# decisions


def test_module_missing_installs_and_loads(tmp_path: Path) -> None:
    state, plan = plan_for(make_root(tmp_path, installed=False))
    assert not state.installed and not state.loaded and state.used_numbers == {0, 1}
    assert commands(plan) == ["apt-get install -y v4l2loopback-dkms", SWAP_CAM_STEP]
    assert plan.findings == [(False, f"v4l2loopback is not installed for kernel {KERNEL}"),
                             (False, "v4l2loopback is not loaded")]  # fmt: skip
    assert plan.device == 10 and 'card_label="Swap Cam"' in plan.modprobe_conf


def test_without_a_known_package_manager_it_says_what_to_install(tmp_path: Path) -> None:
    _, plan = plan_for(make_root(tmp_path, installed=False), package_manager=None)
    assert plan.steps == [] and plan.blocked is not None and "v4l2loopback-dkms" in plan.blocked


def test_a_taken_number_is_skipped(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    (root / "dev/video10").touch()
    _, plan = plan_for(root)
    assert commands(plan) == [SWAP_CAM_STEP.replace("video_nr=10", "video_nr=11")]


def test_loaded_by_another_app_is_reloaded_keeping_its_device(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    modprobe(root, *OBS)
    state, plan = plan_for(root)
    assert [(d.number, d.label, d.exclusive_caps) for d in state.devices] == [(2, "OBS Virtual Camera", True)]
    assert plan.findings[1] == (False, "v4l2loopback is loaded with other options (/dev/video2 'OBS Virtual Camera')")
    assert commands(plan) == [
        "modprobe -r v4l2loopback",
        "modprobe v4l2loopback devices=2 video_nr=2,10 'card_label=OBS Virtual Camera,Swap Cam' exclusive_caps=1,1",
    ]
    assert 'card_label="OBS Virtual Camera,Swap Cam"' in plan.modprobe_conf


def test_in_use_by_another_app_says_what_holds_it(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    modprobe(root, *OBS)
    hold(root, 4242, "obs", "/dev/video2")
    hold(root, 4300, "cheese", "/dev/video0")  # the real camera: not in the way
    _, plan = plan_for(root)
    assert plan.steps == []
    assert plan.blocked == ("v4l2loopback is in use: obs (pid 4242) has /dev/video2 open. Close that, then run "
                            "'vcamswap setup' again (its devices are kept)")  # fmt: skip


def test_swap_cam_without_exclusive_caps_is_redone(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    modprobe(root, "v4l2loopback", "devices=1", "video_nr=10", "card_label=Swap Cam")
    state, plan = plan_for(root)
    assert state.swap_cam() is not None and state.swap_cam().exclusive_caps is False  # type: ignore[union-attr]
    assert "without exclusive_caps" in plan.findings[1][1]
    assert commands(plan) == ["modprobe -r v4l2loopback", SWAP_CAM_STEP]


def test_ready_needs_no_step_and_other_configs_are_named(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    modprobe(root, *SWAP_CAM_STEP.replace("'", "").split()[1:4], "card_label=Swap Cam", "exclusive_caps=1")
    _, plan = plan_for(root)
    assert plan.steps == [] and plan.device == 10
    assert plan.findings[-1] == (True, "v4l2loopback is loaded: 'Swap Cam' is /dev/video10 with exclusive_caps=1")
    (root / "etc/modprobe.d").mkdir(parents=True)
    (root / "etc/modprobe.d/obs.conf").write_text("options v4l2loopback card_label=OBS\n")
    (root / "dev/video10").unlink()  # gone after a reboot: it has to be made again
    shutil.rmtree(root / "sys/module/v4l2loopback")
    _, plan = plan_for(root)
    assert any("/etc/modprobe.d/obs.conf also sets v4l2loopback options" in line for _, line in plan.findings)


# ---------------------------------------------------------------------------------------------------------
# the command, end to end: stand-in modprobe/apt-get in a temporary root, the v4l2 stand-in for the device


@pytest.fixture(scope="module")
def v4l2_stub(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        pytest.skip("gcc is not installed: cannot build the v4l2 stand-in")
    lib = tmp_path_factory.mktemp("stub") / "libv4l2stub.so"
    subprocess.run([gcc, "-O1", "-Wall", "-shared", "-fPIC", "-o", str(lib), str(TESTS / "vcam_stub/v4l2_stub.c"),
                    "-ldl"], check=True)  # fmt: skip
    return lib


def setup_cli(root: Path, lib: Path, *args: str) -> subprocess.CompletedProcess[str]:
    stub = root.parent / "devices"
    (stub / "sys/video10").mkdir(parents=True, exist_ok=True)
    (stub / "sys/video10/name").write_text("Swap Cam\n")
    env = {**stand_in_env(root), "LD_PRELOAD": str(lib), "VCAM_STUB_DIR": str(stub), "VCAM_STUB_DEVICES": "10",
           "PYTHONPATH": str(TESTS.parent)}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "vcamswap", "setup", "--root", str(root), *args], env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)  # fmt: skip


@pytest.mark.skipif(os.geteuid() != 0, reason="runs the steps without sudo only as root")
def test_setup_prints_the_steps_runs_them_and_reads_the_pattern_back(tmp_path: Path, v4l2_stub: Path) -> None:
    root = make_root(tmp_path, installed=False)
    r = setup_cli(root, v4l2_stub)
    assert r.returncode == 1, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:3] == [f"problem  v4l2loopback is not installed for kernel {KERNEL}",
                         "problem  v4l2loopback is not loaded", "to set up Swap Cam, run:"]  # fmt: skip
    assert lines[3] == "  apt-get install -y v4l2loopback-dkms    # install v4l2loopback"
    assert lines[4] == f"  {SWAP_CAM_STEP}    # create 'Swap Cam' as /dev/video10"
    assert lines[5].startswith("  install -D -m 644 ") and lines[5].endswith(
        f"{root}/etc/modprobe.d/vcamswap-v4l2loopback.conf    # load it the same way at boot "
        "(/etc/modprobe.d/vcamswap-v4l2loopback.conf)")
    assert not (root / "apt-get.log").exists() and not (root / "modprobe.log").exists()  # nothing ran

    r = setup_cli(root, v4l2_stub, "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    ran = [x for x in r.stdout.splitlines() if x.startswith("+ ")]
    assert ran[:2] == ["+ apt-get install -y v4l2loopback-dkms", f"+ {SWAP_CAM_STEP}"] and len(ran) == 4
    assert "OK       a test pattern sent to /dev/video10 was read back intact" in r.stdout
    assert (root / "modprobe.log").read_text().splitlines() == [SWAP_CAM_STEP.replace("'", "").removeprefix(
        "modprobe ")]  # fmt: skip
    conf = (root / "etc/modprobe.d/vcamswap-v4l2loopback.conf").read_text()
    assert 'options v4l2loopback devices=1 video_nr=10 card_label="Swap Cam" exclusive_caps=1' in conf
    assert (root / "etc/modules-load.d/vcamswap-v4l2loopback.conf").read_text().endswith("\nv4l2loopback\n")
    log = (root.parent / "devices/video10.log").read_text().splitlines()
    assert "OPEN reader" in log and "G_FMT capture" in log and any(x.startswith("READ ") for x in log)

    # Once set up, it only checks: no steps, the pattern read back again.
    r = setup_cli(root, v4l2_stub, "--yes")
    assert r.returncode == 0 and "+ " not in r.stdout, r.stdout + r.stderr
    assert "read back intact" in r.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="runs the steps without sudo only as root")
def test_a_boot_file_changed_by_the_user_is_left_alone(tmp_path: Path, v4l2_stub: Path) -> None:
    root = make_root(tmp_path)
    mine = "# my own camera setup\noptions v4l2loopback devices=1 video_nr=10 card_label=\"Swap Cam\"\n"
    (root / "etc/modprobe.d").mkdir(parents=True)
    (root / "etc/modprobe.d/vcamswap-v4l2loopback.conf").write_text(mine)
    r = setup_cli(root, v4l2_stub, "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    assert (root / "etc/modprobe.d/vcamswap-v4l2loopback.conf").read_text() == mine
    assert "/etc/modprobe.d/vcamswap-v4l2loopback.conf was changed by you and is left as it is" in r.stdout
    assert f"+ {SWAP_CAM_STEP}" in r.stdout  # the camera is still made now, with our options


def test_a_blocked_setup_is_one_line(tmp_path: Path, v4l2_stub: Path) -> None:
    root = make_root(tmp_path)
    modprobe(root, *OBS)
    hold(root, 4242, "obs", "/dev/video2")
    r = setup_cli(root, v4l2_stub, "--yes")
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == ["vcamswap: v4l2loopback is in use: obs (pid 4242) has /dev/video2 "
                                             "open. Close that, then run 'vcamswap setup' again (its devices are "
                                             "kept)"]  # fmt: skip


def test_only_the_boot_files_missing_still_checks_the_camera(tmp_path: Path, v4l2_stub: Path) -> None:
    root = make_root(tmp_path)
    modprobe(root, "v4l2loopback", "devices=1", "video_nr=10", "card_label=Swap Cam", "exclusive_caps=1")
    r = setup_cli(root, v4l2_stub)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "to keep Swap Cam across reboots, run:" in r.stdout
    assert "read back intact" in r.stdout and not (root / "etc/modprobe.d").exists()
