"""Who may use the review page: accounts with scrypt password hashes in a YAML file (or a trusted reverse
proxy's user header), server-side sessions with a CSRF token each, and a lockout after failed sign-ins."""
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
    b64 = lambda b: base64.b64encode(b).decode()
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
    """In-memory sessions (a restart signs everyone out) and per-user failure counting."""

    def __init__(self, accounts: dict[str, Account], ttl_minutes: float = 480, max_failures: int = 5,
                 lockout_minutes: float = 5):
        self.accounts = accounts
        self.ttl = ttl_minutes * 60
        self.max_failures, self.lockout = max_failures, lockout_minutes * 60
        self._sessions: dict[str, Session] = {}
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def locked(self, user: str) -> bool:
        now = time.time()
        recent = [t for t in self._failures.get(user, []) if now - t < self.lockout]
        self._failures[user] = recent
        return len(recent) >= self.max_failures

    def sign_in(self, user: str, password: str) -> str | None:
        """A new session token, or None (unknown user, wrong password, or locked out)."""
        with self._lock:
            if self.locked(user):
                return None
        account = self.accounts.get(user)
        ok = account is not None and account.password_hash and verify_password(password, account.password_hash)
        with self._lock:
            if not ok:
                self._failures.setdefault(user, []).append(time.time())
                return None
            self._failures.pop(user, None)
        return self.open(account)

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
