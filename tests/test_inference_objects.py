"""Object detection on the shared photos: phones, books, laptops; YOLOX against SSD, the face-crop pass,
and when the detector runs (inline on the frame timeline, or on its worker thread). Run with -s for figures."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import SCENARIO_FPS, scenario_times, wait_until

from daemon.capture.frame import Frame
from daemon.config import ConfigError, InferenceConfig, parse_config
from daemon.inference.analysis import Box, DetectedObject, Face
from daemon.inference.analyzer import FrameAnalyzer, required_models
from daemon.inference.hands import PALM_FILE, HandDetector
from daemon.inference.object_evidence import ObjectEvidence
from daemon.inference.objects import Yolov8Detector, YoloxDetector, load_object_detector
from daemon.inference.runtime import TFLiteModel

# Photos are resized to at most this long side first: a kiosk camera's frame, not a 5 k px photo.
MAX_SIDE = 1280


@dataclass(frozen=True)
class Photo:
    name: str
    image: np.ndarray
    faces: tuple[Face, ...]
    truth: dict[str, list[Box]]  # label -> boxes
    complete: bool  # COCO's boxes for every class; else only the phones are boxed (or nothing)


@pytest.fixture(scope="module")
def photos(shared, models_dir) -> dict[str, list[Photo]]:
    """"phones": the 7 photos of images/phones/ (11 phones); "others": the 26 other photos (no phone).
    Faces come from the full-range face path, as the face-crop pass would get them."""
    labels = json.loads((shared / "media/labels.json").read_text())["images"]
    faces = FrameAnalyzer(InferenceConfig(face_model="full", max_faces=16, object_model="off"), models_dir)
    groups: dict[str, list[Photo]] = {"phones": [], "others": []}
    for path in sorted((shared / "media/images").rglob("*")):
        if path.suffix not in (".jpg", ".png", ".bmp"):
            continue
        rel = str(path.relative_to(shared / "media"))
        image = cv2.imread(str(path))
        scale = min(1.0, MAX_SIDE / max(image.shape[:2]))
        if scale < 1:
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        entry = labels.get(rel, {})
        truth: dict[str, list[Box]] = {}
        for obj in entry.get("objects", []):
            truth.setdefault(obj["label"], []).append(Box(*obj["box"]))
        complete = entry.get("objects_source", "").startswith("COCO")
        found = faces.analyze(Frame(image, 0, -1.0, 0.0)).faces  # -1: each photo is a new timeline
        groups["phones" if "/phones/" in rel else "others"].append(Photo(path.name, image, found, truth, complete))
    assert len(groups["phones"]) == 7 and len(groups["others"]) == 26
    return groups


# The pass these comparisons were first measured on: whole frame and face crops at 0.3, no tiles, no hands
# (today's default pass is measured against the targets in test_inference_stills.py).
FACE_CROP_PASS = {"object_tiles": False, "object_hand_crops": False, "object_min_score": 0.3}


def _detector(models_dir: Path, model: str = "yolox", crops: bool = True, **config):
    settings = FACE_CROP_PASS | {"object_model": model, "object_face_crops": crops} | config
    return load_object_detector(InferenceConfig(**settings), models_dir)


def _match(truth: list[Box], found: list[DetectedObject], min_iou: float) -> tuple[int, list[DetectedObject]]:
    """(truth boxes matched one-to-one at IoU >= min_iou, the found objects left over)."""
    unused, count = list(found), 0
    for box in truth:
        best = max(unused, key=lambda o: box.iou(o.box), default=None)
        if best is not None and box.iou(best.box) >= min_iou:
            unused.remove(best)
            count += 1
    return count, unused


def phone_figures(detector, photos) -> dict[str, int]:
    figures = {"phones": 0, "found_iou50": 0, "found_iou30": 0, "wrong_on_phone_photos": 0, "on_other_photos": 0}
    for photo in photos["phones"]:
        found = [o for o in detector.detect(photo.image, photo.faces) if o.label == "cell phone"]
        truth = photo.truth["cell phone"]
        figures["phones"] += len(truth)
        figures["found_iou50"] += _match(truth, found, 0.5)[0]
        matched, left = _match(truth, found, 0.3)
        figures["found_iou30"] += matched
        figures["wrong_on_phone_photos"] += len(left)
    for photo in photos["others"]:
        figures["on_other_photos"] += sum(o.label == "cell phone" for o in detector.detect(photo.image, photo.faces))
    return figures


def class_figures(detector, photos, label: str) -> tuple[int, int, int]:
    """(found, labelled, wrong) at IoU >= 0.5 on the photos with complete COCO labels (4 phone photos
    with COCO boxes and the 2 COCO room photos; the other phone photos only box their phones)."""
    found = labelled = wrong = 0
    for photo in photos["phones"] + photos["others"]:
        if not photo.complete:
            continue
        truth = photo.truth.get(label, [])
        matched, left = _match(truth, [o for o in detector.detect(photo.image, photo.faces) if o.label == label], 0.5)
        found, labelled, wrong = found + matched, labelled + len(truth), wrong + len(left)
    return found, labelled, wrong


def test_yolox_is_the_better_default_and_the_face_crops_help(photos, models_dir):
    figures = {
        (model, crops): phone_figures(_detector(models_dir, model, crops), photos)
        for model in ("yolox", "ssd")
        for crops in (False, True)
    }
    for (model, crops), f in figures.items():
        print(f"\n{model:5} {'whole + face crops' if crops else 'whole frame only  '}: phones found {f['found_iou50']}/"
              f"{f['phones']} at IoU >= 0.5, {f['found_iou30']}/{f['phones']} at IoU >= 0.3; wrong phone boxes "
              f"{f['wrong_on_phone_photos']} on the phone photos, {f['on_other_photos']} on the 26 other photos")
    default = figures[("yolox", True)]
    # Measured: YOLOX whole 1/11 (3/11 at 0.3), with face crops 2/11 (4/11), no wrong phone box anywhere;
    # SSD 1/11 (1/11) and 4 phone boxes on the other photos at 0.3 (a cat, Grace Hopper, a VOC group).
    assert default["found_iou50"] >= 2 and default["found_iou30"] >= 4
    assert default["wrong_on_phone_photos"] == 0 and default["on_other_photos"] == 0
    assert default["found_iou30"] > figures[("yolox", False)]["found_iou30"]
    for crops in (False, True):
        ssd = figures[("ssd", crops)]
        assert default["found_iou30"] > ssd["found_iou30"]
        assert default["wrong_on_phone_photos"] + default["on_other_photos"] <= (
            ssd["wrong_on_phone_photos"] + ssd["on_other_photos"]
        )


def test_books_and_laptops_on_the_coco_photos(photos, models_dir):
    detector = _detector(models_dir)
    rooms = {p.name: p for p in photos["others"] if p.name.startswith("coco_val2017")}
    assert len(rooms) == 2
    per_room = {name: _match(p.truth["book"], [o for o in detector.detect(p.image) if o.label == "book"], 0.5)[0]
                for name, p in rooms.items()}
    books = class_figures(detector, photos, "book")
    laptops = class_figures(detector, photos, "laptop")
    people = class_figures(detector, photos, "person")
    ssd = _detector(models_dir, "ssd")
    print(f"\nyolox, complete COCO labels (found/labelled, wrong): books {books}, laptops {laptops}, people {people}; "
          f"books per desk photo {per_room}; ssd books {class_figures(ssd, photos, 'book')}, "
          f"laptops {class_figures(ssd, photos, 'laptop')}, people {class_figures(ssd, photos, 'person')}")
    # Measured: 4 of the 13 books on the office desk (26564), with 1 wrong book box over all six photos.
    # The row of six dark books on the teacher's desk (17182) is a known miss: YOLOX-nano gives no book box
    # there even at score 0.05, on 2x2 tiles or mirrored (SSD finds one of them at 0.29, under its threshold).
    assert per_room["coco_val2017_000000026564.jpg"] >= 3
    assert books[0] >= 4 and books[2] <= 2
    assert laptops[0] >= 1 and laptops[2] == 0


def test_only_the_configured_classes_are_reported(photos, models_dir):
    detector = _detector(models_dir, object_classes=["book"])
    found = [o for p in photos["others"] for o in detector.detect(p.image, p.faces)]
    assert found and {o.label for o in found} == {"book"}


def test_inline_objects_follow_the_frame_timeline(scenario_frames, models_dir):
    """Replay: the detector runs on the frames due at object_rate_hz of video time, so two runs agree."""

    def run() -> list[tuple[float | None, tuple]]:
        # every sighting reported (no temporal confirmation), so each run's result is its own frame's
        analyzer = FrameAnalyzer(InferenceConfig(object_rate_hz=2.0, object_confirm_passes=1, object_confirm_window=1), models_dir)
        out = []
        for i, image in enumerate(scenario_frames[:60]):
            analysis = analyzer.analyze(Frame(image, i, i / SCENARIO_FPS, 1000 + i / SCENARIO_FPS))
            out.append((analysis.objects_mono, tuple((o.label, round(o.score, 4)) for o in analysis.objects)))
        return out

    first, second = run(), run()
    assert first == second
    runs = sorted({mono for mono, _ in first})
    assert runs == pytest.approx([0.5 * k for k in range(12)])  # 6 s of video at 2 Hz
    face_ends = scenario_times("one_face")[0][1]
    per_run = dict(first)  # objects_mono -> what that run found
    # The face segment shows one man: one confident person per run; the empty desk after it: nothing.
    with_face = [[(label, score > 0.9) for label, score in found] for mono, found in per_run.items() if mono < face_ends]
    assert with_face == [[("person", True)]] * 6
    assert [found for mono, found in per_run.items() if mono >= face_ends] == [()] * 6


def test_the_object_worker_runs_off_the_frame_path(scenario_frames, models_dir):
    analyzer = FrameAnalyzer(InferenceConfig(), models_dir, live=True)
    analyzer.start()
    try:
        index = 0

        def objects_reported():
            nonlocal index
            index += 1
            analysis = analyzer.analyze(Frame(scenario_frames[index % 30], index, index / 10, index / 10))
            return analysis.objects and analysis

        # A person is reported once the temporal evidence holds (object_confirm_passes passes).
        analysis = wait_until(objects_reported, 60, "the object worker's first confirmed results", interval=0.05)
        assert analysis.objects_mono <= analysis.mono
        assert "person" in {o.label for o in analysis.objects}
    finally:
        analyzer.stop()


def test_required_models_follow_the_config():
    assert required_models(InferenceConfig()) == [
        "face_detection_short_range.tflite", "face_detection_full_range.tflite", "face_landmark.tflite",
        "iris_landmark.tflite", "yolox_nano_coco_fp16.tflite", "coco80_labels.txt", "palm_detection_lite.tflite",
    ]
    assert required_models(InferenceConfig(face_model="full", object_model="ssd", object_hand_crops=False)) == [
        "face_detection_full_range.tflite", "face_landmark.tflite", "iris_landmark.tflite",
        "ssd_mobilenet_v1_coco_quant.tflite", "coco_labelmap.txt",
    ]
    assert len(required_models(InferenceConfig(face_model="short", object_model="off"))) == 3
    custom = InferenceConfig(object_model="custom", object_model_file="/opt/desk.tflite", object_model_layout="yolov8",
                             object_labels_file="/opt/desk.txt", object_hand_crops=False)
    assert required_models(custom)[-1] == "iris_landmark.tflite"  # an exam centre's own files are not pinned


def test_wrong_model_or_labels_are_named(models_dir, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("person\nbook\n")
    with pytest.raises(ValueError, match="labels.txt: no class named cell phone"):
        YoloxDetector(TFLiteModel(models_dir / "yolox_nano_coco_fp16.tflite"), labels, ["cell phone"], 0.3)
    ssd = TFLiteModel(models_dir / "ssd_mobilenet_v1_coco_quant.tflite")
    with pytest.raises(ValueError, match="ssd_mobilenet_v1_coco_quant.tflite"):
        YoloxDetector(ssd, models_dir / "coco80_labels.txt", ["book"], 0.3)
    with pytest.raises(ValueError, match="ssd_mobilenet_v1_coco_quant.tflite"):
        Yolov8Detector(ssd, models_dir / "coco80_labels.txt", ["book"], 0.3)


def test_a_bad_object_class_is_named_in_the_config_error():
    with pytest.raises(ConfigError) as caught:
        parse_config('[inference]\nobject_classes = ["cell phone", "phone"]\ncamera_intrinsics = [500.0, 500.0]\n')
    problems = "\n".join(caught.value.problems)
    assert "inference.object_classes: ['cell phone', 'phone'] is not allowed: not COCO class names: phone" in problems
    assert "inference.camera_intrinsics: [500.0, 500.0] is not allowed" in problems


def test_a_custom_model_is_loaded_by_its_declared_layout(photos, models_dir, tmp_path):
    """The bundled files declared as an exam centre's own (absolute paths, relative ones under the models
    directory) find exactly what the bundled choice finds."""
    for layout, model, labels in (("yolox", "yolox_nano_coco_fp16.tflite", "coco80_labels.txt"),
                                  ("ssd", "ssd_mobilenet_v1_coco_quant.tflite", "coco_labelmap.txt")):
        bundled = _detector(models_dir, layout)
        custom = _detector(models_dir, "custom", object_model_file=model, object_model_layout=layout,
                           object_labels_file=str(models_dir / labels))
        for photo in photos["phones"]:
            assert custom.detect(photo.image, photo.faces) == bundled.detect(photo.image, photo.faces), photo.name


def test_a_custom_onnx_model_needs_its_input_size(models_dir, tmp_path):
    onnx = tmp_path / "desk.onnx"
    onnx.write_bytes(b"not a model")
    config = InferenceConfig(object_model="custom", object_model_file=str(onnx), object_model_layout="yolov8",
                             object_labels_file=str(models_dir / "coco80_labels.txt"))
    with pytest.raises(ValueError, match="desk.onnx: an ONNX model needs inference.object_input_size"):
        load_object_detector(config, models_dir)
    with pytest.raises(ValueError, match="cannot load ONNX model .*desk.onnx"):
        load_object_detector(config.model_copy(update={"object_input_size": 320}), models_dir)


def test_an_incomplete_custom_model_is_a_config_error():
    with pytest.raises(ConfigError) as caught:
        parse_config('[inference]\nobject_model = "custom"\nobject_model_file = "desk.tflite"\n')
    assert "needs object_model_layout, object_labels_file" in "\n".join(caught.value.problems)
    with pytest.raises(ConfigError, match="object_confirm_passes \\(4\\) is more than object_confirm_window \\(3\\)"):
        parse_config("[inference]\nobject_confirm_passes = 4\nobject_confirm_window = 3\n")


def test_palms_are_found_next_to_the_held_phones(photos, models_dir):
    """The hand crops' anchor: in coco 1296 both hands hold a phone; in 536 one hand holds a phone at the
    ear and another one in the lap (the third phone, at the other ear, is behind hair: no palm there)."""
    hands = HandDetector(models_dir / PALM_FILE)
    by_name = {p.name: p for p in photos["phones"]}
    for name, held in (("coco_val2017_000000001296.jpg", (0, 1)), ("coco_train2017_000000000536.jpg", (1, 2))):
        photo = by_name[name]
        found = hands.detect(photo.image)
        print(f"\n{name}: palms {[(round(h.score, 2), [round(v) for v in h.box]) for h in found]}")
        for phone in (photo.truth["cell phone"][i] for i in held):
            near = [h for h in found if Box(*_xywh(h.reach(3.0))).iou(phone) > 0]
            assert near, (name, phone)
    assert not any(hands.detect(p.image) for p in photos["others"] if p.name in ("dogs.jpg", "coffee.png"))


def _xywh(box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = box
    return x1, y1, x2 - x1, y2 - y1


def _phone(x: float, score: float) -> DetectedObject:
    return DetectedObject("cell phone", score, Box(x, 100, 40, 80))


def test_temporal_evidence_counts_repeats_not_one_stray_score():
    evidence = ObjectEvidence(passes=3, window=5)
    # One stray high score, then nothing: never reported.
    assert [evidence.update(p) for p in ([_phone(10, 0.9)], [], [], [], [], [])] == [[]] * 6
    # A modest phone seen in 3 of 5 passes at about the same place (a hand moves it a little): reported from
    # its third sighting, with the mean score, and while the window still holds three sightings.
    sightings = [[_phone(300, 0.3)], [], [_phone(306, 0.28)], [_phone(312, 0.31)], [], [], []]
    reported = [evidence.update(p) for p in sightings]
    assert [len(r) for r in reported] == [0, 0, 0, 1, 1, 0, 0]
    assert reported[3][0].score == pytest.approx((0.3 + 0.28 + 0.31) / 3)
    assert reported[3][0].box == _phone(312, 0).box
    # Three sightings at three different places are three strays.
    evidence = ObjectEvidence(passes=3, window=5)
    assert not any(evidence.update([_phone(x, 0.6)]) for x in (0, 200, 400))
    # passes = 1 reports every sighting as it comes.
    assert ObjectEvidence(1, 1).update([_phone(0, 0.4)]) == [_phone(0, 0.4)]


# A 344-byte YOLOv8-layout ONNX network (opset 11) whose output ignores the picture: output0 (1, 7, 2) =
# 2 boxes of [cx, cy, w, h, 3 class scores] in input pixels: (32, 16, 20, 10) class 1 at 0.9 and (10, 40, 8, 8)
# class 2 at 0.2. Built with the `onnx` package: a constant plus 0 x ReduceMean(images), input images
# (1, 3, 64, 64). It checks the OpenCV DNN runtime and the YOLOv8 decoding (centred letterbox) end to end.
YOLOV8_ONNX = base64.b64decode(
    "CAc6zQIKOQoGaW1hZ2VzEgFtIgpSZWR1Y2VNZWFuKg8KBGF4ZXNAAUACQAOgAQcqDwoIa2VlcGRpbXMYAKABAgoXCgFtCgVzaGFw"
    "ZRICbTMiB1Jlc2hhcGUKEgoCbTMKBHplcm8SAXoiA011bAoXCgRiYXNlCgF6EgdvdXRwdXQwIgNBZGQSAnk4KkgIAQgHCAIQAUIE"
    "YmFzZUo4AAAAQgAAIEEAAIBBAAAgQgAAoEEAAABBAAAgQQAAAEHNzMw9zcxMPWZmZj8AAAAAAAAAAM3MTD4qFAgBCAEIARABQgR6"
    "ZXJvSgQAAAAAKiUIAxAHQgVzaGFwZUoYAQAAAAAAAAABAAAAAAAAAAEAAAAAAAAAWiAKBmltYWdlcxIWChQIARIQCgIIAQoCCAMK"
    "AghACgIIQGIdCgdvdXRwdXQwEhIKEAgBEgwKAggBCgIIBwoCCAJCBAoAEAs="
)


def test_a_yolov8_onnx_model_runs_on_opencv_dnn(tmp_path):
    model, labels = tmp_path / "desk.onnx", tmp_path / "desk.txt"
    model.write_bytes(YOLOV8_ONNX)
    labels.write_text("person\nphone\ncell phone\n")
    config = InferenceConfig(object_model="custom", object_model_file=str(model), object_model_layout="yolov8",
                             object_input_size=64, object_labels_file=str(labels), object_classes=["cell phone"],
                             object_min_score=0.15, object_tiles=False, object_hand_crops=False)
    # A 64x32 frame sits in the 64x64 input at scale 1 with 16 px of padding above: y shifts by 16.
    found = load_object_detector(config, tmp_path).detect(np.zeros((32, 64, 3), np.uint8))
    assert found == [DetectedObject("cell phone", pytest.approx(0.2), Box(6.0, 20.0, 8.0, 8.0))]
    wanted = config.model_copy(update={"object_classes": ["person", "cell phone"]})
    boxes = load_object_detector(wanted, tmp_path).detect(np.zeros((32, 64, 3), np.uint8))
    # class 1 ("phone") is not wanted; the first box's best wanted class is person at 0.1 (under 0.15).
    assert [o.box for o in boxes] == [Box(6.0, 20.0, 8.0, 8.0)]
