"""The front panel through gpiozero's MockFactory: pins read back as a Pi's would."""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import wait_until
from gpiozero.pins.mock import MockFactory
from gpiozero.threads import GPIOThread

from daemon.config import GpioConfig
from daemon.events.model import Event
from daemon.gpio import BEEP_S, BEEPS, LOOKS, GpioError, Light, open_panel
from daemon.health import HealthMonitor, Vitals
from daemon.notify import SystemdNotifier

RED, GREEN, BLUE, SINGLE, BUZZER, BUTTON = 17, 27, 22, 5, 18, 23


@pytest.fixture
def factory():
    factory = MockFactory()
    yield factory
    factory.reset()


def event(event_id: str, event_type: str = "no_face") -> Event:
    return Event(event_id, "s1", event_type, "high", start=0.0, end=None, peak_confidence=1.0)


def level(factory, pin: int) -> bool:
    return bool(factory.pin(pin).state)


def blinks(factory, pin: int) -> bool:
    """The pin went on and then off again since its states were cleared (MockPin records every change)."""

    def on_then_off() -> bool:
        states = [change.state for change in factory.pin(pin).states]
        return True in states and False in states[states.index(True):]

    return wait_until(on_then_off, 5, f"pin {pin} to blink")


def test_rgb_light_shows_each_state_in_its_colour(factory):
    panel = open_panel(GpioConfig(enabled=True, light_pins=[f"GPIO{RED}", f"GPIO{GREEN}", f"GPIO{BLUE}"]),
                       pin_factory=factory)
    assert (level(factory, RED), level(factory, GREEN), level(factory, BLUE)) == (False, False, False)

    panel.show(Light.PROCTORING)  # green, steady
    assert (level(factory, RED), level(factory, GREEN), level(factory, BLUE)) == (False, True, False)

    factory.pin(RED).clear_states()
    panel.show(Light.ALERT)  # red, blinking; green and blue off
    assert blinks(factory, RED)
    assert not level(factory, GREEN) and not level(factory, BLUE)

    factory.pin(RED).clear_states()
    factory.pin(GREEN).clear_states()
    panel.show(Light.FAULT)  # yellow: red and green blink together
    assert blinks(factory, RED) and blinks(factory, GREEN)
    assert not level(factory, BLUE)

    factory.pin(BLUE).clear_states()
    panel.show(Light.IDLE)  # blue, blinking
    assert blinks(factory, BLUE)

    panel.close()  # off and released
    assert (level(factory, RED), level(factory, GREEN), level(factory, BLUE)) == (False, False, False)


def test_single_led_tells_states_apart_by_blinking_and_honours_active_low(factory):
    panel = open_panel(GpioConfig(enabled=True, light_pins=[f"GPIO{SINGLE}"], light_active_high=False),
                       pin_factory=factory)
    assert level(factory, SINGLE) is True  # active low: high is off
    panel.show(Light.PROCTORING)
    assert level(factory, SINGLE) is False
    factory.pin(SINGLE).clear_states()
    panel.show(Light.ALERT)
    wait_until(lambda: [c.state for c in factory.pin(SINGLE).states].count(False) >= 2, 5, "the LED to blink")
    panel.show(Light.OFF)
    assert level(factory, SINGLE) is True
    panel.close()


def beeping_done() -> bool:
    """gpiozero's blink threads have finished (nothing else blinks here): every beep is in the pin's states."""
    return not any(isinstance(thread, GPIOThread) and thread.is_alive() for thread in threading.enumerate())


def test_buzzer_beeps_three_times(factory):
    panel = open_panel(GpioConfig(enabled=True, buzzer_pin=f"GPIO{BUZZER}"), pin_factory=factory)
    factory.pin(BUZZER).clear_states()
    panel.buzz()
    wait_until(beeping_done, 5, "the beeps to end")
    # Three beeps of BEEP_S with BEEP_S between them (gpiozero's tolerance: 50 ms), and no fourth.
    beeps = [(0.0, False)] + [(0.0, True), (BEEP_S, False)] + [(BEEP_S, True), (BEEP_S, False)] * (BEEPS - 1)
    factory.pin(BUZZER).assert_states_and_times(beeps)
    assert len(factory.pin(BUZZER).states) == len(beeps)
    panel.close()


def test_alert_light_blinks_at_its_pace(factory):
    panel = open_panel(GpioConfig(enabled=True, light_pins=[f"GPIO{SINGLE}"]), pin_factory=factory)
    factory.pin(SINGLE).clear_states()
    panel.show(Light.ALERT)
    on_s, off_s = LOOKS[Light.ALERT][1]
    expected = [(0.0, False), (0.0, True), (on_s, False), (off_s, True), (on_s, False)]
    wait_until(lambda: len(factory.pin(SINGLE).states) >= len(expected), 5, "two blinks")
    factory.pin(SINGLE).assert_states_and_times(expected)
    panel.close()


def test_button_press_acknowledges_and_hold_starts_or_stops(factory):
    holds = []
    config = GpioConfig(enabled=True, button_pin=f"GPIO{BUTTON}", button_hold_s=0.2)
    panel = open_panel(config, on_hold=lambda: holds.append(1), pin_factory=factory)
    button = factory.pin(BUTTON)  # wired to ground, pulled up: pressed = low
    no_face, phone = event("e1"), event("e2", "phone_visible")
    assert panel.unacknowledged([no_face]) == [no_face]

    button.drive_low()  # a short press: released long before the hold time
    button.drive_high()
    assert panel.unacknowledged([no_face, phone]) == [phone]  # the alert in view is acknowledged, the new one not
    assert holds == []

    button.drive_low()
    wait_until(lambda: holds == [1], 5, "a hold")
    button.drive_high()  # gpiozero calls back on the thread that drives the pin: done when this returns
    assert panel.unacknowledged([phone]) == [phone]  # releasing after a hold is not also a press
    panel.close()


def test_an_error_in_a_button_action_is_logged_not_lost(factory, caplog):
    def broken():
        raise RuntimeError("store is closed")

    config = GpioConfig(enabled=True, button_pin=f"GPIO{BUTTON}", button_hold_s=0.1)
    panel = open_panel(config, on_hold=broken, pin_factory=factory)
    with caplog.at_level(logging.ERROR, logger="daemon.gpio"):
        factory.pin(BUTTON).drive_low()
        wait_until(lambda: "button hold failed" in caplog.text, 5, "the error in the log")
        factory.pin(BUTTON).drive_high()
    assert "store is closed" in caplog.text
    panel.close()


def test_a_pin_this_board_does_not_have_names_the_key(factory):
    with pytest.raises(GpioError, match="gpio.buzzer_pin: GPIO99 is not a valid pin name"):
        open_panel(GpioConfig(enabled=True, light_pins=["GPIO17"], buzzer_pin="GPIO99"), pin_factory=factory)
    # The light opened before the bad buzzer was released again.
    open_panel(GpioConfig(enabled=True, light_pins=["GPIO17"]), pin_factory=factory).close()


def test_without_gpio_hardware_the_panel_is_off_with_one_log_line(caplog, monkeypatch):
    if Path("/dev/gpiochip0").exists():
        pytest.skip("this machine has GPIO")
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    config = GpioConfig(enabled=True, light_pins=["GPIO17"], buzzer_pin="GPIO18", button_pin="GPIO23")
    with caplog.at_level(logging.WARNING):
        panel = open_panel(config)  # this machine has no GPIO: gpiozero finds no pin library
    expected = (
        "GPIO is not available on this machine (Unable to load any default pin factory!): "
        "status light, buzzer and button are off"
    )
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [expected]
    panel.show(Light.ALERT)
    panel.buzz()
    panel.close()


def test_disabled_gpio_touches_no_pin(factory):
    panel = open_panel(GpioConfig(light_pins=["GPIO17"]), pin_factory=factory)
    panel.show(Light.PROCTORING)
    assert factory.pins == {}
    panel.close()


def test_the_light_follows_the_appliance_and_a_high_alert_beeps_once(factory):
    config = GpioConfig(enabled=True, light_pins=[f"GPIO{SINGLE}"], buzzer_pin=f"GPIO{BUZZER}")
    panel = open_panel(config, pin_factory=factory)
    vitals = Vitals(phase="running", camera_online=True, frames_analysed=1, session_id="s1")
    monitor = HealthMonitor(lambda: vitals, SystemdNotifier(None), panel, stall_after_s=10)
    monitor.check()
    assert level(factory, SINGLE) is True  # proctoring: steady

    factory.pin(BUZZER).clear_states()
    vitals = replace(vitals, frames_analysed=2, open_events=(event("e1"),))
    monitor.check()
    monitor.check()  # the same alert still open: no second round of beeps
    assert panel.shown is Light.ALERT
    wait_until(lambda: len(factory.pin(BUZZER).states) == 1 + 2 * BEEPS, 5, "the beeps")

    monitor.stop()
    panel.stop()
    assert level(factory, SINGLE) is False and level(factory, BUZZER) is False
