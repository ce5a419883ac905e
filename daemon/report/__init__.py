"""The session report: what a supervisor and an exam board read.

`build_report` makes the report as data (the JSON format, docs/report.schema.json); the other formats
are drawn from that data alone: `render_report_html` (a printable page with a timeline, `render_timeline_svg`, which the web page shows too),
`events_csv`, `render_report_pdf`; `write_reports` writes them all.
"""

from daemon.report.builder import REPORT_VERSION, build_report, load_report
from daemon.report.events_csv import events_csv
from daemon.report.files import write_reports
from daemon.report.html import render_report_html, render_timeline_svg, report_css
from daemon.report.pdf import render_report_pdf

__all__ = [
    "REPORT_VERSION", "build_report", "events_csv", "load_report", "render_report_html", "render_report_pdf",
    "render_timeline_svg", "report_css", "write_reports",
]
