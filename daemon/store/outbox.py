"""Queueing MQTT messages in the outbox, inside the caller's transaction (the store's, or a part's own)."""

from __future__ import annotations

import sqlite3

from daemon.store.records import OutboxMessage


def insert_outbox(conn: sqlite3.Connection, messages: list[OutboxMessage], at: float) -> None:
    conn.executemany(
        # Only a duplicate id is skipped (a re-sent change); any other constraint error aborts the
        # transaction, event included, rather than lose the alert.
        "INSERT INTO outbox (message_id, topic, payload, retain, created_at) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT(message_id) DO NOTHING",
        [(m.message_id, m.topic, m.payload, int(m.retain), at) for m in messages],
    )
