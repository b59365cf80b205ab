"""Who may use the review page: accounts with scrypt password hashes in a YAML file (or a trusted reverse
proxy's user header), server-side sessions with a CSRF token each, and a growing delay for a client that keeps
failing to sign in."""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROLES = ("reviewer", "admin")
SCRYPT = {"n": 2 ** 14, "r": 8, "p": 1}


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode("utf-8"), salt=salt, dklen=32, **SCRYPT)
    def b64(b: bytes) -> str:
        return base64.b64encode(b).decode()
    return f"scrypt${SCRYPT['n']}${SCRYPT['r']}${SCRYPT['p']}${b64(salt)}${b64(key)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(base64.b64decode(key)))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, base64.b64decode(key))


@dataclass(frozen=True)
class Account:
    user: str
    role: str
    password_hash: str = ""


def load_accounts(path: str | Path) -> dict[str, Account]:
    """`users: {name: {role: reviewer|admin, password: scrypt$...}}`; no plain-text passwords accepted."""
    doc = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    out = {}
    for user, entry in (doc.get("users") or {}).items():
        role = (entry or {}).get("role", "reviewer")
        if role not in ROLES:
            raise ValueError(f"account {user!r}: role must be one of {ROLES}")
        stored = (entry or {}).get("password", "")
        if stored and not stored.startswith("scrypt$"):
            raise ValueError(f"account {user!r}: password must be a hash made by `deid review add-user`")
        out[str(user)] = Account(str(user), role, stored)
    return out


def save_account(path: str | Path, user: str, role: str, password: str) -> None:
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")
    path = Path(path)
    doc = (yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else None) or {}
    doc.setdefault("users", {})[user] = {"role": role, "password": hash_password(password)}
    path.write_text(yaml.safe_dump(doc, sort_keys=True), encoding="utf-8")
    path.chmod(0o600)


@dataclass
class Session:
    user: str
    role: str
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    expires: float = 0.0


class Sessions:
    """In-memory sessions (a restart signs everyone out)."""

    def __init__(self, accounts: dict[str, Account], ttl_minutes: float = 480):
        self.accounts = accounts
        self.ttl = ttl_minutes * 60
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        # What an unknown user's password is checked against, so that answer takes as long as a known user's.
        self._dummy_hash = hash_password(secrets.token_urlsafe(16))

    def sign_in(self, user: str, password: str) -> str | None:
        """A new session token, or None (unknown user or wrong password, told apart by neither answer nor time)."""
        account = self.accounts.get(user)
        known = account is not None and bool(account.password_hash)
        ok = verify_password(password, account.password_hash if known else self._dummy_hash)
        return self.open(account) if ok and known else None

    def open(self, account: Account) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._sessions[token] = Session(account.user, account.role, expires=time.time() + self.ttl)
        return token

    def get(self, token: str | None) -> Session | None:
        if not token:
            return None
        with self._lock:
            session = self._sessions.get(token)
            if session is None or session.expires < time.time():
                self._sessions.pop(token, None)
                return None
            return session

    def close(self, token: str | None) -> None:
        with self._lock:
            self._sessions.pop(token or "", None)


class Throttle:
    """Sign-in attempts per client address. The first `free` go through at once; after them each attempt waits
    `base_s * 2 ** (attempts - free)` seconds (at most `max_s`) after the one before, and one made sooner is
    refused without a look at the password. A client quiet for `forget_s` starts again.

    Keyed by client, not by account: guessing from one address keeps only that address waiting, never the
    account's owner out. An attempt counts when it starts (guesses sent in parallel wait like the rest) and a
    successful one is taken back, so signing in to an account of one's own does not clear failures before it."""

    def __init__(self, free: int = 5, base_s: float = 1.0, max_s: float = 300.0, forget_s: float = 900.0):
        self.free, self.base_s, self.max_s, self.forget_s = free, base_s, max_s, forget_s
        self._clients: dict[str, tuple[int, float]] = {}   # address -> (attempts counted, time of the last)
        self._lock = threading.Lock()

    def attempt(self, client: str) -> float:
        """0.0 with the attempt counted, or how many seconds the client must still wait (nothing counted)."""
        now = time.monotonic()
        with self._lock:
            count, last = self._clients.get(client, (0, now))
            if now - last > self.forget_s:
                count = 0
            if count >= self.free:
                wait = min(self.base_s * 2 ** min(count - self.free, 32), self.max_s) - (now - last)
                if wait > 0:
                    return wait
            self._clients[client] = (count + 1, now)
            if len(self._clients) > 4096:    # many addresses (a scan): drop those that have gone quiet
                self._clients = {k: v for k, v in self._clients.items() if now - v[1] <= self.forget_s}
            return 0.0

    def succeeded(self, client: str) -> None:
        with self._lock:
            count, last = self._clients.pop(client, (0, 0.0))
            if count > 1:
                self._clients[client] = (count - 1, last)
