"""Who a time-bank call acts for: the volunteer bound to the calling key, or a signed volunteer token.

A time-bank key is held either by one volunteer's app (its key-file entry names the volunteer:
`"volunteer_id": "V0012"`) or by the time bank's own platform, which signs its volunteers in. The
platform's key alone says nothing about which volunteer is acting, so it must also send
`X-Volunteer-Token`: the volunteer id, the key name it was issued to and an expiry, signed with
the service's volunteer secret (HMAC-SHA256). A token works only with the key it names and only
until it expires, so a leaked token is useless with another key and goes stale on its own; the
service never stores a volunteer password. Mint one with
`python -m serving.auth volunteer-token SECRET_FILE KEY_NAME VOLUNTEER_ID [--hours H]`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from pathlib import Path

from serving.ledger import volunteer_account

TOKEN_HEADER = "X-Volunteer-Token"
MAX_TTL_S = 7 * 24 * 3600


class VolunteerTokenError(ValueError):
    """The token is malformed, forged, expired or issued to another key."""


def new_secret(path: str | os.PathLike) -> None:
    """Write a fresh 256-bit volunteer secret (mode 0600) unless the file exists."""
    p = Path(path)
    if p.exists():
        return
    p.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32) + "\n")


def read_secret(path: str | os.PathLike) -> bytes | None:
    """The secret in `path`, or None when there is none (then only key-bound volunteers act)."""
    p = Path(path)
    if not p.is_file():
        return None
    raw = p.read_text().strip()
    if len(raw) < 32:
        raise ValueError(f"volunteer secret {p} is shorter than 32 characters")
    return raw.encode()


def _b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def _sign(secret: bytes, payload: str) -> str:
    return _b64(hmac.new(secret, payload.encode(), hashlib.sha256).digest())


def mint(secret: bytes, key_name: str, volunteer_id: str, *, ttl_s: int = 12 * 3600, now: float | None = None) -> str:
    """A token letting the key `key_name` act as `volunteer_id` for `ttl_s` seconds."""
    volunteer_account(volunteer_id)  # the ledger's id rule
    if not 0 < ttl_s <= MAX_TTL_S:
        raise ValueError(f"a token lives 1 s to {MAX_TTL_S} s, not {ttl_s}")
    exp = int((time.time() if now is None else now) + ttl_s)
    payload = _b64(json.dumps({"v": volunteer_id, "k": key_name, "exp": exp}, separators=(",", ":")).encode())
    return f"{payload}.{_sign(secret, payload)}"


def verify(secret: bytes, token: str, key_name: str, *, now: float | None = None) -> str:
    """The volunteer id a valid token names; VolunteerTokenError otherwise (never says which part)."""
    try:
        payload, sig = token.split(".")
        if not hmac.compare_digest(sig, _sign(secret, payload)):
            raise ValueError("signature")
        doc = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        vid, key, exp = doc["v"], doc["k"], doc["exp"]
        volunteer_account(vid)
    except (ValueError, KeyError, TypeError, UnicodeError) as exc:
        raise VolunteerTokenError("the volunteer token is not valid") from exc
    if key != key_name:
        raise VolunteerTokenError("the volunteer token was issued to another key")
    if not isinstance(exp, int) or exp < (time.time() if now is None else now):
        raise VolunteerTokenError("the volunteer token has expired; sign the volunteer in again")
    return vid
