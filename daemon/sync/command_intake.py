"""The kiosk's command subscription: tells retained commands apart, under MQTT 5 and 3.1.1 alike.

A retained command would run again at every reconnection, so it is refused. MQTT 5 says so directly
(the subscription asks for retain-as-published). MQTT 3.1.1 cannot: a broker clears the retain flag
on every message it forwards live, so a retained stop_session looks like any other. Under 3.1.1 each
live command is therefore held until a probe answers: a fresh QoS 0 subscription to `<cmd>/#` makes
the broker send the topic's retained message, if any, with the flag set, and the unsubscription right
behind it is acknowledged only after that (one client's packets are handled and answered in order).
A held command equal to the retained one is passed on as retained; the others as not.
mosquitto grants any subscription and checks read access per message, so the kiosk's read access to
its `cmd` topic is all the probe needs; a broker that refuses the probe's subscription leaves the
retain flag unknown, and the commands held for it are refused with that reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Command:
    payload: bytes
    retained: bool
    correlation: bytes | None  # MQTT 5 correlation data, returned with the answer
    unverified: str | None = None  # why the retain flag could not be checked (the command is then refused)


class CommandIntake:
    """Runs on paho's network thread only (its callbacks), so it needs no lock."""

    def __init__(self, topic: str, mqtt5: bool, deliver: Callable[[Command], None]):
        self.topic = topic
        self._probe_filter = f"{topic}/#"
        self._mqtt5 = mqtt5
        self._deliver = deliver
        self._waiting: list[tuple[bytes, bytes | None]] = []  # arrived since the running probe was sent
        self._probed: list[tuple[bytes, bytes | None]] = []  # what the running probe decides on
        self._probe_mids: tuple[int, int] | None = None  # (subscribe, unsubscribe) of the running probe
        self._retained_seen: set[bytes] = set()
        self._probe_refused: str | None = None

    def subscribe(self, client: mqtt.Client) -> int:
        """On each connection; returns the subscription's mid. A probe cut by the old connection restarts."""
        self._waiting = self._probed + self._waiting
        self._probed, self._probe_mids, self._retained_seen, self._probe_refused = [], None, set(), None
        if self._mqtt5:
            _, mid = client.subscribe(self.topic, options=SubscribeOptions(qos=1, retainAsPublished=True))
        else:
            _, mid = client.subscribe(self.topic, qos=1)
        self._probe_if_waiting(client)
        return mid

    def on_message(self, client: mqtt.Client, message: mqtt.MQTTMessage) -> None:
        correlation = getattr(message.properties, "CorrelationData", None) if self._mqtt5 else None
        if self._mqtt5:
            self._deliver(Command(message.payload, bool(message.retain), correlation))
            return
        if message.retain:
            if self._probe_mids is not None:
                self._retained_seen.add(message.payload)  # the probe's evidence
            else:
                self._deliver(Command(message.payload, True, None))  # at subscription: retained and says so
            return
        entry = (message.payload, correlation)
        # While a probe runs its subscription overlaps the command one, so a command may come twice.
        if entry not in self._waiting and entry not in self._probed:
            self._waiting.append(entry)
        self._probe_if_waiting(client)

    def on_subscribe(self, mid: int, reason_codes) -> bool:
        """True when the acknowledgement was the probe's (the caller then ignores it)."""
        if self._probe_mids is None or mid != self._probe_mids[0]:
            return False
        if any(code.is_failure for code in reason_codes):
            self._probe_refused = (
                f"the broker refused the subscription {self._probe_filter} that tells retained commands apart"
                " under MQTT 3.1.1 (docs/mosquitto-acl.conf)"
            )
        return True

    def on_unsubscribe(self, client: mqtt.Client, mid: int) -> bool:
        """True when the acknowledgement ended the probe: its commands are passed on."""
        if self._probe_mids is None or mid != self._probe_mids[1]:
            return False
        refused, retained = self._probe_refused, self._retained_seen
        for payload, correlation in self._probed:
            if refused:
                log.error("command not run: %s", refused)
            self._deliver(Command(payload, payload in retained, correlation, refused))
        self._probed, self._probe_mids, self._retained_seen, self._probe_refused = [], None, set(), None
        self._probe_if_waiting(client)
        return True

    def _probe_if_waiting(self, client: mqtt.Client) -> None:
        if self._mqtt5 or self._probe_mids is not None or not self._waiting:
            return
        self._probed, self._waiting = self._waiting, []
        _, subscribed = client.subscribe(self._probe_filter, qos=0)
        _, unsubscribed = client.unsubscribe(self._probe_filter)
        self._probe_mids = (subscribed, unsubscribed)
