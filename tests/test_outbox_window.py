"""The outbox's in-flight window (daemon.sync.outbox_window) without a broker: the outbox is a list of
rows, the broker's side is which packet ids it acknowledges. The real-broker drain is in test_mqtt.py."""

from __future__ import annotations

from daemon.store.records import OutboxMessage
from daemon.sync.outbox_window import RESERVED_IN_FLIGHT, OutboxWindow


class Link:
    """A window fed from an in-memory outbox, publishing with increasing packet ids, as the publisher does."""

    def __init__(self, rows: int, size: int = 10):
        self.outbox = [OutboxMessage(f"m{i}", "t", "{}", id=i) for i in range(1, rows + 1)]
        self.window = OutboxWindow(size, refused_retry_s=60.0)
        self.packets: dict[int, str] = {}  # packet id -> message id, on the current connection
        self.sent: list[str] = []
        self._next_packet = 1

    def send(self) -> list[str]:
        """One pass of the publisher's send step; returns what it published."""
        published = []
        while (room := self.window.room) > 0:
            page = [m for m in self.outbox if m.id > self.window.cursor][:room]
            if not page:
                break
            for message in self.window.select(page):
                self.packets[self._next_packet] = message.message_id
                self.window.published(self._next_packet, message)
                self._next_packet += 1
                published.append(message.message_id)
        self.sent += published
        return published

    def ack(self, message_ids: list[str], refused: bool = False, now: float = 0.0) -> None:
        for packet, message_id in list(self.packets.items()):
            if message_id in message_ids:
                self.window.acknowledged(packet, refused, now)
                del self.packets[packet]

    def delete(self) -> list[str]:
        """The store commits the window's next deletion batch."""
        batch = self.window.deletion_batch()
        self.outbox = [m for m in self.outbox if m.message_id not in batch]
        self.window.deleted(batch)
        return batch

    def reconnect(self, receive_maximum: int | None = None) -> None:
        self.packets.clear()  # the old connection's packet ids mean nothing on the new one
        self.window.restart(receive_maximum)


def test_rows_go_in_order_a_window_at_a_time_refilled_once_half_is_acknowledged():
    link = Link(rows=30, size=10)
    assert link.send() == [f"m{i}" for i in range(1, 11)]
    link.ack(["m1", "m2", "m3", "m4"])
    assert link.send() == []  # 6 in flight: more than half the window
    link.ack(["m5"])
    assert link.send() == [f"m{i}" for i in range(11, 16)]  # refilled to 10 in flight
    assert link.window.in_flight == 10


def test_acknowledged_rows_are_deleted_in_batches_one_at_a_time():
    link = Link(rows=6, size=10)
    link.send()
    link.ack(["m1", "m2"])
    batch = link.window.deletion_batch()
    assert batch == ["m1", "m2"]
    link.ack(["m3"])
    assert link.window.deletion_batch() == []  # the first batch is still committing
    link.window.deleted(batch)
    assert link.window.deletion_batch() == ["m3"]


def test_after_a_reconnection_the_unacknowledged_rows_go_again_in_order_and_acknowledged_ones_never():
    link = Link(rows=8, size=10)
    link.send()
    link.ack(["m1", "m2", "m3"])  # acknowledged, their deletion not committed when the connection drops
    link.reconnect()
    assert link.send() == ["m4", "m5", "m6", "m7", "m8"]
    link.ack(["m4", "m5", "m6", "m7", "m8"])
    while link.delete():
        pass
    assert link.outbox == []
    assert link.sent.count("m1") == 1 and link.sent.count("m4") == 2


def test_a_late_acknowledgement_from_the_old_connection_is_ignored():
    link = Link(rows=3, size=10)
    link.send()
    old_packets = dict(link.packets)
    link.reconnect()
    for packet in old_packets:
        assert link.window.acknowledged(packet, refused=False, now=0.0) is None
    assert link.window.deletion_batch() == []


def test_a_refused_row_stays_the_rest_go_on_and_it_is_retried_after_the_wait():
    link = Link(rows=3, size=10)
    link.send()
    link.ack(["m1"], refused=True, now=100.0)
    link.ack(["m2", "m3"], now=100.0)
    link.delete()
    assert [m.message_id for m in link.outbox] == ["m1"]
    assert not link.window.refused_retry_due(159.0)
    assert link.window.refused_retry_due(160.0)
    link.reconnect()  # the publisher restarts from the head when the retry is due
    assert link.send() == ["m1"]


def test_the_window_shrinks_to_the_brokers_receive_maximum():
    link = Link(rows=50, size=100)
    link.reconnect(receive_maximum=20)
    assert len(link.send()) == 20 - RESERVED_IN_FLIGHT
