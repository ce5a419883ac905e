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

DEFAULT_CONFIG_NAME = "default_config.toml"


class _Section(BaseModel):
    # strict: "10" is not a number and "yes" not a boolean; a quoted value is a typo to report.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


Seconds = Annotated[float, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
Port = Annotated[int, Field(ge=1, le=65535)]
# A topic segment: MQTT wildcards and separators would let one kiosk write into another's topics.
TopicSegment = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


class KioskConfig(_Section):
    site: TopicSegment = "default-site"
    name: TopicSegment = "kiosk-1"


class PathsConfig(_Section):
    # Empty means: $STATE_DIRECTORY under systemd, else the per-user data directory.
    data_dir: str = ""
    models_dir: str = ""


class CameraConfig(_Section):
    """The frame source; how to configure each kind: config/proctord.example.toml and daemon/capture."""

    kind: Literal["opencv", "picamera2", "gstreamer", "url", "file"] = "opencv"
    # opencv: a V4L2 device path (/dev/video0) or index ("0"). picamera2: the camera number ("0").
    # gstreamer: a pipeline ending in appsink. url: rtsp://, rtsps://, http:// or https://. file: a video.
    path: str = "0"
    fps: Annotated[float, Field(gt=0, le=120)] = 15.0
    width: Annotated[int, Field(ge=64, le=4096)] = 640
    height: Annotated[int, Field(ge=64, le=4096)] = 480
    # No frame for this long and the camera counts as lost (camera_lost); the source is then reopened
    # after reopen_min_s, doubling up to reopen_max_s while it keeps failing.
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 2.0
    reopen_min_s: Annotated[float, Field(gt=0, le=60)] = 0.5
    reopen_max_s: Annotated[float, Field(gt=0, le=600)] = 10.0

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
            raise ValueError("a GStreamer pipeline must end in an appsink (... ! video/x-raw,format=BGR ! appsink)")
        return path

    @field_validator("reopen_max_s")
    @classmethod
    def _backoff_cap_above_start(cls, cap: float, info: ValidationInfo) -> float:
        if cap < info.data.get("reopen_min_s", 0):
            raise ValueError(f"must be at least camera.reopen_min_s ({info.data['reopen_min_s']})")
        return cap

    # file only: pace frames at the file's own rate, as a camera would deliver them.
    realtime: bool = True
    loop: bool = False


class InferenceConfig(_Section):
    threads: Annotated[int, Field(ge=1, le=16)] = 1
    face_model: Literal["short", "full"] = "short"
    face_min_score: Annotated[float, Field(gt=0, lt=1)] | None = None
    # Faces that get landmarks, pose and gaze; faces beyond are still counted (detector boxes only).
    max_faces: Annotated[int, Field(ge=1, le=16)] = 4
    # While faces are tracked the detector is skipped, but still runs this often (0 = every frame).
    detect_interval_s: Annotated[float, Field(ge=0, le=10)] = 0.2
    # Face-presence score of the landmark model under which a tracked face counts as lost.
    landmark_min_score: Annotated[float, Field(gt=0, lt=1)] = 0.5
    # Read one eye's iris per frame, taking turns (the other eye's last reading follows its eye corners):
    # halves the iris model's cost. false = both eyes on every frame.
    iris_alternate_eyes: bool = True
    # Camera optics for the head pose: [fx, fy, cx, cy] in pixels of the delivered frame, or unset to
    # derive them from the horizontal field of view (square pixels, principal point at the centre).
    camera_hfov_deg: Annotated[float, Field(gt=10, lt=170)] = 60.0
    camera_intrinsics: Annotated[list[PositiveFloat], Field(min_length=4, max_length=4)] | None = None
    object_model: Literal["yolox", "ssd", "off"] = "yolox"
    object_rate_hz: Annotated[float, Field(gt=0, le=30)] = 2.0
    object_classes: Annotated[list[str], Field(min_length=1)] = ["person", "cell phone", "book", "laptop"]
    object_min_score: Annotated[float, Field(gt=0, lt=1)] = 0.3
    # Also look again, zoomed in, around each face (small phones): one more detector run per face.
    object_face_crops: bool = True

    @field_validator("object_classes")
    @classmethod
    def _known_classes(cls, names: list[str]) -> list[str]:
        from daemon.inference.coco import COCO_CLASSES  # plain data; keeps the config free of model code

        unknown = [name for name in names if name not in COCO_CLASSES]
        if unknown:
            raise ValueError(f"not COCO class names: {', '.join(unknown)} (e.g. {', '.join(COCO_CLASSES[:4])}, ...)")
        return names


class RuleTiming(_Section):
    """When an event starts, ends and is published (README, "Events"): the condition must hold
    `onset_s` before the event starts and be gone `release_s` before it ends (shorter gaps are bridged),
    and the event is published only once it has lasted `min_duration_s` (shorter ones are dropped)."""

    onset_s: Seconds
    release_s: Seconds
    severity: Literal["low", "medium", "high"]
    weight: Annotated[float, Field(ge=0)] = 1.0
    min_duration_s: Seconds = 0.0


Degrees = Annotated[float, Field(gt=0, le=90)]
Share = Annotated[float, Field(gt=0, le=1)]


class LookingAwayRule(RuleTiming):
    # Limits on the candidate's head pose and gaze (head plus eyes), in degrees from the neutral that
    # calibration learnt: beyond any one of them the candidate looks away. Tuned on the shared clips (a
    # head turned 10-15 degrees, eyes 14-20 degrees off-centre; README "Measured figures").
    head_yaw_deg: Degrees = 10.0
    head_pitch_deg: Degrees = 10.0
    gaze_yaw_deg: Degrees = 10.0
    gaze_pitch_deg: Degrees = 10.0


class EyesClosedRule(RuleTiming):
    # Eye openness (lid gap / eye width, both eyes averaged) below this counts as closed.
    max_openness: Share = 0.12


class TalkingRule(RuleTiming):
    # Sustained mouth movement: the standard deviation of the mouth openness (inner-lip gap / mouth
    # width) over the last window_s reaches min_mouth_std.
    window_s: Annotated[float, Field(gt=0, le=10)] = 1.0
    min_mouth_std: Share = 0.03


class ObjectRule(RuleTiming):
    # A detection of the rule's COCO label with at least this score; results of the object detector
    # older than max_age_s (it stalled) are not evidence.
    min_score: Share = 0.5
    max_age_s: Annotated[float, Field(gt=0)] = 3.0


class CameraCoveredRule(RuleTiming):
    # Mean luma below max_brightness (a lens cap) or luma deviation below max_contrast (a hand, a sheet).
    # Measured (bench/bench_capture.py): covered 0.5-5.4 contrast, a dim room 9-14, a real scene 25-60.
    max_brightness: Annotated[float, Field(ge=0, le=255)] = 20.0
    max_contrast: Annotated[float, Field(ge=0, le=255)] = 7.0


class CameraBlurredRule(RuleTiming):
    # Sharpness relative to contrast (variance of the Laplacian / contrast**2, so exposure does not
    # count) below this. Measured: sharp 0.039-0.115, badly defocused 0.010-0.016. Not raised while the
    # camera counts as covered.
    max_relative_sharpness: Annotated[float, Field(ge=0)] = 0.02


class CameraFrozenRule(RuleTiming):
    # Mean absolute luma change to the previous frame at or below this: the picture repeats (a frozen
    # picture gives exactly 0; a live camera's noise and a compressed stream more, 0.017 at the least in
    # the shared videos). Not raised while the camera counts as covered.
    max_change: Annotated[float, Field(ge=0, le=255)] = 0.005


class CameraMovedRule(RuleTiming):
    # view_shift from the session's reference view (0 same view, 1 nothing in common) at or above this.
    # Not raised while the camera counts as covered.
    min_view_shift: Share = 0.5


class CalibrationConfig(_Section):
    # The session's first duration_s learn the candidate's neutral head pose and gaze (the median over the
    # frames with one face); a candidate not seen by then is calibrated on the first min_samples such
    # frames. The neutral is clamped to max_neutral_deg, so a candidate turned away throughout
    # calibration cannot hide later looking away.
    duration_s: Annotated[float, Field(ge=0, le=300)] = 3.0
    min_samples: Annotated[int, Field(ge=1, le=10_000)] = 10
    max_neutral_deg: Degrees = 20.0


class SeverityFactors(_Section):
    # Integrity score: each event type's deduction is multiplied by the factor of its severity.
    low: Annotated[float, Field(ge=0)] = 0.25
    medium: Annotated[float, Field(ge=0)] = 0.5
    high: Annotated[float, Field(ge=0)] = 1.0


class RulesConfig(_Section):
    no_face: RuleTiming = RuleTiming(onset_s=2.0, release_s=1.0, severity="high", weight=1.0)
    multiple_faces: RuleTiming = RuleTiming(onset_s=1.0, release_s=1.0, severity="high", weight=1.5)
    # A look away is short: onset 0.5 s, and a 2 s event may bridge the moments the head swings back.
    looking_away: LookingAwayRule = LookingAwayRule(
        onset_s=0.5, release_s=1.5, min_duration_s=2.0, severity="medium", weight=1.0
    )
    eyes_closed: EyesClosedRule = EyesClosedRule(onset_s=2.0, release_s=0.5, severity="medium", weight=0.5)
    talking: TalkingRule = TalkingRule(onset_s=1.0, release_s=1.5, min_duration_s=3.0, severity="medium")
    phone: ObjectRule = ObjectRule(onset_s=1.0, release_s=2.0, severity="high", weight=3.0)
    book: ObjectRule = ObjectRule(onset_s=2.0, release_s=2.0, severity="medium", weight=2.0)
    extra_person: ObjectRule = ObjectRule(onset_s=2.0, release_s=2.0, severity="high", weight=2.0)
    # Capture already waited camera.timeout_s before calling the camera lost.
    camera_lost: RuleTiming = RuleTiming(onset_s=0.0, release_s=0.0, severity="high", weight=1.0)
    camera_covered: CameraCoveredRule = CameraCoveredRule(onset_s=2.0, release_s=1.0, severity="high")
    camera_blurred: CameraBlurredRule = CameraBlurredRule(onset_s=5.0, release_s=2.0, severity="low", weight=0.5)
    camera_frozen: CameraFrozenRule = CameraFrozenRule(onset_s=5.0, release_s=1.0, severity="high")
    camera_moved: CameraMovedRule = CameraMovedRule(onset_s=3.0, release_s=2.0, severity="medium", weight=0.5)
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
    # Open a session as soon as the daemon is up (a kiosk that boots straight into proctoring).
    auto_start: bool = False
    # file sources without loop: close the session when the video ends.
    stop_at_end_of_source: bool = True
    candidate_name: str = ""
    candidate_id: str = ""
    exam_id: str = ""


MqttCommand = Literal["ping", "snapshot", "start_session", "stop_session"]


class MqttConfig(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: Port = 1883
    # "5" unless the broker is too old for MQTT 5 (mosquitto < 1.6).
    protocol: Literal["5", "3.1.1"] = "5"
    topic_prefix: TopicSegment = "proctor"
    keepalive_s: Annotated[int, Field(ge=5, le=3600)] = 30
    # Reconnect backoff doubles from 1 s up to this.
    reconnect_max_s: Annotated[int, Field(ge=1, le=600)] = 30
    # The retained status is re-published on every change and at least this often.
    status_interval_s: Annotated[int, Field(ge=1, le=3600)] = 30
    tls: bool = False
    # TLS only: "" = the system's CAs; cert_file/key_file = a client certificate.
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    username: str = ""
    # The password's file (a relative name is looked up in $CREDENTIALS_DIRECTORY); never in this file.
    password_file: str = ""
    # Remote commands this kiosk accepts on <prefix>/<site>/<kiosk>/cmd ([] = subscribe to none).
    commands: list[MqttCommand] = ["ping", "snapshot", "start_session", "stop_session"]
    # A shared secret every command must carry as "token" ("" = rely on the broker's ACLs alone).
    command_token_file: str = ""

    # A key that is set needs another one set too: key -> (the other key, why).
    _NEEDS: ClassVar[dict[str, tuple[tuple[str, str], ...]]] = {
        "ca_file": (("tls", "needs tls = true"),),
        "cert_file": (("tls", "needs tls = true"),),
        "key_file": (("tls", "needs tls = true"), ("cert_file", "needs cert_file (the client certificate it belongs to)")),
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
    enabled: bool = True
    host: str = "127.0.0.1"
    port: Port = 8080
    # The technician password as a hash from `proctord hash-password` (never the password itself), or
    # password_file: a file holding that hash (a relative name is looked up in $CREDENTIALS_DIRECTORY).
    # Checked when the web page starts, so a mistyped password never lands in an error message.
    password_hash: str = ""
    password_file: str = ""
    # A login lasts this long from the moment the password was given.
    session_lifetime_s: Annotated[int, Field(ge=60, le=7 * 86400)] = 8 * 3600
    # The most live-view pictures encoded per second, however many browsers watch.
    live_fps: Annotated[float, Field(gt=0, le=10)] = 2.0
    # Reverse proxies in front of the page whose X-Forwarded-For/-Proto/-Host headers to trust (0 = none).
    proxy_hops: Annotated[int, Field(ge=0, le=5)] = 0


# A gpiozero pin name: "GPIO17" (Broadcom number), "BOARD11" (header pin), "J8:11".
PinName = Annotated[str, Field(min_length=1, max_length=16)]


class GpioConfig(_Section):
    """The front panel: a status light, a buzzer and a button, each optional."""

    enabled: bool = False
    # [] = no light; one pin = a single LED (states told apart by blinking); three = an RGB LED (red, green, blue).
    light_pins: list[PinName] = []
    light_active_high: bool = True  # false for a common-anode RGB LED or an LED wired to 3.3 V
    buzzer_pin: str = ""  # "" = none; beeps on high-severity alerts
    button_pin: str = ""  # "" = none; press: acknowledge the alerts in view, hold: start/stop a session
    button_hold_s: Annotated[float, Field(gt=0, le=30)] = 3.0

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


class ServiceConfig(_Section):
    # The pipeline is stalled when no frame is analysed for this long while the camera is online, or the
    # analysis loop stops: the light shows fault and the systemd watchdog is no longer fed, so systemd
    # restarts the daemon. Keep it above the camera's own timeout (a lost camera is not a stall).
    stall_after_s: Annotated[float, Field(ge=1, le=600)] = 10.0


class RecordingConfig(_Section):
    """Session video (H.264 in fragmented MP4 segments) and each event's clip and snapshot."""

    enabled: bool = True
    # Frames are scaled down to fit width x height (aspect kept, never scaled up) and taken at most fps times a second.
    width: Annotated[int, Field(ge=64, le=4096)] = 640
    height: Annotated[int, Field(ge=64, le=4096)] = 480
    fps: Annotated[float, Field(gt=0, le=60)] = 15.0
    # x264 constant quality (lower = better and bigger) and speed preset.
    crf: Annotated[int, Field(ge=0, le=51)] = 26
    preset: Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium"] = "veryfast"
    # One keyframe, hence one MP4 fragment, this often: the most video a power cut can take.
    keyframe_interval_s: Annotated[float, Field(ge=0.2, le=10)] = 1.0
    segment_s: Annotated[float, Field(ge=1, le=3600)] = 300.0
    # Each event's clip runs from pre_roll_s before its start to post_roll_s after its end, at most clip_max_s.
    pre_roll_s: Annotated[float, Field(ge=0, le=60)] = 5.0
    post_roll_s: Annotated[float, Field(ge=0, le=60)] = 5.0
    clip_max_s: Annotated[float, Field(ge=1, le=3600)] = 300.0
    snapshot_quality: Annotated[int, Field(ge=1, le=100)] = 90
    # Frames waiting for the encoder; more are dropped (and counted), the analysis never waits.
    queue_frames: Annotated[int, Field(ge=1, le=600)] = 30


class RetentionConfig(_Section):
    """What may be deleted, and when (README, "Recording and evidence"). 0 days = no age limit."""

    # Plain session recordings (segments) older than this are deleted.
    recording_max_age_days: Annotated[float, Field(ge=0)] = 30.0
    # Clips and snapshots: only once synced, and only after this long.
    evidence_max_age_days: Annotated[float, Field(ge=0)] = 365.0
    # Below this much free space, recordings are deleted (oldest first, then synced evidence) and, if that
    # is not enough, recording pauses (status: degraded) while proctoring goes on.
    min_free_mb: Annotated[int, Field(ge=0)] = 1024
    check_interval_s: Annotated[float, Field(ge=1, le=86400)] = 300.0


class Config(_Section):
    kiosk: KioskConfig = KioskConfig()
    paths: PathsConfig = PathsConfig()
    camera: CameraConfig = CameraConfig()
    inference: InferenceConfig = InferenceConfig()
    rules: RulesConfig = RulesConfig()
    session: SessionConfig = SessionConfig()
    mqtt: MqttConfig = MqttConfig()
    web: WebConfig = WebConfig()
    gpio: GpioConfig = GpioConfig()
    service: ServiceConfig = ServiceConfig()
    recording: RecordingConfig = RecordingConfig()
    retention: RetentionConfig = RetentionConfig()

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


class ConfigError(Exception):
    """A config that cannot be used; `problems` holds one line per bad key."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


def load_config(path: Path | None = None) -> Config:
    """Read and validate a config file; without a path, the embedded default."""
    if path is None:
        source = f"<embedded {DEFAULT_CONFIG_NAME}>"
        text = resources.files("daemon").joinpath(DEFAULT_CONFIG_NAME).read_text()
    else:
        source = str(path)
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(source, [f"cannot read the file: {exc.strerror}"]) from exc
    return parse_config(text, source)


def parse_config(text: str, source: str = "<config>") -> Config:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [f"not valid TOML: {exc}"]) from exc
    unset: list[str] = []
    expanded = _expand_env(raw, (), unset)
    try:
        config = Config.model_validate(expanded)
    except ValidationError as exc:
        raise ConfigError(source, unset + [_describe(err) for err in exc.errors()]) from exc
    if unset:
        raise ConfigError(source, unset)
    return config


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
            unset.append(f"{'.'.join(key)}: {value!r} names the environment variable {name}, which is not set")
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
    return f"{key}: {err['input']!r} is not allowed: {message}"


def _fields_at(loc: tuple) -> list[str]:
    model: type[BaseModel] = Config
    for part in loc:
        annotation = model.model_fields[part].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)
