"""The per-frame path: analyse, feed the session's rules, keep the figures the status page shows.

Kept lean on purpose: the writes it causes go to the store thread, the alerts to the MQTT thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from daemon.capture.frame import Frame
from daemon.inference.analysis import FrameAnalysis
from daemon.inference.analyzer import FrameAnalyzer
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


class FramePipeline:
    def __init__(self, analyzer: FrameAnalyzer, sessions: SessionController, recorder: Recorder | None = None):
        self._analyzer = analyzer
        self._sessions = sessions
        self._recorder = recorder
        self.stats = PipelineStats()

    def process(self, frame: Frame) -> FrameAnalysis:
        if self._recorder:
            # Queued (or dropped) before the analysis, so an event this frame starts finds it recorded.
            self._recorder.offer(frame)
        analysis = self._analyzer.analyze(frame)
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
