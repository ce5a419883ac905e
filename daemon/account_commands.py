"""`proctord user add|remove|passwd|list`: the web page's named users, kept in the daemon's database.

They may run while the daemon does (each is one short write, serialised by SQLite with the daemon's);
the page reads users on every request, so a change takes effect at once. A new kiosk's database is
created by `user add`, so users can be set up before the first start.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING

from daemon.accounts import Role, check_name, hash_password, read_new_password
from daemon.compat import UTC
from daemon.config import load_config
from daemon.errors import UserError

if TYPE_CHECKING:
    from daemon.store.db import Store

# What happens to the shared password of older configs (README, "Users and roles").
SHARED_PASSWORD_RULE = (
    "while no named user exists, the shared password web.password_hash (if set) logs in as 'technician'"
)


def add_user_commands(commands, config_option) -> None:
    user = commands.add_parser(
        "user", help="manage the web page's users and their roles (kept in the database; no restart needed)",
        description="Named users of the web page. A technician runs the kiosk (status, live view, starting and "
        f"stopping sessions); a reviewer reads sessions and reports, reviews and exports. Roles: "
        f"{', '.join(Role)}. Passwords are asked twice on a terminal, else read as one line from stdin, never "
        f"taken from the command line. Note: {SHARED_PASSWORD_RULE}.",
    )
    actions = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")

    add = actions.add_parser("add", help="add a user with a role and a password")
    add.add_argument("name", help="1-64 characters: lower-case letters, digits and _ . @ -")
    add.add_argument("--role", required=True, choices=list(Role), help="what the user may do on the page")
    config_option(add)
    add.set_defaults(handler=_add)

    remove = actions.add_parser("remove", help="remove a user: their logins end at once")
    remove.add_argument("name", help="the user to remove")
    config_option(remove)
    remove.set_defaults(handler=_remove)

    passwd = actions.add_parser("passwd", help="set a user's new password: their logins end at once")
    passwd.add_argument("name", help="the user whose password changes")
    config_option(passwd)
    passwd.set_defaults(handler=_passwd)

    listing = actions.add_parser("list", help="list the users, their roles and when their password was set")
    config_option(listing)
    listing.set_defaults(handler=_list)


def _add(args) -> int:
    name = check_name(args.name)
    password_hash = hash_password(read_new_password(f"Password for {name}"))
    with _store(args) as store:
        if not store.add_user(name, args.role, password_hash):
            raise UserError(f"user {name!r} exists already: `proctord user passwd {name}` sets a new password,"
                            f" `proctord user remove {name}` removes it")
    print(f"added {name} ({args.role}); named users replace the shared password web.password_hash")
    return 0


def _remove(args) -> int:
    with _store(args) as store:
        if not store.remove_user(args.name):
            raise _no_such_user(args.name)
    print(f"removed {args.name}: their logins have ended")
    return 0


def _passwd(args) -> int:
    with _store(args) as store:
        if store.view.user(args.name) is None:  # said before the password is asked for
            raise _no_such_user(args.name)
    password_hash = hash_password(read_new_password(f"New password for {args.name}"))
    with _store(args) as store:
        if not store.set_password(args.name, password_hash):
            raise _no_such_user(args.name)
    print(f"new password for {args.name}: their logins have ended")
    return 0


def _list(args) -> int:
    with _store(args) as store:
        users = store.view.users()
    if not users:
        print(f"no named user; {SHARED_PASSWORD_RULE}")
    for user in users:
        changed = datetime.fromtimestamp(user.changed_at, UTC).astimezone().strftime("%Y-%m-%d %H:%M %Z")
        print(f"{user.name:<24} {user.role:<11} password set {changed}")
    return 0


def _no_such_user(name: str) -> UserError:
    return UserError(f"no user {name!r} (`proctord user list` shows them)")


@contextmanager
def _store(args) -> Iterator[Store]:
    """The config's database, created and migrated on a new kiosk (users can be set up before the first start)."""
    from daemon.store.db import Store

    config = load_config(args.config)
    try:
        store = Store(config.database_path, config.kiosk.name)
    except (OSError, sqlite3.Error) as exc:  # most often: run by a user who may not write the data directory
        raise UserError(
            f"cannot open the database {config.database_path}: {exc}; run `proctord user` as the user that owns it"
            " (an installed kiosk: sudo -u proctord env STATE_DIRECTORY=/var/lib/proctord ...)"
        ) from exc
    try:
        yield store
    finally:
        store.close()
