"""A supervisor's MQTT client for the tests: every message it receives, in arrival order."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


@dataclass(frozen=True)
class Received:
    topic: str
    payload: dict
    retained: bool


class Supervisor:
    """Subscribes to `topic` with QoS 1. `persistent`: a session the broker keeps while the supervisor is
    away (with a broker that persists it, across a broker restart too), as a real console would have."""

    def __init__(self, port: int, topic: str = "proctor/#", client_id: str = "test-supervisor",
                 persistent: bool = False, username: str = "", password: str = ""):
        self._topic = topic
        self._lock = threading.Lock()
        self._messages: list[Received] = []
        self.subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311, clean_session=not persistent
        )
        if username:
            self.client.username_pw_set(username, password)
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = lambda client, *_: client.subscribe(self._topic, qos=1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.subscribed.wait(10)

    def _on_message(self, client, userdata, message) -> None:
        with self._lock:
            self._messages.append(Received(message.topic, json.loads(message.payload), bool(message.retain)))

    def messages(self, leaf: str | None = None) -> list[Received]:
        with self._lock:
            return [m for m in self._messages if leaf is None or m.topic.endswith(f"/{leaf}")]

    def payloads(self, leaf: str) -> list[dict]:
        return [m.payload for m in self.messages(leaf)]

    def publish(self, topic: str, payload: str, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
