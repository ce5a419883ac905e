"""`proctord export`, `review` and `mark-synced` as real commands on a real store and real files."""

from __future__ import annotations

import hashlib
import json
import subprocess
import zipfile
from pathlib import Path

import pytest
from conftest import run_proctord
from test_store_chain import recorded_session

from daemon.store.chain import entry_hash
from daemon.store.db import StoreReader


@pytest.fixture
def setup(tmp_path):
    """A recorded session in the data folder of a config file."""
    config = tmp_path / "proctord.toml"
    config.write_text(f'[paths]\ndata_dir = "{tmp_path}"\n')
    session_id = recorded_session((tmp_path / "proctord.db", tmp_path / "recordings"))
    return tmp_path, config, session_id


def proctord(config: Path, *args: str) -> subprocess.CompletedProcess:
    return run_proctord(*args, "--config", str(config))


def test_export_writes_report_media_chain_and_a_manifest_that_checks_out(setup):
    data, config, session_id = setup
    bundle = data / "out" / "bundle.zip"
    bundle.parent.mkdir()

    done = proctord(config, "export", session_id, "--out", str(bundle), "--with-recordings")

    assert done.returncode == 0, done.stdout + done.stderr
    assert f"not in the bundle (deleted or missing): {session_id}/segment-0001.mp4" in done.stdout
    with zipfile.ZipFile(bundle) as archive:
        names = sorted(archive.namelist())
        content = {name.removeprefix(f"{session_id}/"): archive.read(name) for name in names}
    assert sorted(content) == [
        "chain.json", "clips/clip-ev-1.mp4", "manifest.json", "recordings/segment-0002.mp4", "report.csv",
        "report.html", "report.json", "report.pdf",
    ]
    manifest = json.loads(content["manifest.json"])
    assert manifest["verification"] == {"ok": True, "problems": []}
    assert manifest["missing_media"] == [f"{session_id}/segment-0001.mp4"]  # deleted by retention
    for entry in manifest["files"]:
        data_bytes = content[entry["path"]]
        assert (hashlib.sha256(data_bytes).hexdigest(), len(data_bytes)) == (entry["sha256"], entry["bytes"])
        assert entry.get("recorded_sha256", entry["sha256"]) == entry["sha256"]
    # Anyone can recompute the chain from the bundle alone, up to the head the manifest names.
    previous = "0" * 64
    for entry in json.loads(content["chain.json"]):
        assert entry["prev_hash"] == previous
        previous = entry_hash(previous, entry["session_id"], entry["seq"], entry["kind"], entry["ref"], entry["body"])
        assert previous == entry["hash"]
    assert manifest["chain"] == {"length": 9, "head": previous}
    report = json.loads(content["report.json"])
    assert report["session"]["id"] == session_id and len(report["events"]) == 2
    assert session_id.encode() in content["report.html"] and content["report.pdf"].startswith(b"%PDF")


def test_export_of_tampered_evidence_is_written_and_says_so(setup):
    data, config, session_id = setup
    (data / "recordings" / session_id / "clip-ev-1.mp4").write_bytes(b"edited")

    done = proctord(config, "export", session_id, "--out", str(data / "bundle.zip"))

    assert done.returncode == 1
    with zipfile.ZipFile(data / "bundle.zip") as archive:
        manifest = json.loads(archive.read(f"{session_id}/manifest.json"))
    assert manifest["verification"]["ok"] is False
    assert manifest["verification"]["problems"] == [
        f"session {session_id}: file {session_id}/clip-ev-1.mp4: altered: its sha256 differs from the one recorded"
    ]
    [clip] = [f for f in manifest["files"] if f["path"] == "clips/clip-ev-1.mp4"]
    assert clip["sha256"] != clip["recorded_sha256"]


def test_review_and_mark_synced_set_what_retention_reads(setup):
    data, config, session_id = setup
    reader = StoreReader(data / "proctord.db")

    assert proctord(config, "review", session_id).returncode == 0
    assert reader.under_review(session_id)
    assert proctord(config, "review", session_id, "--clear").returncode == 0
    assert not reader.under_review(session_id)

    assert proctord(config, "mark-synced", session_id).returncode == 0
    assert {m.media.name: m.synced_at is not None for m in reader.live_media()} == {
        f"{session_id}/segment-0002.mp4": True, f"{session_id}/clip-ev-1.mp4": True,
    }

    unknown = proctord(config, "review", "no-such-session")
    assert (unknown.returncode, unknown.stderr.strip()) == (2, "proctord: no session 'no-such-session'")
    assert proctord(config, "export", "no-such-session").returncode == 2
