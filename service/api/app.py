"""The API application factory: the database, caches, middleware and error handling.

Serves from the database only (decoded fields are cached in memory by run id), so it starts
fast, stays small, and never imports TensorFlow. Errors are RFC 9457 problem documents.
"""

from __future__ import annotations

import logging
import time
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from service import __version__
from service.api import forecasts, ops, runs
from service.api.auth import check_admin_token
from service.api.deps import AppState, Metrics, problem_response
from service.grid import Grid
from service.settings import Settings, get_settings
from service.stations import load_stations
from service.storage.db import make_engine, redact_text, session_factory

log = logging.getLogger(__name__)


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
            "by a ConvLSTM (Case 3). Responses say when the model was trained on SYNTHETIC "
            "data and when a forecast is CMAQ's own (fallback). Every timestamp is ISO 8601 "
            "with an explicit offset, in Korea Standard Time (+09:00); dates are KST days."
        ),
        lifespan=lifespan,
    )
    app.state.pm25 = state
    app.add_middleware(GZipMiddleware, minimum_size=1000)

    app.add_middleware(TimingMiddleware, metrics=state.metrics)

    @app.exception_handler(HTTPException)
    async def http_problem(request: Request, exc: HTTPException) -> JSONResponse:
        title = getattr(exc, "title", None) or _reason(exc.status_code)
        extra = getattr(exc, "extra", {})
        return problem_response(
            exc.status_code,
            title,
            str(exc.detail),
            request.url.path,
            headers=dict(exc.headers) if exc.headers else None,
            **extra,
        )

    @app.exception_handler(RequestValidationError)
    async def validation_problem(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
        detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors)
        return problem_response(422, "Invalid request", detail, request.url.path, errors=errors)

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    @app.exception_handler(PoolTimeoutError)
    async def database_problem(request: Request, exc: Exception) -> JSONResponse:
        # the answer names neither the database URL nor the SQL nor its parameters; the log
        # has the driver's message (no SQL), with the URL's password blanked
        reason = redact_text(str(getattr(exc, "orig", None) or type(exc).__name__), db_url)
        log.error(
            "database error on %s: %s: %s",
            request.url.path,
            type(exc).__name__,
            reason.splitlines()[0] if reason else "",
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
        log.exception("unhandled error on %s", request.url.path)
        return problem_response(
            500,
            "Internal Server Error",
            "the server could not answer; the error is logged",
            request.url.path,
        )

    app.include_router(forecasts.router)
    app.include_router(runs.router)
    app.include_router(ops.router)
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
