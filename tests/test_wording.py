"""Evidence in plain language (daemon/report/wording.py): every rule type has a wording, fed the evidence
the real conditions record."""

from __future__ import annotations

from dataclasses import replace

import pytest
from synthetic import FPS, at, face, scene, seen

from daemon.capture.frame import FrameQuality
from daemon.config import RulesConfig
from daemon.events.attention import Attention
from daemon.events.conditions import Observation, build_conditions
from daemon.events.model import Event, Neutral
from daemon.events.rules import EVENT_TYPES, RuleEngine
from daemon.events.voice import VoiceFusion
from daemon.inference.analysis import AudioAnalysis, FrameAnalysis
from daemon.report.wording import WORDINGS, describe_evidence

RULES = RulesConfig()
NEUTRAL = Neutral(head_yaw=0.0, head_pitch=0.0, gaze_yaw=0.0, gaze_pitch=0.0, samples=10, at=0.0)


def picture(**changes) -> FrameAnalysis:
    values = {"brightness": 120.0, "contrast": 45.0, "sharpness": 250.0, "change": 3.0, "view_shift": 0.02}
    return scene(0, quality=FrameQuality(**(values | changes)))


def glances() -> list[FrameAnalysis]:
    """Three half-second glances to the candidate's left, two seconds apart."""
    frames = []
    for i in range(3 * 2 * FPS + 1):
        away = i % (2 * FPS) < FPS // 2 and i < 3 * 2 * FPS
        frames.append(scene(i, faces=(face(eye_yaw=40.0 if away else 0.0),)))
    return frames


def chatter() -> list[FrameAnalysis]:
    return [scene(i, faces=(face(mouth=0.3 if i % 2 else 0.02),)) for i in range(2 * FPS)]


# What makes each frame-based rule's condition hold: a stream of frames, one of them raising it.
SCENES: dict[str, list[FrameAnalysis]] = {
    "no_face": [scene(0, faces=())],
    "multiple_faces": [scene(0, faces=(face(0.95), face(0.7)))],
    "looking_away": [scene(0, faces=(face(yaw=-40.2, eye_yaw=40.2),))],  # the eyes still on the screen
    "looking_down": [scene(0, faces=(face(pitch=-30.0, eye_pitch=-40.0),))],
    "repeated_glances": glances(),
    "eyes_closed": [scene(0, faces=(face(eyes=0.03),))],
    "talking": chatter(),
    "phone": [scene(0, objects=(seen("cell phone", 0.62),))],
    "book": [scene(0, objects=(seen("book", 0.71),))],
    "extra_person": [scene(0, objects=(seen("person", 0.81),))],
    "camera_covered": [picture(brightness=5.0)],
    "camera_blurred": [picture(sharpness=20.25)],
    "camera_frozen": [picture(change=0.0)],
    "camera_moved": [picture(view_shift=0.6)],
}


# The rules that do not read frames: what they record, from the real code where a scene can drive it.
def voice_evidence(mouth_moved: bool) -> dict:
    fusion = VoiceFusion(RULES.talking, RULES.other_voice)
    if mouth_moved:
        fusion.mouth(0.0, Observation(True, 1.0, {"mouth_std": 0.12}))
    heard = fusion.observe(AudioAnalysis(1.0, 1.0, 0.032, -31.0, 0.93, True))
    return (heard.speech if mouth_moved else heard.other_voice).evidence


def recorded_evidence(event_type: str) -> dict:
    """The evidence the rule really records for its scene."""
    if event_type in ("camera_lost", "microphone_lost"):
        engine = RuleEngine(RULES, "s-1", lambda: "ev")
        update = engine.update_camera if event_type == "camera_lost" else engine.update_microphone
        changes = [change for i in range(60) for change in update(at(i), False)]
        return changes[0].event.evidence
    if event_type in ("speech", "other_voice"):
        return voice_evidence(mouth_moved=event_type == "speech")
    if event_type == "identity_mismatch":  # IdentityCheck's evidence (it needs embeddings: tests/test_identity.py)
        return {"similarity": 0.412, "reference": "check-in", "eye_distance_px": 31.5, "yaw_deg": 4.0,
                "limit": 0.7, "threshold": "similarity to the reference < 0.7"}
    attention = Attention(RULES, lambda: NEUTRAL)
    attention.learner.calibrated(NEUTRAL)
    condition = build_conditions(RULES, attention)[event_type]
    raised = [observation for observation in map(condition, SCENES[event_type]) if observation.active]
    assert raised, f"the scene for {event_type} does not raise it"
    return raised[0].evidence


def event(event_type: str, evidence: dict, lasted: float | None = 5.2) -> Event:
    return Event("ev", "s-1", event_type, "high", 100.0, None if lasted is None else 100.0 + lasted, 0.9, evidence)


def test_every_rule_type_has_a_wording_and_a_scene():
    assert set(WORDINGS) == set(EVENT_TYPES)
    assert set(SCENES) | {"camera_lost", "microphone_lost", "speech", "other_voice", "identity_mismatch"} \
        == set(EVENT_TYPES)


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_each_rule_s_evidence_reads_as_one_plain_sentence(event_type):
    sentence = describe_evidence(event(event_type, recorded_evidence(event_type)))
    assert sentence.endswith((")", " s"))
    assert " for 5.2 s" in sentence
    assert not any(raw in sentence for raw in ("{", "[", "_", "deg", "=")), sentence


@pytest.mark.parametrize(("event_type", "expected"), [
    ("looking_away", "head turned 40.2° to the candidate's right (image left) of neutral for 5.2 s (limit 35°)"),
    ("looking_down", "head 30.0° below neutral with the gaze below the screen for 5.2 s (limit 15°)"),
    ("eyes_closed", "eyes closed (openness 0.03) for 5.2 s (limit 0.12)"),
    ("phone", "a cell phone in view (detector score 0.62) for 5.2 s (limit 0.25)"),
    ("camera_lost", "no frame from the camera for 5.2 s"),
    ("multiple_faces", "2 faces in view (detector scores 0.95, 0.70) for 5.2 s"),
])
def test_wordings_name_the_value_the_duration_and_the_limit(event_type, expected):
    assert describe_evidence(event(event_type, recorded_evidence(event_type))) == expected


def test_an_open_event_and_old_evidence_still_read():
    still = describe_evidence(event("no_face", {"faces": 0, "threshold": "faces < 1"}, lasted=None))
    assert still == "no face in view, still going"
    old = event("eyes_closed", {"eye_openness": 0.05, "threshold": "eye_openness < 0.12"})
    assert describe_evidence(old) == "eyes closed (openness 0.05) for 5.2 s (eye_openness < 0.12)"
    unknown = replace(old, type="a_rule_from_a_newer_kiosk")
    assert describe_evidence(unknown).startswith("a rule from a newer kiosk for 5.2 s")
