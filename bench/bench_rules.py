"""The rules and the reports on this machine (run by hand, not by pytest).

    .venv/bin/python bench/bench_rules.py [--frames 20000] [--events 200]

Prints, in one run:
1. the rule engine's cost per frame (all rules, calibration and focus tallies) on a synthetic exam
   stream, next to the two face-count rules alone, and as a share of a 15 fps frame period;
2. the time to build and render one report of a one-hour session with --events events, per format.
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from daemon.capture.frame import FrameQuality
from daemon.config import RulesConfig
from daemon.events.conditions import multiple_faces, no_face
from daemon.events.model import Event, FocusCounts, Neutral, SessionMetrics
from daemon.events.rules import EVENT_TYPES, ConditionTracker, Instant, RuleEngine
from daemon.inference.analysis import Box, DetectedObject, Face, FrameAnalysis, Gaze, HeadPose
from daemon.report import build_report, events_csv, render_report_html, render_report_pdf
from daemon.store.records import SessionRecord

FPS = 15.0


def stream(count: int) -> list[FrameAnalysis]:
    """An exam at 15 fps: the candidate moves a little, looks away now and then, talks, leaves."""
    rng = random.Random(7)
    frames = []
    for i in range(count):
        t = i / FPS
        away = (i // 300) % 5 == 4
        faces = () if (i // 1000) % 7 == 6 else (Face(
            Box(200.0, 120.0, 160.0, 160.0), 0.95, (),
            pose=HeadPose(rng.gauss(25.0 if away else 2.0, 2.0), rng.gauss(5.0, 2.0), 0.0),
            gaze=Gaze(rng.gauss(2.0, 3.0), rng.gauss(8.0, 2.0), 0.0, 0.0),
            eye_openness=rng.gauss(0.33, 0.03), mouth_openness=abs(rng.gauss(0.05, 0.08)),
        ),)
        objects = (DetectedObject("person", 0.9, Box(120.0, 60.0, 320.0, 420.0)),)
        quality = FrameQuality(120.0 + rng.gauss(0, 2), 45.0, 200.0, 2.5, 0.03)
        frames.append(FrameAnalysis(i, t, 1.7e9 + t, 640, 480, faces, objects, t - t % 1.0, quality))
    return frames


def per_frame_us(feed, frames: list[FrameAnalysis]) -> float:
    started = time.perf_counter()
    for analysis in frames:
        feed(analysis)
    return (time.perf_counter() - started) / len(frames) * 1e6


def face_count_rules_only(rules: RulesConfig):
    ids = itertools.count()
    trackers = [
        (no_face, ConditionTracker("no_face", rules.no_face, lambda: str(next(ids)), "s")),
        (multiple_faces, ConditionTracker("multiple_faces", rules.multiple_faces, lambda: str(next(ids)), "s")),
    ]

    def feed(analysis: FrameAnalysis) -> None:
        t = Instant(analysis.mono, analysis.wall)
        for condition, tracker in trackers:
            tracker.update(t, condition(analysis))

    return feed


def session_report(events: int) -> dict:
    rng = random.Random(3)
    types = ["no_face", "looking_away", "talking", "phone", "eyes_closed", "camera_blurred"]
    session = SessionRecord("bench", "kiosk", "Ada Lovelace", "c-1", "exam", "", "completed", 0.0, 3600.0, 3600.0, 54000)
    starts = sorted(rng.uniform(0, 3590) for _ in range(events))
    evs = [
        Event(f"e{i}", "bench", rng.choice(types), "medium", s, s + rng.uniform(1, 10), 0.8,
              {"threshold": "x > 1", "value": 2.0})
        for i, s in enumerate(starts)
    ]
    metrics = SessionMetrics(FocusCounts(54000, 53000, 52000, 3000, 48000, 52000, 900), Neutral(2, 5, 1, 8, 45, 3.0))
    return build_report(session, evs, RulesConfig(), metrics)


def timed_ms(render, *args) -> float:
    started = time.perf_counter()
    render(*args)
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=20000)
    parser.add_argument("--events", type=int, default=200)
    args = parser.parse_args()
    rules = RulesConfig()
    frames = stream(args.frames)
    counter = itertools.count()
    engine = RuleEngine(rules, "s", lambda: str(next(counter)))
    full = per_frame_us(engine.update, frames)
    base = per_frame_us(face_count_rules_only(rules), frames)
    budget_us = 1e6 / FPS
    print(f"rule engine, {args.frames} frames of a synthetic exam stream:")
    print(f"  all {len(EVENT_TYPES) - 1} frame rules + calibration + focus  {full:7.1f} us/frame  ({100 * full / budget_us:.2f} % of a 15 fps frame)")
    print(f"  no_face + multiple_faces only             {base:7.1f} us/frame  (x{full / base:.1f} for all rules)")
    report = session_report(args.events)
    timed_ms(render_report_pdf, report)  # the first call imports fpdf2 and loads the font
    print(f"report of a 1 h session with {args.events} events:")
    print(f"  build (JSON data)  {timed_ms(session_report, args.events):7.1f} ms")
    print(f"  HTML               {timed_ms(render_report_html, report):7.1f} ms")
    print(f"  CSV                {timed_ms(events_csv, report):7.1f} ms")
    print(f"  PDF                {timed_ms(render_report_pdf, report):7.1f} ms")


if __name__ == "__main__":
    main()
