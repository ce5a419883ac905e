"""The microphone on its own thread: reading, reopening, and whether it is there.

- Every chunk goes to `on_sound` on this thread, in order (the voice stage is light: about 1 % of a core,
  bench/bench_audio.py).
- The microphone is *online* while sound arrives. It is *lost* when no sound has arrived for timeout_s (a
  device unplugged, a read that hangs, a device that cannot be opened), stamped at the end of the last
  sound; or when it delivered digital silence (every sample exactly zero) for silent_s of sound, stamped
  where the silence began: a real microphone always hears its own noise, a muted or dead one gives flat
  zeros. Either way the device is closed and reopened after a capped exponential backoff, as the camera is.
- Each change is handed to `on_online(online, mono, wall)` as it happens, on this thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from daemon.capture.audio import AudioChunk, AudioSource, AudioSourceError
from daemon.capture.grabber import Backoff, close_quietly
from daemon.clock import SYSTEM_CLOCK, Clock

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MicrophoneStats:
    device: str
    online: bool
    seconds: float  # seconds of sound delivered
    reconnects: int  # times the device was opened again after a loss
    seconds_since_last_sound: float | None  # None before the first chunk
    error: str | None  # why sound does not arrive now; None while it does


class Microphone:
    def __init__(
        self,
        open_source: Callable[[], AudioSource],
        *,
        name: str,
        timeout_s: float,
        silent_s: float,
        backoff: Backoff,
        on_sound: Callable[[AudioChunk], None],
        on_online: Callable[[bool, float, float], None],
        clock: Clock = SYSTEM_CLOCK,
    ):
        self._open_source = open_source
        self._name = name
        self._timeout_s = timeout_s
        self._silent_s = silent_s
        self._backoff = backoff
        self._on_sound = on_sound
        self._on_online = on_online
        self._clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="microphone", daemon=True)
        self._lock = threading.Lock()  # the figures below, read by the status page
        self._online = True  # until timeout_s passes without sound
        self._opened = 0
        self._seconds = 0.0
        self._error: str | None = None
        self._last_arrival: float | None = None
        # Thread-only: when the last sound arrived and where it ended (mono, wall), for a loss's stamp.
        self._heard_at = clock.monotonic()
        self._last_end = (self._heard_at, clock.time())

    def start(self) -> None:
        self._heard_at = self._clock.monotonic()  # the timeout counts from the start
        self._last_end = (self._heard_at, self._clock.time())
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        if self._thread.is_alive():
            log.warning("microphone thread still blocked in a read of %s; leaving it behind", self._name)

    @property
    def online(self) -> bool:
        return self._online

    @property
    def stats(self) -> MicrophoneStats:
        with self._lock:
            last = self._last_arrival
            return MicrophoneStats(
                self._name, self._online, self._seconds, max(0, self._opened - 1),
                None if last is None else self._clock.monotonic() - last, self._error,
            )

    # --- the microphone thread -------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            source = self._open()
            if source is not None:
                try:
                    self._read_until_failure(source)
                finally:
                    close_quietly(source)
            self._wait(self._backoff.next_delay())

    def _open(self) -> AudioSource | None:
        try:
            source = self._open_source()
        except Exception as exc:  # noqa: BLE001 - whatever a backend throws, the microphone is just not there
            self._failed(exc)
            return None
        with self._lock:
            self._opened += 1
            if self._opened > 1:
                log.info("microphone %s reopened", self._name)
        return source

    def _read_until_failure(self, source: AudioSource) -> None:
        silence: tuple[float, float] | None = None  # where the current run of flat zeros began
        silent_for = 0.0
        first = True
        while not self._stop.is_set():
            try:
                chunk = source.read()
            except Exception as exc:  # noqa: BLE001 - a failing read must not end listening
                self._failed(exc)
                return
            if chunk is None:  # a finite source ended: for a microphone, a failure like any other
                self._failed(AudioSourceError(f"{self._name}: the sound stream ended"))
                return
            if first:
                self._backoff.reset()
                first = False
            if chunk.samples.any():
                silence, silent_for = None, 0.0
            else:
                silence = silence or (chunk.mono, chunk.wall)
                silent_for += chunk.duration
                if silent_for >= self._silent_s:
                    with self._lock:
                        self._error = f"{self._name}: digital silence (flat zero samples) for {silent_for:.1f} s"
                    log.warning("%s", self._error)
                    self._lost(*silence)
                    return
                if not self._online:  # flat zeros do not bring a lost microphone back
                    continue
            self._deliver(chunk)

    def _deliver(self, chunk: AudioChunk) -> None:
        now = self._clock.monotonic()
        if not self._online:
            self._set_online(True, chunk.mono, chunk.wall)
            log.info("microphone %s restored", self._name)
        with self._lock:
            self._seconds += chunk.duration
            self._error = None
            self._last_arrival = now
        self._heard_at, self._last_end = now, (chunk.end_mono, chunk.wall + chunk.duration)
        self._on_sound(chunk)

    def _failed(self, exc: Exception) -> None:
        message = str(exc) if isinstance(exc, AudioSourceError) else f"{self._name}: {type(exc).__name__}: {exc}"
        with self._lock:
            repeated, self._error = message == self._error, message
        (log.debug if repeated else log.warning)("%s", message)
        self._check_timeout()

    def _wait(self, seconds: float) -> None:
        """Wait before reopening, noticing meanwhile that the sound has been gone for timeout_s."""
        until = self._clock.monotonic() + seconds
        while not self._stop.is_set() and (left := until - self._clock.monotonic()) > 0:
            self._stop.wait(min(left, self._timeout_s / 4))
            self._check_timeout()

    def _check_timeout(self) -> None:
        if self._online and self._clock.monotonic() - self._heard_at > self._timeout_s:
            log.warning("microphone %s lost: no sound for %.1f s", self._name, self._timeout_s)
            self._lost(*self._last_end)

    def _lost(self, mono: float, wall: float) -> None:
        if self._online:
            self._set_online(False, mono, wall)

    def _set_online(self, online: bool, mono: float, wall: float) -> None:
        with self._lock:
            self._online = online
        self._on_online(online, mono, wall)
