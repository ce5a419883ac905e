"""The check-in reference as evidence: its embedding in the database (chained) and, when
identity.keep_photo, its photo (the aligned face crop it was taken on) as a JPEG in the session's folder.
Runs on the store thread, inside the write's transaction: the photo is one small file per session."""

from __future__ import annotations

import time
from pathlib import Path

from daemon.config import IdentityConfig
from daemon.events.identity import IdentityReference
from daemon.recording.snapshot import write_jpeg
from daemon.store import identity as identity_store
from daemon.store.db import Store
from daemon.store.records import MediaRecord

PHOTO_NAME = "identity-reference.jpg"


class ReferenceKeeper:
    def __init__(self, config: IdentityConfig, recordings_dir: Path | None, quality: int):
        self._model = Path(config.model_file).name
        self._threshold = config.threshold
        self._root = recordings_dir if config.keep_photo else None  # None: the embedding only
        self._quality = quality

    def keep(self, store: Store, session_id: str, reference: IdentityReference) -> None:
        photo = None
        if self._root is not None and reference.crop is not None:
            photo = f"{session_id}/{PHOTO_NAME}"
            (self._root / session_id).mkdir(parents=True, exist_ok=True)
            sha256, size = write_jpeg(reference.crop, self._root / photo, self._quality)
            store.add_media(MediaRecord(photo, session_id, identity_store.REFERENCE_PHOTO, None, sha256, size,
                                        reference.at, reference.at, 1))
        store.transact(identity_store.save_reference, session_id, reference.source, self._model, reference.embedding,
                       self._threshold, reference.samples, reference.at, photo, time.time())
