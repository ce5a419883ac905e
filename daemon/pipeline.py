"""The per-frame path: analyse, feed the session's rules, keep the figures the status page shows.

Kept lean on purpose: the writes it causes go to the store thread, the alerts to the MQTT thread. It is
the daemon's "analysis" part (daemon/parts.py): starting it starts the object detector's thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from daemon.capture.frame import Frame
from daemon.clock import SYSTEM_CLOCK, Clock
from daemon.inference.analysis import FrameAnalysis
from daemon.inference.analyzer import FrameAnalyzer
from daemon.parts import Figure, PartStatus
from daemon.recording.recorder import Recorder
from daemon.session import SessionController

# Smoothing of the fps and per-stage timing figures: about the last 30 frames.
_SMOOTHING = 1 / 30


@dataclass(frozen=True, slots=True)
class PipelineStats:
    frames: int = 0
    fps: float = 0.0
    last_frame_mono: float | None = None
    faces: int = 0
    timings_ms: dict[str, float] = field(default_factory=dict)


# The analysis stages' timings (FrameAnalysis.timings_ms) as the status page names them.
STAGE_LABELS = {
    "face_detect": "Face detection", "face_landmarks": "Face landmarks", "iris": "Iris",
    "face_geometry": "Head pose and gaze", "face_total": "Face analysis, all stages", "objects": "Object detection",
}


class FramePipeline:
    name = "analysis"

    def __init__(
        self,
        analyzer: FrameAnalyzer,
        sessions: SessionController,
        recorder: Recorder | None = None,
        clock: Clock = SYSTEM_CLOCK,
        stale_after_s: float = 2.0,
    ):
        self.analyzer = analyzer
        self._sessions = sessions
        self._recorder = recorder
        self._clock = clock
        self._stale_after_s = stale_after_s  # no frame for this long: the figures describe the past
        self.stats = PipelineStats()

    def start(self) -> None:
        self.analyzer.start()

    def stop(self) -> None:
        self.analyzer.stop()

    def status(self) -> PartStatus:
        stats = self.stats
        last = stats.last_frame_mono
        idle_s = None if last is None else self._clock.monotonic() - last
        stale = idle_s is not None and idle_s > self._stale_after_s
        if idle_s is None:
            state, reason = "degraded", "no frame analysed yet"
        elif stale:
            state, reason = "degraded", f"no frame to analyse for {idle_s:.0f} s: the camera is offline"
        else:
            state, reason = "ok", None
        return PartStatus(self.name, state, reason, (
            Figure("face_model", "Face model", self.analyzer.face_model, kind="info"),
            Figure("frames", "Frames analysed", stats.frames, kind="counter", help="Frames analysed"),
            Figure("fps", "Analysed", None if idle_s is None else round(stats.fps, 2), "fps",
                   help="Frames analysed per second (smoothed)", stale=stale),
            Figure("faces_in_view", "Faces in view", None if idle_s is None else stats.faces,
                   help="Faces in the last analysed frame", stale=stale),
            *(
                Figure(f"{stage}_ms", STAGE_LABELS.get(stage, stage.replace("_", " ")), round(ms, 2), "ms",
                       help=f"Time of the {stage} stage per frame (smoothed)", stale=stale)
                for stage, ms in stats.timings_ms.items()
            ),
        ))

    def process(self, frame: Frame) -> FrameAnalysis:
        if self._recorder:
            # Queued (or dropped) before the analysis, so an event this frame starts finds it recorded.
            self._recorder.offer(frame)
        analysis = self.analyzer.analyze(frame)
        if self._recorder:
            self._recorder.analysed(analysis)  # before the rules: a snapshot this frame causes shows it
        self._sessions.observe(analysis)
        self.stats = self._updated_stats(analysis)
        return analysis

    def _updated_stats(self, analysis: FrameAnalysis) -> PipelineStats:
        previous = self.stats
        fps = previous.fps
        if previous.last_frame_mono is not None and analysis.mono > previous.last_frame_mono:
            instant = 1.0 / (analysis.mono - previous.last_frame_mono)
            fps = instant if previous.fps == 0 else previous.fps + _SMOOTHING * (instant - previous.fps)
        timings = {
            stage: ms if stage not in previous.timings_ms
            else previous.timings_ms[stage] + _SMOOTHING * (ms - previous.timings_ms[stage])
            for stage, ms in analysis.timings_ms.items()
        }
        # Replaced whole, never mutated: the web thread may read it at any time.
        return PipelineStats(previous.frames + 1, fps, analysis.mono, len(analysis.faces), timings)
