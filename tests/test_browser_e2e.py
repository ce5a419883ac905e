"""The technician's round trip in a real headless Chromium (Debian's, driven by Playwright) against a real
`proctord run` on the scenario video: log in, start a session from the form, watch an event appear, stop
the session, open the report.

The screenshots go to $PROCTORD_SCREENSHOT_DIR when set (docs/ holds the ones the README shows), else to
the test's temporary directory.
"""

from __future__ import annotations

import os
import re
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import daemon_config, free_port, start_proctord, wait_until
from werkzeug.security import generate_password_hash

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]
PASSWORD = "exam-room-technician"

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (./run test does)")


@pytest.fixture
def daemon(tmp_path, scenario_video, models_dir):
    port = free_port()
    config = tmp_path / "proctord.toml"
    config.write_text(daemon_config(
        tmp_path, models_dir, scenario_video, camera={"loop": True},
        kiosk={"site": "exam-hall-b", "name": "kiosk-12"},
        web={"port": port, "password_hash": generate_password_hash(PASSWORD)},
    ))
    with serving(config, tmp_path / "daemon.log", port) as url:
        yield url


@contextmanager
def serving(config: Path, log: Path, port: int) -> Iterator[str]:
    """`proctord run` with this config, once its web page answers on `port`; stopped at the end."""
    process = start_proctord(config, log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(f"{url}/healthz") or process.poll() is not None, 60, "the web page")
        assert process.poll() is None, log.read_text()
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


@contextmanager
def launched_chromium() -> Iterator:
    """Debian's Chromium, headless, driven by Playwright (never a browser Playwright downloads)."""
    with playwright.sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def browser():
    with launched_chromium() as chromium:
        yield chromium


def test_technician_logs_in_runs_a_session_and_reads_the_report(daemon, browser, tmp_path):
    shots = Path(os.environ.get("PROCTORD_SCREENSHOT_DIR", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    page.set_default_timeout(20_000)

    page.goto(daemon)
    assert page.url.startswith(f"{daemon}/login")
    page.fill("#password", "not the password")
    page.click("main button[type=submit]")
    assert "Wrong user name or password." in page.inner_text("main")
    page.fill("#password", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url(f"{daemon}/")
    assert "exam-hall-b / kiosk-12" in page.inner_text("h1")
    assert "No session running." in page.inner_text("main")

    page.click("text=Start a session")
    page.fill("#candidate_name", "Ada Lovelace")
    page.fill("#candidate_id", "c 42")  # a space: refused with a message
    page.fill("#exam_id", "math-101")
    page.click("main button[type=submit]")
    assert "Use letters, digits and _ . : - only" in page.inner_text("main")
    page.fill("#candidate_id", "c-42")
    page.fill("#notes", "seat 12, left row")
    page.click("main button[type=submit]")
    page.wait_for_url(re.compile(r".*/sessions/[0-9T]+-[0-9a-f]+$"))
    session_url = page.url
    assert "running" in page.inner_text("h1")

    # The looping video shows two faces once per loop (16 s); the running session's page reloads itself.
    page.wait_for_selector("#events >> text=Several faces", timeout=60_000)
    # The session page shows evidence snapshots of the real person in the shared media: not for docs/.
    page.screenshot(path=str(tmp_path / "webui-session.png"), full_page=True)

    page.goto(f"{daemon}/live")
    # Polled from here: wait_for_function's own polling evaluates a string, which the page's CSP forbids.
    wait_until(lambda: page.evaluate("document.getElementById('live').naturalWidth") > 0, 20, "a live picture")
    page.screenshot(path=str(tmp_path / "webui-live.png"))
    page.goto(daemon)
    page.wait_for_selector("#analysis-fps")  # "12.3 fps", refreshed in place from /api/status
    wait_until(lambda: float(page.inner_text("#analysis-fps").split()[0]) > 0, 10, "a measured frame rate")
    page.screenshot(path=str(shots / "webui-status.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    page.screenshot(path=str(shots / "webui-status-phone.png"), full_page=True)
    page.set_viewport_size({"width": 1100, "height": 800})

    page.click("text=Stop the session")
    page.wait_for_url(session_url)
    assert "completed" in page.inner_text("h1")
    durations = page.locator("#events tbody td:nth-child(4)").all_inner_texts()
    assert durations and "open" not in durations  # every event closed with the session

    page.click("text=Printable report (HTML)")
    page.wait_for_selector("svg.timeline rect.bar")
    report = page.inner_text("body")
    assert "Ada Lovelace" in report and "math-101" in report and "integrity score" in report.lower()
    page.screenshot(path=str(shots / "webui-report.png"), full_page=True)

    page.goto(f"{daemon}/sessions")
    assert "completed" in page.inner_text("table")
