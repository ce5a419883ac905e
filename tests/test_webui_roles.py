"""Named users and roles on the web page (webui/auth.py), through Flask's test client on the real store,
and the `proctord user` commands as a real process: every route declares its roles; a reviewer may not
run the kiosk, a technician may not review or export; removing a user or changing their password ends
their logins; the throttle and CSRF tokens are per user; the shared password of older kiosks works
until the first named user."""

# ruff: noqa: F811 (the fixtures of test_webui, imported, are redefined as arguments)
from __future__ import annotations

import sqlite3

import pytest
from conftest import run_proctord
from test_webui import (  # noqa: F401 (fixtures)
    PASSWORD,
    REVIEWER,
    TECHNICIAN,
    add_user,
    basic,
    client,
    clock,
    csrf_token,
    kiosk,
    logged_in,
    logged_in_as,
    login,
    make_client,
    named_users,
    reviewer,
    start_form,
    technician,
)

from daemon.accounts import PASSWORD_METHOD, Role
from daemon.store.records import CandidateInfo
from webui.auth import PUBLIC, declared_roles, requires
from webui.throttle import FREE_FAILURES

REVIEW_ROUTES = ["/sessions/{id}/report.html", "/sessions/{id}/report.pdf", "/sessions/{id}/report.csv",
                 "/api/sessions/{id}/report.json", "/sessions/{id}/media/clip-x.mp4", "/sessions/{id}/review"]


def undeclared_routes(app) -> list[str]:
    """The routes that say nothing about who may use them."""
    return sorted(rule.rule for rule in app.url_map.iter_rules() if declared_roles(app, rule.endpoint) is None)


def test_every_route_declares_who_may_use_it(kiosk):
    app = make_client(kiosk).application
    assert undeclared_routes(app) == []
    public = sorted(rule.rule for rule in app.url_map.iter_rules() if declared_roles(app, rule.endpoint) == PUBLIC)
    assert public == ["/healthz", "/login", "/static/<path:filename>"]


def test_a_route_without_a_role_fails_the_walk_and_is_refused_to_everyone(kiosk, named_users):
    app = make_client(kiosk).application
    app.add_url_rule("/forgotten", "forgotten", lambda: "secret")
    app.add_url_rule("/declared", "declared", requires(Role.TECHNICIAN)(lambda: "fine"))
    assert undeclared_routes(app) == ["/forgotten"]
    client = app.test_client()
    login(client, user=TECHNICIAN[0], password=TECHNICIAN[1])
    refused = client.get("/forgotten")
    assert refused.status_code == 403 and "declares no role" in refused.text and "secret" not in refused.text
    assert client.get("/declared").text == "fine"


def test_a_reviewer_may_not_stop_a_session(kiosk, technician, reviewer):
    technician.post("/sessions/new", data=start_form(technician))
    running = kiosk.sessions.active
    page = reviewer.get(f"/sessions/{running.id}").text
    assert "Stop the session" not in page and "Stop the session" in technician.get(f"/sessions/{running.id}").text
    refused = reviewer.post("/sessions/stop", data={"csrf_token": csrf_token(page)})
    assert refused.status_code == 403
    assert "needs the technician role; you are logged in as rita (reviewer)" in refused.text
    assert kiosk.sessions.active == running
    assert reviewer.get("/sessions/new").status_code == 403 and reviewer.get("/live").status_code == 403
    assert "Start a session" not in reviewer.get("/sessions").text


@pytest.mark.parametrize("path", REVIEW_ROUTES)
def test_a_technician_may_not_review_or_export(kiosk, technician, reviewer, path):
    session = kiosk.sessions.start(CandidateInfo("Ada", "c-1"), kiosk.now())
    path = path.format(id=session.id)
    refused = technician.get(path)
    assert refused.status_code == 403
    reason = "needs the reviewer role; you are logged in as tom (technician)"
    assert reason in (refused.json["error"] if refused.is_json else refused.text)
    assert reviewer.get(path).status_code in (200, 404)  # 404: the clip is not on disk
    page = technician.get(f"/sessions/{session.id}").text
    assert "report.pdf" not in page and "report.pdf" in reviewer.get(f"/sessions/{session.id}").text


def test_a_technicians_review_action_is_refused_and_records_nothing(kiosk, technician):
    session = kiosk.sessions.start(CandidateInfo("Ada", "c-1"), kiosk.now())
    kiosk.sessions.stop()
    token = csrf_token(technician.get(f"/sessions/{session.id}").text)
    refused = technician.post(f"/sessions/{session.id}/review/notes", data={"csrf_token": token, "text": "fine"})
    assert refused.status_code == 403 and "needs the reviewer role" in refused.text
    assert kiosk.reader.review(session.id).notes == ()


def test_the_nav_shows_each_role_only_its_pages(technician, reviewer):
    assert 'href="/live"' in technician.get("/sessions").text and 'href="/live"' not in reviewer.get("/sessions").text
    assert "rita · reviewer" in reviewer.get("/").text


def test_basic_credentials_carry_the_users_role(kiosk, named_users):
    client = make_client(kiosk)
    assert client.get("/metrics", headers=basic(TECHNICIAN[1], user="tom")).status_code == 200
    refused = client.get("/metrics", headers=basic(REVIEWER[1], user="rita"))
    assert refused.status_code == 403 and "technician role" in refused.json["error"]
    assert client.get("/api/sessions", headers=basic(REVIEWER[1], user="rita")).status_code == 200
    assert client.get("/api/status", headers=basic("wrong", user="rita")).status_code == 401


def test_a_removed_user_is_logged_out_at_the_next_request(kiosk, reviewer):
    assert reviewer.get("/sessions").status_code == 200
    assert kiosk.writer.submit(lambda store: store.remove_user("rita")).result()
    ended = reviewer.get("/sessions", follow_redirects=True)
    assert ended.request.path == "/login" and "Your login has ended" in ended.text
    assert reviewer.get("/api/sessions").status_code == 401
    assert login(make_client(kiosk), user="rita", password=REVIEWER[1]).status_code == 401


def test_a_new_password_ends_the_users_logins_and_only_theirs(kiosk, technician, reviewer):
    script = reviewer.application.test_client()
    assert script.get("/api/sessions", headers=basic(REVIEWER[1], user="rita")).status_code == 200
    new_hash = "pbkdf2:sha256:1000$" + "x" * 16 + "$" + "0" * 64
    assert kiosk.writer.submit(lambda store: store.set_password("rita", new_hash)).result()
    assert reviewer.get("/sessions").status_code == 302
    assert script.get("/api/sessions", headers=basic(REVIEWER[1], user="rita")).status_code == 401  # not remembered
    assert technician.get("/sessions").status_code == 200


def test_the_same_name_added_again_does_not_inherit_the_old_logins(kiosk, reviewer):
    kiosk.writer.submit(lambda store: store.remove_user("rita")).result()
    add_user(kiosk, "rita", "technician", REVIEWER[1])  # same password, another salt and role
    assert reviewer.get("/sessions").status_code == 302


def test_the_throttle_slows_the_guessed_user_only(client, clock, named_users):
    browser = client.application.test_client  # a new browser on the same page each time
    for _ in range(FREE_FAILURES):
        assert login(browser(), user="rita", password="guess").status_code == 401
    refused = login(browser(), user="rita", password=REVIEWER[1])  # not even checked while the wait lasts
    assert refused.status_code == 429 and "try again in" in refused.text
    assert login(browser(), user="tom", password=TECHNICIAN[1]).status_code == 302  # same address
    clock.advance(60)
    assert login(browser(), user="rita", password=REVIEWER[1]).status_code == 302


def test_names_that_are_no_user_are_throttled_per_address(client, named_users):
    browser = client.application.test_client
    for n in range(FREE_FAILURES):
        assert login(browser(), user=f"nobody{n}", password="guess", address="192.0.2.7").status_code == 401
    refused = login(browser(), user="nobody9", password="guess", address="192.0.2.7")
    assert refused.status_code == 429 and "Too many failed logins: try again in" in refused.text  # as for a user
    assert login(browser(), user="rita", password=REVIEWER[1], address="192.0.2.7").status_code == 302


def test_a_csrf_token_belongs_to_its_users_login(kiosk, technician, reviewer):
    reviewers_token = csrf_token(reviewer.get("/sessions").text)
    refused = technician.post("/sessions/new", data=start_form(technician) | {"csrf_token": reviewers_token})
    assert refused.status_code == 400 and "CSRF" in refused.text and kiosk.sessions.active is None


def test_the_shared_password_is_the_technician_until_the_first_named_user(kiosk, logged_in):
    page = logged_in.get("/").text  # every role, as before named users: an upgrade changes nothing
    assert "technician · reviewer and technician" in page and "Start a session" in page
    assert logged_in.get("/sessions/any/report.pdf").status_code == 404
    assert "no named users yet" in make_client(kiosk).get("/login").text
    add_user(kiosk, REVIEWER[0], "reviewer", REVIEWER[1])
    assert logged_in.get("/").status_code == 302  # its login ended
    assert login(make_client(kiosk), password=PASSWORD).status_code == 401
    assert "no named users yet" not in make_client(kiosk).get("/login").text


def test_user_commands_keep_salted_scrypt_hashes_and_never_take_the_password_from_argv(tmp_path):
    config = tmp_path / "proctord.toml"
    config.write_text(f'[paths]\ndata_dir = "{tmp_path / "data"}"\n')
    for name, role in (("tom", "technician"), ("rita", "reviewer")):
        added = run_proctord("user", "add", name, "--role", role, "--config", str(config), stdin="same password\n")
        assert added.returncode == 0, added.stderr
    again = run_proctord("user", "add", "tom", "--role", "reviewer", "--config", str(config), stdin="whatever1\n")
    assert again.returncode == 2 and "exists already" in again.stderr
    short = run_proctord("user", "add", "ann", "--role", "reviewer", "--config", str(config), stdin="short\n")
    assert short.returncode == 2 and "at least 8 characters" in short.stderr
    bad_role = run_proctord("user", "add", "ann", "--role", "admin", "--config", str(config), stdin="long enough\n")
    assert bad_role.returncode == 2 and "invalid choice" in bad_role.stderr
    in_argv = run_proctord("user", "add", "ann", "--role", "reviewer", "--password", "long enough", "--config", str(config))
    assert in_argv.returncode == 2 and "unrecognized arguments" in in_argv.stderr

    with sqlite3.connect(tmp_path / "data/proctord.db") as db:
        hashes = dict(db.execute("SELECT name, password_hash FROM users"))
    assert all(h.startswith(PASSWORD_METHOD + "$") for h in hashes.values())
    assert hashes["tom"] != hashes["rita"]  # the same password, each with its own salt
    listed = run_proctord("user", "list", "--config", str(config)).stdout
    assert "rita" in listed and "reviewer" in listed and "tom" in listed and "same password" not in listed

    changed = run_proctord("user", "passwd", "rita", "--config", str(config), stdin="another password\n")
    assert changed.returncode == 0 and "logins have ended" in changed.stdout
    assert run_proctord("user", "remove", "tom", "--config", str(config)).returncode == 0
    missing = run_proctord("user", "remove", "tom", "--config", str(config))
    assert missing.returncode == 2 and "no user 'tom'" in missing.stderr
    with sqlite3.connect(tmp_path / "data/proctord.db") as db:
        assert [row[0] for row in db.execute("SELECT name FROM users")] == ["rita"]
        assert db.execute("SELECT password_hash FROM users").fetchone()[0] != hashes["rita"]


def test_user_commands_say_which_database_they_cannot_open(tmp_path):
    config = tmp_path / "proctord.toml"
    config.write_text(f'[paths]\ndata_dir = "{tmp_path / "data"}"\n')
    (tmp_path / "data/proctord.db").mkdir(parents=True)  # not a file SQLite can open
    listed = run_proctord("user", "list", "--config", str(config))
    assert listed.returncode == 2 and "Traceback" not in listed.stderr
    assert f"cannot open the database {tmp_path / 'data/proctord.db'}" in listed.stderr
