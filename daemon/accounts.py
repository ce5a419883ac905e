"""Named users of the web page: their roles, names and password hashes.

Users are kept in the database (table `users`, managed with `proctord user ...`); the page reads them
on each request, so a removed user or a changed password takes effect at once, without a restart.

There is no admin role on the page: whoever may run `proctord user` on the kiosk (root, or the service
account that owns the database) is the admin. The web page cannot create or promote anyone.
"""

from __future__ import annotations

import getpass
import re
import sys
from dataclasses import dataclass

from werkzeug.security import check_password_hash, generate_password_hash

from daemon.compat import StrEnum
from daemon.errors import UserError


class Role(StrEnum):
    TECHNICIAN = "technician"  # the kiosk: status, live view, starting and stopping sessions, the sessions list
    REVIEWER = "reviewer"  # the exam board: sessions, reports, review actions, notes, exports


# scrypt (hashlib.scrypt, through Werkzeug's hash format "scrypt:N:r:p$salt$hash", which keeps the
# parameters and a fresh 16-character salt in every hash). N=2^15, r=8 needs 32 MiB per check (128·N·r
# bytes): six web threads checking at once stay under 200 MiB on a 1 GB kiosk. p=3 brings the work to
# OWASP's scrypt floor (N=2^17, r=8, p=1, or this equivalent) without its 128 MiB. One check costs
# about 0.3 s on a loaded 2-core x86 machine (README, "Users and roles"), a few times that on a Pi;
# the login throttle allows one check per account per window, so guessing stays slow either way.
PASSWORD_METHOD = "scrypt:32768:8:3"
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024
NAME_RULE = re.compile(r"[a-z0-9][a-z0-9_.@-]{0,63}")
# The one account the shared password `web.password_hash` gives while no named user exists: it may do all
# it could before named users existed, so upgrading a kiosk changes nothing until the first `user add`.
SHARED_ACCOUNT = "technician"


@dataclass(frozen=True, slots=True)
class Account:
    name: str
    roles: frozenset[Role]  # a named user has one; the shared account every role, as before named users
    password_hash: str

    @property
    def role_text(self) -> str:
        return " and ".join(sorted(self.roles))


def check_name(name: str) -> str:
    """The user name, or a UserError saying what is allowed."""
    if not NAME_RULE.fullmatch(name):
        raise UserError(
            f"user name {name[:80]!r} is not allowed: 1-64 characters, lower-case letters, digits and _ . @ -,"
            " starting with a letter or digit"
        )
    return name


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=PASSWORD_METHOD)


def password_matches(password_hash: str, password: str) -> bool:
    """Also checks the older hashes `proctord hash-password` made (scrypt or pbkdf2, Werkzeug's format)."""
    return check_password_hash(password_hash, password)


def read_new_password(prompt: str) -> str:
    """A new password: asked twice on a terminal, else one line from stdin (never from the command line,
    where other users of the machine would see it in the process list)."""
    if sys.stdin.isatty():
        password = getpass.getpass(f"{prompt}: ")
        if getpass.getpass("Again: ") != password:
            raise UserError("the two passwords differ; nothing was changed")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters; nothing was changed")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise UserError(f"the password must have at most {MAX_PASSWORD_LENGTH} characters; nothing was changed")
    return password
