"""Fleet simulator (run by hand, not by pytest): K kiosks, one mosquitto, one supervisor console.

    .venv/bin/python bench/fleet_sim.py [--kiosks 10 100 1000] [--seconds 30] [--alerts-per-min 2] [--per-worker 100]
                                        [--real 2] [--video CLIP]

Each simulated kiosk is the daemon's own store and publisher (Store, StoreWriter, MqttPublisher: the
real outbox path, one SQLite file and one MQTT connection per kiosk), --per-worker kiosks per process:
paho waits on its socket with select(), which cannot watch a descriptor numbered 1024 or above, so one
process cannot hold many more than 200 kiosks (a real kiosk has one connection).
Each raises alerts at random (Poisson) at --alerts-per-min, committed with their outbox row as the
session controller does. Besides them, --real kiosks are whole `proctord run` processes (file camera
looping --video, a session running, recording off) whose alerts come from what the models see; their
latency is counted apart, from the start of the condition, so it includes the rule's confirmation delay.
The supervisor is `proctord watch --json`, a real process.

For each K it prints:
- alert latency at the supervisor, from the event's start (when it was committed) to the line from
  watch: p50 / p95 / max, and alerts seen of alerts raised;
- the reconnect storm: the broker is stopped with all K connected and started again 2 s later;
  connects per second (peak and mean) and the time until every kiosk is connected again, from each
  kiosk's first connection in mosquitto's log.
The machine is shared (2 cores): K kiosks' threads and the broker compete with the console, so the
figures are upper bounds of what a kiosk-per-device fleet would see.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "tests"))

from conftest import daemon_config, start_proctord

from daemon.config import Config
from daemon.events.model import Event, EventChange
from daemon.store.db import Store, StoreReader
from daemon.store.records import CandidateInfo
from daemon.store.writer import StoreWriter
from daemon.sync.connection import BrokerSettings
from daemon.sync.contract import KioskStatus, Topics
from daemon.sync.mqtt import MqttPublisher

SITE = "fleet"
RECONNECT_MAX_S = 30  # the default mqtt.reconnect_max_s
REAL_PREFIX = "real-"  # the kiosk names of the real proctord processes
VIDEO = HERE.parent / "shared/media/videos/proctoring_ai/center_left_center.mp4"


def _raise_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class SimKiosk:
    def __init__(self, data: Path, name: str, port: int):
        self.topics = Topics("proctor", SITE, name)
        self.writer = StoreWriter(Store(data / f"{name}.db", kiosk=name))
        reader = StoreReader(data / f"{name}.db")
        candidate = CandidateInfo("Sim", name, "exam")
        self.session = self.writer.submit(lambda store: store.start_session(candidate, time.time())).result()
        self.publisher = MqttPublisher(
            BrokerSettings("127.0.0.1", port, reconnect_max_s=RECONNECT_MAX_S), self.topics, reader,
            lambda ids: self.writer.submit(lambda store: store.ack(ids)),
            lambda: KioskStatus("sim", self.session, True, 15.0), status_interval_s=300,
        )
        self.publisher.start()

    def raise_alert(self) -> None:
        event = Event(uuid.uuid4().hex, self.session.id, "phone", "high", time.time(), None, 0.9, {})
        change = EventChange("start", event)
        messages = [self.topics.alert_message(change)]
        future = self.writer.submit(lambda store: store.record_event(change, messages))
        future.add_done_callback(lambda _: self.publisher.wake())

    def close(self) -> None:
        self.publisher.stop(flush_timeout=0)
        self.writer.close()


def worker(data: str, names: list[str], port: int, per_min: float, commands, done) -> None:
    _raise_fd_limit()
    kiosks = [SimKiosk(Path(data), name, port) for name in names]
    done.put(("ready", len(kiosks)))
    rng = random.Random(os.getpid())
    raising = False
    raised = 0
    while True:
        if not commands.empty():
            command = commands.get()
            if command == "stop":
                break
            raising = command == "alerts"
        time.sleep(0.1)
        if raising:
            for kiosk in kiosks:
                if rng.random() < per_min / 600:  # per 0.1 s
                    kiosk.raise_alert()
                    raised += 1
    done.put(("raised", raised))
    for kiosk in kiosks:
        kiosk.close()


def clip_tables(video: Path) -> dict[str, dict]:
    """The clip's own set-up from bench/clip_labels.json (e.g. its screen geometry), as dotted TOML tables."""
    labels = json.loads((HERE / "bench/clip_labels.json").read_text())
    config = labels.get(str(video.relative_to(HERE.parent / "shared/media")), {}).get("config", {})
    tables: dict[str, dict] = {}

    def flatten(prefix: str, table: dict) -> None:
        for key, value in table.items():
            if isinstance(value, dict):
                flatten(f"{prefix}.{key}" if prefix else key, value)
            else:
                tables.setdefault(prefix, {})[key] = value

    flatten("", config)
    return tables


def start_real_kiosks(work: Path, count: int, port: int, video: Path) -> list[subprocess.Popen]:
    processes = []
    for index in range(count):
        directory = work / f"{REAL_PREFIX}{index}"
        directory.mkdir()
        config = directory / "proctord.toml"
        config.write_text(daemon_config(
            directory, Config().models_dir, video, camera={"realtime": True, "loop": True},
            kiosk={"site": SITE, "name": directory.name}, session={"auto_start": True, "candidate_id": directory.name},
            recording={"enabled": False}, mqtt={"enabled": True, "port": port}, **clip_tables(video.resolve()),
        ))
        processes.append(start_proctord(config, directory / "daemon.log"))
    return processes


class Watch:
    def __init__(self, port: int):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "daemon.cli", "watch", "--broker", f"127.0.0.1:{port}", "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=Path(__file__).resolve().parents[1],
        )
        self.latencies: list[float] = []
        self.real_latencies: list[float] = []  # the real kiosks': from the condition's start
        self.online: dict[str, float] = {}  # kiosks whose status came "online" (first sighting only)
        self.measuring = False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            record = json.loads(line)
            if record["type"] == "alert" and self.measuring and record["kind"] == "start":
                latencies = self.real_latencies if record["kiosk"].startswith(REAL_PREFIX) else self.latencies
                latencies.append(record["received_at"] - record["event"]["start"])
            elif record["type"] == "status":
                if record["state"] == "online":
                    self.online[record["kiosk"]] = record["received_at"]
                else:
                    self.online.pop(record["kiosk"], None)

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


class Broker:
    def __init__(self, work: Path, port: int):
        self.port, self.log = port, work / "mosquitto.log"
        conf = work / "mosquitto.conf"
        run_as = "user root\n" if os.geteuid() == 0 else ""
        conf.write_text(f"{run_as}listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                        f"log_dest file {self.log}\nlog_type notice\nlog_timestamp true\nmax_queued_messages 10000\n")
        self._command = [shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(conf)]
        self.process = None

    def start(self) -> None:
        self.process = subprocess.Popen(self._command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # the fd limit raised in main() is inherited
        time.sleep(0.5)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()

    def kiosk_connects_since(self, since: float) -> dict[str, int]:
        """Each kiosk's first connection at or after `since` (mosquitto's log, whole seconds)."""
        first: dict[str, int] = {}
        for line in self.log.read_text().splitlines():
            match = re.match(r"(\d+): New client connected from \S+ as proctord-fleet-(\S+) ", line)
            if match and int(match.group(1)) >= int(since):
                first.setdefault(match.group(2), int(match.group(1)))
        return first


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def run(k: int, seconds: float, per_min: float, per_worker: int, real: int, video: Path) -> None:
    work = Path(tempfile.mkdtemp(prefix=f"fleet-{k}-"))
    port = 20000 + k % 1000 + random.randrange(1000)
    broker = Broker(work, port)
    broker.start()
    watch = Watch(port)
    time.sleep(1.5)
    real_kiosks = start_real_kiosks(work, real, port, video)
    total = k + real
    context = multiprocessing.get_context("spawn")
    done = context.Queue()
    procs, queues = [], []
    names = [f"k{i:04d}" for i in range(k)]
    count = -(-k // per_worker)
    started = time.monotonic()
    for w in range(count):
        commands = context.Queue()
        proc = context.Process(target=worker, args=(str(work), names[w::count], port, per_min, commands, done))
        proc.start()
        procs.append(proc)
        queues.append(commands)
    ready = sum(done.get(timeout=900)[1] for _ in procs)
    deadline = time.monotonic() + 600
    while len(watch.online) < total and time.monotonic() < deadline:
        time.sleep(0.2)
    print(f"K={k}: {ready} simulated + {real} real kiosks started, {len(watch.online)} online at the supervisor "
          f"after {time.monotonic() - started:.0f} s")
    watch.measuring = True
    for commands in queues:
        commands.put("alerts")
    time.sleep(seconds)
    for commands in queues:
        commands.put("quiet")
    time.sleep(5)  # the last alerts arrive
    watch.measuring = False
    lat = watch.latencies
    if lat:
        print(f"K={k}: alert latency at the supervisor p50 {1000 * percentile(lat, 0.5):.0f} ms, "
              f"p95 {1000 * percentile(lat, 0.95):.0f} ms, max {1000 * max(lat):.0f} ms over {len(lat)} alerts "
              f"({len(lat) / seconds:.1f}/s)")
    if watch.real_latencies:
        real_lat = watch.real_latencies
        print(f"K={k}: the {real} real kiosks' alerts, from the condition's start (the rule's confirmation "
              f"included): p50 {percentile(real_lat, 0.5):.1f} s, max {max(real_lat):.1f} s over {len(real_lat)} alerts")

    # The reconnect storm: every kiosk's first connection after the broker is back, from the broker's log.
    broker.stop()
    time.sleep(2)
    restart_wall = time.time()
    broker.start()
    deadline = time.monotonic() + 4 * RECONNECT_MAX_S + k / 10
    while len(broker.kiosk_connects_since(restart_wall)) < total and time.monotonic() < deadline:
        time.sleep(1)
    first = broker.kiosk_connects_since(restart_wall)
    per_second = Counter(first.values())
    span = max(per_second) - int(restart_wall) + 1 if per_second else 0
    real_back = sum(name.startswith(REAL_PREFIX) for name in first)
    print(f"K={k}: broker restarted: {len(first)}/{total} kiosks ({real_back}/{real} real) connected again within {span} s "
          f"(log has whole seconds); peak {max(per_second.values(), default=0)} connects/s, "
          f"mean {len(first) / max(span, 1):.0f}/s; by second: {[per_second.get(int(restart_wall) + i, 0) for i in range(span)]}")

    for commands in queues:
        commands.put("stop")
    raised = sum(done.get(timeout=300)[1] for _ in procs)
    for proc in procs:
        proc.join(timeout=60)
    print(f"K={k}: {raised} alerts raised, {len(lat)} seen during the measurement")
    for process in real_kiosks:
        process.terminate()
    for process in real_kiosks:
        if process.wait(timeout=60):
            print(f"K={k}: a real kiosk exited with {process.returncode}: see {work}")
    watch.stop()
    broker.stop()
    shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kiosks", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--alerts-per-min", type=float, default=2.0,
                        help="per kiosk; a busy exam room raises a few per candidate per hour, 2/min is a stress rate")
    parser.add_argument("--per-worker", type=int, default=100, help="kiosks per process (at most ~200: select())")
    parser.add_argument("--real", type=int, default=2, help="whole proctord processes among the kiosks")
    parser.add_argument("--video", type=Path, default=VIDEO, help="what the real kiosks' cameras see (looped)")
    args = parser.parse_args()
    _raise_fd_limit()
    for k in args.kiosks:
        run(k, args.seconds, args.alerts_per_min, args.per_worker, args.real, args.video)


if __name__ == "__main__":
    main()
