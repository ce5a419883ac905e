"""The pre-roll: the last seconds of encoded video, so an event's clip can start before the event.

It holds packets, not raw frames: at 640x480 and the default quality a second of video is tens of
kilobytes encoded against 14 MB raw at 15 fps, so the default 10 s (pre-roll plus the longest time a
rule takes to confirm an event) costs well under a megabyte. It keeps whole groups of pictures (a
keyframe and the frames that depend on it), so a clip always starts on a keyframe; and the sound packets
from one AAC frame before the oldest group on.
"""

from __future__ import annotations

from collections import deque

from daemon.recording.mp4 import AAC_LEAD_MS, EncodedFrame


class PreRoll:
    def __init__(self, seconds: float):
        self._seconds = seconds
        self._groups: deque[list[EncodedFrame]] = deque()
        self._sound: deque[EncodedFrame] = deque()

    def add(self, frame: EncodedFrame) -> None:
        if frame.audio:
            self._sound.append(frame)
            return
        if frame.keyframe or not self._groups:
            self._groups.append([frame])
        else:
            self._groups[-1].append(frame)
        horizon = frame.wall - self._seconds
        # Drop the oldest group once the next one alone still reaches back to the horizon.
        while len(self._groups) > 1 and self._groups[1][0].wall <= horizon:
            self._groups.popleft()
        while self._sound and self._sound[0].pts < self._groups[0][0].pts - AAC_LEAD_MS:
            self._sound.popleft()

    def since(self, wall: float) -> list[EncodedFrame]:
        """The frames from the last keyframe at or before `wall` (or the oldest one held) to now, with their
        sound."""
        groups = list(self._groups)
        first = max((i for i, group in enumerate(groups) if group[0].wall <= wall), default=0)
        video = [frame for group in groups[first:] for frame in group]
        if not video:
            return []
        sound = [packet for packet in self._sound if packet.pts >= video[0].pts - AAC_LEAD_MS]
        # The keyframe first (a file starts with it), then picture and sound in time order.
        return [video[0], *sorted(video[1:] + sound, key=lambda packet: packet.pts)]

    def clear(self) -> None:
        self._groups.clear()
        self._sound.clear()
