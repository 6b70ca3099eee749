"""The API application factory: the database, caches, middleware and error handling.

Serves from the database only (decoded fields are cached in memory by run id), so it starts
fast, stays small, and never imports TensorFlow. Errors are RFC 9457 problem documents.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from threading import Lock
from typing import Any

import numpy as np
import numpy.typing as npt
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from sqlalchemy.orm import Session, sessionmaker

from service import __version__
from service.grid import Grid
from service.settings import Settings, get_settings
from service.stations import Station, load_stations
from service.storage.db import make_engine, session_factory

log = logging.getLogger(__name__)
F32 = npt.NDArray[np.float32]
WEAK_TOKENS = {"", "admin", "changeme", "change-me", "secret", "password", "token", "demo"}


class Problem(HTTPException):
    """An HTTP error rendered as an RFC 9457 problem document."""

    def __init__(self, status: int, title: str, detail: str, **extra: Any) -> None:
        super().__init__(status_code=status, detail=detail)
        self.title = title
        self.extra = extra


def problem_response(
    status: int, title: str, detail: str, instance: str, **extra: Any
) -> JSONResponse:
    body = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


class LRU:
    """A small thread-safe LRU cache (decoded fields, rendered files) keyed by run."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[Any, Any] = OrderedDict()
        self._lock = Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
        return None

    def put(self, key: Any, value: Any) -> Any:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)
        return value


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter(
            "pm25_http_requests_total", "HTTP requests", ["route", "method", "status"], registry=r
        )
        self.latency = Histogram(
            "pm25_http_request_seconds",
            "HTTP request latency",
            ["route"],
            registry=r,
            buckets=(0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        )
        self.runs = Gauge("pm25_runs", "Runs in the database by status", ["status"], registry=r)
        self.forecast_age = Gauge(
            "pm25_latest_forecast_age_seconds",
            "Seconds since the latest forecast was published",
            registry=r,
        )
        self.latest_target = Gauge(
            "pm25_latest_forecast_target_date",
            "Target date of the latest forecast (YYYYMMDD)",
            registry=r,
        )


@dataclass
class AppState:
    """Everything the routes share: settings, grid, sessions, catalogue, caches, metrics."""

    settings: Settings
    grid: Grid
    sessions: sessionmaker[Session]
    stations: tuple[Station, ...]
    station_cells: dict[str, tuple[int, int] | None]
    fields: LRU = field(default_factory=lambda: LRU(16))
    files: LRU = field(default_factory=lambda: LRU(64))
    publications: LRU = field(default_factory=lambda: LRU(64))
    points: LRU = field(default_factory=lambda: LRU(4096))
    metrics: Metrics = field(default_factory=Metrics)


def check_admin_token(settings: Settings) -> None:
    """Refuse to start with an empty or default admin token, except in the demo."""
    token = settings.admin_token.get_secret_value()
    if settings.demo:
        return
    if token.strip().lower() in WEAK_TOKENS or len(token) < 16:
        raise RuntimeError(
            "PM25_ADMIN_TOKEN is empty, a default, or shorter than 16 characters; set a strong "
            "secret (the demo generates one for itself)"
        )


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API for ``settings`` (default: the process settings)."""
    settings = settings or get_settings()
    check_admin_token(settings)
    grid = Grid(settings.grid)
    stations = load_stations()
    state = AppState(
        settings=settings,
        grid=grid,
        sessions=session_factory(make_engine(settings.database_url)),
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
            "data and when a forecast is CMAQ's own (fallback)."
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
        return problem_response(exc.status_code, title, str(exc.detail), request.url.path, **extra)

    @app.exception_handler(RequestValidationError)
    async def validation_problem(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
        detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors)
        return problem_response(422, "Invalid request", detail, request.url.path, errors=errors)

    @app.exception_handler(Exception)
    async def server_problem(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return problem_response(
            500,
            "Internal Server Error",
            "the server could not answer; the error is logged",
            request.url.path,
        )

    from service.api import forecasts, ops, runs

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
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
