"""The control panel in a real browser (headless Chromium driven by Selenium) against a real daemon on a real
clip: open it, add a face by upload, choose it, switch the preset (and `vcamswap status` agrees), see the preview
change, hold the compare control, see a change made elsewhere at once. It also takes the README's screenshots
(into $VCAMSWAP_PANEL_SHOTS when set) and prints what an open panel costs the live loop (no timed assert)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_util import DaemonProcess, media_path, running_daemon, wait_until

BIDEN = "faces/single/biden.jpg"
OBAMA = "faces/single/obama_official_portrait.jpg"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage")

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402


@pytest.fixture()
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        pytest.skip("chromium and chromium-driver not installed (apt install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium'}", "--window-size=1280,720"):
        options.add_argument(flag)
    # An explicit driver: Selenium Manager (which would download one) never runs.
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def loop_figures(d: DaemonProcess, seconds: float = 6.0) -> tuple[float, float, float]:
    """(median fps, median latency ms, the daemon's CPU share) over `seconds`, sampled from status."""
    fps, latency = [], []
    cpu0, t0 = cpu_seconds(d.pid), time.monotonic()
    while time.monotonic() - t0 < seconds:
        st = d.status()
        fps.append(st["fps"])
        latency.append(st["latency_ms"])
        time.sleep(0.5)
    share = (cpu_seconds(d.pid) - cpu0) / (time.monotonic() - t0)
    return statistics.median(fps), statistics.median(latency), share


def shoot(driver: WebDriver, path: Path, width: int, height: int | None = None) -> None:
    """The page in a viewport of exactly `width` CSS pixels by `height` (None: as tall as the page), from its top."""
    metrics = {"width": width, "height": height or 900, "deviceScaleFactor": 1, "mobile": False}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)  # type: ignore[attr-defined]
    driver.execute_script("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)")
    time.sleep(0.5)
    if height is None:
        full = driver.execute_script("return document.documentElement.scrollHeight")
        driver.execute_cdp_cmd(  # type: ignore[attr-defined]
            "Emulation.setDeviceMetricsOverride", {**metrics, "height": int(full)})
        time.sleep(0.5)
    driver.save_screenshot(str(path))


def attr(driver: WebDriver, css: str, name: str) -> str | None:
    """An attribute (or property) of the first element matching `css`, read in one step: the gallery is redrawn
    when the faces change, so a Python-side element may be gone by the time it is read."""
    return driver.execute_script(
        "const e = document.querySelector(arguments[0]); if (!e) return null;"
        "const v = e.getAttribute(arguments[1]); return v === null ? (e[arguments[1]] ?? null) : String(v);",
        css, name)


def img_frame(driver: WebDriver) -> int:
    return int(attr(driver, "#preview", "data-frame") or 0)


def click(driver: WebDriver, css: str) -> bool:
    try:
        driver.find_element(By.CSS_SELECTOR, css).click()
        return True
    except StaleElementReferenceException:
        return False


def test_the_panel_in_a_browser(tmp_path: Path, browser: WebDriver) -> None:
    home = tmp_path / "home"
    (home / "data" / "faces").mkdir(parents=True)
    shutil.copy(media_path(BIDEN), home / "data" / "faces" / "biden.jpg")
    with running_daemon(home) as d:
        wait_until(lambda: d.status()["state"] == "swapping", "swapping")

        browser.get(d.status()["panel_url"])
        assert browser.current_url.endswith("/panel/")  # the token left the address bar
        img = browser.find_element(By.ID, "preview")
        wait_until(lambda: int(img.get_attribute("data-frame") or 0) > 0, "the preview's first picture")

        # Add a face by upload, then choose it with a click.
        browser.find_element(By.ID, "photo").send_keys(str(media_path(OBAMA)))
        browser.find_element(By.ID, "face-name").send_keys("obama")
        browser.find_element(By.CSS_SELECTOR, "#upload button[type=submit]").click()
        obama = '#gallery li[data-name="obama"]'
        wait_until(lambda: attr(browser, obama, "data-name"), "the uploaded face in the gallery")
        assert (d.faces / "obama.jpg").read_bytes() == media_path(OBAMA).read_bytes()
        wait_until(lambda: "obama" in d.status()["faces"], "the new face offered")
        wait_until(lambda: attr(browser, obama + " img", "naturalWidth") not in (None, "0"), "its thumbnail")
        wait_until(lambda: click(browser, obama), "a click on the new face")
        wait_until(lambda: d.status()["face"] == "obama", "the face chosen in the panel")
        wait_until(lambda: "current" in (attr(browser, obama, "class") or ""), "the card marked")

        # Switch the preset: `vcamswap status` agrees.
        browser.find_element(By.CSS_SELECTOR, '#preset button[data-value="quality"]').click()
        wait_until(lambda: d.status()["preset"] == "quality", "the preset switched from the panel")
        r = d.cli("status")
        assert r.returncode == 0 and json.loads(r.stdout)["preset"] == "quality"
        wait_until(lambda: browser.find_element(By.CSS_SELECTOR, '#preset button[data-value="quality"]')
                   .get_attribute("aria-checked") == "true", "the preset marked")

        # The preview moves on.
        first, first_no = img.screenshot_as_png, int(img.get_attribute("data-frame") or 0)
        wait_until(lambda: int(img.get_attribute("data-frame") or 0) > first_no + 5, "newer preview pictures")
        assert img.screenshot_as_png != first
        assert img.get_attribute("data-source") == "swap"

        # Hold to compare: the camera's own picture while held, Swap Cam's again after.
        button = browser.find_element(By.ID, "compare")
        ActionChains(browser).click_and_hold(button).perform()
        try:
            wait_until(lambda: img.get_attribute("data-source") == "camera", "the camera's picture while held")
            assert browser.find_element(By.ID, "showing").text == "camera"
        finally:
            ActionChains(browser).release(button).perform()
        wait_until(lambda: img.get_attribute("data-source") == "swap", "Swap Cam's picture after release")

        # A change made elsewhere (the CLI, like the tray) shows in the open panel at once.
        assert d.cli("preset", "fast").returncode == 0
        wait_until(lambda: browser.find_element(By.CSS_SELECTOR, '#preset button[data-value="fast"]')
                   .get_attribute("aria-checked") == "true", "the CLI's preset in the panel")
        wait_until(lambda: "fps" in browser.find_element(By.ID, "figures").text
                   and not browser.find_element(By.ID, "figures").text.startswith("0.0"), "live health figures")

        # What the open panel costs the live loop: open, closed, open again, same face and preset throughout.
        panel_url = browser.current_url
        opened = loop_figures(d)
        browser.get("about:blank")
        closed = loop_figures(d)
        browser.get(panel_url)
        wait_until(lambda: int(img_frame(browser)) > 0, "the preview again")
        reopened = loop_figures(d)
        print("\nlive loop (fps, ms capture-to-publish, daemon CPU): panel open {:.1f} {:.0f} {:.0%}; closed {:.1f} "
              "{:.0f} {:.0%}; open again {:.1f} {:.0f} {:.0%}".format(*opened, *closed, *reopened))

        shots = Path(os.environ.get("VCAMSWAP_PANEL_SHOTS") or tmp_path)
        shots.mkdir(parents=True, exist_ok=True)
        browser.find_element(By.ID, "show-outline").click()  # the screenshots show the tracked face's outline
        wait_until(lambda: int(attr(browser, "#outline", "data-faces") or 0) >= 1, "the outline drawn")
        browser.find_element(By.ID, "run-doctor").click()
        wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, "#doctor li.ok, #doctor li.bad"), "doctor lines")
        shoot(browser, shots / "panel-1280.png", 1280, 720)
        shoot(browser, shots / "panel-600.png", 600)
        assert (shots / "panel-1280.png").stat().st_size > 0
        d.check_alive()


def two_faces(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    (home / "data" / "faces").mkdir(parents=True)
    shutil.copy(media_path(BIDEN), home / "data" / "faces" / "biden.jpg")
    shutil.copy(media_path(OBAMA), home / "data" / "faces" / "obama.jpg")
    return home


CANVAS_DRAWN = ("const c = document.getElementById(arguments[0]); const d = c.getContext('2d')"
                ".getImageData(0, 0, c.width, c.height).data; for (let i = 3; i < d.length; i += 4)"
                " if (d[i]) return true; return false")  # something is drawn
# A file dropped on the gallery, as the browser hands it to the page.
DROP = ("const bytes = Uint8Array.from(atob(arguments[0]), (c) => c.charCodeAt(0));"
        "const t = new DataTransfer(); t.items.add(new File([bytes], arguments[1], { type: 'image/jpeg' }));"
        "const at = document.getElementById('gallery');"
        "for (const kind of ['dragenter', 'dragover', 'drop'])"
        "  at.dispatchEvent(new DragEvent(kind, { dataTransfer: t, bubbles: true, cancelable: true }));")


def press(driver: WebDriver, keys: str) -> None:
    ActionChains(driver).send_keys(keys).perform()


def test_the_page_keys_charts_and_tries_faces_on(tmp_path: Path, browser: WebDriver) -> None:
    with running_daemon(two_faces(tmp_path)) as d:
        wait_until(lambda: d.status()["state"] == "swapping" and len(d.status()["faces"]) == 2, "swapping, 2 faces")
        browser.get(d.status()["panel_url"])
        wait_until(lambda: img_frame(browser) > 0, "the preview's first picture")
        assert "Space" in browser.find_element(By.ID, "keys").text

        # Keys: each is the control's own intent; `vcamswap status` agrees.
        browser.find_element(By.TAG_NAME, "body").click()
        press(browser, " ")
        wait_until(lambda: d.status()["swap"] is False, "Space turned the swap off")
        press(browser, " ")
        wait_until(lambda: d.status()["swap"] is True, "Space turned it on again")
        press(browser, "1")
        wait_until(lambda: d.status()["preset"] == "fast", "1 chose fast")
        press(browser, "3")
        wait_until(lambda: d.status()["preset"] == "quality", "3 chose quality")
        first = d.status()["face"]
        press(browser, "n")
        wait_until(lambda: d.status()["face"] not in (first, None), "N chose the next face")
        press(browser, "P")
        wait_until(lambda: d.status()["face"] == first, "P chose the previous one")
        ActionChains(browser).key_down("c").perform()
        try:
            wait_until(lambda: attr(browser, "#preview", "data-source") == "camera", "the camera while C is held")
        finally:
            ActionChains(browser).key_up("c").perform()
        wait_until(lambda: attr(browser, "#preview", "data-source") == "swap", "Swap Cam's picture after C")
        press(browser, "k")
        wait_until(lambda: d.status()["paused"] is True, "K paused the camera")
        wait_until(lambda: attr(browser, "#pause", "aria-pressed") == "true", "the pause button pressed")
        press(browser, "k")
        wait_until(lambda: d.status()["paused"] is False, "K resumed it")
        ActionChains(browser).key_down("b").perform()
        try:
            wait_until(lambda: d.status()["bypass"] is True, "the real face while B is held")
        finally:
            ActionChains(browser).key_up("b").perform()
        wait_until(lambda: d.status()["bypass"] is False, "the swap back after B")

        # The face outline, on request: the tracked face drawn over the preview.
        assert attr(browser, "#outline", "hidden") is not None
        browser.find_element(By.ID, "show-outline").click()
        wait_until(lambda: int(attr(browser, "#outline", "data-faces") or 0) >= 1, "the outline drawn")
        assert browser.execute_script(CANVAS_DRAWN, "outline")

        # A photo dropped on the gallery is added as an upload would add it.
        photo = base64.b64encode(media_path(OBAMA).read_bytes()).decode()
        browser.execute_script(DROP, photo, "dropped.jpg")
        wait_until(lambda: (d.faces / "dropped.jpg").exists(), "the dropped photo in the faces folder")
        assert (d.faces / "dropped.jpg").read_bytes() == media_path(OBAMA).read_bytes()  # whole as it appears
        wait_until(lambda: attr(browser, '#gallery li[data-name="dropped"]', "data-name"), "its card")

        # The health chart gains a sample a second from the event stream; the stages' table has the stages.
        samples = int(attr(browser, "#chart", "data-samples") or 0)
        wait_until(lambda: int(attr(browser, "#chart", "data-samples") or 0) >= samples + 2, "new chart samples")
        assert browser.execute_script(CANVAS_DRAWN, "chart")
        rows = browser.find_elements(By.CSS_SELECTOR, "#stages tr[data-stage]")
        assert {"capture", "track", "swap"} <= {r.get_attribute("data-stage") for r in rows}

        # The compose knobs: occlusion applies through the intent; the lite engine's boost is shown, not offered.
        browser.find_element(By.CSS_SELECTOR, '#occlusion button[data-value="off"]').click()
        wait_until(lambda: d.status()["knobs"]["occlusion"] == "off", "occlusion off from the panel")
        wait_until(lambda: attr(browser, '#occlusion button[data-value="off"]', "aria-checked") == "true",
                   "the occlusion marked")
        assert browser.find_element(By.CSS_SELECTOR, '#boost button[data-value="256"]').get_attribute("disabled")
        assert "lite" in browser.find_element(By.ID, "boost-note").text
        assert browser.find_element(By.ID, "engine-name").text == "lite"
        wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, '#models tr[data-model="inswapper_128"]'),
                   "the models listed")

        # Try a face on the camera: its card shows the still over its thumbnail.
        wait_until(lambda: click(browser, '#gallery li[data-name="obama"] button.tryon'), "a click on Try on camera")
        # One condition: a redraw of the gallery (a control's event) between two reads would drop the overlay.
        wait_until(lambda: attr(browser, '#gallery li[data-name="obama"] img.tried', "naturalWidth") not in (None, "0")
                   and bool(attr(browser, '#gallery li[data-name="obama"]', "data-tried")),
                   "the tried-on still over the card")

        # Typed into a field, the same keys are text, not commands.
        field = browser.find_element(By.ID, "face-name")
        field.send_keys(" 1n c")
        assert field.get_attribute("value") == " 1n c"
        time.sleep(1.0)  # a command would have reached the daemon by now
        st = d.status()
        assert (st["swap"], st["preset"], st["face"]) == (True, "quality", first)
        assert attr(browser, "#preview", "data-source") == "swap"
        d.check_alive()
