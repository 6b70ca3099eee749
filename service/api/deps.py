"""What every route shares: the app state, its caches, problem documents, date parameters.

The routers import from here and from :mod:`service.api.schemas`, never from the app factory,
so the API's import graph has no circle.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from threading import Lock
from typing import Annotated, Any

import anyio
import numpy as np
import numpy.typing as npt
from fastapi import Depends, HTTPException, Path, Request
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pydantic import BeforeValidator
from sqlalchemy.orm import Session, sessionmaker

from service.grid import Grid
from service.settings import Settings
from service.stations import Station
from service.storage import repository as repo
from service.timeaxis import today_kst, tomorrow_kst

F32 = npt.NDArray[np.float32]
#: How much of a client's input an answer may echo (a station name, a date, a path).
ECHO_CHARS = 100
#: Rendering (PNG, netCDF, JSON grids and tables) and other CPU-heavy work runs in worker
#: threads, at most this many at once, so the event loop (health, readiness) stays free.
CPU_CONCURRENCY = 2
MiB = 1 << 20
ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
#: The earliest target date a run may be started for: no CMAQ or WRF archive the service
#: reads reaches further back, and the date arithmetic of a run stays far from ``date.min``.
EARLIEST_RUN_DATE = dt.date(2000, 1, 1)
#: How many days after tomorrow (KST) a run may be started for: a forecast of D is made on
#: D-1 from the CMAQ and WRF runs for D, which do not exist further ahead (a run queued for
#: 9999-12-31 would wait for its inputs forever).
RUN_DAYS_AFTER_TOMORROW = 1


#: What readiness and every data route say when the tables are missing or behind.
SCHEMA_MESSAGE = "database schema missing or out of date: run `pm25 migrate`"
#: SQLSTATEs of a missing table or column (PostgreSQL: undefined_table, undefined_column).
_SCHEMA_SQLSTATES = frozenset({"42P01", "42703"})


def is_schema_error(exc: BaseException) -> bool:
    """Whether a database error says a table or column is missing: the database was never
    migrated (``pm25 migrate``), or is behind this version of the service."""
    orig = getattr(exc, "orig", None)
    if getattr(orig, "sqlstate", None) in _SCHEMA_SQLSTATES:
        return True
    text = str(orig if orig is not None else exc)
    return "no such table" in text or "no such column" in text


def clip(text: str, limit: int = ECHO_CHARS) -> str:
    """``text`` as an answer may echo it: at most ``limit`` characters, then how long it was."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


class Problem(HTTPException):
    """An HTTP error rendered as an RFC 9457 problem document."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(status_code=status, detail=detail, headers=headers)
        self.title = title
        self.extra = extra


def problem_response(
    status: int,
    title: str,
    detail: str,
    instance: str,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """An RFC 9457 ``application/problem+json`` response (the instance path clipped)."""
    body = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": clip(instance),
        **extra,
    }
    return JSONResponse(
        body, status_code=status, media_type="application/problem+json", headers=headers
    )


class LRU:
    """A small thread-safe LRU cache keyed by run, bounded in entries and in bytes.

    ``put`` takes the size of what it stores (an array's ``nbytes``, a file's length); the
    oldest entries go when either bound is passed, so large grids or files cannot grow the
    process without limit.
    """

    def __init__(self, size: int, max_bytes: int | None = None) -> None:
        self.size = size
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._data: OrderedDict[Any, tuple[Any, int]] = OrderedDict()
        self._lock = Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key][0]
        return None

    def put(self, key: Any, value: Any, nbytes: int = 0) -> Any:
        with self._lock:
            old = self._data.pop(key, None)
            self.nbytes += nbytes - (old[1] if old else 0)
            self._data[key] = (value, nbytes)
            while len(self._data) > self.size or (
                self.max_bytes is not None and self.nbytes > self.max_bytes and len(self._data) > 1
            ):
                self.nbytes -= self._data.popitem(last=False)[1][1]
        return value

    def __contains__(self, key: Any) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)


@dataclass
class Metrics:
    """The API's Prometheus metrics, in a registry of its own."""

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
    fields: LRU = field(default_factory=lambda: LRU(16, max_bytes=64 * MiB))
    files: LRU = field(default_factory=lambda: LRU(256, max_bytes=64 * MiB))
    publications: LRU = field(default_factory=lambda: LRU(64, max_bytes=64 * MiB))
    points: LRU = field(default_factory=lambda: LRU(4096))
    bodies: LRU = field(default_factory=lambda: LRU(8192, max_bytes=32 * MiB))
    """Encoded answers of published runs (immutable), keyed by run and query: a point's
    JSON, a run's reference; a new publication is a new run id, so a new key."""
    run_refs: LRU = field(default_factory=lambda: LRU(256))
    answers: LRU = field(default_factory=lambda: LRU(4096, max_bytes=32 * MiB))
    """Whole answers (status, headers, body) of published runs: service.api.reuse."""
    metrics: Metrics = field(default_factory=Metrics)
    cpu_limiter: anyio.CapacityLimiter = field(
        default_factory=lambda: anyio.CapacityLimiter(CPU_CONCURRENCY)
    )
    """Threads for rendering and other CPU work; requests beyond it wait without a thread."""
    building: dict[Any, anyio.Lock] = field(default_factory=dict)
    """One lock per answer being rendered: concurrent requests for it wait for one rendering."""
    ready: tuple[float, str | None] = (0.0, None)
    """Until when (monotonic) the last readiness check holds, and its error (None: ready)."""
    ready_lock: anyio.Lock = field(default_factory=anyio.Lock)
    ready_limiter: anyio.CapacityLimiter = field(default_factory=lambda: anyio.CapacityLimiter(1))


async def get_state(request: Request) -> AppState:
    """The app's shared state (set by :func:`service.api.app.create_app`).

    ``async`` so that FastAPI calls it on the event loop: a plain function dependency would
    cost every request a hop to a worker thread.
    """
    state: AppState = request.app.state.pm25
    return state


StateDep = Annotated[AppState, Depends(get_state)]


def iso_date(text: str) -> dt.date:
    """A calendar date written exactly ``YYYY-MM-DD`` (not ``20240109`` nor ``2024-W02-2``).

    Raises
    ------
    ValueError
        With a message that echoes at most :data:`ECHO_CHARS` characters of ``text``.
    """
    if ISO_DATE.fullmatch(text):
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            pass
    raise ValueError(f"{clip(text)!r} is not a date: use YYYY-MM-DD")


def _iso_date_param(value: Any) -> Any:
    return iso_date(value) if isinstance(value, str) else value


#: A query parameter that is a date written ``YYYY-MM-DD`` and nothing else.
IsoDate = Annotated[dt.date, BeforeValidator(_iso_date_param)]
#: The ``{date}`` of a path: ``YYYY-MM-DD``, ``today``, ``tomorrow`` or ``latest``.
DatePath = Annotated[
    str,
    Path(
        max_length=10,
        description="YYYY-MM-DD (a KST day), 'today' or 'tomorrow' (KST), or 'latest'",
    ),
]


def shift_date(day: dt.date, days: int) -> dt.date:
    """``day`` plus ``days`` days, or a 422 problem when that leaves the calendar (years 1-9999).

    Raises
    ------
    Problem
        422, instead of the ``OverflowError`` of ``date + timedelta`` near ``date.min`` or
        ``date.max``.
    """
    try:
        return day + dt.timedelta(days=days)
    except OverflowError:
        raise Problem(
            422,
            "Invalid date",
            f"{day} is too close to the ends of the calendar: {abs(days)} days "
            f"{'before' if days < 0 else 'after'} it is not a date",
        ) from None


def run_date_refusal(day: dt.date, today: dt.date | None = None) -> str | None:
    """Why a run of target date ``day`` may not be started, or None when it may.

    A run may be started for :data:`EARLIEST_RUN_DATE` .. tomorrow (KST) plus
    :data:`RUN_DAYS_AFTER_TOMORROW` days; ``today`` (default: today in KST) is for tests.
    ``pm25 run --date`` and ``POST /v1/runs/{date}`` both ask this.
    """
    today = today or today_kst()
    last = today + dt.timedelta(days=1 + RUN_DAYS_AFTER_TOMORROW)
    if day < EARLIEST_RUN_DATE:
        return (
            f"target date {day} is before {EARLIEST_RUN_DATE}, the earliest a run can be "
            "started for"
        )
    if day > last:
        return (
            f"target date {day} is too far ahead: runs can be started up to {last} "
            "(tomorrow KST plus "
            f"{RUN_DAYS_AFTER_TOMORROW} day{'s' if RUN_DAYS_AFTER_TOMORROW != 1 else ''}); "
            "the CMAQ and WRF inputs of later dates do not exist yet"
        )
    return None


#: A number as a query or body may write it: digits, an optional point and exponent. Not
#: ``nan``, ``inf``, ``0x10`` nor ``37.5_0`` (Python's float() reads underscores).
_DECIMAL = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_INTEGER = re.compile(r"[-+]?[0-9]+")


def _finite_number(value: Any) -> Any:
    if isinstance(value, str):
        if not _DECIMAL.fullmatch(value):
            raise ValueError(f"{clip(value, 40)!r} is not a number: it must be a finite number")
        value = float(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


def _whole_number(value: Any) -> Any:
    if isinstance(value, str) and not _INTEGER.fullmatch(value):
        raise ValueError(f"{clip(value, 40)!r} is not a whole number (digits only)")
    return value


#: A float written as plain digits (optionally a point and an exponent), finite.
FiniteFloat = Annotated[float, BeforeValidator(_finite_number)]
#: An integer written as plain digits (no ``1_2``, no spaces).
WholeNumber = Annotated[int, BeforeValidator(_whole_number)]


async def single_valued_query(request: Request) -> None:
    """Refuse a query that names a parameter twice (``lat=37.5&lat=35``): every parameter of
    the API takes one value, and which of two would win is the client's guess.

    Raises
    ------
    Problem
        422 naming the parameter.
    """
    seen: set[str] = set()
    for key, _ in request.query_params.multi_items():
        if key in seen:
            raise Problem(
                422,
                "Repeated parameter",
                f"query parameter {clip(key)!r} is given more than once; give it once",
                parameter=clip(key),
            )
        seen.add(key)


def parse_date(text: str, state: AppState) -> dt.date:
    """``YYYY-MM-DD``, ``today`` or ``tomorrow`` (KST), or ``latest`` (newest published)."""
    if text == "today":
        return today_kst()
    if text == "tomorrow":
        return tomorrow_kst()
    if text == "latest":
        with state.sessions() as s:
            run = repo.latest_published(s)
        if run is None:
            raise Problem(404, "No forecast", "no forecast has been published yet")
        return run.target_date
    try:
        return iso_date(text)
    except ValueError:
        raise Problem(
            422,
            "Invalid date",
            f"{clip(text)!r} is not a date: use YYYY-MM-DD, 'today', 'tomorrow' or 'latest'",
        ) from None
