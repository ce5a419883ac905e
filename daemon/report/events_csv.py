"""The report's events as CSV, one row per event, for a spreadsheet: local times with their offset, the
evidence in plain words (report.json keeps the raw figures)."""

from __future__ import annotations

import csv
import io

from daemon.report import view

COLUMNS = (
    "id", "type", "severity", "event", "start", "end", "start_offset_s", "end_offset_s", "duration_s",
    "peak_confidence", "evidence",
)


def events_csv(report: dict) -> str:
    """Times in ISO 8601 with the kiosk's UTC offset and in seconds from the session start; an open event
    has empty end cells."""
    started_at = report["session"]["started_at"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for event in report["events"]:
        end = event["end"]
        writer.writerow([
            event["id"], event["type"], event["severity"], view.label(event["type"]), event["start_iso"],
            event["end_iso"] or "", f"{event['start'] - started_at:.3f}", "" if end is None else f"{end - started_at:.3f}",
            "" if event["duration_seconds"] is None else f"{event['duration_seconds']:.3f}",
            f"{event['peak_confidence']:.3f}", event["description"],
        ])
    return out.getvalue()
