"""Configuration: one TOML file validated into typed, frozen objects at start-up.

Unknown keys are errors (a typo must not silently fall back to a default). Every problem is reported
as one line naming the key, the bad value and what is allowed.
"""

from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core.core_schema import ValidationInfo

from daemon.compat import tomllib
from daemon.errors import UserError
from daemon.sync.contract import COMMAND_NAMES

DEFAULT_CONFIG_NAME = "default_config.toml"


class _Section(BaseModel):
    # strict: "10" is not a number and "yes" not a boolean; a quoted value is a typo to report.
    # No inf or nan: a weight of inf would make the score and report.json meaningless.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


Seconds = Annotated[float, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
Port = Annotated[int, Field(ge=1, le=65535)]
# A topic segment: MQTT wildcards and separators would let one kiosk write into another's topics.
TopicSegment = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


class KioskConfig(_Section):
    """Who this kiosk is: its MQTT topics are <mqtt.topic_prefix>/<site>/<name>/..."""

    site: TopicSegment = Field("default-site", description="The exam site: an MQTT topic segment.")
    name: TopicSegment = Field(
        "kiosk-1", description="Unique per kiosk: an MQTT topic segment; also the MQTT client id."
    )


class PathsConfig(_Section):
    data_dir: str = Field(
        "",
        description='The database, recordings and snapshots. "" = $STATE_DIRECTORY under systemd, '
        "else $XDG_DATA_HOME/proctord or ~/.local/share/proctord.",
    )
    models_dir: str = Field(
        "", description='The model files. "" = <data_dir>/models (fill it with `proctord models fetch`).'
    )


def _reopen_cap(cap: float, info: ValidationInfo, section: str) -> float:
    """A source's reopen backoff: the cap (reopen_max_s) may not be below the first wait."""
    if cap < info.data.get("reopen_min_s", 0):
        raise ValueError(f"must be at least {section}.reopen_min_s ({info.data['reopen_min_s']})")
    return cap


class CameraConfig(_Section):
    """The frame source, one per kiosk (daemon/capture)."""

    kind: Literal["opencv", "picamera2", "gstreamer", "url", "file"] = Field(
        "opencv",
        description='"opencv": a USB webcam (V4L2); "picamera2": the Raspberry Pi CSI camera (apt\'s '
        'python3-picamera2, a venv with --system-site-packages); "gstreamer": a pipeline (a Jetson CSI '
        'camera; needs an OpenCV built with GStreamer, e.g. JetPack\'s); "url": an RTSP or HTTP stream; '
        '"file": a recorded video.',
    )
    path: str = Field(
        "0",
        description='opencv: "0" (index) or "/dev/video0" (or a stable /dev/v4l/by-id/... name). picamera2: '
        'the camera number. gstreamer: a pipeline ending in appsink, e.g. "nvarguscamerasrc ! '
        "video/x-raw(memory:NVMM),width=1280,height=720,framerate=30/1 ! nvvidconv ! video/x-raw,format=BGRx "
        '! videoconvert ! video/x-raw,format=BGR ! appsink drop=1". url: rtsp://, rtsps://, http:// or '
        "https:// (a password in it is never shown). file: the video's path.",
    )
    fps: float = Field(
        15.0,
        gt=0,
        le=120,
        description="Requested camera rate (opencv, picamera2; url and file use their own).",
    )
    width: int = Field(640, ge=64, le=4096, description="Requested frame width (opencv, picamera2).")
    height: int = Field(480, ge=64, le=4096, description="Requested frame height (opencv, picamera2).")
    timeout_s: float = Field(
        2.0,
        gt=0,
        le=60,
        description="No frame for this long and the camera counts as lost (camera_lost, from the last frame "
        "on); the source is then reopened.",
    )
    reopen_min_s: float = Field(
        0.5,
        gt=0,
        le=60,
        description="Reopen attempts start this long after a loss, doubling while they fail...",
    )
    reopen_max_s: float = Field(10.0, gt=0, le=600, description="...up to this.")

    @field_validator("path")
    @classmethod
    def _path_fits_kind(cls, path: str, info: ValidationInfo) -> str:
        if not path.strip():
            raise ValueError("a device index, device path or video file is required")
        kind = info.data.get("kind")
        if kind == "picamera2" and not path.isdigit():
            raise ValueError('picamera2 needs a camera number ("0" for the first camera)')
        if kind == "url" and not re.match(r"^(rtsps?|https?)://.+", path):
            raise ValueError("a url source needs an rtsp://, rtsps://, http:// or https:// address")
        if kind == "gstreamer" and not re.search(r"\bappsink\b[^!]*$", path):
            raise ValueError(
                "a GStreamer pipeline must end in an appsink (... ! video/x-raw,format=BGR ! appsink)"
            )
        return path

    _backoff_cap_above_start = field_validator("reopen_max_s")(lambda cap, info: _reopen_cap(cap, info, "camera"))

    realtime: bool = Field(
        True, description="file: deliver frames at the file's own rate, as a camera would."
    )
    loop: bool = Field(False, description="file: start again at the end.")


Share = Annotated[float, Field(gt=0, le=1)]


class InferenceConfig(_Section):
    threads: int = Field(1, ge=1, le=16, description="LiteRT threads per model.")
    face_model: Literal["short", "full", "both"] = Field(
        "both",
        description="BlazeFace model(s): short range (faces near the camera, up to a face filling the frame), "
        "full range (small faces across a room), or both at every detector run, merged by NMS across the "
        "two (the candidate and a person standing behind are both found; costs one full-range run per "
        "detect_interval_s).",
    )
    face_min_score: Annotated[float, Field(gt=0, lt=1)] | None = Field(
        None,
        description="Face detector score threshold; unset = the chosen model's own (daemon/inference/face_detector.py).",
        examples=[0.5],
    )
    max_faces: int = Field(
        4,
        ge=1,
        le=16,
        description="Faces that get landmarks, pose and gaze; faces beyond are still counted (detector boxes only).",
    )
    detect_interval_s: float = Field(
        0.2,
        ge=0,
        le=10,
        description="While faces are tracked the detector is skipped, but still runs this often (0 = every frame), "
        "so a second face is seen soon.",
    )
    landmark_min_score: float = Field(
        0.5,
        gt=0,
        lt=1,
        description="Face-presence score of the face mesh under which a tracked face counts as lost.",
    )
    iris_alternate_eyes: bool = Field(
        True,
        description="Read one eye's iris per frame, taking turns (the other eye's last reading follows its eye "
        "corners): half the iris model's cost. false = both eyes on every frame.",
    )
    camera_hfov_deg: float = Field(
        60.0,
        gt=10,
        lt=170,
        description="Horizontal field of view, for the head pose when camera_intrinsics is unset "
        "(square pixels, principal point at the centre).",
    )
    camera_intrinsics: Annotated[list[PositiveFloat], Field(min_length=4, max_length=4)] | None = Field(
        None,
        description="Camera optics [fx, fy, cx, cy] in pixels of the delivered frame (e.g. from "
        "cv2.calibrateCamera); unset = derived from camera_hfov_deg.",
        examples=[[600.0, 600.0, 320.0, 240.0]],
    )
    object_model: Literal["yolox", "ssd", "custom", "off"] = Field(
        "yolox",
        description="Object detector: the bundled YOLOX-nano or SSD-MobileNet-v1, 'custom' (your own model: "
        "object_model_file, object_model_layout, object_labels_file), or off.",
    )
    object_model_file: str | None = Field(
        None,
        description="object_model = 'custom': the model file, .tflite (run by LiteRT) or .onnx (run by OpenCV "
        "DNN). Relative paths are relative to the models directory.",
        examples=["desk-phones-yolov8n.tflite"],
    )
    object_model_layout: Literal["yolox", "yolov8", "ssd"] | None = Field(
        None,
        description="object_model = 'custom': its output layout. yolox: one (1, cells, 5 + classes) output, "
        "BGR 0..255 input letterboxed top-left; yolov8: one (1, 4 + classes, boxes) or (1, boxes, 4 + classes) "
        "output of centre/size boxes and class scores, RGB 0..1 input letterboxed centred; ssd: "
        "TFLite_Detection_PostProcess's four outputs (boxes, classes, scores, count), RGB input stretched.",
        examples=["yolov8"],
    )
    object_input_size: Annotated[int, Field(ge=32, le=2048)] | None = Field(
        None,
        description="object_model = 'custom' with an .onnx file: the model's square input side in pixels "
        "(OpenCV DNN cannot read it from the file; a .tflite model's own input shape is used).",
        examples=[640],
    )
    object_labels_file: str | None = Field(
        None,
        description="object_model = 'custom': class names, one per line, line i naming class index i. "
        "Relative paths are relative to the models directory.",
        examples=["desk-phones-labels.txt"],
    )
    object_rate_hz: float = Field(
        2.0, gt=0, le=30, description="Object detection runs this often, off the per-frame path."
    )
    object_classes: Annotated[list[str], Field(min_length=1)] = Field(
        ["person", "cell phone", "book", "laptop"], description="COCO class names to report."
    )
    object_min_score: Annotated[float, Field(gt=0, lt=1)] = Field(
        0.25,
        description="Score at which one object pass keeps a detection as a sighting (temporal evidence then "
        "decides). Tuned on the shared photos (images/phones/ and the 26 phone-free photos), checked on the "
        "no-phone clips (bench/eval_stills.py).",
    )
    object_face_crops: bool = Field(
        True,
        description="Also look again, zoomed in, around each face (small phones): one more detector run per face.",
    )
    object_hand_crops: bool = Field(
        True,
        description="Find hands (MediaPipe palm detection, once per object pass) and look again, zoomed in, "
        "around each of them: a phone is usually in a hand. One more detector run per hand (at most 4).",
    )
    object_tiles: bool = Field(
        True,
        description="Also run the object detector on four overlapping quarter-size tiles of the frame "
        "(60 % of each side): a phone lying on the desk or held low is too small in the whole frame.",
    )
    object_confirm_passes: Annotated[int, Field(ge=1, le=10)] = Field(
        2,
        description="Temporal evidence: an object is reported only once it was seen at about the same place "
        "(IoU >= 0.3, or centres within one box length) in this many of the last object_confirm_window "
        "object passes; its score is then the mean score of those sightings. 1 reports every single sighting.",
    )
    object_confirm_window: Annotated[int, Field(ge=1, le=20)] = Field(
        5, description="Temporal evidence: the number of recent object passes object_confirm_passes counts in."
    )

    @model_validator(mode="after")
    def _custom_model_is_complete(self):
        custom = {"object_model_file": self.object_model_file, "object_model_layout": self.object_model_layout,
                  "object_labels_file": self.object_labels_file}
        if self.object_model == "custom":
            missing = [key for key, value in custom.items() if value is None]
            if missing:
                raise ValueError(f"object_model = 'custom' needs {', '.join(missing)}")
        if self.object_confirm_passes > self.object_confirm_window:
            raise ValueError(
                f"object_confirm_passes ({self.object_confirm_passes}) is more than object_confirm_window "
                f"({self.object_confirm_window})"
            )
        return self

    @field_validator("object_classes")
    @classmethod
    def _known_classes(cls, names: list[str]) -> list[str]:
        from daemon.inference.coco import COCO_CLASSES  # plain data; keeps the config free of model code

        unknown = [name for name in names if name not in COCO_CLASSES]
        if unknown:
            raise ValueError(
                f"not COCO class names: {', '.join(unknown)} (e.g. {', '.join(COCO_CLASSES[:4])}, ...)"
            )
        return names


class RuleTiming(_Section):
    """Each rule (README, "Events"): the condition must hold onset_s without a break before its event starts,
    and be gone release_s before it ends (shorter gaps are bridged); the event is published only once it has
    lasted min_duration_s (shorter ones are dropped). Start and end are the times the condition really began
    and stopped. The integrity score deducts 100 x severity factor x weight x the share of the session the
    rule's events cover."""

    onset_s: Seconds = Field(description="The condition holds this long without a break: the event starts.")
    release_s: Seconds = Field(
        description="The condition is gone this long: the event ends (shorter gaps are bridged)."
    )
    min_duration_s: Seconds = Field(0.0, description="Events shorter than this are dropped unpublished.")
    severity: Literal["low", "medium", "high"] = Field(
        description="Sent with every alert; sets the score factor."
    )
    weight: float = Field(1.0, ge=0, description="The rule's weight in the integrity score.")


Degrees = Annotated[float, Field(gt=0, le=90)]


class LookingAwayRule(RuleTiming):
    """Attention off the screen to the left, the right or up (down is looking_down's): the gaze (head pose
    plus eyes; the head pose alone while the eyes count as closed) outside the screen's angular region
    ([rules.screen], placed by calibration), or the head itself turned far past any reading angle."""

    head_yaw_deg: Degrees = Field(35.0, description=(
        "Head turned left or right more than this many degrees from the calibrated neutral is looking away, "
        "wherever the eyes point. Well past reading angles: the edge of a 24-inch screen at 60 cm is 24 degrees "
        "off centre, and heads swung by up to 25 degrees while the eyes stayed on the screen in the shared clips."
    ))
    head_up_deg: Degrees = Field(25.0, description=(
        "Head raised more than this many degrees above the calibrated neutral is looking away (up). "
        "Head roll never counts."
    ))


class LookingDownRule(RuleTiming):
    """The head pitched down and the gaze below the screen together, as over a phone in the lap; slower
    than looking_away, because a glance at the keyboard or a sheet on the desk is normal."""

    head_down_deg: Degrees = Field(15.0, description=(
        "Head pitched down more than this many degrees below the calibrated neutral while the gaze is below "
        "the screen's region is looking down. Eyes alone lowered (a glance at the keyboard) do not count."
    ))


class RepeatedGlancesRule(RuleTiming):
    """Looks off the screen too short to be looking_away (or looking_down) events, repeated to one side:
    how notes are read."""

    count: Annotated[int, Field(ge=2, le=100)] = Field(3, description=(
        "This many glances to the same side (left, right, up or down) within window_s raise one event; "
        "the glances it counted are then spent."
    ))
    window_s: Annotated[float, Field(gt=0, le=3600)] = Field(120.0, description=(
        "The window, in seconds, in which the glances to one side are counted."
    ))
    min_glance_s: Annotated[float, Field(gt=0, le=10)] = Field(0.3, description=(
        "A look off the screen shorter than this is not a glance (measurement noise, a blink)."
    ))


# A screen preset: width and height of the visible picture and the eyes' distance from it, in cm.
SCREEN_PRESETS: dict[str, tuple[float, float, float]] = {
    "monitor_24in": (53.1, 29.9, 60.0),  # 24-inch 16:9 monitor at arm's length
    "laptop_14in": (31.0, 17.4, 50.0),  # 14-inch 16:9 laptop on a desk
}


class ScreenConfig(_Section):
    """Where the candidate is meant to look: the screen's size and distance and where the camera sits.
    Turned into the angular region the eyes cover while reading, plus a margin (daemon/events/attention.py)."""

    preset: Literal["monitor_24in", "laptop_14in", "custom"] = Field("monitor_24in", description=(
        "monitor_24in: a 24-inch monitor (53.1 x 29.9 cm) at 60 cm; laptop_14in: a 14-inch laptop "
        "(31.0 x 17.4 cm) at 50 cm; custom: width_cm, height_cm and distance_cm give the screen."
    ))
    width_cm: Annotated[float, Field(gt=0, le=500)] | None = Field(None, description=(
        "Width of the screen's picture in cm; overrides the preset's."
    ), examples=[53.1])
    height_cm: Annotated[float, Field(gt=0, le=500)] | None = Field(None, description=(
        "Height of the screen's picture in cm; overrides the preset's."
    ), examples=[29.9])
    distance_cm: Annotated[float, Field(gt=0, le=500)] | None = Field(None, description=(
        "Distance from the candidate's eyes to the screen in cm; overrides the preset's."
    ), examples=[60.0])
    camera: Literal["top_centre", "bottom_centre"] = Field("top_centre", description=(
        "Where the camera sits on the screen: top_centre (a laptop or a monitor webcam) or bottom_centre "
        "(a camera mounted low)."
    ))
    margin_deg: Annotated[float, Field(ge=0, le=30)] = Field(5.0, description=(
        "Degrees added on every side of the screen's region before a gaze counts as off the screen: "
        "room for the gaze estimate's error (README, \"Looking away\")."
    ))

    @model_validator(mode="after")
    def _custom_gives_every_dimension(self) -> ScreenConfig:
        missing = [name for name in ("width_cm", "height_cm", "distance_cm") if getattr(self, name) is None]
        if self.preset == "custom" and missing:
            raise ValueError(f"preset = \"custom\" needs {', '.join(missing)}")
        return self

    @property
    def dimensions_cm(self) -> tuple[float, float, float]:
        """Width, height and viewing distance: the preset's, each overridden where given."""
        width, height, distance = SCREEN_PRESETS.get(self.preset, (0.0, 0.0, 0.0))
        return self.width_cm or width, self.height_cm or height, self.distance_cm or distance


# Eye openness (lid gap / eye width) under which an eye counts as closed: the eyes_closed rule's default, and
# where the face pipeline stops trusting an eye's iris for the gaze.
CLOSED_EYE_OPENNESS = 0.12


class EyesClosedRule(RuleTiming):
    max_openness: Share = Field(
        CLOSED_EYE_OPENNESS,
        description="Eye openness (lid gap / eye width, both eyes averaged) below this counts as closed. "
        "Measured: open eyes 0.35-0.39 (the shared gaze clips); the shared media has no closed eyes.",
    )


class TalkingRule(RuleTiming):
    window_s: float = Field(
        1.0, gt=0, le=10, description="The mouth movement is measured over this window..."
    )
    min_mouth_std: Share = Field(
        0.03,
        description="...as the standard deviation of mouth openness (inner-lip gap / mouth width): "
        "at or above this is talking.",
    )


class OtherVoiceRule(RuleTiming):
    still_s: float = Field(
        2.0,
        gt=0,
        le=30,
        description="Speech counts as the candidate's own (talking) while their mouth moved (the talking rule's "
        "measure at or above min_mouth_std) within the last still_s; after that, or with no mouth in view, it "
        "is another voice. Bridges the candidate's own pauses between words. Measured (1 s windows): the "
        "candidate talking in cap12 0.012-0.18 (5th-95th percentile, pauses included), mouths at rest "
        "0.001-0.018 (the other shared clips).",
    )


class ObjectRule(RuleTiming):
    min_score: Share = Field(
        0.5, description="Detections of the rule's COCO label below this score are not evidence."
    )
    max_age_s: float = Field(
        3.0, gt=0, description="Nor are object detector results older than this (the detector stalled)."
    )


# The camera_* thresholds below were read off `bench/bench_capture.py` (FrameQuality of the five shared
# videos and synthetic variants of them: 5th-95th percentiles). The measures: daemon/capture/quality.py.


class CameraCoveredRule(RuleTiming):
    max_brightness: float = Field(
        20.0,
        ge=0,
        le=255,
        description="Mean luma (0-255) below this is covered (a lens cap). Measured: lens cap 2.6-2.7, a hand "
        "14-21, a dim room 30-43, scenes 100-145.",
    )
    max_contrast: float = Field(
        7.0,
        ge=0,
        le=255,
        description="Luma standard deviation below this is covered (a hand, a sheet). Measured: covered "
        "(cap, hand, paper) 0.5-5.8, a dim room (exposure x0.3) 7.6-16, scenes 25-53.",
    )


class CameraBlurredRule(RuleTiming):
    max_relative_sharpness: float = Field(
        0.02,
        ge=0,
        description="Sharpness relative to contrast (variance of the Laplacian / contrast^2, so exposure does "
        "not count) below this is blurred. Measured: sharp 0.052-0.150 (dim room included), defocused "
        "by a 2 px blur (at 640 px) 0.027-0.066, by 4 px 0.010-0.023.",
    )


class CameraFrozenRule(RuleTiming):
    max_change: float = Field(
        0.005,
        ge=0,
        le=255,
        description="Mean absolute luma change to the previous frame at or below this: the picture "
        "repeats. Measured: a frozen picture exactly 0; consecutive real frames 0.012-2.7, but a compressed "
        "webcam clip has runs of up to 14 frames (0.6 s) at or below 0.1, and repeated frames (0): onset_s "
        "bridges them.",
    )


class CameraMovedRule(RuleTiming):
    min_view_shift: Share = Field(
        0.5,
        description="view_shift from the session's reference view (0 same view, 1 nothing in common) at "
        "or above this. Measured: the candidate moving 0.17-0.50 (95th percentile), the camera turned "
        "10%, tilted 5%, rotated 15 degrees or zoomed x1.2 0.50-1.0 (5th percentile); turned 5% or rotated "
        "5 degrees 0.24-0.83, not reliably told from the candidate moving.",
    )


class CalibrationConfig(_Section):
    """Learns the candidate's neutral head pose and gaze (README, "Calibration"): the median over the
    frames showing one face."""

    duration_s: float = Field(3.0, ge=0, le=300, description="Over the session's first seconds...")
    min_samples: int = Field(
        10,
        ge=1,
        le=10_000,
        description="...and at least this many frames showing one face (a candidate not "
        "seen by then is calibrated on the first such frames).",
    )
    max_neutral_deg: Degrees = Field(
        20.0,
        description="The neutral is clamped to this many degrees from where the screen's centre lies seen "
        "from the camera ([rules.screen]), so a candidate turned away throughout calibration cannot hide "
        "later looking away.",
    )
    learn_s: Annotated[float, Field(ge=0, le=3600)] = Field(120.0, description=(
        "The gaze of the session's first learn_s seconds (from its first frame) refines the screen's region "
        "for this candidate: the region grows to take in the learn_percentile to 100 - learn_percentile "
        "range of the gaze seen, by at most max_widening_deg on each side. 0 = keep the region from the "
        "screen's geometry and calibration alone."
    ))
    learn_percentile: Annotated[float, Field(ge=0, lt=50)] = Field(5.0, description=(
        "The share (percent) of the learnt gaze left out on each side: glances during the first minutes "
        "do not widen the region."
    ))
    max_widening_deg: Annotated[float, Field(ge=0, le=45)] = Field(10.0, description=(
        "The most the learnt gaze widens the region on any side, in degrees: a candidate who looks off the "
        "screen a lot in the first minutes cannot make every look attention."
    ))


class SeverityFactors(_Section):
    """Integrity score: each rule's deduction is multiplied by the factor of its severity."""

    low: float = Field(0.25, ge=0, description="Factor of low-severity rules.")
    medium: float = Field(0.5, ge=0, description="Factor of medium-severity rules.")
    high: float = Field(1.0, ge=0, description="Factor of high-severity rules.")


class IdentityConfig(_Section):
    """Identity checks (README, "Identity and privacy"): a reference of the candidate at check-in, compared
    with the candidate through the session (identity_mismatch). Off by default, on purpose: it is biometric
    processing (GDPR Art. 9, BIPA: the exam centre needs a legal basis, consent and a stated purpose), and the
    bundled embedding model was trained on VGGFace2, images collected from the web without the consent of the
    people shown (the dataset has been withdrawn; shared/models/MANIFEST.md, risk row). Enable it only after
    the exam centre's own review, or point model_file at a model it has cleared."""

    enabled: bool = Field(
        False,
        description="Run identity checks. Needs retention_days: biometric data is kept no longer than chosen.",
    )
    model_file: str = Field(
        "faceres_float16.tflite",
        description="The embedding model: one square NHWC float32 input (an aligned face crop), one (1, d) "
        "output. Relative paths are relative to the models directory. The bundled one (1024-d, MANIFEST.md) is "
        "pinned in models/manifest.toml and installed from the models mirror; another is not pinned, and needs "
        "its own threshold.",
    )
    input_format: Literal["bgr_mean", "rgb_signed"] = Field(
        "bgr_mean",
        description='The model\'s pixels: "bgr_mean" BGR minus the ImageNet means (the bundled model); '
        '"rgb_signed" RGB scaled to [-1, 1] (ArcFace and MobileFaceNet exports).',
    )
    threshold: float = Field(
        0.7,
        gt=-1,
        lt=1,
        description="Cosine similarity to the reference below this is a mismatch. Set for the bundled model in the "
        "gap of the tune part of the shared media (same person 0.820 and up, different people 0.592 and down; "
        "middle 0.706, rounded down in the same person's favour) and checked on the other part "
        "(bench/eval_identity.py). Another model needs its own.",
    )
    interval_s: float = Field(
        1.0,
        ge=0.2,
        le=60,
        description="One embedding of the candidate at most this often (of frame time), off the frame path, "
        "and only on a face that can be judged (min_eye_distance_px, max_yaw_deg).",
    )
    min_eye_distance_px: float = Field(
        20.0,
        ge=0,
        le=1000,
        description="A face whose eye centres are closer than this many frame pixels is too small to judge. "
        "Measured (same person, clips scaled down): similarity 0.79 and up at 16-30 px, 0.77 and up at 30+, but "
        "different people were not measured below 20 px.",
    )
    max_yaw_deg: float = Field(
        25.0,
        gt=0,
        le=90,
        description="A face turned further than this from the camera is not judged. Measured (same person): "
        "similarity 0.77 and up at 20-25 deg, 0.73 at 30-40 deg (too close to the threshold).",
    )
    reference_samples: int = Field(
        3,
        ge=1,
        le=30,
        description="Check-in: the reference is the mean of the session's first this many judged embeddings "
        "that agree with each other (at threshold), unless a reference photo was given at the start.",
    )
    max_age_s: float = Field(
        3.0,
        gt=0,
        le=600,
        description="An embedding older than this no longer says anything: the candidate is then not judged "
        "(a face turned away or too small is never a mismatch).",
    )
    keep_photo: bool = Field(
        False,
        description="Keep the reference photo (the aligned face crop, a JPEG in the session's recordings folder, "
        "so with recording.enabled; never uploaded) beside its embedding; false = the embedding only.",
    )
    retention_days: Annotated[float, Field(gt=0, le=3650)] | None = Field(
        None,
        description="Required when enabled: the reference embedding, the reference photo and the similarity "
        "figures of a session are deleted this many days after it ended, or earlier with the session's evidence "
        "(retention). A session under review keeps them.",
        examples=[30.0],
    )

    @model_validator(mode="after")
    def _retention_chosen(self) -> IdentityConfig:
        if self.enabled and self.retention_days is None:
            raise ValueError("identity.enabled = true needs identity.retention_days (how long biometric data is kept)")
        return self


def _rule(default: RuleTiming, condition: str):
    """A rule's table: its defaults, and its condition as the docs show it."""
    return Field(default, description=condition)


class RulesConfig(_Section):
    """One table per event type; a table lists only the keys it changes (the rest keep their defaults)."""

    no_face: RuleTiming = _rule(
        RuleTiming(onset_s=2.0, release_s=1.0, severity="high", weight=1.0), "No face in view."
    )
    multiple_faces: RuleTiming = _rule(
        RuleTiming(onset_s=1.0, release_s=1.0, severity="high", weight=1.5), "Two or more faces in view."
    )
    # A look away is short: onset 0.5 s, and a 2 s event may bridge the moments the head swings back.
    looking_away: LookingAwayRule = _rule(
        LookingAwayRule(onset_s=0.5, release_s=1.5, min_duration_s=2.0, severity="medium", weight=1.0),
        "The gaze (head plus eyes) off the screen's region to the left, right or up, or the head turned "
        "far past reading angles.",
    )
    # Slower than looking_away: a look at the keyboard or the desk is part of an exam.
    looking_down: LookingDownRule = _rule(
        LookingDownRule(onset_s=2.0, release_s=1.5, min_duration_s=5.0, severity="medium", weight=1.0),
        "Head pitched down and the gaze below the screen together, as over a phone in the lap.",
    )
    # Raised on the glance that completes the count; the event spans the glances counted.
    repeated_glances: RepeatedGlancesRule = _rule(
        RepeatedGlancesRule(onset_s=0.0, release_s=0.0, severity="medium", weight=1.0),
        "Glances off the screen too short to be looking away, repeated to one side (how notes are read).",
    )
    eyes_closed: EyesClosedRule = _rule(
        EyesClosedRule(onset_s=2.0, release_s=0.5, severity="medium", weight=0.5),
        "Eye openness below max_openness (blinks last well under a second).",
    )
    talking: TalkingRule = _rule(
        TalkingRule(onset_s=1.0, release_s=1.5, min_duration_s=3.0, severity="medium"),
        "Sustained mouth movement (release_s bridges the pauses between words); with a microphone ([audio]), "
        "speech while the candidate's mouth moves.",
    )
    # The voice rules need sound: the microphone ([audio]), or a replayed file's sound track.
    speech: RuleTiming = _rule(
        RuleTiming(onset_s=0.25, release_s=0.6, min_duration_s=0.5, severity="low", weight=0.0),
        "Speech heard (voice activity, [audio]): the timeline's record of when anyone spoke; not scored, not "
        "sent as an alert, no clip.",
    )
    other_voice: OtherVoiceRule = _rule(
        OtherVoiceRule(onset_s=0.5, release_s=1.0, min_duration_s=1.5, severity="high", weight=2.0),
        "Speech while the candidate's mouth is still or out of view: someone else speaking, a phone on "
        "speaker, or a whisper behind a hand.",
    )
    # The inference stage reports a phone only after repeated sightings (inference.object_confirm_passes),
    # with their mean score: so the phone rule accepts that evidence at the per-pass sighting score.
    phone: ObjectRule = _rule(
        ObjectRule(onset_s=1.0, release_s=2.0, severity="high", weight=3.0, min_score=0.25),
        'The object detector sees a "cell phone" (confirmed over several object passes).',
    )
    book: ObjectRule = _rule(
        ObjectRule(onset_s=2.0, release_s=2.0, severity="medium", weight=2.0),
        'The object detector sees a "book".',
    )
    extra_person: ObjectRule = _rule(
        ObjectRule(onset_s=2.0, release_s=2.0, severity="high", weight=2.0),
        'A "person" box that does not hold the candidate\'s face (with no face in view, a second person).',
    )
    camera_lost: RuleTiming = _rule(
        RuleTiming(onset_s=0.0, release_s=0.0, severity="high", weight=1.0),
        "No frame for camera.timeout_s (capture has already waited that long).",
    )
    microphone_lost: RuleTiming = _rule(
        RuleTiming(onset_s=0.0, release_s=0.0, severity="medium", weight=0.5),
        "No sound from the microphone for audio.timeout_s, or digital silence for audio.silent_s.",
    )
    camera_covered: CameraCoveredRule = _rule(
        CameraCoveredRule(onset_s=2.0, release_s=1.0, severity="high"),
        "A lens cap, a hand, a sheet of paper.",
    )
    camera_blurred: CameraBlurredRule = _rule(
        CameraBlurredRule(onset_s=5.0, release_s=2.0, severity="low", weight=0.5),
        "The picture is out of focus; not raised while the camera counts as covered.",
    )
    camera_frozen: CameraFrozenRule = _rule(
        CameraFrozenRule(onset_s=5.0, release_s=1.0, severity="high"),
        "The picture repeats; not raised while the camera counts as covered.",
    )
    camera_moved: CameraMovedRule = _rule(
        CameraMovedRule(onset_s=3.0, release_s=2.0, severity="medium", weight=0.5),
        "The view no longer matches the session's reference view; not raised while the camera counts as covered.",
    )
    # Embeddings come every identity.interval_s: onset 2 s is three mismatching ones in a row at 1 s.
    identity_mismatch: RuleTiming = _rule(
        RuleTiming(onset_s=2.0, release_s=3.0, severity="high", weight=3.0),
        "The candidate is not the person who checked in: similarity to the reference below identity.threshold "
        "([identity]; off unless identity.enabled).",
    )
    screen: ScreenConfig = Field(
        ScreenConfig(), description="Where the candidate is meant to look: the screen's size and distance, and "
        "where the camera sits."
    )
    calibration: CalibrationConfig = CalibrationConfig()
    severity_factors: SeverityFactors = SeverityFactors()

    @model_validator(mode="before")
    @classmethod
    def _override_defaults_key_by_key(cls, raw):
        """`[rules.no_face] onset_s = 3` changes only onset_s; the rule keeps its other defaults."""
        if not isinstance(raw, dict):
            return raw
        merged = dict(raw)
        for name, given in raw.items():
            if isinstance(given, dict) and name in cls.model_fields:
                merged[name] = cls.model_fields[name].default.model_dump() | given
        return merged


class SessionConfig(_Section):
    auto_start: bool = Field(
        False,
        description="Open a session as soon as the daemon is up (a kiosk that boots straight into proctoring).",
    )
    stop_at_end_of_source: bool = Field(
        True, description="file sources without loop: close the session when the video ends."
    )
    candidate_name: str = Field(
        "", description="The candidate of the sessions auto_start and the panel button open."
    )
    candidate_id: str = Field("", description="Their candidate id.")
    exam_id: str = Field("", description="Their exam id.")
    min_analysed_share: float = Field(
        0.8,
        ge=0,
        le=1,
        description="A session whose frames covered less than this share of its duration (the rest the camera "
        "was lost) is \"not assessable\": its report, page and MQTT summary give no integrity score. 0 = always "
        "scored.",
    )


MqttCommand = Literal[COMMAND_NAMES]  # the request types of daemon/sync/contract.py


class MqttConfig(_Section):
    """Alerts, session messages and the retained status to the supervisors' broker; remote commands."""

    enabled: bool = Field(
        True, description="The daemon keeps running (and queues alerts) while the broker is away."
    )
    host: str = Field("127.0.0.1", description="The broker's host name or address.")
    port: Port = Field(1883, description="The broker's port.")
    protocol: Literal["5", "3.1.1"] = Field(
        "5", description='"5", or "3.1.1" for a broker too old for MQTT 5 (mosquitto < 1.6).'
    )
    topic_prefix: TopicSegment = Field(
        "proctor", description="Topics: <prefix>/<site>/<kiosk>/{status,alert,session,cmd,cmd/result}."
    )
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keepalive.")
    reconnect_max_s: int = Field(
        30, ge=1, le=600, description="Reconnect backoff doubles from 1 s up to this."
    )
    status_interval_s: int = Field(
        30,
        ge=1,
        le=3600,
        description="The retained status is published on every change and at least this often.",
    )
    tls: bool = Field(False, description="Connect over TLS.")
    ca_file: str = Field("", description='tls: the CA bundle ("" = the system\'s CAs).')
    cert_file: str = Field("", description="tls: a client certificate, for brokers that require one...")
    key_file: str = Field("", description="...and its key.")
    username: str = Field("", description="The broker login.")
    password_file: str = Field(
        "",
        description="The file holding its password (a relative name is looked up in $CREDENTIALS_DIRECTORY, "
        "systemd's LoadCredential=); never in this file, never logged.",
    )
    commands: list[MqttCommand] = Field(
        list(COMMAND_NAMES),
        description="Remote commands accepted on <prefix>/<site>/<kiosk>/cmd ([] = subscribe to none).",
    )
    command_token_file: str = Field(
        "",
        description='A file holding a shared secret every command must carry as "token" ("" = rely on '
        "the broker's ACLs alone).",
    )
    command_ids_kept_s: int = Field(
        7 * 86400,
        ge=60,
        le=366 * 86400,
        description="How long a command's request_id is remembered (in the database, across restarts): the same "
        "id again within this time gets the first answer and does not run again.",
    )

    # A key that is set needs another one set too: key -> (the other key, why).
    _NEEDS: ClassVar[dict[str, tuple[tuple[str, str], ...]]] = {
        "ca_file": (("tls", "needs tls = true"),),
        "cert_file": (("tls", "needs tls = true"),),
        "key_file": (
            ("tls", "needs tls = true"),
            ("cert_file", "needs cert_file (the client certificate it belongs to)"),
        ),
        "password_file": (("username", "needs username"),),
    }

    @field_validator(*_NEEDS)
    @classmethod
    def _needs_its_companion(cls, value: str, info) -> str:
        for other, why in cls._NEEDS[info.field_name]:
            if value and not info.data.get(other):
                raise ValueError(why)
        return value


class WebConfig(_Section):
    """The web page. Every page but /healthz needs a named user's login (`proctord user add NAME --role ROLE`,
    kept in the database; README "Users and roles"). The shared password below is the older way: it logs in
    as the one user "technician" until the first named user is added, and then opens nothing."""

    enabled: bool = Field(True, description="Serve the page.")
    host: str = Field("127.0.0.1", description="Bind to the LAN address only on purpose.")
    port: Port = Field(8080, description="The page's port.")
    password_hash: str = Field(
        "",
        description="A shared technician password's hash from `proctord hash-password` (never the password "
        "itself: it is refused, and never shown in an error). Ignored once named users exist.",
    )
    password_file: str = Field(
        "",
        description="Or a file holding that hash (a relative name is looked up in $CREDENTIALS_DIRECTORY, "
        "systemd's LoadCredential=).",
    )
    session_lifetime_s: int = Field(
        8 * 3600,
        ge=60,
        le=7 * 86400,
        description="A login lasts this long from the moment the password was given.",
    )
    live_fps: float = Field(
        2.0,
        gt=0,
        le=10,
        description="Live view: at most this many pictures encoded per second, however many browsers watch.",
    )
    proxy_hops: int = Field(
        0,
        ge=0,
        le=5,
        description="Reverse proxies in front of the page whose X-Forwarded-For/-Proto/-Host to trust (0 = none).",
    )


# A gpiozero pin name: "GPIO17" (Broadcom number), "BOARD11" (header pin), "J8:11".
PinName = Annotated[str, Field(min_length=1, max_length=16)]


class GpioConfig(_Section):
    """The front panel (gpiozero): a status light, a buzzer and a button, each optional; off with a log line
    where there is no GPIO."""

    enabled: bool = Field(False, description="Drive the panel.")
    light_pins: list[PinName] = Field(
        [],
        description='[] = no light; ["GPIO17"] = a single LED (states told apart by blinking); three = an '
        "RGB LED (red, green, blue). idle: blue short blink every 2 s, proctoring: green, alert: red fast "
        "blink, fault: yellow slow blink.",
    )
    light_active_high: bool = Field(
        True, description="false for a common-anode RGB LED or an LED wired to 3.3 V."
    )
    buzzer_pin: str = Field(
        "", description='"" = none; e.g. "GPIO18": three short beeps when a high-severity alert starts.'
    )
    button_pin: str = Field(
        "",
        description='"" = none; e.g. "GPIO23" to ground: press = acknowledge the alerts in view, '
        "hold = start/stop a session.",
    )
    button_hold_s: float = Field(
        3.0, gt=0, le=30, description="How long a press must last to count as a hold."
    )

    @field_validator("light_pins")
    @classmethod
    def _one_or_three_pins(cls, pins: list[str]) -> list[str]:
        if len(pins) not in (0, 1, 3):
            raise ValueError("give no pin, one (a single LED) or three (an RGB LED: red, green, blue)")
        return pins

    @model_validator(mode="after")
    def _pins_are_distinct(self) -> GpioConfig:
        pins = [*self.light_pins, self.buzzer_pin, self.button_pin]
        twice = sorted({pin for pin in pins if pin and pins.count(pin) > 1})
        if twice:
            raise ValueError(f"each pin drives one part, but {', '.join(twice)} is given twice")
        return self


class AudioConfig(_Section):
    """The kiosk microphone (README, "Audio"): speech, talking and other_voice events, the sound level, and
    AAC sound in the recordings."""

    enabled: bool = Field(
        False,
        description="Listen to the microphone (a USB webcam's or a USB microphone). Off: no sound is read, "
        "and talking is judged from the mouth alone.",
    )
    device: str = Field(
        "default",
        min_length=1,
        description='The ALSA capture device: "default", "plughw:CARD=Webcam,DEV=0" (a stable name: `arecord '
        '-L`), or "pulse" where PulseAudio or PipeWire owns the sound card.',
    )
    timeout_s: float = Field(
        2.0, gt=0, le=60,
        description="No sound data for this long and the microphone counts as lost (microphone_lost); it is "
        "then reopened.",
    )
    silent_s: float = Field(
        3.0, gt=0, le=600,
        description="Digital silence (every sample exactly zero) for this long is a lost microphone too: a "
        "real microphone always hears its own noise; a muted or dead device delivers flat zeros.",
    )
    reopen_min_s: float = Field(
        0.5, gt=0, le=60, description="Reopen attempts start this long after a loss, doubling while they fail..."
    )
    reopen_max_s: float = Field(10.0, gt=0, le=600, description="...up to this.")
    speech_threshold: Annotated[float, Field(gt=0, lt=1)] = Field(
        0.5,
        description="Speech probability (Silero VAD, per 32 ms) at which speech starts; it ends 0.15 below. "
        "Silero's own default. Measured at it (bench/bench_vad.py): every espeak-ng sentence found, over a "
        "quiet room and over pink noise at -40 dBFS; no speech event on digital silence, pink noise (-60 to -20 "
        "dBFS), fan hum (-40 to -20 dBFS) or the real quiet rooms of the proctoring_ai clips.",
    )
    record: bool = Field(
        True,
        description="Store the sound as AAC in the recordings and clips. false: analysed, never stored (where "
        "an exam board forbids storing it).",
    )

    _backoff_cap_above_start = field_validator("reopen_max_s")(lambda cap, info: _reopen_cap(cap, info, "audio"))


class ServiceConfig(_Section):
    stall_after_s: float = Field(
        10.0,
        ge=1,
        le=600,
        description="No frame analysed this long while the camera is online (or the analysis loop stuck): the "
        "light shows fault and the systemd watchdog is no longer fed, so systemd restarts the daemon. Must be "
        "above camera.timeout_s (a lost camera is not a stall).",
    )


class RecordingConfig(_Section):
    """Session video (H.264, with the microphone's AAC sound when [audio] records it, in fragmented MP4
    segments) and each event's clip and snapshot, in <data_dir>/recordings/<session id>/."""

    enabled: bool = Field(True, description="Record the session and the events' evidence.")
    width: int = Field(
        640,
        ge=64,
        le=4096,
        description="Frames are scaled down to fit width x height (aspect kept, never scaled up).",
    )
    height: int = Field(480, ge=64, le=4096, description="See width.")
    fps: float = Field(15.0, gt=0, le=60, description="At most this many frames a second are recorded.")
    crf: int = Field(26, ge=0, le=51, description="x264 constant quality: lower = better and bigger.")
    preset: Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium"] = Field(
        "veryfast", description="x264 speed preset."
    )
    keyframe_interval_s: float = Field(
        1.0,
        ge=0.2,
        le=10,
        description="One keyframe, hence one MP4 fragment, this often: the most video a power cut can take.",
    )
    segment_s: float = Field(
        300.0,
        ge=1,
        le=3600,
        description="A new segment file this often (each one plays on its own in a browser).",
    )
    pre_roll_s: float = Field(
        5.0, ge=0, le=60, description="An event's clip starts this long before the event..."
    )
    post_roll_s: float = Field(5.0, ge=0, le=60, description="...ends this long after it...")
    clip_max_s: float = Field(300.0, ge=1, le=3600, description="...and lasts at most this long.")
    snapshot_quality: int = Field(90, ge=1, le=100, description="JPEG quality of each event's snapshot.")
    queue_frames: int = Field(
        30,
        ge=1,
        le=600,
        description="Frames waiting for the encoder; more are dropped (and counted), the analysis never waits.",
    )


class RetentionConfig(_Section):
    """What may be deleted, and when (README, "Recording and evidence"). Deletions are logged and kept in
    the database's deletions table."""

    recording_max_age_days: float = Field(
        30.0,
        ge=0,
        description="Plain session recordings (segments) older than this are deleted (0 = no age limit).",
    )
    evidence_max_age_days: float = Field(
        365.0,
        ge=0,
        description="Clips and snapshots: deleted after this, and only once synced (0 = no age limit).",
    )
    min_free_mb: int = Field(
        1024,
        ge=0,
        description="Below this much free space, recordings are deleted (oldest first, then synced evidence) and, "
        "if that is not enough, recording pauses (status: degraded) while proctoring goes on.",
    )
    check_interval_s: float = Field(300.0, ge=1, le=86400, description="How often retention runs.")
    database_reserve_mb: int = Field(
        64,
        ge=0,
        le=4096,
        description="Space set aside for the database (a preallocated file beside it, given up when the disk is "
        "full), so that when the disk fills, recordings stop first and events, alerts and session changes still "
        "commit.",
    )


class UploadConfig(_Section):
    """Store-and-forward of evidence to an S3-compatible object store (README, "Evidence upload")."""

    enabled: bool = Field(False, description="Upload evidence to the object store (needs endpoint, bucket, access_key and secret_key_file).")
    endpoint: str = Field("", description="The store's HOST:PORT, e.g. s3.eu-west-1.amazonaws.com or minio.school.lan:9000.")
    secure: bool = Field(True, description="HTTPS (false only for a store on a trusted network).")
    region: str = Field("", description="The bucket's region (\"\" = ask the store).")
    bucket: str = Field("", description="The bucket; it must exist (the kiosk never creates one).")
    access_key: str = Field("", description="The access key id (not secret: the secret key is in secret_key_file).")
    secret_key_file: str = Field(
        "", description="File holding the secret key (a relative name is looked up in $CREDENTIALS_DIRECTORY)."
    )
    prefix: TopicSegment = Field("proctord", description="First part of every key: <prefix>/<site>/<kiosk>/<session>/<file>.")
    files: Annotated[list[Literal["snapshot", "clip", "segment", "report"]], Field(
        description="What goes up: event snapshots and clips, plain recording segments, and at session end the"
        " reports (JSON, HTML, PDF) with a manifest holding the chain head.",
    )] = ["snapshot", "clip", "report"]
    max_kbytes_per_s: int = Field(
        250, ge=0, description="Bandwidth cap in kB/s, averaged (0 = none): 250 kB/s = 2 Mbit/s, so 30 kiosks"
        " stay within 60 Mbit/s of a school uplink.",
    )
    part_mb: int = Field(8, ge=5, le=512, description="Files above this many MB go up in parts of this size (S3's minimum is 5).")
    retry_min_s: float = Field(5.0, gt=0, le=3600, description="First wait after a failure; doubles (with jitter) per failure.")
    retry_max_s: float = Field(300.0, gt=0, le=86400, description="Longest wait between tries while the store is unreachable.")

    @model_validator(mode="after")
    def _complete_when_enabled(self) -> UploadConfig:
        missing = [key for key in ("endpoint", "bucket", "access_key", "secret_key_file") if not getattr(self, key)]
        if self.enabled and missing:
            raise ValueError(f"upload.enabled = true needs {', '.join(f'upload.{key}' for key in missing)}")
        return self


class Config(_Section):
    """proctord's configuration: one TOML file. Unknown keys are errors. ${VAR} in a string is replaced
    from the environment (e.g. ${STATE_DIRECTORY} under systemd), ${VAR:-x} falls back to x; a variable
    that is not set (and has no fallback) is an error. Check a file with: proctord check-config PATH"""

    kiosk: KioskConfig = KioskConfig()
    paths: PathsConfig = PathsConfig()
    camera: CameraConfig = CameraConfig()
    inference: InferenceConfig = InferenceConfig()
    rules: RulesConfig = RulesConfig()
    session: SessionConfig = SessionConfig()
    mqtt: MqttConfig = MqttConfig()
    web: WebConfig = WebConfig()
    gpio: GpioConfig = GpioConfig()
    audio: AudioConfig = AudioConfig()
    service: ServiceConfig = ServiceConfig()
    recording: RecordingConfig = RecordingConfig()
    retention: RetentionConfig = RetentionConfig()
    upload: UploadConfig = UploadConfig()
    identity: IdentityConfig = IdentityConfig()

    @model_validator(mode="after")
    def _stall_outlasts_a_lost_camera(self) -> Config:
        # Otherwise an unplugged camera would look like a stalled pipeline and restart the daemon.
        if self.service.stall_after_s <= self.camera.timeout_s:
            raise ValueError(
                f"service.stall_after_s: {self.service.stall_after_s} is not allowed: it must be above "
                f"camera.timeout_s ({self.camera.timeout_s}), or a lost camera would count as a stall"
            )
        return self

    @property
    def data_dir(self) -> Path:
        if self.paths.data_dir:
            return Path(self.paths.data_dir)
        if state := os.environ.get("STATE_DIRECTORY"):
            return Path(state.split(":")[0])
        base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
        return Path(base) / "proctord"

    @property
    def models_dir(self) -> Path:
        return Path(self.paths.models_dir) if self.paths.models_dir else self.data_dir / "models"

    @property
    def database_path(self) -> Path:
        return self.data_dir / "proctord.db"

    @property
    def recordings_dir(self) -> Path:
        return self.data_dir / "recordings"


class ConfigError(UserError):
    """A config that cannot be used; `problems` holds one line per bad key."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


# Far above any real config (the example is 15 kB); a config path naming a device or a huge file is refused.
MAX_CONFIG_BYTES = 1_000_000
# The deepest real key is rules.<rule>.<key> holding a list: anything far deeper is not a config.
MAX_NESTING = 8
# A bad value longer than this is shown by its start and its size: an error stays one readable line.
MAX_SHOWN_CHARS = 60


def load_config(path: Path | None = None) -> Config:
    """Read and validate a config file; without a path, the embedded default."""
    if path is None:
        source = f"<embedded {DEFAULT_CONFIG_NAME}>"
        text = resources.files("daemon").joinpath(DEFAULT_CONFIG_NAME).read_text()
    else:
        source = str(path)
        text = _read_text(Path(path), source)
    return parse_config(text, source)


def _read_text(path: Path, source: str) -> str:
    try:
        with path.open("rb") as file:
            data = file.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(source, [f"cannot read the file: {exc.strerror}"]) from exc
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(source, [f"larger than {MAX_CONFIG_BYTES:,} bytes: not a config file"])
    if b"\0" in data:
        raise ConfigError(source, [f"a binary file (a NUL byte at offset {data.index(0)}), not TOML text"])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            source,
            [
                f"line {line}: byte 0x{data[exc.start]:02x} is not UTF-8 (TOML files are UTF-8: save it as UTF-8)"
            ],
        ) from exc


def parse_config(text: str, source: str = "<config>") -> Config:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [f"not valid TOML: {exc}"]) from exc
    except ValueError as exc:  # Python's limit on digits in an int (sys.get_int_max_str_digits)
        raise ConfigError(source, [_longest_number(text)]) from exc
    except RecursionError as exc:
        raise ConfigError(source, [f"{_deepest_line(text)}: arrays nested far too deep"]) from exc
    if deep := _too_deep(raw):
        raise ConfigError(source, [f"{deep}: nested more than {MAX_NESTING} levels deep: not a config value"])
    unset: list[str] = []
    expanded = _expand_env(raw, (), unset)
    try:
        config = Config.model_validate(expanded)
    except ValidationError as exc:
        raise ConfigError(source, unset + [_describe(err) for err in exc.errors()]) from exc
    if unset:
        raise ConfigError(source, unset)
    return config


def _longest_number(text: str) -> str:
    """The problem line for a number too long for Python to read: where it is and its size."""
    run = max(re.finditer(r"[0-9_]+", text), key=lambda m: len(m.group()))
    return f"{_line_of(text, run.start())}: a {len(run.group().replace('_', ''))}-digit number is not allowed"


def _deepest_line(text: str) -> str:
    """Where the line with the most brackets is, as 'line N (key)'."""
    line_start, deepest, at = 0, -1, 0
    for line in text.splitlines(keepends=True):
        brackets = line.count("[") + line.count("{")
        if brackets > deepest:
            deepest, at = brackets, line_start + line.find("=") + 1 if "=" in line else line_start
        line_start += len(line)
    return _line_of(text, at)


def _line_of(text: str, offset: int) -> str:
    line_start = text.rfind("\n", 0, offset) + 1
    key = text[line_start:offset].partition("=")[0].strip()
    return f"line {text.count(chr(10), 0, offset) + 1}" + (f" ({key})" if key and "[" not in key else "")


def _too_deep(raw: dict) -> str | None:
    """The dotted key of a value nested deeper than MAX_NESTING, if any (walked without recursion)."""
    pending: list[tuple[tuple, object]] = [((), raw)]
    while pending:
        key, value = pending.pop()
        if len(key) > MAX_NESTING:
            return ".".join(str(part) for part in key[: MAX_NESTING + 1]) + "..."
        if isinstance(value, dict):
            pending.extend(((*key, name), item) for name, item in value.items())
        elif isinstance(value, list):
            pending.extend(((*key, index), item) for index, item in enumerate(value))
    return None


# ${VAR}, or ${VAR:-fallback} as in the shell.
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand_env(value, key: tuple, unset: list[str]):
    """Expand ${VAR} in strings, so one file serves a kiosk (${STATE_DIRECTORY}) and a laptop.
    A variable that is not set is a problem to report, not an empty string."""
    if isinstance(value, dict):
        return {name: _expand_env(item, (*key, name), unset) for name, item in value.items()}
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match) -> str:
        name, fallback = match.groups()
        if name not in os.environ and fallback is not None:
            return fallback
        if name not in os.environ:
            unset.append(
                f"{'.'.join(key)}: {value!r} names the environment variable {name}, which is not set"
            )
            return match.group(0)
        return os.environ[name]

    return _ENV_REFERENCE.sub(substitute, value)


def _describe(err) -> str:
    if not err["loc"]:  # a check across sections: its message names the keys
        return err["msg"].removeprefix("Value error, ")
    key = ".".join(str(part) for part in err["loc"])
    if err["type"] == "extra_forbidden":
        allowed = ", ".join(sorted(_fields_at(err["loc"][:-1])))
        return f"{key}: unknown key (allowed here: {allowed})"
    if err["type"] == "missing":
        return f"{key}: required key is missing"
    message = err["msg"].removeprefix("Value error, ")
    return f"{key}: {_shown(err['input'])} is not allowed: {message}"


def _shown(value) -> str:
    """A bad value as the error line shows it: whole when short, else its start and its size."""
    if isinstance(value, int) and abs(value) >= 10**MAX_SHOWN_CHARS:
        return f"a {len(str(abs(value)))}-digit number"
    text = repr(value)
    return text if len(text) <= MAX_SHOWN_CHARS else f"{text[:MAX_SHOWN_CHARS]}... ({len(text)} characters)"



def _fields_at(loc: tuple) -> list[str]:
    model: type[BaseModel] = Config
    for part in loc:
        annotation = model.model_fields[part].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)
