"""`proctord replay`: analyse a recorded video as if it were the camera, as fast as the machine allows.

Frames carry the file's own timeline, so the same video gives the same events on any machine. The
session lives in a SQLite file in the output directory and is reported like any other.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path

from tqdm import tqdm

from daemon.capture.quality import QualityMeter
from daemon.capture.sources import SourceError, VideoFileSource
from daemon.clock import SystemClock
from daemon.config import Config
from daemon.events.rules import Instant
from daemon.inference.analyzer import FrameAnalyzer, required_models
from daemon.modelstore import MANIFEST_PATH, verify_models
from daemon.pipeline import FramePipeline
from daemon.recording.identity_reference import ReferenceKeeper
from daemon.report import load_report, write_reports
from daemon.session import SessionController
from daemon.store.db import Store, StoreReader
from daemon.store.records import CandidateInfo
from daemon.store.writer import StoreWriter
from daemon.sync.contract import Topics


@dataclass(frozen=True, slots=True)
class ReplayResult:
    report: dict
    report_paths: dict[str, Path]  # by format: json, html, csv, pdf
    frames: int
    seconds: float  # wall time the analysis took


def replay(video: Path, config: Config, out_dir: Path, progress: bool = False) -> ReplayResult:
    verify_models(MANIFEST_PATH, config.models_dir, required_models(config.inference, config.identity))
    clock = SystemClock()
    source = VideoFileSource(video, realtime=False, loop=False)
    out_dir.mkdir(parents=True, exist_ok=True)
    database = out_dir / "replay.db"
    reader = StoreReader(database)
    writer = StoreWriter(Store(database, kiosk=config.kiosk.name))
    # Identity references are kept as their embedding only: a replay records no files.
    sessions = SessionController(config.rules, writer, Topics.from_config(config), identity=config.identity,
                                 reference_keeper=ReferenceKeeper(config.identity, None, 0))
    pipeline = FramePipeline(FrameAnalyzer(config.inference, config.models_dir, identity=config.identity), sessions)
    started = clock.monotonic()
    try:
        first = source.read()
        if first is None:
            raise SourceError(f"{video}: no frame could be decoded")
        s = config.session
        info = CandidateInfo(s.candidate_name, s.candidate_id, s.exam_id, notes=f"replay of {video.name}")
        sessions.start(info, Instant(first.mono, first.wall))
        bar = tqdm(total=source.frame_count or None, unit="frame", disable=not progress, file=sys.stderr)
        frame, meter = first, QualityMeter()
        while frame is not None:
            # The tamper figures, measured as capture does live; the session's view is its first frame.
            pipeline.process(replace(frame, quality=meter.measure(frame.image, as_reference=frame is first)))
            bar.update()
            frame = source.read()
        bar.close()
        # The session lasts until the end of the last frame, not its start.
        end = pipeline.stats.last_frame_mono + 1 / source.nominal_fps
        session = sessions.stop(Instant(end, source.start_wall + end))
    finally:
        source.close()
        writer.close()
    report = load_report(reader, session.id, config.rules)
    report["source"] = {"video": str(video), "fps": source.nominal_fps, "frames": pipeline.stats.frames}
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
        f"integrity  {report['integrity']['score']:.1f} / 100",
        f"events     {len(report['events'])}",
    ]
    for event in report["events"]:
        offset = event["start"] - session["started_at"]
        lines.append(
            f"  {offset:7.1f} s  {event['type']:<16} {event['duration_seconds'] or 0:6.1f} s  {event['severity']}"
        )
    focus = report["focus"]
    lines.append("focus      " + ", ".join(
        f"{name.replace('_', ' ')} {'-' if focus[name] is None else f'{100 * focus[name]:.0f} %'}"
        for name in ("face_present", "attentive", "looking_away", "eyes_closed")
    ))
    lines += [f"report     {path}" for path in result.report_paths.values()]
    return "\n".join(lines)
