"""Event-by-event evaluation on the labelled clips (run by hand, not by pytest).

    .venv/bin/python bench/eval_clips.py [--media ../shared/media] [--before main] [--clip NAME] [--keep DIR]
                                         [--kiosk-default]

Replays every labelled clip (the `videos` of <media>/labels.json, completed by bench/clip_labels.json) through
`proctord replay`'s code path (daemon.replay.replay: the real models, rules, store and report) and scores the
session's events against the labels, per clip and per event type:

- TP / FP / miss: an event overlapping a labelled span (widened by the uncertain spans that touch it) is a
  true positive, one per span; any other event is a false positive, unless it lies wholly inside uncertain
  spans (ignored). A labelled span the event type cannot publish (shorter than its rule's
  max(onset_s, min_duration_s): a glance) is not expected: an event on it is a false positive, no event
  is no miss.
- onset / end: the matched event's start and end minus the span's, in seconds.
- FA s/h: seconds of false-positive events per hour of video, on clips where nothing is expected.

With --before REF, the same clips are also replayed by the code of git revision REF (its own defaults,
run from a `git archive` of it), and both tables print in one run. The label format is in the README
("Clip benchmark").
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from daemon.config import Config
from daemon.replay import replay

OVERLAY = REPO / "bench" / "clip_labels.json"
Span = tuple[float, float]

# Replays one clip with the code of an exported revision and prints its events as JSON (start/end offsets).
_BEFORE_RUNNER = """
import json, sys
from pathlib import Path
from daemon.config import Config, PathsConfig
from daemon.replay import replay
report = replay(Path(sys.argv[1]), Config(paths=PathsConfig(models_dir=sys.argv[2])), Path(sys.argv[3])).report
started = report["session"]["started_at"]
print(json.dumps([[e["type"], e["start"] - started, e["end"] - started] for e in report["events"]]))
"""


@dataclass(frozen=True, slots=True)
class Clip:
    path: str
    duration_s: float
    spans: dict[str, list[Span]]  # event type -> labelled spans
    uncertain: dict[str | None, list[Span]]  # event type (None: every type) -> spans
    config: dict = field(default_factory=dict)  # config tables the clip's kiosk ran with
    expect: str = ""


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    miss: int = 0
    fp_s: float = 0.0
    onset_errors: list[float] = field(default_factory=list)
    end_errors: list[float] = field(default_factory=list)


def load_clips(media: Path, overlay_path: Path = OVERLAY) -> list[Clip]:
    """Every video of labels.json, each completed by the overlay's entry (labels.json's keys win; for
    event_spans_s, its event types do)."""
    videos = json.loads((media / "labels.json").read_text())["videos"]
    overlay = json.loads(overlay_path.read_text()) if overlay_path.is_file() else {}
    clips = []
    for path, labels in videos.items():
        extra = overlay.get(path, {})
        entry = extra | labels
        # Spans by event type merge: the overlay may label a type labels.json does not mention.
        entry["event_spans_s"] = extra.get("event_spans_s", {}) | labels.get("event_spans_s", {})
        uncertain = entry.get("uncertain_s", [])
        clips.append(Clip(
            path=path,
            duration_s=float(entry.get("duration_s", 0.0)),
            spans={kind: [tuple(span) for span in spans] for kind, spans in entry.get("event_spans_s", {}).items()},
            uncertain=(
                {kind: [tuple(span) for span in spans] for kind, spans in uncertain.items()}
                if isinstance(uncertain, dict) else {None: [tuple(span) for span in uncertain]}
            ),
            config=entry.get("config", {}),
            expect=entry.get("expect", ""),
        ))
    return clips


def shortest_event_s(config: Config, event_type: str) -> float:
    timing = getattr(config.rules, event_type, None)
    return max(timing.onset_s, timing.min_duration_s) if timing is not None else 0.0


def score(clip: Clip, events: list[tuple[str, float, float]], config: Config) -> dict[str, Score]:
    """Scores by event type (every type labelled or raised on this clip)."""
    scores: dict[str, Score] = {}
    for kind in sorted({k for k, _, _ in events} | set(clip.spans)):
        found = sorted((start, end) for k, start, end in events if k == kind)
        unsure = clip.uncertain.get(None, []) + clip.uncertain.get(kind, [])
        expected = [s for s in clip.spans.get(kind, []) if s[1] - s[0] >= shortest_event_s(config, kind) - 1e-6]
        s = scores[kind] = Score()
        matched: set[int] = set()
        for start, end in found:
            hit = next((i for i, span in enumerate(expected) if i not in matched and _overlaps((start, end), _widened(span, unsure))), None)
            if hit is not None:
                matched.add(hit)
                s.tp += 1
                s.onset_errors.append(start - expected[hit][0])
                s.end_errors.append(end - expected[hit][1])
            elif not _inside((start, end), unsure):
                s.fp += 1
                s.fp_s += end - start
        s.miss = len(expected) - len(matched)
    return scores


def _overlaps(a: Span, b: Span) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def _widened(span: Span, unsure: list[Span]) -> Span:
    start, end = span
    for u in unsure:
        if u[0] <= start <= u[1] + 1e-6:
            start = min(start, u[0])
        if u[0] - 1e-6 <= end <= u[1]:
            end = max(end, u[1])
    return start, end


def _inside(span: Span, unsure: list[Span]) -> bool:
    return any(u[0] - 1e-6 <= span[0] and span[1] <= u[1] + 1e-6 for u in unsure)


def clip_config(base: dict, clip: Clip) -> Config:
    tables = {name: dict(base.get(name, {})) for name in base}
    for name, table in clip.config.items():
        merged = tables.setdefault(name, {})
        for key, value in table.items():
            merged[key] = value
    return Config.model_validate(tables)


def replay_now(video: Path, config: Config, out: Path) -> list[tuple[str, float, float]]:
    report = replay(video, config, out).report
    started = report["session"]["started_at"]
    return [(e["type"], e["start"] - started, e["end"] - started) for e in report["events"]]


def replay_at(tree: Path, video: Path, models_dir: Path, out: Path) -> list[tuple[str, float, float]]:
    env = os.environ | {"PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, "-c", _BEFORE_RUNNER, str(video), str(models_dir), str(out)],
                          cwd=tree, env=env, capture_output=True, text=True, check=True)
    return [tuple(event) for event in json.loads(done.stdout.strip().splitlines()[-1])]


def export_revision(revision: str, into: Path) -> Path:
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", revision], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def table(title: str, rows: list[tuple[Clip, dict[str, Score]]]) -> str:
    lines = [title, f"{'clip':<44} {'event':<17} {'TP':>3} {'FP':>3} {'miss':>4} {'onset s':>8} {'end s':>7} {'FP s':>6} {'FA s/h':>7}"]
    totals: dict[str, Score] = {}
    for clip, scores in rows:
        quiet = not any(score.tp + score.miss for score in scores.values())
        if not scores:
            lines.append(f"{clip.path:<44} {'(no event)':<17} {0:>3} {0:>3} {0:>4} {'':>8} {'':>7} {0.0:>6.1f} {0.0:>7.0f}")
        for kind, s in scores.items():
            fa = f"{s.fp_s / clip.duration_s * 3600:.0f}" if quiet and clip.duration_s else ""
            lines.append(f"{clip.path:<44} {kind:<17} {s.tp:>3} {s.fp:>3} {s.miss:>4} {_mean(s.onset_errors):>8} "
                         f"{_mean(s.end_errors):>7} {s.fp_s:>6.1f} {fa:>7}")
            total = totals.setdefault(kind, Score())
            total.tp, total.fp, total.miss = total.tp + s.tp, total.fp + s.fp, total.miss + s.miss
            total.fp_s += s.fp_s
            total.onset_errors += s.onset_errors
            total.end_errors += s.end_errors
    quiet_hours = sum(c.duration_s for c, scores in rows if not any(s.tp + s.miss for s in scores.values())) / 3600
    quiet_fp_s = sum(s.fp_s for c, scores in rows if not any(x.tp + x.miss for x in scores.values()) for s in scores.values())
    for kind, s in totals.items():
        lines.append(f"{'all clips':<44} {kind:<17} {s.tp:>3} {s.fp:>3} {s.miss:>4} {_mean(s.onset_errors):>8} "
                     f"{_mean(s.end_errors):>7} {s.fp_s:>6.1f}")
    lines.append(f"false alarms on the clips where nothing is expected: {quiet_fp_s:.1f} s in "
                 f"{quiet_hours * 3600:.1f} s of video ({quiet_fp_s / quiet_hours if quiet_hours else 0:.0f} s/h)")
    return "\n".join(lines)


def _mean(values: list[float]) -> str:
    return f"{sum(values) / len(values):+.2f}" if values else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--media", type=Path, default=REPO.parent / "shared" / "media")
    parser.add_argument("--before", metavar="REF", help="also replay with the code of this git revision")
    parser.add_argument("--clip", help="only clips whose path contains this")
    parser.add_argument("--keep", type=Path, help="keep the replays' reports in this directory")
    parser.add_argument("--kiosk-default", action="store_true",
                        help="replay every clip with the default config, ignoring the set-up its label gives")
    args = parser.parse_args(argv)
    clips = [c for c in load_clips(args.media) if not args.clip or args.clip in c.path]
    base = {"paths": {"models_dir": str(Config().models_dir)}}
    with tempfile.TemporaryDirectory() as scratch:
        out = args.keep or Path(scratch)
        tree = export_revision(args.before, Path(scratch) / "tree") if args.before else None
        after, before = [], []
        for clip in clips:
            video = args.media / clip.path
            config = Config.model_validate(base) if args.kiosk_default else clip_config(base, clip)
            slug = clip.path.replace("/", "_")
            after.append((clip, score(clip, replay_now(video, config, out / "after" / slug), config)))
            if tree:
                events = replay_at(tree, video, Path(base["paths"]["models_dir"]), out / "before" / slug)
                before.append((clip, score(clip, events, Config.model_validate(base))))
            print(f"replayed {clip.path}", file=sys.stderr, flush=True)
    if before:
        print(table(f"BEFORE ({args.before}, its defaults)", before), end="\n\n")
    setup = "the default config for every clip" if args.kiosk_default else "each clip's kiosk config from the labels"
    print(table(f"AFTER (this tree, {setup})", after))
    return 0


if __name__ == "__main__":
    sys.exit(main())
