"""The sd_notify protocol against a real AF_UNIX datagram socket, as systemd gives it in $NOTIFY_SOCKET,
and the health monitor's READY / STATUS / WATCHDOG / STOPPING decisions, including a stalled pipeline."""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from dataclasses import replace
from types import SimpleNamespace

import pytest
from conftest import daemon_config, wait_until

from daemon.clock import SystemClock
from daemon.errors import UserError
from daemon.events.model import Event
from daemon.gpio import Light, Panel
from daemon.health import HealthMonitor, Vitals
from daemon.notify import SystemdNotifier


class NotifySocket:
    """What systemd listens on: a datagram socket bound to a path (or an abstract name)."""

    def __init__(self, address: str | bytes):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.setblocking(False)

    def received(self) -> list[str]:
        messages = []
        while True:
            try:
                messages.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return messages

    def close(self):
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path):
    path = tmp_path / "notify"
    server = NotifySocket(str(path))
    yield str(path), server
    server.close()


def test_messages_arrive_as_systemd_expects_them(notify_socket):
    path, server = notify_socket
    notifier = SystemdNotifier.from_environment({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "30000000"})
    assert notifier.enabled and notifier.watchdog_period_s == 30.0

    notifier.ready("idle: no session; camera online")
    notifier.watchdog()
    notifier.status("alert: no_face\nsecond line")
    notifier.stopping("stopping")

    assert server.received() == [
        "READY=1\nSTATUS=idle: no session; camera online",
        "WATCHDOG=1",
        "STATUS=alert: no_face second line",  # a newline would start a bogus assignment
        "STOPPING=1\nSTATUS=stopping",
    ]


def test_abstract_socket_names_start_with_an_at_sign():
    name = f"proctord-test-{uuid.uuid4().hex}"
    server = NotifySocket(b"\0" + name.encode())
    try:
        SystemdNotifier.from_environment({"NOTIFY_SOCKET": f"@{name}"}).ready("up")
        assert server.received() == ["READY=1\nSTATUS=up"]
    finally:
        server.close()


def test_outside_systemd_every_call_is_a_no_op():
    notifier = SystemdNotifier.from_environment({})
    assert not notifier.enabled and notifier.watchdog_period_s is None
    notifier.ready("up")
    notifier.watchdog()
    notifier.stopping("bye")


def test_the_watchdog_is_only_ours_when_watchdog_pid_is_ours_or_unset():
    env = {"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "5000000"}
    assert SystemdNotifier.from_environment(env | {"WATCHDOG_PID": str(os.getpid())}).watchdog_period_s == 5.0
    assert SystemdNotifier.from_environment(env | {"WATCHDOG_PID": "1"}).watchdog_period_s is None
    with pytest.raises(UserError, match="WATCHDOG_USEC: 'soon'"):
        SystemdNotifier.from_environment(env | {"WATCHDOG_USEC": "soon"})
    with pytest.raises(UserError, match="NOTIFY_SOCKET: 'relative/path'"):
        SystemdNotifier.from_environment({"NOTIFY_SOCKET": "relative/path"})


def test_a_vanished_socket_is_logged_once_and_never_raises(tmp_path, caplog):
    path = tmp_path / "notify"
    server = NotifySocket(str(path))
    notifier = SystemdNotifier(str(path))
    server.close()
    path.unlink()
    with caplog.at_level(logging.WARNING, logger="daemon.notify"):
        notifier.watchdog()
        notifier.watchdog()
    assert len(caplog.records) == 1 and "cannot notify systemd" in caplog.text

    server = NotifySocket(str(path))  # systemd is back (daemon-reexec)
    notifier.status("back")
    assert server.received() == ["STATUS=back"]
    server.close()


def test_the_stall_threshold_must_outlast_the_camera_timeout():
    from daemon.config import ConfigError, parse_config

    with pytest.raises(ConfigError) as error:
        parse_config("[camera]\ntimeout_s = 20.0\n[service]\nstall_after_s = 15.0\n")
    assert error.value.problems == [(
        "service.stall_after_s: 15.0 is not allowed: it must be above camera.timeout_s (20.0), "
        "or a lost camera would count as a stall"
    )]

class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return 1_700_000_000 + self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class JumpingClock(SystemClock):
    """The system's clock, which a test can move forward at once instead of sleeping."""

    def __init__(self):
        self.offset = 0.0

    def monotonic(self) -> float:
        return super().monotonic() + self.offset

    def time(self) -> float:
        return super().time() + self.offset

    def jump(self, seconds: float) -> None:
        self.offset += seconds


class Script:
    """The daemon as the monitor sees it; the test moves it along."""

    def __init__(self):
        self.vitals = Vitals(phase="starting", camera_online=True, frames_analysed=0, session_id=None)

    def __call__(self) -> Vitals:
        return self.vitals

    def set(self, **changes):
        self.vitals = replace(self.vitals, **changes)


def event(event_id: str, event_type: str = "no_face", severity: str = "high") -> Event:
    return Event(event_id, "s1", event_type, severity, start=0.0, end=None, peak_confidence=1.0)


@pytest.fixture
def monitored(notify_socket):
    path, server = notify_socket
    notifier = SystemdNotifier.from_environment({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"})
    clock, script, panel = FakeClock(), Script(), Panel()
    monitor = HealthMonitor(script, notifier, panel, stall_after_s=3.0, clock=clock)

    def advance(seconds: float, frames_per_s: float = 10, loop: bool = True) -> list[str]:
        """Let `seconds` pass in checks of 0.25 s, the pipeline analysing frames_per_s meanwhile."""
        for _ in range(round(seconds / 0.25)):
            clock.sleep(0.25)
            if loop:
                monitor.loop_passed()
            script.set(frames_analysed=script.vitals.frames_analysed + round(frames_per_s * 0.25))
            monitor.check()
        return server.received()

    return SimpleNamespace(monitor=monitor, script=script, panel=panel, advance=advance, server=server)


def test_ready_only_once_the_first_frame_is_analysed_then_watchdog_while_frames_flow(monitored):
    m = monitored
    assert m.advance(1, frames_per_s=0) == []  # models loading
    m.script.set(phase="running")
    assert m.advance(1, frames_per_s=0) == []  # camera opened, no frame analysed yet
    sent = m.advance(0.25)
    assert sent == ["READY=1\nSTATUS=idle: no session; camera online", "WATCHDOG=1"]
    assert m.panel.shown is Light.IDLE
    # 2 s watchdog: a ping every second while frames flow
    assert m.advance(3) == ["WATCHDOG=1"] * 3


def test_a_stalled_pipeline_gets_no_watchdog_and_says_why(monitored):
    m = monitored
    m.script.set(phase="running", session_id="s1")
    m.advance(1)
    # Frames stop while the camera is said to be online: a hung capture or analysis.
    sent = m.advance(6, frames_per_s=0)
    stalled = "STATUS=fault: stalled, no frame analysed while the camera is online; session s1"
    assert stalled in sent
    assert "WATCHDOG=1" not in sent[sent.index(stalled):]
    assert m.panel.shown is Light.FAULT
    # Frames flow again: proctoring and pings resume.
    assert m.advance(1) == ["STATUS=proctoring: session s1; camera online", "WATCHDOG=1"]
    assert m.panel.shown is Light.PROCTORING


def test_a_stuck_analysis_loop_gets_no_watchdog_even_with_the_camera_lost(monitored):
    m = monitored
    m.script.set(phase="running")
    m.advance(1)
    m.script.set(camera_online=False)
    # A lost camera is reported, not a stall: the daemon is alive, so the pings go on.
    assert m.advance(5, frames_per_s=0) == ["STATUS=fault: camera lost; no session"] + ["WATCHDOG=1"] * 5
    sent = m.advance(6, frames_per_s=0, loop=False)
    stuck = "STATUS=fault: stalled, the analysis loop is stuck; no session"
    assert stuck in sent
    assert "WATCHDOG=1" not in sent[sent.index(stuck):]


def test_a_camera_missing_at_boot_still_gets_ready_and_says_so(monitored):
    m = monitored
    m.script.set(phase="running", camera_online=False)
    assert m.advance(0.25, frames_per_s=0) == ["READY=1\nSTATUS=fault: camera lost; no session", "WATCHDOG=1"]
    assert m.panel.shown is Light.FAULT


def test_alerts_turn_the_light_to_alert_until_acknowledged_and_stop_says_stopping(monitored):
    m = monitored
    m.script.set(phase="running", session_id="s1")
    m.advance(1)
    m.script.set(open_events=(event("e1"),))
    assert "STATUS=alert: no_face; session s1; camera online" in m.advance(0.25)
    assert m.panel.shown is Light.ALERT
    m.panel.acknowledge()  # the button's short press
    assert "STATUS=proctoring: session s1; camera online" in m.advance(0.25)
    m.script.set(open_events=(event("e1"), event("e2", "multiple_faces", "medium")))
    assert "STATUS=alert: multiple_faces; session s1; camera online" in m.advance(0.25)

    m.monitor.stop()
    assert m.server.received() == ["STOPPING=1\nSTATUS=stopping: closing the session"]
    m.panel.stop()  # the daemon stops the panel right after the monitor
    assert m.panel.shown is Light.OFF


def test_a_real_daemon_stops_feeding_the_watchdog_while_its_analysis_is_stalled(
    tmp_path, scenario_video, models_dir, monkeypatch, notify_socket
):
    from daemon.config import parse_config
    from daemon.service import Daemon

    path, server = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")  # WatchdogSec=1: a ping every 0.5 s
    config = parse_config(daemon_config(
        tmp_path, models_dir, scenario_video,
        camera={"loop": True, "timeout_s": 0.5}, service={"stall_after_s": 1.0},
    ))
    clock = JumpingClock()
    daemon = Daemon(config, clock)
    flowing, stalled = threading.Event(), threading.Event()
    flowing.set()
    analyze = daemon.pipeline.analyzer.analyze

    def analyze_unless_stalled(frame):
        if not flowing.is_set():  # the analysis hangs, as a wedged model or driver call would
            stalled.set()
            flowing.wait()
        return analyze(frame)

    monkeypatch.setattr(daemon.pipeline.analyzer, "analyze", analyze_unless_stalled)
    received: list[str] = []

    def receive() -> list[str]:
        received.extend(server.received())
        return received

    runner = threading.Thread(target=daemon.run)
    runner.start()
    try:
        wait_until(lambda: receive() and received[0].startswith("READY=1\nSTATUS=idle"), 60, "READY")
        wait_until(lambda: receive().count("WATCHDOG=1") >= 2, 10, "watchdog pings")

        flowing.clear()
        wait_until(stalled.is_set, 10, "the analysis to hang")
        stall = wait_until(
            lambda: next((m for m in receive() if m.startswith("STATUS=fault: stalled")), None), 10, "the stall"
        )
        clock.jump(1.5)  # three watchdog periods later, still stalled: a check pings only if it sees no stall
        daemon.health.check()
        assert "WATCHDOG=1" not in receive()[received.index(stall):]

        flowing.set()
        wait_until(lambda: receive()[-1] == "WATCHDOG=1", 10, "pings once frames flow again")
        assert "STATUS=idle: no session; camera online" in received[received.index(stall):]
    finally:
        flowing.set()
        daemon.request_stop()
        runner.join(timeout=30)
    assert receive()[-1] == "STOPPING=1\nSTATUS=stopping: closing the session"
