"""Face-only degrade: without the (mirror-only) COCO models, `models fetch` installs the rest and names what
is missing with the command to install it, and the daemon and replay proctor face-only, saying so."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import daemon_config, run_proctord

from daemon.config import Config, PathsConfig, load_config
from daemon.inference.analyzer import FACE_MESH_FILE, IRIS_FILE, face_only_if_missing
from daemon.inference.face_pipeline import FACE_DETECTOR_FILES
from daemon.modelstore import MANIFEST_PATH, load_manifest
from daemon.preflight import startup_problems
from daemon.replay import replay
from daemon.service import Daemon

FACE_FILES = [*FACE_DETECTOR_FILES.values(), FACE_MESH_FILE, IRIS_FILE]
MIRROR_ONLY = [entry.name for entry in load_manifest(MANIFEST_PATH).values() if entry.source == "mirror-only"]


@pytest.fixture
def face_models(tmp_path, models_dir) -> Path:
    """An empty models directory given only the face models."""
    folder = tmp_path / "face-models"
    folder.mkdir()
    for name in FACE_FILES:
        shutil.copy(models_dir / name, folder / name)
    return folder


def test_fetch_without_the_mirror_only_files_installs_the_rest_names_them_and_succeeds(tmp_path, models_dir):
    mirror = tmp_path / "mirror"  # a mirror with every file but the mirror-only ones
    mirror.mkdir()
    for entry in load_manifest(MANIFEST_PATH).values():
        if entry.source != "mirror-only":
            shutil.copy(models_dir / entry.name, mirror / entry.name)
    dest = tmp_path / "models"
    config = tmp_path / "proctord.toml"
    config.write_text(daemon_config(tmp_path, dest))

    fetched = run_proctord("models", "fetch", "--config", str(config), "--from", str(mirror))

    assert fetched.returncode == 0, fetched.stderr
    for name in MIRROR_ONLY:
        assert f"missing  {name}" in fetched.stdout
        assert not (dest / name).exists()
    assert "proctord models fetch --from DIR" in fetched.stderr and "face-only" in fetched.stderr
    assert (dest / "face_landmark.tflite").is_file()


def test_the_daemon_starts_face_only_and_says_so(tmp_path, face_models, scenario_video, caplog):
    config_file = tmp_path / "proctord.toml"
    config_file.write_text(daemon_config(tmp_path, face_models, scenario_video))
    config = load_config(config_file)

    assert startup_problems(config, for_run=True) == []
    checked = run_proctord("check-config", str(config_file))
    assert checked.returncode == 0, checked.stderr
    assert "the daemon will proctor face-only: model missing (yolox_nano_coco_fp16.tflite" in checked.stdout
    daemon = Daemon(config)  # built, not run: its parts report without starting
    objects = daemon.status().part("objects")
    daemon.writer.close()
    assert objects.state == "off"
    assert "proctord models fetch --from DIR" in objects.reason and "yolox_nano_coco_fp16.tflite" in objects.reason
    assert objects.figure("running") is False
    assert "object detection off, proctoring face-only: model missing" in caplog.text


def test_a_replay_without_the_object_model_reports_the_object_rules_not_checked(tmp_path, face_models, scenario_video):
    config = Config(paths=PathsConfig(models_dir=str(face_models)))
    assert face_only_if_missing(config.inference, face_models)[1] is not None

    report = replay(scenario_video, config, tmp_path / "out").report

    assert report["session"]["not_checked"] == ["phone", "book", "extra_person"]
    assert {"no_face", "multiple_faces"} <= set(report["event_counts"])  # the face rules still run
    assert "Not checked on this kiosk" in (tmp_path / "out" / "report.html").read_text()
