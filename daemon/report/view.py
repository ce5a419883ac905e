"""What the printable formats (HTML, PDF) show of a report: labels, times as people read them, and the
timeline's geometry. Computed here once, so both formats draw the same picture."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from daemon.events.rules import EVENT_TYPES
from daemon.inference.voice import WINDOW_S

EVENT_LABELS = {
    "no_face": "No face",
    "multiple_faces": "Several faces",
    "looking_away": "Looking away",
    "looking_down": "Looking down",
    "repeated_glances": "Repeated glances",
    "eyes_closed": "Eyes closed",
    "talking": "Talking",
    "speech": "Speech",
    "other_voice": "Other voice",
    "phone": "Phone",
    "book": "Book",
    "extra_person": "Extra person",
    "microphone_lost": "Microphone lost",
    "camera_lost": "Camera lost",
    "camera_covered": "Camera covered",
    "camera_blurred": "Camera blurred",
    "camera_frozen": "Camera frozen",
    "camera_moved": "Camera moved",
    "identity_mismatch": "Identity mismatch",
}
SEVERITY_COLOURS = {"high": "#c0392b", "medium": "#e67e22", "low": "#d4ac0d"}
FOCUS_LABELS = {
    "face_present": "Face present",
    "attentive": "Attentive",
    "looking_away": "Looking away",
    "eyes_closed": "Eyes closed",
}

# Timeline drawing units (SVG user units; the PDF scales them to the page width).
TIMELINE_WIDTH = 1000
LABEL_WIDTH = 150
RIGHT_MARGIN = 16
LANE_HEIGHT = 24
BAR_HEIGHT = 14
AXIS_HEIGHT = 26
SIMILARITY_HEIGHT = 48  # the identity similarity band
MIN_BAR_WIDTH = 2.0  # a short event stays visible
_TICK_STEPS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200)


def label(event_type: str) -> str:
    return EVENT_LABELS.get(event_type, event_type)


def local_time(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def clock_offset(seconds: float) -> str:
    """Seconds from the session start as m:ss, or h:mm:ss from an hour on."""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def review_state(state: str) -> str:
    """"not_reviewed" as a person reads it: "not reviewed"."""
    return state.replace("_", " ")


def percent(share: float | None) -> str:
    return "not measured" if share is None else f"{100 * share:.1f} %"


def sound_text(focus: dict) -> str | None:
    """The sound's focus figures in a line: speech share and mean level; None when nothing was heard."""
    if focus.get("speech") is None:
        return None
    heard_s = focus["counts"]["sound_windows"] * WINDOW_S
    return (f"Speech {percent(focus['speech'])} of the {heard_s:.0f} s of sound heard; "
            f"mean sound level {focus['sound_level_dbfs']:.0f} dBFS.")


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    colour: str
    title: str  # what a pointer over the bar shows
    event_id: str  # the bar links to the event's row (#event-<id>)
    start_s: float  # the event's start, seconds from the session start (the review page's player seeks there)
    verdict: str | None  # the reviewer's latest verdict (confirmed | dismissed), None before any


@dataclass(frozen=True, slots=True)
class SimilarityPlot:
    """Identity checks: the similarity to the reference over the session, as a line in a band under the lanes
    (similarity 0 at its bottom, 1 at its top) with the threshold dashed across it."""

    top: float
    height: float
    points: list[tuple[float, float]]  # (x, y) per embedding
    threshold_y: float
    label: str
    threshold: float


@dataclass(frozen=True, slots=True)
class Timeline:
    width: float
    height: float
    plot_left: float
    plot_width: float
    lanes: list[tuple[str, float]]  # (label, y of the lane's middle)
    ticks: list[tuple[float, str]]  # (x, label)
    bars: list[Bar]
    calibration: tuple[float, float] | None  # (x, width) of the calibration window
    similarity: SimilarityPlot | None = None

    @property
    def similarity_points(self) -> str:
        """The similarity line as an SVG polyline's points."""
        return " ".join(f"{x},{y}" for x, y in self.similarity.points) if self.similarity else ""


def timeline(report: dict) -> Timeline:
    """One lane per event type that occurred, one bar per event, on the session's time axis."""
    session = report["session"]
    duration = max(session["duration_seconds"], 1e-9)
    plot_left, plot_width = LABEL_WIDTH, TIMELINE_WIDTH - LABEL_WIDTH - RIGHT_MARGIN
    present = {event["type"] for event in report["events"]}
    types = [t for t in EVENT_TYPES if t in present] + sorted(present - set(EVENT_TYPES))
    lane_y = {event_type: AXIS_HEIGHT + (i + 0.5) * LANE_HEIGHT for i, event_type in enumerate(types)}

    def x_at(offset: float) -> float:
        return plot_left + plot_width * min(max(offset / duration, 0.0), 1.0)

    bars = []
    for event in report["events"]:
        start = event["start"] - session["started_at"]
        end = start + event["duration_seconds"] if event["duration_seconds"] is not None else duration
        x = x_at(start)
        width = max(x_at(end) - x, MIN_BAR_WIDTH)
        length = f"{end - start:.1f} s" + ("" if event["end"] is not None else ", still open")
        bars.append(Bar(
            x=round(min(x, plot_left + plot_width - width), 2), y=lane_y[event["type"]] - BAR_HEIGHT / 2,
            width=round(width, 2), colour=SEVERITY_COLOURS.get(event["severity"], "#7f8c8d"),
            title=f"{label(event['type'])} at {clock_offset(start)}, {length} ({event['severity']})",
            event_id=event["id"], start_s=round(start, 3), verdict=(event.get("review") or {}).get("verdict"),
        ))
    step = next((s for s in _TICK_STEPS_S if duration / s <= 10), _TICK_STEPS_S[-1])
    ticks = [(round(x_at(t), 2), clock_offset(t)) for t in range(0, int(duration) + 1, step)]
    calibrated = report.get("calibration", {})
    window = calibrated.get("ended_offset_seconds") if calibrated.get("calibrated") else None
    lanes_bottom = AXIS_HEIGHT + LANE_HEIGHT * max(len(types), 1)
    similarity = _similarity_plot(report.get("identity"), lanes_bottom + 4, x_at)
    return Timeline(
        width=TIMELINE_WIDTH,
        height=lanes_bottom + 4 + (SIMILARITY_HEIGHT + 4 if similarity else 0),
        plot_left=plot_left,
        plot_width=plot_width,
        lanes=[(label(t), lane_y[t]) for t in types],
        ticks=ticks,
        bars=bars,
        calibration=None if window is None else (plot_left, round(x_at(window) - plot_left, 2)),
        similarity=similarity,
    )


def _similarity_plot(identity: dict | None, top: float, x_at) -> SimilarityPlot | None:
    if not identity or not identity["similarity"]:
        return None

    def y_at(value: float) -> float:
        return round(top + SIMILARITY_HEIGHT * (1 - min(max(value, 0.0), 1.0)), 2)

    threshold = identity["reference"]["threshold"]
    return SimilarityPlot(
        top=top, height=SIMILARITY_HEIGHT,
        points=[(round(x_at(offset), 2), y_at(value)) for offset, value in identity["similarity"]],
        threshold_y=y_at(threshold), label="Identity", threshold=threshold,
    )
