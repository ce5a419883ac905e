"""daemon/compat.py behaves like the standard library of 3.11+ on every supported Python (3.10 to 3.13):
CI runs this on 3.10, where the substitutes are in use, and on 3.11+, where they are the stdlib's own."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone

import pytest

from daemon.compat import UTC, StrEnum, file_digest, tomllib


class Colour(StrEnum):
    RED = "red"


def test_str_enum_members_are_their_values_as_strings():
    assert Colour.RED == "red" and isinstance(Colour.RED, str)
    assert str(Colour.RED) == "red" and f"{Colour.RED}" == "red" and Colour("red") is Colour.RED


def test_file_digest_reads_a_file_longer_than_one_chunk(tmp_path):
    data = bytes(range(256)) * 8193  # 2 MiB + 256 bytes: two whole chunks and a tail
    path = tmp_path / "clip.bin"
    path.write_bytes(data)
    with path.open("rb") as file:
        assert file_digest(file, "sha256").hexdigest() == hashlib.sha256(data).hexdigest()


def test_tomllib_parses_and_refuses_like_the_standard_library():
    assert tomllib.loads('[camera]\nfps = 15\n') == {"camera": {"fps": 15}}
    with pytest.raises(tomllib.TOMLDecodeError):
        tomllib.loads("[camera\n")


def test_utc_is_the_utc_timezone():
    assert UTC is timezone.utc
    assert datetime.fromtimestamp(0, UTC).isoformat() == "1970-01-01T00:00:00+00:00"
