"""The technician login: the password hash, the signing key, login sessions and the guard on every page.

A browser logs in with the form and gets a signed session cookie that lasts `web.session_lifetime_s`
from the login. The cookie names a login the server keeps (in data_dir/web-logins, so a restart keeps
it): logging out ends it on the server, and a changed password ends every login made with the old one.
Scripts and Prometheus send HTTP Basic credentials (user "technician") with each request instead. Both
go through the same password check and the same per-address throttle.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from flask import Blueprint, Flask, current_app, flash, redirect, render_template, request, session, url_for
from werkzeug.security import check_password_hash

from daemon.clock import Clock
from daemon.config import WebConfig
from daemon.credentials import credential_path, read_credential
from daemon.errors import UserError
from daemon.files import write_durably
from daemon.untrusted import UNSAFE_IN_LINE, printable
from webui.forms import LoginForm
from webui.throttle import LoginThrottle

log = logging.getLogger(__name__)

BASIC_USER = "technician"
SECRET_KEY_FILE = "web-secret-key"
LOGINS_FILE = "web-logins"
# Logins kept at once (the oldest end first): a technician logs in from a few browsers at most.
MAX_LOGINS = 32
# Reachable without a login: the probe, the login page and the static files (style sheet, script).
PUBLIC_ENDPOINTS = {"api.healthz", "auth.login", "static"}

NO_PASSWORD_SET = (
    "No technician password is set. Create its hash with `proctord hash-password` and put it in the "
    "config as web.password_hash (or in the file named by web.password_file), then restart proctord."
)


def load_password_hash(web: WebConfig) -> str | None:
    """The configured password hash, None when none is set. Errors name the key, never the value
    (a password typed where its hash belongs must not end up in a log)."""
    if web.password_hash and web.password_file:
        raise UserError("web.password_hash and web.password_file are both set: keep one")
    if web.password_file:
        text = read_credential("web.password_file", web.password_file).strip()
        key = f"web.password_file ({credential_path('web.password_file', web.password_file)})"
    else:
        text, key = web.password_hash.strip(), "web.password_hash"
    if not text:
        return None
    if not _looks_like_hash(text):
        raise UserError(f"{key}: not a password hash (value not shown); create one with `proctord hash-password`")
    return text


def _looks_like_hash(text: str) -> bool:
    method, _, rest = text.partition("$")
    return method.split(":")[0] in {"scrypt", "pbkdf2"} and rest.count("$") == 1


def load_secret_key(data_dir: Path) -> bytes:
    """The key that signs session cookies: made once and kept (0600) in data_dir, so a restart does not
    log the technician out."""
    path = data_dir / SECRET_KEY_FILE
    try:
        key = bytes.fromhex(path.read_text().strip())
        if len(key) >= 32:
            return key
        log.warning("%s is too short; making a new one (open logins end)", path)
    except FileNotFoundError:
        pass
    except ValueError:
        log.warning("%s is not a hex key; making a new one (open logins end)", path)
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    write_durably(path, key.hex().encode(), mode=0o600)  # never a half-written key after a power cut
    return key


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int  # 401 wrong password, 429 too many failures, 503 no password set
    message: str


class LoginRegistry:
    """The open logins, by the sha256 of their id (the file never holds a usable cookie), each with
    when it was made and a fingerprint of the password hash it was made with."""

    def __init__(self, path: Path, password_hash: str | None, lifetime_s: int, clock: Clock):
        self._path = path
        self._fingerprint = hashlib.sha256((password_hash or "").encode()).hexdigest()[:16]
        self._lifetime_s = lifetime_s
        self._clock = clock
        self._lock = threading.Lock()
        self._logins: dict[str, dict] = self._load()

    def open(self) -> str:
        """A new login; returns its id (for the cookie)."""
        login_id = secrets.token_urlsafe(32)
        with self._lock:
            self._logins[_digest(login_id)] = {"at": self._clock.time(), "password": self._fingerprint}
            self._save()
        return login_id

    def is_open(self, login_id: object) -> bool:
        if not isinstance(login_id, str):
            return False
        with self._lock:
            login = self._logins.get(_digest(login_id))
        return login is not None and self._current(login)

    def close(self, login_id: object) -> None:
        if not isinstance(login_id, str):
            return
        with self._lock:
            if self._logins.pop(_digest(login_id), None) is not None:
                self._save()

    def _current(self, login: dict) -> bool:
        return login["password"] == self._fingerprint and 0 <= self._clock.time() - login["at"] < self._lifetime_s

    def _load(self) -> dict[str, dict]:
        try:
            logins = json.loads(self._path.read_text())
            return {key: login for key, login in logins.items() if self._current(login)}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            log.warning("%s is unreadable; open logins end", self._path)
            return {}

    def _save(self) -> None:
        current = sorted(((key, login) for key, login in self._logins.items() if self._current(login)),
                         key=lambda item: item[1]["at"])[-MAX_LOGINS:]
        self._logins = dict(current)
        try:
            write_durably(self._path, json.dumps(self._logins).encode(), mode=0o600)
        except OSError as exc:  # a full disk: the change holds until a restart
            log.error("cannot save the open logins to %s: %s", self._path, exc)


def _digest(login_id: str) -> str:
    return hashlib.sha256(login_id.encode()).hexdigest()


class Authenticator:
    """Checks passwords (throttled per client) and login sessions."""

    def __init__(self, password_hash: str | None, lifetime_s: int, clock: Clock, logins_path: Path):
        self.password_hash = password_hash
        self.lifetime_s = lifetime_s
        self.throttle = LoginThrottle(clock)
        self.logins = LoginRegistry(logins_path, password_hash, lifetime_s, clock)

    def check_password(self, client: str, password: str) -> Refusal | None:
        """None when the password is right and `client` may try it now."""
        if self.password_hash is None:
            return Refusal(503, NO_PASSWORD_SET)
        wait = self.throttle.claim(client)
        if wait > 0:
            return Refusal(429, f"Too many failed logins from your address: try again in {math.ceil(wait)} s.")
        if check_password_hash(self.password_hash, password):
            self.throttle.succeeded(client)
            return None
        log.warning("failed technician login from %s", printable(client))  # X-Forwarded-For may carry anything
        return Refusal(401, "Wrong password.")

    def start_login(self) -> None:
        self.logins.close(session.get("login"))
        session.clear()  # a fresh session (and CSRF token) at each login
        session.permanent = True
        session["login"] = self.logins.open()

    def end_login(self) -> None:
        self.logins.close(session.get("login"))
        session.clear()

    def logged_in(self) -> bool:
        return self.logins.is_open(session.get("login"))


def install(app: Flask, auth: Authenticator) -> None:
    app.extensions["proctord_auth"] = auth
    app.register_blueprint(bp)

    @app.context_processor
    def login_state():
        return {"logged_in": auth.logged_in()}

    @app.before_request
    def require_technician():
        if request.endpoint in PUBLIC_ENDPOINTS or auth.logged_in():
            return None
        if request.authorization is not None:
            return _basic_auth(auth)
        if request.path.startswith("/api/") or request.path == "/metrics":
            return {"error": "login required: log in, or send HTTP Basic credentials"}, 401
        if session.get("login") is not None:
            flash("Your login has expired; please log in again.")
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def current_user() -> str:
    """Who makes this request, as the review records name them. One shared technician login today, so
    its name; accounts: the logged-in user's name once logins are per user."""
    return BASIC_USER


def _basic_auth(auth: Authenticator):
    credentials = request.authorization
    if credentials.type != "basic" or credentials.username != BASIC_USER:
        return {"error": f"HTTP Basic credentials for the user {BASIC_USER!r} expected"}, 401
    refusal = auth.check_password(request.remote_addr or "?", credentials.password or "")
    if refusal is not None:
        return {"error": refusal.message}, refusal.status
    return None  # a script's request: served without opening a login session


bp = Blueprint("auth", __name__)


@bp.route("/login", methods=["GET", "POST"])
def login():
    auth: Authenticator = current_app.extensions["proctord_auth"]
    form = LoginForm()
    target = _safe_next(request.args.get("next", ""))
    if auth.password_hash is None:
        return render_template("login.html", form=form, error=NO_PASSWORD_SET), 503
    if not form.validate_on_submit():
        return render_template("login.html", form=form, error=None), 400 if form.errors else 200
    refusal = auth.check_password(request.remote_addr or "?", form.password.data)
    if refusal is not None:
        return render_template("login.html", form=form, error=refusal.message), refusal.status
    auth.start_login()
    log.info("technician logged in from %s", printable(request.remote_addr or "?"))
    return redirect(target)


@bp.post("/logout")
def logout():
    current_app.extensions["proctord_auth"].end_login()
    flash("Logged out.")
    return redirect(url_for("auth.login"))


def _safe_next(target: str) -> str:
    """Only a plain path on this site: a login link must not send the technician elsewhere, nor put a
    control character (CR/LF) in the Location header."""
    parts = urlsplit(target)
    if (target.startswith("/") and not target.startswith("//") and "\\" not in target
            and not parts.scheme and not parts.netloc and not UNSAFE_IN_LINE.search(target)):
        return target
    return url_for("pages.status")
