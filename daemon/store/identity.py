"""Identity checks in the store: each session's reference embedding (chained) and its similarity figures.

The embedding is biometric data, so the chain keeps its sha256, never the vector itself: deleting it
(retention, `purge`) leaves the chain intact and says so in one more entry ("identity_deleted"). The
reference photo, when kept, is a media file like any other (kind "reference", chained, deleted by a media
deletion). Called with the store's connection inside its transactions (`Store.transact`) or with a
reader's (`StoreReader.read`).
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass

import numpy as np

from daemon.store import chain

# What the chain keeps of a reference row (its embedding only by hash).
REFERENCE_FIELDS = (
    "session_id", "source", "model", "dimensions", "embedding_sha256", "threshold", "samples", "taken_at", "photo",
)
REFERENCE_PHOTO = "reference"  # the media kind of a kept reference photo


@dataclass(frozen=True, slots=True)
class StoredReference:
    session_id: str
    source: str  # check-in | photo
    model: str  # the embedding model's file name
    dimensions: int
    embedding: np.ndarray | None  # None once deleted
    embedding_sha256: str
    threshold: float  # the similarity under which the session counted a mismatch
    samples: int
    taken_at: float
    photo: str | None  # the reference photo's media name, when kept
    deleted_at: float | None


def _embedding_bytes(embedding: np.ndarray) -> bytes:
    return np.asarray(embedding, dtype="<f4").tobytes()


def save_reference(
    conn: sqlite3.Connection, session_id: str, source: str, model: str, embedding: np.ndarray, threshold: float,
    samples: int, taken_at: float, photo: str | None, at: float,
) -> None:
    blob = _embedding_bytes(embedding)
    row = {
        "session_id": session_id, "source": source, "model": model, "dimensions": len(blob) // 4,
        "embedding_sha256": hashlib.sha256(blob).hexdigest(), "threshold": threshold, "samples": samples,
        "taken_at": taken_at, "photo": photo,
    }
    conn.execute(
        f"INSERT INTO identity_references ({', '.join(row)}, embedding) VALUES ({', '.join('?' * len(row))}, ?)",
        (*row.values(), blob),
    )
    chain.append(conn, session_id, "identity_reference", session_id, row, at)


def add_similarities(conn: sqlite3.Connection, session_id: str, samples: list[tuple[float, float]]) -> None:
    """(wall-clock time, similarity) figures; progress, not evidence: not chained."""
    conn.executemany(
        "INSERT INTO identity_checks (session_id, at, similarity) VALUES (?, ?, ?)",
        [(session_id, at, value) for at, value in samples],
    )


def purge(conn: sqlite3.Connection, session_id: str, reason: str, at: float) -> bool:
    """Delete the session's embedding and similarity figures (the photo goes as a media deletion); chained.
    Returns whether there was anything left to delete."""
    had_figures = conn.execute("DELETE FROM identity_checks WHERE session_id = ?", (session_id,)).rowcount
    cleared = conn.execute(
        "UPDATE identity_references SET embedding = NULL, deleted_at = ? WHERE session_id = ? AND deleted_at IS NULL",
        (at, session_id),
    ).rowcount
    if not (had_figures or cleared):
        return False
    chain.append(conn, session_id, "identity_deleted", session_id, {"reason": reason}, at)
    return True


def reference(conn: sqlite3.Connection, session_id: str) -> StoredReference | None:
    row = conn.execute(
        f"SELECT {', '.join(REFERENCE_FIELDS)}, embedding, deleted_at FROM identity_references WHERE session_id = ?",
        (session_id,),
    ).fetchone()
    if row is None:
        return None
    values = dict(zip((*REFERENCE_FIELDS, "embedding", "deleted_at"), row, strict=True))
    blob = values.pop("embedding")
    return StoredReference(embedding=None if blob is None else np.frombuffer(blob, dtype="<f4").copy(), **values)


def similarities(conn: sqlite3.Connection, session_id: str) -> list[tuple[float, float]]:
    rows = conn.execute("SELECT at, similarity FROM identity_checks WHERE session_id = ? ORDER BY at", (session_id,))
    return [(at, value) for at, value in rows]


# Sessions whose identity data is due for deletion: ended before ?, not under review, something left.
EXPIRED_SQL = (
    "SELECT id FROM sessions WHERE state != 'running' AND under_review = 0 AND ended_at < ? AND ("
    " EXISTS (SELECT 1 FROM identity_references r WHERE r.session_id = sessions.id AND r.deleted_at IS NULL)"
    " OR EXISTS (SELECT 1 FROM identity_checks c WHERE c.session_id = sessions.id)) ORDER BY ended_at"
)


def expired_sessions(conn: sqlite3.Connection, ended_before: float) -> list[str]:
    return [row[0] for row in conn.execute(EXPIRED_SQL, (ended_before,))]
