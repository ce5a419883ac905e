"""The web page through Flask's test client, on real objects: a SQLite store in tmp_path, the real
SessionController, the real rules fed with FrameAnalysis values, real login sessions and CSRF tokens.
Every route is exercised, with the refused cases: no login, bad CSRF token, bad form input, unknown session."""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import fill
from prometheus_client.parser import text_string_to_metric_families
from werkzeug.security import generate_password_hash

from daemon.capture.frame import Frame
from daemon.config import Config, WebConfig
from daemon.events.rules import Instant
from daemon.host import HostPart
from daemon.inference.analysis import Box, Face, FrameAnalysis
from daemon.latest_frame import LatestFrame
from daemon.parts import DaemonStatus, Figure, PartStatus
from daemon.session import SessionController, SessionPart
from daemon.store.db import Store, StoreReader
from daemon.store.records import CandidateInfo, MediaRecord
from daemon.store.writer import StoreWriter
from daemon.sync.contract import Topics
from daemon.sync.part import MqttPart
from webui.app import WebBackend, create_app

PASSWORD = "correct horse battery"
# A cheap hash method keeps the tests fast; the installed default (scrypt) is checked in test_webui_parts.
PASSWORD_HASH = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")


class FakeClock:
    def __init__(self):
        self.mono, self.wall = 1000.0, 1_700_000_000.0

    def monotonic(self) -> float:
        return self.mono

    def time(self) -> float:
        return self.wall

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += seconds


class Kiosk:
    """The daemon's side of the web page, made of the real parts."""

    def __init__(self, tmp_path: Path, clock: FakeClock):
        config = Config()
        self.clock = clock
        self.data_dir = tmp_path / "data"
        database = self.data_dir / "proctord.db"
        self.writer = StoreWriter(Store(database, kiosk="kiosk-1"))
        self.reader = StoreReader(database)
        self.sessions = SessionController(config.rules, self.writer, Topics.from_config(config))
        self.latest = LatestFrame()
        self.backend = WebBackend(
            status=lambda: self.status(),  # a test may replace the snapshot
            reader=self.reader,
            rules=config.rules,
            start_session=lambda info: self.sessions.start(info, self.now()),
            stop_session=self.sessions.stop,
            open_events=lambda: self.sessions.open_events,
            record_review=lambda entries: self.writer.submit(
                lambda store: [store.add_review(entry) for entry in entries], retry=False).result(),
            latest_frame=self.latest.get,
            camera=lambda: self.status().part("capture"),
            data_dir=self.data_dir,
            recordings_dir=self.data_dir / "recordings",
        )
        self.parts = [SessionPart(self.sessions), MqttPart(config.mqtt.model_copy(update={"enabled": False}), self.reader, None), HostPart(self.data_dir)]
        self.seq = 0

    def now(self) -> Instant:
        return Instant(self.clock.monotonic(), self.clock.time())

    def status(self) -> DaemonStatus:
        """The daemon's snapshot: the real session, uplink and machine parts, and the camera side as the
        capture and analysis parts report it on a 10 fps camera."""
        capture = PartStatus("capture", "ok", None, (
            Figure("source", "Source", "scenario.mp4", kind="info"),
            Figure("online", "Camera online", True),
            Figure("fps", "Delivered", 10.0, "fps"),
            Figure("last_frame_age_seconds", "Last frame", 0.1, "s ago"),
            Figure("dropped", "Frames dropped", 2, kind="counter"),
            Figure("reconnects", "Reconnects", 1, kind="counter"),
        ), title="Camera")
        analysis = PartStatus("analysis", "ok", None, (
            Figure("face_model", "Face model", "face_detection_short_range.tflite", kind="info"),
            Figure("frames", "Frames analysed", self.seq, kind="counter"),
            Figure("fps", "Analysed", 9.8, "fps"),
            Figure("face_detect_ms", "face detect", 1.5, "ms"),
        ))
        return DaemonStatus(
            "test", "kiosk-1", "site-a", "running", self.sessions.active, self.sessions.open_events,
            (capture, analysis, *(part.status() for part in self.parts)),
        )

    def frames(self, seconds: float, faces: int) -> None:
        """Feed the session's rules `seconds` of 10 fps analyses with `faces` faces."""
        for _ in range(round(seconds * 10)):
            self.clock.advance(0.1)
            face = Face(Box(100, 80, 120, 150), 0.9, ((130, 130), (190, 130), (160, 160), (160, 190)))
            self.sessions.observe(FrameAnalysis(
                seq=self.seq, mono=self.clock.mono, wall=self.clock.wall, width=640, height=480,
                faces=(face,) * faces,
            ))
            self.seq += 1
        self.writer.submit(lambda store: None).result()  # the writes are committed

    def close(self) -> None:
        self.writer.close()


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def kiosk(tmp_path, clock):
    kiosk = Kiosk(tmp_path, clock)
    yield kiosk
    kiosk.close()


def make_client(kiosk: Kiosk, **web):
    app = create_app(kiosk.backend, WebConfig(password_hash=PASSWORD_HASH, **web), clock=kiosk.clock)
    return app.test_client()


@pytest.fixture
def client(kiosk):
    return make_client(kiosk)


def csrf_token(html: str) -> str:
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"', html).group(1)


def login(client, password: str = PASSWORD, next_path: str = "", address: str = "192.0.2.10", user: str = "technician"):
    token = csrf_token(client.get("/login").text)
    query = f"?next={next_path}" if next_path else ""
    return client.post(f"/login{query}", data={"csrf_token": token, "user": user, "password": password},
                       environ_base={"REMOTE_ADDR": address})


@pytest.fixture
def logged_in(client):
    """Logged in with the shared technician password (no named user yet)."""
    assert login(client).status_code == 302
    return client


TECHNICIAN = ("tom", "tom's password")
REVIEWER = ("rita", "rita's password")


def add_user(kiosk: Kiosk, name: str, role: str, password: str) -> None:
    password_hash = generate_password_hash(password, method="pbkdf2:sha256:1000")
    assert kiosk.writer.submit(lambda store: store.add_user(name, role, password_hash)).result()


@pytest.fixture
def named_users(kiosk):
    add_user(kiosk, TECHNICIAN[0], "technician", TECHNICIAN[1])
    add_user(kiosk, REVIEWER[0], "reviewer", REVIEWER[1])


def logged_in_as(kiosk: Kiosk, name: str, password: str):
    client = make_client(kiosk)
    assert login(client, user=name, password=password).status_code == 302
    return client


@pytest.fixture
def technician(kiosk, named_users):
    return logged_in_as(kiosk, *TECHNICIAN)


@pytest.fixture
def reviewer(kiosk, named_users):
    return logged_in_as(kiosk, *REVIEWER)


def basic(password: str, user: str = "technician") -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def start_form(client, **fields) -> dict:
    values = {"candidate_name": "Ada Lovelace", "candidate_id": "c-42", "exam_id": "math-101", "notes": ""}
    return values | fields | {"csrf_token": csrf_token(client.get("/sessions/new").text)}


HTML_PAGES = [
    "/", "/live", "/live.jpg", "/sessions", "/sessions/new", "/sessions/any", "/sessions/any/report.csv",
    "/sessions/any/report.html", "/sessions/any/report.pdf", "/report.css",
]
MACHINE_ROUTES = ["/api/status", "/api/sessions", "/api/sessions/any/report.json", "/metrics"]


def test_healthz_needs_no_login(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json == {"ok": True}


@pytest.mark.parametrize("path", HTML_PAGES)
def test_pages_send_a_visitor_without_login_to_the_login_page(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


@pytest.mark.parametrize("path", MACHINE_ROUTES)
def test_json_and_metrics_refuse_a_visitor_without_login(client, path):
    response = client.get(path)
    assert response.status_code == 401 and "login required" in response.json["error"]


@pytest.mark.parametrize("path", ["/sessions/new", "/sessions/stop", "/logout"])
def test_posts_without_login_change_nothing(client, kiosk, path):
    assert client.post(path, data={"candidate_name": "x"}).status_code in (302, 400)
    assert kiosk.reader.sessions() == []


def test_login_with_the_right_password_leads_back_to_the_page_asked_for(client):
    assert client.get("/login").status_code == 200
    response = login(client, next_path="/sessions")
    assert response.status_code == 302 and response.headers["Location"] == "/sessions"
    page = client.get("/sessions")
    assert page.status_code == 200 and "No session yet." in page.text


def test_login_never_redirects_to_another_site(client):
    response = login(client, next_path="//evil.example/steal")
    assert response.headers["Location"] == "/"


def test_wrong_password_is_refused(client):
    response = login(client, password="wrong")
    assert response.status_code == 401 and "Wrong user name or password." in response.text
    assert client.get("/").status_code == 302


def test_login_without_csrf_token_is_refused(client):
    client.get("/login")
    response = client.post("/login", data={"password": PASSWORD})
    assert response.status_code == 400 and "CSRF" in response.text
    assert client.get("/").status_code == 302


def test_empty_password_is_refused_with_a_message(client):
    token = csrf_token(client.get("/login").text)
    response = client.post("/login", data={"csrf_token": token, "user": "technician", "password": ""})
    assert response.status_code == 400 and "Enter your password." in response.text


def test_login_expires_after_the_session_lifetime(kiosk, clock):
    client = make_client(kiosk, session_lifetime_s=600)
    login(client)
    clock.advance(599)
    assert client.get("/").status_code == 200
    clock.advance(2)
    response = client.get("/", follow_redirects=True)
    assert "/login" in response.request.path and "Your login has ended" in response.text
    assert client.get("/api/status").status_code == 401


def test_logout_needs_a_csrf_token_and_ends_the_login(logged_in):
    assert logged_in.post("/logout").status_code == 400
    assert logged_in.get("/").status_code == 200
    token = csrf_token(logged_in.get("/").text)
    assert logged_in.post("/logout", data={"csrf_token": token}).status_code == 302
    assert logged_in.get("/").status_code == 302


def test_item5_logout_revokes_the_login_on_the_server(logged_in):
    cookie = logged_in.get_cookie("proctord_session").value
    token = csrf_token(logged_in.get("/").text)
    assert logged_in.post("/logout", data={"csrf_token": token}).status_code == 302
    replayed = logged_in.application.test_client()
    replayed.set_cookie("proctord_session", cookie)  # the cookie kept from before the logout
    assert replayed.get("/").status_code == 302 and replayed.get("/api/status").status_code == 401


def test_item5_a_new_password_ends_the_logins_made_with_the_old_one(kiosk, client):
    login(client)
    cookie = client.get_cookie("proctord_session").value
    same = make_client(kiosk)
    same.set_cookie("proctord_session", cookie)
    assert same.get("/").status_code == 200
    changed = create_app(kiosk.backend, WebConfig(password_hash=generate_password_hash(
        "another long password", method="pbkdf2:sha256:1000")), clock=kiosk.clock).test_client()
    changed.set_cookie("proctord_session", cookie)
    assert changed.get("/").status_code == 302


@pytest.mark.parametrize("next_path", ["/sessions%0d%0aSet-Cookie:%20x=1", "/%0aevil", "/\\evil.example", "/x%00"])
def test_item5_a_control_character_in_next_does_not_break_the_login(client, next_path):
    response = login(client, next_path=next_path)
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert "x=1" not in str(response.headers)


def test_scripts_use_http_basic_credentials(client):
    assert client.get("/api/status", headers=basic(PASSWORD)).json["kiosk"] == "kiosk-1"
    assert client.get("/api/status", headers=basic("wrong")).status_code == 401
    assert client.get("/api/status", headers=basic(PASSWORD, user="root")).status_code == 401
    assert client.get("/metrics", headers=basic(PASSWORD)).status_code == 200


def test_a_login_survives_a_restart_because_the_signing_key_is_kept(kiosk, client):
    login(client)
    key_file = kiosk.data_dir / "web-secret-key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    restarted = make_client(kiosk)
    restarted.set_cookie("proctord_session", client.get_cookie("proctord_session").value)
    assert restarted.get("/").status_code == 200


def test_without_a_configured_password_nobody_gets_in(kiosk):
    client = create_app(kiosk.backend, WebConfig(), clock=kiosk.clock).test_client()
    page = client.get("/login")
    assert page.status_code == 503 and "proctord user add" in page.text
    assert client.get("/api/status", headers=basic("")).status_code == 503
    assert client.get("/healthz").status_code == 200


def test_status_page_shows_the_figures_and_the_start_link(logged_in):
    page = logged_in.get("/")
    assert page.status_code == 200
    for text in ("site-a / kiosk-1", "9.8 fps", "face_detection_short_range.tflite", "face detect", "1.5 ms",
                 "Disk free", "CPU load", "mqtt.enabled is false", "No session running.", "Start a session"):
        assert text in page.text
    status = logged_in.get("/api/status").json
    assert status["parts"]["host"]["figures"]["disk_free_bytes"]["value"] > 0 and status["open_events"] == []
    assert status["parts"]["analysis"]["figures"]["fps"] == {
        "key": "fps", "label": "Analysed", "value": 9.8, "unit": "fps", "kind": "gauge", "help": "", "stale": False,
        "text": "9.8 fps",
    }


def test_a_stale_figure_is_shown_as_stale_and_left_out_of_the_metrics(logged_in, kiosk):
    offline = PartStatus("capture", "failed", "/dev/video0: no frame for more than 2 s", (
        Figure("online", "Camera online", False),
        Figure("fps", "Delivered", 0.0, "fps", stale=True),
    ))
    live = kiosk.status
    kiosk.status = lambda: replace(live(), parts=(offline, *live().parts[1:]))
    page = logged_in.get("/").text
    assert re.search(r'<dd id="capture-fps" class="stale"[^>]*>— \(was 0 fps\)</dd>', page)
    assert '<span class="badge state-failed" id="state">running — needs attention: Capture</span>' in page
    assert "no frame for more than 2 s" in page
    assert logged_in.get("/api/status").json["parts"]["capture"]["figures"]["fps"]["stale"] is True
    metrics = logged_in.get("/metrics").text
    assert "proctord_capture_online 0.0" in metrics and "proctord_capture_fps" not in metrics


def test_a_session_started_from_the_form_records_events_and_is_stopped(logged_in, kiosk):
    assert logged_in.get("/sessions/new").status_code == 200
    response = logged_in.post("/sessions/new", data=start_form(logged_in, notes="seat 12"))
    assert response.status_code == 302
    session = kiosk.sessions.active
    assert (session.candidate_name, session.candidate_id, session.exam_id, session.notes) == (
        "Ada Lovelace", "c-42", "math-101", "seat 12")
    assert response.headers["Location"] == f"/sessions/{session.id}"

    kiosk.frames(2, faces=1)
    kiosk.frames(4, faces=0)  # no face for 4 s: no_face starts after its 2 s onset
    status = logged_in.get("/api/status").json
    assert [e["type"] for e in status["open_events"]] == ["no_face"]
    page = logged_in.get(f"/sessions/{session.id}")
    assert page.status_code == 200 and "No face" in page.text and 'http-equiv="refresh"' in page.text
    assert re.search(r'<rect class="bar"[^>]*><title>No face at 0:0[23]', page.text)  # on the timeline
    assert '<dd id="open_events">No face</dd>' in logged_in.get("/").text  # the open events on the status page
    assert logged_in.get("/api/status").json["open_events"][0]["label"] == "No face"

    token = csrf_token(page.text)
    stopped = logged_in.post("/sessions/stop", data={"csrf_token": token})
    assert stopped.status_code == 302 and kiosk.sessions.active is None
    page = logged_in.get(f"/sessions/{session.id}")
    assert "completed" in page.text and 'http-equiv="refresh"' not in page.text

    report = logged_in.get(f"/api/sessions/{session.id}/report.json")
    assert report.headers["Content-Disposition"] == f'attachment; filename="report-{session.id}.json"'
    assert [e["type"] for e in report.json["events"]] == ["no_face"]
    assert report.json["events"][0]["end"] is not None
    csv_text = logged_in.get(f"/sessions/{session.id}/report.csv").text
    assert csv_text.splitlines()[0].startswith("id,type,severity") and ",no_face,high," in csv_text
    printable = logged_in.get(f"/sessions/{session.id}/report.html")
    assert printable.status_code == 200 and "Ada Lovelace" in printable.text and "/report.css" in printable.text
    assert "<style>" not in printable.text  # the CSP allows only the linked stylesheet
    assert logged_in.get("/report.css").mimetype == "text/css"
    pdf = logged_in.get(f"/sessions/{session.id}/report.pdf")
    assert pdf.mimetype == "application/pdf" and pdf.data.startswith(b"%PDF")
    assert [s["id"] for s in logged_in.get("/api/sessions").json] == [session.id]
    assert session.id in logged_in.get("/sessions").text


def test_start_form_without_csrf_token_starts_nothing(logged_in, kiosk):
    fields = start_form(logged_in)
    del fields["csrf_token"]
    response = logged_in.post("/sessions/new", data=fields)
    assert response.status_code == 400 and "CSRF" in response.text
    fields["csrf_token"] = "forged"
    assert logged_in.post("/sessions/new", data=fields).status_code == 400
    assert kiosk.sessions.active is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"candidate_name": "  "}, "Required."),
        ({"candidate_id": "c 42"}, "Use letters, digits and _ . : - only"),
        ({"exam_id": ""}, "Required."),
        ({"candidate_name": "Ada\x07"}, "The character U+0007 is not allowed"),
        ({"candidate_name": "Ada\u202e"}, "The character U+202E is not allowed"),
        ({"notes": "see ../../etc"}, "&#39;..&#39; path steps are not allowed"),
        ({"candidate_id": "x" * 65}, "At most 64 characters."),
    ],
)
def test_bad_form_input_is_refused_with_a_message(logged_in, kiosk, fields, message):
    response = logged_in.post("/sessions/new", data=start_form(logged_in, **fields))
    assert response.status_code == 400 and message in response.text
    assert kiosk.sessions.active is None


def test_an_oversized_form_is_refused(logged_in, kiosk):
    response = logged_in.post("/sessions/new", data=start_form(logged_in, notes="x" * 100_000))
    assert response.status_code == 413 and kiosk.sessions.active is None


def test_starting_twice_and_stopping_nothing_are_refused(logged_in, kiosk):
    logged_in.post("/sessions/new", data=start_form(logged_in))
    running = kiosk.sessions.active
    again = logged_in.post("/sessions/new", data=start_form(logged_in, candidate_id="c-43"))
    assert again.status_code == 409 and "already running" in again.text
    assert kiosk.sessions.active == running
    token = csrf_token(logged_in.get("/").text)
    logged_in.post("/sessions/stop", data={"csrf_token": token})
    refused = logged_in.post("/sessions/stop", data={"csrf_token": token})
    assert refused.status_code == 409 and "no session is running" in refused.text


def test_stop_without_csrf_token_is_refused(logged_in, kiosk):
    logged_in.post("/sessions/new", data=start_form(logged_in))
    assert logged_in.post("/sessions/stop").status_code == 400
    assert kiosk.sessions.active is not None


@pytest.mark.parametrize(
    "path", ["/sessions/nope", "/sessions/nope/report.csv", "/sessions/nope/report.html", "/sessions/nope/report.pdf"]
)
def test_unknown_session_is_not_found(logged_in, path):
    response = logged_in.get(path)
    assert response.status_code == 404 and "No session &#39;nope&#39;." in response.text


def test_unknown_session_report_is_not_found(logged_in):
    response = logged_in.get("/api/sessions/nope/report.json")
    assert response.status_code == 404 and response.json == {"error": "No session 'nope'."}


def test_live_view_shows_the_newest_analysed_frame(logged_in, kiosk, shared):
    assert logged_in.get("/live").status_code == 200
    assert logged_in.get("/live.jpg").status_code == 503  # nothing analysed yet
    image = cv2.imread(str(shared / "media/images/dlib/2008_002506.jpg"))
    face = Face(Box(50, 40, 80, 90), 0.9, ((70, 70), (110, 70), (90, 90), (90, 110)))
    frame = Frame(image=image, seq=0, mono=kiosk.clock.mono, wall=kiosk.clock.wall)
    kiosk.latest.publish(frame, FrameAnalysis(0, frame.mono, frame.wall, frame.width, frame.height, (face,)))
    response = logged_in.get("/live.jpg")
    assert response.status_code == 200 and response.mimetype == "image/jpeg"
    picture = cv2.imdecode(np.frombuffer(response.data, np.uint8), cv2.IMREAD_COLOR)
    assert picture.shape[1] == min(640, image.shape[1])


def test_metrics_in_prometheus_text_format(logged_in, kiosk):
    logged_in.post("/sessions/new", data=start_form(logged_in))
    kiosk.frames(4, faces=0)
    response = logged_in.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }
    assert samples[("proctord_events_total", (("type", "no_face"),))] == 1
    assert samples[("proctord_capture_dropped_total", ())] == 2
    assert samples[("proctord_analysis_frames_total", ())] == kiosk.seq == 40
    assert samples[("proctord_analysis_fps", ())] == 9.8
    assert samples[("proctord_capture_online", ())] == 1
    assert samples[("proctord_capture_reconnects_total", ())] == 1
    assert samples[("proctord_analysis_face_detect_ms", ())] == 1.5
    assert samples[("proctord_session_running", ())] == 1
    assert samples[("proctord_session_open_events", ())] == 1
    assert samples[("proctord_mqtt_outbox_backlog", ())] == kiosk.reader.outbox_backlog() > 0
    assert samples[("proctord_host_disk_free_bytes", ())] > 0
    assert not any(name.startswith(("proctord_capture_source", "proctord_analysis_face_model")) for name, _ in samples)


def test_responses_carry_security_headers_and_a_guarded_cookie(client):
    cookie = login(client).headers["Set-Cookie"]
    assert cookie.startswith("proctord_session=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    response = client.get("/")
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]  # no inline script runs
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "no-store"


def test_a_failing_page_shows_no_stack_trace(kiosk, caplog):
    def broken_status():
        raise RuntimeError("secret internals")

    backend = WebBackend(**{**kiosk.backend.__dict__, "status": broken_status})
    client = create_app(backend, WebConfig(password_hash=PASSWORD_HASH), clock=kiosk.clock).test_client()
    login(client)
    for path in ("/", "/api/status"):
        response = client.get(path)
        assert response.status_code == 500
        assert "Internal error" in response.text
        assert "Traceback" not in response.text and "secret internals" not in response.text
    assert "secret internals" in caplog.text  # the log has it


def _record_evidence(kiosk: Kiosk, session_id: str, event_id: str, frame: np.ndarray) -> None:
    """A snapshot JPEG and a clip file on disk, known to the store as the recorder would leave them."""
    folder = kiosk.data_dir / "recordings" / session_id
    folder.mkdir(parents=True)
    files = {"snapshot": f"snapshot-{event_id}.jpg", "clip": f"clip-{event_id}.mp4"}
    (folder / files["snapshot"]).write_bytes(cv2.imencode(".jpg", frame)[1].tobytes())
    (folder / files["clip"]).write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(1000))
    for kind, name in files.items():
        data = (folder / name).read_bytes()
        record = MediaRecord(
            name=f"{session_id}/{name}", session_id=session_id, kind=kind, event_id=event_id,
            sha256=hashlib.sha256(data).hexdigest(), bytes=len(data), start=kiosk.clock.wall, end=kiosk.clock.wall,
            frames=1,
        )
        kiosk.writer.submit(lambda store, record=record: store.add_media(record)).result()


@pytest.fixture
def desk(shared) -> np.ndarray:
    return cv2.imread(str(shared / "media/images/coco/coco_val2017_000000017182.jpg"))


def test_session_page_shows_each_events_snapshot_and_clip_and_serves_them(kiosk, logged_in, desk):
    session = kiosk.sessions.start(CandidateInfo("Ada", "c-1"), kiosk.now())
    kiosk.frames(seconds=3, faces=0)  # a no_face event
    [event] = kiosk.reader.events(session.id)
    _record_evidence(kiosk, session.id, event.id, desk)

    page = logged_in.get(f"/sessions/{session.id}").get_data(as_text=True)
    assert f"/sessions/{session.id}/media/clip-{event.id}.mp4" in page
    assert f'poster="/sessions/{session.id}/media/snapshot-{event.id}.jpg"' in page

    snapshot = logged_in.get(f"/sessions/{session.id}/media/snapshot-{event.id}.jpg")
    assert snapshot.status_code == 200 and snapshot.mimetype == "image/jpeg"
    assert cv2.imdecode(np.frombuffer(snapshot.data, np.uint8), cv2.IMREAD_COLOR).shape == desk.shape
    ranged = logged_in.get(f"/sessions/{session.id}/media/clip-{event.id}.mp4", headers={"Range": "bytes=0-7"})
    assert ranged.status_code == 206 and ranged.mimetype == "video/mp4" and len(ranged.data) == 8


@pytest.mark.parametrize("file", ["clip-unknown.mp4", "..%2Fproctord.db", "proctord.db"])
def test_only_files_the_store_knows_are_served(kiosk, logged_in, file):
    session = kiosk.sessions.start(CandidateInfo("Ada", "c-1"), kiosk.now())
    assert logged_in.get(f"/sessions/{session.id}/media/{file}").status_code == 404


def test_media_needs_a_login(kiosk, client, desk):
    session = kiosk.sessions.start(CandidateInfo("Ada", "c-1"), kiosk.now())
    _record_evidence(kiosk, session.id, "ev-1", desk)
    response = client.get(f"/sessions/{session.id}/media/snapshot-ev-1.jpg")
    assert response.status_code in (302, 401) and response.mimetype != "image/jpeg"


def test_item2_the_start_form_on_a_full_disk_says_so_instead_of_a_500(small_disk, clock):
    kiosk = Kiosk(small_disk, clock)
    try:
        client = make_client(kiosk)
        login(client)
        fields = start_form(client)
        fill(small_disk)
        response = client.post("/sessions/new", data=fields)
        assert response.status_code == 503 and "could not store the session" in response.text
    finally:
        kiosk.close()


def test_a_session_the_camera_missed_is_not_assessable_on_its_page(kiosk, logged_in):
    session = kiosk.sessions.start(CandidateInfo("Ada", "c-1"), kiosk.now(), camera_online=False)
    for _ in range(42):  # 21 s of the capture loop saying the camera is offline, no frame at all
        kiosk.clock.advance(0.5)
        kiosk.sessions.observe_camera(False, kiosk.now())
    kiosk.sessions.stop()

    page = logged_in.get(f"/sessions/{session.id}").text
    assert 'id="score">Not assessable' in page
    assert "Only 0 % of the session (0.0 s of 21.0 s) was analysed (camera offline 21.0 s)" in page
    assert "no frame from the camera for 21.0 s" in page  # the evidence in words
    assert "100 × high factor 1.0 × weight 1.0 × 21.0 s flagged ÷ 21.0 s" in page  # a line to recompute
    report = logged_in.get(f"/api/sessions/{session.id}/report.json").json
    assert report["integrity"]["score"] is None and report["session"]["duration_seconds"] == 21.0
    [listed] = logged_in.get("/api/sessions").json
    assert (listed["assessment"]["assessable"], listed["assessment"]["analysed_share"]) == (False, 0.0)
    # The exam board's list and review page say it too, and rank it first (it needs a person's eyes).
    row = re.search(r'<tr id="row-[^"]+">.*?</tr>', logged_in.get("/sessions").text, re.DOTALL).group(0)
    assert session.id in row and "not assessable" in row
    assert "not assessable" in logged_in.get(f"/sessions/{session.id}/review").text


def test_the_printable_reports_carry_the_snapshots(kiosk, logged_in, desk):
    session = kiosk.sessions.start(CandidateInfo("Ada", "c-1"), kiosk.now())
    kiosk.frames(seconds=3, faces=0)
    [event] = kiosk.reader.events(session.id)
    _record_evidence(kiosk, session.id, event.id, desk)

    printable = logged_in.get(f"/sessions/{session.id}/report.html").text
    assert printable.count('<img class="thumb" src="data:image/jpeg;base64,') == 1  # the CSP allows data: images
    assert b"/Subtype /Image" in logged_in.get(f"/sessions/{session.id}/report.pdf").data
