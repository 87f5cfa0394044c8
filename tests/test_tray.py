"""The tray icon: images and tooltip, the menu's actions on Controls, and a real tray under Xvfb."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from daemon_util import (
    DaemonProcess,
    default_args,
    gtk_tray_desktop,
    media_path,
    tray_choose,
    tray_tooltip,
    wait_until,
    xdotool,
)

from vcamswap.controls import Controls, ControlState
from vcamswap.daemon.desktop.tray import Tray, TrayView, state_icon, tooltip, tray_problem
from vcamswap.modelstore.installed import ModelFiles, file_names

STATES = ["starting", "swapping", "off", "no-face", "paused", "error"]


@pytest.fixture
def menu_tray(monkeypatch: pytest.MonkeyPatch) -> tuple[Tray, Controls, list[str]]:
    """A Tray over Controls with three faces, on pystray's display-less backend: the menu objects are
    pystray's own, only nothing is drawn. Records "Open faces folder"."""
    monkeypatch.setenv("PYSTRAY_BACKEND", "dummy")
    import pystray

    faces = ("ann", "bob", "cy")
    controls = Controls(ControlState(face=faces[0], faces=faces))
    opened: list[str] = []
    return Tray(controls, lambda: opened.append("faces"), pystray=pystray), controls, opened


def texts(menu: Any) -> list[str]:
    return [item.text for item in menu]  # the visible items, as the backends draw them


# ---------------------------------------------------------------------------------------------------------


def test_each_state_has_its_own_icon() -> None:
    images = {s: state_icon(s, 32) for s in STATES}
    for img in images.values():
        assert img.size == (32, 32) and img.mode == "RGBA"
        assert img.getpixel((0, 0))[3] == 0  # round: the corners are transparent
    raw = {s: img.tobytes() for s, img in images.items()}
    assert len(set(raw.values())) == len(STATES)


def test_tooltip_shows_state_fps_face_and_preset() -> None:
    text = tooltip(TrayView("swapping", 29.74, "obama", "balanced"))
    assert text == "Swap Cam: swapping · 29.7 fps · face obama · balanced"
    assert "no face found" in tooltip(TrayView("no-face", 30, "obama", "fast", "no face in the picture"))
    assert "fps" not in tooltip(TrayView("paused", 0.0, None, "fast"))
    assert len(tooltip(TrayView("error", 0, "x" * 100, "fast", "y" * 200))) <= 120


def test_no_display_means_no_tray() -> None:
    assert tray_problem({}, "linux") == "no display (DISPLAY and WAYLAND_DISPLAY are unset)"
    assert tray_problem({"DISPLAY": ":0"}, "linux") is None
    assert tray_problem({"WAYLAND_DISPLAY": "wayland-0"}, "linux") is None
    assert tray_problem({}, "darwin") is None


@pytest.mark.parametrize("display_value", [None, ":4242"], ids=["unset", "dead-server"])
def test_unreachable_display_is_reported_not_raised(display_value: str | None, tmp_path: Path) -> None:
    """pystray raises Xlib errors or gi's ValueError (not ImportError) here; we turn them into one line."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "PYSTRAY_BACKEND")}
    if display_value:
        env["DISPLAY"] = display_value
    code = (
        "from vcamswap.daemon.desktop.tray import TrayUnavailable, load_pystray\n"
        "try:\n    load_pystray()\nexcept TrayUnavailable as e:\n    print('UNAVAILABLE', e)\n"
        "else:\n    print('LOADED')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("UNAVAILABLE "), r.stdout + r.stderr
    assert len(r.stdout.strip().splitlines()) == 1


def test_menu_items_act_on_controls(menu_tray: tuple[Tray, Controls, list[str]]) -> None:
    tray, controls, opened = menu_tray
    icon, menu = tray.icon, tray.icon.menu
    assert texts(menu) == ["Swap", "Source face", "Quality", "Model", "Likeness", "Faces in view", "Show preview",
                           "Show AI label", "Open faces folder", "Pause camera", "- - - -", "Quit"]
    swap, faces, quality, _, likeness, targets, preview, label, folder, pause, _, quit_ = list(menu)

    assert swap.checked is True
    swap(icon)
    assert controls.snapshot().swap_enabled is False and swap.checked is False
    swap(icon)
    assert controls.snapshot().swap_enabled is True

    assert texts(faces.submenu) == ["ann", "bob", "cy"]
    assert [i.checked for i in faces.submenu.items] == [True, False, False]
    assert all(i.radio for i in faces.submenu.items)
    faces.submenu.items[2](icon)
    assert controls.snapshot().face == "cy"
    assert [i.checked for i in faces.submenu.items] == [False, False, True]

    controls.set_faces(["ann", "dee"])  # the folder changed: the submenu follows, cy was dropped
    assert texts(faces.submenu) == ["ann", "dee"]
    assert controls.snapshot().face == "ann"
    controls.set_face_notes([("dee", "strong light from one side")])  # a photo with a limit is marked
    assert texts(faces.submenu) == ["ann", "dee (!)"]
    faces.submenu.items[1](icon)
    assert controls.snapshot().face == "dee" and [i.checked for i in faces.submenu.items] == [False, True]
    faces.submenu.items[0](icon)
    controls.set_faces([])
    assert [(i.text, i.enabled) for i in faces.submenu.items] == [("(no faces yet: Open faces folder)", False)]

    assert texts(quality.submenu) == ["fast", "balanced", "quality"]
    quality.submenu.items[0](icon)
    assert controls.snapshot().preset == "fast"
    assert [i.checked for i in quality.submenu.items] == [True, False, False]

    assert texts(likeness.submenu) == ["0", "0.25", "0.5", "0.75", "1"]
    assert [i.checked for i in likeness.submenu.items] == [True, False, False, False, False]
    likeness.submenu.items[3](icon)
    assert controls.snapshot().likeness == 0.75 and likeness.submenu.items[3].checked

    assert texts(targets.submenu) == ["one", "all"]
    assert [i.checked for i in targets.submenu.items] == [True, False] and all(i.radio for i in targets.submenu.items)
    targets.submenu.items[1](icon)
    assert controls.snapshot().targets == "all" and [i.checked for i in targets.submenu.items] == [False, True]

    preview(icon)
    assert controls.snapshot().preview is True and preview.checked is True
    assert label.checked is False
    label(icon)
    assert controls.snapshot().label_on is True and label.checked is True
    folder(icon)
    assert opened == ["faces"]
    pause(icon)
    assert controls.snapshot().paused is True and pause.checked is True
    pause(icon)
    assert controls.snapshot().paused is False

    quit_(icon)
    assert controls.snapshot().running is False


def test_the_model_menu_lists_the_installed_models_only(menu_tray: tuple[Tray, Controls, list[str]]) -> None:
    tray, controls, _ = menu_tray
    icon, model = tray.icon, list(tray.icon.menu)[3]
    assert model.text == "Model"
    controls.set_swap_models([])  # nothing installed: a hint, nothing to choose
    assert [(i.text, i.enabled) for i in model.submenu.items] == [("(none installed: vcamswap models download)", False)]
    controls.set_swap_models([ModelFiles("inswapper_128", ()), ModelFiles("ghost_1_256", ()),
                              ModelFiles("ghost_2_256", ("ghost_2_256",)), ModelFiles("ghost_3_256", ("ghost_3_256",))])
    controls.engine_ready("inswapper")
    assert texts(model.submenu) == ["inswapper_128", "ghost_1_256"]
    assert [i.checked for i in model.submenu.items] == [True, False] and all(i.radio for i in model.submenu.items)
    model.submenu.items[1](icon)
    assert controls.snapshot().model == "ghost_1_256" and [i.checked for i in model.submenu.items] == [False, True]
    controls.engine_ready("lite")  # chosen all the same, and the menu says who uses it
    assert texts(model.submenu) == ["inswapper_128", "ghost_1_256", "(used by the inswapper engine)"]
    with pytest.raises(ValueError, match="vcamswap models download ghost_3_256"):
        controls.set_model("ghost_3_256")  # what the menu never offers is refused all the same
    assert controls.snapshot().model == "ghost_1_256"


def test_the_swap_server_line_follows_the_view(menu_tray: tuple[Tray, Controls, list[str]]) -> None:
    from vcamswap.engines.remote.health import RemoteHealth

    tray = menu_tray[0]
    up = RemoteHealth("grpc://gpu-box:8001", True, 91.6, "passthrough")
    tray.show(TrayView("swapping", 30.0, "ann", "fast", None, up.line(), up.short()))
    line, sep, swap = list(tray.icon.menu)[:3]
    assert (line.text, line.enabled, sep.text, swap.text) == ("Server grpc://gpu-box:8001 — 92 ms", False, "- - - -",
                                                             "Swap")
    assert tooltip(tray.view) == "Swap Cam: swapping · 30.0 fps · face ann · fast · server 92 ms"
    away = up._replace(healthy=False)
    tray.show(TrayView("swapping", 30.0, "ann", "fast", None, away.line(), away.short()))
    assert texts(tray.icon.menu)[0] == "Server away — passing through"
    assert tooltip(tray.view).endswith("· server away")
    assert away._replace(fallback="lite").line() == "Server away — swapping here (lite)"
    tray.show(TrayView("swapping", 30.0, "ann", "fast"))  # an engine on this machine: no line, no separator
    assert texts(tray.icon.menu)[:2] == ["Swap", "Source face"]


def test_open_folder_creates_it_and_calls_the_desktop_opener(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from vcamswap.daemon.desktop.tray import open_folder

    bin_dir, record = tmp_path / "bin", tmp_path / "opened.txt"
    bin_dir.mkdir()
    opener = bin_dir / "xdg-open"  # stands in for the desktop's opener
    opener.write_text(f'#!/bin/sh\necho "$@" > {record}\n')
    opener.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    folder = tmp_path / "faces"
    open_folder(folder)
    assert folder.is_dir()
    assert wait_until(lambda: record.exists() and record.read_text().strip(), "opener ran") == str(folder)


# ---------------------------------------------------------------------------------------------------------
# The real thing: GTK tray icon in a tray host, menu opened with a real right click, global hotkeys.


def test_real_tray_menu_and_hotkeys_drive_the_daemon(tmp_path: Path) -> None:
    faces = tmp_path / "data" / "faces"
    faces.mkdir(parents=True)
    shutil.copy(media_path("faces/single/obama_official_portrait.jpg"), faces / "obama.jpg")
    shutil.copy(media_path("faces/single/biden.jpg"), faces / "biden.jpg")
    shots = Path(os.environ.get("VCAMSWAP_TEST_SCREENSHOTS") or tmp_path)
    args = [a for a in default_args() if a not in ("--no-tray", "--no-hotkeys")]
    with gtk_tray_desktop() as env:
        d = DaemonProcess(tmp_path, args, env).start()
        try:
            wait_until(lambda: "tray icon ready (gtk)" in d.log(), "tray icon ready")
            wait_until(lambda: "swapping" in tray_tooltip(env) and "fps" in tray_tooltip(env), "tooltip with fps")
            wait_until(lambda: d.hotkeys_ready(), "hotkeys listening")

            # Global hotkeys, typed by the X server as a user would.
            xdotool(env, "key", "ctrl+alt+shift+s")
            wait_until(lambda: d.status()["swap"] is False, "hotkey toggled the swap off")
            wait_until(lambda: "swap off" in tray_tooltip(env), "tooltip says swap off")
            xdotool(env, "key", "ctrl+alt+shift+q")
            wait_until(lambda: d.status()["preset"] == "quality", "hotkey cycled the quality")
            face = d.status()["face"]
            xdotool(env, "key", "ctrl+alt+shift+n")
            wait_until(lambda: d.status()["face"] not in (face, None), "hotkey chose the next face")
            xdotool(env, "keydown", "ctrl+alt+shift+b")
            wait_until(lambda: d.status()["bypass"] is True, "bypass held")
            xdotool(env, "keyup", "ctrl+alt+shift+b")
            wait_until(lambda: d.status()["bypass"] is False, "bypass released")

            # The menu, with a real right click: Swap is the first item.
            tray_choose(env, ["Down", "Return"], shots / "tray-menu.png")
            wait_until(lambda: d.status()["swap"] is True, "menu turned the swap on")
            # Quality > fast: the third item's submenu, first entry.
            tray_choose(env, ["Down", "Down", "Down", "Right", "Return"], None)
            wait_until(lambda: d.status()["preset"] == "fast", "menu chose the fast preset")
            # Likeness > 0.25: the fifth item's submenu, second entry.
            tray_choose(env, ["Down"] * 5 + ["Right", "Down", "Return"], None)
            wait_until(lambda: d.status()["likeness"] == 0.25, "menu chose likeness 0.25")
            # Faces in view > all: the sixth item's submenu, second entry.
            tray_choose(env, ["Down"] * 6 + ["Right", "Down", "Return"], None)
            wait_until(lambda: d.status()["targets"] == "all", "menu chose every face in view")
            # Show preview (seventh item) opens the preview window; closing the window unticks it.
            tray_choose(env, ["Down"] * 7 + ["Return"], None)
            wait_until(lambda: d.status()["preview"] is True, "preview on")
            window = wait_until(lambda: xdotool(env, "search", "--name", "^Swap Cam preview$"), "preview window")
            xdotool(env, "windowkill", window.split()[0])
            wait_until(lambda: d.status()["preview"] is False, "closing the window unticked Show preview")
            assert d.request("preview", "on")["ok"] is True
            wait_until(lambda: xdotool(env, "search", "--name", "^Swap Cam preview$"), "preview window again")
            assert d.request("preview", "off")["ok"] is True
            wait_until(lambda: not xdotool(env, "search", "--name", "^Swap Cam preview$"), "window gone")
            # Quit is the last item.
            tray_choose(env, ["Up", "Return"], None)
            assert d.proc is not None and d.proc.wait(timeout=60) == 0
        finally:
            d.kill()
        # SIGTERM (a logout, systemctl stop) ends the GTK loop cleanly too.
        d = DaemonProcess(tmp_path, args, env).start()
        try:
            wait_until(lambda: d.log().count("tray icon ready (gtk)") == 2, "second tray icon ready")
            assert d.proc is not None
            d.proc.terminate()
            assert d.proc.wait(timeout=60) == 0
        finally:
            d.kill()



def test_real_tray_model_menu_offers_what_the_models_folder_holds(tmp_path: Path, models_dir: Path) -> None:
    """The Model submenu with a real right click: the installed models only, a model whose files appear while
    running is offered within a rescan, and choosing it reaches the daemon (the lite engine in force never
    loads a swap model, so the files of the model added here are only looked at, never run)."""
    models = tmp_path / "models"
    shutil.copytree(models_dir, models)
    faces = tmp_path / "data" / "faces"
    faces.mkdir(parents=True)
    shutil.copy(media_path("faces/single/obama_official_portrait.jpg"), faces / "obama.jpg")
    args = [a for a in default_args() if a != "--no-tray"] + ["--models", str(models)]
    with gtk_tray_desktop() as env:
        d = DaemonProcess(tmp_path, args, env).start()
        try:
            wait_until(lambda: "tray icon ready (gtk)" in d.log(), "tray icon ready")
            assert d.status()["models"] == ["inswapper_128"] and d.status()["model"] == "inswapper_128"
            for name in file_names("ghost_1_256"):
                (models / name).write_bytes(b"weights")
            wait_until(lambda: d.status()["models"] == ["inswapper_128", "ghost_1_256"], "the new model seen")
            # Model > ghost_1_256: the fourth item's submenu, second entry.
            tray_choose(env, ["Down"] * 4 + ["Right", "Down", "Return"], tmp_path / "tray-model.png")
            wait_until(lambda: d.status()["model"] == "ghost_1_256", "menu chose ghost_1_256")
            wait_until(lambda: 'model = "ghost_1_256"' in d.settings.read_text(), "the choice saved")
            assert d.status()["engine"] == "lite"
        finally:
            d.stop()
