"""Writing a report to disk in every format, each file atomically (a reader never sees half a file)."""

from __future__ import annotations

import json
from pathlib import Path

from daemon.files import write_durably
from daemon.report.events_csv import events_csv
from daemon.report.html import render_report_html
from daemon.report.pdf import render_report_pdf

REPORT_FILES = {
    "json": ("report.json", lambda report: json.dumps(report, indent=2, sort_keys=True).encode()),
    "html": ("report.html", lambda report: render_report_html(report).encode()),
    "csv": ("report.csv", lambda report: events_csv(report).encode()),
    "pdf": ("report.pdf", render_report_pdf),
}


def write_reports(report: dict, out_dir: Path) -> dict[str, Path]:
    """Write report.json, report.html, report.csv and report.pdf into `out_dir`; returns them by format."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for kind, (name, render) in REPORT_FILES.items():
        path = out_dir / name
        write_durably(path, render(report))
        written[kind] = path
    return written
