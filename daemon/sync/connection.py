"""How to reach the broker: address, protocol, TLS and credentials, shared by the daemon and `proctord watch`.

The password is read from a file (or a systemd credential) when the settings are built, kept out of
every repr and log line, and handed only to paho.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from daemon.config import MqttConfig
from daemon.credentials import read_credential
from daemon.errors import UserError

log = logging.getLogger(__name__)

MIN_RECONNECT_S = 1
# The first wait after a lost connection is drawn from MIN_RECONNECT_S up to this share of reconnect_max_s
# (then doubles): a fleet that lost its broker together comes back spread out, not in one storm.
RECONNECT_SPREAD = 1 / 3


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    host: str
    port: int = 1883
    protocol: str = "5"  # "5" or "3.1.1"
    keepalive_s: int = 30
    reconnect_max_s: int = 30
    tls: bool = False
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    username: str = ""
    password: str = field(default="", repr=False)

    @classmethod
    def from_config(cls, config: MqttConfig) -> BrokerSettings:
        """Raises UserError naming the config key when a file it names cannot be used."""
        for key in ("ca_file", "cert_file", "key_file"):
            path = getattr(config, key)
            if path and not Path(path).is_file():
                raise UserError(f"mqtt.{key}: {path} is not a readable file")
        password = read_credential("mqtt.password_file", config.password_file) if config.password_file else ""
        return cls(
            host=config.host, port=config.port, protocol=config.protocol, keepalive_s=config.keepalive_s,
            reconnect_max_s=config.reconnect_max_s, tls=config.tls, ca_file=config.ca_file,
            cert_file=config.cert_file, key_file=config.key_file, username=config.username, password=password,
        )

    @property
    def address(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    @property
    def mqtt5(self) -> bool:
        return self.protocol == "5"


def new_client(settings: BrokerSettings, client_id: str) -> mqtt.Client:
    """A paho client (v2 callback API) set up with the settings; not yet connected."""
    if settings.mqtt5:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    else:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311, clean_session=True
        )
    if settings.tls:
        try:
            client.tls_set(
                ca_certs=settings.ca_file or None,
                certfile=settings.cert_file or None,
                keyfile=settings.key_file or None,
            )
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            files = ", ".join(f"mqtt.{key} = {name!r}" for key in ("ca_file", "cert_file", "key_file")
                              if (name := getattr(settings, key)))
            raise UserError(f"mqtt: cannot set up TLS with {files or 'the system CAs'}: {exc}") from exc
    if settings.username:
        client.username_pw_set(settings.username, settings.password or None)
    jitter_reconnect(client, settings)
    return client


def jitter_reconnect(client: mqtt.Client, settings: BrokerSettings) -> None:
    """Draw the next outage's first reconnect wait (paho doubles it up to reconnect_max_s from there)."""
    spread_to = max(MIN_RECONNECT_S, settings.reconnect_max_s * RECONNECT_SPREAD)
    client.reconnect_delay_set(min_delay=random.uniform(MIN_RECONNECT_S, spread_to), max_delay=settings.reconnect_max_s)


def connect_async(client: mqtt.Client, settings: BrokerSettings) -> None:
    """Connect in the background (paho's network thread retries with the capped backoff)."""
    log.info("connecting to MQTT broker %s (MQTT %s)", settings.address, settings.protocol)
    if settings.mqtt5:
        # Nothing is kept broker-side between connections: the outbox re-sends what was not acknowledged,
        # and a command sent while the kiosk was away must not run when it comes back.
        client.connect_async(settings.host, settings.port, keepalive=settings.keepalive_s, clean_start=True)
    else:
        client.connect_async(settings.host, settings.port, keepalive=settings.keepalive_s)
    client.loop_start()
