"""Forecast routes: grids (JSON, netCDF, PNG), points, stations."""

from __future__ import annotations

import csv
import datetime as dt
import io
import time
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from service.api.coast import load_coastline
from service.api.deps import F32, AppState, Problem, StateDep, parse_date
from service.api.render import to_netcdf, to_png
from service.api.schemas import RunRef
from service.api.selection import OutsideGridError, PointSelection, select_point, summarize
from service.storage import repository as repo
from service.storage.tables import Run
from service.timeaxis import valid_times_kst

router = APIRouter(prefix="/v1", tags=["forecasts"])
CACHE_CONTROL = "public, max-age=300"
MAX_POINTS = 500


def run_meta(state: AppState, run: Run) -> dict[str, Any]:
    """What every forecast response says about its run, as JSON (cached per run)."""
    cached = state.run_refs.get(run.id)
    if cached is not None:
        return cached
    return state.run_refs.put(run.id, RunRef.of(run).model_dump(mode="json"))


def published(state: AppState, date: dt.date) -> tuple[Run, F32]:
    """The published run and field of a date, or a 404 that says what exists.

    Answers are kept for ``api_cache_seconds`` (a re-run shows up at most that late), so
    a burst of lookups costs one database query, not one each.
    """
    now = time.monotonic()
    hit = state.publications.get(date)
    if hit is not None and hit[0] > now:
        return hit[1], hit[2]
    run, field = _published_from_db(state, date)
    state.publications.put(date, (now + state.settings.api_cache_seconds, run, field))
    return run, field


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
            state.fields.put(run.id, field)
        s.expunge(run)
    return run, field


def not_modified(request: Request, etag: str) -> Response | None:
    inm = request.headers.get("if-none-match", "")
    if etag in [t.strip() for t in inm.split(",")] or inm.strip() == "*":
        return Response(status_code=304, headers={"ETag": etag, "Cache-Control": CACHE_CONTROL})
    return None


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
def get_grid(
    date: str,
    request: Request,
    state: StateDep,
    hour: Annotated[
        int | Literal["mean"] | None,
        Query(description="One hour (KST, 0-23; all 24 if absent); 'mean' (the daily mean, PNG)"),
    ] = None,
    format: Annotated[Literal["json", "netcdf", "png"], Query()] = "json",
) -> Response:
    """The PM2.5 field (ug/m3) of target date ``date``: JSON, CF netCDF or a PNG map."""
    day, run, field = forecast(date, state)
    if format == "png" and hour is None:
        raise Problem(422, "Hour required", "format=png draws one hour: add hour=0..23 or mean")
    if hour == "mean" and format != "png":
        raise Problem(422, "Invalid hour", "hour=mean is for format=png; JSON has all 24 hours")
    if isinstance(hour, int) and not 0 <= hour <= 23:
        raise Problem(422, "Invalid hour", f"hour must be 0..23 (KST) or mean, not {hour}")
    etag = f'"run-{run.id}-{format}-{"all" if hour is None else hour}"'
    if (cached := not_modified(request, etag)) is not None:
        return cached
    hours = list(range(24)) if not isinstance(hour, int) else [hour]
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL, "X-Run-Id": str(run.id)}
    times = [valid_times_kst(day)[h] for h in hours]
    meta = run_meta(state, run)
    if format == "json":
        body = {
            "run": meta,
            "grid": grid_description(state),
            "units": "ug/m3",
            "hours": hours,
            "valid_times": [t.isoformat() for t in times],
            "values": np.round(field[hours], 2).tolist(),
        }
        return JSONResponse(body, headers=headers)
    key = (run.id, format, hour)
    data = state.files.get(key)
    if data is None:
        if format == "netcdf":
            data = to_netcdf(
                field[hours],
                hours,
                times,
                state.grid,
                netcdf_attributes(meta),
            )
        else:
            data = png_map(day, hour, run, field, state)
        state.files.put(key, data)
    media = "application/x-netcdf" if format == "netcdf" else "image/png"
    if format == "netcdf":
        headers["Content-Disposition"] = f'attachment; filename="pm25_{day:%Y%m%d}.nc"'
    return Response(data, media_type=media, headers=headers)


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
        "valid_times": [t.isoformat() for t in valid_times_kst(day)],
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


@router.get("/forecasts/{date}/point", summary="24 hourly values at a coordinate")
async def get_point(
    date: str,
    request: Request,
    state: StateDep,
    lat: Annotated[float, Query(ge=-90, le=90)],
    lon: Annotated[float, Query(ge=-180, le=360)],
    method: Annotated[Literal["bilinear", "nearest"], Query()] = "bilinear",
) -> Response:
    """Hourly PM2.5, daily mean, Korean grade and advisory hours at a latitude/longitude."""
    day, run, field = forecast(date, state)
    etag = f'"run-{run.id}-point-{lat}-{lon}-{method}"'
    if (cached := not_modified(request, etag)) is not None:
        return cached
    body = {"run": run_meta(state, run), **point_body(state, day, run, field, lat, lon, method)}
    return JSONResponse(body, headers={"ETag": etag, "Cache-Control": CACHE_CONTROL})


class PointIn(BaseModel):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=360)
    id: str | None = Field(default=None, max_length=100)


class PointsIn(BaseModel):
    points: list[PointIn] = Field(min_length=1, max_length=MAX_POINTS)
    method: Literal["bilinear", "nearest"] = "bilinear"


@router.post("/forecasts/{date}/points", summary="Many coordinates at once")
def post_points(date: str, body: PointsIn, state: StateDep) -> dict[str, Any]:
    """The point lookup for up to 500 coordinates; points outside the grid get an error entry."""
    day, run, field = forecast(date, state)
    results = []
    for p in body.points:
        try:
            results.append(point_body(state, day, run, field, p.lat, p.lon, body.method, p.id))
        except Problem as exc:
            results.append({"lat": p.lat, "lon": p.lon, "id": p.id, "error": exc.detail})
    return {"run": run_meta(state, run), "count": len(results), "results": results}


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
def get_stations_forecast(
    date: str,
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
    names; ``bom=false`` leaves it out), one row per station; its columns say their units and
    time zone: ``h00_kst_ug_m3`` .. ``h23_kst_ug_m3`` are the hours 00:00-23:00 KST of the
    target date.
    """
    day, run, field = forecast(date, state)
    etag = f'"run-{run.id}-stations-{format}{"-bom" if format == "csv" and bom else ""}"'
    if (cached := not_modified(request, etag)) is not None:
        return cached
    rows = station_rows(state, day, field)
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL, "X-Run-Id": str(run.id)}
    if format == "csv":
        headers["Content-Disposition"] = f'attachment; filename="pm25_stations_{day:%Y%m%d}.csv"'
        return Response(
            stations_csv(day, rows, bom=bom),
            media_type="text/csv; charset=utf-8",
            headers=headers,
        )
    body = {
        "run": run_meta(state, run),
        "valid_times": [t.isoformat() for t in valid_times_kst(day)],
        "units": "ug/m3",
        "count": len(rows),
        "stations": rows,
    }
    return JSONResponse(body, headers=headers)


def stations_csv(day: dt.date, rows: list[dict[str, Any]], *, bom: bool) -> bytes:
    """The station forecasts as CSV for spreadsheets: units and time zone in the column names."""
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
            ]
        )
    return ("\ufeff" if bom else "").encode() + buf.getvalue().encode("utf-8")


@router.get("/stations", summary="The AirKorea station catalogue")
def get_stations(state: StateDep) -> dict[str, Any]:
    """All 657 stations, with whether each lies inside the forecast grid and its cell."""
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
    return {
        "count": len(out),
        "source": "AirKorea (Korea Environment Corporation) open data",
        "stations": out,
    }


@router.get("/stations/{code}/forecast", summary="The forecast at one station")
def get_station_forecast(
    code: str, state: StateDep, date: Annotated[str, Query()] = "latest"
) -> dict[str, Any]:
    """The forecast at a station by its 6-digit code (or its name, for stations without one)."""
    station = next((s for s in state.stations if code in (s.code, s.name)), None)
    if station is None:
        raise Problem(404, "Unknown station", f"no station with code or name {code!r}")
    if state.station_cells.get(station.code or station.name) is None:
        raise Problem(422, "Outside the grid", f"station {code} lies outside the forecast grid")
    day, run, field = forecast(date, state)
    body = point_body(state, day, run, field, station.lat, station.lon, "bilinear")
    return {
        "run": run_meta(state, run),
        "station": {
            "station_code": station.code or None,
            "station_name": station.name,
            "sido": station.sido,
            "network": station.network,
        },
        **body,
    }
