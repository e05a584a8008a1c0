"""API keys with roles, checked in constant time; only their SHA-256 hashes are stored.

Keys file (JSON, written by `create_keys_file`, mode 0600):

    {"keys": [{"name": "demo-timebank", "role": "timebank", "sha256": "<hex>"}, ...]}

`authorize(keyring, presented_key, allowed_roles)` returns the `Principal` or raises
`AuthError` with `.status` 401 (no key, unknown key) or 403 (known key, wrong role). `admin`
may call everything. Keys are never logged: a `Principal` holds the key's name and role only.

Create demo keys once (they are printed once and never stored in clear):

    python -m serving.auth create-keys demo-data/api_keys.json
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from typing import Any

from serving.ledger import volunteer_account
from serving.volunteers import mint, new_secret, read_secret

ROLES = ("timebank", "care_manager", "admin", "device")
DEVICE = "device"  # a home gateway: its key is bound to one resident and may only send their events
VOLUNTEER_SECRET = "volunteer.secret"
"""File next to the keys file holding the secret volunteer tokens are signed with."""
ADMIN = "admin"
KEY_PREFIX = "tc_"
_HEX = set("0123456789abcdef")


class AuthError(Exception):
    """Authentication (401) or authorisation (403) failed; the message never contains the key."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Principal:
    """Who called: the name and role of the API key used (never the key itself); a device key
    also names the resident whose home it serves."""

    name: str
    role: str
    volunteer_id: str | None = None  # a time-bank key held by one volunteer acts only as them
    resident_id: str | None = None  # a device key serves this resident's home only


@dataclass(frozen=True)
class _Entry:
    name: str
    role: str
    digest: bytes
    volunteer_id: str | None = None
    resident_id: str | None = None


def hash_key(key: str) -> str:
    """Hex SHA-256 of an API key (what the keys file stores)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A fresh random API key (256 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


class KeyRing:
    """The known keys (hashes only). Build with `KeyRing.from_file(path)` or from entries."""

    def __init__(self, entries: Iterable[Mapping[str, str]]):
        parsed: list[_Entry] = []
        names: set[str] = set()
        for i, e in enumerate(entries):
            name, role, digest = e.get("name"), e.get("role"), e.get("sha256")
            if not isinstance(name, str) or not name:
                raise ValueError(f"key entry {i}: 'name' must be non-empty text")
            if role not in ROLES:
                raise ValueError(f"key entry {name!r}: role {role!r} is not one of {', '.join(ROLES)}")
            if not isinstance(digest, str) or len(digest) != 64 or not set(digest.lower()) <= _HEX:
                raise ValueError(f"key entry {name!r}: 'sha256' must be 64 hex characters")
            if name in names:
                raise ValueError(f"key entry {name!r} appears twice")
            volunteer = e.get("volunteer_id")
            if volunteer is not None:
                if role != "timebank":
                    raise ValueError(f"key entry {name!r}: only a timebank key can be bound to a volunteer")
                try:
                    volunteer_account(volunteer)
                except ValueError as exc:
                    raise ValueError(f"key entry {name!r}: {exc}") from None
            resident = e.get("resident_id")
            if (role == DEVICE) != (resident is not None) or (resident is not None and (
                    not isinstance(resident, str) or not resident)):
                raise ValueError(f"key entry {name!r}: a 'resident_id' is needed for a {DEVICE} key, and only there")
            names.add(name)
            parsed.append(_Entry(name, role, bytes.fromhex(digest), volunteer, resident))
        self._entries = tuple(parsed)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> KeyRing:
        p = Path(path)
        try:
            doc = json.loads(p.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(
                f"API keys file {p} does not exist; create one with `python -m serving.auth create-keys {p}`"
            ) from None
        except json.JSONDecodeError as e:
            raise ValueError(f"API keys file {p} is not valid JSON: {e}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
            raise ValueError(f"API keys file {p} must be an object with a 'keys' list")
        return cls(doc["keys"])

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"KeyRing({', '.join(f'{e.name}:{e.role}' for e in self._entries)})"

    def roles(self) -> dict[str, str]:
        """Key name -> role."""
        return {e.name: e.role for e in self._entries}

    def authenticate(self, presented: str | None) -> Principal | None:
        """The principal of a presented key, or None. Compares against every stored hash in
        constant time, so timing reveals neither which key matched nor how much of it."""
        if not presented or not isinstance(presented, str):
            return None
        digest = hashlib.sha256(presented.encode("utf-8", "surrogatepass")).digest()
        found: _Entry | None = None
        for e in self._entries:
            if hmac.compare_digest(digest, e.digest) and found is None:
                found = e
        if found is None:
            return None
        return Principal(found.name, found.role, volunteer_id=found.volunteer_id, resident_id=found.resident_id)


def authorize(keyring: KeyRing, presented: str | None, allowed_roles: Sequence[str]) -> Principal:
    """The caller's principal if its key is known and its role allowed (admin always is).

    Raises AuthError(401) without a key or with an unknown one, AuthError(403) for a wrong role.
    """
    bad = [r for r in allowed_roles if r not in ROLES]
    if bad:
        raise ValueError(f"unknown roles {bad}; roles are {', '.join(ROLES)}")
    if not presented:
        raise AuthError(401, "an API key is required (header 'Authorization: Bearer <key>' or 'X-API-Key')")
    p = keyring.authenticate(presented)
    if p is None:
        raise AuthError(401, "the API key is not valid")
    return allow_principal(p, allowed_roles)


SESSION_COOKIE = "twincare_session"


@dataclass(frozen=True)
class Session:
    principal: Principal
    expires_at: float  # seconds since the epoch


class SessionBook:
    """Sign-in sessions of the web page: a random token (kept only as its hash) -> principal.

    A session ends at `expires_at` (no sliding renewal) or at sign-out. Held in memory by the
    serving process, so a restart signs everyone out.
    """

    def __init__(self, ttl_seconds: int = 1800, clock: Callable[[], float] = time.time):
        self.ttl = int(ttl_seconds)
        self._clock = clock
        self._sessions: dict[bytes, Session] = {}
        self._lock = threading.Lock()

    def open(self, principal: Principal) -> tuple[str, Session]:
        """A new session for a principal; returns (token for the cookie, session)."""
        token = secrets.token_urlsafe(32)
        session = Session(principal, self._clock() + self.ttl)
        with self._lock:
            now = self._clock()
            self._sessions = {k: v for k, v in self._sessions.items() if v.expires_at > now}
            self._sessions[_token_digest(token)] = session
        return token, session

    def find(self, token: str | None) -> Session | None:
        """The live session of a cookie's token, or None (unknown, ended or expired)."""
        if not token:
            return None
        digest = _token_digest(token)
        with self._lock:
            session = self._sessions.get(digest)
            if session is not None and session.expires_at <= self._clock():
                del self._sessions[digest]
                session = None
        return session

    def close(self, token: str | None) -> bool:
        """End a session (sign-out); True when one was open."""
        if not token:
            return False
        with self._lock:
            return self._sessions.pop(_token_digest(token), None) is not None


def _token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def allow_principal(principal: Principal, allowed_roles: Sequence[str]) -> Principal:
    """The principal if its role may call a route with these roles (admin always may); else 403."""
    if principal.role != ADMIN and principal.role not in allowed_roles:
        raise AuthError(
            403, f"key {principal.name!r} has role {principal.role!r}; this needs one of: {', '.join(allowed_roles)}"
        )
    return principal


def session_token_from_headers(headers: Mapping[str, str]) -> str | None:
    """The sign-in session token from the request's Cookie header, if any."""
    raw = {k.lower(): v for k, v in headers.items()}.get("cookie")
    if not raw:
        return None
    jar = SimpleCookie()
    try:
        jar.load(raw)
    except CookieError:
        return None
    morsel = jar.get(SESSION_COOKIE)
    return morsel.value if morsel is not None and morsel.value else None


def key_from_headers(headers: Mapping[str, str]) -> str | None:
    """The API key from `Authorization: Bearer <key>` or `X-API-Key: <key>` (case-insensitive)."""
    lower = {k.lower(): v for k, v in headers.items()}
    auth = lower.get("authorization")
    if auth:
        scheme, _, value = auth.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = lower.get("x-api-key")
    return key.strip() if key and key.strip() else None


DEMO_KEYS = (("demo-timebank", "timebank"), ("demo-care-manager", "care_manager"), ("demo-admin", "admin"))
DEMO_VOLUNTEERS = {"demo-volunteer": "V0001"}
"""Demo keys bound to one volunteer each (role timebank): such a key acts only as that volunteer."""


def create_keys_file(
    path: str | os.PathLike,
    keys: Sequence[tuple[str, str] | tuple[str, str, str]] = DEMO_KEYS,
    *,
    overwrite: bool = False,
    volunteers: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Write a keys file with fresh random keys (hashes only, mode 0600). A key is (name, role),
    or (name, "device", resident_id) for a home gateway.

    Returns name -> clear key; this is the only time the clear keys exist, so show them once.
    """
    p = Path(path)
    if p.exists() and not overwrite:
        raise FileExistsError(f"{p} already exists; pass overwrite=True (or --overwrite) to replace it")
    volunteers = DEMO_VOLUNTEERS if volunteers is None and keys is DEMO_KEYS else (volunteers or {})
    named = {k[0] for k in keys}
    keys = [*keys, *((n, "timebank") for n in volunteers if n not in named)]
    clear = {k[0]: new_key() for k in keys}
    doc = {"keys": [{"name": k[0], "role": k[1], "sha256": hash_key(clear[k[0]]),
                     **({"resident_id": k[2]} if len(k) > 2 else {}),
                     **({"volunteer_id": volunteers[k[0]]} if k[0] in volunteers else {})} for k in keys]}
    KeyRing(doc["keys"])  # validate names and roles before writing
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(doc, fh, indent=2)
        fh.write("\n")
    os.replace(tmp, p)
    new_secret(p.with_name(VOLUNTEER_SECRET))
    return clear


def audit(
    store: Any,
    principal: Principal | None,
    action: str,
    *,
    resident_id: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> None:
    """Record who did what to whose data (e.g. `audit(store, p, "resident.read", resident_id=r)`).

    `store` is a `serving.store.TimeBankStore`; writes there audit themselves in their own
    transaction, so call this for reads of resident data and for actions outside the store.
    """
    store.record_audit(principal, action, resident_id=resident_id, detail=detail)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m serving.auth create-keys PATH [--overwrite]`: prints the new keys once.
    `python -m serving.auth volunteer-token SECRET_FILE KEY_NAME VOLUNTEER_ID [--hours H]`."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["volunteer-token"] and len(args) >= 4:
        hours = float(args[args.index("--hours") + 1]) if "--hours" in args else 12.0
        secret = read_secret(args[1])
        if secret is None:
            print(f"no volunteer secret at {args[1]}", file=sys.stderr)
            return 1
        print(mint(secret, args[2], args[3], ttl_s=int(hours * 3600)))
        return 0
    if len(args) < 2 or args[0] != "create-keys":
        print("usage: python -m serving.auth create-keys PATH [--overwrite]", file=sys.stderr)
        return 2
    path, overwrite = args[1], "--overwrite" in args[2:]
    try:
        clear = create_keys_file(path, overwrite=overwrite)
    except FileExistsError as e:
        print(str(e), file=sys.stderr)
        return 1
    roles = {**dict(DEMO_KEYS), **{n: "timebank" for n in DEMO_VOLUNTEERS}}
    print(f"API keys written to {path} (hashes only). Save these now; they are not shown again:")
    for name, key in clear.items():
        print(f"  {roles[name]:<13} {name:<18} {key}")
    return 0


if __name__ == "__main__":  # pragma: no cover - command-line entry
    raise SystemExit(main())
