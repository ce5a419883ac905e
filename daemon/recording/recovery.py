"""Recovery of the files a crash or power cut left in a session's folder."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import av

from daemon.files import PARTIAL_SUFFIX, file_sha256
from daemon.recording.mp4 import finalize, probe
from daemon.recording.snapshot import REQUESTED
from daemon.store.records import MediaRecord

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(?P<kind>segment|clip|snapshot)-(?P<ref>[^.]+)\.(?:mp4|jpg)$")


def recover_session_files(root: Path, session_id: str, known: set[str]) -> list[MediaRecord]:
    """The files of a session a crash or power cut interrupted that the store does not have yet: each
    video cut after its last complete fragment and renamed, then described as a MediaRecord (its times
    from the file's own tag). A half-written snapshot (still .part), or a video cut before its first
    complete fragment, holds nothing to keep and is removed."""
    folder = root / session_id
    if not folder.is_dir():
        return []
    recovered = []
    for path in sorted(folder.iterdir()):
        if path.name.endswith(".jpg" + PARTIAL_SUFFIX):
            log.warning("%s: removing a snapshot the crash left half-written", path)
            path.unlink()
            continue
        if path.name.endswith(".mp4" + PARTIAL_SUFFIX):
            final = path.with_name(path.name.removesuffix(PARTIAL_SUFFIX))
            finalize(path, final)
            path = final
        name = path.relative_to(root).as_posix()
        match = _NAME.match(path.name)
        if name in known or match is None:
            continue
        media = _describe(path, name, session_id, match["kind"], match["ref"])
        if media is None:
            log.warning("%s: removing a video the crash cut before its first complete fragment", path)
            path.unlink()
            continue
        recovered.append(media)
        log.warning("recovered %s (%d frames) after an interruption", name, media.frames)
    return recovered


def _describe(path: Path, name: str, session_id: str, kind: str, ref: str) -> MediaRecord | None:
    event_id = None if kind == "segment" or ref.startswith(REQUESTED) else ref
    if kind == "snapshot":
        start = end = path.stat().st_mtime
        frames = 1
    else:
        try:
            found = probe(path)
        except av.FFmpegError:  # not even a complete header
            return None
        if found.frames == 0:
            return None
        start = found.start if found.start is not None else path.stat().st_mtime
        end, frames = start + found.duration, found.frames
    return MediaRecord(name, session_id, kind, event_id, file_sha256(path), path.stat().st_size, start, end, frames)
