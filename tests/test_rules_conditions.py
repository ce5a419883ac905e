"""What each rule's condition reads off a frame (thresholds, evidence, confidence), calibration of the
neutral pose and the focus tallies, on synthetic FrameAnalysis streams (tests/synthetic.py)."""

from __future__ import annotations

import itertools

import pytest
from synthetic import FPS, GOOD_PICTURE, at, face, mono, scene, seen, wall

from daemon.capture.frame import FrameQuality
from daemon.config import CLOSED_EYE_OPENNESS, CalibrationConfig, RulesConfig, ScreenConfig
from daemon.events.attention import Attention, RegionLearner, screen_region
from daemon.events.calibration import Calibrator
from daemon.events.conditions import build_conditions, past_lower, past_upper
from daemon.events.model import FocusCounts, Neutral
from daemon.events.rules import RuleEngine
from daemon.inference.analysis import Box, FrameAnalysis

RULES = RulesConfig()
NEUTRAL = Neutral(head_yaw=0.0, head_pitch=0.0, gaze_yaw=0.0, gaze_pitch=0.0, samples=10, at=0.0)


def conditions(rules: RulesConfig = RULES, neutral: Neutral | None = NEUTRAL) -> dict:
    attention = Attention(rules, lambda: neutral)
    if neutral is not None:
        attention.learner.calibrated(neutral)
    return build_conditions(rules, attention)


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


# --- looking away: attention off the screen ------------------------------------------------------
# Angles from the camera-to-face line; NEUTRAL (gaze straight at the camera) is taken as the screen's centre.

LAPTOP = RulesConfig.model_validate({"screen": {"preset": "laptop_14in"}})  # +-17.2 deg wide, 19.2 tall


def test_the_screens_region_comes_from_its_size_distance_and_camera():
    monitor = screen_region(ScreenConfig())
    assert (monitor.yaw_min, monitor.yaw_max) == (pytest.approx(-23.87, abs=0.01), pytest.approx(23.87, abs=0.01))
    assert (monitor.pitch_min, monitor.pitch_max) == (pytest.approx(-26.49, abs=0.01), 0.0)  # below a top camera
    laptop = screen_region(ScreenConfig(preset="laptop_14in"))
    assert laptop.yaw_max == pytest.approx(17.22, abs=0.01) and laptop.pitch_min == pytest.approx(-19.19, abs=0.01)
    low_camera = screen_region(ScreenConfig(preset="laptop_14in", camera="bottom_centre"))
    assert (low_camera.pitch_min, low_camera.pitch_max) == (0.0, pytest.approx(19.19, abs=0.01))
    closer = screen_region(ScreenConfig(preset="laptop_14in", distance_cm=25.0))
    assert closer.yaw_max == pytest.approx(31.8, abs=0.1)


def test_a_custom_screen_needs_all_its_dimensions():
    with pytest.raises(ValueError, match="needs height_cm, distance_cm"):
        ScreenConfig(preset="custom", width_cm=30.0)


@pytest.mark.parametrize("eye_yaw", [-17.0, -9.0, 0.0, 12.0, 17.0, 22.0])
def test_reading_across_the_screen_is_not_looking_away(eye_yaw):
    # The edges of a laptop screen lie 17 degrees off the camera's axis; the margin adds 5 more.
    reading = scene(0, faces=(face(eye_yaw=eye_yaw, eye_pitch=-8.0),))
    assert not observe("looking_away", reading, LAPTOP).active
    assert not observe("looking_down", reading, LAPTOP).active


@pytest.mark.parametrize(("gaze", "direction", "words"), [
    ({"eye_yaw": 25.0}, "left", "to the candidate's left (image right)"),
    ({"eye_yaw": -25.0}, "right", "to the candidate's right (image left)"),
    ({"eye_pitch": 17.4}, "up", "up"),
])
def test_a_gaze_off_the_screen_is_looking_away_and_says_where(gaze, direction, words):
    observation = observe("looking_away", scene(0, faces=(face(**gaze),)), LAPTOP)
    assert observation.active
    assert observation.evidence["direction"] == direction
    assert observation.evidence["description"].startswith(f"attention off the screen {words} (gaze")
    assert observation.evidence["cause"] == "gaze"
    assert observation.confidence == pytest.approx(0.5 + 2.8 / 20, abs=0.01)  # 2.8 deg past the limit
    assert observation.evidence["screen_region_deg"] == {"yaw_min": -17.2, "yaw_max": 17.2, "pitch_min": -9.6, "pitch_max": 9.6}
    assert observation.evidence["margin_deg"] == 5.0


def test_the_screen_size_decides_what_counts_as_off_the_screen():
    # 20 degrees off the camera's axis: a laptop's edge plus margin is 22, a phone's 10.
    phone = RulesConfig.model_validate(
        {"screen": {"preset": "custom", "width_cm": 7.0, "height_cm": 15.0, "distance_cm": 35.0}}
    )
    eyes_aside = scene(0, faces=(face(eye_yaw=20.0),))
    assert not observe("looking_away", eyes_aside, LAPTOP).active
    assert observe("looking_away", eyes_aside, phone).active


def test_a_head_turned_far_is_looking_away_even_with_the_eyes_on_the_screen():
    turned = observe("looking_away", scene(0, faces=(face(yaw=-36.0, eye_yaw=30.0),)))
    assert turned.active and turned.evidence["cause"] == "head turn" and turned.evidence["direction"] == "right"
    # Heads swing well past reading angles while the eyes stay on the screen: 30 degrees is no event.
    assert not observe("looking_away", scene(0, faces=(face(yaw=30.0, eye_yaw=-25.0),))).active
    raised = observe("looking_away", scene(0, faces=(face(pitch=26.0, eye_pitch=-20.0),)))
    assert raised.active and raised.evidence["direction"] == "up"


def test_head_roll_never_counts():
    assert not observe("looking_away", scene(0, faces=(face(roll=60.0),))).active
    assert not observe("looking_down", scene(0, faces=(face(roll=-60.0),))).active


def test_looking_down_needs_the_head_and_the_gaze_down_together():
    # The monitor's bottom edge is 26.5 degrees below the camera; the neutral is at its centre (13.2 below).
    eyes_down = scene(0, faces=(face(eye_pitch=-30.0),))  # a glance at the keyboard
    head_down = scene(0, faces=(face(pitch=-20.0, eye_pitch=10.0),))  # head bowed, eyes on the screen
    lap = scene(0, faces=(face(pitch=-25.0, eye_pitch=-10.0),))  # a phone in the lap
    for frame_ in (eyes_down, head_down):
        assert not observe("looking_down", frame_).active and not observe("looking_away", frame_).active
    observation = observe("looking_down", lap)
    assert observation.active and not observe("looking_away", lap).active
    assert observation.evidence["direction"] == "down" and observation.evidence["cause"] == "head and gaze down"
    assert observation.evidence["head_from_neutral_deg"] == {"yaw": 0.0, "pitch": -25.0}


def test_the_region_is_placed_on_the_candidate_sitting_off_centre_or_below_a_low_camera():
    # Calibration sees this candidate read at yaw 15 and pitch 18 (off to one side, the camera lower than
    # configured): the same sweep around that point is reading, not looking away.
    rules = RulesConfig.model_validate({"screen": {"preset": "laptop_14in"}, "calibration": {"duration_s": 1.0}})
    frames = [scene(i, faces=(face(yaw=10.0, pitch=10.0, eye_yaw=5.0, eye_pitch=8.0),)) for i in range(FPS + 1)]
    sweep = [-16.0, -8.0, 0.0, 8.0, 16.0]
    frames += [scene(i, faces=(face(yaw=10.0, pitch=10.0, eye_yaw=5.0 + sweep[(i // FPS) % 5], eye_pitch=8.0),))
               for i in range(FPS + 1, 60 * FPS)]
    frames += [scene(i, faces=(face(yaw=10.0, pitch=10.0, eye_yaw=-30.0),)) for i in range(60 * FPS, 64 * FPS)]
    rule_engine = engine(rules)
    [event] = events_of(rule_engine, frames, "looking_away")
    assert event.start == wall(60 * FPS) and event.evidence["direction"] == "right"
    assert rule_engine.metrics.focus.looking_away == 4 * FPS


def test_the_first_minutes_widen_the_region_to_where_this_candidate_reads_but_only_so_far():
    # Sitting closer than configured: reading spans +-26 degrees, past the laptop's 17 + 5.
    rules = RulesConfig.model_validate({"screen": {"preset": "laptop_14in"},
                                        "calibration": {"duration_s": 1.0, "learn_s": 30.0}})
    sweep = [0.0, 13.0, 26.0, -13.0, -26.0]  # 3 s at each place, from the centre (calibration)
    reading = [scene(i, faces=(face(eye_yaw=sweep[(i // (3 * FPS)) % 5]),)) for i in range(60 * FPS)]
    far_aside = [scene(i, faces=(face(eye_yaw=-45.0),)) for i in range(60 * FPS, 64 * FPS)]
    rule_engine = engine(rules)
    events = events_of(rule_engine, reading + far_aside, "looking_away")
    # Before the window closes the wide reading is flagged; after it, only the look 45 degrees aside.
    assert len(events) > 2 and all(event.end <= wall(30 * FPS) for event in events[:-1])
    assert events[-1].start == wall(60 * FPS)
    region = rule_engine._attention.region
    assert region.yaw_min == pytest.approx(-26.0) and region.yaw_max == pytest.approx(26.0)


def test_learning_widens_the_region_by_at_most_max_widening_deg():
    learner = RegionLearner(ScreenConfig(preset="laptop_14in"), CalibrationConfig(learn_s=10.0, max_widening_deg=10.0))
    learner.calibrated(NEUTRAL)
    for i in range(10 * FPS + 1):  # the candidate looks far to one side a third of the time
        learner.observe(mono(i), (-60.0 if i % 3 == 0 else 0.0, 0.0))
    assert learner.region.yaw_min == pytest.approx(-27.22, abs=0.01)  # -17.22 - 10
    assert learner.region.yaw_max == pytest.approx(17.22, abs=0.01)


def test_looking_away_needs_a_neutral_and_a_pose():
    assert not observe("looking_away", scene(0, faces=(face(yaw=80.0),)), neutral=None).active
    assert not observe("looking_away", scene(0, faces=(face(measured=False),))).active
    assert not observe("looking_away", scene(0, faces=())).active


def test_looking_away_does_not_judge_the_gaze_of_closed_eyes():
    # A blink hides the iris: its measured position swings, the candidate has not looked away.
    assert not observe("looking_away", scene(0, faces=(face(eye_yaw=-40.0, eyes=0.08),))).active
    head_turned = observe("looking_away", scene(0, faces=(face(yaw=40.0, eyes=0.08),)))
    assert head_turned.evidence["cause"] == "head turn" and "gaze_deg" not in head_turned.evidence


def test_looking_away_watches_the_largest_face():
    candidate = face(yaw=0.0, box=Box(100.0, 80.0, 160.0, 160.0))
    passer_by = face(yaw=70.0, box=Box(500.0, 40.0, 40.0, 40.0))
    assert not observe("looking_away", scene(0, faces=(passer_by, candidate))).active


# --- repeated glances ------------------------------------------------------------------------------


def glances(pattern: str, start: int = 0) -> list[FrameAnalysis]:
    """One character per frame: '.' reading, 'L' / 'R' eyes 40 degrees to the candidate's left / right."""
    eye_yaw = {".": 0.0, "L": 40.0, "R": -40.0}
    return [scene(start + i, faces=(face(eye_yaw=eye_yaw[c]),)) for i, c in enumerate(pattern)]


GLANCE = "L" * FPS  # 1 s: shorter than looking_away's 2 s minimum
PAUSE = "." * (5 * FPS)


def test_three_glances_to_one_side_are_one_repeated_glances_event_spanning_them():
    frames = glances(PAUSE + GLANCE + PAUSE + GLANCE + PAUSE + GLANCE + PAUSE)
    rule_engine = engine()
    assert events_of(rule_engine, frames, "looking_away") == []
    [event] = events_of(engine(), frames, "repeated_glances")
    assert event.start == wall(5 * FPS)  # the first glance began
    assert event.end == wall(3 * 5 * FPS + 3 * FPS + 1)  # the frame after the third glance ended
    assert event.evidence["direction"] == "left" and event.evidence["glances"] == 3
    assert event.evidence["description"] == "3 glances off the screen to the candidate's left (image right) within 13 s"


@pytest.mark.parametrize("pattern", [
    PAUSE + GLANCE + PAUSE + GLANCE + PAUSE,  # two
    PAUSE + GLANCE + PAUSE + "R" * FPS + PAUSE + GLANCE + PAUSE,  # not to the same side
    PAUSE + "L" * 2 + PAUSE + "L" * 2 + PAUSE + "L" * 2 + PAUSE,  # flickers shorter than min_glance_s
    PAUSE + "L" * 3 * FPS + PAUSE + "L" * 3 * FPS + PAUSE + "L" * 3 * FPS + PAUSE,  # each one a looking_away event
])
def test_glances_that_are_too_few_mixed_too_short_or_events_already_are_not_repeated_glances(pattern):
    assert events_of(engine(), glances(pattern), "repeated_glances") == []


def test_glances_further_apart_than_the_window_do_not_count_together():
    rules = RulesConfig.model_validate({"repeated_glances": {"window_s": 10.0}})
    frames = glances(PAUSE + GLANCE + PAUSE + GLANCE + PAUSE + GLANCE + PAUSE)
    assert events_of(engine(rules), frames, "repeated_glances") == []


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


def test_calibration_is_clamped_about_where_the_screen_lies_seen_from_the_camera():
    # Below a top camera the screen's centre is 13 degrees down: a neutral 30 down is still plausible.
    calibrator = Calibrator(CalibrationConfig(duration_s=0.0, min_samples=1, max_neutral_deg=20.0), (0.0, -13.0))
    neutral = calibrator.observe(scene(0, faces=(face(pitch=-30.0, yaw=25.0),)))
    assert (neutral.head_yaw, neutral.head_pitch) == (20.0, -30.0)


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
    turned = [scene(i, faces=(face(yaw=60.0),)) for i in range(3 * FPS + 1, 7 * FPS)]
    back = [scene(i, faces=(face(yaw=15.0),)) for i in range(7 * FPS, 9 * FPS)]
    frames = turned_during_calibration + sitting_sideways[1:] + turned + back

    [event] = events_of(engine(rules), frames, "looking_away")

    assert (event.start, event.end) == (wall(3 * FPS + 1), wall(7 * FPS))
    assert event.evidence["head_from_neutral_deg"]["yaw"] == 45.0


# --- eyes closed, talking ---------------------------------------------------------------------------


def test_eyes_closed_below_the_openness_threshold_only():
    assert not observe("eyes_closed", scene(0, faces=(face(eyes=CLOSED_EYE_OPENNESS),))).active
    closed = observe("eyes_closed", scene(0, faces=(face(eyes=0.03),)))
    threshold = f"eye_openness < {CLOSED_EYE_OPENNESS:g}"
    assert closed.active and closed.evidence == {"eye_openness": 0.03, "limit": CLOSED_EYE_OPENNESS, "threshold": threshold}
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
    minimum = getattr(RulesConfig(), rule).min_score
    assert not observe(rule, scene(0, objects=(seen(label, minimum - 0.01),))).active
    assert not observe(rule, scene(0, objects=(seen("laptop", 0.99),))).active
    observation = observe(rule, scene(0, objects=(seen(label, minimum), seen(label, 0.7))))
    assert observation.active and observation.confidence == 0.7
    assert observation.evidence == {
        "label": label, "score": 0.7, "box": [400.0, 200.0, 60.0, 90.0], "detections": 2, "limit": minimum,
        "threshold": f"{label} score >= {minimum:g}",
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
    assert covered.evidence == {"brightness": 5.0, "contrast": 45.0, "brightness_limit": 20.0, "contrast_limit": 7.0,
                                "threshold": "brightness < 20 or contrast < 7"}
    assert covered.confidence == pytest.approx(0.875)
    assert observe("camera_frozen", picture(change=0.0)).evidence == {"change": 0.0, "limit": 0.005,
                                                                     "threshold": "change <= 0.005"}
    blurred = observe("camera_blurred", picture(sharpness=20.25))
    assert blurred.evidence == {"sharpness": 20.25, "contrast": 45.0, "relative_sharpness": 0.01, "limit": 0.02,
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
