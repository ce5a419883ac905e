"""The broker connection: publishes the durable outbox in order, deletes what the broker accepted,
keeps the retained status current, and hands remote commands to the command processor. Which rows go
next, which are in flight and where to restart is OutboxWindow's (daemon/sync/outbox_window.py).

The outbox is the only queue. A message leaves it only when the broker has acknowledged it (QoS 1
PUBACK with a success code), so alerts raised while the broker is away, or before a reboot, drain in
order once it is back. paho's own copy of unacknowledged messages is dropped at every connection and
the outbox is sent again from its head instead: one source of truth, one order, and nothing re-sent
twice (paho's re-send racing ours would put newer alerts before older ones). The daemon never waits
for the broker: without one it keeps proctoring and the backlog grows.
"""

from __future__ import annotations

import logging
import queue
import socket
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from daemon.clock import SYSTEM_CLOCK, Clock
from daemon.config import MqttConfig
from daemon.credentials import read_credential
from daemon.store.db import StoreReader
from daemon.sync.command_intake import Command, CommandIntake
from daemon.sync.commands import CommandActions, CommandProcessor
from daemon.sync.connection import BrokerSettings, connect_async, jitter_reconnect, new_client
from daemon.sync.contract import KioskStatus, Topics
from daemon.sync.outbox_window import OutboxWindow

log = logging.getLogger(__name__)
T = TypeVar("T")

# How often the status is checked for a change worth publishing.
STATUS_CHECK_S = 0.5


class MqttPublisher:
    def __init__(
        self,
        broker: BrokerSettings,
        topics: Topics,
        reader: StoreReader,
        acknowledge: Callable[[list[str]], Future],
        status: Callable[[], KioskStatus],
        status_interval_s: float = 30.0,
        commands: CommandProcessor | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ):
        self._broker = broker
        self._topics = topics
        self._reader = reader
        self._acknowledge = acknowledge  # deletes acknowledged rows, on the store thread
        self._status = status
        self._status_interval_s = status_interval_s
        self._commands = commands
        self._clock = clock

        # Reports from paho's thread and the store thread, handled in order by the outbox thread.
        # paho calls on_publish holding its message lock, so that callback may take no lock of ours.
        self._reports: queue.SimpleQueue[tuple[str, object]] = queue.SimpleQueue()
        # Held while publishing outbox messages and while a new connection starts, so no message of the
        # old connection's batch can slip onto the new one ahead of older rows.
        self._send_lock = threading.Lock()
        self._from_head = False
        self._receive_maximum: int | None = None  # the new connection's, applied with the restart
        self._window = OutboxWindow()  # only the outbox thread touches it
        self._last_status: tuple | None = None
        self._last_status_at = float("-inf")
        self._last_status_check = float("-inf")

        self._connected = threading.Event()
        self._listening = threading.Event()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._refusal_logged: str | None = None
        self._read_failure: str | None = None
        self._unreachable_logged = False
        self._thread = threading.Thread(target=self._drain_loop, name="mqtt-outbox", daemon=True)
        self._command_runner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mqtt-commands")
        self._accept_commands = commands is not None
        self._intake = CommandIntake(topics.command, broker.mqtt5, self._queue_command)
        self._client = self._make_client()

    @classmethod
    def from_config(
        cls,
        config: MqttConfig,
        topics: Topics,
        reader: StoreReader,
        acknowledge: Callable[[list[str]], Future],
        actions: CommandActions,
        clock: Clock = SYSTEM_CLOCK,
    ) -> MqttPublisher:
        """Raises ValueError (naming the config key) when a credential or TLS file cannot be used."""
        commands = None
        if config.commands:
            token = read_credential("mqtt.command_token_file", config.command_token_file) \
                if config.command_token_file else None
            commands = CommandProcessor(topics, actions, config.commands, token, clock)
        return cls(BrokerSettings.from_config(config), topics, reader, acknowledge, actions.status,
                   config.status_interval_s, commands, clock)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def listening(self) -> bool:
        """The broker has confirmed the command subscription of the current connection."""
        return self._listening.is_set()

    def start(self) -> None:
        connect_async(self._client, self._broker)
        self._thread.start()

    def wake(self) -> None:
        """New rows were committed to the outbox, or the status may have changed."""
        self._wake.set()

    def stop_commands(self) -> None:
        """Run no more commands (the daemon is shutting down); waits for the one running."""
        self._accept_commands = False
        self._command_runner.shutdown(wait=True, cancel_futures=True)

    def stop(self, flush_timeout: float = 2.0) -> None:
        """Give the backlog a moment to drain, then say offline and disconnect."""
        self.stop_commands()
        self._wake.set()
        deadline = self._clock.monotonic() + flush_timeout
        while self.connected and self._reader.outbox_backlog() and self._clock.monotonic() < deadline:
            self._clock.sleep(0.05)
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)
        self._handle_reports()
        if acknowledged := self._window.pending_deletion():
            self._acknowledge(acknowledged)  # the store writer finishes it before closing
        if self.connected:
            offline = self._topics.offline_payload(self._clock.time(), "shutdown")
            self._client.publish(self._topics.status, offline, qos=1, retain=True).wait_for_publish(timeout=1)
        self._client.disconnect()
        self._client.loop_stop()

    # --- paho callbacks (paho's network thread) ------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        client = new_client(self._broker, f"proctord-{self._topics.site}-{self._topics.kiosk}")
        client.max_inflight_messages_set(0)  # the window is ours (OutboxWindow); paho must not queue behind it
        client.will_set(
            self._topics.status, self._topics.offline_payload(None, "connection lost"), qos=1, retain=True
        )
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_unsubscribe = self._on_unsubscribe
        return client

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            if self._refusal_logged != str(reason_code):
                self._refusal_logged = str(reason_code)
                log.error("MQTT broker %s refused the connection: %s", self._broker.address, reason_code)
            return
        log.info("connected to MQTT broker %s", self._broker.address)
        # Alerts are small and sent one by one: Nagle's algorithm would hold each back for the last ACK.
        if (sock := client.socket()) is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._refusal_logged = None
        self._unreachable_logged = False
        receive_maximum = getattr(properties, "ReceiveMaximum", None) if properties else None
        with self._send_lock:
            # paho would re-send what the old connection left unacknowledged; the outbox does it instead.
            client.drop_out_messages()
            self._from_head = True
            self._receive_maximum = receive_maximum or 65535
            self._connected.set()
        if self._commands is not None:
            self._intake.subscribe(client)
        self._last_status = None  # the retained status is re-published at once
        self._wake.set()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        if self._intake.on_subscribe(mid, reason_codes):
            return
        if all(not code.is_failure for code in reason_codes):
            self._listening.set()
        else:
            log.error("the broker refused the command subscription %s: %s", self._topics.command, reason_codes)

    def _on_connect_fail(self, client, userdata) -> None:
        # Said once per outage, not at every retry; alerts keep queueing in the outbox meanwhile.
        if not self._unreachable_logged:
            self._unreachable_logged = True
            log.warning(
                "MQTT broker %s unreachable; alerts are kept in the outbox and retried", self._broker.address
            )

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self._connected.is_set() and not self._stop.is_set():
            log.warning("disconnected from MQTT broker: %s", reason_code)
        self._connected.clear()
        self._listening.clear()
        jitter_reconnect(client, self._broker)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self._reports.put(("puback", (mid, reason_code)))
        self._wake.set()

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        # An empty payload only clears a retained command from the broker: nothing to run or answer.
        if message.topic == self._topics.command and message.payload and self._commands is not None:
            self._intake.on_message(client, message)

    def _on_unsubscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        self._intake.on_unsubscribe(client, mid)

    def _queue_command(self, command: Command) -> None:
        if not self._accept_commands:
            log.warning("a command arrived while shutting down: not run, not answered")
            return
        try:
            self._command_runner.submit(self._run_command, command)
        except RuntimeError:  # the runner has just shut down
            log.warning("a command arrived while shutting down: not run, not answered")

    # --- the command thread ---------------------------------------------------------------------------

    def _run_command(self, command: Command) -> None:
        assert self._commands is not None
        answer = self._commands.handle(command.payload, command.retained, command.unverified)
        properties = None
        if command.correlation is not None and self._broker.mqtt5:
            properties = Properties(PacketTypes.PUBLISH)
            properties.CorrelationData = command.correlation
        info = self._client.publish(self._topics.command_result, answer, qos=1, properties=properties)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            log.warning("a command's answer could not be published (%s): the broker connection is down",
                        mqtt.error_string(info.rc))

    # --- the outbox thread ----------------------------------------------------------------------------

    def _drain_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=STATUS_CHECK_S)
            self._wake.clear()
            with self._send_lock:
                # Under the lock: every acknowledgement of an old connection is reported before the new
                # connection can ask for a fresh start.
                self._handle_reports()
                if self._window.refused_retry_due(self._clock.monotonic()):
                    self._from_head = True
                if self._from_head:
                    self._from_head = False
                    self._window.restart(self._receive_maximum)
                if self.connected:
                    self._read_outbox(self._send_next)
            self._delete_acknowledged()
            self._publish_status_if_due()

    def _read_outbox(self, read: Callable[[], T]) -> T | None:
        """`read()`, or None when the outbox cannot be read now (a full disk at start-up, say): said once
        while it lasts, and tried again at the next pass; the thread carries on."""
        try:
            result = read()
        except sqlite3.Error as exc:
            if self._read_failure != str(exc):
                log.error("cannot read the outbox (%s); trying again every %g s", exc, STATUS_CHECK_S)
            self._read_failure = str(exc)
            return None
        if self._read_failure is not None:
            log.warning("the outbox can be read again")
            self._read_failure = None
        return result

    def _handle_reports(self) -> None:
        while True:
            try:
                kind, report = self._reports.get_nowait()
            except queue.Empty:
                return
            if kind == "puback":
                mid, reason_code = report
                message = self._window.acknowledged(mid, reason_code.is_failure, self._clock.monotonic())
                if message is not None and reason_code.is_failure:
                    log.error("MQTT broker refused %s on %s: %s; kept in the outbox and retried",
                              message.message_id, message.topic, reason_code)
            elif kind == "deleted":
                self._window.deleted(report)

    def _send_next(self) -> None:
        while (room := self._window.room) > 0:
            page = self._reader.outbox(after_id=self._window.cursor, limit=room)
            if not page:
                return
            for message in self._window.select(page):
                info = self._client.publish(message.topic, message.payload, qos=1, retain=message.retain)
                self._window.published(info.mid, message)
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    return  # the connection is gone; the next one starts again from the outbox head

    def _delete_acknowledged(self) -> None:
        if batch := self._window.deletion_batch():
            self._acknowledge(batch).add_done_callback(lambda done: self._deleted(batch, done))

    def _deleted(self, batch: list[str], done: Future) -> None:
        if done.exception() is not None:
            # The rows stay and are sent again after the next reconnection: a duplicate, never a loss.
            log.error("could not delete %d acknowledged outbox rows: %s", len(batch), done.exception())
        self._reports.put(("deleted", batch))
        self._wake.set()

    def _publish_status_if_due(self) -> None:
        now = self._clock.monotonic()
        if not self.connected or now - self._last_status_check < STATUS_CHECK_S:
            return
        self._last_status_check = now
        status = self._status()
        key = (status.session.id if status.session else None, status.camera_ok, status.store.state, status.upload.state)
        if key == self._last_status and now - self._last_status_at < self._status_interval_s:
            return
        payload = self._topics.status_payload(status, self._clock.time(), self._read_outbox(self._reader.outbox_backlog))
        self._client.publish(self._topics.status, payload, qos=1, retain=True)
        self._last_status, self._last_status_at = key, now
