"""The session lifecycle through the real store: a start being committed never holds up the frame path,
the parts that listen are told of each start and stop, and a stopping daemon interrupts the session and
refuses new ones."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from synthetic import at, face, scene

from daemon.config import Config
from daemon.session import SessionController, SessionError, SessionPart
from daemon.store.db import Store, StoreReader
from daemon.store.records import CandidateInfo, SessionRecord
from daemon.store.writer import StoreWriter
from daemon.sync.contract import Topics

CANDIDATE = CandidateInfo("Ada Lovelace", "c-42", "math-101")


class Listener:
    def __init__(self):
        self.heard: list[tuple[str, str]] = []

    def session_started(self, session: SessionRecord) -> None:
        self.heard.append(("started", session.state))

    def session_stopped(self, session: SessionRecord) -> None:
        self.heard.append(("stopped", session.state))


class SlowDisk(Store):
    """A real store on a disk that takes its time to sync a session start, until the test lets it go."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.syncing, self.synced = threading.Event(), threading.Event()

    def start_session(self, *args, **kwargs):
        self.syncing.set()
        self.synced.wait()
        return super().start_session(*args, **kwargs)


@pytest.fixture
def store(tmp_path):
    config = Config()
    disk = SlowDisk(tmp_path / "proctord.db", kiosk="kiosk-7")
    disk.synced.set()
    writer = StoreWriter(disk)
    reader = StoreReader(tmp_path / "proctord.db")
    yield SessionController(config.rules, writer, Topics.from_config(config)), disk, reader
    writer.close()


def test_frames_are_analysed_while_a_start_waits_for_the_disk(store):
    sessions, disk, _ = store
    disk.synced.clear()
    with ThreadPoolExecutor(2) as threads:
        starting = threads.submit(sessions.start, CANDIDATE, at(0))  # the web page's start
        disk.syncing.wait()
        # The frame path goes on while the start is being synced (it would wait for ever if it could not).
        threads.submit(sessions.observe, scene(1, faces=(face(),))).result(timeout=10)
        with pytest.raises(SessionError, match="a session is being started"):
            sessions.start(CANDIDATE, at(0))
        assert not starting.done()
        disk.synced.set()
        session = starting.result()
    assert sessions.active == session


def test_listeners_hear_each_start_and_stop_and_closing_interrupts_the_session(store):
    sessions, _, reader = store
    listener = Listener()
    sessions.listen(listener)
    sessions.start(CANDIDATE, at(0))
    sessions.stop(at(10))
    session = sessions.start(CANDIDATE, at(20))
    assert SessionPart(sessions).status().figure("running") is True

    SessionPart(sessions).stop()  # the daemon is stopping

    assert listener.heard == [("started", "running"), ("stopped", "completed"), ("started", "running"),
                              ("stopped", "interrupted")]
    assert reader.session(session.id).state == "interrupted"
    with pytest.raises(SessionError, match="the daemon is stopping"):
        sessions.start(CANDIDATE, at(30))
    assert SessionPart(sessions).status().state == "off"
