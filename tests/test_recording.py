"""The recorder (daemon.recording) on the real scenario frames and the real encoder: segments that decode to
the end and play in a browser, clips with their pre- and post-roll, snapshots, dropped frames, low disk."""

from __future__ import annotations

import functools
import http.server
import itertools
import threading
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from conftest import SCENARIO_FPS, wait_until
from synthetic import face

from daemon.capture.frame import Frame
from daemon.config import RecordingConfig
from daemon.events.model import Event
from daemon.files import file_sha256
from daemon.inference.analysis import Box, FrameAnalysis
from daemon.recording.disk import DiskSpace
from daemon.recording.mp4 import finalize, probe
from daemon.recording.recorder import Recorder
from daemon.store.records import MediaRecord

T0 = 1_700_000_000.0
SESSION = "s-1"
CONFIG = RecordingConfig(segment_s=4.0, pre_roll_s=2.0, post_roll_s=1.5, keyframe_interval_s=1.0, queue_frames=600)
CHROMIUM = Path("/usr/bin/chromium")


def frame(images: list[np.ndarray], i: int) -> Frame:
    return Frame(images[i], seq=i, mono=i / SCENARIO_FPS, wall=T0 + i / SCENARIO_FPS)


class Run:
    """A recorder on a real folder, its finished files collected as the store would get them."""

    def __init__(self, root: Path, config: RecordingConfig = CONFIG, free: list[int] | None = None):
        self.root = root
        self.offered = 0
        self.media: list[MediaRecord] = []
        self.free = free if free is not None else [10**12]
        self.low_space_calls = 0
        disk = DiskSpace(root, 10**6, free_bytes=lambda _: self.free[0])
        # lookback 2 s: the no_face rule's onset, so the pre-roll reaches back before the event's start.
        self.recorder = Recorder(config, root, lookback_s=2.0, on_media=self.media.append, disk=disk,
                                 on_low_space=self._low)
        self.recorder.start()
        self.recorder.start_session(SESSION)

    def _low(self):
        self.low_space_calls += 1

    def feed(self, images, indexes, wait: bool = True) -> None:
        for i in indexes:
            self.recorder.offer(frame(images, i))
            self.offered += 1
        if wait:
            wait_until(lambda: self._handled() == self.offered, 60, "the recorder to catch up")

    def _handled(self) -> int:
        status = self.recorder.status
        return status.frames_recorded + status.frames_dropped

    def stop(self) -> None:
        self.recorder.stop_session().result(timeout=60)
        self.recorder.close()

    def of_kind(self, kind: str) -> list[MediaRecord]:
        return [m for m in self.media if m.kind == kind]


def decoded(path: Path) -> int:
    """Decode every frame (an error anywhere raises) and count them."""
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_segments_cover_the_session_and_each_decodes_to_the_end(tmp_path, scenario_frames):
    run = Run(tmp_path)
    run.feed(scenario_frames, range(len(scenario_frames)))
    run.stop()

    segments = run.of_kind("segment")
    assert [m.name for m in segments] == [f"{SESSION}/segment-{n:04d}.mp4" for n in range(1, len(segments) + 1)]
    assert len(segments) == 4  # 16 s in 4 s segments
    assert sum(m.frames for m in segments) == len(scenario_frames)
    for previous, following in itertools.pairwise(segments):
        assert following.start == pytest.approx(previous.end + 1 / SCENARIO_FPS)
    for media in segments:
        path = tmp_path / media.name
        assert decoded(path) == media.frames
        assert (file_sha256(path), path.stat().st_size) == (media.sha256, media.bytes)
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            # What every browser plays: H.264 Main, 4:2:0, fragmented MP4.
            assert (stream.codec_context.name, stream.codec_context.profile, stream.format.name) == (
                "h264", "Main", "yuv420p"
            )
            assert (stream.width, stream.height) == (542, 480)  # 960x848 scaled to fit 640x480
    assert not list(tmp_path.rglob("*.part"))


def test_an_event_gets_a_clip_with_pre_and_post_roll_and_a_snapshot_of_its_confirmation_frame(
    tmp_path, scenario_frames
):
    # The no_face stretch of the scenario: the condition holds from 3.0 s, confirmed at 5.0 s, gone at 7.0 s.
    started = Event("ev-1", SESSION, "no_face", "high", T0 + 3.0, None, 1.0, {"faces": 0})
    run = Run(tmp_path)
    run.feed(scenario_frames, range(51))  # up to the confirmation frame, 5.0 s
    run.recorder.event_started(started)
    run.feed(scenario_frames, range(51, 81))  # the rule ends it release_s (1 s) after the condition went
    run.recorder.event_ended(started.ended(T0 + 7.0, 1.0, {"faces": 0}))
    run.feed(scenario_frames, range(81, len(scenario_frames)))
    run.stop()

    [clip] = run.of_kind("clip")
    assert (clip.name, clip.event_id) == (f"{SESSION}/clip-ev-1.mp4", "ev-1")
    # From the keyframe at or before start - pre_roll (1.0 s) to the first frame at end + post_roll (8.5 s).
    assert clip.start == T0 + 1.0
    assert clip.end == pytest.approx(T0 + 8.5)
    assert decoded(tmp_path / clip.name) == clip.frames == 76

    [snapshot] = run.of_kind("snapshot")
    assert (snapshot.event_id, snapshot.start, snapshot.frames) == ("ev-1", T0 + 5.0, 1)
    picture = cv2.imread(str(tmp_path / snapshot.name))
    confirmed = scenario_frames[50]
    height, width = confirmed.shape[:2]
    assert picture.shape[1] == width and picture.shape[0] > height  # the caption strip below the frame
    seen = picture[:height]
    difference = np.abs(seen.astype(int) - confirmed.astype(int)).mean()
    assert difference < np.abs(seen.astype(int) - scenario_frames[20].astype(int)).mean() / 4


def test_a_snapshot_shows_what_the_analysis_saw_and_says_the_event_in_words(tmp_path, scenario_frames):
    run = Run(tmp_path)
    run.feed(scenario_frames, range(51))
    box = Box(300.0, 200.0, 240.0, 260.0)
    run.recorder.analysed(FrameAnalysis(seq=50, mono=50 / SCENARIO_FPS, wall=T0 + 50 / SCENARIO_FPS, width=960,
                                        height=848, faces=(face(box=box), face(box=Box(40.0, 40.0, 80.0, 90.0)))))
    run.recorder.event_started(Event("ev-2", SESSION, "multiple_faces", "high", T0 + 4.0, None, 0.9,
                                     {"faces": 2, "scores": [0.9, 0.9], "threshold": "faces > 1"}))
    run.stop()

    [snapshot] = run.of_kind("snapshot")
    picture = cv2.imread(str(tmp_path / snapshot.name)).astype(int)
    raw = scenario_frames[50].astype(int)
    left_edge = (slice(200, 460), slice(299, 302))  # the face box, drawn in
    assert np.abs(picture[left_edge] - raw[left_edge]).mean() > 40
    caption = picture[raw.shape[0]:]
    assert caption.shape[0] >= 20 and (caption > 200).any()  # white words on the dark strip
    assert caption.mean() < 80


def test_a_full_queue_drops_frames_and_counts_them_instead_of_blocking(tmp_path, scenario_frames):
    run = Run(tmp_path, CONFIG.model_copy(update={"queue_frames": 2}))
    offered = len(scenario_frames)
    run.feed(scenario_frames, range(offered), wait=False)  # as fast as Python can: the encoder falls behind
    run.stop()

    status = run.recorder.status
    assert status.frames_dropped > 0
    assert status.frames_recorded + status.frames_dropped == offered
    assert sum(m.frames for m in run.of_kind("segment")) == status.frames_recorded


def test_below_the_floor_recording_pauses_keeps_what_it_has_and_resumes(tmp_path, scenario_frames):
    free = [10**12]
    run = Run(tmp_path, free=free)
    run.feed(scenario_frames, range(30))
    free[0] = 10**5  # below the 1 MB floor
    run.feed(scenario_frames, range(30, 90))
    status = run.recorder.status
    assert (status.state, status.reason) == ("degraded", "0 MB free, below the 1 MB floor")
    assert run.low_space_calls >= 1
    paused = list(run.media)
    # The space check at 5 s found it low: the open segment was closed with what it had.
    assert [(m.kind, m.end) for m in paused] == [("segment", T0 + 3.9), ("segment", T0 + 4.9)]
    assert all(decoded(tmp_path / m.name) == m.frames for m in paused)

    free[0] = 10**12
    run.feed(scenario_frames, range(90, len(scenario_frames)))
    assert run.recorder.status.state == "recording"
    run.stop()
    resumed = run.of_kind("segment")[2:]
    # Recording again from the next check, at 10 s.
    assert resumed[0].start == T0 + 10.0
    assert all(decoded(tmp_path / m.name) == m.frames for m in resumed)


@pytest.mark.parametrize("cut", [0.1, 0.5, 0.97, -9])
def test_finalize_keeps_the_complete_fragments_of_a_cut_file(tmp_path, scenario_frames, cut):
    run = Run(tmp_path)
    run.feed(scenario_frames, range(40))
    run.stop()
    [segment] = run.of_kind("segment")
    data = (tmp_path / segment.name).read_bytes()
    end = int(len(data) * cut) if isinstance(cut, float) else len(data) + cut
    partial = tmp_path / "cut.mp4.part"
    partial.write_bytes(data[:end])

    kept = tmp_path / "cut.mp4"
    assert finalize(partial, kept)

    found = probe(kept)
    assert found.start == segment.start
    assert decoded(kept) == found.frames <= segment.frames
    assert found.frames % 10 == 0  # whole fragments: one per keyframe, every second (10 frames)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (./run test does)")
def test_a_finished_segment_plays_to_its_end_in_a_browser(tmp_path, scenario_frames):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    run = Run(tmp_path)
    run.feed(scenario_frames, range(40))
    run.stop()
    [segment] = run.of_kind("segment")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{server.server_port}/")
            played = page.evaluate(
                """async (src) => {
                  const video = document.createElement('video');
                  video.muted = true;
                  video.src = src;
                  document.body.appendChild(video);
                  const failed = () => new Error('media error ' + (video.error && video.error.code));
                  await new Promise((ok, fail) => { video.onloadedmetadata = ok; video.onerror = () => fail(failed()); });
                  video.playbackRate = 8;
                  await video.play();
                  await new Promise((ok, fail) => { video.onended = ok; video.onerror = () => fail(failed()); });
                  return {width: video.videoWidth, frames: video.getVideoPlaybackQuality().totalVideoFrames,
                          at: video.currentTime, duration: video.duration};
                }""",
                f"/{segment.name}",
            )
            browser.close()
    finally:
        server.shutdown()
    assert played["width"] == 542
    assert played["at"] == played["duration"] == pytest.approx(segment.end - segment.start + 1 / SCENARIO_FPS, abs=0.15)
    assert played["frames"] == segment.frames
