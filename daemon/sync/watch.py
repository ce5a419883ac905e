"""`proctord watch`: a supervisor's console for every kiosk on a broker.

On a terminal it keeps a live table (each kiosk's availability, session, camera and latest alerts)
above the newest alert lines; piped, it prints one line per new alert, session change and availability
change, as text or, with --json, as JSON lines (the contract message plus "type" and "received_at").
Alerts and session messages seen twice (same id, after a kiosk's outage) are shown once.

Anyone who may publish on a kiosk's topics can send the console anything: each message is parsed within
bounds and checked against what the console shows; one that does not fit is shown as a line of its own
("type": "invalid", with the reason) and changes nothing. Text from messages is shown with control
characters escaped, so a message cannot redraw the supervisor's terminal.
"""

from __future__ import annotations

import base64
import json
import logging
import queue
import re
import shutil
import signal
import sys
import tempfile
import textwrap
import threading
import time
import uuid
import webbrowser
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal, NamedTuple, TextIO

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from daemon.errors import EXIT_BAD_INPUT, UserError
from daemon.files import write_durably
from daemon.sync.alert_snapshot import MAX_SNAPSHOT_BYTES
from daemon.sync.connection import BrokerSettings, connect_async, new_client
from daemon.sync.contract import fleet_topic, split_topic
from daemon.untrusted import JsonBounds, UntrustedJsonError, loads_bounded, printable

log = logging.getLogger(__name__)

LATEST_ALERTS = 3
REMEMBERED_IDS = 100_000
REDRAW_EVERY_S = 0.5
# A kiosk's messages are a few KiB (an alert's evidence is the largest part).
MESSAGE_JSON = JsonBounds(max_bytes=256 * 1024, max_depth=16, max_number_chars=40)

# --- what the console needs of each message (newer kiosks may add fields: they are kept, not checked) ---

Shown = Annotated[str, Field(max_length=200)]
Epoch = Annotated[float, Field(ge=0, le=1e11)]  # a time the console can print


class _Seen(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class _Event(_Seen):
    id: Shown
    type: Shown
    severity: Shown


class _Alert(_Seen):
    id: Shown
    kind: Shown
    session_id: Shown | None = None
    event: _Event


class _SessionShown(_Seen):
    id: Shown
    candidate_name: Shown = ""
    candidate_id: Shown = ""
    exam_id: Shown = ""


class _Summary(_Seen):
    integrity_score: Annotated[float, Field(allow_inf_nan=False)] | None = None


class _SessionNews(_Seen):
    id: Shown
    kind: Shown
    session: _SessionShown
    summary: _Summary | None = None


class _UploadShown(_Seen):
    state: Shown
    backlog: Annotated[int, Field(ge=0)] = 0
    missing: Annotated[int, Field(ge=0)] = 0


class _Status(_Seen):
    state: Literal["online", "offline"]
    at: Epoch | None = None
    reason: Shown | None = None
    session_id: Shown | None = None
    session: _SessionShown | None = None
    camera_ok: bool | None = None
    fps: Annotated[float, Field(ge=0, le=1000)] | None = None
    outbox_backlog: Annotated[int, Field(ge=0)] | None = None
    upload: _UploadShown | None = None


class _SnapshotNews(_Seen):
    id: Shown
    alert_id: Shown
    size: Annotated[int, Field(ge=0, le=MAX_SNAPSHOT_BYTES)]
    jpeg_base64: Annotated[str, Field(max_length=MAX_SNAPSHOT_BYTES * 4 // 3 + 4)]


class _EvidenceNews(_Seen):
    id: Annotated[str, Field(max_length=1100)]
    file_kind: Shown
    bucket: Shown
    key: Annotated[str, Field(max_length=1024)]  # S3's own limit
    size: Annotated[int, Field(ge=0)]
    sha256: Annotated[str, Field(pattern="^[0-9a-f]{64}$")]


_MESSAGES = {leaf: TypeAdapter(model) for leaf, model in (
    ("alert", _Alert), ("session", _SessionNews), ("status", _Status), ("snapshot", _SnapshotNews),
    ("evidence", _EvidenceNews),
)}
WATCHED_LEAVES = tuple(_MESSAGES)
_SAFE_NAME = re.compile(r"[A-Za-z0-9_.-]+\.jpg")


@dataclass
class KioskView:
    site: str
    kiosk: str
    state: str = "unknown"  # online | offline | unknown (nothing heard yet)
    since: float | None = None
    status: dict = field(default_factory=dict)
    alerts: deque = field(default_factory=lambda: deque(maxlen=LATEST_ALERTS))

    @property
    def name(self) -> str:
        return f"{self.site}/{self.kiosk}"


class Fleet:
    """Every kiosk as the messages so far describe it. `receive` returns the records worth a line; an
    alert's record gets its candidate ("candidate", the console's own field) when a session or status
    message named them."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.kiosks: dict[tuple[str, str], KioskView] = {}
        self.duplicates = 0
        self._seen_ids: dict[str, None] = {}  # insertion-ordered, trimmed to REMEMBERED_IDS
        self._candidates: dict[str, str] = {}  # session id -> "name (id)", as insertion-ordered as the ids

    def receive(self, topic: str, payload: bytes, received_at: float) -> list[dict]:
        where = split_topic(self.prefix, topic)
        if where is None or where[2] not in _MESSAGES:
            return []
        site, kiosk, leaf = where
        try:
            message = _check(leaf, payload)
        except BadMessage as exc:  # shown as a line of its own (a log line would tear the live view)
            return [{"type": "invalid", "topic": topic, "site": site, "kiosk": kiosk,
                     "received_at": round(received_at, 3), "reason": str(exc)}]
        view = self.kiosks.setdefault((site, kiosk), KioskView(site, kiosk))
        # The topic says which kiosk spoke; "type" and "received_at" are the console's own.
        record = message | {"site": site, "kiosk": kiosk, "type": leaf, "received_at": round(received_at, 3)}
        if leaf in ("status", "session") and message.get("session"):
            self._remember(message["session"])
        if leaf == "status":
            return [record] if self._status(view, message, received_at) else []
        if self._seen(message["id"]):
            self.duplicates += 1
            return []
        if leaf == "alert":
            view.alerts.append(message)
            if candidate := self._candidates.get(message.get("session_id") or ""):
                record["candidate"] = candidate
        return [record]

    def _remember(self, session: dict) -> None:
        self._candidates[session["id"]] = candidate_words(session)
        if len(self._candidates) > REMEMBERED_IDS:
            del self._candidates[next(iter(self._candidates))]

    def _status(self, view: KioskView, message: dict, received_at: float) -> bool:
        """Whether availability or the session changed (heartbeats only refresh the table)."""
        previous = (view.state, view.status.get("session_id"))
        state = message.get("state", "unknown")
        if state != view.state:
            view.since = message.get("at") or received_at
        view.state, view.status = state, message
        return (state, message.get("session_id")) != previous

    def _seen(self, message_id: str) -> bool:
        if message_id in self._seen_ids:
            return True
        self._seen_ids[message_id] = None
        if len(self._seen_ids) > REMEMBERED_IDS:
            del self._seen_ids[next(iter(self._seen_ids))]
        return False


class BadMessage(Exception):
    """A message the console cannot show; the text says why."""


def _check(leaf: str, payload: bytes) -> dict:
    """The message, checked; BadMessage says what is wrong with it."""
    try:
        message = loads_bounded(payload, MESSAGE_JSON)
    except UntrustedJsonError as exc:
        raise BadMessage(str(exc)) from None
    if not isinstance(message, dict):
        raise BadMessage("not a JSON object")
    try:
        return _MESSAGES[leaf].validate_python(message).model_dump()
    except ValidationError as exc:
        raise BadMessage("; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'message'}: {error['msg']}" for error in exc.errors()
        )) from None


def candidate_words(session: dict) -> str:
    """"Ada Lovelace (c-42)": the name a supervisor knows, with the id that tells two Adas apart."""
    name, candidate_id = session.get("candidate_name") or "", session.get("candidate_id") or ""
    if name and candidate_id:
        return f"{name} ({candidate_id})"
    return name or candidate_id or "no candidate named"


class ConsoleLine(NamedTuple):
    text: str
    high: bool  # a high-severity alert: emphasised on a terminal


def line_of(record: dict) -> ConsoleLine:
    high = record["type"] == "alert" and record["event"]["severity"] == "high"
    return ConsoleLine(describe(record), high)


def describe(record: dict) -> str:
    """One line of text for a record `Fleet.receive` returned; text from the kiosk made printable."""
    who = printable(f"{record['site']}/{record['kiosk']}")
    when = _clock(record["received_at"])
    if record["type"] == "invalid":
        return f"{when}  {who}  BAD MESSAGE on {printable(record['topic'])}: {printable(record['reason'])}"
    if record["type"] == "alert":
        event = record["event"]
        candidate = f"  {record['candidate']}" if "candidate" in record else ""
        return printable(f"{when}  {who}  ALERT {event['severity'].upper()} {event['type']} {record['kind']}"
                         f"{candidate}  session {record['session_id']}  event {event['id']}", limit=1000)
    if record["type"] == "session":
        session, summary = record["session"], record["summary"] or {}
        score = ""
        if summary.get("assessable") is False:
            score = "  NOT ASSESSABLE (too little analysed)"
        elif summary.get("integrity_score") is not None:
            score = f"  score {summary['integrity_score']}"
        return printable(f"{when}  {who}  session {session['id']} {record['kind']}"
                         f"  {candidate_words(session)}  exam {session['exam_id'] or '-'}{score}", limit=1000)
    if record["type"] == "snapshot":
        where = f"  saved to {record['saved_to']}" if "saved_to" in record else ""
        return printable(f"{when}  {who}  SNAPSHOT of alert {record['alert_id']}  {record['size']} bytes{where}",
                         limit=1000)
    if record["type"] == "evidence":
        return printable(f"{when}  {who}  EVIDENCE {record['file_kind']} in the store: {record['bucket']}/"
                         f"{record['key']}  {record['size']} bytes  sha256 {record['sha256'][:12]}", limit=1500)
    session = record["session_id"]
    return printable(f"{when}  {who}  {record['state'].upper()}" + (f"  session {session}" if session else ""),
                     limit=1000)


def render(
    fleet: Fleet, lines: deque[ConsoleLine], broker: str, connected: bool, width: int, height: int,
    colour: bool = False,
) -> str:
    """The full screen: a table of kiosks, then the newest lines that fit. A line wider than the terminal
    wraps (nothing is cut off); with `colour`, high-severity alerts are bold red."""
    header = f"proctord watch  {broker}  {'connected' if connected else 'NOT CONNECTED'}  " \
             f"{len(fleet.kiosks)} kiosk(s)  {_clock(time.time())}"
    rows = [("KIOSK", "STATE", "SESSION", "CAMERA", "BACKLOG", "UPLOADS", "LATEST ALERTS")]
    for view in sorted(fleet.kiosks.values(), key=lambda v: v.name):
        status = view.status
        session = status.get("session") or {}
        since = f" {_clock(view.since)}" if view.since else ""
        camera = "-" if status.get("camera_ok") is None else \
            f"ok {status.get('fps') or 0:.0f} fps" if status["camera_ok"] else "LOST"
        alerts = ", ".join(f"{a['event']['type']} {a['kind']}" for a in reversed(view.alerts))
        rows.append(tuple(printable(cell) for cell in (
            view.name, f"{view.state}{since}",
            f"{candidate_words(session)} {session['id']}" if session else "-",
            camera, "-" if status.get("outbox_backlog") is None else str(status["outbox_backlog"]),
            uploads_cell(status.get("upload")), alerts or "-",
        )))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    table = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    top = [part for line in (header, "", *table, "") for part in _wrapped(line, width)]
    recent: list[str] = []
    for line in reversed(lines):  # the newest that fit, oldest first
        parts = _wrapped(line.text, width)
        if len(top) + len(recent) + len(parts) > height - 1:
            break
        recent[:0] = [_emphasised(part) if colour and line.high else part for part in parts]
    return "\n".join(top + recent)


def _wrapped(line: str, width: int) -> list[str]:
    return textwrap.wrap(line, max(width, 20), subsequent_indent="    ", break_on_hyphens=False) or [""]


def _emphasised(text: str) -> str:
    return f"\x1b[1;31m{text}\x1b[0m"  # bold red; the text itself is printable() (no escapes of its own)


def uploads_cell(upload: dict | None) -> str:
    """Files waiting for the object store; DEGRADED when the store is away or refusing."""
    if not upload or upload["state"] == "off":
        return "-"
    text = f"{upload['backlog']} files"
    if upload.get("missing"):
        text += f", {upload['missing']} MISSING"
    return text if upload["state"] == "ok" else f"{text} {upload['state'].upper()}"


def _clock(epoch: float) -> str:
    return datetime.fromtimestamp(epoch).strftime("%H:%M:%S")


class Console:
    """Connects, subscribes to every kiosk and prints until interrupted."""

    def __init__(self, settings: BrokerSettings, prefix: str, as_json: bool, out: TextIO = sys.stdout,
                 snapshots_dir: Path | None = None, open_snapshots: bool = False, share: str = ""):
        self._settings = settings
        self._share = share  # a shared-subscription group: each alert goes to one console of the group
        self._snapshots_dir = snapshots_dir  # alert snapshots are saved here (their base64 left out of the lines)
        self._open_snapshots = open_snapshots
        self._fleet = Fleet(prefix)
        self._as_json = as_json
        self._out = out
        self._live = out.isatty() and not as_json
        self._received: queue.SimpleQueue = queue.SimpleQueue()
        self._lines: deque[ConsoleLine] = deque(maxlen=500)
        self._connected = False
        self._client = new_client(settings, f"proctord-watch-{uuid.uuid4().hex[:8]}")
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = lambda client, userdata, message: self._received.put(
            (message.topic, message.payload, time.time()))

    def run(self, stop: threading.Event) -> None:
        """Print until `stop` is set (Ctrl-C or SIGTERM set it between two lines, never in the middle of one)."""
        connect_async(self._client, self._settings)
        next_draw = 0.0
        try:
            while not stop.is_set():
                try:
                    topic, payload, received_at = self._received.get(timeout=REDRAW_EVERY_S)
                except queue.Empty:
                    pass
                else:
                    for record in self._fleet.receive(topic, payload, received_at):
                        self._emit(self._save_snapshot(record) if record["type"] == "snapshot" else record)
                if self._live and time.monotonic() >= next_draw:
                    next_draw = time.monotonic() + REDRAW_EVERY_S
                    self._draw()
        finally:
            self._client.disconnect()
            self._client.loop_stop()
            if self._fleet.duplicates:
                log.info("%d duplicate messages (same id) were shown once", self._fleet.duplicates)

    def _save_snapshot(self, record: dict) -> dict:
        if self._snapshots_dir is None:
            return record
        name = f"{record.get('site')}_{record.get('kiosk')}_{record.get('event_id')}.jpg"
        try:
            jpeg = base64.b64decode(record.pop("jpeg_base64", ""), validate=True)
            if not jpeg.startswith(b"\xff\xd8") or not _SAFE_NAME.fullmatch(name):
                raise ValueError("not a JPEG from a contract topic")
            path = self._snapshots_dir / name
            write_durably(path, jpeg)
        except (ValueError, OSError) as exc:
            log.warning("snapshot of alert %s not saved: %s", record.get("alert_id"), exc)
            return record
        if self._open_snapshots:
            webbrowser.open(path.resolve().as_uri())
        return record | {"saved_to": str(path)}

    def _emit(self, record: dict) -> None:
        if self._as_json:
            print(json.dumps(record, sort_keys=True), file=self._out, flush=True)
        elif self._live:
            self._lines.append(line_of(record))
        else:  # piped: plain lines
            print(describe(record), file=self._out, flush=True)

    def _draw(self) -> None:
        size = shutil.get_terminal_size()
        screen = render(self._fleet, self._lines, self._settings.address, self._connected, size.columns, size.lines,
                        colour=True)
        self._out.write("\x1b[H\x1b[2J" + screen)  # home, clear, redraw
        self._out.flush()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("broker %s refused the connection: %s", self._settings.address, reason_code)
            return
        self._connected = True
        prefix = self._fleet.prefix
        client.subscribe([(self._subscription(fleet_topic(prefix, leaf), leaf), 1) for leaf in WATCHED_LEAVES])
        if not self._live:
            log.info("watching %s/+/+/{%s} on %s", prefix, ",".join(WATCHED_LEAVES), self._settings.address)

    def _subscription(self, topic: str, leaf: str) -> str:
        # The status stays a plain subscription: every console needs every kiosk's retained status.
        return f"$share/{self._share}/{topic}" if self._share and leaf != "status" else topic

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self._connected:
            log.warning("disconnected from %s: %s; reconnecting", self._settings.address, reason_code)
        self._connected = False


def parse_broker(text: str, tls: bool) -> tuple[str, int]:
    """HOST, HOST:PORT or [IPv6]:PORT; the port defaults to 1883 (8883 with TLS)."""
    default = 8883 if tls else 1883
    if text.startswith("[") and text.endswith("]") or text.count(":") > 1 and not text.startswith("["):
        return text.strip("[]"), default  # an IPv6 address without a port
    host, _, port = text.rpartition(":") if ":" in text else (text, "", "")
    host = host.strip("[]")
    if not host:
        raise UserError(f"--broker: {text!r}: give HOST or HOST:PORT")
    if not port:
        return host, default
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise UserError(f"--broker: {text!r}: the port must be a number from 1 to 65535")
    return host, int(port)



def add_watch_command(commands) -> None:
    watch = commands.add_parser(
        "watch", help="supervisor console: every kiosk's availability, session and alerts, live from the broker"
    )
    watch.add_argument("--broker", required=True, metavar="HOST[:PORT]", help="the supervisors' MQTT broker")
    watch.add_argument("--json", action="store_true", help="print JSON lines (for piping) instead of the live view")
    watch.add_argument("--prefix", default="proctor", help="the kiosks' mqtt.topic_prefix (default: %(default)s)")
    watch.add_argument("--username", default="", help="the broker user name (default: none, anonymous)")
    watch.add_argument("--password-file", default="", metavar="PATH",
                       help="file holding the password (a relative name is looked up in $CREDENTIALS_DIRECTORY)")
    watch.add_argument("--tls", action="store_true", help="connect with TLS (port 8883 unless given)")
    watch.add_argument("--ca-file", default="", metavar="PATH", help="CA bundle for --tls (default: the system's)")
    watch.add_argument("--save-snapshots", type=Path, metavar="DIR",
                       help="save each alert's snapshot as DIR/<site>_<kiosk>_<event id>.jpg")
    watch.add_argument("--open-snapshots", action="store_true",
                       help="open each saved snapshot in the desktop's image viewer (saves to a temporary DIR"
                            " unless --save-snapshots is given)")
    watch.add_argument("--share", default="", metavar="GROUP",
                       help="MQTT 5 shared subscription: consoles with the same GROUP split the alerts between them")
    watch.add_argument("--mqtt", choices=("5", "3.1.1"), default="5", help="protocol version (default: %(default)s)")
    watch.set_defaults(handler=_watch)


def _watch(args) -> int:
    from daemon.credentials import read_credential

    try:
        host, port = parse_broker(args.broker, args.tls or bool(args.ca_file))
        password = read_credential("--password-file", args.password_file) if args.password_file else ""
        settings = BrokerSettings(
            host, port, protocol=args.mqtt, tls=args.tls or bool(args.ca_file), ca_file=args.ca_file,
            username=args.username, password=password,
        )
        snapshots = args.save_snapshots
        if args.open_snapshots and snapshots is None:
            snapshots = Path(tempfile.mkdtemp(prefix="proctord-snapshots-"))
        if snapshots is not None:
            snapshots.mkdir(parents=True, exist_ok=True)
        console = Console(settings, args.prefix, args.json, snapshots_dir=snapshots, open_snapshots=args.open_snapshots,
                          share=args.share)
    except (UserError, OSError) as exc:
        print(f"proctord watch: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    # A flag, not KeyboardInterrupt: an exception raised inside a write to a full terminal left the
    # interpreter blocked flushing it at exit.
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    console.run(stop)
    return 0
