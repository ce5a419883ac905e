"""Session recording and event evidence, on the recorder's own thread.

The pipeline hands each frame over with `offer`, which never blocks: when the recorder falls behind,
frames beyond `queue_frames` are dropped and counted, and the analysis goes on. With `sound`, the
microphone's chunks come the same way (`offer_audio`) and become the files' AAC track, in sync with the
picture (daemon/recording/mp4.py); without it, sound is never stored ([audio] record = false). The session controller
says when a session starts and stops and when an event starts and ends; each finished file (segment,
clip, snapshot) is handed with its sha256 to `on_media`, which commits it to the store.

Files, under <recordings>/<session id>/:
- segment-NNNN.mp4: the session's video, a new file every `segment_s` (at a keyframe);
- clip-<event id>.mp4: from `pre_roll_s` before the event's start (from the pre-roll, to the keyframe at
  or before) to `post_roll_s` after its end, at most `clip_max_s`; a copy of the segment's packets;
- snapshot-<event id>.jpg: the frame on which the rules confirmed the event (the newest frame the
  recorder holds when the event's start reaches it: the condition held on it, and had for onset_s), with
  what the analysis saw on it drawn in (boxes, head and gaze direction) and the evidence in words below.

When free space falls below the floor, or a write fails, recording is degraded: open files are closed
with what they hold, nothing new is written, retention is woken, and the space is checked again every
few seconds; the analysis and the alerts go on regardless.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import av

from daemon.capture.audio import AudioChunk
from daemon.capture.frame import Frame
from daemon.clock import SYSTEM_CLOCK, Clock
from daemon.config import RecordingConfig, RulesConfig, RuleTiming
from daemon.events.model import Event
from daemon.files import file_sha256
from daemon.inference.analysis import FrameAnalysis
from daemon.overlay import evidence_picture
from daemon.recording.disk import DiskSpace
from daemon.recording.mp4 import MAX_INTERLEAVE_S, AacEncoder, EncodedFrame, H264Encoder, Mp4Writer, fit_size
from daemon.recording.preroll import PreRoll
from daemon.recording.snapshot import write_jpeg
from daemon.store.records import MediaRecord

log = logging.getLogger(__name__)

SPACE_CHECK_S = 5.0  # how often free space is checked while recording (capture time)
# After a failed write (the disk really was full), recording resumes only once this much is free too,
# so a disk at its limit does not flap between failing and resuming.
RESUME_FREE_BYTES = 32_000_000
# Sound chunks (about 30 a second) may wait this many times queue_frames before they are dropped too.
SOUND_QUEUE_FACTOR = 4
_WRITE_ERRORS = (OSError, av.FFmpegError)
ANALYSES_KEPT = 64  # a few seconds of analyses: the recorder may lag the pipeline by its queue


def confirmation_delay_s(rules: RulesConfig) -> float:
    """The longest a rule takes from an event's (backdated) start to announcing it: how far the pre-roll
    must reach back beyond pre_roll_s."""
    timings = [rule for rule in (getattr(rules, name) for name in type(rules).model_fields) if isinstance(rule, RuleTiming)]
    return max((rule.onset_s + getattr(rule, "min_duration_s", 0.0) for rule in timings), default=0.0)


@dataclass(frozen=True, slots=True)
class RecordingStatus:
    state: str  # idle (no session) | recording | degraded
    reason: str | None  # why degraded
    session_id: str | None
    frames_recorded: int
    frames_dropped: int  # the encoder fell behind: the recorder's queue was full
    sound_dropped: int  # chunks of sound dropped for the same reason
    files_written: int
    bytes_written: int


@dataclass(slots=True)
class _Clip:
    event_id: str
    writer: Mp4Writer
    until: float  # wall clock: the clip ends with the first frame at or past this (and its sound)
    heard: float = float("-inf")  # wall clock the clip's sound has reached
    seen: float = float("-inf")  # wall clock the picture has reached (written to the clip or not)


class Recorder:
    def __init__(
        self,
        config: RecordingConfig,
        root: Path,
        lookback_s: float,
        on_media,
        disk: DiskSpace,
        on_low_space=lambda: None,
        clock: Clock = SYSTEM_CLOCK,
        sound: bool = False,
    ):
        self._config = config
        self._sound = sound  # record the microphone's sound
        self._root = root
        self._on_media = on_media  # Callable[[MediaRecord], None]: commits a finished file
        self._disk = disk
        self._on_low_space = on_low_space  # wakes retention
        self._clock = clock
        self._queue: queue.Queue = queue.Queue()
        self._accepting = False
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        # Recorder-thread state.
        self._session: str | None = None
        self._encoder: H264Encoder | None = None
        self._aac: AacEncoder | None = None
        self._preroll = PreRoll(config.pre_roll_s + lookback_s)
        self._segment: Mp4Writer | None = None
        self._segments = 0
        self._clips: dict[str, _Clip] = {}
        self._latest: Frame | None = None
        # The newest analyses, by the pipeline's thread (an append, no wake-up of this one): an event's
        # snapshot draws the one of its frame.
        self._analyses: deque[FrameAnalysis] = deque(maxlen=ANALYSES_KEPT)
        self._next_due: float | None = None  # capture time the next recorded frame is due
        self._next_space_check = float("-inf")
        self._degraded: str | None = None
        self._write_failed = False
        # Figures for the status page (plain ints: written by one thread, read by others).
        self._recorded = self._dropped = self._files = self._bytes = self._dropped_sound = 0

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Finish the files of a session still open, then end the thread."""
        self._accepting = False
        if self._thread.is_alive():
            self._queue.put(("close", None))
            self._thread.join(timeout=30)

    # --- called from other threads; none of these waits for the disk --------------------------------

    def offer(self, frame: Frame) -> None:
        if not self._accepting:
            return
        if self._queue.qsize() >= self._config.queue_frames:
            self._dropped += 1
            return
        self._queue.put(("frame", frame))

    def offer_audio(self, chunk: AudioChunk) -> None:
        if not (self._accepting and self._sound):
            return
        if self._queue.qsize() >= self._config.queue_frames * SOUND_QUEUE_FACTOR:
            self._dropped_sound += 1
            return
        self._queue.put(("audio", chunk))

    def analysed(self, analysis: FrameAnalysis) -> None:
        """What the analysis saw on the frame offered last: drawn on that frame if an event's snapshot is
        taken of it. Handed over before the rules see the analysis, so it is there before the event."""
        if self._accepting:
            self._analyses.append(analysis)

    def start_session(self, session_id: str) -> None:
        self._queue.put(("start", session_id))
        self._accepting = True

    def event_started(self, event: Event) -> None:
        self._queue.put(("event_start", event))

    def event_ended(self, event: Event) -> None:
        self._queue.put(("event_end", event))

    def stop_session(self) -> Future:
        """Close the session's files; the future resolves once each was handed to `on_media`."""
        self._accepting = False
        done: Future = Future()
        self._queue.put(("stop", done))
        return done

    @property
    def status(self) -> RecordingStatus:
        state = "idle" if self._session is None else "degraded" if self._degraded else "recording"
        return RecordingStatus(
            state, self._degraded, self._session, self._recorded, self._dropped, self._dropped_sound, self._files,
            self._bytes,
        )

    # --- the recorder thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        handlers = {
            "frame": self._on_frame, "audio": self._on_audio, "start": self._on_start, "event_start": self._on_event_start,
            "event_end": self._on_event_end, "stop": self._on_stop,
        }
        while True:
            kind, argument = self._queue.get()
            if kind == "close":
                self._end_session()
                return
            try:
                handlers[kind](argument)
            except Exception as exc:  # the recorder must outlive any one bad frame or file
                log.exception("recorder: %s failed", kind)
                self._degrade(f"recorder error: {exc}")

    def _on_start(self, session_id: str) -> None:
        self._end_session()
        self._session = session_id
        self._degraded, self._write_failed = None, False
        self._next_space_check = float("-inf")
        log.info("recording session %s to %s", session_id, self._root / session_id)

    def _on_stop(self, done: Future) -> None:
        try:
            self._end_session()
        finally:
            done.set_result(None)

    def _on_frame(self, frame: Frame) -> None:
        if self._session is None:
            return
        self._latest = frame
        if not self._due(frame.mono):
            return
        self._check_space(frame.mono)
        if self._encoder is None:
            size = fit_size(frame.width, frame.height, self._config.width, self._config.height)
            self._encoder = H264Encoder(
                size, self._config.fps, self._config.crf, self._config.preset, self._config.keyframe_interval_s
            )
            if self._sound:  # the sound's timeline starts with the picture's
                self._aac = AacEncoder((frame.mono, frame.wall))
        self._keep(self._encoder.encode(frame.image, frame.mono, frame.wall))
        self._recorded += 1

    def _on_audio(self, chunk: AudioChunk) -> None:
        # Sound before the session's first recorded frame has no timeline to go on.
        if self._session is not None and self._aac is not None:
            self._keep(self._aac.encode(chunk))

    def _keep(self, packets: list[EncodedFrame]) -> None:
        for packet in packets:
            self._preroll.add(packet)
            if self._degraded is None:
                self._write(packet)

    def _due(self, mono: float) -> bool:
        """At most config.fps frames a second, evenly spread; a quarter interval of slack absorbs the
        jitter of a camera running at the same rate."""
        interval = 1.0 / self._config.fps
        if self._next_due is not None and mono < self._next_due - interval / 4:
            return False
        late = self._next_due is None or mono - self._next_due >= interval
        self._next_due = mono + interval if late else self._next_due + interval
        return True

    def _write(self, packet: EncodedFrame) -> None:
        try:
            segment = self._segment
            video_key = packet.keyframe and not packet.audio
            if video_key and (segment is None or packet.wall - segment.start >= self._config.segment_s):
                self._finish_segment()
                self._segments += 1
                self._segment = self._writer(f"segment-{self._segments:04d}.mp4")
            if self._segment is not None:
                self._segment.write(packet)
            for clip in list(self._clips.values()):
                if packet.audio:
                    clip.writer.write(packet)
                    clip.heard = packet.wall
                else:
                    if not self._picture_complete(clip):
                        clip.writer.write(packet)
                    clip.seen = packet.wall
                if self._clip_complete(clip):
                    self._finish_clip(clip.event_id)
        except _WRITE_ERRORS as exc:
            self._write_failed = True
            self._degrade(f"writing failed: {exc}")

    def _on_event_start(self, event: Event) -> None:
        if event.session_id != self._session:
            return
        if self._degraded is not None:
            log.warning("event %s: no clip or snapshot, recording is degraded (%s)", event.id, self._degraded)
            return
        try:
            self._snapshot(event)
            frames = self._preroll.since(event.start - self._config.pre_roll_s)
            if not frames or self._encoder is None:
                log.warning("event %s: no clip, no video recorded yet", event.id)
                return
            writer = self._writer(f"clip-{event.id}.mp4")
            self._clips[event.id] = _Clip(event.id, writer, frames[0].wall + self._config.clip_max_s)
            for frame in frames:
                writer.write(frame)
        except _WRITE_ERRORS as exc:
            self._write_failed = True
            self._degrade(f"writing failed: {exc}")

    def _writer(self, name: str) -> Mp4Writer:
        assert self._encoder is not None and self._session is not None
        sound = self._aac.template if self._aac else None
        return Mp4Writer(self._root / self._session / name, self._encoder.template, sound)

    def _on_event_end(self, event: Event) -> None:
        clip = self._clips.get(event.id)
        if clip is None or event.end is None:
            return
        clip.until = min(clip.until, event.end + self._config.post_roll_s)
        if self._clip_complete(clip):
            self._finish_clip(event.id)

    @staticmethod
    def _picture_complete(clip: _Clip) -> bool:
        return clip.writer.end is not None and clip.writer.end >= clip.until

    def _clip_complete(self, clip: _Clip) -> bool:
        """The picture has reached the clip's end, and so has the sound (which comes a little later); a lost
        microphone is waited for no longer than the muxer waits for it."""
        if not self._picture_complete(clip):
            return False
        return self._aac is None or clip.heard >= clip.until or clip.seen >= clip.until + MAX_INTERLEAVE_S

    def _snapshot(self, event: Event) -> None:
        frame = self._latest
        if frame is None:
            return
        name = f"{self._session}/snapshot-{event.id}.jpg"
        seen = next((analysis for analysis in list(self._analyses) if analysis.seq == frame.seq), None)
        picture = evidence_picture(frame.image, seen, event, frame.wall)
        sha256, size = write_jpeg(picture, self._root / name, self._config.snapshot_quality)
        self._hand_over(name, "snapshot", event.id, frame.wall, frame.wall, 1, sha256, size)

    def _check_space(self, mono: float) -> None:
        if mono < self._next_space_check:
            return
        self._next_space_check = mono + SPACE_CHECK_S
        if self._disk.low():
            if self._degraded is None:
                self._degrade(self._disk.describe())
        elif self._degraded is not None and (not self._write_failed or self._disk.free() >= RESUME_FREE_BYTES):
            log.warning("recording resumes (%.0f MB free)", self._disk.free() / 1e6)
            self._degraded, self._write_failed = None, False

    def _degrade(self, reason: str) -> None:
        """Stop writing, keep what was written, wake retention; proctoring carries on."""
        first = self._degraded is None
        self._degraded = reason
        if first:
            log.error("recording degraded: %s; proctoring continues", reason)
        self._close_files()
        self._on_low_space()

    def _end_session(self) -> None:
        if self._session is None:
            return
        if self._aac is not None:  # the sound's last fraction of a second, before the files close
            self._keep(self._aac.flush())
        self._close_files()
        if self._encoder is not None:
            self._encoder.close()
        if self._aac is not None:
            self._aac.close()
        log.info("recording of session %s ended", self._session)
        self._session, self._encoder, self._aac, self._latest, self._next_due = None, None, None, None, None
        self._segments = 0
        self._preroll.clear()

    def _close_files(self) -> None:
        for event_id in list(self._clips):
            self._finish_clip(event_id)
        self._finish_segment()

    def _finish_segment(self) -> None:
        segment, self._segment = self._segment, None
        if segment is not None:
            self._finish(segment, "segment", None)

    def _finish_clip(self, event_id: str) -> None:
        self._finish(self._clips.pop(event_id).writer, "clip", event_id)

    def _finish(self, writer: Mp4Writer, kind: str, event_id: str | None) -> None:
        try:
            path = writer.close()
            start = writer.start if writer.start is not None else self._clock.time()
            name = path.relative_to(self._root).as_posix()
            self._hand_over(name, kind, event_id, start, writer.end or start, writer.frames)
        except _WRITE_ERRORS as exc:
            # Stays <name>.part, which verify ignores (and recovery takes in if the session is interrupted).
            log.error("%s: could not be finished: %s", writer.partial, exc)

    def _hand_over(self, name: str, kind: str, event_id: str | None, start: float, end: float, frames: int,
                   sha256: str | None = None, size: int | None = None) -> None:
        path = self._root / name
        if sha256 is None or size is None:
            sha256, size = file_sha256(path), path.stat().st_size
        self._on_media(MediaRecord(name, self._session, kind, event_id, sha256, size, start, end, frames))
        self._files += 1
        self._bytes += size
