"""Publishes the durable outbox to the broker, in order, and acknowledges what the broker accepted.

A message leaves the outbox only when the broker has acknowledged it (QoS 1 PUBACK), so alerts raised
while the broker is away, or before a reboot, drain in order once it is back. The daemon never waits
for the broker: when none is reachable it keeps proctoring and the backlog grows.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from daemon.clock import SYSTEM_CLOCK, Clock
from daemon.config import MqttConfig
from daemon.store.db import StoreReader
from daemon.sync.contract import Topics

log = logging.getLogger(__name__)

# Messages published but not yet acknowledged. Bounded, so a slow broker does not get the whole backlog
# at once, and a reconnect re-sends at most this many.
IN_FLIGHT = 50


class MqttPublisher:
    def __init__(
        self,
        config: MqttConfig,
        topics: Topics,
        reader: StoreReader,
        acknowledge: Callable[[list[str]], None],
        clock: Clock = SYSTEM_CLOCK,
    ):
        self._config = config
        self._topics = topics
        self._reader = reader
        self._acknowledge = acknowledge
        self._clock = clock
        # Handed to paho, not yet acknowledged; only the outbox thread touches these two.
        self._in_flight: list[tuple[mqtt.MQTTMessageInfo, str]] = []
        self._last_sent_row = 0
        self._connected = threading.Event()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._session_id: str | None = None
        self._unreachable_logged = False
        self._thread = threading.Thread(target=self._drain_loop, name="mqtt-outbox", daemon=True)
        self._client = self._make_client()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def start(self) -> None:
        log.info("connecting to MQTT broker %s:%d", self._config.host, self._config.port)
        self._client.connect_async(self._config.host, self._config.port, keepalive=self._config.keepalive_s)
        self._client.loop_start()
        self._thread.start()

    def wake(self) -> None:
        """New rows were committed to the outbox."""
        self._wake.set()

    def set_session(self, session_id: str | None) -> None:
        """The retained status names the running session."""
        if session_id == self._session_id:
            return
        self._session_id = session_id
        if self.connected:
            self._publish_status(online=True)

    def stop(self, flush_timeout: float = 2.0) -> None:
        """Give the backlog a moment to drain, then say offline and disconnect."""
        self._wake.set()
        deadline = self._clock.monotonic() + flush_timeout
        while self.connected and self._reader.outbox_backlog() and self._clock.monotonic() < deadline:
            self._clock.sleep(0.05)
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)
        if self.connected:
            self._publish_status(online=False).wait_for_publish(timeout=1)
        self._client.disconnect()
        self._client.loop_stop()

    def _make_client(self) -> mqtt.Client:
        client_id = f"proctord-{self._topics.site}-{self._topics.kiosk}"
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        client.will_set(self._topics.status, self._topics.status_payload(False, 0.0), qos=1, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        return client

    def _publish_status(self, online: bool) -> mqtt.MQTTMessageInfo:
        payload = self._topics.status_payload(online, self._clock.time(), self._session_id)
        return self._client.publish(self._topics.status, payload, qos=1, retain=True)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("MQTT broker refused the connection: %s", reason_code)
            return
        log.info("connected to MQTT broker %s:%d", self._config.host, self._config.port)
        # paho itself re-sends what was in flight on the old connection; the cursor stays where it is.
        self._connected.set()
        self._unreachable_logged = False
        self._publish_status(online=True)
        self._wake.set()

    def _on_connect_fail(self, client, userdata) -> None:
        # Said once per outage, not at every retry; alerts keep queueing in the outbox meanwhile.
        if not self._unreachable_logged:
            self._unreachable_logged = True
            log.warning(
                "MQTT broker %s:%d unreachable; alerts are kept in the outbox and retried",
                self._config.host, self._config.port,
            )

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self._connected.is_set():
            log.warning("disconnected from MQTT broker: %s", reason_code)
        self._connected.clear()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self._wake.set()

    def _drain_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=1.0)
            self._wake.clear()
            self._collect_acknowledged()
            if self.connected:
                self._send_next()

    def _collect_acknowledged(self) -> None:
        done = [message_id for info, message_id in self._in_flight if info.is_published()]
        if done:
            self._in_flight = [(info, mid) for info, mid in self._in_flight if not info.is_published()]
            self._acknowledge(done)

    def _send_next(self) -> None:
        room = IN_FLIGHT - len(self._in_flight)
        if room <= 0:
            return
        for message in self._reader.outbox(after_id=self._last_sent_row, limit=room):
            info = self._client.publish(message.topic, message.payload, qos=1, retain=message.retain)
            # Even when the connection dropped meanwhile, paho holds the message and sends it on reconnect.
            self._in_flight.append((info, message.message_id))
            self._last_sent_row = message.id
