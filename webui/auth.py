"""The technician login: the password hash, the signing key, login sessions and the guard on every page.

A browser logs in with the form and gets a signed session cookie that lasts `web.session_lifetime_s`
from the login. Scripts and Prometheus send HTTP Basic credentials (user "technician") with each
request instead. Both go through the same password check and the same per-address throttle.
"""

from __future__ import annotations

import logging
import math
import secrets
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
from webui.forms import LoginForm
from webui.throttle import LoginThrottle

log = logging.getLogger(__name__)

BASIC_USER = "technician"
SECRET_KEY_FILE = "web-secret-key"
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


class Authenticator:
    """Checks passwords (throttled per client) and login sessions."""

    def __init__(self, password_hash: str | None, lifetime_s: int, clock: Clock):
        self.password_hash = password_hash
        self.lifetime_s = lifetime_s
        self.throttle = LoginThrottle(clock)
        self._clock = clock

    def check_password(self, client: str, password: str) -> Refusal | None:
        """None when the password is right and `client` may try it now."""
        if self.password_hash is None:
            return Refusal(503, NO_PASSWORD_SET)
        wait = self.throttle.retry_after(client)
        if wait > 0:
            return Refusal(429, f"Too many failed logins from your address: try again in {math.ceil(wait)} s.")
        if check_password_hash(self.password_hash, password):
            self.throttle.succeeded(client)
            return None
        self.throttle.failed(client)
        log.warning("failed technician login from %s", client)
        return Refusal(401, "Wrong password.")

    def start_login(self) -> None:
        session.clear()  # a fresh session (and CSRF token) at each login
        session.permanent = True
        session["login_at"] = self._clock.time()

    def logged_in(self) -> bool:
        login_at = session.get("login_at")
        return isinstance(login_at, float) and 0 <= self._clock.time() - login_at < self.lifetime_s


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
        if session.get("login_at") is not None:
            flash("Your login has expired; please log in again.")
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


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
    log.info("technician logged in from %s", request.remote_addr)
    return redirect(target)


@bp.post("/logout")
def logout():
    session.clear()
    flash("Logged out.")
    return redirect(url_for("auth.login"))


def _safe_next(target: str) -> str:
    """Only a path on this site: a login link must not send the technician elsewhere."""
    parts = urlsplit(target)
    if target.startswith("/") and not target.startswith("//") and not parts.scheme and not parts.netloc:
        return target
    return url_for("pages.status")
