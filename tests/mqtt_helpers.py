"""MQTT test helpers: a kiosk's store and publisher without the camera, and a supervisor's client."""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from daemon.events.model import Event, EventChange
from daemon.store.db import Store, StoreReader
from daemon.store.records import CandidateInfo
from daemon.store.writer import StoreWriter
from daemon.sync.connection import BrokerSettings
from daemon.sync.contract import KioskStatus, Topics
from daemon.sync.mqtt import MqttPublisher

SITE, KIOSK = "site-a", "kiosk-1"


@dataclass(frozen=True)
class Received:
    topic: str
    payload: dict
    retained: bool


class Supervisor:
    """Subscribes to `topic` with QoS 1. `persistent`: a session the broker keeps while the supervisor is
    away (with a broker that persists it, across a broker restart too), as a real console would have."""

    def __init__(self, port: int, topic: str | list[str] = "proctor/#", client_id: str = "test-supervisor",
                 persistent: bool = False, username: str = "", password: str = ""):
        self._topics = [(t, 1) for t in ([topic] if isinstance(topic, str) else topic)]
        self._lock = threading.Lock()
        self._messages: list[Received] = []
        self._waiting: list[tuple[int, threading.Event]] = []
        self.subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311, clean_session=not persistent
        )
        if username:
            self.client.username_pw_set(username, password)
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = lambda client, *_: client.subscribe(self._topics)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.subscribed.wait(10)

    def _on_message(self, client, userdata, message) -> None:
        with self._lock:
            self._messages.append(Received(message.topic, json.loads(message.payload), bool(message.retain)))
            for count, reached in self._waiting:
                if len(self._messages) >= count:
                    reached.set()

    def when_received(self, count: int) -> threading.Event:
        """Set as soon as `count` messages have arrived (to act at a precise point of a fast stream)."""
        reached = threading.Event()
        with self._lock:
            self._waiting.append((count, reached))
        return reached

    def messages(self, leaf: str | None = None) -> list[Received]:
        with self._lock:
            return [m for m in self._messages if leaf is None or m.topic.endswith(f"/{leaf}")]

    def payloads(self, leaf: str) -> list[dict]:
        return [m.payload for m in self.messages(leaf)]

    def publish(self, topic: str, payload: str, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()  # first: it wakes the network thread, which loop_stop then joins at once
        self.client.loop_stop()


class Kiosk:
    """The daemon's store and publisher, wired as service.py wires them."""

    def __init__(self, data: Path, port: int, settings: BrokerSettings | None = None, **publisher_options):
        self.topics = Topics("proctor", SITE, KIOSK)
        self.writer = StoreWriter(Store(data / "proctord.db", kiosk=KIOSK))
        self.reader = StoreReader(data / "proctord.db")
        self.session = self.writer.submit(
            lambda store: store.start_session(CandidateInfo("Ada", "c-1", "exam-1"), time.time())
        ).result()
        self.publisher = MqttPublisher(
            settings or BrokerSettings("127.0.0.1", port, reconnect_max_s=1), self.topics, self.reader,
            lambda ids: self.writer.submit(lambda store: store.ack(ids)), self.status, **publisher_options,
        )
        self.publisher.start()

    def status(self) -> KioskStatus:
        return KioskStatus("test-version", self.session, True, 14.96)

    def queue_alerts(self, count: int) -> list[str]:
        """A backlog of `count` alerts committed at once (events left out: only the outbox matters here)."""
        messages = [
            self.topics.alert_message(EventChange("start", Event(
                uuid.uuid4().hex, self.session.id, "no_face", "high", time.time(), None, 0.9, {"n": i})))
            for i in range(count)
        ]
        self.writer.submit(lambda store: store.enqueue(messages)).result()
        self.publisher.wake()
        return [message.message_id for message in messages]

    def raise_alerts(self, count: int) -> list[str]:
        """Commit `count` events with their alerts (one transaction each); returns the message ids."""
        ids, future = [], None
        for i in range(count):
            event = Event(uuid.uuid4().hex, self.session.id, "no_face", "high", time.time(), None, 0.9, {"n": i})
            change = EventChange("start", event)
            message = self.topics.alert_message(change)
            future = self.writer.submit(lambda store, change=change, message=message: store.record_event(change, [message]))
            future.add_done_callback(lambda _: self.publisher.wake())
            ids.append(message.message_id)
        if future is not None:
            future.result()
        return ids

    def backlog(self) -> int:
        return self.reader.outbox_backlog()

    def close(self) -> None:
        self.publisher.stop(flush_timeout=0)
        self.writer.close()
