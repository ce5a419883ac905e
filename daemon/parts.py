"""The daemon's background parts: one shape for everything that runs beside the frame loop.

A part (capture, analysis, recorder, store writer, MQTT, web, panel, health, audio, uploader…) starts,
stops, and reports a typed `PartStatus`. The daemon keeps its parts in one list: adding a part is one
module, its config section and one registration line. Parts that care about sessions also implement
`SessionListener` and are told when one starts or stops, instead of polling.

The status page, /api/status, /metrics and the retained MQTT status are all derived from the parts'
`PartStatus` values: a new figure is one `Figure` in a part's `status()`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
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
    unit: str = ""  # "", "bytes", "s", "fps", "ms", "%", "dBFS", "°C"
    kind: FigureKind = "gauge"
    help: str = ""
    stale: bool = False  # true when the value describes the past (e.g. the camera is offline)


@dataclass(frozen=True, slots=True)
class PartStatus:
    """What one part says about itself at one moment."""

    name: str  # the part's key in the snapshot: "capture", "mqtt", "recording", "audio", "uploader"…
    state: PartState
    reason: str | None = None  # why it is not "ok", in plain words
    figures: tuple[Figure, ...] = field(default_factory=tuple)

    def figure(self, key: str) -> FigureValue:
        for f in self.figures:
            if f.key == key:
                return f.value
        raise KeyError(f"{self.name} has no figure {key!r}")


@runtime_checkable
class Part(Protocol):
    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def status(self) -> PartStatus: ...


@runtime_checkable
class SessionListener(Protocol):
    """A part told when a session starts and when it stops, on the thread that started or stopped it.

    Listeners must return quickly (hand slow work to their own thread): they run on the web,
    MQTT or panel thread that asked, never on the frame path.
    """

    def session_started(self, session: SessionRecord) -> None: ...

    def session_stopped(self, session: SessionRecord) -> None: ...
