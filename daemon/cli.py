"""The `proctord` command."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

from daemon import __version__
from daemon.account_commands import add_user_commands
from daemon.config import Config, ConfigError, load_config
from daemon.errors import EXIT_BAD_INPUT, UserError
from daemon.recording.commands import add_evidence_commands
from daemon.sync.watch import add_watch_command

log = logging.getLogger("proctord")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    try:
        return args.handler(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{exc.source}: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except UserError as exc:  # anything else is a bug: its traceback is shown
        print(f"proctord: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="proctord", description="Exam-room proctoring appliance daemon.")
    parser.add_argument("--version", action="version", version=f"proctord {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the daemon (camera, analysis, store, MQTT, web page)")
    _config_option(run)
    run.add_argument("--port", type=_port, metavar="N", help="serve the web page on this port instead of web.port")
    run.set_defaults(handler=_run)

    check = commands.add_parser(
        "check-config",
        help="validate a config file and run the start-up checks of run, without the camera or the broker "
        "(exit 2 on problems; relative credential names are looked up in $CREDENTIALS_DIRECTORY, as run does)",
    )
    check.add_argument("path", type=Path, help="the TOML config file to check")
    check.add_argument(
        "--file-only", action="store_true",
        help="check the file alone (keys, values, ranges), not what it names on this machine: "
        "for a config written for another kiosk",
    )
    check.set_defaults(handler=_check_config)

    replay = commands.add_parser("replay", help="analyse a recorded video and write its session report")
    replay.add_argument("video", type=Path, help="the video file to analyse (any format FFmpeg reads)")
    _config_option(replay)
    replay.add_argument("--out", type=Path, default=Path("report-out"), help="output directory (default: %(default)s)")
    replay.add_argument("--candidate", default="", metavar="NAME", help="the candidate's name for the report")
    replay.add_argument("--candidate-id", default="", metavar="ID", help="the candidate's id for the report")
    replay.add_argument("--exam", default="", metavar="ID", help="the exam id for the report")
    replay.set_defaults(handler=_replay)

    models = commands.add_parser("models", help="manage the model files")
    model_commands = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    fetch = model_commands.add_parser("fetch", help="install the models of models/manifest.toml, verifying sha256")
    _config_option(fetch)
    fetch.add_argument(
        "--from", dest="mirror", type=Path,
        help="a local mirror directory (default: $PROCTORD_MODELS_MIRROR); needed for the COCO models",
    )
    fetch.set_defaults(handler=_models_fetch)

    hash_password = commands.add_parser(
        "hash-password",
        help="hash a shared technician password for web.password_hash (asked twice on a terminal, else read from "
        "stdin); named users (proctord user add) replace it",
    )
    hash_password.set_defaults(handler=_hash_password)

    add_user_commands(commands, _config_option)
    add_evidence_commands(commands, _config_option)
    add_watch_command(commands)
    return parser


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML config file (default: the embedded demo config)")


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1 to 65535)")
    return int(text)


def _run(args) -> int:
    from daemon.preflight import load_checked_config
    from daemon.service import Daemon
    from daemon.single_instance import DataDirLock

    _log_to_logs_directory()
    # The lock first: a second daemon is told which one runs, not that its port is busy.
    with DataDirLock(load_config(args.config).data_dir):
        daemon = Daemon(load_checked_config(args.config, for_run=True, web_port=args.port))
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: daemon.request_stop())
        daemon.run()
    return 0


# A plain file a technician can copy off the SD card, kept even where the journal lives in RAM.
LOG_FILE_BYTES, LOG_FILES_KEPT = 5_000_000, 3


def _log_to_logs_directory() -> None:
    """Under systemd (LogsDirectory=), also log to $LOGS_DIRECTORY/proctord.log, rotated."""
    from logging.handlers import RotatingFileHandler

    directory = os.environ.get("LOGS_DIRECTORY")
    if not directory:
        return
    handler = RotatingFileHandler(
        Path(directory.split(":")[0]) / "proctord.log", maxBytes=LOG_FILE_BYTES, backupCount=LOG_FILES_KEPT
    )
    handler.setFormatter(logging.getLogger().handlers[0].formatter)
    logging.getLogger().addHandler(handler)


def _check_config(args) -> int:
    from daemon.preflight import load_checked_config  # the checks `run` makes, bar the camera and broker

    config = load_config(args.path) if args.file_only else load_checked_config(args.path)
    print(f"{args.path}: valid (camera {config.camera.kind}:{config.camera.path}, data in {config.data_dir})")
    if not args.file_only:
        from daemon.inference.analyzer import face_only_if_missing

        _, objects_off = face_only_if_missing(config.inference, config.models_dir)
        if objects_off and config.inference.object_model != "off":
            print(f"{args.path}: the daemon will proctor face-only: {objects_off}")
    return 0


def _replay(args) -> int:
    from daemon.candidate import field_problem
    from daemon.replay import replay, summary
    from daemon.store.records import CandidateInfo

    if not args.video.is_file():
        raise UserError(f"{args.video}: no such video file")
    given = {"candidate_name": args.candidate, "candidate_id": args.candidate_id, "exam_id": args.exam}
    for (name, value), option in zip(given.items(), ("--candidate", "--candidate-id", "--exam"), strict=True):
        if value and (problem := field_problem(name, value)):
            raise UserError(f"{option}: {problem}")
    config = load_config(args.config)
    result = replay(args.video, config, args.out, progress=sys.stderr.isatty(),
                    candidate=CandidateInfo(**{name: value.strip() for name, value in given.items()}))
    print(summary(result))
    return 0


def _models_fetch(args) -> int:
    from daemon.modelstore import MANIFEST_PATH, MIRROR_ENV, fetch_models

    config: Config = load_config(args.config)
    mirror = args.mirror or (Path(os.environ[MIRROR_ENV]) if os.environ.get(MIRROR_ENV) else None)
    report = fetch_models(MANIFEST_PATH, config.models_dir, mirror)
    print(report)
    if report.missing_advice:  # not a failure: only what needs them is off
        print(f"proctord: {report.missing_advice}", file=sys.stderr)
    return 0


def _hash_password(args) -> int:
    from daemon.accounts import hash_password, read_new_password

    print(hash_password(read_new_password("Technician password")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
