"""The exam board's review in a real headless Chromium (Debian's, driven by Playwright), on a desktop and a
phone viewport, against the real web server on a kiosk that recorded a synthetic source
(tests/review_kiosk.py): the sessions list, one player over the session's segments that timeline bars and
flag rows seek, clips opened in place with their marker, confirm and dismiss, notes, final remarks, and
the report with the reviewed outcome.

Screenshots go to the test's temporary directory, and also to $PROCTORD_SCREENSHOT_DIR when set (docs/
holds the ones the README shows: the source is drawn, no real person).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from conftest import free_port
from review_kiosk import PASSWORD, SEGMENT_S, review_kiosk
from test_browser_e2e import CHROMIUM, launched_chromium  # skips here too without playwright

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (./run test does)")

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def kiosk(tmp_path_factory):
    kiosk = review_kiosk(tmp_path_factory.mktemp("review-kiosk"), free_port())
    yield kiosk
    kiosk.close()


@pytest.fixture(scope="module")
def browser():
    with launched_chromium() as chromium:
        yield chromium


class Shots:
    def __init__(self, tmp_path: Path):
        self.dir = tmp_path
        self.docs = Path(os.environ["PROCTORD_SCREENSHOT_DIR"]) if os.environ.get("PROCTORD_SCREENSHOT_DIR") else None

    def take(self, page, name: str, full_page: bool = True, docs: bool = False) -> None:
        path = self.dir / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        if docs and self.docs:
            self.docs.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, self.docs / path.name)


def logged_in_page(browser, kiosk, viewport: dict):
    page = browser.new_page(viewport=viewport)
    page.set_default_timeout(20_000)
    page.goto(f"{kiosk.url}/sessions")
    page.fill("#password", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url(f"{kiosk.url}/sessions")
    return page


def player_state(page) -> dict:
    return page.evaluate("""() => {
        const player = document.getElementById('player'), video = document.getElementById('player-video');
        return {segment: Number(player.dataset.segment), at: video.currentTime, src: video.currentSrc,
                paused: video.paused, ready: video.readyState};
    }""")


def wait_for_player(page, segment: int, at: float) -> dict:
    """The shown video is segment `segment` (0-based) and has reached `at` s within it (it plays on)."""
    page.wait_for_function(
        """([segment, at]) => {
            const player = document.getElementById('player'), video = document.getElementById('player-video');
            return Number(player.dataset.segment) === segment && video.readyState >= 2 && video.currentTime >= at;
        }""",
        arg=[segment, at - 0.05],
    )
    return player_state(page)


def test_the_exam_board_reviews_a_session_on_a_desktop(browser, kiosk, tmp_path):
    shots = Shots(tmp_path)
    page = logged_in_page(browser, kiosk, DESKTOP)
    row = page.locator(f"#row-{kiosk.session_id}")
    assert "Sam Synthetic" in row.inner_text() and "not reviewed" in row.inner_text()
    assert row.locator("td[data-label=High]").inner_text() == "2"
    shots.take(page, "webui-sessions", docs=True)

    row.locator("a.button", has_text="Review").click()
    page.wait_for_url(f"{kiosk.url}/sessions/{kiosk.session_id}/review")
    page.wait_for_function("() => document.getElementById('player-video').readyState >= 1")
    events = {e.type: e for e in kiosk.reader.events(kiosk.session_id)}
    started_at = kiosk.reader.session(kiosk.session_id).started_at

    # A timeline bar seeks the one player: several faces start at 16 s, the first frame of segment 5.
    crowd = events["multiple_faces"]
    page.click(f"svg.timeline a.bar-link[data-event='{crowd.id}']")
    offset = crowd.start - started_at
    state = wait_for_player(page, 4, offset - 4 * SEGMENT_S)
    assert state["src"].endswith("/segment-0005.mp4") and state["at"] < offset - 4 * SEGMENT_S + 3
    assert "playing" in page.get_attribute(f"#event-{crowd.id}", "class")

    # A flag row's time seeks too: no face from 6 s, 2 s into segment 2.
    absence = events["no_face"]
    page.click(f"#event-{absence.id} a.seek")
    state = wait_for_player(page, 1, 2.0)
    assert state["src"].endswith("/segment-0002.mp4") and state["at"] < 5.0
    page.evaluate("document.getElementById('player-video').pause()")
    page.wait_for_function("() => document.getElementById('player-clock').textContent.includes('segment 2 of 6')")
    shots.take(page, "webui-review-seek", full_page=False)

    # Played to its end, a segment hands over to the next one.
    page.evaluate("""() => { const v = document.getElementById('player-video');
                             v.currentTime = v.duration - 0.2; v.play(); }""")
    wait_for_player(page, 2, 0.0)
    assert player_state(page)["src"].endswith("/segment-0003.mp4")
    page.evaluate("document.getElementById('player-video').pause()")

    # The clip opens in place; its marker sits where the flag starts (2 s of pre-roll in a 7.5 s clip).
    page.click(f"#event-{absence.id} details.clip summary")
    clip = page.locator(f"#event-{absence.id} details.clip video")
    assert clip.is_visible() and float(clip.get_attribute("data-event-at")) == pytest.approx(2.0)
    marker_x = float(page.get_attribute(f"#event-{absence.id} .clip-start", "x1"))
    assert marker_x == pytest.approx(100 * 2.0 / 7.5, abs=0.1)
    assert "2.0 s into the clip" in page.inner_text(f"#event-{absence.id}")
    page.evaluate("""async (id) => {
        const clip = document.querySelector(`#event-${id} details.clip video`);
        clip.load();
        await new Promise((ok) => clip.addEventListener('loadedmetadata', ok, {once: true}));
        clip.currentTime = 3.0;
    }""", absence.id)
    page.wait_for_function(  # the clip's playhead is past the flag's start marker
        "([id, x]) => Number(document.querySelector(`#event-${id} .clip-playhead`).getAttribute('x1')) > x",
        arg=[absence.id, marker_x])

    # Confirm one flag with a note, dismiss the other, leave a note and the final remarks.
    page.fill(f"#note-{absence.id}", "Chair empty for 4 s.")
    page.click(f"#event-{absence.id} button[value=confirmed]")
    # The page comes back at the flag's row, its player where it stood (segment 3, paused).
    page.wait_for_url(re.compile(rf".*/review\?at=8\.[0-9]+#event-{absence.id}$"))
    assert "Flag confirmed." in page.inner_text("main")
    assert wait_for_player(page, 2, 0.0)["paused"]
    page.click(f"#event-{crowd.id} button[value=dismissed]")
    page.wait_for_selector(f"#event-{crowd.id}.verdict-dismissed")
    assert "confirmed" in page.inner_text(f"#event-{absence.id} .verdict-now")
    assert "Chair empty for 4 s." in page.inner_text(f"#event-{absence.id} .verdict-now")
    page.fill("#note-text", "Second face was a reflection in the window.")
    page.click("#notes button[type=submit]")
    page.wait_for_selector("text=Note added.")
    page.fill("#remarks-text", "One absence of 4 s confirmed; no further misconduct.")
    page.click("#remarks button[value=reviewed]")
    page.wait_for_selector("text=Session marked reviewed.")
    assert page.inner_text("#review-state") == "reviewed"
    assert page.inner_text("#flag-counts") == "1 confirmed, 1 dismissed, 0 to do"
    reviewed = float(page.inner_text("#reviewed-score").split()[0])
    automatic = float(page.inner_text("#automatic-score").split()[0])
    assert automatic < reviewed < 100.0
    assert page.locator("svg.timeline a.bar-link.verdict-dismissed").count() == 1  # drawn faded
    page.click(f"#event-{absence.id} a.seek")
    wait_for_player(page, 1, 2.0)
    page.evaluate("document.getElementById('player-video').pause()")
    page.evaluate("window.scrollTo(0, 0)")
    shots.take(page, "webui-review", docs=True)

    # The printable report shows both scores and the remarks.
    page.goto(f"{kiosk.url}/sessions/{kiosk.session_id}/report.html")
    assert float(page.inner_text("#automatic-score")) == automatic
    assert float(page.inner_text("#reviewed-score")) == reviewed
    review = page.inner_text("#review")
    assert "marked reviewed by technician" in review and "One absence of 4 s confirmed" in review
    assert "Second face was a reflection" in review
    shots.take(page, "report-reviewed")

    page.goto(f"{kiosk.url}/sessions")
    assert "reviewed" in page.inner_text(f"#row-{kiosk.session_id} td[data-label=Review]")


def test_the_review_pages_fit_a_phone(browser, kiosk, tmp_path):
    shots = Shots(tmp_path)
    page = logged_in_page(browser, kiosk, PHONE)

    def fits() -> bool:
        return page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

    assert fits()  # the sessions table became cards
    assert page.is_visible(f"#row-{kiosk.session_id} td[data-label=Score]")
    shots.take(page, "webui-sessions-phone")

    for path, name in [(f"/sessions/{kiosk.session_id}/review", "webui-review-phone"),
                       (f"/sessions/{kiosk.session_id}", "webui-session-phone")]:
        page.goto(kiosk.url + path)
        assert fits(), path
        # Every flag's cells are on the screen (cards, not a table cut off at the right).
        for cell in page.locator("table.stack tbody td").all():
            box = cell.bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"] + 0.5, path
        # The timeline scrolls sideways instead of shrinking its text to a few pixels.
        label = page.locator("svg.timeline text.lane-label").first.bounding_box()
        assert label["height"] >= 10, path
        page.wait_for_function("() => [...document.querySelectorAll('video:not([hidden])')].every(v => v.preload === 'none'"
                               " || v.readyState >= 2)")  # the picture, not a loading spinner, in the screenshot
        shots.take(page, name, docs=name == "webui-review-phone")

    page.goto(f"{kiosk.url}/sessions/{kiosk.session_id}/review")
    bar = page.locator("svg.timeline a.bar-link").first
    bar.scroll_into_view_if_needed()
    bar.click()
    wait_for_player(page, 1, 2.0)


def test_the_review_page_works_without_javascript(browser, kiosk):
    context = browser.new_context(java_script_enabled=False, viewport=DESKTOP)
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(f"{kiosk.url}/sessions/{kiosk.session_id}/review")
    page.fill("#password", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url(f"{kiosk.url}/sessions/{kiosk.session_id}/review")
    absence = next(e for e in kiosk.reader.events(kiosk.session_id) if e.type == "no_face")

    # The flag's time opens its segment at the moment (a media fragment), the bar links to the row.
    assert page.get_attribute(f"#event-{absence.id} a.seek", "href").endswith("/segment-0002.mp4#t=2.0")
    assert page.get_attribute(f"svg.timeline a.bar-link[data-event='{absence.id}']", "href") == f"#event-{absence.id}"
    page.fill("#note-text", "Checked again without scripts.")
    page.click("#notes button[type=submit]")
    page.wait_for_selector("text=Note added.")
    assert "Checked again without scripts." in page.inner_text("#notes")
    context.close()
