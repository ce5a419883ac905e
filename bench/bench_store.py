"""Store figures, side by side in one run (by hand, not by pytest):

1. a read as the publisher, retention and the web page make them (the outbox backlog, every 0.5 s): on
   the thread's kept connection (StoreReader now) against a connection opened per read (before);
2. an event change's commit through StoreWriter.submit (one transaction, one fsync), alone and as part
   of a burst.

    .venv/bin/python bench/bench_store.py [--reads 3000] [--writes 300]

Figures vary with the disk and the machine's load; the ratios within one run are what to compare.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from daemon.events.model import Event, EventChange
from daemon.store.db import Store, StoreReader, connect_reader
from daemon.store.records import CandidateInfo, OutboxMessage
from daemon.store.writer import StoreWriter


def per_read_us(read, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        read()
    return (time.perf_counter() - started) / count * 1e6


def opened_per_read(path: Path) -> int:
    conn = connect_reader(path)
    try:
        return conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=3000)
    parser.add_argument("--writes", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        db = Path(workdir) / "proctord.db"
        writer = StoreWriter(Store(db, "bench"))
        session = writer.submit(lambda store: store.start_session(CandidateInfo("Ada"), time.time())).result()

        def change(i: int):
            event = Event(uuid.uuid4().hex, session.id, "no_face", "high", time.time(), None, 0.9, {"n": i})
            message = OutboxMessage(f"{event.id}:start", "t", "{}")
            return writer.submit(lambda store: store.record_event(EventChange("start", event), [message]))

        single = []
        for i in range(args.writes):
            started = time.perf_counter()
            change(i).result()
            single.append((time.perf_counter() - started) * 1e3)
        started = time.perf_counter()
        for future in [change(i) for i in range(args.writes)]:
            future.result()
        burst = (time.perf_counter() - started) / args.writes * 1e3

        reader = StoreReader(db)
        kept = per_read_us(reader.outbox_backlog, args.reads)
        opened = per_read_us(lambda: opened_per_read(db), args.reads)
        writer.close()
    print(f"outbox backlog read, {args.reads} times (outbox of {2 * args.writes} rows):")
    print(f"  kept connection per thread   {kept:8.1f} us per read")
    print(f"  connection opened per read   {opened:8.1f} us per read   ({opened / kept:.1f}x the kept one)")
    print(f"event change commit through StoreWriter.submit, {args.writes} each:")
    print(f"  one at a time (waited)       {statistics.median(single):8.2f} ms median, "
          f"p95 {statistics.quantiles(single, n=20)[-1]:.2f} ms")
    print(f"  in a burst                   {burst:8.2f} ms per change")


if __name__ == "__main__":
    main()
