"""The report's events as CSV, one row per event, for a spreadsheet."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime

from daemon.compat import UTC

COLUMNS = (
    "id", "type", "severity", "start_utc", "end_utc", "start_offset_s", "end_offset_s", "duration_s",
    "peak_confidence", "threshold", "evidence",
)


def iso_utc(epoch: float | None) -> str:
    return "" if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


def events_csv(report: dict) -> str:
    """Times in ISO 8601 UTC and in seconds from the session start; an open event has empty end cells."""
    started_at = report["session"]["started_at"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for event in report["events"]:
        end = event["end"]
        writer.writerow([
            event["id"], event["type"], event["severity"], iso_utc(event["start"]), iso_utc(end),
            f"{event['start'] - started_at:.3f}", "" if end is None else f"{end - started_at:.3f}",
            "" if event["duration_seconds"] is None else f"{event['duration_seconds']:.3f}",
            f"{event['peak_confidence']:.3f}", event["evidence"].get("threshold", ""),
            json.dumps(event["evidence"], sort_keys=True),
        ])
    return out.getvalue()
