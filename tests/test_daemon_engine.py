"""The swap model and the engine chosen on a running daemon, through its real control socket and the CLI: a model
whose files are missing is refused in one line (the command that fetches it included) and the current one stays;
the engine is switched lite -> inswapper -> lite while Swap Cam goes on receiving frames; bad names get one
line; choices are saved."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_util import DaemonProcess, default_args, media_path, running_daemon, wait_until
from panel_util import PanelClient

from vcamswap.modelstore.installed import file_names, files_for_model


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[DaemonProcess]:
    """A lite daemon whose models folder holds the neural engine's stand-ins (inswapper_128 and what it needs)."""
    home = tmp_path_factory.mktemp("engine-daemon")
    faces = home / "data" / "faces"
    faces.mkdir(parents=True)
    shutil.copy(media_path("faces/single/obama_official_portrait.jpg"), faces / "obama.jpg")
    models = home / "models"
    shutil.copytree(models_dir, models)
    with running_daemon(home, default_args() + ["--models", str(models)]) as d:
        yield d


def one_line_error(reply: dict[str, object]) -> str:
    assert reply["ok"] is False
    error = str(reply["error"])
    assert "\n" not in error
    return error


def test_a_missing_model_is_refused_with_the_command_that_fetches_it(daemon: DaemonProcess) -> None:
    st = daemon.status()
    assert st["model"] == "inswapper_128" and st["models"] == ["inswapper_128"]
    error = one_line_error(daemon.request("model", "ghost_2_256"))
    assert "ghost_2_256 is not installed" in error and "vcamswap models download ghost_2_256" in error
    assert daemon.status()["model"] == "inswapper_128"
    r = daemon.cli("model", "ghost_3_256")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "vcamswap models download ghost_3_256" in r.stderr
    assert "unknown model 'ghost_9'" in one_line_error(daemon.request("model", "ghost_9"))
    assert "unknown model" in one_line_error(daemon.request("model"))
    frames = daemon.vcam_frames()
    wait_until(lambda: daemon.vcam_frames() > frames + 5, "frames still published")
    assert daemon.status()["model"] == "inswapper_128"


def test_a_model_chosen_with_lite_in_force_is_saved_and_said_to_wait_for_the_neural_engine(
    daemon: DaemonProcess,
) -> None:
    """ghost_1_256's files appear while running (the lite engine in force never loads a swap model, so they are
    only looked at): it can be chosen at once, and the choice is saved."""
    models = Path(daemon.args[daemon.args.index("--models") + 1])
    # Only the files it lacks: the detector and ArcFace it shares with inswapper_128 are there already.
    added = [p for name in file_names("ghost_1_256") if not (p := models / name).exists()]
    for path in added:
        path.write_bytes(b"weights")
    try:
        r = daemon.cli("model", "ghost_1_256")
        assert r.returncode == 0, r.stderr
        assert "model ghost_1_256 saved; the lite engine does not use a swap model" in r.stdout
        st = daemon.status()
        assert st["model"] == "ghost_1_256" and st["knobs"]["model"] == "ghost_1_256"
        assert st["models"] == ["inswapper_128", "ghost_1_256"]
        wait_until(lambda: 'model = "ghost_1_256"' in daemon.settings.read_text() if daemon.settings.exists()
                   else False, "the model saved")
        assert daemon.request("model", "inswapper_128")["ok"] is True
        wait_until(lambda: 'model = "inswapper_128"' in daemon.settings.read_text(), "the model saved again")
    finally:
        for path in added:
            path.unlink()
    wait_until(lambda: daemon.status()["models"] == ["inswapper_128"], "the removed model no longer offered")


def test_the_engine_switches_while_frames_keep_being_published(daemon: DaemonProcess) -> None:
    assert daemon.status()["engine"] == "lite"
    reply = daemon.request("engine", "inswapper")
    assert reply["ok"] is True and reply["engine_pending"] == "inswapper" and "building" in reply["note"]
    published = daemon.vcam_frames()
    st = wait_until(lambda: (s := daemon.status())["engine"] == "inswapper" and s, "the neural engine in force")
    during = daemon.vcam_frames() - published
    assert during > 0  # Swap Cam went on receiving frames while the engine was built
    assert st["engine_pending"] is None and st["engine_problem"] is None and st["knobs"]["boosts"] is True
    frames = daemon.vcam_frames()
    wait_until(lambda: daemon.vcam_frames() > frames + 10, "frames published by the neural engine's loop")
    wait_until(lambda: 'engine = "inswapper"' in daemon.settings.read_text(), "the engine saved")
    r = daemon.cli("model", "inswapper_128")  # the neural engine runs it: no word about lite
    assert r.returncode == 0 and r.stdout.strip() == "model inswapper_128 in force", r.stdout + r.stderr

    r = daemon.cli("engine", "lite")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "engine lite in force"
    assert daemon.status()["engine"] == "lite"
    frames = daemon.vcam_frames()
    wait_until(lambda: daemon.vcam_frames() > frames + 10, "frames published by lite again")
    assert "unknown engine 'gpu'" in one_line_error(daemon.request("engine", "gpu"))
    assert "remote: no server given" in one_line_error(daemon.request("engine", "remote"))
    r = daemon.cli("engine", "gpu")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert daemon.status()["engine"] == "lite"


def test_an_engine_whose_models_are_missing_is_refused_and_lite_stays(daemon: DaemonProcess) -> None:
    models = Path(daemon.args[daemon.args.index("--models") + 1])
    held = models / "held"
    held.mkdir()
    detector = files_for_model("inswapper_128")[0]
    (models / f"{detector}.onnx").rename(held / f"{detector}.onnx")
    try:
        error = one_line_error(daemon.request("engine", "inswapper"))
        assert f"vcamswap models download {detector}" in error
        assert "inswapper_128 is not installed" in one_line_error(daemon.request("model", "inswapper_128"))
    finally:
        (held / f"{detector}.onnx").rename(models / f"{detector}.onnx")
    st = daemon.status()
    assert st["engine"] == "lite" and st["engine_pending"] is None and st["engine_problem"] is None
    frames = daemon.vcam_frames()
    wait_until(lambda: daemon.vcam_frames() > frames + 5, "frames still published")


def test_the_panel_chooses_through_the_same_intents(daemon: DaemonProcess) -> None:
    panel = PanelClient(daemon.status()["panel_url"])
    assert panel.login().status == 303
    bad = panel.intent("model", "ghost_2_256")
    assert bad.status == 400 and "vcamswap models download ghost_2_256" in bad.json()["error"]
    ok = panel.intent("model", "inswapper_128")
    assert ok.status == 200 and ok.json()["model"] == "inswapper_128" and "lite engine" in ok.json()["note"]
    assert panel.intent("engine", "gpu").json()["error"].startswith("unknown engine 'gpu'")
    assert daemon.status()["engine"] == "lite"
