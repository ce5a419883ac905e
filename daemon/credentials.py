"""Secrets read from files, never from the config itself, and never logged.

A relative name is a systemd credential (`LoadCredential=NAME:/path` puts it in $CREDENTIALS_DIRECTORY);
an absolute path is read as is. Errors name the config key and the file, never the content.
"""

from __future__ import annotations

import os
from pathlib import Path

from daemon.errors import UserError


class CredentialError(UserError):
    """The secret a config key points to cannot be read."""


def credential_path(key: str, name: str) -> Path:
    path = Path(name).expanduser()
    if path.is_absolute():
        return path
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        raise CredentialError(
            f"{key}: {name!r} is a credential name but $CREDENTIALS_DIRECTORY is not set"
            " (give an absolute path, or LoadCredential= in the systemd unit)"
        )
    return Path(directory) / path


def read_credential(key: str, name: str) -> str:
    """The secret in the file `name` (config key `key`), without its trailing newline."""
    path = credential_path(key, name)
    try:
        secret = path.read_text().rstrip("\r\n")
    except OSError as exc:
        raise CredentialError(f"{key}: cannot read {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise CredentialError(f"{key}: {path} is not UTF-8 text") from exc
    if not secret:
        raise CredentialError(f"{key}: {path} is empty")
    return secret
