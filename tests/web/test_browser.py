"""The console as an operator uses it, in Debian's headless chromium driven by Selenium: log in,
see the camera's live frame with a box on it, see a gun alert arrive in the feed, open it, play its
clip, mark it reviewed. Frames, detections and the alert go into the real Redis (the schemas'
``encode()``), the event and its ffmpeg-made H.264 clip into the real store. Screenshots of each
step are saved in the test's folder (``artefacts/``) and, with ``VIGIL_TEST_ARTEFACTS``, there too."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.web.conftest import (
    BOX,
    CAMERA,
    EVENT_ID,
    PASSWORD,
    USER,
    Serve,
    alert,
    publish_alert,
    publish_detections,
    publish_frame,
    record_with_clip,
    register,
)

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
        reason="needs Debian's chromium and chromium-driver (tools/system-deps.sh)",
    ),
]
RED_PIXELS_JS = """
const img = arguments[0], box = arguments[1];
if (!img.naturalWidth) return -1;
const canvas = document.createElement('canvas');
canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
const g = canvas.getContext('2d'); g.drawImage(img, 0, 0);
const row = g.getImageData(box[0], box[3], box[2] - box[0], 1).data;
let red = 0;
for (let i = 0; i < row.length; i += 4) if (row[i] > 180 && row[i + 1] < 80 && row[i + 2] < 80) red++;
return red / (row.length / 4);
"""


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,900",
        "--autoplay-policy=no-user-gesture-required",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture
def camera_playing(redis_client: redis.Redis) -> Iterator[None]:
    """cam1 at 5 fps: a frame and, at once, its detections (a tracked pistol), until the test ends."""
    register(redis_client)
    stop = threading.Event()

    def play() -> None:
        seq = 0
        while not stop.wait(0.2):
            publish_detections(redis_client, publish_frame(redis_client, seq))
            register(redis_client)
            seq += 1

    thread = threading.Thread(target=play, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(5)


def wait(driver: object, condition: object, timeout_s: float = 20) -> object:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout_s, poll_frequency=0.1).until(condition)


def test_an_operator_sees_the_camera_and_reviews_a_gun_alert(
    serve: Serve, redis_client: redis.Redis, browser: object, camera_playing: None, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    driver = browser
    served = serve()
    artefacts = tmp_path / "artefacts"
    artefacts.mkdir()

    def shot(name: str) -> None:
        driver.save_screenshot(str(artefacts / f"{name}.png"))

    # logged out: the grid sends the browser to the login page
    driver.get(served.url + "/")
    wait(driver, lambda d: "/login" in d.current_url)
    driver.find_element(By.ID, "user").send_keys(USER)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    shot("1-login")
    driver.find_element(By.ID, "login").click()

    # the grid: cam1 live, with the pistol's box drawn on the frame
    image = wait(
        driver, lambda d: d.find_element(By.CSS_SELECTOR, f'figure[data-camera="{CAMERA}"] img.live')
    )
    red = wait(driver, lambda d: (share := d.execute_script(RED_PIXELS_JS, image, list(BOX))) > 0.8 and share)
    assert red > 0.8
    wait(driver, lambda d: "up" in d.find_element(By.CSS_SELECTOR, ".status").text)
    shot("2-grid")

    # the alerts page: a gun alert arrives in the live feed; open it
    driver.get(served.url + "/events")
    time.sleep(0.5)  # the feed connects
    event = alert()
    record_with_clip(served, event)
    publish_alert(redis_client, event)
    link = wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, f'#feed li[data-event="{EVENT_ID}"] a'))
    assert "pistol started" in link.text and CAMERA in link.text
    shot("3-feed")
    link.click()

    # the event: its clip plays (a duration, and the time moves on), its snapshot shows
    wait(driver, lambda d: d.execute_script("return document.getElementById('clip').duration > 0"))
    driver.execute_script("document.getElementById('clip').play()")
    start = driver.execute_script("return document.getElementById('clip').currentTime")
    wait(
        driver, lambda d: d.execute_script("return document.getElementById('clip').currentTime") > start + 0.3
    )
    assert driver.execute_script("return document.getElementById('snapshot').naturalWidth") > 0
    shot("4-event")

    # mark it reviewed: the page says so, and so does the store
    driver.find_element(By.ID, "review").click()
    wait(driver, lambda d: d.find_element(By.ID, "review-state").text == "reviewed")
    assert served.console.store.get(EVENT_ID).reviewed
    shot("5-reviewed")

    if target := os.environ.get("VIGIL_TEST_ARTEFACTS"):
        shutil.copytree(artefacts, Path(target) / "web-browser", dirs_exist_ok=True)
