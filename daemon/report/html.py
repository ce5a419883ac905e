"""The printable HTML report: one self-contained page (no script, no external file unless asked for),
with the score and its breakdown, the focus figures, the calibration, a timeline with every event as a
bar (inline SVG, prints as drawn) and the event list with its evidence."""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from daemon.report import view
from daemon.report.thumbnails import Thumbnails, data_uri

TEMPLATES = Path(__file__).parent / "templates"

_environment = Environment(
    loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
    trim_blocks=True, lstrip_blocks=True,
)
_environment.filters.update(
    label=view.label, local_time=view.local_time, clock=view.clock_offset, percent=view.percent,
    review_state=view.review_state,
)


def report_css() -> str:
    """The page's stylesheet, for a server that serves it as a file (a CSP without inline styles)."""
    return (TEMPLATES / "report.css").read_text()


def render_timeline_svg(timeline: view.Timeline) -> Markup:
    """The session timeline as inline SVG, for the report and the web page's session view alike."""
    return Markup(_environment.get_template("timeline.svg").render(t=timeline))


def render_report_html(report: dict, stylesheet_url: str | None = None, thumbnails: Thumbnails | None = None) -> str:
    """The report page. Its CSS is inlined, unless `stylesheet_url` says where the page links it from; the
    events' snapshots (`thumbnails`) are inside it, so it stays one file."""
    timeline = view.timeline(report)
    return _environment.get_template("report.html").render(
        pictures={event_id: data_uri(jpeg) for event_id, jpeg in (thumbnails or {}).items()},
        r=report,
        timeline=timeline,
        timeline_svg=render_timeline_svg(timeline),
        css=None if stylesheet_url else report_css(),
        stylesheet_url=stylesheet_url,
        focus_labels=view.FOCUS_LABELS,
        sound=view.sound_text(report["focus"]),
        severity_colours=view.SEVERITY_COLOURS,
    )
