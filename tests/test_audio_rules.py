"""The voice rules (daemon/events/voice.py) in the rule engine: speech, talking and other_voice from the
AudioAnalysis stream fused with the mouth, the mouth-only talking rule when there is no sound, and
microphone_lost. Synthetic streams (tests/synthetic.py): one frame and one window of sound per 0.125 s."""

from __future__ import annotations

import itertools

from synthetic import PERIOD, at, face, mono, scene, wall

from daemon.config import RulesConfig
from daemon.events.model import EventChange
from daemon.events.rules import AUDIO_PRESENT_S, RuleEngine
from daemon.inference.analysis import AudioAnalysis

RULES = RulesConfig()


def sound(i: int, speech: bool) -> AudioAnalysis:
    return AudioAnalysis(mono(i), wall(i), PERIOD, -30.0 if speech else -62.0, 0.95 if speech else 0.02, speech)


def talking_face(i: int):
    """The candidate's mouth opening and closing, frame by frame: far past talking.min_mouth_std."""
    return face(mouth=0.35 if i % 2 else 0.02)


def run(frames: str, heard: str, start: int = 0) -> list[tuple[int, EventChange]]:
    """One character per 0.125 s. frames: 't' mouth moving, 's' mouth still, '-' no face, ' ' no frame.
    heard: '#' speech, '.' no speech, ' ' no sound."""
    counter = itertools.count()
    engine = RuleEngine(RULES, "s", lambda: f"e{next(counter)}")
    faces = {"t": lambda i: (talking_face(i),), "s": lambda i: (face(),), "-": lambda i: ()}
    changes = []
    for i, (f, h) in enumerate(itertools.zip_longest(frames, heard, fillvalue=" "), start):
        if f != " ":
            changes += [(i, c) for c in engine.update(scene(i, faces=faces[f](i)))]
        if h != " ":
            changes += [(i, c) for c in engine.update_audio(sound(i, h == "#"))]
    changes += [(-1, c) for c in engine.close(at(len(frames) + start))]
    return changes


def events(changes: list[tuple[int, EventChange]], kind: str = "start") -> dict[str, list[float]]:
    """Event type -> the starts (kind="start") or ends of its events, in seconds from frame 0."""
    found: dict[str, list[float]] = {}
    for _, change in changes:
        if change.kind == kind:
            value = change.event.start if kind == "start" else change.event.end
            found.setdefault(change.event.type, []).append(round(value - wall(0), 3))
    return found


def test_speech_over_a_still_mouth_is_another_voice():
    # 1 s of quiet, 3 s of speech, 2 s of quiet: the candidate's mouth still throughout.
    heard = "." * 8 + "#" * 24 + "." * 16
    changes = run("s" * len(heard), heard)
    assert events(changes) == {"speech": [1.0], "other_voice": [1.0]}
    assert events(changes, "end") == {"speech": [4.0], "other_voice": [4.0]}
    other = next(c.event for _, c in changes if c.event.type == "other_voice")
    assert other.severity == "high" and other.evidence["mouth"] == "not seen moving"


def test_speech_while_the_mouth_moves_is_the_candidate_talking():
    heard = "." * 8 + "#" * 40 + "." * 16
    frames = "s" * 8 + "t" * 40 + "s" * 16
    changes = run(frames, heard)
    assert "other_voice" not in events(changes)
    # From the frame whose mouth window shows the movement: the first open mouth, one frame in.
    assert events(changes)["talking"] == [1.0 + PERIOD]
    assert events(changes)["speech"] == [1.0]


def test_the_candidates_pauses_stay_their_own_speech_but_a_longer_stillness_is_another_voice():
    still = RULES.other_voice.still_s
    pause = int(still / PERIOD) - 2  # a pause shorter than still_s: still talking
    frames = "t" * 32 + "s" * pause + "t" * 16
    changes = run(frames, "#" * len(frames))
    assert "other_voice" not in events(changes)
    assert len(events(changes)["talking"]) == 1
    # The mouth stops moving while the voice goes on for 6 s: another voice, still_s after the mouth's last
    # movement, which its window (talking.window_s) shows until 8 frames after the last open mouth (frame 31).
    frames = "t" * 32 + "s" * 48
    changes = run(frames, "#" * len(frames))
    last_moved = 31 + int(RULES.talking.window_s / PERIOD)
    assert events(changes)["other_voice"] == [(last_moved + int(still / PERIOD) + 1) * PERIOD]
    assert events(changes, "end")["talking"] == [(last_moved + int(still / PERIOD) + 1) * PERIOD]


def test_speech_with_no_face_in_view_is_another_voice():
    changes = run("-" * 40, "#" * 40)
    assert events(changes) == {"speech": [0.0], "other_voice": [0.0], "no_face": [0.0]}


def test_with_sound_the_mouth_alone_is_not_talking_and_without_sound_it_is():
    moving = "t" * 48
    assert events(run(moving, "." * 48)) == {}  # heard nothing: a candidate mouthing is not talking
    # No microphone: the mouth-only rule (its window half full before it judges).
    assert events(run(moving, ""))["talking"] == [RULES.talking.window_s / 2]
    # The microphone goes silent for good (no more windows): AUDIO_PRESENT_S later the mouth rule is back.
    gone = int(AUDIO_PRESENT_S / PERIOD)
    changes = run("s" * 16 + moving, "." * 16)
    assert events(changes)["talking"] == [(16 + gone + 1) * PERIOD]


def test_microphone_lost_starts_when_the_microphone_stops_and_ends_when_it_is_back():
    counter = itertools.count()
    engine = RuleEngine(RULES, "s", lambda: f"e{next(counter)}")
    assert engine.update_microphone(at(0), True) == []
    (lost,) = engine.update_microphone(at(3), False)
    assert (lost.kind, lost.event.type, lost.event.start) == ("start", "microphone_lost", wall(3))
    assert engine.open_events == [lost.event]
    (back,) = engine.update_microphone(at(20), True)
    assert (back.kind, back.event.end) == ("end", wall(20))
