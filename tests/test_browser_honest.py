"""A kiosk whose camera is missing, in real Chromium on a desktop and a phone viewport: a real `proctord
run`, a session the technician stops after a few seconds without a single frame, and its page and
printable report saying "not assessable" with the reason, the evidence in words and no score.

Screenshots go to $PROCTORD_SCREENSHOT_DIR when set, else to the test's temporary directory.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import daemon_config, free_port, wait_until
from test_browser_e2e import CHROMIUM, CHROMIUM_ARGS, serving
from werkzeug.security import generate_password_hash

PASSWORD = "exam-room-technician"
VIEWPORTS = {"desktop": {"width": 1100, "height": 800}, "phone": {"width": 390, "height": 844}}

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (./run test does)")


@pytest.fixture
def cameraless_daemon(tmp_path, models_dir):
    port = free_port()
    config = tmp_path / "proctord.toml"
    config.write_text(daemon_config(
        tmp_path, models_dir, camera={"kind": "opencv", "path": "/dev/video-missing"},
        session={"auto_start": True, "candidate_name": "Ada Lovelace", "candidate_id": "c-42", "exam_id": "math-101"},
        web={"port": port, "password_hash": generate_password_hash(PASSWORD)},
    ))
    with serving(config, tmp_path / "daemon.log", port) as url:
        yield url


def test_a_session_without_a_camera_is_not_assessable_in_the_browser(cameraless_daemon, tmp_path):
    shots = Path(os.environ.get("PROCTORD_SCREENSHOT_DIR", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport=VIEWPORTS["desktop"])
        page.set_default_timeout(20_000)
        page.goto(cameraless_daemon)
        page.fill("#password", PASSWORD)
        page.click("main button[type=submit]")
        page.wait_for_url(f"{cameraless_daemon}/")

        # The camera never delivers: the session runs on the clock until the technician stops it.
        page.goto(f"{cameraless_daemon}/sessions")
        page.locator("main table tbody a").first.click()
        page.wait_for_url("**/sessions/2*")
        session_url = page.url
        def shows_the_loss() -> bool:
            page.reload()
            return "Camera lost" in page.inner_text("main")

        try:
            wait_until(shows_the_loss, 30, "the camera_lost event")
        except AssertionError:
            raise AssertionError(page.url + "\n" + page.inner_text("main")) from None
        page.wait_for_timeout(4000)
        page.click("main form button[type=submit]:has-text('Stop')")
        page.goto(session_url)

        for name, viewport in VIEWPORTS.items():
            page.set_viewport_size(viewport)
            page.goto(session_url)
            text = page.inner_text("main")
            assert "Not assessable" in text and "no frame at all" in text and "/ 100" not in text
            assert "no frame from the camera for" in text
            assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"] + 1, name
            page.screenshot(path=str(shots / f"not-assessable-session-{name}.png"), full_page=True)

            page.goto(f"{session_url}/report.html")
            text = page.inner_text("body")
            assert "Not assessable" in text and "no integrity score" in text and "Analysed\n0.0 s (0.0 %" in text
            page.screenshot(path=str(shots / f"not-assessable-report-{name}.png"), full_page=True)
        browser.close()
