"""Remote commands from <prefix>/<site>/<kiosk>/cmd: checked, run, answered on .../cmd/result.

Authorisation comes in layers (README "Remote commands"): the broker's ACLs decide who may publish
to a kiosk's cmd topic at all (docs/mosquitto-acl.conf); `mqtt.commands` lists the commands this kiosk
accepts; with `mqtt.command_token_file`, every command must also carry that shared secret as "token".
A command failing any check, or the schema, is answered with the reason and changes nothing.
Each request id runs once: a command re-sent within `mqtt.command_ids_kept_s` (QoS 1 may deliver twice,
an operator may retry, the kiosk may restart between) gets the first answer again; the ids are kept in
the database. Only a valid, authorised request takes its id, so a corrected retry is not stuck with the
first error. Payloads are parsed within bounds (daemon/untrusted.py), and every payload gets an answer.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import sqlite3
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Protocol, TypeVar

from pydantic import ValidationError

from daemon.candidate import problem_text
from daemon.capture.frame import Frame
from daemon.clock import SYSTEM_CLOCK, Clock
from daemon.events.identity import IdentityReference
from daemon.inference.reference_photo import ReferencePhotoError
from daemon.recording.snapshot import Snapshot
from daemon.session import SessionError
from daemon.store.command_ids import AnsweredRequest
from daemon.store.db import StoreReader
from daemon.store.records import SessionRecord
from daemon.store.writer import StoreWriter
from daemon.sync.contract import (
    BASE64_MAX_CHARS,
    COMMAND_NAMES,
    CONTRACT_VERSION,
    MAX_MQTT_REFERENCE_PHOTO_BYTES,
    REQUEST,
    CommandRequest,
    KioskStatus,
    Ping,
    StartSession,
    StopSession,
    TakeSnapshot,
    Topics,
)
from daemon.untrusted import JsonBounds, UntrustedJsonError, loads_bounded, printable

log = logging.getLogger(__name__)
T = TypeVar("T")

# A command is a flat object of short strings (and start_session's optional base64 reference photo): these
# bounds leave room for nothing else.
COMMAND_JSON = JsonBounds(max_bytes=16 * 1024 + BASE64_MAX_CHARS, max_depth=4, max_number_chars=20)
# Answered request ids kept at most, whatever the window (mqtt.command_ids_kept_s): bounded disk use.
REMEMBERED_AT_MOST = 10_000
# How long an answer waits for its request id to be stored before it goes out regardless.
REMEMBER_TIMEOUT_S = 10.0


class RequestLog(Protocol):
    """Where answered request ids are remembered (the store, durably)."""

    def recall(self, request_id: str) -> AnsweredRequest | None: ...

    def remember(self, answered: AnsweredRequest) -> None: ...


class StoreRequestLog:
    """The request ids in the database, for `kept_s` seconds; written on the store thread."""

    def __init__(self, writer: StoreWriter, reader: StoreReader, kept_s: float, clock: Clock = SYSTEM_CLOCK):
        self._writer = writer
        self._reader = reader
        self._kept_s = kept_s
        self._clock = clock

    def recall(self, request_id: str) -> AnsweredRequest | None:
        return self._reader.answered_request(request_id, since=self._clock.time() - self._kept_s)

    def remember(self, answered: AnsweredRequest) -> None:
        """Returns once committed: an answer goes out only after its id is durable."""
        forget_before = answered.answered_at - self._kept_s
        self._writer.submit(
            lambda store: store.remember_request(answered, forget_before, REMEMBERED_AT_MOST)
        ).result(timeout=REMEMBER_TIMEOUT_S)


@dataclass(frozen=True, slots=True)
class CommandActions:
    """What commands may do to the daemon; service.py provides them."""

    start_session: Callable[..., SessionRecord]  # (info) or (info, IdentityReference from a photo)
    stop_session: Callable[[], SessionRecord]
    latest_frame: Callable[[], Frame | None]
    status: Callable[[], KioskStatus]
    save_snapshot: Callable[[Frame], Snapshot]  # the frame as the running session's evidence
    requests: RequestLog
    # identity checks on: a reference photo's bytes -> the session's reference (ReferencePhotoError if refused)
    read_reference_photo: Callable[[bytes], IdentityReference] | None = None


class Rejected(Exception):
    """A command answered with ok=false; `code` is invalid | unauthorised | refused | failed."""

    def __init__(self, code: str, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


class CommandProcessor:
    """Turns one cmd payload into its result payload. Called from one thread at a time."""

    def __init__(
        self,
        topics: Topics,
        actions: CommandActions,
        allowed: list[str],
        token: str | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ):
        self._topics = topics
        self._actions = actions
        self._allowed = frozenset(allowed)
        self._token = token
        self._clock = clock

    def handle(self, payload: bytes, retained: bool = False, unverifiable: str | None = None) -> str:
        """The answer to one payload, whatever it holds: this never raises. `unverifiable`: why it could
        not be told whether the command was retained (it is then refused)."""
        raw: dict = _plain_fields(payload)  # until it parses: enough to say which request is refused
        try:
            raw = _parse(payload)
            request = self._admit(raw, retained, unverifiable)
        except Rejected as rejection:
            return self._refuse(_echo(raw, "request_id"), _echo(raw, "command"), rejection)
        except Exception:  # a bug must not leave the sender without an answer
            log.exception("command could not be checked")
            return self._refuse(_echo(raw, "request_id"), _echo(raw, "command"), _INTERNAL)
        try:
            return self._answer_once(request)
        except Exception:
            log.exception("command %s (request %s) failed", request.command, request.request_id)
            return self._refuse(request.request_id, request.command, _INTERNAL)

    def _admit(self, raw: dict, retained: bool, unverifiable: str | None) -> CommandRequest:
        """The request, once it may run: not retained, authorised, valid and enabled."""
        if retained:
            # A retained command would run again at every reconnection.
            raise Rejected("refused", "retained commands are not accepted; publish with retain=false")
        if unverifiable:
            raise Rejected("refused", unverifiable)
        if self._token is not None:
            given = raw.get("token")
            if not isinstance(given, str) or not hmac.compare_digest(given.encode(), self._token.encode()):
                raise Rejected("unauthorised", "missing or wrong token")
        request = _validate(raw)
        if request.command not in self._allowed:
            raise Rejected("unauthorised", f"command {request.command!r} is not enabled on this kiosk (mqtt.commands)")
        return request

    def _answer_once(self, request: CommandRequest) -> str:
        """Runs a request id once; only a valid, authorised request takes its id."""
        digest = hashlib.sha256(request.model_dump_json(exclude={"token"}).encode()).hexdigest()
        earlier = self._actions.requests.recall(request.request_id)
        if earlier is not None:
            if earlier.digest != digest:
                return self._refuse(request.request_id, request.command, Rejected(
                    "refused", f"request_id {request.request_id} was used for another command; use a new id"))
            log.info("command %s (request %s) delivered again: answered as before", request.command,
                     request.request_id)
            return earlier.answer
        try:
            answer = self._answer(request.request_id, request.command, result=self._run(request))
            log.info("command %s (request %s) done", request.command, request.request_id)
        except Rejected as rejection:
            answer = self._refuse(request.request_id, request.command, rejection)
        try:
            self._actions.requests.remember(AnsweredRequest(request.request_id, digest, answer, self._clock.time()))
        except Exception:
            log.exception("request id %s could not be stored: the same command re-sent would run again",
                          request.request_id)
        return answer

    def _run(self, request: CommandRequest) -> dict:
        match request:
            case Ping():
                status = self._actions.status()
                return {"version": status.version, "session_id": status.session.id if status.session else None,
                        "camera_ok": status.camera_ok, "fps": round(status.fps, 1)}
            case TakeSnapshot():
                frame = self._actions.latest_frame()
                if frame is None:
                    raise Rejected("failed", "no frame has been analysed yet")
                try:
                    return asdict(self._session_call(lambda: self._actions.save_snapshot(frame)))
                except OSError as exc:
                    raise Rejected("failed", f"the snapshot could not be saved: {exc}") from exc
            case StartSession():
                info = request.info()
                if request.reference_photo is None:
                    return {"session": asdict(self._session_call(lambda: self._actions.start_session(info)))}
                reference = self._reference(request.reference_photo)
                return {"session": asdict(self._session_call(lambda: self._actions.start_session(info, reference)))}
            case StopSession():
                running = self._actions.status().session
                if request.session_id is not None and (running is None or running.id != request.session_id):
                    current = running.id if running else "none"
                    raise Rejected("refused", f"session {request.session_id} is not running (running: {current})")
                return {"session": asdict(self._session_call(self._actions.stop_session))}
        raise AssertionError(f"unhandled command {request!r}")

    def _reference(self, photo: str) -> IdentityReference:
        if self._actions.read_reference_photo is None:
            raise Rejected("refused", "reference_photo: identity checks are off on this kiosk (identity.enabled)")
        try:
            data = base64.b64decode(photo, validate=True)
        except binascii.Error as exc:
            raise Rejected("invalid", f"reference_photo: not base64 ({exc})") from exc
        if len(data) > MAX_MQTT_REFERENCE_PHOTO_BYTES:
            raise Rejected("invalid", f"reference_photo: {len(data)} bytes; at most {MAX_MQTT_REFERENCE_PHOTO_BYTES}")
        try:
            return self._actions.read_reference_photo(data)
        except ReferencePhotoError as exc:
            raise Rejected("invalid", f"reference_photo: {exc}") from exc

    @staticmethod
    def _session_call(call: Callable[[], T]) -> T:
        try:
            return call()
        except SessionError as exc:
            raise Rejected("refused", str(exc)) from exc
        except (OSError, sqlite3.Error) as exc:  # a full disk, a failing SD card
            log.error("a session command could not be stored: %s", exc)
            raise Rejected("failed", f"the kiosk could not store the change: {exc}") from exc

    def _refuse(self, request_id: str | None, command: str | None, rejection: Rejected) -> str:
        log.warning("command %s (request %s) rejected: %s", printable(str(command)), printable(str(request_id)),
                    printable(rejection.reason, limit=500))
        return self._answer(request_id, command, error={"code": rejection.code, "reason": rejection.reason})

    def _answer(self, request_id: str | None, command: str | None, result: dict | None = None,
                error: dict | None = None) -> str:
        return json.dumps(
            {"v": CONTRACT_VERSION, "site": self._topics.site, "kiosk": self._topics.kiosk,
             "request_id": request_id, "command": command, "ok": error is None, "at": self._clock.time(),
             "result": result, "error": error},
            sort_keys=True, separators=(",", ":"),
        )


_INTERNAL = Rejected("failed", "internal error; see the kiosk's log")


def _parse(payload: bytes) -> dict:
    try:
        raw = loads_bounded(payload, COMMAND_JSON)
    except UntrustedJsonError as exc:
        raise Rejected("invalid", str(exc)) from None
    if not isinstance(raw, dict):
        raise Rejected("invalid", "a command is a JSON object")
    return raw


_PLAIN_FIELD = re.compile(rb'"(request_id|command)"\s*:\s*"([A-Za-z0-9_.:-]{1,64})"')


def _plain_fields(payload: bytes) -> dict:
    """request_id and command read from a payload that may not parse, when they are plain."""
    return {key.decode(): value.decode() for key, value in _PLAIN_FIELD.findall(payload[: COMMAND_JSON.max_bytes])}


def _echo(raw: dict, key: str) -> str | None:
    """A field echoed in the answer, only when it is a plausible one (it may be anything)."""
    value = raw.get(key)
    return value if isinstance(value, str) and len(value) <= 64 else None


def _validate(raw: dict) -> CommandRequest:
    command = raw.get("command")
    if command not in COMMAND_NAMES:
        shown = printable(command) if isinstance(command, str) else type(command).__name__
        raise Rejected("invalid", f"command: {shown!r} is not one of {', '.join(COMMAND_NAMES)}")
    try:
        return REQUEST.validate_python(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{printable('.'.join(str(part) for part in err['loc'][1:])) or 'request'}: {problem_text(err)}"
            for err in exc.errors()
        )
        raise Rejected("invalid", problems) from None
