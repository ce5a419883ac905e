"""The exam board's pages through Flask's test client on the real store and rules (tests/test_webui.py's
Kiosk): the sessions list sorted and filtered by its query string, the review page's forms (verdicts,
notes, final remarks, marking reviewed), and every refusal with its reason and the typed text kept."""

from __future__ import annotations

import html
import re

import pytest
from test_webui import FakeClock, Kiosk, csrf_token, login, make_client, start_form

from daemon.review import NOTE_MAX
from daemon.store.records import CandidateInfo
from webui.pages import SESSIONS_PER_PAGE


@pytest.fixture
def kiosk(tmp_path):
    kiosk = Kiosk(tmp_path, FakeClock())
    yield kiosk
    kiosk.close()


@pytest.fixture
def client(kiosk):
    client = make_client(kiosk)
    assert login(client).status_code == 302
    return client


def run_session(client, kiosk, name: str, exam: str, pattern: list[tuple[float, int]]) -> str:
    """A finished session whose rules saw `pattern`: (seconds, faces in view) in turn."""
    assert client.post("/sessions/new", data=start_form(client, candidate_name=name, exam_id=exam)).status_code == 302
    for seconds, faces in pattern:
        kiosk.frames(seconds, faces)
    assert client.post("/sessions/stop", data={"csrf_token": token(client)}).status_code == 302
    kiosk.clock.advance(60)
    return kiosk.reader.sessions()[0].id


def token(client) -> str:
    return csrf_token(client.get("/sessions/new").text)


def listed(client, query: str = "") -> list[str]:
    """The session ids of the list, in its order."""
    response = client.get(f"/sessions{query}")
    assert response.status_code == 200, response.text
    return re.findall(r'<tr id="row-([^"]+)"', response.text)


@pytest.fixture
def three(client, kiosk):
    """Clean (no flag), absent (a 4 s no_face) and crowded (no_face and multiple_faces), in that order."""
    clean = run_session(client, kiosk, "Clean Carla", "math-101", [(8, 1)])
    absent = run_session(client, kiosk, "Absent Ada", "math-101", [(2, 1), (4, 0), (2, 1)])
    crowded = run_session(client, kiosk, "Crowded Cy", "phys-201", [(2, 1), (4, 0), (3, 2), (1, 1)])
    return clean, absent, crowded


def test_the_list_shows_score_flags_and_review_and_defaults_to_review_priority(client, kiosk, three):
    clean, absent, crowded = three
    page = client.get("/sessions").text
    row = page[page.index(f'id="row-{crowded}"'):]
    row = row[:row.index("</tr>")]
    assert 'data-label="High" class="num high">2<' in row and "not reviewed" in row and "phys-201" in row
    # Not reviewed first, lowest score first: crowded, absent, clean.
    assert listed(client) == [crowded, absent, clean]

    review(client, crowded, verdicts={"*": "confirmed"}, action="reviewed")
    assert listed(client) == [absent, clean, crowded]  # reviewed sessions go last
    assert listed(client, "?review=reviewed") == [crowded]
    assert listed(client, "?review=not_reviewed") == [absent, clean]


@pytest.mark.parametrize(("query", "expected"), [
    ("?sort=score", ["crowded", "absent", "clean"]),
    ("?sort=score&order=desc", ["clean", "absent", "crowded"]),
    ("?sort=high&order=desc", ["crowded", "absent", "clean"]),
    ("?sort=events", ["clean", "absent", "crowded"]),
    ("?sort=candidate", ["absent", "clean", "crowded"]),
    ("?sort=exam&order=desc", ["crowded", "absent", "clean"]),  # ties: newest first
    ("?sort=date", ["clean", "absent", "crowded"]),
    ("?exam=MATH", ["absent", "clean"]),
    ("?candidate=cy", ["crowded"]),
    ("?max_score=99.9&sort=date", ["absent", "crowded"]),
    ("?min_high=2", ["crowded"]),
    ("?state=completed&sort=date", ["clean", "absent", "crowded"]),
    ("?state=interrupted", []),
    ("?since=2023-11-13&until=2023-11-15&sort=date", ["clean", "absent", "crowded"]),
    ("?since=2030-01-01", []),
])
def test_the_list_sorts_and_filters_by_its_query_string(client, three, query, expected):
    names = dict(zip(("clean", "absent", "crowded"), three, strict=True))
    assert listed(client, query) == [names[n] for n in expected]


def test_sort_headers_link_the_same_filter_in_the_other_direction(client, three):
    page = client.get("/sessions?exam=math&sort=score").text
    assert 'href="/sessions?sort=score&amp;exam=math&amp;order=desc"' in page


@pytest.mark.parametrize(("query", "message"), [
    ("?sort=colour", "Order by: Choose one of"),
    ("?max_score=150", "Score at most: Number must be between 0 and 100."),
    ("?min_high=-1", "High-severity flags at least: Number must be at least 0."),
    ("?since=yesterday", "From: Not a valid date value."),
    ("?review=maybe", "Review: Choose one of"),
])
def test_a_bad_filter_is_refused_beside_its_field_and_the_whole_list_shown(client, three, query, message):
    response = client.get(f"/sessions{query}")

    assert response.status_code == 400
    assert message in html.unescape(response.text)
    assert len(re.findall(r'<tr id="row-', response.text)) == 3


def review(client, session_id: str, verdicts: dict[str, str] = (), note: str = "", action: str = ""):
    """Post verdicts ({event id or "*": verdict}), a note and the remarks form as a reviewer would."""
    page = client.get(f"/sessions/{session_id}/review").text
    events = re.findall(r'<tr id="event-([^"]+)" class="flag', page)
    for event_id in events:
        value = dict(verdicts).get(event_id) or dict(verdicts).get("*")
        if value:
            response = client.post(f"/sessions/{session_id}/review/flags/{event_id}",
                                   data={"csrf_token": token(client), "verdict": value, "note": note})
            assert response.status_code == 302, response.text
    if action:
        response = client.post(f"/sessions/{session_id}/review/remarks",
                               data={"csrf_token": token(client), "remarks": "Seen.", "action": action})
        assert response.status_code == 302, html.unescape(response.text)
    return events


def test_a_reviewer_confirms_dismisses_notes_and_marks_the_session_reviewed(client, kiosk, three):
    crowded = three[2]
    first, second = review(client, crowded)

    response = client.post(f"/sessions/{crowded}/review/flags/{first}",
                           data={"csrf_token": token(client), "verdict": "dismissed", "note": "a reflection"})
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/review#event-{first}")
    client.post(f"/sessions/{crowded}/review/flags/{first}", data={"csrf_token": token(client), "verdict": "confirmed"})
    client.post(f"/sessions/{crowded}/review/flags/{second}", data={"csrf_token": token(client), "verdict": "dismissed"})
    client.post(f"/sessions/{crowded}/review/notes", data={"csrf_token": token(client), "text": "Room was noisy."})
    response = client.post(f"/sessions/{crowded}/review/remarks", data={
        "csrf_token": token(client), "remarks": "One absence confirmed; the second face was a poster.",
        "action": "reviewed",
    })
    assert response.status_code == 302

    page = html.unescape(client.get(f"/sessions/{crowded}/review").text)
    assert "Session marked reviewed." in page and 'id="review-state">reviewed' in page
    assert "1 earlier verdict" in page and "dismissed · technician" in page and "a reflection" in page
    assert "Room was noisy." in page and "One absence confirmed; the second face was a poster." in page
    assert "1 confirmed, 1 dismissed, 0 to do" in page
    report = client.get(f"/api/sessions/{crowded}/report.json").json
    assert report["review"]["state"] == "reviewed" and report["review"]["marked_by"] == "technician"
    assert report["review"]["reviewed_integrity"]["score"] > report["integrity"]["score"]
    listed_json = {s["id"]: s["review_state"] for s in client.get("/api/sessions").json}
    assert listed_json == {three[0]: "not_reviewed", three[1]: "not_reviewed", crowded: "reviewed"}
    printable = client.get(f"/sessions/{crowded}/report.html").text
    assert 'id="reviewed-score">' in printable and "One absence confirmed" in printable


def test_refused_review_forms_say_why_and_keep_what_was_typed(client, kiosk, three):
    crowded = three[2]
    first, _ = review(client, crowded)
    long_note = "n" * (NOTE_MAX + 1)

    response = client.post(f"/sessions/{crowded}/review/flags/{first}",
                           data={"csrf_token": token(client), "verdict": "confirmed", "note": long_note})
    assert response.status_code == 400
    assert f"Note: At most {NOTE_MAX} characters ({NOTE_MAX + 1} given)." in response.text
    assert long_note in response.text  # kept in its box

    response = client.post(f"/sessions/{crowded}/review/flags/{first}",
                           data={"csrf_token": token(client), "verdict": "perhaps"})
    assert response.status_code == 400 and "Verdict: Choose one of" in html.unescape(response.text)

    response = client.post(f"/sessions/{crowded}/review/remarks",
                           data={"csrf_token": token(client), "remarks": "Draft verdict: fine.", "action": "reviewed"})
    assert response.status_code == 400
    assert "Not saved: 2 of 2 flags have no verdict yet" in response.text and "Draft verdict: fine." in response.text

    response = client.post(f"/sessions/{crowded}/review/notes", data={"csrf_token": token(client), "text": "  "})
    assert response.status_code == 400 and "Write the note first." in response.text

    response = client.post(f"/sessions/{crowded}/review/flags/no-such-flag",
                           data={"csrf_token": token(client), "verdict": "confirmed"})
    assert response.status_code == 400 and "no flag &#39;no-such-flag&#39; in this session" in response.text

    response = client.post(f"/sessions/{crowded}/review/flags/{first}", data={"verdict": "confirmed"})
    assert response.status_code == 400 and "CSRF" in response.text
    assert kiosk.reader.review(crowded).history == ()  # nothing refused was written


def test_review_pages_and_forms_need_a_login(kiosk, three):
    stranger = make_client(kiosk)
    crowded = three[2]
    event_id = kiosk.reader.events(crowded)[0].id

    assert stranger.get(f"/sessions/{crowded}/review").headers["Location"].startswith("/login")
    for path in (f"/review/flags/{event_id}", "/review/notes", "/review/remarks"):
        response = stranger.post(f"/sessions/{crowded}{path}", data={"verdict": "confirmed", "text": "x"})
        assert response.status_code in (302, 400)
    assert kiosk.reader.review(crowded).history == ()


def test_a_running_session_shows_its_review_page_but_takes_no_verdict(client, kiosk):
    client.post("/sessions/new", data=start_form(client))
    kiosk.frames(2, 1)
    kiosk.frames(4, 0)
    running = kiosk.sessions.active.id
    page = client.get(f"/sessions/{running}/review")
    assert page.status_code == 200 and "still running" in page.text and "verdict-form" not in page.text
    event_id = kiosk.reader.events(running)[0].id

    response = client.post(f"/sessions/{running}/review/flags/{event_id}",
                           data={"csrf_token": token(client), "verdict": "confirmed"})

    assert response.status_code == 400 and "Not saved: the session is still running" in response.text
    assert client.get("/sessions/nope/review").status_code == 404


def test_a_long_list_comes_in_pages_that_keep_the_filter(client, kiosk):
    def add(store, i):
        session = store.start_session(CandidateInfo(f"Candidate {i}", f"c-{i}", "exam-1"), at=1_700_000_000.0 + i)
        store.finish_session(session.id, at=1_700_000_000.0 + i + 60, frames=600)

    for i in range(SESSIONS_PER_PAGE + 5):
        kiosk.writer.submit(lambda store, i=i: add(store, i)).result()

    first = client.get("/sessions?exam=exam&sort=date&order=desc").text
    assert len(re.findall(r'<tr id="row-', first)) == SESSIONS_PER_PAGE and "page 1 of 2" in first
    assert 'href="/sessions?sort=date&amp;order=desc&amp;exam=exam&amp;page=2"' in first
    second = client.get("/sessions?sort=date&exam=exam&order=desc&page=2").text
    assert len(re.findall(r'<tr id="row-', second)) == 5 and "Candidate 0 " in second
    assert "51–55 shown" in second
    beyond = client.get("/sessions?sort=date&exam=exam&order=desc&page=9").text
    assert "page 2 of 2" in beyond
