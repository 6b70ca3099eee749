"""Forecast routes: grids (JSON, netCDF, PNG), points, stations.

The event loop only routes: database look-ups run in worker threads, and rendering (files,
the JSON grid, the station tables) runs in at most ``CPU_CONCURRENCY`` threads, once per
run and answer (concurrent requests for the same answer wait for one rendering), and is
kept, gzipped too, in a cache bounded in bytes. A published run never changes, so a point's
JSON is encoded once per run and coordinate too (``AppState.bodies``) and a request only
joins cached bytes; JSON is encoded by orjson.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any, Literal

import anyio
import numpy as np
import orjson
from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, Field

from service.api import encoding
from service.api.coast import load_coastline
from service.api.deps import (
    F32,
    AppState,
    DatePath,
    FiniteFloat,
    Problem,
    StateDep,
    WholeNumber,
    clip,
    parse_date,
)
from service.api.encoding import gzip_etag, request_accepts_gzip
from service.api.render import to_netcdf, to_png
from service.api.reuse import reusable
from service.api.schemas import RunRef
from service.api.selection import OutsideGridError, PointSelection, select_point, summarize
from service.storage import repository as repo
from service.storage.tables import Run
from service.timeaxis import valid_times_kst

router = APIRouter(prefix="/v1", tags=["forecasts"])
CACHE_CONTROL = "public, max-age=300"
MAX_POINTS = 500
GZIP_LEVEL = 6


@dataclass(frozen=True)
class Payload:
    """A rendered answer as cached: its bytes, and its gzip encoding when that is smaller."""

    body: bytes
    media_type: str
    gzipped: bytes | None = None

    @classmethod
    def of(cls, body: bytes, media_type: str, *, compress: bool = True) -> Payload:
        packed = gzip.compress(body, GZIP_LEVEL, mtime=0) if compress else None
        return cls(body, media_type, packed if packed and len(packed) < len(body) else None)

    @classmethod
    def json(cls, content: dict[str, Any], media_type: str = "application/json") -> Payload:
        """``content`` as compact UTF-8 JSON (:func:`dumps`)."""
        return cls.of(dumps(content), media_type)

    @property
    def nbytes(self) -> int:
        return len(self.body) + len(self.gzipped or b"")

    def response(self, request: Request, headers: dict[str, str]) -> Response:
        """The answer, gzipped when the client accepts it (the middleware then leaves it)."""
        if self.gzipped is None:
            return Response(self.body, media_type=self.media_type, headers=headers)
        headers = {**headers, "Vary": "Accept-Encoding"}
        if request_accepts_gzip(request):
            headers["Content-Encoding"] = "gzip"
            if "ETag" in headers:  # another representation, another tag
                headers["ETag"] = gzip_etag(headers["ETag"])
            return Response(self.gzipped, media_type=self.media_type, headers=headers)
        return Response(self.body, media_type=self.media_type, headers=headers)


def dumps(content: Any) -> bytes:
    """Compact UTF-8 JSON, as :class:`fastapi.responses.JSONResponse` writes it, by orjson.

    NumPy arrays are written as nested lists: a whole grid (96,000 values) in a few
    milliseconds, where ``json.dumps`` held the GIL, and so the event loop, for over 100 ms.
    Non-finite numbers would be written ``null``; published fields are checked finite.
    """
    return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


@lru_cache(maxsize=64)
def valid_times_iso(day: dt.date) -> tuple[str, ...]:
    """The 24 valid times of ``day`` as ISO 8601 KST strings (computed once per day)."""
    return tuple(t.isoformat() for t in valid_times_kst(day))


async def rendered(state: AppState, key: Hashable, build: Callable[[], Payload]) -> Payload:
    """The cached answer for ``key``, built once in a CPU worker thread when missing."""
    payload: Payload | None = state.files.get(key)
    if payload is not None:
        return payload
    lock = state.building.setdefault(key, anyio.Lock())
    try:
        async with lock:
            payload = state.files.get(key)
            if payload is None:
                payload = await anyio.to_thread.run_sync(build, limiter=state.cpu_limiter)
                state.files.put(key, payload, payload.nbytes)
    finally:
        if state.building.get(key) is lock:
            del state.building[key]
    return payload


async def resolve(date: str, state: AppState) -> tuple[dt.date, Run, F32]:
    """:func:`forecast` without blocking the event loop: from the cache, or in a thread."""
    if date != "latest":
        try:
            day: dt.date | None = parse_date(date, state)
        except Problem:
            day = None  # the thread raises it again, the same way
        hit = cached_publication(state, day) if day is not None else None
        if day is not None and hit is not None:
            return day, *hit
    return await anyio.to_thread.run_sync(forecast, date, state)


def reuse_answer(request: Request, date: str, day: dt.date, run: Run) -> None:
    """Let :class:`service.api.reuse.ReusedAnswers` send this answer again while ``day``'s
    publication is ``run``, when the request named the date itself (not today or latest)."""
    if date == day.isoformat():
        reusable(request, day, run.id)


def run_meta(state: AppState, run: Run) -> dict[str, Any]:
    """What every forecast response says about its run, as JSON (cached per run)."""
    cached = state.run_refs.get(run.id)
    if cached is not None:
        return cached
    return state.run_refs.put(run.id, RunRef.of(run).model_dump(mode="json"))


def run_meta_json(state: AppState, run: Run) -> bytes:
    """:func:`run_meta` encoded (once per run)."""
    return cached_body(state, ("run", run.id), lambda: dumps(run_meta(state, run)))


def cached_body(state: AppState, key: Hashable, encode: Callable[[], bytes]) -> bytes:
    """The encoded answer kept under ``key`` (which names its run), encoded when missing."""
    body: bytes | None = state.bodies.get(key)
    if body is None:
        body = encode()
        state.bodies.put(key, body, len(body))
    return body


def published(state: AppState, date: dt.date) -> tuple[Run, F32]:
    """The published run and field of a date, or a 404 that says what exists.

    Answers are kept for ``api_cache_seconds`` (a re-run shows up at most that late), so
    a burst of lookups costs one database query, not one each.
    """
    hit = cached_publication(state, date)
    if hit is not None:
        return hit
    run, field = _published_from_db(state, date)
    expires = time.monotonic() + state.settings.api_cache_seconds
    state.publications.put(date, (expires, run, field), field.nbytes)
    return run, field


def cached_publication(state: AppState, date: dt.date) -> tuple[Run, F32] | None:
    """The date's published run and field if looked up less than ``api_cache_seconds`` ago."""
    hit = state.publications.get(date)
    if hit is not None and hit[0] > time.monotonic():
        return hit[1], hit[2]
    return None


def is_current(state: AppState, day: dt.date, run_id: int) -> bool:
    """Whether ``day``'s publication, as the routes see it now, is still run ``run_id``."""
    hit = cached_publication(state, day)
    return hit is not None and hit[0].id == run_id


def forecast(date: str, state: AppState) -> tuple[dt.date, Run, F32]:
    """Resolve a date parameter and fetch its published run and field."""
    day = parse_date(date, state)
    run, field = published(state, day)
    return day, run, field


def _published_from_db(state: AppState, date: dt.date) -> tuple[Run, F32]:
    with state.sessions() as s:
        run = repo.published_run(s, date)
        if run is None:
            attempts = repo.runs_for_date(s, date)
            latest = repo.latest_published(s)
            what = (
                f"{len(attempts)} attempt(s) for {date}, the last {attempts[-1].status.value}"
                if attempts
                else f"no run for {date}"
            )
            where = f"; the latest forecast is for {latest.target_date}" if latest else ""
            raise Problem(
                404,
                "No forecast",
                f"no successful forecast for {date}: {what}{where}",
                latest=latest.target_date.isoformat() if latest else None,
            )
        field = state.fields.get(run.id)
        if field is None:
            field = repo.run_field(s, run.id)
            if field is None:
                raise Problem(404, "No forecast", f"the field of run {run.id} is missing")
            state.fields.put(run.id, field, field.nbytes)
        s.expunge(run)
    return run, field


def not_modified(request: Request, etag: str) -> Response | None:
    """304 when ``If-None-Match`` names ``etag`` or its gzipped twin (weak comparison, lists,
    ``*``: :func:`service.api.encoding.not_modified`), else None."""
    return encoding.not_modified(request, etag, CACHE_CONTROL)


def grid_description(state: AppState) -> dict[str, Any]:
    lon, lat = state.grid.centre_lonlat
    return {
        **state.grid.describe(),
        "cell_centre_bounds": {
            "lat": [round(float(lat.min()), 4), round(float(lat.max()), 4)],
            "lon": [round(float(lon.min()), 4), round(float(lon.max()), 4)],
        },
        "values_layout": "values[hour][row][col], row 0 is the southern edge",
    }


@router.get("/forecasts/{date}/grid", summary="The forecast field of a target date")
async def get_grid(
    date: DatePath,
    request: Request,
    state: StateDep,
    hour: Annotated[
        WholeNumber | Literal["mean"] | None,
        Query(description="One hour (KST, 0-23; all 24 if absent); 'mean' (the daily mean, PNG)"),
    ] = None,
    format: Annotated[Literal["json", "netcdf", "png"], Query()] = "json",
) -> Response:
    """The PM2.5 field (ug/m3) of target date ``date``: JSON, CF netCDF or a PNG map."""
    if format == "png" and hour is None:
        raise Problem(422, "Hour required", "format=png draws one hour: add hour=0..23 or mean")
    if hour == "mean" and format != "png":
        raise Problem(422, "Invalid hour", "hour=mean is for format=png; JSON has all 24 hours")
    if isinstance(hour, int) and not 0 <= hour <= 23:
        raise Problem(422, "Invalid hour", f"hour must be 0..23 (KST) or mean, not {hour}")
    day, run, field = await resolve(date, state)
    etag = f'"run-{run.id}-{format}-{"all" if hour is None else hour}"'
    if (cached := not_modified(request, etag)) is not None:
        return cached
    reuse_answer(request, date, day, run)
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL, "X-Run-Id": str(run.id)}
    if format == "netcdf":
        headers["Content-Disposition"] = f'attachment; filename="pm25_{day:%Y%m%d}.nc"'
    payload = await rendered(
        state, (run.id, format, hour), lambda: grid_payload(state, day, run, field, hour, format)
    )
    return payload.response(request, headers)


def grid_payload(
    state: AppState, day: dt.date, run: Run, field: F32, hour: int | str | None, format: str
) -> Payload:
    """The grid answer of one run, hour (None: all 24; 'mean': the PNG's daily mean) and
    format, rendered."""
    hours = list(range(24)) if not isinstance(hour, int) else [hour]
    times = [valid_times_kst(day)[h] for h in hours]
    meta = run_meta(state, run)
    if format == "json":
        head = {
            "run": meta,
            "grid": grid_description(state),
            "units": "ug/m3",
            "hours": hours,
            "valid_times": [t.isoformat() for t in times],
            # rounded in float64, so each value is written as the point lookup writes it
            "values": np.round(field[hours].astype(np.float64), 2),
        }
        return Payload.json(head)
    if format == "netcdf":
        data = to_netcdf(field[hours], hours, times, state.grid, netcdf_attributes(meta))
        return Payload.of(data, "application/x-netcdf")
    return Payload.of(png_map(day, hour, run, field, state), "image/png", compress=False)


def png_map(day: dt.date, hour: int | str | None, run: Run, field: F32, state: AppState) -> bytes:
    """The PNG map of one hour or of the daily mean, titled with date, hour, run and model."""
    meta = run_meta(state, run)
    model = meta.get("model") or {}
    when = "daily mean" if hour == "mean" else f"{hour:02d}:00 KST"
    source = (
        "CMAQ's own forecast (the model could not run)"
        if run.fallback
        else f"model {model.get('name')} {model.get('version')}"
    )
    synthetic = bool(meta.get("trained_on_synthetic_data"))
    title = f"PM2.5 forecast  {day}  {when}\nrun {run.id} · {source}" + (
        " · trained on SYNTHETIC data" if synthetic else ""
    )
    values = field.mean(axis=0) if hour == "mean" else field[int(str(hour))]
    return to_png(values, state.grid, load_coastline(), title=title, synthetic=synthetic)


def netcdf_attributes(meta: dict[str, Any]) -> dict[str, Any]:
    """The run's reference as flat global attributes of a netCDF file (no None values)."""
    model = meta.get("model") or {}
    flat = {k: v for k, v in meta.items() if k != "model"}
    flat.update({f"model_{k}": v for k, v in model.items()})
    flat["time_zone_of_target_date"] = "Asia/Seoul"
    return {k: ("" if v is None else v) for k, v in flat.items()}


def selection(state: AppState, lat: float, lon: float, method: str) -> PointSelection:
    """Where a point falls in the grid, remembered per coordinate (the projection is costly)."""
    key = (lat, lon, method)
    sel: PointSelection | None = state.points.get(key)
    if sel is None:
        sel = state.points.put(key, select_point(state.grid, lat, lon, method))
    return sel


def point_body(
    state: AppState,
    day: dt.date,
    run: Run,
    field: F32,
    lat: float,
    lon: float,
    method: str,
    ident: str | None = None,
) -> dict[str, Any]:
    try:
        sel = selection(state, lat, lon, method)
    except OutsideGridError:
        lon_c, lat_c = state.grid.centre_lonlat
        raise Problem(
            422,
            "Outside the grid",
            f"({lat}, {lon}) is outside the forecast grid, which covers cell centres "
            f"{lat_c.min():.2f}-{lat_c.max():.2f} N, {lon_c.min():.2f}-{lon_c.max():.2f} E "
            "(South Korea, 9 km Lambert grid)",
            grid_bounds={
                "lat": [float(lat_c.min()), float(lat_c.max())],
                "lon": [float(lon_c.min()), float(lon_c.max())],
            },
        ) from None
    values = sel.values(field)
    out: dict[str, Any] = {
        "lat": lat,
        "lon": lon,
        "method": method,
        "valid_times": valid_times_iso(day),
        "values": [round(float(v), 2) for v in values],
        "units": "ug/m3",
        **summarize(values),
        "cells": [
            {"row": c.row, "col": c.col, "weight": c.weight, "lat": c.lat, "lon": c.lon}
            for c in sel.cells
        ],
        "nearest_cell": {
            "row": sel.nearest.row,
            "col": sel.nearest.col,
            "lat": sel.nearest.lat,
            "lon": sel.nearest.lon,
        },
        "distance_to_nearest_cell_km": round(sel.distance_km, 3),
    }
    if ident is not None:
        out["id"] = ident
    return out


def point_json(
    state: AppState, day: dt.date, run: Run, field: F32, lat: float, lon: float, method: str
) -> bytes:
    """:func:`point_body` encoded, once per run, coordinate and method.

    Raises
    ------
    Problem
        422: the point is outside the grid (never cached).
    """
    return cached_body(
        state,
        ("point", run.id, lat, lon, method),
        lambda: dumps(point_body(state, day, run, field, lat, lon, method)),
    )


def with_members(head: bytes, obj: bytes, tail: bytes = b"") -> bytes:
    """The JSON object ``obj`` with encoded members ``head`` first and ``tail`` last.

    >>> with_members(b'"a":1', b'{"b":2}', b'"c":3')
    b'{"a":1,"b":2,"c":3}'
    """
    inner = obj[1:-1]
    parts = [p for p in (head, inner, tail) if p]
    return b"{" + b",".join(parts) + b"}"


@router.get("/forecasts/{date}/point", summary="24 hourly values at a coordinate")
async def get_point(
    date: DatePath,
    request: Request,
    state: StateDep,
    lat: Annotated[FiniteFloat, Query(ge=-90, le=90)],
    lon: Annotated[FiniteFloat, Query(ge=-180, le=360)],
    method: Annotated[Literal["bilinear", "nearest"], Query()] = "bilinear",
) -> Response:
    """Hourly PM2.5, daily mean, Korean grade and advisory hours at a latitude/longitude."""
    day, run, field = await resolve(date, state)
    etag = f'"run-{run.id}-point-{lat}-{lon}-{method}"'
    if (cached := not_modified(request, etag)) is not None:
        return cached
    point = point_json(state, day, run, field, lat, lon, method)
    reuse_answer(request, date, day, run)
    body = with_members(b'"run":' + run_meta_json(state, run), point)
    return Response(
        body,
        media_type="application/json",
        headers={"ETag": etag, "Cache-Control": CACHE_CONTROL},
    )


class PointIn(BaseModel):
    lat: FiniteFloat = Field(ge=-90, le=90)
    lon: FiniteFloat = Field(ge=-180, le=360)
    id: str | None = Field(default=None, max_length=100)


class PointsIn(BaseModel):
    points: list[PointIn] = Field(min_length=1, max_length=MAX_POINTS)
    method: Literal["bilinear", "nearest"] = "bilinear"


@router.post("/forecasts/{date}/points", summary="Many coordinates at once")
async def post_points(date: DatePath, body: PointsIn, state: StateDep) -> Response:
    """The point lookup for up to 500 coordinates; points outside the grid get an error entry.

    The body may have at most 1 MiB (``service.api.guard.MAX_BODY_BYTES``).
    """
    day, run, field = await resolve(date, state)

    def answer() -> Response:
        results = []
        for p in body.points:
            try:
                point = point_json(state, day, run, field, p.lat, p.lon, body.method)
            except Problem as exc:
                point = dumps({"lat": p.lat, "lon": p.lon, "id": p.id, "error": exc.detail})
            else:
                if p.id is not None:
                    point = point[:-1] + b',"id":' + dumps(p.id) + b"}"  # the last member
            results.append(point)
        head = b'"run":' + run_meta_json(state, run) + b',"count":' + str(len(results)).encode()
        listed = b'{"results":[' + b",".join(results) + b"]}"
        return Response(with_members(head, listed), media_type="application/json")

    if all(("point", run.id, p.lat, p.lon, body.method) in state.bodies for p in body.points):
        return answer()  # cached points are joined in microseconds: no thread hop, no GIL wait
    return await anyio.to_thread.run_sync(answer, limiter=state.cpu_limiter)


def station_rows(state: AppState, day: dt.date, field: F32) -> list[dict[str, Any]]:
    rows = []
    for st in state.stations:
        cell = state.station_cells.get(st.code or st.name)
        if cell is None:
            continue
        sel = selection(state, st.lat, st.lon, "bilinear")
        values = sel.values(field)
        rows.append(
            {
                "station_code": st.code or None,
                "station_name": st.name,
                "sido": st.sido,
                "lat": st.lat,
                "lon": st.lon,
                "values": [round(float(v), 2) for v in values],
                **summarize(values),
            }
        )
    return rows


@router.get("/forecasts/{date}/stations", summary="The forecast at every station")
async def get_stations_forecast(
    date: DatePath,
    request: Request,
    state: StateDep,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
    bom: Annotated[
        bool,
        Query(description="CSV: start with a UTF-8 byte-order mark, so Excel reads Korean"),
    ] = True,
) -> Response:
    """Every AirKorea station inside the grid: 24 values (bilinear), daily mean and grade.

    The CSV is UTF-8 with a byte-order mark (Excel, Korean or not, then shows the station
    names; ``bom=false`` leaves it out). It opens with ``#`` comment lines naming the run
    (run id, model, CMAQ/WRF init times, ``trained_on_synthetic_data``, and a SYNTHETIC line
    when so), then a header and one row per station; its columns say their units and time
    zone: ``h00_kst_ug_m3`` .. ``h23_kst_ug_m3`` are the hours 00:00-23:00 KST of the target
    date.
    """
    day, run, field = await resolve(date, state)
    bom = bom and format == "csv"
    etag = f'"run-{run.id}-stations-{format}{"-bom" if bom else ""}"'
    if (cached := not_modified(request, etag)) is not None:
        return cached
    reuse_answer(request, date, day, run)
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL, "X-Run-Id": str(run.id)}
    if format == "csv":
        headers["Content-Disposition"] = f'attachment; filename="pm25_stations_{day:%Y%m%d}.csv"'
    payload = await rendered(
        state,
        (run.id, "stations", format, bom),
        lambda: stations_payload(state, day, run, field, format, bom),
    )
    return payload.response(request, headers)


def stations_payload(
    state: AppState, day: dt.date, run: Run, field: F32, format: str, bom: bool
) -> Payload:
    """The forecast at every station of one run, as CSV or JSON, rendered."""
    rows = station_rows(state, day, field)
    if format == "csv":
        meta = run_meta(state, run)
        return Payload.of(stations_csv(day, rows, bom=bom, meta=meta), "text/csv; charset=utf-8")
    return Payload.json(
        {
            "run": run_meta(state, run),
            "valid_times": valid_times_iso(day),
            "units": "ug/m3",
            "count": len(rows),
            "stations": rows,
        }
    )


def csv_provenance(meta: dict[str, Any] | None) -> dict[str, str]:
    """The provenance columns every CSV row ends with: the run that produced it (as every
    forecast response names it) and whether its model was trained on SYNTHETIC twin data.

    Columns rather than comment lines, so that spreadsheets and ``pandas.read_csv`` read the
    file as it is, and a row copied elsewhere still names its run.
    """
    meta = meta or {}
    model = meta.get("model") or {}
    name = f"{model.get('name')} {model.get('version')}" if model else "none (CMAQ's own PM2.5)"
    return {
        "run_id": str(meta.get("run_id", "")),
        "model": name,
        "cmaq_init": meta.get("cmaq_init") or "",
        "wrf_init": meta.get("wrf_init") or "",
        "cmaq_fallback": str(bool(meta.get("cmaq_fallback"))).lower(),
        "trained_on_synthetic_data": str(bool(meta.get("trained_on_synthetic_data"))).lower(),
    }


def stations_csv(
    day: dt.date, rows: list[dict[str, Any]], *, bom: bool, meta: dict[str, Any] | None = None
) -> bytes:
    """The station forecasts as CSV for spreadsheets: units and time zone in the column names,
    and each row ending with its run's provenance (:func:`csv_provenance`, from ``meta``)."""
    provenance = csv_provenance(meta)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(
        [
            "target_date_kst",
            "station_code",
            "station_name",
            "sido",
            "lat_deg_n",
            "lon_deg_e",
            "daily_mean_ug_m3",
            "grade",
            "grade_ko",
            *[f"h{h:02d}_kst_ug_m3" for h in range(24)],
            *provenance,
        ]
    )
    for r in rows:
        w.writerow(
            [
                day.isoformat(),
                r["station_code"] or "",
                r["station_name"],
                r["sido"],
                r["lat"],
                r["lon"],
                r["daily_mean"],
                r["grade"],
                r["grade_ko"],
                *r["values"],
                *provenance.values(),
            ]
        )
    return ("\ufeff" if bom else "").encode() + buf.getvalue().encode("utf-8")


@router.get("/stations", summary="The AirKorea station catalogue")
async def get_stations(request: Request, state: StateDep) -> Response:
    """All 657 stations, with whether each lies inside the forecast grid and its cell."""
    payload = await rendered(state, "stations", lambda: catalogue_payload(state))
    return payload.response(request, {"Cache-Control": CACHE_CONTROL})


def catalogue_payload(state: AppState) -> Payload:
    out = []
    for st in state.stations:
        cell = state.station_cells.get(st.code or st.name)
        out.append(
            {
                "station_code": st.code or None,
                "station_name": st.name,
                "lat": st.lat,
                "lon": st.lon,
                "network": st.network,
                "sido": st.sido,
                "addr": st.addr,
                "in_grid": cell is not None,
                "cell": {"row": cell[0], "col": cell[1]} if cell else None,
            }
        )
    return Payload.json(
        {
            "count": len(out),
            "source": "AirKorea (Korea Environment Corporation) open data",
            "stations": out,
        }
    )


@router.get("/stations/{code}/forecast", summary="The forecast at one station")
def get_station_forecast(
    code: Annotated[
        str, Path(max_length=64, description="6-digit code, or the name of a station without")
    ],
    request: Request,
    state: StateDep,
    date: Annotated[
        str,
        Query(
            max_length=10,
            description="YYYY-MM-DD (a KST day), 'today' or 'tomorrow' (KST), or 'latest'",
        ),
    ] = "latest",
) -> Response:
    """The forecast at a station by its 6-digit code (or its name, for stations without one).

    Carries an ETag tied to the run and the station, and honours ``If-None-Match``.
    """
    index = next((i for i, s in enumerate(state.stations) if code in (s.code, s.name)), None)
    if index is None:
        raise Problem(404, "Unknown station", f"no station with code or name {clip(code)!r}")
    station = state.stations[index]
    if state.station_cells.get(station.code or station.name) is None:
        raise Problem(422, "Outside the grid", f"station {code} lies outside the forecast grid")
    day, run, field = forecast(date, state)
    etag = f'"run-{run.id}-station-{index}"'  # the catalogue's order: ASCII for any name
    if (cached := not_modified(request, etag)) is not None:
        return cached
    body = point_body(state, day, run, field, station.lat, station.lon, "bilinear")
    content = {
        "run": run_meta(state, run),
        "station": {
            "station_code": station.code or None,
            "station_name": station.name,
            "sido": station.sido,
            "network": station.network,
        },
        **body,
    }
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL, "X-Run-Id": str(run.id)}
    return Response(dumps(content), media_type="application/json", headers=headers)
