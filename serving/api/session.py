"""Sign-in for the web page: an API key is exchanged once for a short-lived session cookie.

The cookie is HttpOnly (the page's scripts cannot read it) and SameSite=Strict (no other site's
page can send it); the page keeps no key. Sign-out ends the session on the server as well.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from serving.api.common import ERRORS, SECURED, error, principal_of, runtime_of
from serving.auth import SESSION_COOKIE, session_token_from_headers
from serving.edge import CARE, allow, public

router = APIRouter(tags=["sign-in"], responses=ERRORS)


class SessionInfo(BaseModel):
    name: str = Field(description="Name of the API key signed in with (never the key).")
    role: str
    expires_at: datetime | None = Field(description="When the session ends (UTC); null for a key.")


def _cookie_args(request: Request) -> dict:
    return {"httponly": True, "samesite": "strict", "secure": request.url.scheme == "https", "path": "/"}


@router.post("/session", response_model=SessionInfo, summary="Sign in: exchange the API key for a session cookie",
             dependencies=SECURED)
@allow(*CARE)
def sign_in(request: Request):
    """Send the key once (`X-API-Key`); the answer sets an HttpOnly, SameSite=Strict cookie that
    signs the page's later requests until it expires or `POST /session/end`."""
    if getattr(request.state, "signed_in_via", "key") != "key":
        return error(400, "sign in with an API key, not with a session")
    rt = runtime_of(request)
    principal = principal_of(request)
    token, session = rt.sessions.open(principal)
    expires = datetime.fromtimestamp(session.expires_at, UTC)
    body = SessionInfo(name=principal.name, role=principal.role, expires_at=expires)
    response = JSONResponse(body.model_dump(mode="json"))
    response.set_cookie(SESSION_COOKIE, token, max_age=rt.sessions.ttl, **_cookie_args(request))
    rt.audit.record(principal, "session.open", None)
    return response


@router.get("/session", response_model=SessionInfo, summary="Who is signed in", dependencies=SECURED)
@allow(*CARE)
def whoami(request: Request):
    principal = principal_of(request)
    session = None
    if getattr(request.state, "signed_in_via", "key") == "session":
        session = runtime_of(request).sessions.find(session_token_from_headers(request.headers))
    expires = None if session is None else datetime.fromtimestamp(session.expires_at, UTC)
    return SessionInfo(name=principal.name, role=principal.role, expires_at=expires)


@router.post("/session/end", summary="Sign out: end the session and clear its cookie")
@public
def sign_out(request: Request):
    """Open to everyone, so an expired session can still clear its cookie."""
    ended = runtime_of(request).sessions.close(session_token_from_headers(request.headers))
    response = JSONResponse({"signed_out": ended})
    response.delete_cookie(SESSION_COOKIE, **_cookie_args(request))
    return response
