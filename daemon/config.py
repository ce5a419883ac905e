"""Configuration: one TOML file validated into typed, frozen objects at start-up.

Unknown keys are errors (a typo must not silently fall back to a default). Every problem is reported
as one line naming the key, the bad value and what is allowed.
"""

from __future__ import annotations

import os
import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DEFAULT_CONFIG_NAME = "default_config.toml"


class _Section(BaseModel):
    # strict: "10" is not a number and "yes" not a boolean; a quoted value is a typo to report.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


Seconds = Annotated[float, Field(ge=0)]
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
    kind: Literal["file", "opencv"] = "opencv"
    # file: a video path. opencv: a device path (/dev/video0) or index ("0").
    path: str = "0"
    fps: Annotated[float, Field(gt=0, le=120)] = 15.0
    width: Annotated[int, Field(ge=64, le=4096)] = 640
    height: Annotated[int, Field(ge=64, le=4096)] = 480
    @field_validator("path")
    @classmethod
    def _path_is_given(cls, path: str) -> str:
        if not path.strip():
            raise ValueError("a device index, device path or video file is required")
        return path

    # file only: pace frames at the file's own rate, as a camera would deliver them.
    realtime: bool = True
    loop: bool = False


class InferenceConfig(_Section):
    threads: Annotated[int, Field(ge=1, le=16)] = 1
    face_model: Literal["short", "full"] = "short"
    face_min_score: Annotated[float, Field(gt=0, lt=1)] | None = None


class RuleTiming(_Section):
    """How long a condition must hold before an event starts, and be gone before it ends."""

    onset_s: Seconds
    release_s: Seconds
    severity: Literal["low", "medium", "high"]
    weight: Annotated[float, Field(ge=0)] = 1.0


class RulesConfig(_Section):
    no_face: RuleTiming = RuleTiming(onset_s=2.0, release_s=1.0, severity="high", weight=1.0)
    multiple_faces: RuleTiming = RuleTiming(onset_s=1.0, release_s=1.0, severity="high", weight=1.5)
    # Capture already waited camera.timeout_s before calling the camera lost.
    camera_lost: RuleTiming = RuleTiming(onset_s=0.0, release_s=0.0, severity="high", weight=1.0)

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


class MqttConfig(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: Port = 1883
    topic_prefix: TopicSegment = "proctor"
    keepalive_s: Annotated[int, Field(ge=5, le=3600)] = 30


class WebConfig(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: Port = 8080


class Config(_Section):
    kiosk: KioskConfig = KioskConfig()
    paths: PathsConfig = PathsConfig()
    camera: CameraConfig = CameraConfig()
    inference: InferenceConfig = InferenceConfig()
    rules: RulesConfig = RulesConfig()
    session: SessionConfig = SessionConfig()
    mqtt: MqttConfig = MqttConfig()
    web: WebConfig = WebConfig()

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
