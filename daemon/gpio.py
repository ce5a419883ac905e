"""The kiosk's front panel on GPIO (gpiozero): a status light, an optional buzzer, an optional button.

The light shows one of the appliance's states; a single LED tells them apart by its blink, an RGB LED
by its colour too. The button's short press acknowledges the alerts in view (the light no longer shows
them), holding it starts or stops a session. The panel is the daemon's "panel" part (daemon/parts.py). On a machine without GPIO the panel is empty and says so once in the log: nothing else in
the daemon depends on it. The pin factory is injectable (gpiozero's MockFactory in the tests).
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Callable, Iterable
from enum import Enum

from gpiozero import LED, RGBLED, BadPinFactory, Button, Buzzer, GPIOZeroError, PinFactoryFallback
from gpiozero.pins import Factory

from daemon.config import GpioConfig
from daemon.errors import UserError
from daemon.events.model import Event
from daemon.parts import Figure, PartStatus

log = logging.getLogger(__name__)


class Light(Enum):
    OFF = "off"  # starting or stopping
    IDLE = "idle"  # up, no session
    PROCTORING = "proctoring"  # a session runs, nothing to look at
    ALERT = "alert"  # an event is open and not yet acknowledged
    FAULT = "fault"  # camera lost, or the pipeline stalled


# How each state looks: RGB colour, and (on, off) seconds of blinking or None for steady.
LOOKS: dict[Light, tuple[tuple[int, int, int], tuple[float, float] | None]] = {
    Light.IDLE: ((0, 0, 1), (0.2, 1.8)),  # blue, a short blink every 2 s: alive, nothing to watch
    Light.PROCTORING: ((0, 1, 0), None),  # green, steady
    Light.ALERT: ((1, 0, 0), (0.15, 0.15)),  # red, fast blink
    Light.FAULT: ((1, 1, 0), (1.0, 1.0)),  # yellow, slow blink
}
BEEPS = 3  # per high-severity alert: short, so an exam room is not disturbed for long
BEEP_S = 0.1
BUTTON_BOUNCE_S = 0.05


class GpioError(UserError):
    """A pin the config names cannot be used on this board."""


class Panel:
    """What the daemon drives; any of the three devices may be absent."""

    name = "panel"

    def __init__(
        self,
        light: LED | RGBLED | None = None,
        buzzer: Buzzer | None = None,
        button: Button | None = None,
        on_hold: Callable[[], None] = lambda: None,
    ):
        self._light = light
        self._buzzer = buzzer
        self._button = button
        self._shown = Light.OFF
        self._held = False
        self._on_hold = on_hold
        self._lock = threading.Lock()  # the button's thread acknowledges, the health thread asks
        self._in_view: set[str] = set()  # ids of the alerts open at the last look
        self._acknowledged: set[str] = set()
        if button is not None:
            button.when_pressed = self._pressed
            button.when_held = self._button_held
            button.when_released = self._released

    @property
    def shown(self) -> Light:
        return self._shown

    def show(self, state: Light) -> None:
        if state is self._shown:
            return  # re-starting a blink would make it stutter
        self._shown = state
        if self._light is None:
            return
        if state is Light.OFF:
            self._light.off()
            return
        colour, blink = LOOKS[state]
        if isinstance(self._light, RGBLED):
            if blink is None:
                self._light.color = colour
            else:
                self._light.blink(*blink, on_color=colour, background=True)
        elif blink is None:
            self._light.on()
        else:
            self._light.blink(*blink, background=True)

    def buzz(self) -> None:
        if self._buzzer is not None:
            self._buzzer.beep(BEEP_S, BEEP_S, n=BEEPS, background=True)

    def unacknowledged(self, open_events: Iterable[Event]) -> list[Event]:
        """The open alerts the button has not acknowledged (those alone turn the light to alert)."""
        events = list(open_events)
        with self._lock:
            self._in_view = {event.id for event in events}
            self._acknowledged &= self._in_view  # ids of closed events never come back
            return [event for event in events if event.id not in self._acknowledged]

    def acknowledge(self) -> None:
        """The button's short press: the alerts open now no longer turn the light to alert."""
        with self._lock:
            self._acknowledged |= self._in_view
        log.info("alerts acknowledged on the panel")

    def start(self) -> None:
        pass

    def stop(self) -> None:
        self.close()

    def status(self) -> PartStatus:
        devices = [name for name, device in (("light", self._light), ("buzzer", self._buzzer),
                                             ("button", self._button)) if device is not None]
        if not devices:
            return PartStatus(self.name, "off", "no GPIO panel", title="Panel")
        return PartStatus(self.name, "ok", None, (
            Figure("devices", "Devices", ", ".join(devices), kind="info"),
            Figure("light", "Light", self._shown.value, kind="info"),
        ), title="Panel")

    def close(self) -> None:
        """Light off, callbacks gone, pins released (they return to inputs)."""
        self.show(Light.OFF)
        for device in (self._button, self._buzzer, self._light):
            if device is not None:
                device.close()
        self._light = self._buzzer = self._button = None

    # Button callbacks run on gpiozero's threads: an error is logged, never lost in a thread.

    def _pressed(self) -> None:
        self._held = False

    def _button_held(self) -> None:
        self._held = True
        _call(self._on_hold, "button hold")

    def _released(self) -> None:
        if not self._held:
            _call(self.acknowledge, "button press")


def _call(action: Callable[[], None], what: str) -> None:
    try:
        action()
    except Exception:
        log.exception("%s failed", what)


def open_panel(
    config: GpioConfig,
    on_hold: Callable[[], None] = lambda: None,
    pin_factory: Factory | None = None,
) -> Panel:
    """The configured panel; an empty one when GPIO is disabled, or not there on this machine."""
    if not config.enabled:
        return Panel()
    made: list = []

    def make(key: str, device: Callable, *args, **kwargs):
        try:
            made.append(device(*args, pin_factory=pin_factory, **kwargs))
        except GPIOZeroError as exc:
            for earlier in made:
                earlier.close()
            if isinstance(exc, BadPinFactory):
                raise
            raise GpioError(f"gpio.{key}: {exc}") from exc
        return made[-1]

    try:
        with warnings.catch_warnings():
            # gpiozero warns about every pin library it tries; the one log line below says it all.
            warnings.simplefilter("ignore", PinFactoryFallback)
            light = None
            if len(config.light_pins) == 1:
                light = make("light_pins", LED, config.light_pins[0], active_high=config.light_active_high)
            elif len(config.light_pins) == 3:
                light = make("light_pins", RGBLED, *config.light_pins, active_high=config.light_active_high, pwm=False)
            buzzer = make("buzzer_pin", Buzzer, config.buzzer_pin) if config.buzzer_pin else None
            button = (
                make("button_pin", Button, config.button_pin, hold_time=config.button_hold_s,
                     bounce_time=BUTTON_BOUNCE_S)
                if config.button_pin else None
            )
    except BadPinFactory as exc:
        log.warning("GPIO is not available on this machine (%s): status light, buzzer and button are off", exc)
        return Panel()
    log.info(
        "GPIO panel: light %s, buzzer %s, button %s",
        ",".join(config.light_pins) or "none", config.buzzer_pin or "none", config.button_pin or "none",
    )
    return Panel(light, buzzer, button, on_hold)
