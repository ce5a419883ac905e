"""A session on a kiosk whose camera is missing: the real daemon (its capture, rules, store and reports),
a camera device that does not exist, a session started at once and stopped after SECONDS.

    .venv/bin/python scripts/no_camera_session.py OUT_DIR [SECONDS]

Writes the session's report.json, report.html, report.pdf and report.csv to OUT_DIR and prints the
MQTT stop summary the kiosk would send. What issue 19 found: such a session used to report 0.0 s,
0 frames, camera_lost lasting "-0.5 s" and a score of 100.
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from pathlib import Path

from daemon.config import Config
from daemon.report import load_report, write_reports
from daemon.service import Daemon


def main(out_dir: Path, seconds: float) -> None:
    with tempfile.TemporaryDirectory(prefix="no-camera-") as data:
        config = Config.model_validate({
            "paths": {"data_dir": data, "models_dir": str(Config().models_dir)},
            "camera": {"kind": "opencv", "path": "/dev/video-missing"},
            "session": {"auto_start": True, "candidate_name": "Ada Lovelace", "candidate_id": "c-42",
                        "exam_id": "math-101"},
            "mqtt": {"enabled": False},
            "web": {"enabled": False},
        })
        daemon = Daemon(config)
        running = threading.Thread(target=daemon.run, name="daemon")
        running.start()
        time.sleep(seconds)
        session = daemon.sessions.stop()  # as the web page's stop button does
        daemon.request_stop()
        running.join()
        report = load_report(daemon.reader, session.id, config.rules)
        write_reports(report, out_dir)
        [stop] = [json.loads(m.payload) for m in daemon.reader.outbox() if m.topic.endswith("/session")
                  and json.loads(m.payload)["kind"] == "stop"]
    print(json.dumps({"session": {k: report["session"][k] for k in ("duration_seconds", "frames", "camera_offline_s")},
                      "assessment": report["assessment"], "score": report["integrity"]["score"],
                      "events": [(e["type"], e["duration_seconds"], e["description"]) for e in report["events"]],
                      "mqtt_stop_summary": stop["summary"]}, indent=2))


if __name__ == "__main__":
    main(Path(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 21.0)
