"""Remote commands from <prefix>/<site>/<kiosk>/cmd: checked, run, answered on .../cmd/result.

Authorisation comes in layers (README "Remote commands"): the broker's ACLs decide who may publish
to a kiosk's cmd topic at all (docs/mosquitto-acl.conf); `mqtt.commands` lists the commands this kiosk
accepts; with `mqtt.command_token_file`, every command must also carry that shared secret as "token".
A command failing any check, or the schema, is answered with the reason and changes nothing.
Each request id runs once: a re-delivered command (QoS 1 may deliver twice) gets the first answer again.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from daemon.capture.frame import Frame
from daemon.clock import SYSTEM_CLOCK, Clock
from daemon.recording.snapshot import Snapshot
from daemon.session import SessionError
from daemon.store.records import CandidateInfo, SessionRecord
from daemon.sync.contract import CONTRACT_VERSION, KioskStatus, Topics

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_PAYLOAD_BYTES = 16 * 1024
REMEMBERED_REQUESTS = 256
RequestId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
Text = Annotated[str, Field(max_length=200)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    v: Literal[1] = 1
    request_id: RequestId
    token: str | None = Field(default=None, repr=False)


class Ping(_Request):
    command: Literal["ping"]


class TakeSnapshot(_Request):
    command: Literal["snapshot"]


class StartSession(_Request):
    command: Literal["start_session"]
    candidate_id: Annotated[str, Field(min_length=1, max_length=64)]
    candidate_name: Text = ""
    exam_id: Text = ""
    notes: Annotated[str, Field(max_length=2000)] = ""


class StopSession(_Request):
    command: Literal["stop_session"]
    # When given, only that session is stopped: a supervisor acting on a stale view stops nothing.
    session_id: Text | None = None


Request = Annotated[Ping | TakeSnapshot | StartSession | StopSession, Field(discriminator="command")]
_REQUEST = TypeAdapter(Request)
KNOWN_COMMANDS = ("ping", "snapshot", "start_session", "stop_session")


@dataclass(frozen=True, slots=True)
class CommandActions:
    """What commands may do to the daemon; service.py provides them."""

    start_session: Callable[[CandidateInfo], SessionRecord]
    stop_session: Callable[[], SessionRecord]
    latest_frame: Callable[[], Frame | None]
    status: Callable[[], KioskStatus]
    save_snapshot: Callable[[Frame], Snapshot]  # the frame as the running session's evidence


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
        self._answered: OrderedDict[str, str] = OrderedDict()

    def handle(self, payload: bytes, retained: bool = False) -> str:
        request_id = command = None
        authorised = False
        try:
            raw = _parse(payload)
            request_id, command = _string(raw, "request_id"), _string(raw, "command")
            self._authorise(raw, command, retained)
            authorised = True
            if request_id in self._answered:
                log.info("command %s (request %s) delivered again: answered as before", command, request_id)
                return self._answered[request_id]
            result = self._run(_validate(raw))
        except Rejected as rejection:
            log.warning("command %s (request %s) rejected: %s", command, request_id, rejection.reason)
            answer = self._answer(request_id, command, error={"code": rejection.code, "reason": rejection.reason})
        else:
            log.info("command %s (request %s) done", command, request_id)
            answer = self._answer(request_id, command, result=result)
        if authorised and request_id is not None:
            self._remember(request_id, answer)
        return answer

    def _authorise(self, raw: dict, command: str | None, retained: bool) -> None:
        if retained:
            # A retained command would run again at every reconnection.
            raise Rejected("refused", "retained commands are not accepted; publish with retain=false")
        if self._token is not None:
            given = raw.get("token")
            if not isinstance(given, str) or not hmac.compare_digest(given.encode(), self._token.encode()):
                raise Rejected("unauthorised", "missing or wrong token")
        if command in KNOWN_COMMANDS and command not in self._allowed:
            raise Rejected("unauthorised", f"command {command!r} is not enabled on this kiosk (mqtt.commands)")

    def _run(self, request: _Request) -> dict:
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
                info = CandidateInfo(request.candidate_name, request.candidate_id, request.exam_id, request.notes)
                return {"session": asdict(self._session_call(lambda: self._actions.start_session(info)))}
            case StopSession():
                running = self._actions.status().session
                if request.session_id is not None and (running is None or running.id != request.session_id):
                    current = running.id if running else "none"
                    raise Rejected("refused", f"session {request.session_id} is not running (running: {current})")
                return {"session": asdict(self._session_call(self._actions.stop_session))}
        raise AssertionError(f"unhandled command {request!r}")

    @staticmethod
    def _session_call(call: Callable[[], T]) -> T:
        try:
            return call()
        except SessionError as exc:
            raise Rejected("refused", str(exc)) from exc

    def _answer(self, request_id: str | None, command: str | None, result: dict | None = None,
                error: dict | None = None) -> str:
        return json.dumps(
            {"v": CONTRACT_VERSION, "site": self._topics.site, "kiosk": self._topics.kiosk,
             "request_id": request_id, "command": command, "ok": error is None, "at": self._clock.time(),
             "result": result, "error": error},
            sort_keys=True, separators=(",", ":"),
        )

    def _remember(self, request_id: str, answer: str) -> None:
        self._answered[request_id] = answer
        while len(self._answered) > REMEMBERED_REQUESTS:
            self._answered.popitem(last=False)


def _parse(payload: bytes) -> dict:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise Rejected("invalid", f"payload of {len(payload)} bytes, more than {MAX_PAYLOAD_BYTES}")
    try:
        raw = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Rejected("invalid", f"not JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise Rejected("invalid", "a command is a JSON object")
    return raw


def _string(raw: dict, key: str) -> str | None:
    """A field echoed in the answer, only when it is a plausible one (it may be anything)."""
    value = raw.get(key)
    return value if isinstance(value, str) and len(value) <= 64 else None


def _validate(raw: dict) -> _Request:
    command = raw.get("command")
    if command not in KNOWN_COMMANDS:
        raise Rejected("invalid", f"command: {command!r} is not one of {', '.join(KNOWN_COMMANDS)}")
    try:
        return _REQUEST.validate_python(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in err['loc'][1:]) or 'request'}: {err['msg']}" for err in exc.errors()
        )
        raise Rejected("invalid", problems) from exc
