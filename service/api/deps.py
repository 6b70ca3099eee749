"""What every route shares: the app state, its caches, problem documents, date parameters.

The routers import from here and from :mod:`service.api.schemas`, never from the app factory,
so the API's import graph has no circle.
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from dataclasses import dataclass, field
from threading import Lock
from typing import Annotated, Any

import numpy as np
import numpy.typing as npt
from fastapi import Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from sqlalchemy.orm import Session, sessionmaker

from service.grid import Grid
from service.settings import Settings
from service.stations import Station
from service.storage import repository as repo
from service.timeaxis import tomorrow_kst

F32 = npt.NDArray[np.float32]


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
    """An RFC 9457 ``application/problem+json`` response."""
    body = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
        **extra,
    }
    return JSONResponse(
        body, status_code=status, media_type="application/problem+json", headers=headers
    )


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
    fields: LRU = field(default_factory=lambda: LRU(16))
    files: LRU = field(default_factory=lambda: LRU(64))
    publications: LRU = field(default_factory=lambda: LRU(64))
    points: LRU = field(default_factory=lambda: LRU(4096))
    run_refs: LRU = field(default_factory=lambda: LRU(256))
    metrics: Metrics = field(default_factory=Metrics)


def get_state(request: Request) -> AppState:
    """The app's shared state (set by :func:`service.api.app.create_app`)."""
    state: AppState = request.app.state.pm25
    return state


StateDep = Annotated[AppState, Depends(get_state)]


def parse_date(text: str, state: AppState) -> dt.date:
    """``YYYY-MM-DD``, ``tomorrow`` (KST) or ``latest`` (the newest published date)."""
    if text == "tomorrow":
        return tomorrow_kst()
    if text == "latest":
        with state.sessions() as s:
            run = repo.latest_published(s)
        if run is None:
            raise Problem(404, "No forecast", "no forecast has been published yet")
        return run.target_date
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise Problem(
            422, "Invalid date", f"{text!r} is not a date: use YYYY-MM-DD, 'tomorrow' or 'latest'"
        ) from None
