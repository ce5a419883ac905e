"""`proctord export`: one session's evidence as a zip an exam board can check on its own.

<session id>/report.json      the session report (daemon.report), and the same as report.html and
                              report.pdf (with the events' snapshots) and report.csv (the events)
<session id>/chain.json       the session's tamper-evidence chain, to recompute every hash
<session id>/clips/, snapshots/ (and recordings/ with --with-recordings) the media files
<session id>/manifest.json    every other file of the bundle with its sha256 and size, the sha256 the
                              store recorded for each media file, the chain head, and the result of
                              `proctord verify` for the session at export time
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

from daemon import __version__
from daemon.config import RulesConfig
from daemon.files import PARTIAL_SUFFIX, file_sha256
from daemon.report import load_report
from daemon.report.files import REPORT_FILES
from daemon.report.thumbnails import load_thumbnails
from daemon.store import chain
from daemon.store.db import StoreReader, connect_reader
from daemon.store.identity import REFERENCE_PHOTO
from daemon.store.verify import UnknownSession, verify

FORMAT = "proctord-session-export/1"
_FOLDERS = {"clip": "clips", "snapshot": "snapshots", "segment": "recordings", REFERENCE_PHOTO: "identity"}


@dataclass(frozen=True, slots=True)
class ExportResult:
    path: Path
    files: int
    verified: bool
    missing: list[str]  # media the store records that are not on disk (deleted by retention, or lost)


def export_session(
    db_path: Path, media_root: Path, session_id: str, rules: RulesConfig, out: Path, with_recordings: bool = False
) -> ExportResult:
    reader = StoreReader(db_path)
    report = load_report(reader, session_id, rules)
    if report is None:
        raise UnknownSession(f"no session {session_id!r} in {db_path}")
    verification = verify(db_path, media_root, session_id)
    conn = connect_reader(db_path)
    try:
        entries = [asdict(entry) for entry in chain.entries(conn, session_id)]
    finally:
        conn.close()
    media = [m for m in reader.media(session_id) if m.kind != "segment" or with_recordings]

    files, missing = [], []
    partial = out.with_name(out.name + PARTIAL_SUFFIX)
    with zipfile.ZipFile(partial, "w") as bundle:

        def add(name: str, data: bytes) -> None:
            bundle.writestr(f"{session_id}/{name}", data, compress_type=zipfile.ZIP_DEFLATED)
            files.append({"path": name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)})

        def add_json(name: str, content) -> None:
            add(name, json.dumps(content, indent=2, sort_keys=True).encode())

        thumbnails = load_thumbnails(reader, media_root, session_id)
        for name, render in REPORT_FILES.values():
            add(name, render(report, thumbnails))
        add_json("chain.json", entries)
        for item in media:
            source = media_root / item.name
            if not source.is_file():
                missing.append(item.name)
                continue
            name = f"{_FOLDERS[item.kind]}/{source.name}"
            # Video and JPEG are compressed already: stored as they are.
            bundle.write(source, f"{session_id}/{name}", compress_type=zipfile.ZIP_STORED)
            files.append({
                "path": name, "sha256": file_sha256(source), "bytes": source.stat().st_size,
                "kind": item.kind, "event_id": item.event_id, "recorded_sha256": item.sha256,
                "start": item.start, "end": item.end,
            })
        head = entries[-1]["hash"] if entries else None
        add_json("manifest.json", {
            "format": FORMAT,
            "session_id": session_id,
            "exported_at": time.time(),
            "proctord_version": __version__,
            "chain": {"length": len(entries), "head": head},
            "verification": {"ok": verification.ok, "problems": [str(p) for p in verification.problems]},
            "missing_media": missing,
            "files": files,
        })
    os.replace(partial, out)
    return ExportResult(out, len(files), verification.ok, missing)
