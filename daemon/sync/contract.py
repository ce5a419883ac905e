"""The MQTT topic contract: which topic carries what, and the payloads (README "MQTT topic contract",
docs/asyncapi.yaml).

Topics: <prefix>/<site>/<kiosk>/status (retained), .../alert, .../session, .../snapshot, .../evidence,
.../cmd and .../cmd/result. Every alert, session, snapshot and evidence message carries a stable `id`,
so a supervisor can drop duplicates.
The commands a kiosk accepts on .../cmd are the request types below; their names derive from them.
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Annotated, Literal, Union, get_args

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, TypeAdapter

from daemon.candidate import CandidateDetails
from daemon.events.model import EventChange
from daemon.store.records import STORE_OK, OutboxMessage, SessionRecord, StoreSummary

if TYPE_CHECKING:  # config.py takes the command names from here
    from daemon.config import Config

CONTRACT_VERSION = 1


@dataclass(frozen=True, slots=True)
class Topics:
    prefix: str
    site: str
    kiosk: str

    @classmethod
    def from_config(cls, config: Config) -> Topics:
        return cls(config.mqtt.topic_prefix, config.kiosk.site, config.kiosk.name)

    def _topic(self, leaf: str) -> str:
        return f"{self.prefix}/{self.site}/{self.kiosk}/{leaf}"

    @property
    def status(self) -> str:
        return self._topic("status")

    @property
    def alert(self) -> str:
        return self._topic("alert")

    @property
    def session(self) -> str:
        return self._topic("session")

    @property
    def snapshot(self) -> str:
        return self._topic("snapshot")

    @property
    def evidence(self) -> str:
        return self._topic("evidence")

    @property
    def command(self) -> str:
        return self._topic("cmd")

    @property
    def command_result(self) -> str:
        return self._topic("cmd/result")

    def _header(self, message_id: str, kind: str) -> dict:
        return {"v": CONTRACT_VERSION, "id": message_id, "kind": kind, "site": self.site, "kiosk": self.kiosk}

    def alert_message(self, change: EventChange) -> OutboxMessage:
        message_id = f"{change.event.id}:{change.kind}"
        payload = self._header(message_id, change.kind) | {
            "reason": change.reason or ("cleared" if change.kind == "end" else None),
            "session_id": change.event.session_id,
            "event": asdict(change.event),
        }
        return OutboxMessage(message_id, self.alert, _dumps(payload))

    def session_message(self, session: SessionRecord, kind: str, summary: dict | None = None) -> OutboxMessage:
        message_id = f"{session.id}:{kind}"
        payload = self._header(message_id, kind) | {"session": asdict(session)}
        if summary is not None:
            payload["summary"] = summary
        return OutboxMessage(message_id, self.session, _dumps(payload))

    def snapshot_message(self, event_id: str, session_id: str, at: float, jpeg: bytes) -> OutboxMessage:
        """The moment an alert started, as a small JPEG (base64) for the supervisor's console."""
        message_id = f"{event_id}:snapshot"
        payload = self._header(message_id, "snapshot") | {
            "alert_id": f"{event_id}:start", "event_id": event_id, "session_id": session_id, "at": at,
            "content_type": "image/jpeg", "size": len(jpeg), "jpeg_base64": base64.b64encode(jpeg).decode(),
        }
        return OutboxMessage(message_id, self.snapshot, _dumps(payload))

    def evidence_message(self, uploaded: UploadedFile) -> OutboxMessage:
        """A file the object store now holds, with its sha256 (checked by a HEAD before this was sent)."""
        message_id = f"evidence:{uploaded.key}"
        payload = self._header(message_id, "uploaded") | asdict(uploaded)
        return OutboxMessage(message_id, self.evidence, _dumps(payload))

    def status_payload(self, status: KioskStatus, at: float, outbox_backlog: int | None) -> str:
        """`outbox_backlog` is None when the outbox cannot be read (a full disk at start-up)."""
        session = status.session
        return _dumps(
            self._status_header("online", at, None) | {
                "version": status.version,
                "session_id": session.id if session else None,
                "session": {key: getattr(session, key) for key in STATUS_SESSION_FIELDS} if session else None,
                "camera_ok": status.camera_ok,
                "fps": round(status.fps, 1),
                "outbox_backlog": outbox_backlog,
                "store": asdict(status.store),
                "upload": asdict(status.upload),
            }
        )

    def offline_payload(self, at: float | None, reason: str) -> str:
        """`at` is None in the last will: the broker sends it when it notices, at a time we cannot know."""
        return _dumps(
            self._status_header("offline", at, reason) | {
                "version": None, "session_id": None, "session": None, "camera_ok": None, "fps": None,
                "outbox_backlog": None, "store": None, "upload": None,
            }
        )

    def _status_header(self, state: str, at: float | None, reason: str | None) -> dict:
        return {"v": CONTRACT_VERSION, "site": self.site, "kiosk": self.kiosk, "state": state, "at": at,
                "reason": reason}


def fleet_topic(prefix: str, leaf: str) -> str:
    """The subscription to one leaf of every kiosk of every site."""
    return f"{prefix}/+/+/{leaf}"


def split_topic(prefix: str, topic: str) -> tuple[str, str, str] | None:
    """(site, kiosk, leaf) of a contract topic, None for anything else."""
    parts = topic.split("/", 3)
    if len(parts) != 4 or parts[0] != prefix:
        return None
    return parts[1], parts[2], parts[3]


@dataclass(frozen=True, slots=True)
class UploadedFile:
    """What an evidence message says about one file in the object store."""

    session_id: str
    event_id: str | None  # the event of a clip or snapshot
    file_kind: str  # snapshot | clip | segment | report | manifest
    bucket: str
    key: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class UploadSummary:
    """The uploader's side of the retained status: a supervisor sees evidence stuck on a kiosk."""

    state: str  # ok | degraded (the store unreachable or refusing, or queued files gone locally) | off
    reason: str | None
    backlog: int  # files waiting for the object store
    bytes_pending: int
    missing: int  # queued files gone or changed on the local disk: they cannot be sent
    last_upload_at: float | None  # Unix time of the last file the store confirmed
    last_error: str | None


UPLOAD_OFF = UploadSummary("off", "upload.enabled is false", 0, 0, 0, None, None)


@dataclass(frozen=True, slots=True)
class KioskStatus:
    """What the daemon says about itself in the retained status (the publisher adds the backlog)."""

    version: str
    session: SessionRecord | None
    camera_ok: bool  # frames arrive (not ended, no capture error, the last one recent)
    fps: float  # frames analysed per second, smoothed
    store: StoreSummary = STORE_OK  # database writes failing (a full disk) show here
    upload: UploadSummary = UPLOAD_OFF


# The session fields a supervisor's console shows; the full record is on .../session.
STATUS_SESSION_FIELDS = ("id", "candidate_name", "candidate_id", "exam_id", "started_at")


def _dumps(payload: dict) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"))


# --- commands, on <prefix>/<site>/<kiosk>/cmd -------------------------------------------------------------


def _contract_version(value: object) -> int:
    # Exactly the integer: pydantic's Literal[1] would take true and 1.0 as well.
    if type(value) is not int or value != CONTRACT_VERSION:
        raise ValueError(f"must be the number {CONTRACT_VERSION} (the contract version)")
    return value


RequestId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


class CommandRequest(BaseModel):
    """What every command carries. A request id runs once: the same id again gets the first answer."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    v: Annotated[int, PlainValidator(_contract_version)] = CONTRACT_VERSION
    request_id: RequestId
    token: Annotated[str, Field(max_length=1024)] | None = Field(default=None, repr=False)


class Ping(CommandRequest):
    command: Literal["ping"]


class TakeSnapshot(CommandRequest):
    command: Literal["snapshot"]


# A reference photo in start_session: base64 of a JPEG or PNG of at most this many bytes (a face crop or a
# webcam still; the web form takes bigger ones). Carried in the command itself, not fetched from a URL: the
# kiosk makes no request an MQTT sender could aim elsewhere, and the size is bounded before it is read.
MAX_MQTT_REFERENCE_PHOTO_BYTES = 64 * 1024
BASE64_MAX_CHARS = (MAX_MQTT_REFERENCE_PHOTO_BYTES + 2) // 3 * 4


class StartSession(CommandRequest, CandidateDetails):
    command: Literal["start_session"]
    # identity checks on: the candidate's reference photo, base64 (RFC 4648, with padding)
    reference_photo: Annotated[
        str, Field(min_length=4, max_length=BASE64_MAX_CHARS, pattern=r"^[A-Za-z0-9+/]+={0,2}$")
    ] | None = Field(default=None, repr=False)


class StopSession(CommandRequest):
    command: Literal["stop_session"]
    # When given, only that session is stopped: a supervisor acting on a stale view stops nothing.
    session_id: Annotated[str, Field(max_length=64)] | None = None


REQUEST_TYPES = (Ping, TakeSnapshot, StartSession, StopSession)
# The one list of command names: config (mqtt.commands), README and docs/asyncapi.yaml are checked against it.
COMMAND_NAMES: tuple[str, ...] = tuple(get_args(kind.model_fields["command"].annotation)[0] for kind in REQUEST_TYPES)
REQUEST = TypeAdapter(Annotated[Union[REQUEST_TYPES], Field(discriminator="command")])  # noqa: UP007
