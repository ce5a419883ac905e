"""Writing a report to disk in every format, each file atomically (a reader never sees half a file)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from daemon.files import write_durably
from daemon.report.events_csv import events_csv
from daemon.report.html import render_report_html
from daemon.report.pdf import render_report_pdf
from daemon.report.thumbnails import Thumbnails

# Each format: its file name, and how it is drawn from the report and the events' snapshots.
REPORT_FILES: dict[str, tuple[str, Callable[[dict, Thumbnails], bytes]]] = {
    "json": ("report.json", lambda report, _: json.dumps(report, indent=2, sort_keys=True).encode()),
    "html": ("report.html", lambda report, thumbnails: render_report_html(report, thumbnails=thumbnails).encode()),
    "csv": ("report.csv", lambda report, _: events_csv(report).encode()),
    "pdf": ("report.pdf", render_report_pdf),
}


def write_reports(report: dict, out_dir: Path, thumbnails: Thumbnails | None = None) -> dict[str, Path]:
    """Write report.json, report.html, report.csv and report.pdf into `out_dir`; returns them by format."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for kind, (name, render) in REPORT_FILES.items():
        path = out_dir / name
        write_durably(path, render(report, thumbnails or {}))
        written[kind] = path
    return written
