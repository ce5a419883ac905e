"""Sound in the recordings: the segments and the event clips carry an AAC track in sync with the picture,
and [audio] record = false stores none. The sync scenario is bench/bench_audio.py's: a white frame and a
beep at the same capture time, found again in the segment file."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from daemon.capture.audio import BLOCK, SAMPLE_RATE, AudioChunk
from daemon.capture.frame import Frame
from daemon.config import RecordingConfig
from daemon.events.model import Event
from daemon.recording.disk import DiskSpace
from daemon.recording.recorder import Recorder

REPO = Path(__file__).resolve().parents[1]


def _bench(name: str):
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "bench" / f"{name}.py")
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


audio_mix = _bench("audio_mix")
bench_audio = _bench("bench_audio")
ONE_FRAME_S = 1 / bench_audio.FPS


@pytest.mark.parametrize("ppm", [0.0, -100.0, 100.0])
def test_picture_and_sound_stay_within_a_frame_of_each_other(tmp_path, ppm):
    """A 3-minute session (three 60 s segments), the microphone's clock off by `ppm`: the beep and the white
    frame taken together are together in the files, at the start and in the last segment."""
    start, end = bench_audio.av_offsets(tmp_path, minutes=3.0, ppm=ppm)
    assert abs(start) <= ONE_FRAME_S
    assert abs(end) <= ONE_FRAME_S


def record(tmp_path: Path, sound: bool) -> list:
    """6 s of picture and sound, an event from 2.5 to 3.5 s: the files the recorder hands over."""
    config = RecordingConfig(width=160, height=120, fps=15, pre_roll_s=1.0, post_roll_s=1.0, queue_frames=600)
    media = []
    recorder = Recorder(config, tmp_path, lookback_s=0.0, on_media=media.append,
                        disk=DiskSpace(tmp_path, 0, free_bytes=lambda _: 10**12), sound=sound)
    recorder.start()
    recorder.start_session("s")
    voice, _ = audio_mix.speech_track(6.0, [(1.0, audio_mix.SENTENCES[0])])
    image = np.full((120, 160, 3), 90, np.uint8)
    arrivals = sorted([(k / 15, "frame", k) for k in range(90)] +
                      [((b + BLOCK) / SAMPLE_RATE, "sound", b) for b in range(0, len(voice), BLOCK)])
    event = Event("e1", "s", "other_voice", "high", 1e9 + 2.5, None, 0.9)
    for at, kind, index in arrivals:
        if kind == "frame":
            recorder.offer(Frame(image, index, at, 1e9 + at))
        else:
            recorder.offer_audio(AudioChunk(voice[index:index + BLOCK], index / SAMPLE_RATE, 1e9 + index / SAMPLE_RATE))
        if kind == "frame" and index == 45:
            recorder.event_started(event)
        if kind == "frame" and index == 53:
            recorder.event_ended(event.ended(1e9 + 3.5, 0.9, {}))
    recorder.stop_session().result(timeout=60)
    recorder.close()
    return media


def tracks(path: Path) -> dict[str, float]:
    """Each stream's kind and its duration in seconds, read from the file."""
    found: dict[str, float] = {}
    with av.open(str(path)) as container:
        for packet in container.demux():
            if packet.pts is not None:
                kind = packet.stream.type
                found[kind] = max(found.get(kind, 0.0), float(packet.pts * packet.time_base))
    return found


def test_segments_and_clips_carry_the_sound(tmp_path):
    media = record(tmp_path, sound=True)
    segment = next(m for m in media if m.kind == "segment")
    clip = next(m for m in media if m.kind == "clip")
    for item in (segment, clip):
        found = tracks(tmp_path / item.name)
        assert set(found) == {"video", "audio"}, item.name
        # The sound lasts as long as the picture (within an AAC frame and a video frame).
        assert found["audio"] == pytest.approx(found["video"], abs=0.064 + ONE_FRAME_S), item.name
    # The clip runs from the pre-roll before the event to the post-roll after it: its sound is the voice's.
    samples = audio_mix.read_audio(tmp_path / clip.name)
    assert np.abs(samples.astype(np.int32)).max() > 3000


def test_record_false_stores_no_sound(tmp_path):
    media = record(tmp_path, sound=False)
    for item in media:
        if item.kind in ("segment", "clip"):
            assert set(tracks(tmp_path / item.name)) == {"video"}, item.name
