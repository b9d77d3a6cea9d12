"""The web panel in a real browser: headless Chromium driven by Selenium against a real engine (debug models).

Upload the bundled example through the page's file input, drag a region on the waveform, render a draft
continuation, watch it reach done over the event stream, see the take's spectrogram and provenance, play it, then
start a long render and cancel it from its row. The finished page is saved as the test's screenshot (and as
docs/web-panel.png, the documentation's picture, when JB_UPDATE_SCREENSHOTS=1 is set).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from bridge.server import ServeConfig, start_engine
from engine.weights.bundle import load_models

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "engine" / "data" / "examples" / "pluck_phrase.flac"
DOCS_SCREENSHOT = ROOT / "docs" / "web-panel.png"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _browser_paths() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        pytest.fail("Chromium and its driver are missing: run ./jb test, which installs the Debian packages "
                    "chromium and chromium-driver")
    return browser, driver


@pytest.fixture
def engine(tmp_path):
    # max_wait 0: the long render below must start whatever this machine's measured speed (the estimate is timed
    # at start-up; on a loaded machine it can pass the 300-s limit and the job is refused with an offer instead)
    cfg = ServeConfig(model="debug", port=0, web_port=0, render_dir=tmp_path / "renders", midi=False, max_wait=0.0)
    eng = start_engine(cfg, models=load_models("debug"))
    yield eng
    eng.stop()


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = _browser_paths()
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--autoplay-policy=no-user-gesture-required", "--window-size=1400,1500", "--mute-audio"):
        opts.add_argument(arg)
    d = webdriver.Chrome(service=Service(executable_path=driver), options=opts)
    yield d
    d.quit()


def test_the_panel_renders_plays_and_cancels_in_a_real_browser(engine, browser, tmp_path, pace):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    wait = WebDriverWait(browser, pace(60), poll_frequency=0.05)
    browser.get(engine.web_url)
    wait.until(lambda d: d.find_element(By.ID, "connection").text == "live")
    assert browser.find_element(By.ID, "model").text.startswith("model debug")
    sliders = {e.get_attribute("name"): e for e in browser.find_elements(By.CSS_SELECTOR, "#params input")}
    assert set(sliders) == set(engine.jobs.live.snapshot())
    assert float(sliders["temperature"].get_attribute("max")) == 2.0  # from the engine's table, via /api/info

    # a MIDI knob (LiveParams.set from elsewhere) moves the page's slider
    engine.jobs.live.set("temperature", 0.9)
    wait.until(lambda d: d.find_element(By.ID, "param-temperature").get_attribute("value") == "0.9")

    # upload, then drag a region across the middle half of the waveform
    browser.find_element(By.ID, "file-input").send_keys(str(EXAMPLE))
    wait.until(lambda d: "whole file" in d.find_element(By.ID, "selection").text)
    canvas = browser.find_element(By.ID, "waveform")
    quarter = canvas.size["width"] // 4
    ActionChains(browser).move_to_element_with_offset(canvas, -quarter, 0).click_and_hold() \
        .move_by_offset(quarter, 0).move_by_offset(quarter, 0).release().perform()
    text = browser.find_element(By.ID, "selection").text
    assert "region" in text, text
    start, length = (float(x.strip().removesuffix(" s")) for x in text.split("region ")[1].split("+"))
    assert 1.5 < start < 2.5 and 3.5 < length < 4.5  # the middle half of 8 s

    # a draft continuation of the region
    Select(browser.find_element(By.ID, "mode")).select_by_value("continue")
    Select(browser.find_element(By.ID, "quality")).select_by_value("draft")
    seconds = browser.find_element(By.ID, "seconds")
    seconds.clear()
    seconds.send_keys("1")
    browser.find_element(By.ID, "submit").click()
    row = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, ".job.done"))
    job = engine.jobs.get(row.get_attribute("data-job-id"))
    assert (job.request.mode, job.request.quality, job.request.temperature) == ("continue", "draft", 0.9)
    assert job.request.start == pytest.approx(start, abs=0.01) and job.request.length == pytest.approx(length, abs=0.01)
    wait.until(lambda d: d.execute_script(
        "const i = document.querySelector('.job.done .take img.spectrogram');"
        "return i && i.complete && i.naturalWidth"))
    assert browser.execute_script("return document.querySelector('.job.done .take img.waveform').naturalWidth") > 0
    wait.until(lambda d: "model debug" in d.find_element(By.CSS_SELECTOR, ".job.done .provenance").text)
    assert "seed" in row.find_element(By.CSS_SELECTOR, ".provenance").text
    card = row.find_element(By.CSS_SELECTOR, ".take")
    assert card.get_attribute("draggable") == "true"
    assert card.find_element(By.CSS_SELECTOR, ".path").text == job.published[0].path
    assert row.find_elements(By.CSS_SELECTOR, ".refine")  # a draft can be refined

    played = browser.execute_async_script(
        "const done = arguments[arguments.length - 1], a = document.querySelector('.job.done audio');"
        "a.play().then(() => done(true)).catch((e) => done(String(e)));")
    assert played is True, played
    wait.until(lambda d: d.execute_script("return document.querySelector('.job.done audio').currentTime") > 0)

    # a long full-quality render, cancelled from its row while it runs
    Select(browser.find_element(By.ID, "mode")).select_by_value("generate")
    Select(browser.find_element(By.ID, "quality")).select_by_value("full")
    seconds.clear()
    seconds.send_keys("120")
    browser.find_element(By.ID, "submit").click()
    running = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, ".job.running"))
    running.find_element(By.CSS_SELECTOR, ".cancel").click()
    job_id = running.get_attribute("data-job-id")
    wait.until(lambda d: "cancelled" in d.find_element(By.CSS_SELECTOR, f'.job[data-job-id="{job_id}"]')
               .get_attribute("class"))
    assert engine.jobs.get(job_id).state == "cancelled"
    assert not browser.find_element(By.ID, "error").is_displayed()

    browser.execute_script("window.scrollTo(0, 0)")
    shot = tmp_path / "web-panel.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    if os.environ.get("JB_UPDATE_SCREENSHOTS"):  # the suite never rewrites tracked files on its own
        shutil.copyfile(shot, DOCS_SCREENSHOT)
