"""Named users, roles and an offline camera in a real headless Chromium (Debian's, driven by Playwright)
against a real `proctord run`, on a desktop and a phone viewport: the status page, the live view and the
start form say the camera is offline; a reviewer cannot stop a session, a technician cannot review; a
removed user is logged out; and the live view turns from the picture to "Camera offline — last frame N s
ago" when the frames stop.

Screenshots go to the test's temporary directory ($PROCTORD_SCREENSHOT_DIR when set); the README shows
three of them from docs/screenshots/ (none shows a person).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import daemon_config, free_port, run_proctord, start_proctord, wait_until
from test_browser_e2e import CHROMIUM, _answers, launched_chromium  # skips here too without playwright

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (./run test does)")

USERS = {"tom": ("technician", "tom's long password"), "rita": ("reviewer", "rita's long password")}
VIEWPORTS = {"desktop": {"width": 1100, "height": 800}, "phone": {"width": 390, "height": 844}}
ABSENT_CAMERA = {"kind": "opencv", "path": "/dev/video-absent", "timeout_s": 1.0}


def start_daemon(tmp_path: Path, models_dir: Path, **camera):
    """`proctord run` with the users of USERS (added with the CLI before the start): its process, URL and config."""
    port = free_port()
    config = tmp_path / "proctord.toml"
    config.write_text(daemon_config(tmp_path, models_dir, camera=camera, kiosk={"site": "hall-b", "name": "kiosk-12"},
                                    web={"port": port}))
    for name, (role, password) in USERS.items():
        added = run_proctord("user", "add", name, "--role", role, "--config", str(config), stdin=password + "\n")
        assert added.returncode == 0, added.stderr
    process = start_proctord(config, tmp_path / "daemon.log")
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: _answers(f"{url}/healthz") or process.poll() is not None, 60, "the web page")
    assert process.poll() is None, (tmp_path / "daemon.log").read_text()
    return process, url, config


@pytest.fixture(scope="module")
def offline_kiosk(tmp_path_factory, models_dir):
    """A kiosk whose camera is absent (never a frame)."""
    process, url, config = start_daemon(tmp_path_factory.mktemp("offline"), models_dir, **ABSENT_CAMERA)
    yield url, config
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def chromium():
    with launched_chromium() as browser:
        yield browser


@pytest.fixture
def shots(tmp_path) -> Path:
    folder = Path(os.environ.get("PROCTORD_SCREENSHOT_DIR", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def logged_in_page(browser, url: str, user: str, viewport: str = "desktop"):
    """A page in a browser of its own (its own cookies), logged in as `user`."""
    page = browser.new_context(viewport=VIEWPORTS[viewport]).new_page()
    page.set_default_timeout(20_000)
    page.goto(f"{url}/login")
    page.fill("#user", user)
    page.fill("#password", USERS[user][1])
    page.click("main button[type=submit]")
    page.wait_for_url(f"{url}/")
    return page


def fits_the_width(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_an_offline_camera_is_said_on_the_status_page_the_live_view_and_the_start_form(
    offline_kiosk, chromium, shots, viewport
):
    url, _ = offline_kiosk
    page = logged_in_page(chromium, url, "tom", viewport)

    wait_until(lambda: "needs attention" in page.inner_text("#state"), 20, "the headline to name the camera")
    assert "Camera" in page.inner_text("#state") and "state-failed" in page.get_attribute("#state", "class")
    green = page.evaluate("getComputedStyle(document.getElementById('state')).backgroundColor")
    assert green != "rgb(207, 233, 212)"  # .state-ok's green
    assert page.inner_text("#capture-online") == "no" and page.inner_text("#analysis-state") == "degraded"
    assert "no frame analysed yet" in page.inner_text("#analysis-reason")
    assert fits_the_width(page)
    page.screenshot(path=str(shots / f"offline-status-{viewport}.png"), full_page=True)

    page.goto(f"{url}/live")
    page.wait_for_selector("#live-offline", state="visible")
    assert page.inner_text("#live-offline-text") == "Camera offline — no frame yet"
    assert page.locator("#live").is_hidden() and page.get_attribute("#live", "src") is None  # no broken image
    assert fits_the_width(page)
    page.screenshot(path=str(shots / f"offline-live-{viewport}.png"), full_page=True)

    page.goto(f"{url}/sessions/new")
    assert page.locator("#camera-offline").is_visible()
    assert "Camera offline — no frame yet" in page.inner_text("#camera-offline")
    assert fits_the_width(page)
    page.screenshot(path=str(shots / f"offline-start-{viewport}.png"), full_page=True)
    page.context.close()


def test_a_reviewer_cannot_stop_a_session_and_a_technician_cannot_review(offline_kiosk, chromium, shots):
    url, config = offline_kiosk
    tom = logged_in_page(chromium, url, "tom")
    tom.goto(f"{url}/sessions/new")
    tom.fill("#candidate_name", "Ada Lovelace")
    tom.fill("#candidate_id", "c-42")
    tom.fill("#exam_id", "math-101")
    tom.click("main button[type=submit]")  # warned that the camera is offline, but allowed
    tom.wait_for_selector("#session_state")
    session_url = tom.url
    assert "running" in tom.inner_text("#session_state") and tom.locator("text=Stop the session").is_visible()
    assert tom.locator("text=Printable report (HTML)").count() == 0

    rita = logged_in_page(chromium, url, "rita", "phone")
    assert rita.inner_text("#who") == "rita · reviewer"
    assert rita.locator("header >> text=Live").count() == 0 and rita.locator("text=Stop the session").count() == 0
    rita.goto(session_url)
    assert rita.locator("text=Stop the session").count() == 0
    assert rita.locator("text=Printable report (HTML)").is_visible()
    # The button is not there; a hand-made form with a valid CSRF token is refused all the same.
    with rita.expect_navigation():
        rita.evaluate("""() => {
            const form = Object.assign(document.createElement("form"), {method: "post", action: "/sessions/stop"});
            form.appendChild(document.querySelector("input[name=csrf_token]").cloneNode());
            document.body.appendChild(form);
            form.submit();
        }""")
    assert "This needs the technician role; you are logged in as rita (reviewer)." in rita.inner_text("main")
    assert fits_the_width(rita)
    rita.screenshot(path=str(shots / "role-refused-reviewer-phone.png"), full_page=True)
    tom.reload()
    assert "running" in tom.inner_text("#session_state")  # still running

    refused = tom.goto(f"{session_url}/report.html")
    assert refused.status == 403
    assert "This needs the reviewer role; you are logged in as tom (technician)." in tom.inner_text("main")
    tom.screenshot(path=str(shots / "role-refused-technician.png"), full_page=True)

    removed = run_proctord("user", "remove", "rita", "--config", str(config))
    assert removed.returncode == 0, removed.stderr
    rita.goto(session_url)
    assert rita.url.startswith(f"{url}/login") and "Your login has ended" in rita.inner_text("main")
    rita.screenshot(path=str(shots / "login-after-removal-phone.png"), full_page=True)

    tom.goto(session_url)
    tom.click("text=Stop the session")
    tom.wait_for_url(session_url)
    assert "completed" in tom.inner_text("#session_state")
    for page in (tom, rita):
        page.context.close()


def test_the_live_view_turns_from_the_picture_to_the_time_since_the_last_frame(
    tmp_path, models_dir, scenario_video, chromium, shots
):
    process, url, _ = start_daemon(tmp_path, models_dir, kind="file", path=scenario_video, timeout_s=1.0)
    try:
        page = logged_in_page(chromium, url, "tom")
        status = page.context.new_page()  # the status page open beside, never reloaded by the test
        status.goto(url)
        page.goto(f"{url}/live")
        # Polled from here: wait_for_function's own polling evaluates a string, which the page's CSP forbids.
        wait_until(lambda: page.evaluate("document.getElementById('live').naturalWidth") > 0, 60, "a live picture")
        assert page.locator("#live-offline").is_hidden()
        # The 16 s video ends: the picture goes, the time since the last frame comes.
        page.wait_for_selector("#live-offline", state="visible", timeout=60_000)
        assert page.inner_text("#live-offline-text").startswith("Camera offline — last frame ")
        assert "the video ended" in page.inner_text("#live-offline-reason")
        assert page.locator("#live").is_hidden()
        page.screenshot(path=str(shots / "offline-live-after-frames.png"), full_page=True)

        # The status page left open follows by itself: its pill, and the analysis rate no longer shown as current.
        wait_until(lambda: status.inner_text("#state") == "video ended", 20, "the open status page to follow")
        wait_until(lambda: "— (was " in status.inner_text("#analysis-fps"), 10, "the analysis rate marked stale")
        status.screenshot(path=str(shots / "offline-status-after-frames.png"), full_page=True)
        page.context.close()
    finally:
        process.terminate()
        process.wait(timeout=30)
