"""What each rule's condition reads off a frame (thresholds, evidence, confidence), calibration of the
neutral pose and the focus tallies, on synthetic FrameAnalysis streams (tests/synthetic.py)."""

from __future__ import annotations

import itertools

import pytest
from synthetic import FPS, GOOD_PICTURE, at, face, mono, scene, seen, wall

from daemon.capture.frame import FrameQuality
from daemon.config import CLOSED_EYE_OPENNESS, CalibrationConfig, RulesConfig
from daemon.events.calibration import Calibrator
from daemon.events.conditions import LookingAway, build_conditions, past_lower, past_upper
from daemon.events.model import FocusCounts, Neutral
from daemon.events.rules import RuleEngine
from daemon.inference.analysis import Box, FrameAnalysis

RULES = RulesConfig()
NEUTRAL = Neutral(head_yaw=0.0, head_pitch=0.0, gaze_yaw=0.0, gaze_pitch=0.0, samples=10, at=0.0)


def conditions(rules: RulesConfig = RULES, neutral: Neutral | None = NEUTRAL) -> dict:
    return build_conditions(rules, LookingAway(rules.looking_away, rules.eyes_closed, lambda: neutral))


def observe(rule: str, analysis: FrameAnalysis, rules: RulesConfig = RULES, neutral: Neutral | None = NEUTRAL):
    return conditions(rules, neutral)[rule](analysis)


def engine(rules: RulesConfig = RULES) -> RuleEngine:
    counter = itertools.count()
    return RuleEngine(rules, "s-1", lambda: f"ev-{next(counter)}")


def events_of(rule_engine: RuleEngine, frames: list[FrameAnalysis], event_type: str) -> list:
    """Feed the frames, close at the end; the finished events of one type."""
    changes = [c for f in frames for c in rule_engine.update(f)]
    changes += rule_engine.close(at(len(frames)))
    return [c.event for c in changes if c.kind == "end" and c.event.type == event_type]


def test_confidence_is_half_at_the_threshold_and_full_at_twice_or_zero():
    assert (past_upper(30, 30), past_upper(45, 30), past_upper(60, 30), past_upper(90, 30)) == (0.5, 0.75, 1.0, 1.0)
    assert (past_lower(0.12, 0.12), past_lower(0.06, 0.12), past_lower(0.0, 0.12)) == (0.5, 0.75, 1.0)
    assert past_lower(0.0, 0.0) == 1.0


# --- looking away ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("faces", "crossed"),
    [
        ((face(yaw=10.0, pitch=-10.0),), []),  # limits of 10 degrees: at the limit is not beyond it
        ((face(yaw=10.5, eye_yaw=-5.0),), ["head_yaw"]),  # head turned, eyes back toward the screen
        ((face(yaw=-11.0),), ["head_yaw", "gaze_yaw"]),
        ((face(eye_yaw=10.5),), ["gaze_yaw"]),  # head still, eyes to the side
        ((face(pitch=-10.5),), ["head_pitch", "gaze_pitch"]),  # looking down at the lap
    ],
)
def test_looking_away_names_the_angles_beyond_their_limit(faces, crossed):
    observation = observe("looking_away", scene(0, faces=faces))
    assert observation.active == bool(crossed)
    if crossed:
        assert observation.evidence["crossed"] == crossed
        assert set(observation.evidence["limits_deg"]) == set(crossed)
        assert "- neutral| >" in observation.evidence["threshold"]


def test_looking_away_is_measured_from_the_neutral():
    sideways = Neutral(head_yaw=18.0, head_pitch=-5.0, gaze_yaw=15.0, gaze_pitch=-5.0, samples=10, at=0.0)
    # The kiosk's camera sits to the side: 25 degrees is only 7 from how this candidate faces the screen.
    assert not observe("looking_away", scene(0, faces=(face(yaw=25.0, pitch=-5.0),)), neutral=sideways).active
    turned = observe("looking_away", scene(0, faces=(face(yaw=3.0, pitch=-5.0),)), neutral=sideways)
    assert turned.active
    assert turned.evidence["offsets_deg"] == {"head_yaw": -15.0, "head_pitch": 0.0, "gaze_yaw": -12.0, "gaze_pitch": 0.0}
    assert turned.confidence == pytest.approx(0.75)  # the angle furthest past its limit: head, 15 / (2 x 10)


def test_looking_away_needs_a_neutral_and_a_pose():
    assert not observe("looking_away", scene(0, faces=(face(yaw=80.0),)), neutral=None).active
    assert not observe("looking_away", scene(0, faces=(face(measured=False),))).active
    assert not observe("looking_away", scene(0, faces=())).active


def test_looking_away_uses_head_pose_alone_when_the_analyzer_gives_no_gaze():
    no_gaze = Neutral(head_yaw=0.0, head_pitch=0.0, gaze_yaw=None, gaze_pitch=None, samples=10, at=0.0)
    observation = observe("looking_away", scene(0, faces=(face(yaw=35.0),)), neutral=no_gaze)
    assert observation.evidence["crossed"] == ["head_yaw"]
    assert set(observation.evidence["offsets_deg"]) == {"head_yaw", "head_pitch"}


def test_looking_away_does_not_judge_the_gaze_of_closed_eyes():
    # A blink hides the iris: its measured position swings, the candidate has not looked away.
    assert not observe("looking_away", scene(0, faces=(face(eye_yaw=-15.0, eyes=0.08),))).active
    head_turned = observe("looking_away", scene(0, faces=(face(yaw=15.0, eyes=0.08),)))
    assert head_turned.evidence["crossed"] == ["head_yaw"] and "gaze_yaw" not in head_turned.evidence["offsets_deg"]


def test_looking_away_watches_the_largest_face():
    candidate = face(yaw=0.0, box=Box(100.0, 80.0, 160.0, 160.0))
    passer_by = face(yaw=70.0, box=Box(500.0, 40.0, 40.0, 40.0))
    assert not observe("looking_away", scene(0, faces=(passer_by, candidate))).active


# --- calibration -----------------------------------------------------------------------------------


def test_calibration_takes_the_median_of_its_window_so_a_glance_does_not_move_it():
    calibrator = Calibrator(CalibrationConfig(duration_s=3.0, min_samples=10))
    yaws = [12.0] * 10 + [60.0] * 4 + [12.0] * 16  # a glance during calibration
    results = [calibrator.observe(scene(i, faces=(face(yaw=yaw, eye_yaw=-2.0),))) for i, yaw in enumerate(yaws)]

    neutral = results[3 * FPS]
    assert all(r is None for r in results[: 3 * FPS]) and neutral is not None
    assert (neutral.head_yaw, neutral.gaze_yaw, neutral.samples, neutral.at) == (12.0, 10.0, 3 * FPS + 1, wall(3 * FPS))
    assert calibrator.observe(scene(30, faces=(face(yaw=45.0),))) is None  # calibrated once


def test_calibration_waits_for_the_candidate_when_no_face_is_seen_in_its_window():
    calibrator = Calibrator(CalibrationConfig(duration_s=1.0, min_samples=5))
    empty = [calibrator.observe(scene(i, faces=())) for i in range(40)]
    two_faces = [calibrator.observe(scene(i, faces=(face(), face()))) for i in range(40, 50)]
    seen_now = [calibrator.observe(scene(i, faces=(face(yaw=8.0),))) for i in range(50, 55)]

    assert not any(empty + two_faces + seen_now[:4])
    assert seen_now[4].head_yaw == 8.0 and seen_now[4].samples == 5


def test_calibration_is_clamped_so_a_candidate_turned_away_cannot_hide():
    calibrator = Calibrator(CalibrationConfig(duration_s=0.0, min_samples=3, max_neutral_deg=20.0))
    neutral = [calibrator.observe(scene(i, faces=(face(yaw=-50.0, pitch=30.0),))) for i in range(3)][-1]
    assert (neutral.head_yaw, neutral.head_pitch) == (-20.0, 20.0)


def test_calibration_at_a_short_session_end_uses_what_it_has():
    calibrator = Calibrator(CalibrationConfig(duration_s=10.0, min_samples=50))
    for i in range(4):
        calibrator.observe(scene(i, faces=(face(yaw=5.0),)))
    assert calibrator.finish(wall(4)).samples == 4
    assert Calibrator(CalibrationConfig()).finish(wall(0)) is None  # nobody was ever seen


def test_looking_away_is_not_raised_during_calibration_then_is_from_the_learnt_neutral():
    rules = RulesConfig.model_validate({"calibration": {"duration_s": 3.0}})
    sitting_sideways = [scene(i, faces=(face(yaw=15.0),)) for i in range(3 * FPS + 1)]
    turned_during_calibration = [scene(0, faces=(face(yaw=60.0),))]  # one frame: the median ignores it
    turned = [scene(i, faces=(face(yaw=50.0),)) for i in range(3 * FPS + 1, 7 * FPS)]
    back = [scene(i, faces=(face(yaw=15.0),)) for i in range(7 * FPS, 9 * FPS)]
    frames = turned_during_calibration + sitting_sideways[1:] + turned + back

    [event] = events_of(engine(rules), frames, "looking_away")

    assert (event.start, event.end) == (wall(3 * FPS + 1), wall(7 * FPS))
    assert event.evidence["offsets_deg"]["head_yaw"] == 35.0


# --- eyes closed, talking ---------------------------------------------------------------------------


def test_eyes_closed_below_the_openness_threshold_only():
    assert not observe("eyes_closed", scene(0, faces=(face(eyes=CLOSED_EYE_OPENNESS),))).active
    closed = observe("eyes_closed", scene(0, faces=(face(eyes=0.03),)))
    threshold = f"eye_openness < {CLOSED_EYE_OPENNESS:g}"
    assert closed.active and closed.evidence == {"eye_openness": 0.03, "threshold": threshold}
    assert not observe("eyes_closed", scene(0, faces=(face(eyes=None),))).active


def talking_frames(first: int, count: int, amplitude: float) -> list[FrameAnalysis]:
    """The mouth opening and closing about three times a second."""
    return [scene(i, faces=(face(mouth=0.05 + amplitude * (i % 3 == 0)),)) for i in range(first, first + count)]


def test_talking_is_sustained_mouth_movement():
    frames = [scene(i) for i in range(16)] + talking_frames(16, 6 * FPS, 0.25) + [scene(i) for i in range(64, 90)]
    [event] = events_of(engine(), frames, "talking")
    assert event.evidence["mouth_std"] >= 0.03 and event.evidence["samples"] >= 3
    assert wall(16) <= event.start <= wall(16 + FPS // 2 + 1)
    assert wall(64) <= event.end <= wall(64 + FPS)


def test_talking_ignores_a_still_open_mouth_small_movement_and_short_bursts():
    still_open = [scene(i, faces=(face(mouth=0.4),)) for i in range(80)]
    murmur = talking_frames(0, 80, 0.04)
    burst = talking_frames(0, 2 * FPS, 0.25) + [scene(i) for i in range(2 * FPS, 80)]  # shorter than min duration
    for frames in (still_open, murmur, burst):
        assert events_of(engine(), frames, "talking") == []


def test_talking_forgets_movement_across_a_frame_without_the_mouth():
    rule = conditions()["talking"]
    for analysis in talking_frames(0, FPS, 0.25):
        rule(analysis)
    assert rule(scene(FPS, faces=())).active is False
    assert rule(talking_frames(FPS + 1, 1, 0.25)[0]).active is False  # one sample is not a window


# --- objects ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("rule", "label"), [("phone", "cell phone"), ("book", "book")])
def test_object_rules_need_their_label_at_the_minimum_score(rule, label):
    assert not observe(rule, scene(0, objects=(seen(label, 0.49),))).active
    assert not observe(rule, scene(0, objects=(seen("laptop", 0.99),))).active
    observation = observe(rule, scene(0, objects=(seen(label, 0.5), seen(label, 0.7))))
    assert observation.active and observation.confidence == 0.7
    assert observation.evidence == {
        "label": label, "score": 0.7, "box": [400.0, 200.0, 60.0, 90.0], "detections": 2,
        "threshold": f"{label} score >= 0.5",
    }


def test_stale_or_missing_detector_results_are_not_evidence():
    phone = (seen("cell phone", 0.9),)
    stale = FrameAnalysis(7, mono(100), wall(100), 640, 480, (face(),), objects=phone, objects_mono=mono(100) - 3.5)
    never_ran = FrameAnalysis(7, mono(100), wall(100), 640, 480, (face(),), objects=phone, objects_mono=None)
    recent = FrameAnalysis(7, mono(100), wall(100), 640, 480, (face(),), objects=phone, objects_mono=mono(100) - 2.5)
    assert [observe("phone", f).active for f in (stale, never_ran, recent)] == [False, False, True]


def test_extra_person_is_a_person_who_is_not_the_candidate():
    candidate_body = seen("person", 0.95, Box(60.0, 40.0, 260.0, 440.0))  # holds the face centre (160, 140)
    behind = seen("person", 0.7, Box(420.0, 20.0, 150.0, 400.0))
    assert not observe("extra_person", scene(0, objects=(candidate_body,))).active
    other = observe("extra_person", scene(0, objects=(candidate_body, behind)))
    assert other.active and other.evidence["persons"] == 2 and other.evidence["score"] == 0.7
    # Nobody's face in view: one person may be the candidate turned away, two are one too many.
    assert not observe("extra_person", scene(0, faces=(), objects=(behind,))).active
    assert observe("extra_person", scene(0, faces=(), objects=(candidate_body, behind))).active


# --- the camera ------------------------------------------------------------------------------------


def picture(**changes) -> FrameAnalysis:
    values = {"brightness": 120.0, "contrast": 45.0, "sharpness": 250.0, "change": 3.0, "view_shift": 0.02}
    return scene(0, quality=FrameQuality(**(values | changes)))


@pytest.mark.parametrize(
    ("changes", "active"),
    [
        ({}, set()),
        ({"brightness": 19.9}, {"camera_covered"}),
        ({"brightness": 20.0}, set()),
        ({"contrast": 6.9}, {"camera_covered"}),
        ({"contrast": 7.0, "sharpness": 10.0}, set()),  # a dim room: little contrast, but not covered
        ({"sharpness": 40.0}, {"camera_blurred"}),  # 40 / 45^2 = 0.0198
        ({"sharpness": 40.5}, set()),  # 0.02
        ({"contrast": 10.0, "sharpness": 1.9}, {"camera_blurred"}),  # relative to the contrast
        ({"change": 0.005}, {"camera_frozen"}),
        ({"change": 0.006}, set()),
        ({"view_shift": 0.5}, {"camera_moved"}),
        ({"view_shift": 0.49}, set()),
        ({"view_shift": None}, set()),
        # A covered lens is dark, featureless, unchanging and unlike the reference view: covered alone.
        ({"brightness": 3.0, "contrast": 1.0, "sharpness": 0.1, "change": 0.0, "view_shift": 1.0}, {"camera_covered"}),
    ],
)
def test_camera_rules_thresholds(changes, active):
    rules = ("camera_covered", "camera_blurred", "camera_frozen", "camera_moved")
    assert {rule for rule in rules if observe(rule, picture(**changes)).active} == active


def test_camera_rules_name_their_measure_and_threshold():
    covered = observe("camera_covered", picture(brightness=5.0))
    assert covered.evidence == {"brightness": 5.0, "contrast": 45.0, "threshold": "brightness < 20 or contrast < 7"}
    assert covered.confidence == pytest.approx(0.875)
    assert observe("camera_frozen", picture(change=0.0)).evidence == {"change": 0.0, "threshold": "change <= 0.005"}
    blurred = observe("camera_blurred", picture(sharpness=20.25))
    assert blurred.evidence == {"sharpness": 20.25, "contrast": 45.0, "relative_sharpness": 0.01,
                                "threshold": "sharpness / contrast^2 < 0.02"}
    assert blurred.confidence == pytest.approx(0.75)


def test_no_quality_measured_raises_no_camera_event():
    unmeasured = FrameAnalysis(0, mono(0), wall(0), 640, 480, (face(),))
    for rule in ("camera_covered", "camera_blurred", "camera_frozen", "camera_moved"):
        assert not observe(rule, unmeasured).active


def test_default_thresholds_pass_an_ordinary_picture():
    assert all(not condition(scene(0)).active for condition in conditions().values())
    assert GOOD_PICTURE.view_shift is not None


# --- focus tallies ---------------------------------------------------------------------------------


def test_focus_counts_every_frame_and_the_calibration_frames_once_calibrated():
    rules = RulesConfig.model_validate({"calibration": {"duration_s": 1.0, "min_samples": 4}})
    rule_engine = engine(rules)
    frames = (
        [scene(i, faces=(face(yaw=5.0),)) for i in range(FPS)]  # calibration: neutral 5
        + [scene(i, faces=(face(yaw=50.0),)) for i in range(FPS, 2 * FPS)]  # looking away
        + [scene(i, faces=(face(yaw=5.0, eyes=0.05),)) for i in range(2 * FPS, 3 * FPS)]  # eyes closed
        + [scene(i, faces=()) for i in range(3 * FPS, 4 * FPS)]  # nobody
        + [scene(i, faces=(face(measured=False),)) for i in range(4 * FPS, 5 * FPS)]  # a face, nothing measured
    )
    for analysis in frames:
        rule_engine.update(analysis)

    assert rule_engine.metrics.focus == FocusCounts(
        frames=5 * FPS, face_present=4 * FPS, pose_measured=3 * FPS, looking_away=FPS, attentive=FPS,
        eyes_measured=3 * FPS, eyes_closed=FPS,
    )
    assert rule_engine.metrics.neutral.head_yaw == 5.0


def test_focus_of_a_session_shorter_than_calibration_is_counted_at_close():
    rule_engine = engine(RulesConfig.model_validate({"calibration": {"duration_s": 60.0}}))
    for i in range(FPS):
        rule_engine.update(scene(i, faces=(face(yaw=3.0),)))
    assert rule_engine.metrics.focus.pose_measured == 0 and rule_engine.metrics.neutral is None

    rule_engine.close(at(FPS))

    assert rule_engine.metrics.focus.attentive == FPS
    assert rule_engine.metrics.neutral.samples == FPS
