"""The MQTT topic contract: which topic carries what, and the payloads (see README, "MQTT topics").

Topics: <prefix>/<site>/<kiosk>/status (retained), .../alert, .../session.
Every alert and session message carries a stable `id`, so a supervisor can drop duplicates.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from daemon.config import Config
from daemon.events.model import EventChange
from daemon.store.records import OutboxMessage, SessionRecord

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
    def all_kiosks(self) -> str:
        return f"{self.prefix}/+/+/#"

    def _header(self, message_id: str, kind: str) -> dict:
        return {"v": CONTRACT_VERSION, "id": message_id, "kind": kind, "site": self.site, "kiosk": self.kiosk}

    def alert_message(self, change: EventChange) -> OutboxMessage:
        message_id = f"{change.event.id}:{change.kind}"
        payload = self._header(message_id, change.kind) | {
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

    def status_payload(self, online: bool, at: float, session_id: str | None = None) -> str:
        return _dumps(
            {"v": CONTRACT_VERSION, "site": self.site, "kiosk": self.kiosk,
             "state": "online" if online else "offline", "at": at, "session_id": session_id}
        )


def _dumps(payload: dict) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"))
