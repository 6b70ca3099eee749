"""OGC API - EDR 1.1 routes beside ``/v1``: the forecast as a collection, each run an instance.

The queries (position, radius, area, cube, locations) read the same published fields as
``/v1`` and take point values with the same :func:`service.api.selection.select_point`, so
their numbers equal ``/v1``'s. Like ``/v1``, the event loop only routes: dates resolve from
the cache or in a thread, and each answer is rendered once per (run, query) in a CPU worker
thread and kept. Errors are RFC 9457 problem documents (400 for a query the server cannot
answer, 404 for an unknown collection, instance or location).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
from collections.abc import Callable
from typing import Annotated, Any

import anyio
import numpy as np
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from sqlalchemy import select

from service.api import edr_documents as docs
from service.api.deps import AppState, FiniteFloat, Problem, StateDep, clip, iso_date
from service.api.forecasts import (
    CACHE_CONTROL,
    MAX_POINTS,
    Payload,
    dumps,
    netcdf_attributes,
    not_modified,
    rendered,
    resolve,
    reuse_answer,
    run_meta,
    selection,
)
from service.api.render import to_netcdf
from service.api.selection import OutsideGridError
from service.storage.tables import ModelRecord, Publication, Run
from service.timeaxis import KST, valid_times_kst

router = APIRouter(prefix="/edr", tags=["OGC API - EDR"])
EARTH_RADIUS_KM = 6370.0  # the sphere of the grid (and of selection's distances)
MAX_RADIUS_KM = 1000.0
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_PAIR = re.compile(rf"\s*({_NUMBER})\s+({_NUMBER})(?:\s+{_NUMBER})?\s*")
_HAS_TIME = re.compile(r"[0-9][Tt ][0-9]")
_WKT = re.compile(r"\s*(POINT|MULTIPOINT|POLYGON)\s*(?:Z\s*)?\((.*)\)\s*", re.IGNORECASE | re.S)
_FORMATS = {
    "coveragejson": "CoverageJSON",
    "covjson": "CoverageJSON",
    "json": "CoverageJSON",
    "geojson": "GeoJSON",
    "netcdf": "NetCDF",
    "nc": "NetCDF",
}

CollectionId = Annotated[str, Path(max_length=64, description="the collection: pm25-forecast")]
InstanceId = Annotated[
    str,
    Path(
        max_length=10,
        description="a published daily run: its target date, YYYY-MM-DD, or 'latest'",
    ),
]
Coords = Annotated[
    str,
    Query(
        max_length=6000,
        description="Well-known text, longitude first: POINT(lon lat) or MULTIPOINT((lon lat),...)",
    ),
]
Datetime = Annotated[
    str | None,
    Query(
        max_length=100,
        description=(
            "An instant or an interval (start/end, '..' open) in ISO 8601; without an offset, "
            "KST (+09:00). Selects among the run's 24 valid hours."
        ),
    ),
]
ParameterName = Annotated[
    str | None, Query(alias="parameter-name", max_length=100, description="pm25 (the only one)")
]
Crs = Annotated[str | None, Query(max_length=100, description="CRS84 (the only one served)")]
Fmt = Annotated[
    str | None, Query(max_length=20, description="CoverageJSON (default), GeoJSON or NetCDF")
]
Method = Annotated[
    str | None,
    Query(max_length=20, description="Point values: bilinear (default) or nearest (as /v1)"),
]
Interpolation = Annotated[
    str | None, Query(alias="interpolation", max_length=20, description="The same as method")
]


def bad(detail: str, **extra: Any) -> Problem:
    return Problem(400, "Invalid EDR query", detail, **extra)


def edr_base(request: Request) -> str:
    return f"{str(request.base_url).rstrip('/')}{router.prefix}"


def json_response(model: Any, media_type: str = "application/json") -> Response:
    body = dumps(docs.dump(model))
    return Response(body, media_type=media_type, headers={"Cache-Control": CACHE_CONTROL})


def published_dates(state: AppState) -> list[dt.date]:
    """Every target date with a published forecast, oldest first."""
    with state.sessions() as s:
        return list(s.scalars(select(Publication.target_date).order_by(Publication.target_date)))


def synthetic_dates(state: AppState) -> list[dt.date]:
    """The published target dates whose model was trained on SYNTHETIC data, oldest first."""
    with state.sessions() as s:
        return list(
            s.scalars(
                select(Publication.target_date)
                .join(Run, Publication.run_id == Run.id)
                .join(ModelRecord, Run.model_id == ModelRecord.id)
                .where(ModelRecord.synthetic.is_(True))
                .order_by(Publication.target_date)
            )
        )


def catalogue(state: AppState) -> tuple[list[dt.date], list[dt.date]]:
    """:func:`published_dates` and :func:`synthetic_dates`, in one worker thread hop."""
    return published_dates(state), synthetic_dates(state)


def check_collection(collection_id: str) -> None:
    if collection_id != docs.COLLECTION_ID:
        raise Problem(
            404,
            "Unknown collection",
            f"no collection {clip(collection_id)!r}; there is {docs.COLLECTION_ID!r}",
        )


def check_instance(instance_id: str) -> str:
    """An instance id as :func:`service.api.forecasts.resolve` takes it: a target date
    ``YYYY-MM-DD`` or ``latest`` (the newest published run, as ``/v1``'s ``latest``).

    Raises
    ------
    Problem
        404 for anything else (``today``, ``20240109``, ``2024-13-45``), saying what ids are.
    """
    if instance_id == "latest":
        return instance_id
    try:
        iso_date(instance_id)
    except ValueError:
        raise Problem(
            404,
            "Unknown instance",
            f"no instance {clip(instance_id)!r}: ids are the target dates of published runs, "
            "YYYY-MM-DD (see .../instances), or 'latest' for the newest",
        ) from None
    return instance_id


# --- parameters ----------------------------------------------------------------------------


def output_format(f: str | None, query: str) -> str:
    allowed = docs.QUERY_FORMATS[query]
    if f is None:
        return allowed[0]
    name = _FORMATS.get(f.lower())
    if name not in allowed:
        raise bad(f"f={clip(f)!r} is not served for {query}; use one of {', '.join(allowed)}")
    return name


def check_common(crs: str | None, parameter_name: str | None) -> None:
    if crs is not None and crs.strip() not in docs.CRS84_NAMES:
        raise bad(f"crs={clip(crs)!r} is not served; the only CRS is CRS84 (lon, lat)")
    if parameter_name is not None:
        names = {p.strip() for p in parameter_name.split(",")}
        if names != {docs.PARAMETER}:
            raise bad(f"parameter-name={clip(parameter_name)!r}: the only parameter is pm25")


def interpolation(method: str | None, interp: str | None) -> str:
    chosen = {m for m in (method, interp) if m is not None}
    if len(chosen) > 1:
        raise bad("method and interpolation disagree; give one")
    value = chosen.pop() if chosen else "bilinear"
    if value not in ("bilinear", "nearest"):
        raise bad(f"interpolation {clip(value)!r} is not served; use bilinear or nearest")
    return value


def _instant(text: str) -> dt.datetime:
    """An RFC 3339 date-time; without an offset, KST.

    A date alone (``2026-12-07``) is refused, not read as its midnight: EDR's ``datetime`` is
    a date-time, and the whole KST day is the interval ``D T00:00+09:00/D T23:00+09:00``.
    """
    if not _HAS_TIME.search(text):
        day = text.strip()
        raise bad(
            f"datetime {clip(text)!r} has no time of day: give an instant "
            f"({clip(day, 20)}T12:00:00+09:00) or, for the whole KST day, the interval "
            f"{clip(day, 20)}T00:00:00+09:00/{clip(day, 20)}T23:00:00+09:00"
        )
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise bad(f"datetime {clip(text)!r} is not ISO 8601") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=KST)


def hours_of(text: str | None, day: dt.date) -> list[int]:
    """The valid hours (0-23) of ``day`` that ``datetime`` (instant or interval) selects."""
    times = valid_times_kst(day)
    if text is None:
        return list(range(24))
    if "/" in text:
        a, b = text.split("/", 1)
        start = None if a.strip() in ("", "..") else _instant(a)
        end = None if b.strip() in ("", "..") else _instant(b)
        if start is not None and end is not None and start > end:
            raise bad(f"datetime {clip(text)!r}: the interval ends before it starts")
        hours = [
            h
            for h, t in enumerate(times)
            if (start is None or t >= start) and (end is None or t <= end)
        ]
    else:
        at = _instant(text)
        hours = [h for h, t in enumerate(times) if t == at]
    if not hours:
        raise bad(
            f"datetime {clip(text)!r} selects none of the forecast's valid hours "
            f"{times[0].isoformat()} to {times[-1].isoformat()} (hourly)",
        )
    return hours


def _pairs(body: str) -> list[tuple[float, float]]:
    out = []
    for item in body.split(","):
        m = _PAIR.fullmatch(item.strip().strip("()"))
        if m is None:
            raise bad(f"coords: {clip(item.strip())!r} is not 'lon lat'")
        lon, lat = float(m.group(1)), float(m.group(2))
        if not (
            math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 360 and -90 <= lat <= 90
        ):
            raise bad(f"coords: ({lon} {lat}) is not a longitude and latitude")
        out.append((lon, lat))
    return out


def parse_wkt(text: str, allowed: tuple[str, ...]) -> tuple[str, list[tuple[float, float]]]:
    """The kind and the (lon, lat) points of a WKT POINT, MULTIPOINT or POLYGON (outer ring)."""
    m = _WKT.fullmatch(text)
    if m is None or m.group(1).upper() not in allowed:
        raise bad(f"coords must be well-known text {' or '.join(allowed)}, not {clip(text)!r}")
    kind, body = m.group(1).upper(), m.group(2)
    if kind == "POLYGON":
        ring = re.fullmatch(r"\s*\(([^()]*)\)\s*", body)
        if ring is None:
            raise bad("coords: a POLYGON of one ring, POLYGON((lon lat, ...)), without holes")
        points = _pairs(ring.group(1))
        if len(set(points)) < 3:
            raise bad("coords: a POLYGON needs at least three distinct corners")
        return kind, points
    points = _pairs(body)
    if kind == "POINT" and len(points) != 1:
        raise bad("coords: a POINT has one longitude and latitude")
    if len(points) > MAX_POINTS:
        raise bad(f"coords: at most {MAX_POINTS} points")
    return kind, points


def inside_polygon(lon: Any, lat: Any, ring: list[tuple[float, float]]) -> Any:
    """Whether each (lon, lat) lies inside ``ring`` (even-odd rule), as a boolean array."""
    inside = np.zeros(np.shape(lon), bool)
    for (x1, y1), (x2, y2) in zip(ring, ring[1:] + ring[:1], strict=True):
        if y1 == y2:
            continue
        crosses = (lat >= min(y1, y2)) & (lat < max(y1, y2))
        x_at = x1 + (lat - y1) * (x2 - x1) / (y2 - y1)
        inside ^= crosses & (lon < x_at)
    return inside


def distance_km(lon: Any, lat: Any, lon0: float, lat0: float) -> Any:
    p1, p2 = np.radians(lat0), np.radians(lat)
    dp, dl = p2 - p1, np.radians(lon - lon0)
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(a))


# --- metadata ------------------------------------------------------------------------------


@router.get("", summary="EDR landing page")
async def landing(request: Request, state: StateDep) -> Response:
    """The OGC API - EDR landing page: links to conformance, collections and the API docs;
    its description says SYNTHETIC when a published forecast's model was trained on it."""
    synthetic = await anyio.to_thread.run_sync(synthetic_dates, state)
    return json_response(docs.landing_page(edr_base(request), synthetic=bool(synthetic)))


@router.get("/conformance", summary="EDR conformance classes")
async def conformance() -> Response:
    return json_response(docs.conformance())


@router.get("/collections", summary="EDR collections: the PM2.5 forecast")
async def collections(request: Request, state: StateDep) -> Response:
    dates, synthetic = await anyio.to_thread.run_sync(catalogue, state)
    body = docs.collections(
        edr_base(request), state.grid, dates, valid_times_kst, synthetic=bool(synthetic)
    )
    return json_response(body)


@router.get("/collections/{collection_id}", summary="The PM2.5 forecast collection")
async def collection(collection_id: CollectionId, request: Request, state: StateDep) -> Response:
    check_collection(collection_id)
    dates, synthetic = await anyio.to_thread.run_sync(catalogue, state)
    body = docs.collection(
        edr_base(request), state.grid, dates, valid_times_kst, synthetic=bool(synthetic)
    )
    return json_response(body)


@router.get("/collections/{collection_id}/instances", summary="Published daily runs")
async def instances(collection_id: CollectionId, request: Request, state: StateDep) -> Response:
    """One instance per published daily run, its id the target date (newest first)."""
    check_collection(collection_id)
    dates, synthetic = await anyio.to_thread.run_sync(catalogue, state)
    body = docs.instances(edr_base(request), state.grid, dates, valid_times_kst, synthetic)
    return json_response(body)


@router.get("/collections/{collection_id}/instances/{instance_id}", summary="One daily run")
async def instance(
    collection_id: CollectionId, instance_id: InstanceId, request: Request, state: StateDep
) -> Response:
    check_collection(collection_id)
    day, run, _ = await resolve(check_instance(instance_id), state)
    dates = await anyio.to_thread.run_sync(published_dates, state)
    synthetic = bool(run_meta(state, run).get("trained_on_synthetic_data"))
    body = docs.collection(
        edr_base(request), state.grid, dates, valid_times_kst, instance=day, synthetic=synthetic
    )
    return json_response(body)


# --- queries -------------------------------------------------------------------------------


async def answer(
    request: Request,
    state: StateDep,
    collection_id: str,
    instance_id: str | None,
    key: tuple[Any, ...],
    build: Callable[[dt.date, Run, Any], Payload],
    filename: str | None = None,
) -> Response:
    """Resolve the collection and run, then the cached answer for (run, ``key``)."""
    check_collection(collection_id)
    day, run, field = await resolve(
        check_instance(instance_id) if instance_id is not None else "latest", state
    )
    # the run and the query decide the answer: an ETag from both, stable across processes
    digest = hashlib.sha256(repr(key).encode()).hexdigest()[:20]
    etag = f'"run-{run.id}-edr-{digest}"'
    if (cached := not_modified(request, etag)) is not None:
        return cached
    payload = await rendered(state, ("edr", run.id, *key), lambda: build(day, run, field))
    if instance_id is not None:
        reuse_answer(request, instance_id, day, run)
    headers = {"Cache-Control": CACHE_CONTROL, "X-Run-Id": str(run.id), "ETag": etag}
    if filename is not None and payload.media_type == docs.NETCDF:
        headers["Content-Disposition"] = f'attachment; filename="{filename}_{day:%Y%m%d}.nc"'
    return payload.response(request, headers)


def covjson_payload(model: Any, media_type: str = docs.COVJSON) -> Payload:
    return Payload.json(docs.dump(model), media_type)


def point_coverage(
    state: AppState,
    day: dt.date,
    field: Any,
    lon: float,
    lat: float,
    method: str,
    hours: list[int],
    *,
    ident: str | None = None,
    standalone: bool = True,
    extra: dict[str, Any] | None = None,
) -> Any:
    """The PointSeries of a point, its values as ``/v1``'s point (rounded to 0.01 ug/m3).

    Raises
    ------
    OutsideGridError
        The point lies outside the grid.
    """
    sel = selection(state, lat, lon, method)
    values = sel.values(field)
    times = valid_times_kst(day)
    members = {
        **(extra or {}),
        "pm25:nearest_cell": {
            "row": sel.nearest.row,
            "col": sel.nearest.col,
            "lat": sel.nearest.lat,
            "lon": sel.nearest.lon,
        },
        "pm25:distance_to_nearest_cell_km": round(sel.distance_km, 3),
    }
    return docs.point_series(
        lon,
        lat,
        [times[h] for h in hours],
        [round(float(values[h]), 2) for h in hours],
        method,
        ident=ident,
        extra=members,
        standalone=standalone,
    )


def outside(lon: float, lat: float, state: AppState) -> Problem:
    bbox = docs.bbox_crs84(state.grid)
    return bad(
        f"POINT({lon} {lat}) is outside the forecast grid (South Korea, 9 km Lambert "
        f"grid; bbox {bbox} in CRS84)",
        bbox=bbox,
    )


def position_payload(
    state: AppState, day: dt.date, run: Run, field: Any, coords: str, method: str, hours: list[int]
) -> Payload:
    kind, points = parse_wkt(coords, ("POINT", "MULTIPOINT"))
    if kind == "POINT":
        lon, lat = points[0]
        try:
            cov = point_coverage(
                state, day, field, lon, lat, method, hours, extra={"pm25:run": run_meta(state, run)}
            )
        except OutsideGridError:
            raise outside(lon, lat, state) from None
        return covjson_payload(cov)
    coverages, omitted = [], []
    for lon, lat in points:
        try:
            coverages.append(
                point_coverage(
                    state,
                    day,
                    field,
                    lon,
                    lat,
                    method,
                    hours,
                    ident=f"POINT({lon} {lat})",
                    standalone=False,
                )
            )
        except OutsideGridError:
            omitted.append(f"POINT({lon} {lat})")
    if not coverages:
        raise bad(
            "every point of the MULTIPOINT is outside the forecast grid",
            bbox=docs.bbox_crs84(state.grid),
        )
    extra: dict[str, Any] = {"pm25:run": run_meta(state, run)}
    if omitted:
        extra["pm25:omitted"] = omitted
        extra["pm25:note"] = f"{len(omitted)} point(s) outside the forecast grid are left out"
    return covjson_payload(docs.point_collection(coverages, method, **extra))


def grid_payload(
    state: AppState,
    day: dt.date,
    run: Run,
    field: Any,
    mask: Any,
    hours: list[int],
    fmt: str,
    what: str,
) -> Payload:
    """Cells where ``mask`` holds as a CoverageJSON Grid, or the full grid as CF netCDF with
    the other cells NaN."""
    if not mask.any():
        raise bad(f"the {what} holds no grid cell centre (cells are 9 km apart)")
    times = [valid_times_kst(day)[h] for h in hours]
    meta = run_meta(state, run)
    if fmt == "NetCDF":
        data = np.where(mask[None], field[hours], np.nan).astype(np.float32)
        attrs = {**netcdf_attributes(meta), "edr_query": what}
        return Payload.of(to_netcdf(data, hours, times, state.grid, attrs), docs.NETCDF)
    cov = docs.grid_coverage(
        state.grid, field, hours, times, mask, **{"pm25:run": meta, "pm25:query": what}
    )
    return covjson_payload(cov)


class Common:
    """The parameters every query takes: ``datetime``, ``parameter-name``, ``crs``, ``f``."""

    def __init__(
        self,
        datetime: Datetime = None,
        parameter_name: ParameterName = None,
        crs: Crs = None,
        f: Fmt = None,
    ) -> None:
        check_common(crs, parameter_name)
        self.datetime = datetime
        self.f = f

    def format(self, query: str) -> str:
        return output_format(self.f, query)


class Interp:
    """``method`` or ``interpolation``: bilinear (default) or nearest, as ``/v1``'s point."""

    def __init__(self, method: Method = None, interpolation_: Interpolation = None) -> None:
        self.value = interpolation(method, interpolation_)


CommonDep = Annotated[Common, Depends()]
InterpDep = Annotated[Interp, Depends()]
Within = Annotated[FiniteFloat, Query(gt=0, description="the radius, in within-units")]
WithinUnits = Annotated[str, Query(alias="within-units", max_length=10, description="km or m")]
Bbox = Annotated[
    str, Query(max_length=200, description="minlon,minlat,maxlon,maxlat (CRS84, degrees)")
]
LATEST = "of the latest published run"
INSTANCE = "/collections/{collection_id}/instances/{instance_id}"


@router.get("/collections/{collection_id}/position", summary=f"EDR position {LATEST}")
async def position(
    collection_id: CollectionId,
    request: Request,
    state: StateDep,
    coords: Coords,
    common: CommonDep,
    interp: InterpDep,
) -> Response:
    """Hourly PM2.5 at a POINT (a CoverageJSON PointSeries) or a MULTIPOINT (a collection;
    points outside the grid are left out, with a note), with ``/v1``'s point values."""
    return await _position(request, state, collection_id, None, coords, common, interp.value)


@router.get(f"{INSTANCE}/position", summary="EDR position on one daily run")
async def instance_position(
    collection_id: CollectionId,
    instance_id: InstanceId,
    request: Request,
    state: StateDep,
    coords: Coords,
    common: CommonDep,
    interp: InterpDep,
) -> Response:
    """As the collection's position query, on the run of ``instance_id``."""
    return await _position(request, state, collection_id, instance_id, coords, common, interp.value)


async def _position(
    request: Request,
    state: AppState,
    collection_id: str,
    instance_id: str | None,
    coords: str,
    common: Common,
    how: str,
) -> Response:
    common.format("position")

    def build(day: dt.date, run: Run, field: Any) -> Payload:
        hours = hours_of(common.datetime, day)
        return position_payload(state, day, run, field, coords, how, hours)

    key = ("position", coords, how, common.datetime)
    return await answer(request, state, collection_id, instance_id, key, build)


@router.get("/collections/{collection_id}/radius", summary=f"EDR radius {LATEST}")
async def radius(
    collection_id: CollectionId,
    request: Request,
    state: StateDep,
    coords: Coords,
    within: Within,
    within_units: WithinUnits,
    common: CommonDep,
) -> Response:
    """The grid cells whose centres lie within a distance of a POINT (a CoverageJSON Grid)."""
    return await _radius(request, state, collection_id, None, coords, within, within_units, common)


@router.get(f"{INSTANCE}/radius", summary="EDR radius on one daily run")
async def instance_radius(
    collection_id: CollectionId,
    instance_id: InstanceId,
    request: Request,
    state: StateDep,
    coords: Coords,
    within: Within,
    within_units: WithinUnits,
    common: CommonDep,
) -> Response:
    return await _radius(
        request, state, collection_id, instance_id, coords, within, within_units, common
    )


async def _radius(
    request: Request,
    state: AppState,
    collection_id: str,
    instance_id: str | None,
    coords: str,
    within: float,
    units: str,
    common: Common,
) -> Response:
    fmt = common.format("radius")
    scale = {"km": 1.0, "m": 0.001}.get(units.strip().lower())
    if scale is None:
        raise bad(f"within-units={clip(units)!r}: use km or m")
    km = within * scale
    if not km <= MAX_RADIUS_KM:
        raise bad(f"within: at most {MAX_RADIUS_KM:g} km")
    _, points = parse_wkt(coords, ("POINT",))
    lon, lat = points[0]
    if state.grid.cell_of(lat, lon) is None:
        raise outside(lon, lat, state)

    def build(day: dt.date, run: Run, field: Any) -> Payload:
        lon_c, lat_c = state.grid.centre_lonlat
        mask = distance_km(lon_c, lat_c, lon, lat) <= km
        what = f"radius {km:g} km around POINT({lon} {lat})"
        return grid_payload(state, day, run, field, mask, hours_of(common.datetime, day), fmt, what)

    key = ("radius", lon, lat, km, common.datetime, fmt)
    return await answer(request, state, collection_id, instance_id, key, build)


@router.get("/collections/{collection_id}/area", summary=f"EDR area {LATEST}")
async def area(
    collection_id: CollectionId,
    request: Request,
    state: StateDep,
    coords: Annotated[str, Query(max_length=6000, description="POLYGON((lon lat, ...))")],
    common: CommonDep,
) -> Response:
    """The grid cells whose centres lie inside a POLYGON: a CoverageJSON Grid or CF netCDF."""
    return await _area(request, state, collection_id, None, coords, common)


@router.get(f"{INSTANCE}/area", summary="EDR area on one daily run")
async def instance_area(
    collection_id: CollectionId,
    instance_id: InstanceId,
    request: Request,
    state: StateDep,
    coords: Annotated[str, Query(max_length=6000, description="POLYGON((lon lat, ...))")],
    common: CommonDep,
) -> Response:
    return await _area(request, state, collection_id, instance_id, coords, common)


async def _area(
    request: Request,
    state: AppState,
    collection_id: str,
    instance_id: str | None,
    coords: str,
    common: Common,
) -> Response:
    fmt = common.format("area")
    _, ring = parse_wkt(coords, ("POLYGON",))

    def build(day: dt.date, run: Run, field: Any) -> Payload:
        lon_c, lat_c = state.grid.centre_lonlat
        mask = inside_polygon(lon_c, lat_c, ring)
        hours = hours_of(common.datetime, day)
        return grid_payload(state, day, run, field, mask, hours, fmt, "area POLYGON")

    key = ("area", tuple(ring), common.datetime, fmt)
    return await answer(request, state, collection_id, instance_id, key, build, "pm25_area")


@router.get("/collections/{collection_id}/cube", summary=f"EDR cube {LATEST}")
async def cube(
    collection_id: CollectionId,
    request: Request,
    state: StateDep,
    bbox: Bbox,
    common: CommonDep,
) -> Response:
    """The grid cells whose centres lie inside a lon/lat box: a CoverageJSON Grid or netCDF."""
    return await _cube(request, state, collection_id, None, bbox, common)


@router.get(f"{INSTANCE}/cube", summary="EDR cube on one daily run")
async def instance_cube(
    collection_id: CollectionId,
    instance_id: InstanceId,
    request: Request,
    state: StateDep,
    bbox: Bbox,
    common: CommonDep,
) -> Response:
    return await _cube(request, state, collection_id, instance_id, bbox, common)


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise bad(f"bbox={clip(text)!r}: give minlon,minlat,maxlon,maxlat")
    x0, y0, x1, y1 = values
    if not (x0 < x1 and y0 < y1 and y0 >= -90 and y1 <= 90):
        raise bad(f"bbox={clip(text)!r}: minimum before maximum, latitudes within -90..90")
    return x0, y0, x1, y1


async def _cube(
    request: Request,
    state: AppState,
    collection_id: str,
    instance_id: str | None,
    bbox: str,
    common: Common,
) -> Response:
    fmt = common.format("cube")
    x0, y0, x1, y1 = parse_bbox(bbox)

    def build(day: dt.date, run: Run, field: Any) -> Payload:
        lon_c, lat_c = state.grid.centre_lonlat
        mask = (lon_c >= x0) & (lon_c <= x1) & (lat_c >= y0) & (lat_c <= y1)
        what = f"cube bbox={x0},{y0},{x1},{y1}"
        return grid_payload(state, day, run, field, mask, hours_of(common.datetime, day), fmt, what)

    key = ("cube", x0, y0, x1, y1, common.datetime, fmt)
    return await answer(request, state, collection_id, instance_id, key, build, "pm25_cube")


@router.get("/collections/{collection_id}/locations", summary="EDR locations: the stations")
async def locations(
    collection_id: CollectionId, request: Request, state: StateDep, common: CommonDep
) -> Response:
    """The AirKorea stations inside the grid, as a GeoJSON FeatureCollection (``id``: the
    station code, or its name when it has none); ``f=CoverageJSON``: every station's
    bilinear PointSeries of the latest run."""
    return await _locations(request, state, collection_id, None, None, common, "bilinear")


@router.get(f"{INSTANCE}/locations", summary="EDR locations on one daily run")
async def instance_locations(
    collection_id: CollectionId,
    instance_id: InstanceId,
    request: Request,
    state: StateDep,
    common: CommonDep,
) -> Response:
    return await _locations(request, state, collection_id, instance_id, None, common, "bilinear")


LocId = Annotated[str, Path(max_length=64, description="a station code (or name without one)")]


@router.get(
    "/collections/{collection_id}/locations/{location_id}",
    summary="EDR one station's forecast",
)
async def location(
    collection_id: CollectionId,
    location_id: LocId,
    request: Request,
    state: StateDep,
    common: CommonDep,
    interp: InterpDep,
) -> Response:
    """One station's hourly PM2.5 as a CoverageJSON PointSeries (bilinear by default, as
    ``/v1/stations/{code}/forecast``)."""
    return await _locations(request, state, collection_id, None, location_id, common, interp.value)


@router.get(f"{INSTANCE}/locations/{{location_id}}", summary="EDR one station, one daily run")
async def instance_location(
    collection_id: CollectionId,
    instance_id: InstanceId,
    location_id: LocId,
    request: Request,
    state: StateDep,
    common: CommonDep,
    interp: InterpDep,
) -> Response:
    return await _locations(
        request, state, collection_id, instance_id, location_id, common, interp.value
    )


def stations_in_grid(state: AppState) -> list[Any]:
    return [s for s in state.stations if state.station_cells.get(s.code or s.name) is not None]


def locations_geojson(state: AppState) -> Payload:
    features = [
        {
            "type": "Feature",
            "id": s.code or s.name,
            "geometry": {"type": "Point", "coordinates": [s.lon, s.lat]},
            "properties": {
                "name": s.name,
                "station_code": s.code or None,
                "sido": s.sido,
                "network": s.network,
                "parameter-name": [docs.PARAMETER],
            },
        }
        for s in stations_in_grid(state)
    ]
    return Payload.json({"type": "FeatureCollection", "features": features}, docs.GEOJSON)


async def _locations(
    request: Request,
    state: AppState,
    collection_id: str,
    instance_id: str | None,
    location_id: str | None,
    common: Common,
    how: str,
) -> Response:
    if location_id is None:
        fmt = common.format("locations")
    else:
        fmt = output_format(common.f or "CoverageJSON", "position")
    if location_id is None and fmt == "GeoJSON":
        check_collection(collection_id)
        if instance_id is not None:
            await resolve(check_instance(instance_id), state)
        payload = await rendered(state, ("edr", "locations"), lambda: locations_geojson(state))
        return payload.response(request, {"Cache-Control": CACHE_CONTROL})
    station = None
    if location_id is not None:
        station = next((s for s in state.stations if location_id in (s.code, s.name)), None)
        if station is None:
            raise Problem(
                404,
                "Unknown location",
                f"no station {clip(location_id)!r}; "
                "/edr/collections/pm25-forecast/locations lists them",
            )
        if state.station_cells.get(station.code or station.name) is None:
            raise outside(station.lon, station.lat, state)

    def build(day: dt.date, run: Run, field: Any) -> Payload:
        hours = hours_of(common.datetime, day)
        meta = {"pm25:run": run_meta(state, run)}
        if station is not None:
            return covjson_payload(
                point_coverage(
                    state,
                    day,
                    field,
                    station.lon,
                    station.lat,
                    how,
                    hours,
                    ident=station.code or station.name,
                    extra={**meta, "pm25:station": station.name},
                )
            )
        coverages = [
            point_coverage(
                state,
                day,
                field,
                s.lon,
                s.lat,
                how,
                hours,
                ident=s.code or s.name,
                standalone=False,
            )
            for s in stations_in_grid(state)
        ]
        return covjson_payload(docs.point_collection(coverages, how, **meta))

    key = ("locations", location_id, how, common.datetime)
    return await answer(request, state, collection_id, instance_id, key, build)
