"""The clip benchmark's scoring (bench/eval_clips.py) and its reading of the shared labels."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from daemon.config import Config

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("eval_clips", REPO / "bench" / "eval_clips.py")
eval_clips = sys.modules["eval_clips"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(eval_clips)

CONFIG = Config()


def clip(spans: dict, uncertain=(), duration: float = 30.0):
    labels = {"videos": {"a.mp4": {"duration_s": duration, "event_spans_s": spans, "uncertain_s": uncertain}}}
    return labels


def load(tmp_path: Path, labels: dict, overlay: dict | None = None) -> list:
    (tmp_path / "labels.json").write_text(json.dumps(labels))
    (tmp_path / "overlay.json").write_text(json.dumps(overlay or {}))
    return eval_clips.load_clips(tmp_path, tmp_path / "overlay.json")


def test_an_event_on_a_labelled_span_is_a_true_positive_with_its_onset_and_end_errors(tmp_path):
    [c] = load(tmp_path, clip({"looking_away": [[5.0, 10.0]]}))
    [s] = eval_clips.score(c, [("looking_away", 5.5, 9.75)], CONFIG).values()
    assert (s.tp, s.fp, s.miss) == (1, 0, 0)
    assert s.onset_errors == [0.5] and s.end_errors == [-0.25]


def test_a_second_event_on_one_span_and_an_event_elsewhere_are_false_positives(tmp_path):
    [c] = load(tmp_path, clip({"looking_away": [[5.0, 10.0]]}))
    scores = eval_clips.score(c, [("looking_away", 5.5, 7.0), ("looking_away", 8.0, 9.0), ("phone", 20.0, 23.0)], CONFIG)
    assert (scores["looking_away"].tp, scores["looking_away"].fp) == (1, 1)
    assert (scores["phone"].fp, scores["phone"].fp_s) == (1, 3.0)


def test_a_glance_shorter_than_the_rule_can_publish_is_not_expected(tmp_path):
    # nocheat_front's 0.7 s head turn: looking_away publishes after 2 s, so no event is the right answer.
    [c] = load(tmp_path, clip({"looking_away": [[1.9, 2.6]]}, [[1.8, 1.9], [2.6, 2.8]]))
    assert eval_clips.score(c, [], CONFIG)["looking_away"].miss == 0
    flagged = eval_clips.score(c, [("looking_away", 1.9, 4.0)], CONFIG)["looking_away"]
    assert (flagged.tp, flagged.fp) == (0, 1)


def test_uncertain_spans_widen_a_label_and_hide_events_wholly_inside_them(tmp_path):
    [c] = load(tmp_path, clip({"looking_away": [[5.0, 10.0]]}, {"looking_away": [[4.0, 5.0], [12.0, 14.0]]}))
    scores = eval_clips.score(c, [("looking_away", 4.2, 4.9), ("looking_away", 12.5, 13.5)], CONFIG)["looking_away"]
    assert (scores.tp, scores.fp, scores.miss) == (1, 0, 0)  # the first touches the widened span


def test_the_overlay_completes_an_entry_and_the_labels_own_keys_win(tmp_path):
    labels = {"videos": {"a.mp4": {"duration_s": 12.0, "event_spans_s": {"phone": []}}, "b.mp4": {"duration_s": 8.0}}}
    overlay = {"a.mp4": {"duration_s": 99.0, "event_spans_s": {"phone": [[1.0, 5.0]], "no_face": [[0.0, 12.0]]},
                         "config": {"rules": {"screen": {"preset": "laptop_14in"}}}},
               "b.mp4": {"event_spans_s": {"phone": [[1.0, 5.0]]}}}
    a, b = load(tmp_path, labels, overlay)
    assert a.duration_s == 12.0 and a.config["rules"]["screen"]["preset"] == "laptop_14in"
    assert a.spans == {"phone": [], "no_face": [(0.0, 12.0)]}  # by event type, the labels' own win
    assert b.spans == {"phone": [(1.0, 5.0)]}
    config = eval_clips.clip_config({"paths": {"models_dir": str(tmp_path)}}, a)
    assert config.rules.screen.preset == "laptop_14in" and config.paths.models_dir == str(tmp_path)


@pytest.mark.skipif(not (REPO.parent / "shared" / "media" / "labels.json").is_file(), reason="needs ../shared/media")
def test_every_shared_clip_is_read_with_a_duration():
    clips = eval_clips.load_clips(REPO.parent / "shared" / "media")
    assert {c.path for c in clips} >= {"videos/autooep/nocheat_front.avi", "videos/headtrackr/capture4.mp4"}
    assert all(c.duration_s > 0 for c in clips)
    front = next(c for c in clips if c.path.endswith("nocheat_front.avi"))
    assert front.spans == {"looking_away": [(1.9, 2.6)]} and front.config["rules"]["screen"]["preset"] == "laptop_14in"
