"""The MQTT uplink as one of the daemon's parts: "off" when mqtt.enabled is false, else the publisher
(daemon/sync/mqtt.py) with the figures the status page and /metrics show."""

from __future__ import annotations

from collections.abc import Callable

from daemon.config import MqttConfig
from daemon.parts import Figure, PartStatus
from daemon.store.db import StoreReader
from daemon.sync.mqtt import MqttPublisher


class MqttPart:
    name = "mqtt"

    def __init__(self, config: MqttConfig, reader: StoreReader, publisher: Callable[[], MqttPublisher]):
        """`publisher` makes the publisher, called only when mqtt.enabled is true; it raises UserError
        (naming the config key) when a credential or TLS file cannot be used."""
        self._broker = f"{config.host}:{config.port}"
        self._reader = reader
        self._publisher = publisher() if config.enabled else None

    def start(self) -> None:
        if self._publisher:
            self._publisher.start()

    def stop(self) -> None:
        if self._publisher:
            self._publisher.stop()  # drains the backlog for a moment, says offline, disconnects

    def outbox_changed(self) -> None:
        """New rows were committed to the outbox: send them now rather than at the next check."""
        if self._publisher:
            self._publisher.wake()

    def status(self) -> PartStatus:
        backlog = Figure("outbox_backlog", "Waiting to send", self._reader.outbox_backlog(),
                         help="MQTT messages waiting for the broker")
        if self._publisher is None:
            return PartStatus(self.name, "off", "mqtt.enabled is false", (backlog,), title="Alerts (MQTT)")
        connected = self._publisher.connected
        return PartStatus(self.name, "ok" if connected else "degraded",
                          None if connected else f"not connected to {self._broker}", (
            Figure("broker", "Broker", self._broker, kind="info"),
            Figure("connected", "Connected", connected, help="1 while connected to the broker"),
            backlog,
        ), title="Alerts (MQTT)")
