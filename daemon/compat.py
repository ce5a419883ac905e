"""What Python 3.11 added that proctord uses, for Python 3.10 (JetPack 6 on the Jetson Orin).

Each name is the standard library's own on 3.11 and later; below, an equivalent. Drop a shim when
requires-python passes 3.11.
"""

from __future__ import annotations

import enum
import hashlib
import sys
from datetime import timezone
from typing import IO

UTC = timezone.utc  # what datetime.UTC is

if sys.version_info >= (3, 11):
    from enum import StrEnum
    from hashlib import file_digest

    import tomllib
else:
    import tomli as tomllib  # the library tomllib was taken from: same API, same errors

    class StrEnum(str, enum.Enum):
        """enum.StrEnum: members are strings, and str()/format() give the value, not "Class.NAME"."""

        def __str__(self) -> str:
            return str.__str__(self)

    def file_digest(file: IO[bytes], digest: str, /) -> hashlib._Hash:
        """hashlib.file_digest: hash a binary file in 1 MiB chunks, never reading it whole."""
        hasher = hashlib.new(digest)
        while chunk := file.read(1 << 20):
            hasher.update(chunk)
        return hasher


__all__ = ["UTC", "StrEnum", "file_digest", "tomllib"]
