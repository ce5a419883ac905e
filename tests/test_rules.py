"""Tests for the rule engine (daemon.events.rules) on synthetic FrameAnalysis streams (tests/synthetic.py).

The state machine tests run once per frame-based event type: each type has a frame on which its
condition holds and one on which it does not, and nothing else differs between the two.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable

import pytest
from synthetic import FPS, PERIOD, WALL_OFFSET, at, face, frame, mono, scene, seen, wall

from daemon.capture.frame import FrameQuality
from daemon.config import RulesConfig, RuleTiming
from daemon.events.model import EventChange
from daemon.events.rules import EVENT_TYPES, ConditionTracker, Instant, Observation, RuleEngine
from daemon.inference.analysis import Box, FrameAnalysis

SESSION = "session-1"

# onset 1.0 s = 8 frame periods, release 0.5 s = 4 frame periods.
TIMING = RuleTiming(onset_s=1.0, release_s=0.5, severity="medium")
ONSET_FRAMES = 8
RELEASE_FRAMES = 4

# For each frame-based event type: a frame on which its condition holds, and one on which it does not.
# (talking needs movement over a window, not one frame: it has its own tests.)
HOLDS: dict[str, Callable[..., FrameAnalysis]] = {
    "no_face": lambda i, **kw: scene(i, faces=(), **kw),
    "multiple_faces": lambda i, **kw: scene(i, faces=(face(0.9), face(0.8, box=Box(400.0, 60.0, 80.0, 80.0))), **kw),
    # 60 degrees: beyond the limit even from a neutral learnt on this frame (clamped to 5 degrees).
    "looking_away": lambda i, **kw: scene(i, faces=(face(yaw=60.0),), **kw),
    "looking_down": lambda i, **kw: scene(i, faces=(face(pitch=-60.0),), **kw),
    "eyes_closed": lambda i, **kw: scene(i, faces=(face(eyes=0.02),), **kw),
    "phone": lambda i, **kw: scene(i, objects=(seen("cell phone"),), **kw),
    "book": lambda i, **kw: scene(i, objects=(seen("book"),), **kw),
    "extra_person": lambda i, **kw: scene(i, objects=(seen("person"),), **kw),
    "camera_covered": lambda i, **kw: scene(i, quality=FrameQuality(4.0, 2.0, 1.0, 0.5, 0.9), **kw),
    "camera_blurred": lambda i, **kw: scene(i, quality=FrameQuality(120.0, 45.0, 3.0, 3.0, 0.02), **kw),
    "camera_frozen": lambda i, **kw: scene(i, quality=FrameQuality(120.0, 45.0, 250.0, 0.0, 0.02), **kw),
    "camera_moved": lambda i, **kw: scene(i, quality=FrameQuality(120.0, 45.0, 250.0, 3.0, 0.8), **kw),
}
FRAME_RULES = sorted(HOLDS)
VOICE_EVENTS = {"speech", "other_voice", "microphone_lost"}
TIMING_TABLE = {"onset_s": 1.0, "release_s": 0.5, "min_duration_s": 0.0, "severity": "medium"}


def clip(rule: str, pattern: str) -> list[FrameAnalysis]:
    """One frame per character: '#' the rule's condition holds, '.' it does not."""
    return [HOLDS[rule](i) if c == "#" else scene(i) for i, c in enumerate(pattern)]


def id_factory(prefix: str = "ev"):
    counter = itertools.count()
    return lambda: f"{prefix}-{next(counter)}"


def engine(rules: RulesConfig | None = None) -> RuleEngine:
    return RuleEngine(rules or RulesConfig(), SESSION, id_factory())


def custom_rules() -> RulesConfig:
    """Every rule with TIMING; calibration on the first frame (the attention rules are live from frame 0), its
    neutral clamped to 5 degrees from the screen's centre and a 10-degree margin, so that a first frame
    turned away leaves a frame at 0 within the limits."""
    tables = {name: TIMING_TABLE for name in EVENT_TYPES}
    calibration = {"duration_s": 0.0, "min_samples": 1, "max_neutral_deg": 5.0}
    return RulesConfig.model_validate(tables | {"calibration": calibration, "screen": {"margin_deg": 10.0}})


def run(rule_engine: RuleEngine, frames: list[FrameAnalysis]) -> list[tuple[int, EventChange]]:
    """Feed every frame; return (frame index, change) for each change, in order."""
    return [(f.seq, change) for f in frames for change in rule_engine.update(f)]


def tracker(timing: RuleTiming = TIMING) -> ConditionTracker:
    return ConditionTracker("no_face", timing, id_factory(), SESSION)


def drive(condition: ConditionTracker, pattern: str, first: int = 0) -> list[tuple[int, EventChange]]:
    """Feed one observation per character ('#' active, '.' not) from frame `first` on."""
    changes = []
    for i, c in enumerate(pattern, start=first):
        observation = Observation(True, 1.0, {"faces": 0}) if c == "#" else Observation(False)
        if (change := condition.update(at(i), observation)) is not None:
            changes.append((i, change))
    return changes


def kinds(changes: list[tuple[int, EventChange]]) -> list[tuple[int, str]]:
    return [(i, change.kind) for i, change in changes]


# --- ConditionTracker ------------------------------------------------------------------------------


def test_tracker_single_active_frame_raises_nothing():
    assert drive(tracker(), ".#" + "." * 20) == []


def test_tracker_flicker_faster_than_onset_raises_nothing():
    assert drive(tracker(), "#." * 40) == []
    assert drive(tracker(), ("#" * ONSET_FRAMES + ".") * 5) == []


def test_tracker_starts_exactly_at_onset_backdated_to_first_active_frame():
    condition = tracker()
    assert drive(condition, "..." + "#" * ONSET_FRAMES) == []  # held for 0.875 s: not yet

    changes = drive(condition, "#", first=3 + ONSET_FRAMES)  # held for exactly 1.0 s

    assert kinds(changes) == [(3 + ONSET_FRAMES, "start")]
    event = changes[0][1].event
    assert event.start == wall(3)
    assert event.end is None
    assert condition.open_event == event


def test_tracker_zero_onset_starts_on_the_first_active_frame():
    timing = RuleTiming(onset_s=0, release_s=0.5, severity="low")
    assert kinds(drive(tracker(timing), "..#")) == [(2, "start")]


def test_tracker_gap_shorter_than_release_keeps_one_event():
    gap = "." * (RELEASE_FRAMES - 1)
    changes = drive(tracker(), "#" * 12 + gap + "#" * 12 + "." * 10)

    assert kinds(changes) == [(ONSET_FRAMES, "start"), (27 + RELEASE_FRAMES, "end")]
    assert changes[0][1].event.id == changes[1][1].event.id


def test_tracker_ends_exactly_at_release_backdated_to_first_inactive_frame():
    condition = tracker()
    drive(condition, "#" * 12)
    assert drive(condition, "." * RELEASE_FRAMES, first=12) == []  # gone for 0.375 s: not yet

    changes = drive(condition, ".", first=12 + RELEASE_FRAMES)  # gone for exactly 0.5 s

    assert kinds(changes) == [(12 + RELEASE_FRAMES, "end")]
    event = changes[0][1].event
    assert (event.start, event.end) == (wall(0), wall(12))
    assert event.duration == 12 * PERIOD
    assert condition.open_event is None


def test_tracker_needs_a_full_onset_again_after_an_event_ended():
    condition = tracker()
    drive(condition, "#" * 10 + "." * 5)
    assert drive(condition, "#" * ONSET_FRAMES, first=15) == []
    assert kinds(drive(condition, "#", first=15 + ONSET_FRAMES)) == [(15 + ONSET_FRAMES, "start")]


def test_tracker_close_ends_an_open_event_at_the_given_instant():
    condition = tracker()
    drive(condition, "#" * 12)

    change = condition.close(at(20))

    assert change.kind == "end"
    assert (change.event.start, change.event.end) == (wall(0), wall(20))
    assert condition.open_event is None
    assert condition.close(at(21)) is None


def test_tracker_close_while_releasing_ends_when_the_condition_went_away():
    condition = tracker()
    drive(condition, "#" * 12 + "." * (RELEASE_FRAMES - 1))

    change = condition.close(at(40))

    assert change.kind == "end"
    assert change.event.end == wall(12)


@pytest.mark.parametrize("pattern", ["", "....", "###"], ids=["idle", "idle-after-frames", "pending"])
def test_tracker_close_with_nothing_open_returns_none(pattern):
    condition = tracker()
    drive(condition, pattern)
    assert condition.close(at(10)) is None


def test_tracker_close_while_pending_discards_the_pending_onset():
    condition = tracker()
    drive(condition, "#" * (ONSET_FRAMES - 1))
    condition.close(at(ONSET_FRAMES - 1))
    assert drive(condition, "#", first=ONSET_FRAMES) == []


def test_tracker_peak_and_evidence_follow_the_most_confident_observation():
    condition = tracker()
    confidences = [0.4, 0.7, 0.5] + [0.6] * ONSET_FRAMES + [0.9, 0.3]
    changes = []
    for i, confidence in enumerate(confidences):
        change = condition.update(at(i), Observation(True, confidence, {"seen": confidence}))
        changes += [change] if change else []
    changes.append(condition.close(at(len(confidences))))

    start, end = (change.event for change in changes)
    assert (start.peak_confidence, start.evidence) == (0.7, {"seen": 0.7})
    assert (end.peak_confidence, end.evidence) == (0.9, {"seen": 0.9})


def test_onset_is_not_a_frame_late_at_10_fps():
    """0.1 s steps do not add up exactly (2.3 - 0.3 < 2.0); the event still starts on the 2 s frame."""
    condition = ConditionTracker("no_face", RuleTiming(onset_s=2.0, release_s=1.0, severity="high"), lambda: "e", "s")
    started = [
        i for i in range(3, 30)
        if condition.update(Instant(i / 10, i / 10), Observation(True, 1.0))
    ]
    assert started == [23]


def test_tracker_takes_event_ids_from_the_injected_factory():
    condition = tracker()
    changes = drive(condition, ("#" * 10 + "." * 5) * 2)

    assert [(change.kind, change.event.id) for _, change in changes] == [
        ("start", "ev-0"), ("end", "ev-0"), ("start", "ev-1"), ("end", "ev-1"),
    ]
    assert {change.event.session_id for _, change in changes} == {SESSION}
    assert {change.event.severity for _, change in changes} == {"medium"}


@pytest.mark.parametrize("step", [3600.0, -3600.0], ids=["forward", "backward"])
def test_tracker_measures_onset_and_release_on_mono_when_wall_steps(step):
    condition = tracker()

    def observe(i: int, active: bool, wall_step: float) -> EventChange | None:
        return condition.update(Instant(mono(i), wall(i) + wall_step), Observation(active, 1.0))

    starts = [i for i in range(12) if observe(i, True, step if i >= 4 else 0.0)]
    ends = [i for i in range(12, 30) if observe(i, False, step)]

    assert starts == [ONSET_FRAMES]
    assert ends == [12 + RELEASE_FRAMES]


# --- ConditionTracker: minimum duration ------------------------------------------------------------

# onset 1.0 s (8 frames), release 0.5 s (4 frames), min duration 2.0 s (16 frames).
LASTING = RuleTiming(onset_s=1.0, release_s=0.5, min_duration_s=2.0, severity="medium")
MIN_FRAMES = 16


def test_tracker_event_shorter_than_min_duration_is_never_published():
    condition = tracker(LASTING)
    assert drive(condition, "#" * (MIN_FRAMES - 1) + "." * 20) == []
    assert condition.open_event is None


def test_tracker_publishes_once_the_event_has_lasted_min_duration_backdated_to_its_start():
    changes = drive(tracker(LASTING), "..." + "#" * (MIN_FRAMES + 1) + "." * (RELEASE_FRAMES + 1))

    assert kinds(changes) == [(3 + MIN_FRAMES, "start"), (3 + MIN_FRAMES + 1 + RELEASE_FRAMES, "end")]
    start, end = (change.event for _, change in changes)
    assert (start.start, end.start, end.end) == (wall(3), wall(3), wall(3 + MIN_FRAMES + 1))
    assert end.duration >= LASTING.min_duration_s


def test_tracker_min_duration_counts_bridged_gaps():
    # Onset reached at frame 8, a 3-frame gap (shorter than release), back at 13: 2.0 s after the start
    # falls on frame 16, where the condition holds.
    pattern = "#" * 10 + "." * 3 + "#" * 6 + "." * 10
    changes = drive(tracker(LASTING), pattern)

    assert kinds(changes) == [(MIN_FRAMES, "start"), (19 + RELEASE_FRAMES, "end")]
    assert changes[1][1].event.end == wall(19)


def test_tracker_min_duration_reached_during_a_gap_publishes_when_the_condition_is_back():
    pattern = "#" * 14 + "." * 3 + "#" * 4 + "." * 10  # 2.0 s after the start falls in the gap
    changes = drive(tracker(LASTING), pattern)
    assert kinds(changes) == [(17, "start"), (21 + RELEASE_FRAMES, "end")]


def test_tracker_min_duration_still_needs_the_onset_unbroken():
    # Long in total, but never 1 s without a break: no event can begin.
    assert drive(tracker(LASTING), ("#" * (ONSET_FRAMES - 1) + ".") * 10) == []


def test_tracker_close_before_min_duration_drops_the_event():
    condition = tracker(LASTING)
    drive(condition, "#" * (MIN_FRAMES - 2))
    assert condition.close(at(MIN_FRAMES - 2)) is None
    assert drive(condition, "#" * 3, first=MIN_FRAMES - 2) == []  # a fresh onset is needed


def test_tracker_min_duration_below_onset_publishes_at_onset():
    timing = RuleTiming(onset_s=1.0, release_s=0.5, min_duration_s=0.5, severity="low")
    assert kinds(drive(tracker(timing), "#" * (ONSET_FRAMES + 1))) == [(ONSET_FRAMES, "start")]


@pytest.mark.parametrize("seed", range(40))
def test_tracker_invariants_on_random_streams(seed):
    """Whatever the stream: every published event ends, ends after it starts, lasts at least
    min_duration, starts at onset or later, never overlaps the next one, and starts and ends on frames
    where the condition changed."""
    rng = random.Random(seed)
    timing = RuleTiming(
        onset_s=rng.choice([0.0, 0.25, 1.0]), release_s=rng.choice([0.0, 0.25, 0.5]),
        min_duration_s=rng.choice([0.0, 1.0, 2.5]), severity="low",
    )
    runs = [rng.choice("#.") * rng.randint(1, 30) for _ in range(20)]
    pattern = "".join(runs)
    condition = tracker(timing)
    changes = drive(condition, pattern)
    if (closing := condition.close(at(len(pattern)))) is not None:
        changes.append((len(pattern), closing))

    assert [change.kind for _, change in changes] == ["start", "end"] * (len(changes) // 2)
    edges = {wall(0)} | {wall(i) for i in range(1, len(pattern) + 1) if i == len(pattern) or pattern[i] != pattern[i - 1]}
    previous_end = None
    for (started_at, start), (_, end) in zip(changes[::2], changes[1::2], strict=True):
        event = end.event
        assert start.event.id == event.id and start.event.start == event.start
        assert event.duration >= timing.min_duration_s - 1e-6
        assert mono(started_at) - (event.start - WALL_OFFSET) >= timing.onset_s - 1e-6
        assert event.start in edges and event.end in edges
        assert previous_end is None or event.start >= previous_end
        previous_end = event.end



# --- RuleEngine, per rule --------------------------------------------------------------------------


@pytest.fixture(params=FRAME_RULES)
def rule(request) -> str:
    return request.param


def test_every_event_type_has_a_rule_table_and_a_state_machine_test():
    # talking and repeated_glances need a sequence of frames, not one, and identity_mismatch a reference
    # first: they have their own tests (identity_mismatch in test_identity.py); the voice rules read the
    # sound (tests/test_audio_rules.py).
    assert set(FRAME_RULES) | {"talking", "repeated_glances", "camera_lost", "identity_mismatch"} | VOICE_EVENTS \
        == set(EVENT_TYPES)
    assert set(EVENT_TYPES) == {
        name for name in RulesConfig.model_fields if name not in {"screen", "calibration", "severity_factors"}
    }


def test_engine_ordinary_exam_raises_nothing():
    assert run(engine(custom_rules()), [scene(i) for i in range(100)]) == []


def test_each_rule_feeds_its_own_condition_to_the_state_machine(rule):
    """The state machine itself is tested once, on ConditionTracker above: here each rule's condition holds
    on its own frames only, and its event starts at onset and ends after release, backdated, with its type."""
    pattern = "..#.." + "#" * 12 + "." * (RELEASE_FRAMES + 1)
    changes = run(engine(custom_rules()), clip(rule, pattern))

    assert kinds(changes) == [(5 + ONSET_FRAMES, "start"), (17 + RELEASE_FRAMES, "end")]
    assert [(c.event.type, c.event.start, c.event.end) for _, c in changes] == [
        (rule, wall(5), None), (rule, wall(5), wall(17)),
    ]


def test_engine_lists_open_events_and_close_ends_them_at_the_given_instant():
    rule_engine = engine(custom_rules())
    [(_, start)] = run(rule_engine, clip("phone", "#" * 12))
    assert rule_engine.open_events == [start.event]

    changes = rule_engine.close(at(30))

    assert [(c.kind, c.event.type, c.event.end) for c in changes] == [("end", "phone", wall(30))]
    assert rule_engine.open_events == []
    assert rule_engine.close(at(31)) == []


def test_camera_lost_starts_and_ends_at_the_instants_capture_reports():
    """Capture reports a loss at the last frame before the gap and the return at the first frame after it
    (their stamps, found timeout_s later); the default camera_lost (onset and release 0) keeps them."""
    rule_engine = engine()
    last_frame, first_frame_back = at(10), at(31)

    [start] = rule_engine.update_camera(last_frame, online=False)
    assert rule_engine.update_camera(at(30), online=False) == []
    [end] = rule_engine.update_camera(first_frame_back, online=True)

    assert (start.kind, end.kind, end.event.type) == ("start", "end", "camera_lost")
    assert (end.event.start, end.event.end) == (wall(10), wall(31))
    assert end.event.severity == "high"


def test_engine_stamps_wall_time_but_times_on_mono_when_the_wall_clock_steps():
    step = 7200.0
    frames = [HOLDS["no_face"](i, wall_step=step if i >= 5 else 0.0) for i in range(12)]
    frames += [scene(i, wall_step=step) for i in range(12, 20)]

    changes = run(engine(custom_rules()), frames)

    assert kinds(changes) == [(ONSET_FRAMES, "start"), (12 + RELEASE_FRAMES, "end")]
    assert changes[1][1].event.start == wall(0)  # stamped before the step
    assert changes[1][1].event.end == wall(12) + step  # stamped after it


# --- RuleEngine, rule specifics and configuration --------------------------------------------------


def test_default_rules_no_face_after_two_seconds_with_high_severity():
    changes = run(engine(), clip("no_face", "#" * (2 * FPS + 1)))

    assert kinds(changes) == [(2 * FPS, "start")]
    event = changes[0][1].event
    assert (event.type, event.severity, event.start, event.session_id) == ("no_face", "high", wall(0), SESSION)
    assert event.evidence["faces"] == 0
    assert event.peak_confidence == 1.0


def test_default_rules_multiple_faces_after_one_second():
    assert run(engine(), clip("multiple_faces", "#" * FPS)) == []
    assert kinds(run(engine(), clip("multiple_faces", "#" * (FPS + 1)))) == [(FPS, "start")]


def test_default_rules_end_after_one_second_clear():
    pattern = "#" * (2 * FPS + 4) + "." * (FPS + 1)
    changes = run(engine(), clip("no_face", pattern))
    assert kinds(changes) == [(2 * FPS, "start"), (3 * FPS + 4, "end")]


def test_one_face_raises_no_event():
    assert run(engine(custom_rules()), clip("no_face", "." * 100)) == []


def test_multiple_faces_peak_is_the_highest_second_best_score():
    scores = [(0.9, 0.6)] * 3 + [(0.95, 0.7, 0.8)] + [(0.99, 0.65)] * 10 + [(0.9,)] * 5
    frames = [frame(i, s) for i, s in enumerate(scores)]

    changes = run(engine(custom_rules()), frames)

    assert [c.kind for _, c in changes] == ["start", "end"]
    assert changes[0][1].event.peak_confidence == 0.8
    assert changes[1][1].event.peak_confidence == 0.8


def test_multiple_faces_evidence_names_the_face_count():
    frames = [frame(i, (0.9, 0.8, 0.7)) for i in range(ONSET_FRAMES + 1)]
    [(_, start)] = run(engine(custom_rules()), frames)
    assert start.event.evidence["faces"] == 3


def test_custom_rules_set_timing_and_severity_per_rule():
    rules = RulesConfig(
        no_face=RuleTiming(onset_s=0.5, release_s=0.25, severity="low"),
        multiple_faces=RuleTiming(onset_s=3.0, release_s=1.0, severity="medium"),
    )

    no_face = run(engine(rules), clip("no_face", "#" * 6 + "." * 3))
    multiple = run(engine(rules), clip("multiple_faces", "#" * 20))

    assert [(i, c.kind, c.event.severity) for i, c in no_face] == [(4, "start", "low"), (8, "end", "low")]
    assert multiple == []


def test_rules_from_a_partial_table_keep_their_other_defaults():
    rules = RulesConfig.model_validate({"no_face": {"onset_s": 0.5}})
    changes = run(engine(rules), clip("no_face", "#" * 5 + "." * (FPS + 1)))
    assert [(i, c.kind, c.event.severity) for i, c in changes] == [(4, "start", "high"), (5 + FPS, "end", "high")]


def test_rules_hand_over_from_no_face_to_multiple_faces_with_ids_from_the_injected_factory():
    frames = [frame(i) for i in range(12)] + [frame(i, (0.9, 0.8)) for i in range(12, 30)]

    changes = run(RuleEngine(custom_rules(), SESSION, id_factory("custom")), frames)

    assert [(i, c.event.type, c.kind, c.event.id) for i, c in changes] == [
        (ONSET_FRAMES, "no_face", "start", "custom-0"),
        (12 + RELEASE_FRAMES, "no_face", "end", "custom-0"),
        (12 + ONSET_FRAMES, "multiple_faces", "start", "custom-1"),
    ]
