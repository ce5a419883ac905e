"""The start-up checks `proctord run` makes before it opens anything, shared with `proctord check-config`.

Each check calls the function the daemon itself uses to read that setting (credentials, the password
hash, the TLS files, the model hashes, the video source), so `check-config` refuses exactly what `run`
refuses, without opening the camera or connecting to the broker. Every problem is one line naming the
key and the value (never a secret).
"""

from __future__ import annotations

import errno
import socket
from pathlib import Path

from daemon.config import DEFAULT_CONFIG_NAME, Config, ConfigError, load_config
from daemon.errors import UserError


def load_checked_config(path: Path | None, *, for_run: bool = False, web_port: int | None = None) -> Config:
    """The config at `path` (None: the embedded default), refused with every start-up problem at once.

    `for_run` also checks that the web port is free (`check-config` may run beside a daemon that holds
    it) and keeps the data directory it creates. `web_port` overrides web.port (`proctord run --port`).
    """
    config = load_config(path)
    if web_port is not None:
        config = config.model_copy(update={"web": config.web.model_copy(update={"port": web_port})})
    problems = startup_problems(config, for_run=for_run)
    if problems:
        raise ConfigError(str(path) if path else f"<embedded {DEFAULT_CONFIG_NAME}>", problems)
    return config


def startup_problems(config: Config, *, for_run: bool = False) -> list[str]:
    checks = [_data_dir, _models, _arithmetic, _camera, _web_password, _mqtt_files]
    if for_run:
        checks.append(_web_port)
    problems = []
    for check in checks:
        try:
            check(config, for_run)
        # What a user can fix, each naming its key (model, source, credential and web password errors are
        # UserErrors). Anything else is a bug.
        except (Refused, UserError) as exc:
            problems.append(str(exc))
    return problems


class Refused(Exception):
    """A start-up check's one-line reason."""


def _data_dir(config: Config, for_run: bool) -> None:
    """The data directory exists or can be made. check-config makes it as run would, then removes what it
    made: only trying tells a read-only or full file system from a writable one."""
    data_dir = config.data_dir
    key = f"paths.data_dir: {str(data_dir)!r}"
    missing = [path for path in (data_dir, *data_dir.parents) if not path.exists()]
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise Refused(f"{key} is a file, not a directory") from exc
    except OSError as exc:
        raise Refused(f"{key} cannot be created: {exc.strerror}") from exc
    if not for_run:
        for path in missing:  # deepest first
            path.rmdir()


def _models(config: Config, _: bool) -> None:
    from daemon.inference.analyzer import face_only_if_missing, required_models
    from daemon.inference.voice import VAD_MODEL_FILE
    from daemon.modelstore import MANIFEST_PATH, ModelError, verify_models

    inference, _ = face_only_if_missing(config.inference, config.models_dir)  # no object model: face-only
    voice = [VAD_MODEL_FILE] if config.audio.enabled else []
    try:
        verify_models(MANIFEST_PATH, config.models_dir, required_models(inference, config.identity) + voice)
    except ModelError as exc:
        raise Refused(f"paths.models_dir: {exc}") from exc
    # The bundled embedding model is verified above; an exam centre's own is not pinned, but must be there.
    own_model = config.models_dir / config.identity.model_file
    if config.identity.enabled and not own_model.is_file():
        raise Refused(f"identity.model_file: {own_model} not found")


def _arithmetic(config: Config, _: bool) -> None:
    from daemon.inference.roi import to_frame_is_exact

    if not to_frame_is_exact():
        raise Refused(
            "this CPU's BLAS (numpy's OpenBLAS) computes small matrix products wrong, so every face's landmarks "
            "would be misplaced; run proctord with OPENBLAS_CORETYPE=ARMV8 (the generic kernel) in its "
            "environment: `systemctl edit proctord`, then Environment=OPENBLAS_CORETYPE=ARMV8"
        )


def _camera(config: Config, _: bool) -> None:
    from daemon.capture.sources import check_source

    check_source(config.camera)


def _web_password(config: Config, _: bool) -> None:
    """Errors name the key, never the value (a password typed where its hash belongs)."""
    if config.web.enabled:
        from webui.auth import load_password_hash

        load_password_hash(config.web)


def _mqtt_files(config: Config, _: bool) -> None:
    """The password and token files, and the TLS files loaded as paho will load them (no connection)."""
    if not config.mqtt.enabled:
        return
    from daemon.credentials import read_credential
    from daemon.sync.connection import BrokerSettings, new_client

    if config.mqtt.commands and config.mqtt.command_token_file:
        read_credential("mqtt.command_token_file", config.mqtt.command_token_file)
    new_client(BrokerSettings.from_config(config.mqtt), client_id="proctord-check-config")


def _web_port(config: Config, _: bool) -> None:
    web = config.web
    if not web.enabled:
        return
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            web.host, web.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as waitress binds
            probe.bind(address)
    except socket.gaierror as exc:
        raise Refused(f"web.host: {web.host!r} is not an address of this machine: {exc.strerror}") from exc
    except OSError as exc:
        raise Refused(busy_port_message(web.host, web.port, exc)) from exc


def busy_port_message(host: str, port: int, exc: OSError) -> str:
    """One line for a port the web page cannot listen on, with the way round it."""
    if exc.errno == errno.EADDRINUSE:
        return (f"web.port: cannot listen on {host}:{port}: another program listens there "
                "(another proctord? `proctord run --port N` picks another port)")
    return f"web.port: cannot listen on {host}:{port}: {exc.strerror}"
