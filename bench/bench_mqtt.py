"""MQTT figures, printed side by side in one run (by hand, not by pytest):

- alert latency: from the commit of the event and its outbox row (store thread) to a subscriber's
  receipt, through the real store, publisher and a real mosquitto on loopback; median and p95;
- drain rate: a 10,000-alert backlog queued while the broker was down, from the moment the kiosk is
  connected again to the last alert received and the outbox empty; with mosquitto's defaults (Receive
  Maximum 20, so 16 outbox messages in flight; Nagle's algorithm on, which holds PUBACKs back), with
  `set_tcp_nodelay true`, and with that and `max_inflight_messages 100` (96 in flight).

    .venv/bin/python bench/bench_mqtt.py [--alerts 300] [--backlog 10000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from conftest import Mosquitto, wait_until
from mqtt_helpers import Kiosk, Supervisor

from daemon.events.model import Event, EventChange
from daemon.sync.outbox_window import IN_FLIGHT, RESERVED_IN_FLIGHT

BROKERS = [
    ("defaults", ""),
    ("set_tcp_nodelay true", "set_tcp_nodelay true\n"),
    ("set_tcp_nodelay true, max_inflight_messages 100", "set_tcp_nodelay true\nmax_inflight_messages 100\n"),
]
PERSISTENT = "allow_anonymous true\npersistence true\npersistence_location {dir}/\nmax_queued_messages 0\n"


class Stopwatch(Supervisor):
    """A subscriber that notes when each alert id first arrives."""

    def __init__(self, port: int, **options):
        self.arrived: dict[str, float] = {}
        super().__init__(port, **options)

    def _on_message(self, client, userdata, message) -> None:
        now = time.monotonic()
        if message.topic.endswith("/alert"):
            self.arrived.setdefault(json.loads(message.payload)["id"], now)


def latency(workdir: Path, count: int) -> list[float]:
    broker = Mosquitto(workdir).start()
    watch = Stopwatch(broker.port, topic="proctor/+/+/alert", client_id="latency")
    kiosk = Kiosk(workdir, broker.port)
    committed: dict[str, float] = {}
    try:
        wait_until(lambda: kiosk.publisher.connected, 10, "the kiosk to connect")

        def committed_now(message_id: str) -> None:  # on the store thread, as the commit returns
            committed[message_id] = time.monotonic()
            kiosk.publisher.wake()

        for i in range(count):
            event = Event(uuid.uuid4().hex, kiosk.session.id, "no_face", "high", time.time(), None, 0.9, {"n": i})
            change = EventChange("start", event)
            message = kiosk.topics.alert_message(change)
            kiosk.writer.submit(lambda store, c=change, m=message: store.record_event(c, [m])).add_done_callback(
                lambda _, message_id=message.message_id: committed_now(message_id))
            time.sleep(0.01)  # alerts one by one, as the rules raise them
        wait_until(lambda: len(watch.arrived) >= count, 30, "every alert")
        return [watch.arrived[i] - committed[i] for i in committed]
    finally:
        kiosk.close()
        watch.close()
        broker.stop()


def drain(workdir: Path, backlog: int, broker_settings: str) -> tuple[float, int]:
    """Seconds from reconnection to the whole backlog received and deleted; the outbox window it ran with
    (the broker's Receive Maximum, mosquitto's max_inflight_messages, less the publisher's reserve)."""
    workdir.mkdir()
    broker = Mosquitto(workdir, settings=PERSISTENT.format(dir=workdir) + broker_settings).start()
    watch = Stopwatch(broker.port, topic="proctor/+/+/alert", client_id="drain", persistent=True)
    kiosk = Kiosk(workdir, broker.port)
    try:
        wait_until(lambda: kiosk.publisher.connected, 10, "the kiosk to connect")
        broker.stop()
        wait_until(lambda: not kiosk.publisher.connected, 10, "the kiosk to see the outage")
        kiosk.queue_alerts(backlog)
        broker.start()
        wait_until(lambda: kiosk.publisher.connected, 30, "the kiosk to reconnect", interval=0.005)
        start = time.monotonic()
        wait_until(lambda: len(watch.arrived) >= backlog and kiosk.backlog() == 0, 300, "the drain",
                   interval=0.005)
        receive_maximum = int(broker_settings.split("max_inflight_messages ")[1].split()[0]) \
            if "max_inflight_messages" in broker_settings else 20
        return time.monotonic() - start, min(IN_FLIGHT, receive_maximum - RESERVED_IN_FLIGHT)
    finally:
        kiosk.close()
        watch.close()
        broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=300)
    parser.add_argument("--backlog", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "latency").mkdir()
        latencies = sorted(seconds * 1000 for seconds in latency(workdir / "latency", args.alerts))
        drains = [(label, *drain(workdir / f"drain-{n}", args.backlog, settings))
                  for n, (label, settings) in enumerate(BROKERS)]
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    print(f"alert latency, commit -> subscriber ({len(latencies)} alerts, 10 ms apart, loopback mosquitto):")
    print(f"  median {statistics.median(latencies):.2f} ms   p95 {p95:.2f} ms   max {latencies[-1]:.2f} ms")
    print(f"backlog drain of {args.backlog} alerts after an outage (reconnect -> all received and deleted):")
    print(f"  {'mosquitto settings':<48}{'in flight':>10}{'seconds':>10}{'alerts/s':>10}{'vs default':>11}")
    for label, seconds, window in drains:
        print(f"  {label:<48}{window:>10}{seconds:>10.2f}{args.backlog / seconds:>10.0f}"
              f"{drains[0][1] / seconds:>10.1f}x")
    print(f"  (publisher IN_FLIGHT = {IN_FLIGHT}, capped by the broker's Receive Maximum less {RESERVED_IN_FLIGHT})")


if __name__ == "__main__":
    main()
