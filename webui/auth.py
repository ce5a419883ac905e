"""Who may use the page: named users and their roles, the login sessions, and the one guard on every route.

Every route declares the roles it needs where it is defined, with `@requires(Role.TECHNICIAN, ...)` (or
`@public`); the guard refuses a visitor without a login (the login page, or 401 for JSON) and a user
whose role is not listed (403, saying which role it needs). A route that declares nothing is refused to
everyone, and tests/test_webui_roles.py walks every route so such a route fails the tests.

Users are the database's (daemon/accounts.py, `proctord user ...`). A kiosk configured before named users
existed keeps its shared password (web.password_hash) as one account, "technician", with every role (all
it could do before), until the first named user is added; from then on the shared password opens nothing.

A browser logs in with the form and gets a signed session cookie that lasts `web.session_lifetime_s`
from the login. The cookie names a login the server keeps (in data_dir/web-logins, so a restart keeps
it), with a fingerprint of the password hash it was made with: logging out ends it, and removing the
user or giving them a new password ends all their logins at their next request. Scripts and Prometheus
send HTTP Basic credentials of a user with each request instead. Both go through the same password
check and the same throttle, per user (per address for names that are no user).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
import math
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from daemon.accounts import SHARED_ACCOUNT, Account, Role, hash_password, password_matches
from daemon.clock import Clock
from daemon.config import WebConfig
from daemon.credentials import credential_path, read_credential
from daemon.errors import UserError
from daemon.files import write_durably
from daemon.store.db import StoreReader
from daemon.untrusted import UNSAFE_IN_LINE, printable
from webui.forms import LoginForm
from webui.throttle import LoginThrottle

log = logging.getLogger(__name__)

SECRET_KEY_FILE = "web-secret-key"
LOGINS_FILE = "web-logins"
# Logins kept at once (the oldest end first): a few browsers per user, a handful of users per kiosk.
MAX_LOGINS = 64
# Flask's own static files (style sheet, script): no view of ours to declare a role on.
STATIC_ENDPOINTS = {"static"}
# Passwords proven right recently (a script's Basic credentials on every request), so each request does
# not pay for scrypt again; keyed by an HMAC under a key that lives only in this process.
PROVEN_KEPT = 64

NO_ACCOUNT = (
    "Nobody can log in yet. On the kiosk, add a user: `sudo proctord user add NAME --role technician` "
    "(README, \"Users and roles\")."
)


@functools.cache
def _decoy_hash() -> str:
    """Checked against when the name is no user, so a wrong name takes as long as a wrong password."""
    return hash_password(secrets.token_urlsafe(16))


# --- roles, declared by each route --------------------------------------------------------------------

PUBLIC: frozenset[Role] = frozenset()  # the declaration of a route anyone may open, without a login


def requires(*roles: Role) -> Callable:
    """Declares the roles that may use a route: `@requires(Role.REVIEWER)` under its `@bp.route(...)`."""
    if not roles:
        raise TypeError("requires() needs at least one role; a route for anyone is @public")

    def declare(view: Callable) -> Callable:
        view.proctord_roles = frozenset(roles)
        return view
    return declare


def public(view: Callable) -> Callable:
    """Declares a route anyone may open without a login (the probe, the login page)."""
    view.proctord_roles = PUBLIC
    return view


def declared_roles(app: Flask, endpoint: str) -> frozenset[Role] | None:
    """The roles the endpoint's route declares (PUBLIC for anyone), None when it declares nothing."""
    if endpoint in STATIC_ENDPOINTS:
        return PUBLIC
    return getattr(app.view_functions.get(endpoint), "proctord_roles", None)


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
    status: int  # 401 wrong name or password, 429 too many failures, 503 nobody can log in
    message: str


def _fingerprint(password_hash: str) -> str:
    """Changes with every new password (each hash has its own salt): a login made before it no longer matches."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


class LoginRegistry:
    """The open logins, by the sha256 of their id (the file never holds a usable cookie), each with its
    user, when it was made and the fingerprint of the password hash it was made with."""

    def __init__(self, path: Path, lifetime_s: int, clock: Clock):
        self._path = path
        self._lifetime_s = lifetime_s
        self._clock = clock
        self._lock = threading.Lock()
        self._logins: dict[str, dict] = self._load()

    def open(self, account: Account) -> str:
        """A new login; returns its id (for the cookie)."""
        login_id = secrets.token_urlsafe(32)
        login = {"at": self._clock.time(), "user": account.name, "password": _fingerprint(account.password_hash)}
        with self._lock:
            self._logins[_digest(login_id)] = login
            self._save()
        return login_id

    def user_of(self, login_id: object, account: Callable[[str], Account | None]) -> Account | None:
        """The login's user, while the login lasts and the user exists with the same password."""
        if not isinstance(login_id, str):
            return None
        with self._lock:
            login = self._logins.get(_digest(login_id))
        if login is None or not self._current(login):
            return None
        found = account(login["user"])
        return found if found is not None and _fingerprint(found.password_hash) == login["password"] else None

    def close(self, login_id: object) -> None:
        if not isinstance(login_id, str):
            return
        with self._lock:
            if self._logins.pop(_digest(login_id), None) is not None:
                self._save()

    def _current(self, login: dict) -> bool:
        return 0 <= self._clock.time() - login["at"] < self._lifetime_s

    def _load(self) -> dict[str, dict]:
        try:
            logins = json.loads(self._path.read_text())
            # A login from before named users was the shared password's: it stays the shared account's.
            return {key: {"user": SHARED_ACCOUNT} | login for key, login in logins.items() if self._current(login)}
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
    """Finds accounts, checks passwords (throttled per user) and login sessions."""

    def __init__(self, reader: StoreReader, shared_password_hash: str | None, lifetime_s: int, clock: Clock,
                 logins_path: Path):
        self._reader = reader
        self._shared_password_hash = shared_password_hash
        self.lifetime_s = lifetime_s
        self.throttle = LoginThrottle(clock)
        self.logins = LoginRegistry(logins_path, lifetime_s, clock)
        self._proof_key = secrets.token_bytes(32)
        self._proven: OrderedDict[bytes, None] = OrderedDict()
        self._proven_lock = threading.Lock()

    def account(self, name: str) -> Account | None:
        """The user `name` as the page knows it now (each call reads the database)."""
        user = self._reader.user(name)
        if user is not None:
            return Account(user.name, frozenset({Role(user.role)}), user.password_hash)
        if name == SHARED_ACCOUNT and self._shared_password_hash and not self._reader.has_users():
            return Account(SHARED_ACCOUNT, frozenset(Role), self._shared_password_hash)
        return None

    def shared_password_in_use(self) -> bool:
        return bool(self._shared_password_hash) and not self._reader.has_users()

    def anyone_can_log_in(self) -> bool:
        return bool(self._shared_password_hash) or self._reader.has_users()

    def accounts_text(self) -> str:
        """Who can log in, for the status page."""
        users = self._reader.users()
        if not users:
            return ("the shared technician password (add named users: proctord user add)"
                    if self._shared_password_hash else "nobody: proctord user add NAME --role technician")
        counts = ", ".join(f"{sum(u.role == role for u in users)} {role}" for role in Role)
        ignored = "; web.password_hash is ignored" if self._shared_password_hash else ""
        return f"{len(users)} named users ({counts}){ignored}"

    def check_password(self, client: str, name: str, password: str) -> Account | Refusal:
        """The account when `name` and `password` match and the throttle lets this try through."""
        if not self.anyone_can_log_in():
            return Refusal(503, NO_ACCOUNT)
        name = name.strip().lower()  # user names are lower-case (daemon/accounts.py)
        account = self.account(name)
        if account is not None and self._proven_before(account, password):
            return account
        turn = f"user {name}" if account is not None else f"address {client}"
        wait = self.throttle.claim(turn)
        if wait > 0:
            return Refusal(429, f"Too many failed logins: try again in {math.ceil(wait)} s.")
        if password_matches(account.password_hash if account else _decoy_hash(), password) and account is not None:
            self.throttle.succeeded(turn)
            self._remember_proven(account, password)
            return account
        # The name and the address may carry anything (X-Forwarded-For): printable() keeps the log one line each.
        log.warning("failed login as %s from %s", printable(name[:64]), printable(client))
        return Refusal(401, "Wrong user name or password.")

    def _proof(self, account: Account, password: str) -> bytes:
        text = f"{account.name}\0{account.password_hash}\0{password}"
        return hmac.new(self._proof_key, text.encode(), hashlib.sha256).digest()

    def _proven_before(self, account: Account, password: str) -> bool:
        proof = self._proof(account, password)
        with self._proven_lock:
            return proof in self._proven

    def _remember_proven(self, account: Account, password: str) -> None:
        with self._proven_lock:
            self._proven[self._proof(account, password)] = None
            while len(self._proven) > PROVEN_KEPT:
                self._proven.popitem(last=False)

    def start_login(self, account: Account) -> None:
        self.logins.close(session.get("login"))
        session.clear()  # a fresh session (and CSRF token) at each login
        session.permanent = True
        session["login"] = self.logins.open(account)

    def end_login(self) -> None:
        self.logins.close(session.get("login"))
        session.clear()

    def current_account(self) -> Account | None:
        """Who this request comes from: its login's user, or the user of its Basic credentials. Once per request."""
        if "account" not in g:
            g.account = self.logins.user_of(session.get("login"), self.account)
        return g.account


def current_account() -> Account | None:
    """Who the request being served comes from (None: nobody logged in): for a route that records who did
    something, e.g. a review action."""
    return current_app.extensions["proctord_auth"].current_account()


def install(app: Flask, auth: Authenticator) -> None:
    app.extensions["proctord_auth"] = auth
    app.register_blueprint(bp)

    @app.context_processor
    def login_state():
        account = auth.current_account()

        def may(endpoint: str) -> bool:
            """Whether the user may open `endpoint`: the templates show only the links and buttons that work."""
            roles = declared_roles(app, endpoint)
            return account is not None and roles is not None and (roles == PUBLIC or bool(account.roles & roles))
        return {"account": account, "logged_in": account is not None, "may": may}

    @app.before_request
    def guard():
        if request.endpoint is None:  # no such route: Flask answers 404 or 405
            return None
        roles = declared_roles(app, request.endpoint)
        if roles == PUBLIC:
            return None
        account = auth.current_account()
        if account is None:
            refused = _basic_auth(auth) if request.authorization is not None else _login_required()
            if refused is not None:
                return refused
            account = auth.current_account()
        if roles is None:
            log.error("route %s declares no role (webui/auth.py: requires): refused to everyone", request.endpoint)
            return _forbidden("This page declares no role, so nobody may open it (a bug: see the daemon log).")
        if not account.roles & roles:
            needed = " or ".join(sorted(roles))
            return _forbidden(f"This needs the {needed} role; you are logged in as {account.name} ({account.role_text}).")
        return None


def _login_required():
    if request.path.startswith("/api/") or request.path == "/metrics":
        return {"error": "login required: log in, or send HTTP Basic credentials"}, 401
    if session.get("login") is not None:
        flash("Your login has ended (expired, logged out elsewhere, or your account changed); please log in again.")
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def _forbidden(reason: str):
    if request.path.startswith("/api/") or request.path == "/metrics":
        return {"error": reason}, 403
    return render_template("error.html", message=reason), 403


def _basic_auth(auth: Authenticator):
    """None when the request's HTTP Basic credentials are a user's (the user is then the request's)."""
    credentials = request.authorization
    if credentials.type != "basic":
        return {"error": "HTTP Basic credentials of a user expected"}, 401
    found = auth.check_password(request.remote_addr or "?", credentials.username or "", credentials.password or "")
    if isinstance(found, Refusal):
        return {"error": found.message}, found.status
    g.account = found  # a script's request: served without opening a login session
    return None


bp = Blueprint("auth", __name__)


@bp.route("/login", methods=["GET", "POST"])
@public
def login():
    auth: Authenticator = current_app.extensions["proctord_auth"]
    form = LoginForm()
    target = _safe_next(request.args.get("next", ""))
    shared = auth.shared_password_in_use()
    if request.method == "GET" and shared and not form.user.data:
        form.user.data = SHARED_ACCOUNT
    if not auth.anyone_can_log_in():
        return render_template("login.html", form=form, error=NO_ACCOUNT, shared=shared), 503
    if not form.validate_on_submit():
        return render_template("login.html", form=form, error=None, shared=shared), 400 if form.errors else 200
    found = auth.check_password(request.remote_addr or "?", form.user.data, form.password.data)
    if isinstance(found, Refusal):
        return render_template("login.html", form=form, error=found.message, shared=shared), found.status
    auth.start_login(found)
    log.info("%s (%s) logged in from %s", found.name, found.role_text, printable(request.remote_addr or "?"))
    return redirect(target)


@bp.post("/logout")
@requires(*Role)
def logout():
    current_app.extensions["proctord_auth"].end_login()
    flash("Logged out.")
    return redirect(url_for("auth.login"))


def _safe_next(target: str) -> str:
    """Only a plain path on this site: a login link must not send the user elsewhere, nor put a
    control character (CR/LF) in the Location header."""
    parts = urlsplit(target)
    if (target.startswith("/") and not target.startswith("//") and "\\" not in target
            and not parts.scheme and not parts.netloc and not UNSAFE_IN_LINE.search(target)):
        return target
    return url_for("pages.status")
