"""The MQTT uplink as one of the daemon's parts: "off" when mqtt.enabled is false, else the publisher
(daemon/sync/mqtt.py) with the figures the status page and /metrics show."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future

from daemon.clock import SYSTEM_CLOCK, Clock
from daemon.config import MqttConfig
from daemon.parts import Figure, PartStatus
from daemon.store.db import StoreReader
from daemon.sync.commands import CommandActions
from daemon.sync.contract import Topics
from daemon.sync.mqtt import MqttPublisher


class MqttPart:
    name = "mqtt"

    def __init__(self, config: MqttConfig, publisher: MqttPublisher | None, reader: StoreReader):
        self._broker = f"{config.host}:{config.port}"
        self._publisher = publisher
        self._reader = reader

    @classmethod
    def from_config(
        cls,
        config: MqttConfig,
        topics: Topics,
        reader: StoreReader,
        acknowledge: Callable[[list[str]], Future],
        actions: CommandActions,
        clock: Clock = SYSTEM_CLOCK,
    ) -> MqttPart:
        """Raises UserError (naming the config key) when a credential or TLS file cannot be used."""
        publisher = (
            MqttPublisher.from_config(config, topics, reader, acknowledge, actions, clock) if config.enabled else None
        )
        return cls(config, publisher, reader)

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
