"""The evidence commands of `proctord`: verify, export, review, mark-synced.

They work on the files of the daemon's config (its database and recordings), and may run while the
daemon does: verify and export read one snapshot of the database, review and mark-synced are one short
write each (SQLite serialises them with the daemon's writes).
"""

from __future__ import annotations

import sys
from pathlib import Path

from daemon.config import Config, load_config
from daemon.errors import EXIT_BAD_INPUT

EXIT_PROBLEMS = 1  # verify found breaks (export: the bundle is written, and says so)


def add_evidence_commands(commands, config_option) -> None:
    verify = commands.add_parser(
        "verify", help="check the tamper-evidence chain, rows and files of a session, or of all (exit 1 on a break)"
    )
    verify.add_argument("session", nargs="?", help="a session id (default: every session)")
    config_option(verify)
    verify.set_defaults(handler=_verify)

    export = commands.add_parser("export", help="write a session's report, clips, snapshots and manifest as a zip")
    export.add_argument("session", help="the session id (as on the sessions page or in `proctord verify`)")
    export.add_argument("--out", type=Path, help="the zip to write (default: ./<session>.zip)")
    export.add_argument("--with-recordings", action="store_true", help="include the full session video too")
    config_option(export)
    export.set_defaults(handler=_export)

    review = commands.add_parser("review", help="put a session under review: retention keeps all its files")
    review.add_argument("session", help="the session id")
    review.add_argument("--clear", action="store_true", help="end the review")
    config_option(review)
    review.set_defaults(handler=_review)

    synced = commands.add_parser(
        "mark-synced", help="mark a session's clips and snapshots as safe elsewhere: retention may then delete them"
    )
    synced.add_argument("session", help="the session id")
    config_option(synced)
    synced.set_defaults(handler=_mark_synced)


def _config(args) -> Config | None:
    config = load_config(args.config)
    if not config.database_path.is_file():
        print(f"proctord: no database at {config.database_path} (see paths.data_dir)", file=sys.stderr)
        return None
    return config


def _verify(args) -> int:
    from daemon.store.db import DatabaseUnusable
    from daemon.store.verify import UnknownSession, verify

    if (config := _config(args)) is None:
        return EXIT_BAD_INPUT
    try:
        result = verify(config.database_path, config.recordings_dir, args.session)
    except UnknownSession as exc:
        print(f"proctord: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except DatabaseUnusable as exc:
        print(f"proctord: {exc}", file=sys.stderr)
        return EXIT_PROBLEMS
    for problem in result.problems:
        print(problem)
    for note in result.notes:
        print(f"{note} (note)")
    broken = {problem.session_id for problem in result.problems}
    for s in result.sessions:
        verdict = "BROKEN" if s.session_id in broken else "ok"
        print(f"session {s.session_id}: {verdict} ({s.entries} chain entries, {s.events} events,"
              f" {s.files_checked} files checked; head {s.head})")
    return 0 if result.ok else EXIT_PROBLEMS


def _export(args) -> int:
    from daemon.recording.export import export_session
    from daemon.store.db import DatabaseUnusable
    from daemon.store.verify import UnknownSession

    if (config := _config(args)) is None:
        return EXIT_BAD_INPUT
    out = args.out or Path(f"{args.session}.zip")
    try:
        result = export_session(
            config.database_path, config.recordings_dir, args.session, config.rules, out, args.with_recordings
        )
    except (UnknownSession, DatabaseUnusable) as exc:
        print(f"proctord: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"wrote {result.path} ({result.files} files)")
    for name in result.missing:
        print(f"not in the bundle (deleted or missing): {name}")
    if not result.verified:
        print(f"verification found problems (listed in the manifest): run `proctord verify {args.session}`")
        return EXIT_PROBLEMS
    return 0


def _review(args) -> int:
    return _write(args, lambda store: store.set_under_review(args.session, not args.clear),
                  f"session {args.session}: " + ("review ended" if args.clear else "under review, retention keeps its files"))


def _mark_synced(args) -> int:
    return _write(args, lambda store: store.mark_synced(args.session), f"session {args.session}: evidence marked synced")


def _write(args, change, done: str) -> int:
    from daemon.store.db import DatabaseUnusable, Store

    if (config := _config(args)) is None:
        return EXIT_BAD_INPUT
    try:
        store = Store(config.database_path, config.kiosk.name)
    except DatabaseUnusable as exc:
        print(f"proctord: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        change(store)
    except KeyError as exc:
        print(f"proctord: {exc.args[0]}", file=sys.stderr)
        return EXIT_BAD_INPUT
    finally:
        store.close()
    print(done)
    return 0
