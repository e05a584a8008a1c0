"""The FastAPI app BentoML mounts at `/`: care-manager and time-bank routes and the web page.

Declarations only: the state (`runtime`, `route_table`) is put on `app.state` by the service when
it starts, and read per request through `request.app.state`.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from sqlalchemy.exc import DBAPIError

from features.online import OnlineStoreError
from serving.api import admin, care, cockpit, events, session, timebank
from serving.api.common import error
from serving.edge import public
from serving.runtime import StartupError
from serving.store import StoreError

log = logging.getLogger("twincare.serving")
WEB_DIR = Path(__file__).resolve().parent.parent / "web"


def _web_file(name: str) -> FileResponse:
    media = {"js": "text/javascript", "css": "text/css", "html": "text/html"}[name.rsplit(".", 1)[-1]]
    return FileResponse(WEB_DIR / name, media_type=media, headers={"cache-control": "no-cache"})


def create_app() -> FastAPI:
    """The mounted app; every route declares its roles where it is defined."""
    app = FastAPI(
        title="TwinCare care-manager and time-bank routes",
        version="1",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    @app.exception_handler(StoreError)
    async def _store_error(_: Request, exc: StoreError):
        return error(getattr(exc, "status", 409), str(exc))

    @app.exception_handler(OnlineStoreError)
    async def _online_error(_: Request, exc: OnlineStoreError):
        return error(503, str(exc))

    @app.exception_handler(DBAPIError)
    @app.exception_handler(sqlite3.Error)
    async def _store_down(_: Request, exc: Exception):  # a broken or unreachable store: retry later
        log.error("store failure: %s", exc)
        return error(503, "the time-bank store is unavailable; retry later")

    @app.exception_handler(StartupError)
    async def _starting(_: Request, exc: StartupError):
        return error(503, str(exc))

    for module in (session, care, cockpit, timebank, admin, events):
        # the routes themselves (not an included-router wrapper), so their declared roles can be
        # read from the app's route table
        app.router.routes.extend(module.router.routes)

    @app.get("/", include_in_schema=False)
    @public
    def index():
        return _web_file("index.html")

    @app.get("/web/{name}", include_in_schema=False)
    @public
    def web(name: Annotated[str, PathParam(pattern=r"^[A-Za-z0-9_-]+\.(js|css)$")]):
        if not (WEB_DIR / name).is_file():
            return error(404, f"no such file: {name}")
        return _web_file(name)

    @app.get("/web/vendor/{name}", include_in_schema=False)
    @public
    def vendor(name: Annotated[str, PathParam(pattern=r"^[A-Za-z0-9_-]+\.min\.js$")]):
        """Front-end libraries vendored with their licences (no CDN)."""
        path = WEB_DIR / "vendor" / name
        if not path.is_file():
            return error(404, f"no such file: {name}")
        return FileResponse(path, media_type="text/javascript", headers={"cache-control": "max-age=86400"})

    @app.get("/docs", include_in_schema=False)
    @public
    def docs():
        return FileResponse(WEB_DIR / "docs.html", media_type="text/html")

    return app


app = create_app()
