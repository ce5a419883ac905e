"""Calibration: how this candidate sits at this kiosk, so looking away is measured from it.

The session's first `duration_s` (from its first analysed frame) collect the head pose and gaze of the
frames that show exactly one face with a pose. Calibration ends on the first frame where that window has
passed and at least `min_samples` were collected: a candidate not in view during the window is calibrated
on the first `min_samples` frames that show them. The neutral is the median of each angle (a glance
during calibration does not move it), clamped to +/- `max_neutral_deg` from `centre` (where the screen's
centre lies seen from the camera), so a candidate turned away for the whole of calibration cannot make later
looking away invisible. Until it ends, looking_away is not
raised. A session that stops before then is calibrated on the samples it has, if any.
"""

from __future__ import annotations

from statistics import median

from daemon.config import CalibrationConfig
from daemon.events.model import Neutral
from daemon.inference.analysis import FrameAnalysis


class Calibrator:
    def __init__(self, config: CalibrationConfig, centre: tuple[float, float] = (0.0, 0.0)):
        self._config = config
        self._centre = centre  # yaw, pitch
        self._first_mono: float | None = None
        self._samples: list[tuple[float, float, float | None, float | None]] = []
        self.neutral: Neutral | None = None

    def observe(self, analysis: FrameAnalysis) -> Neutral | None:
        """Take one frame; returns the neutral on the frame calibration ends, else None."""
        if self.neutral is not None:
            return None
        if self._first_mono is None:
            self._first_mono = analysis.mono
        if len(analysis.faces) == 1 and (pose := analysis.faces[0].pose) is not None:
            gaze = analysis.faces[0].gaze
            self._samples.append((pose.yaw, pose.pitch, gaze and gaze.yaw, gaze and gaze.pitch))
        # A microsecond of slack: frame times are sums of float steps (see rules._reached).
        window_passed = analysis.mono - self._first_mono >= self._config.duration_s - 1e-6
        if window_passed and len(self._samples) >= self._config.min_samples:
            return self._conclude(analysis.wall)
        return None

    def finish(self, wall: float) -> Neutral | None:
        """The session stops: calibrate on what there is. Returns the neutral if it is new."""
        if self.neutral is None and self._samples:
            return self._conclude(wall)
        return None

    def _conclude(self, wall: float) -> Neutral:
        limit = self._config.max_neutral_deg

        def neutral_angle(index: int) -> float | None:
            values = [sample[index] for sample in self._samples if sample[index] is not None]
            centre = self._centre[index % 2]
            return max(centre - limit, min(centre + limit, median(values))) if values else None

        head_yaw, head_pitch, gaze_yaw, gaze_pitch = (neutral_angle(i) for i in range(4))
        assert head_yaw is not None and head_pitch is not None  # every sample has a head pose
        self.neutral = Neutral(head_yaw, head_pitch, gaze_yaw, gaze_pitch, len(self._samples), wall)
        self._samples = []
        return self.neutral
