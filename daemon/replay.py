"""`proctord replay`: analyse a recorded video as if it were the camera, as fast as the machine allows.

Frames carry the file's own timeline, so the same video gives the same events on any machine; so does its
sound track, when it has one (a file without sound has no audio analysis), fed to the rules in time order
with the frames. The session lives in a SQLite file in the output directory and is reported like any other.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from daemon.capture.audio import FileAudioSource, has_audio
from daemon.capture.quality import QualityMeter
from daemon.capture.sources import SourceError, VideoFileSource, recorded_at
from daemon.clock import SystemClock
from daemon.config import Config
from daemon.events.conditions import OBJECT_RULES
from daemon.events.rules import Instant
from daemon.inference.analysis import AudioAnalysis
from daemon.inference.analyzer import FrameAnalyzer, face_only_if_missing, required_models
from daemon.inference.voice import VAD_MODEL_FILE, VoiceAnalyzer
from daemon.modelstore import MANIFEST_PATH, verify_models
from daemon.pipeline import FramePipeline
from daemon.recording.identity_reference import ReferenceKeeper
from daemon.report import load_report, view, write_reports
from daemon.session import SessionController
from daemon.store.db import Store
from daemon.store.records import CandidateInfo
from daemon.store.writer import StoreWriter
from daemon.sync.contract import Topics

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReplayResult:
    report: dict
    report_paths: dict[str, Path]  # by format: json, html, csv, pdf
    frames: int
    seconds: float  # wall time the analysis took


class SoundTrack:
    """A file's sound analysed window by window, handed out up to a time of the file's timeline."""

    def __init__(self, source: FileAudioSource, voice: VoiceAnalyzer):
        self._source = source
        self._voice = voice
        self._pending: list[AudioAnalysis] = []
        self._ended = False

    def until(self, mono: float) -> list[AudioAnalysis]:
        """The windows not yet handed out that start at or before `mono`."""
        while not self._ended and (not self._pending or self._pending[-1].mono <= mono):
            chunk = self._source.read()
            if chunk is None:
                self._ended = True
            else:
                self._pending += self._voice.analyze(chunk)
        cut = next((i for i, window in enumerate(self._pending) if window.mono > mono), len(self._pending))
        due, self._pending = self._pending[:cut], self._pending[cut:]
        return due

    def close(self) -> None:
        self._source.close()


def replay(
    video: Path, config: Config, out_dir: Path, progress: bool = False, candidate: CandidateInfo | None = None
) -> ReplayResult:
    """Analyse `video` as the session of `candidate` (default: nobody named), timed from the video's own
    recording time when its container has one, else from now. A sound track is analysed with it."""
    inference, objects_off = face_only_if_missing(config.inference, config.models_dir)
    if objects_off and config.inference.object_model != "off":
        log.warning("object detection off, analysing face-only: %s", objects_off)
    sound = has_audio(video)
    verify_models(MANIFEST_PATH, config.models_dir, required_models(inference, config.identity) + ([VAD_MODEL_FILE] if sound else []))
    clock = SystemClock()
    source = VideoFileSource(video, realtime=False, loop=False, start_wall=recorded_at(video))
    track = SoundTrack(
        FileAudioSource(video, source.start_wall), VoiceAnalyzer(config.models_dir, config.audio.speech_threshold)
    ) if sound else None
    out_dir.mkdir(parents=True, exist_ok=True)
    writer = StoreWriter(Store(out_dir / "replay.db", kiosk=config.kiosk.name))
    # Identity references are kept as their embedding only: a replay records no files.
    sessions = SessionController(
        config.rules, writer, Topics.from_config(config), min_analysed_share=config.session.min_analysed_share,
        not_checked=OBJECT_RULES if objects_off else (), identity=config.identity,
        reference_keeper=ReferenceKeeper(config.identity, None, 0),
    )
    pipeline = FramePipeline(FrameAnalyzer(inference, config.models_dir, identity=config.identity), sessions)
    started = clock.monotonic()
    try:
        first = source.read()
        if first is None:
            raise SourceError(f"{video}: no frame could be decoded")
        candidate = candidate or CandidateInfo()
        sessions.start(replace(candidate, notes=candidate.notes or f"replay of {video.name}"), Instant(first.mono, first.wall))
        # Log lines (an event starting) are printed above the bar, not into it.
        with logging_redirect_tqdm(), tqdm(
            total=source.frame_count or None, unit="frame", disable=not progress, file=sys.stderr
        ) as bar:
            frame, meter = first, QualityMeter()
            while frame is not None:
                if track:
                    sessions.observe_audio(track.until(frame.mono))
                # The tamper figures, measured as capture does live; the session's view is its first frame.
                pipeline.process(replace(frame, quality=meter.measure(frame.image, as_reference=frame is first)))
                bar.update()
                frame = source.read()
        # The session lasts until the end of the last frame, not its start.
        end = pipeline.stats.last_frame_mono + 1 / source.nominal_fps
        if track:
            sessions.observe_audio(track.until(end))
        session = sessions.stop(Instant(end, source.start_wall + end))
        # Read through the writer's own connection: once it closes, the database is one file again (no
        # -wal or -shm beside it).
        report = writer.submit(lambda store: load_report(store.view, session.id, config.rules)).result()
    finally:
        source.close()
        if track:
            track.close()
        writer.close()
    report["source"] = {"video": str(video), "fps": source.nominal_fps, "frames": pipeline.stats.frames, "sound": sound}
    return ReplayResult(report, write_reports(report, out_dir), pipeline.stats.frames, clock.monotonic() - started)


def summary(result: ReplayResult) -> str:
    report = result.report
    session = report["session"]
    lines = [
        f"session    {session['id']}  ({session['state']})",
        f"video      {report['source']['video']}",
        (
            f"frames     {result.frames} in {session['duration_seconds']:.1f} s of video, analysed in "
            f"{result.seconds:.1f} s ({result.frames / max(result.seconds, 1e-9):.0f} fps)"
        ),
        f"candidate  {session['candidate_name'] or '-'} ({session['candidate_id'] or '-'}), exam {session['exam_id'] or '-'}"
        + ("  (none given: --candidate, --candidate-id, --exam)" if not session["candidate_id"] else ""),
        f"recorded   {view.local_time(session['started_at'])}",
        "integrity  " + (f"{report['integrity']['score']:.1f} / 100" if report["integrity"]["score"] is not None
                         else f"not assessable: {report['assessment']['reason']}"),
        f"events     {len(report['events'])}",
    ]
    for event in report["events"]:
        offset = event["start"] - session["started_at"]
        lines.append(f"  {view.clock_offset(offset):>7}  {view.label(event['type']):<16} {event['severity']:<6}  "
                     f"{event['description']}")
    if session["not_checked"]:
        lines.append("not checked " + ", ".join(view.label(t) for t in session["not_checked"]) + " (no object model)")
    focus = report["focus"]
    lines.append("focus      " + ", ".join(
        f"{name.replace('_', ' ')} {'-' if focus[name] is None else f'{100 * focus[name]:.0f} %'}"
        for name in ("face_present", "attentive", "looking_away", "eyes_closed", "speech")
    ) + ("" if focus["sound_level_dbfs"] is None else f", sound {focus['sound_level_dbfs']:.0f} dBFS"))
    lines += [f"report     {path}" for path in result.report_paths.values()]
    return "\n".join(lines)
