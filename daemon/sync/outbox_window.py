"""The outbox's in-flight window: which rows to publish next, which are in flight, which the broker
acknowledged and may be deleted, and where to start again after a reconnection. No I/O and no
threads: the publisher (daemon/sync/mqtt.py) feeds it outbox pages and broker acknowledgements.

The rules it keeps:
- rows go out in outbox order, at most `size` in flight; more are sent once half the window is free, so
  a fast broker gets batches rather than one message per acknowledgement;
- a row leaves the outbox only once the broker acknowledged it; until its deletion commits it is
  skipped, so a reconnection never sends it again;
- after a reconnection (or a refusal's retry time) sending starts again from the outbox head: what the
  old connection left unacknowledged goes again, in order;
- a row the broker refused stays in the outbox and is tried again after `refused_retry_s`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from daemon.store.records import OutboxMessage

# Outbox messages published and not yet acknowledged, on one connection. Bounded, so a slow broker
# does not get the whole backlog at once; lowered to the broker's Receive Maximum when it has one.
IN_FLIGHT = 100
# Publishes outside the outbox (status, command results) that may be in flight beside them.
RESERVED_IN_FLIGHT = 4
# A message the broker refused (an ACL, a quota) stays in the outbox and is tried again this often.
REFUSED_RETRY_S = 60.0


class OutboxWindow:
    def __init__(self, size: int = IN_FLIGHT, refused_retry_s: float = REFUSED_RETRY_S):
        self._max_size = size
        self._refused_retry_s = refused_retry_s
        self.size = size
        self.cursor = 0  # the last outbox row handed out on this connection
        self._in_flight: dict[int, OutboxMessage] = {}  # by the publish's packet id
        self._deleting: set[str] = set()  # acknowledged; their rows' deletion is not committed yet
        self._to_delete: list[str] = []  # acknowledged, their deletion not yet started
        self._delete_running = False
        self._refused_at: float | None = None

    def restart(self, receive_maximum: int | None = None) -> None:
        """A new connection: forget what is in flight and start again from the outbox head."""
        self._in_flight.clear()
        self.cursor = 0
        if receive_maximum is not None:
            self.size = max(1, min(self._max_size, receive_maximum - RESERVED_IN_FLIGHT))

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    @property
    def room(self) -> int:
        """How many rows may be published now (0 until half the window is free again)."""
        if len(self._in_flight) > self.size // 2:
            return 0
        return self.size - len(self._in_flight)

    def select(self, page: Iterable[OutboxMessage]) -> Iterator[OutboxMessage]:
        """The rows of `page` (read after `cursor`) to publish, in order; the cursor follows what is taken."""
        for message in page:
            self.cursor = message.id
            if message.message_id not in self._deleting:
                yield message

    def published(self, packet_id: int, message: OutboxMessage) -> None:
        self._in_flight[packet_id] = message

    def acknowledged(self, packet_id: int, refused: bool, now: float) -> OutboxMessage | None:
        """The broker answered a publish. Returns the outbox row it was about (None: not one of ours or
        of an earlier connection). A refused row stays in the outbox for its retry."""
        message = self._in_flight.pop(packet_id, None)
        if message is None:
            return None
        if refused:
            self._refused_at = self._refused_at or now
        else:
            self._deleting.add(message.message_id)
            self._to_delete.append(message.message_id)
        return message

    def refused_retry_due(self, now: float) -> bool:
        """True once, when the refused rows' retry time has come (the caller then restarts)."""
        if self._refused_at is not None and now - self._refused_at >= self._refused_retry_s:
            self._refused_at = None
            return True
        return False

    def deletion_batch(self) -> list[str]:
        """The acknowledged ids to delete now: one batch at a time, so while one commits the next grows
        (a fast drain costs few fsyncs). Empty while one runs or when there is nothing to delete."""
        if self._delete_running or not self._to_delete:
            return []
        batch, self._to_delete = self._to_delete, []
        self._delete_running = True
        return batch

    def deleted(self, batch: list[str]) -> None:
        """A batch's deletion finished (committed, or failed: the rows are then sent again after the next
        reconnection, a duplicate and never a loss)."""
        self._deleting.difference_update(batch)
        self._delete_running = False

    def pending_deletion(self) -> list[str]:
        """Acknowledged ids whose deletion has not started (at shutdown: handed to the store writer)."""
        batch, self._to_delete = self._to_delete, []
        return batch
