"""H.264 (and AAC sound) in fragmented MP4: one continuous encoder per stream and session, and files that
survive a power cut.

The encoder (libx264 through PyAV, tune=zerolatency: no B-frames and no lookahead, so each frame
leaves the encoder as soon as it went in) produces packets that go unchanged to the session's segment
files and to the events' clips: a clip is a copy of packets already encoded, never a second encode.

Files are written as `<name>.part` with movflags frag_keyframe+empty_moov+default_base_moof: the header
holds no sample index, and each keyframe starts a fragment (moof + mdat) that is complete on its own.
When a fragment is complete (the next keyframe arrives) it is flushed and fsynced, so a crash or power
cut loses at most the fragment being written. `finalize` cuts a file after its last complete fragment
and gives it its final name: on a normal close and, for files a crash left behind, at the next start.

Sound (AacEncoder) is stamped on the same timeline as the video: milliseconds since the session's first
recorded frame, from the capture clock both share, so picture and sound stay in sync however the microphone's
chunks and the frames interleave on their way here. The muxer interleaves the two streams by time, holding a
packet at most MAX_INTERLEAVE_S (sound comes a little later than the frames it goes with).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from daemon.capture.audio import SAMPLE_RATE, AudioChunk
from daemon.files import PARTIAL_SUFFIX, fsync_dir

log = logging.getLogger(__name__)

TIME_BASE = Fraction(1, 1000)  # packet timestamps: milliseconds
MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof"
# The most the muxer holds a packet waiting for the other stream (a lost microphone sends nothing).
MAX_INTERLEAVE_S = 0.5
AAC_BITRATE = 32_000  # 16 kHz mono speech
# One AAC frame (1024 samples at 16 kHz): a file takes the sound packet before its first frame too, as AAC
# decodes each frame with the one before it (and the first one is the encoder's priming).
AAC_LEAD_MS = 64
_AAC_DRIFT = SAMPLE_RATE // 50  # 20 ms of samples
# Where a file says when its first frame was taken (wall clock), for files recovered after a crash.
_START_TAG = re.compile(r"proctord start=([0-9.]+)")


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    data: bytes  # one H.264 access unit
    pts: int  # milliseconds since the encoder started
    keyframe: bool
    wall: float  # when the frame was taken (wall clock, as the events are stamped)
    audio: bool = False  # an AAC packet (every one a sync sample), not a video frame


def fit_size(width: int, height: int, max_width: int, max_height: int) -> tuple[int, int]:
    """The frame scaled down to fit the box (aspect kept, never scaled up), in even dimensions (yuv420p)."""
    scale = min(1.0, max_width / width, max_height / height)
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


class H264Encoder:
    """One session's video stream: BGR frames in, H.264 packets out, a keyframe every `keyframe_interval_s`."""

    def __init__(self, size: tuple[int, int], fps: float, crf: int, preset: str, keyframe_interval_s: float):
        # The encoder's stream lives in an in-memory container that is never written to: its header fixes
        # the codec parameters (SPS/PPS) that every segment and clip copies.
        self._holder = av.open(io.BytesIO(), "w", format="mp4")
        stream = self._holder.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = TIME_BASE
        # A keyframe is forced every keyframe_interval_s of capture time (cameras drop frames, so a frame
        # count would stretch); this is only the upper bound.
        stream.codec_context.gop_size = max(1, round(4 * keyframe_interval_s * fps))
        # Main profile, yuv420p: what every browser plays. One thread: the analysis has the other cores.
        stream.options = {"crf": str(crf), "preset": preset, "tune": "zerolatency", "profile": "main", "threads": "1"}
        stream.codec_context.open()
        self._holder.start_encoding()
        self.template = stream
        self.size = size
        self._keyframe_interval = keyframe_interval_s
        self._first_mono: float | None = None
        self._last_key_mono = float("-inf")
        self._last_pts = -1

    def encode(self, image: np.ndarray, mono: float, wall: float) -> list[EncodedFrame]:
        if (image.shape[1], image.shape[0]) != self.size:
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        if self._first_mono is None:
            self._first_mono = mono
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        # Strictly increasing, whatever the camera's timestamps do.
        frame.pts = self._last_pts = max(round((mono - self._first_mono) * 1000), self._last_pts + 1)
        frame.time_base = TIME_BASE
        if mono - self._last_key_mono >= self._keyframe_interval:
            frame.pict_type = av.video.frame.PictureType.I
            self._last_key_mono = mono
        return [self._encoded(packet, wall) for packet in self.template.encode(frame)]

    def close(self) -> None:
        # zerolatency holds no frame back, so there is nothing to flush; the in-memory holder is discarded.
        with contextlib.suppress(av.FFmpegError):
            self._holder.close()

    @staticmethod
    def _encoded(packet: av.Packet, wall: float) -> EncodedFrame:
        return EncodedFrame(bytes(packet), int(packet.pts), bool(packet.is_keyframe), wall)


class AacEncoder:
    """One session's sound: 16 kHz mono int16 chunks in, AAC packets out, on the video's timeline.

    `origin` is the (mono, wall) of the session's first recorded frame (pts 0). Samples are counted from the
    first chunk on; a chunk stamped more than 20 ms off the count moves the count to its stamp: later, the
    track jumps ahead (a gap: the microphone was reopened, or lost samples); earlier, the samples the track
    already holds for that time are dropped (a microphone clock running fast)."""

    def __init__(self, origin: tuple[float, float]):
        self._holder = av.open(io.BytesIO(), "w", format="mp4")
        stream = self._holder.add_stream("aac", rate=SAMPLE_RATE, layout="mono")
        stream.bit_rate = AAC_BITRATE
        stream.codec_context.time_base = Fraction(1, SAMPLE_RATE)
        # The fast coder: half the CPU of the default (twoloop) at the same bit rate; ample for speech.
        stream.options = {"aac_coder": "fast"}
        stream.codec_context.open()
        self._holder.start_encoding()
        self.template = stream
        self._origin = origin
        self._frame_size = stream.codec_context.frame_size or 1024
        self._held = np.zeros(0, np.int16)
        self._next = -1  # pts (samples) of the first held sample; -1 before the first chunk

    def encode(self, chunk: AudioChunk) -> list[EncodedFrame]:
        stamped = round((chunk.mono - self._origin[0]) * SAMPLE_RATE)
        samples = chunk.samples
        if self._next < 0:
            self._next = max(0, stamped)
        else:
            expected = self._next + len(self._held)
            if stamped - expected > _AAC_DRIFT:  # a gap: what is held ends in silence, go on from the stamp
                held = self._held
                packets = self._encode_block(np.pad(held, (0, self._frame_size - len(held)))) if len(held) else []
                self._held, self._next = np.zeros(0, np.int16), max(stamped, self._next)
                return packets + self.encode(chunk)
            if expected - stamped > _AAC_DRIFT:
                samples = samples[expected - stamped:]
        self._held = np.concatenate([self._held, samples])
        packets = []
        while len(self._held) >= self._frame_size:
            block, self._held = self._held[:self._frame_size], self._held[self._frame_size:]
            packets += self._encode_block(block)
        return packets

    def flush(self) -> list[EncodedFrame]:
        """The sound still held (a last short frame) and what the encoder holds back: at the session's end."""
        packets = self._encode_block(self._held) if len(self._held) else []
        self._held = np.zeros(0, np.int16)
        return packets + [self._encoded(packet) for packet in self.template.encode(None)]

    def _encode_block(self, block: np.ndarray) -> list[EncodedFrame]:
        frame = av.AudioFrame.from_ndarray(block.reshape(1, -1), format="s16", layout="mono")
        frame.rate, frame.pts, frame.time_base = SAMPLE_RATE, self._next, Fraction(1, SAMPLE_RATE)
        self._next += len(block)
        return [self._encoded(packet) for packet in self.template.encode(frame)]

    def _encoded(self, packet: av.Packet) -> EncodedFrame:
        ms = round(packet.pts * 1000 / SAMPLE_RATE)
        return EncodedFrame(bytes(packet), ms, True, self._origin[1] + ms / 1000, audio=True)

    def close(self) -> None:
        with contextlib.suppress(av.FFmpegError):
            self._holder.close()


class Mp4Writer:
    """One fragmented MP4 file, written as <path>.part and renamed to <path> when closed; with a sound
    track when given the AAC template (sound before the file's first frame is left out)."""

    def __init__(self, path: Path, template: av.VideoStream, audio_template: av.AudioStream | None = None):
        self.path = path
        self.partial = path.with_name(path.name + PARTIAL_SUFFIX)
        self.frames = 0
        self.start: float | None = None
        self.end: float | None = None
        self._first_pts = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.partial.open("wb")
        try:
            fsync_dir(path.parent)
            # flush_packets: each fragment reaches the file as soon as the muxer completes it.
            self._container = av.open(self._file, "w", format="mp4", options={
                "movflags": MOVFLAGS, "flush_packets": "1", "max_interleave_delta": str(round(MAX_INTERLEAVE_S * 1e6)),
            })
            self._stream = self._container.add_stream_from_template(template)
            self._audio = self._container.add_stream_from_template(audio_template) if audio_template else None
        except BaseException:
            self._file.close()
            raise

    def write(self, frame: EncodedFrame) -> None:
        if frame.audio:
            self._write_audio(frame)
            return
        if self.start is None:
            self._first_pts, self.start = frame.pts, frame.wall
            self._container.metadata["comment"] = f"proctord start={frame.wall!r}"
        packet = av.Packet(frame.data)
        packet.pts = packet.dts = frame.pts - self._first_pts
        packet.time_base = TIME_BASE
        packet.is_keyframe = frame.keyframe
        packet.stream = self._stream
        self._container.mux(packet)
        self.frames += 1
        self.end = frame.wall
        if frame.keyframe:
            # The keyframe closed the previous fragment, which the muxer has just written out.
            self._file.flush()
            os.fsync(self._file.fileno())

    def _write_audio(self, frame: EncodedFrame) -> None:
        if self._audio is None or self.start is None or frame.pts < self._first_pts - AAC_LEAD_MS:
            return
        packet = av.Packet(frame.data)
        packet.pts = packet.dts = frame.pts - self._first_pts
        packet.time_base = TIME_BASE
        packet.stream = self._audio
        self._container.mux(packet)

    def close(self) -> Path:
        """Write the last fragment, make the file durable and give it its final name. A file that cannot be
        finished (a full disk) keeps its complete fragments."""
        try:
            self._container.close()
        except (OSError, av.FFmpegError) as exc:
            log.warning("%s: could not write its end (%s); keeping its complete fragments", self.partial, exc)
        finally:
            with contextlib.suppress(OSError):
                self._file.close()
        if finalize(self.partial, self.path):
            # Frames were lost with the cut: count what the file really holds.
            found = probe(self.path)
            self.frames = found.frames
            self.end = None if self.start is None else self.start + found.duration
        return self.path


def finalize(partial: Path, path: Path) -> bool:
    """Cut `partial` after its last complete fragment, fsync it and rename it to `path`. Returns whether
    anything was cut."""
    with partial.open("r+b") as file:
        size = os.fstat(file.fileno()).st_size
        complete = complete_length(file, size)
        if complete < size:
            log.warning("%s: cut after its last complete fragment (%d of %d bytes kept)", partial, complete, size)
            file.truncate(complete)
        file.flush()
        os.fsync(file.fileno())
    os.replace(partial, path)
    fsync_dir(path.parent)
    return complete < size


def complete_length(file, size: int) -> int:
    """How many leading bytes of a fragmented MP4 form complete top-level boxes, a moof counting only
    together with the mdat that follows it."""
    offset = complete = 0
    in_fragment = False
    while offset + 8 <= size:
        file.seek(offset)
        header = file.read(16)
        length, kind = struct.unpack(">I4s", header[:8])
        if length == 1 and len(header) == 16:
            length = struct.unpack(">Q", header[8:16])[0]
        elif length == 0:  # "to the end of the file": only a finished writer knows it is whole
            break
        if length < 8 or offset + length > size:
            break
        offset += length
        if kind == b"moof":
            in_fragment = True
            continue
        if kind == b"mdat" and not in_fragment:
            break
        in_fragment = False
        complete = offset
    return complete


@dataclass(frozen=True, slots=True)
class Probe:
    frames: int
    start: float | None  # wall clock of the first frame, from the file's own tag
    duration: float  # seconds from the first to the last frame


def probe(path: Path) -> Probe:
    """What a file holds, read back from the file itself (for files recovered after a crash)."""
    with av.open(str(path)) as container:
        tag = _START_TAG.search(container.metadata.get("comment", ""))
        stream = container.streams.video[0]
        frames, first, last = 0, None, 0.0
        for packet in container.demux(stream):
            if packet.pts is None:
                continue
            seconds = float(packet.pts * packet.time_base)
            first = seconds if first is None else first
            last, frames = seconds, frames + 1
    return Probe(frames, float(tag.group(1)) if tag else None, last - (first or 0.0))
