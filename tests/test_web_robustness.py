"""The web page of a real `proctord run` under attack: parallel password guesses, and hundreds of
connections held open (issue 13, item 5)."""

from __future__ import annotations

import pytest
from conftest import daemon_config, free_port, kill_process, start_proctord, wait_until
from web_probes import basic_get, guesses_checked_per_window, healthz_answers, healthz_while_held
from werkzeug.security import generate_password_hash

PASSWORD = "technician-password"  # never guessed here: the throttle is what is tested


@pytest.fixture(scope="module")
def web_port(tmp_path_factory, scenario_video, models_dir):
    tmp_path = tmp_path_factory.mktemp("web-daemon")
    port = free_port()
    config = tmp_path / "proctord.toml"
    config.write_text(daemon_config(
        tmp_path, models_dir, scenario_video, camera={"loop": True},
        # The installed default (scrypt): a check slow enough for parallel guesses to overlap, as on a kiosk.
        web={"port": port, "password_hash": generate_password_hash(PASSWORD)},
    ))
    process = start_proctord(config, tmp_path / "daemon.log")
    try:
        wait_until(lambda: healthz_answers(port), 90, "the web page of the daemon")
        yield port
    finally:
        kill_process(process)


def test_item5_parallel_wrong_guesses_get_one_check_per_window(web_port):
    assert guesses_checked_per_window(web_port, parallel=30) == 1


def test_item5_healthz_answers_while_500_idle_connections_are_held(web_port):
    status, _, _ = healthz_while_held(web_port, held=500)
    assert status == 200
    assert basic_get(web_port, "/login", "") == 200  # and the page still serves after
