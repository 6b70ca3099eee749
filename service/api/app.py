"""The API application factory: the database, caches, middleware and error handling.

Serves from the database only (decoded fields are cached in memory by run id), so it starts
fast, stays small, and never imports TensorFlow. Every error, from any layer, is an RFC 9457
problem document; the request limits are in :mod:`service.api.guard` and
:mod:`service.api.server`.
"""

from __future__ import annotations

import logging
import time
from contextlib import asynccontextmanager
from functools import partial
from http import HTTPStatus
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from service import __version__
from service.api import edr, forecasts, ops, page, runs, verification
from service.api.auth import check_admin_token
from service.api.deps import (
    ECHO_CHARS,
    SCHEMA_MESSAGE,
    AppState,
    Metrics,
    Problem,
    clip,
    is_schema_error,
    problem_response,
    single_valued_query,
)
from service.api.encoding import NegotiatedGZip
from service.api.guard import HeadAsGet, RequestGuard
from service.api.reuse import ReusedAnswers
from service.grid import Grid
from service.settings import Settings, get_settings
from service.stations import load_stations
from service.storage.db import make_engine, redact_text, session_factory

log = logging.getLogger(__name__)
#: Responses above this many bytes are gzipped when the client accepts it. Level 1: this
#: compresses answers made per request (a POST of 100 points, 140 KB: 0.5 ms at level 1,
#: 1.7 ms at 6, for 31% more bytes); the big ones, the grids and station tables, come
#: compressed at level 6 from the cache, and kept answers (service.api.reuse) once.
GZIP_MINIMUM_BYTES = 1000
GZIP_LEVEL = 1
MAX_ERRORS_LISTED = 20


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API for ``settings`` (default: the process settings).

    Raises
    ------
    service.api.auth.WeakTokenError
        When ``PM25_ADMIN_TOKEN`` is too weak (no setting relaxes this).
    """
    settings = settings or get_settings()
    check_admin_token(settings)
    db_url = settings.database_url.get_secret_value()
    grid = Grid(settings.grid)
    stations = load_stations()
    state = AppState(
        settings=settings,
        grid=grid,
        sessions=session_factory(make_engine(db_url)),
        stations=stations,
        station_cells={s.code or s.name: grid.cell_of(s.lat, s.lon) for s in stations},
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        yield
        state.sessions.kw["bind"].dispose()

    app = FastAPI(
        title="pm25-forecast",
        version=__version__,
        description=(
            "Tomorrow's hourly PM2.5 over South Korea (9 km grid) from CMAQ and WRF, corrected "
            "by a ConvLSTM (Case 3-based). Responses say when the model was trained on SYNTHETIC "
            "data and when a forecast is CMAQ's own (fallback). Every timestamp is ISO 8601 "
            "with an explicit offset, in Korea Standard Time (+09:00); dates are KST days. "
            "Errors are RFC 9457 problem documents; HEAD works wherever GET does."
        ),
        lifespan=lifespan,
        dependencies=[Depends(single_valued_query)],  # lat=1&lat=2: 422, not last-wins
        docs_url=None,  # served by the page router from packaged assets (works offline)
        redoc_url=None,  # ReDoc would load its script from a CDN; /docs works offline
    )
    app.state.pm25 = state
    # Starlette runs the middleware added last first: timing sees every answer, the guard
    # refuses before anything else runs, HEAD is answered as GET with the GET's headers
    # (compressed as the GET would be), and the body left out; an answer of a published run
    # kept whole is sent again before routing (service.api.reuse).
    app.add_middleware(NegotiatedGZip, minimum_size=GZIP_MINIMUM_BYTES, compresslevel=GZIP_LEVEL)
    app.add_middleware(
        ReusedAnswers, is_current=partial(forecasts.is_current, state), answers=state.answers
    )
    app.add_middleware(HeadAsGet)
    app.add_middleware(RequestGuard)
    app.add_middleware(TimingMiddleware, metrics=state.metrics)

    @app.exception_handler(StarletteHTTPException)
    async def http_problem(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # fastapi's HTTPException (and Problem) subclass Starlette's, which routing raises
        # for unknown paths (404) and methods (405)
        title = getattr(exc, "title", None) or _reason(exc.status_code)
        headers = dict(exc.headers or {})
        detail = str(exc.detail)
        if exc.status_code == 404 and not isinstance(exc, Problem):
            detail = f"no route {clip(request.url.path)!r}; /docs lists the API"
        elif exc.status_code == 405:
            allowed = [m.strip() for m in headers.get("Allow", "").split(",") if m.strip()]
            if "GET" in allowed and "HEAD" not in allowed:
                allowed.append("HEAD")  # service.api.guard.HeadAsGet answers it
            headers["Allow"] = ", ".join(allowed)
            detail = f"{clip(request.method)} is not allowed here; allowed: {headers['Allow']}"
        return problem_response(
            exc.status_code,
            title,
            detail,
            request.url.path,
            headers=headers or None,
            **getattr(exc, "extra", {}),
        )

    @app.exception_handler(RequestValidationError)
    async def validation_problem(request: Request, exc: RequestValidationError) -> JSONResponse:
        # pydantic's messages do not repeat the input; locations and messages are clipped
        # anyway, and a body with hundreds of errors lists the first 20
        errors = [
            {
                "loc": [clip(p) if isinstance(p, str) else p for p in e.get("loc", ())],
                "msg": clip(str(e.get("msg", "")), 2 * ECHO_CHARS),
            }
            for e in exc.errors()[:MAX_ERRORS_LISTED]
        ]
        detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors)
        return problem_response(
            422,
            "Invalid request",
            clip(detail, 4 * ECHO_CHARS),
            request.url.path,
            errors=errors,
            error_count=len(exc.errors()),
        )

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    @app.exception_handler(PoolTimeoutError)
    @app.exception_handler(ProgrammingError)
    async def database_problem(request: Request, exc: Exception) -> JSONResponse:
        # the answer names neither the database URL nor the SQL nor its parameters; the log
        # has the driver's message (no SQL), with the URL's password blanked
        reason = redact_text(str(getattr(exc, "orig", None) or type(exc).__name__), db_url)
        if is_schema_error(exc):  # an unmigrated database: say what to do
            log.error("database schema missing or out of date on %s", clip(request.url.path))
            return problem_response(
                503,
                "Database schema not ready",
                SCHEMA_MESSAGE,
                request.url.path,
                headers={"Retry-After": "30"},
            )
        if isinstance(exc, ProgrammingError):  # a bug, not an outage
            return await server_problem(request, exc)
        log.error(
            "database error on %s: %s: %s",
            clip(request.url.path),
            type(exc).__name__,
            clip(reason.splitlines()[0] if reason else "", 3 * ECHO_CHARS),
        )
        return problem_response(
            503,
            "Database unavailable",
            "the forecast database did not answer; try again shortly",
            request.url.path,
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(Exception)
    async def server_problem(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", clip(request.url.path))
        return problem_response(
            500,
            "Internal Server Error",
            "the server could not answer; the error is logged",
            request.url.path,
        )

    app.include_router(forecasts.router)
    app.include_router(runs.router)
    app.include_router(ops.router)
    app.include_router(verification.router)
    app.include_router(edr.router)
    state.metrics.registry.register(verification.VerificationCollector(state.sessions))
    page.mount(app)
    return app


class TimingMiddleware:
    """Pure ASGI middleware: a Server-Timing header and Prometheus request metrics.

    (Starlette's ``@app.middleware("http")`` costs about a millisecond a request; this does
    the same work in a few microseconds.)
    """

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def send_timed(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                elapsed = (time.perf_counter() - start) * 1000
                headers = list(message.get("headers", []))
                headers.append((b"server-timing", f"app;dur={elapsed:.3f}".encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_timed)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(route, scope["method"], str(status[0])).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - start)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
