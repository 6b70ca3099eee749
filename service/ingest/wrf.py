"""WRF reader: ``wrfout`` files -> the six weather features on the service grid for KST day D.

Steps, as WRF's own post-processing does them (FORMATS.md): pick the 25 hourly records UTC
D-1 14:00 .. D 14:00 (the first only to de-accumulate rain), derive temperature, relative
humidity, earth-relative wind and hourly precipitation on the WRF grid, then map them onto
the service grid: an exact window where the cells align, bilinear in projected coordinates
otherwise. Wind speed and direction are computed after mapping, from the mapped u/v, so that
direction (a circular quantity) is never averaged.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from pyproj import CRS, Transformer

from service.errors import (
    BadValueError,
    DomainCoverageError,
    GridMismatchError,
    MissingInputError,
    TimeCoverageError,
)
from service.features import (
    HUMIDITY,
    PRECIPITATION,
    PRESSURE,
    TEMPERATURE,
    WIND_DIRECTION,
    WIND_SPEED,
    WRF_FEATURES,
)
from service.formats.netcdf import check_complete, open_dataset, read_variable
from service.formats.wrfout import (
    MAP_PROJ_NAMES,
    cone_factor,
    parse_wrf_time,
    read_times,
    wrf_crs,
)
from service.grid import Grid
from service.ingest.common import (
    FileRecord,
    SourceFields,
    file_record,
    forecast_hours,
    to_dataset,
    validate_values,
)

F32 = npt.NDArray[np.float32]
REQUIRED = ("T2", "Q2", "PSFC", "U10", "V10", "RAINC", "RAINNC")


@dataclass
class WrfRecords:
    """Raw surface variables of selected wrfout records, on the WRF grid.

    Attributes
    ----------
    path
        The file (or a description of the files) for messages.
    times
        UTC valid time of each record.
    attrs
        Global attributes of the first file.
    xlat, xlong
        Cell-centre coordinates of the first record, ``(south_north, west_east)``.
    crs
        The WRF map projection.
    init_times
        ``SIMULATION_START_DATE`` (or ``START_DATE``) of each file, in the order given.
    variables
        ``(record, south_north, west_east)`` arrays of T2, Q2, PSFC, U10, V10, RAINC, RAINNC
        and, when present, SINALPHA, COSALPHA, I_RAINC, I_RAINNC.
    """

    path: str
    times: list[dt.datetime]
    attrs: dict[str, object]
    xlat: F32
    xlong: F32
    crs: CRS
    variables: dict[str, F32] = field(default_factory=dict)
    init_times: list[dt.datetime | None] = field(default_factory=list)


def read_wrf_records(
    paths: Sequence[str | Path], times: Sequence[dt.datetime] | None = None
) -> WrfRecords:
    """Read the surface variables of some (or all) records of one or more wrfout files.

    Parameters
    ----------
    paths
        wrfout files; where two hold the same time, the later in the list wins.
    times
        UTC times to read, in order; ``None`` reads every record of every file.

    Raises
    ------
    InputFileError
        A subclass naming the file and the problem.
    """
    if not paths:
        raise MissingInputError("wrf", "no wrfout files given")
    where: dict[dt.datetime, tuple[int, int]] = {}
    spans = []
    init_times: list[dt.datetime | None] = []
    for fi, path in enumerate(paths):
        ds = open_dataset(path)
        try:
            check_complete(ds, path)
            file_times = read_times(ds, path)
            repeated = [t for t, n in Counter(file_times).items() if n > 1]
            if repeated:
                raise TimeCoverageError(path, f"time {repeated[0]:%Y-%m-%d_%H:%M:%S} appears twice")
            if fi == 0:
                crs = wrf_crs(ds, path)
                attrs = {k: ds.getncattr(k) for k in ds.ncattrs()}
                xlat = read_variable(ds, path, "XLAT", (0,)).astype(np.float32)
                xlong = read_variable(ds, path, "XLONG", (0,)).astype(np.float32)
            name = Path(path).name
            spans.append(
                f"{name}: {file_times[0]:%Y-%m-%d %H:%M}..{file_times[-1]:%Y-%m-%d %H:%M} UTC"
                if file_times
                else f"{name}: no records"
            )
            for k, t in enumerate(file_times):
                where[t] = (fi, k)
            init_times.append(_start_time(ds, path))
        finally:
            ds.close()
    label = (
        str(paths[0]) if len(paths) == 1 else f"{len(paths)} wrfout files ({Path(paths[0]).parent})"
    )
    wanted = list(times) if times is not None else sorted(where)
    missing = [t for t in wanted if t not in where]
    if missing and len(missing) == len(wanted):
        raise TimeCoverageError(
            label,
            f"wrong dates: needed {wanted[0]:%Y-%m-%d %H:%M}..{wanted[-1]:%Y-%m-%d %H:%M} UTC, "
            "the files hold " + "; ".join(spans),
        )
    if missing:
        shown = ", ".join(f"{t:%Y-%m-%d %H:%M}" for t in missing[:6])
        raise TimeCoverageError(
            label,
            f"{len(missing)} of the {len(wanted)} hourly records needed are missing: "
            f"{shown} UTC" + (" ..." if len(missing) > 6 else ""),
        )
    ny, nx = xlat.shape
    out: dict[str, F32] = {}
    for fi, path in enumerate(paths):
        picks = [(k, where[t][1]) for k, t in enumerate(wanted) if where[t][0] == fi]
        if not picks:
            continue
        ds = open_dataset(path)
        try:
            names = [
                n
                for n in (*REQUIRED, "SINALPHA", "COSALPHA", "I_RAINC", "I_RAINNC")
                if n in REQUIRED or n in ds.variables
            ]
            recs = [r for _, r in picks]
            r0, r1 = min(recs), max(recs) + 1
            for name in names:
                block = read_variable(ds, path, name, (slice(r0, r1),))
                if block.shape[-2:] != (ny, nx):
                    raise GridMismatchError(
                        path,
                        f"{name} is {block.shape[-2:]} but the first file's grid is {(ny, nx)}",
                    )
                arr = out.setdefault(name, np.empty((len(wanted), ny, nx), np.float32))
                for k, r in picks:
                    arr[k] = block[r - r0]
        finally:
            ds.close()
    for name, arr in out.items():
        if not np.isfinite(arr).all():
            k = int(np.argwhere(~np.isfinite(arr))[0][0])
            raise BadValueError(
                label, f"{name} has NaN or infinite values at {wanted[k]:%Y-%m-%d %H:%M} UTC"
            )
    return WrfRecords(label, wanted, attrs, xlat, xlong, crs, out, init_times)


def _start_time(ds: Any, path: str | Path) -> dt.datetime | None:
    """The model run's start from the global attributes, or ``None`` if the file has none."""
    start = ds.__dict__.get("SIMULATION_START_DATE") or ds.__dict__.get("START_DATE")
    if not start:
        return None
    try:
        return parse_wrf_time(str(start))
    except ValueError:
        raise TimeCoverageError(
            path, f"SIMULATION_START_DATE {start!r} is not a WRF time"
        ) from None


def hourly_precipitation(records: WrfRecords) -> F32:
    """Precipitation between consecutive records (mm), for records ``1..n-1``.

    The accumulation is ``RAINC + RAINNC`` plus ``BUCKET_MM * (I_RAINC + I_RAINNC)`` when
    the bucket counters are in use. Differences below zero (restarts, moving nests) are
    clipped to zero.
    """
    v = records.variables
    total = v["RAINC"].astype(np.float64) + v["RAINNC"]
    bucket = float(np.asarray(records.attrs.get("BUCKET_MM", -1.0)).ravel()[0])
    if bucket > 0 and "I_RAINC" in v and "I_RAINNC" in v:
        total = total + bucket * (v["I_RAINC"].astype(np.float64) + v["I_RAINNC"])
    return np.clip(np.diff(total, axis=0), 0.0, None).astype(np.float32)


def relative_humidity(t2: F32, q2: F32, psfc: F32) -> F32:
    """2 m relative humidity (%) from T2 (K), Q2 (kg/kg) and PSFC (Pa), as WRF computes it."""
    t2 = t2.astype(np.float64)
    es = 6.112 * np.exp(17.67 * (t2 - 273.15) / (t2 - 29.65))
    qvs = 0.622 * es / (0.01 * psfc - 0.378 * es)
    return (100.0 * np.clip(np.maximum(q2, 0.0) / qvs, 0.0, 1.0)).astype(np.float32)


def earth_relative_wind(records: WrfRecords) -> tuple[F32, F32]:
    """Rotate grid-relative U10/V10 to earth-relative u (east) and v (north), m/s.

    Uses SINALPHA/COSALPHA when the file has them; otherwise, for Lambert and polar
    stereographic grids, the cone formula; Mercator and lat-lon grids need no rotation.
    """
    v = records.variables
    u10, v10 = v["U10"].astype(np.float64), v["V10"].astype(np.float64)
    if "SINALPHA" in v and "COSALPHA" in v:
        sina, cosa = v["SINALPHA"], v["COSALPHA"]
        return (u10 * cosa - v10 * sina).astype(np.float32), (v10 * cosa + u10 * sina).astype(
            np.float32
        )
    proj = int(np.asarray(records.attrs["MAP_PROJ"]).ravel()[0])
    if proj not in (1, 2):
        return u10.astype(np.float32), v10.astype(np.float32)
    lat1 = float(np.asarray(records.attrs["TRUELAT1"]).ravel()[0])
    lat2 = float(np.asarray(records.attrs.get("TRUELAT2", lat1)).ravel()[0])
    lon0 = float(np.asarray(records.attrs["STAND_LON"]).ravel()[0])
    cone = cone_factor(lat1, lat2) if proj == 1 else 1.0
    diff = (records.xlong.astype(np.float64) - lon0 + 180.0) % 360.0 - 180.0
    alpha = np.radians(diff * cone)
    sina, cosa = np.sin(alpha), np.cos(alpha)
    return (v10 * sina + u10 * cosa).astype(np.float32), (v10 * cosa - u10 * sina).astype(
        np.float32
    )


def wind_speed_direction(u: F32, v: F32) -> tuple[F32, F32]:
    """Speed (m/s) and meteorological direction (degrees the wind comes from, 0..360)."""
    speed = np.hypot(u, v)
    direction = np.mod(270.0 - np.degrees(np.arctan2(v, u)), 360.0)
    return speed.astype(np.float32), direction.astype(np.float32)


def derive_weather(records: WrfRecords) -> dict[str, F32]:
    """Derive the weather features on the WRF grid for records ``1..n-1``.

    Returns temperature (C), pressure (Pa), humidity (%), precipitation (mm in the hour ending
    at the record) and earth-relative ``u``/``v`` (m/s); speed and direction are computed
    after mapping onto the service grid.
    """
    v = records.variables
    t2, q2, psfc = v["T2"][1:], v["Q2"][1:], v["PSFC"][1:]
    u, vv = earth_relative_wind(records)
    return {
        TEMPERATURE.name: (t2 - np.float32(273.15)).astype(np.float32),
        PRECIPITATION.name: hourly_precipitation(records),
        HUMIDITY.name: relative_humidity(t2, q2, psfc),
        PRESSURE.name: psfc.astype(np.float32),
        "u": u[1:],
        "v": vv[1:],
    }


@dataclass(frozen=True)
class GridMapping:
    """Where each service cell lies in a WRF grid: integer cells or bilinear weights."""

    rows: npt.NDArray[np.intp]
    cols: npt.NDArray[np.intp]
    wy: npt.NDArray[np.float32]
    wx: npt.NDArray[np.float32]
    exact: bool

    def apply(self, field: F32) -> F32:
        """Map ``(..., south_north, west_east)`` onto ``(..., nrows, ncols)``."""
        r, c = self.rows, self.cols
        if self.exact:
            return np.ascontiguousarray(field[..., r, c])
        wy, wx = self.wy, self.wx
        return (
            field[..., r, c] * (1 - wy) * (1 - wx)
            + field[..., r, c + 1] * (1 - wy) * wx
            + field[..., r + 1, c] * wy * (1 - wx)
            + field[..., r + 1, c + 1] * wy * wx
        ).astype(np.float32)


def map_to_grid(records: WrfRecords, grid: Grid) -> GridMapping:
    """Locate the service cell centres in the WRF grid.

    The WRF grid's position is taken from XLAT/XLONG projected with the file's own map
    projection; they must form a regular grid there (this checks the projection attributes).

    Raises
    ------
    GridMismatchError
        XLAT/XLONG do not form a regular grid in the stated projection.
    DomainCoverageError
        Some service cells fall outside the WRF domain.
    """
    ny, nx = records.xlat.shape
    path = records.path
    to_wrf = Transformer.from_crs(records.crs.geodetic_crs, records.crs, always_xy=True)
    wx_, wy_ = to_wrf.transform(records.xlong.astype(np.float64), records.xlat.astype(np.float64))
    wx_, wy_ = np.asarray(wx_), np.asarray(wy_)
    if records.crs.is_geographic:
        wx_ = np.where(wx_ < 0, wx_ + 360.0, wx_)
    ii, jj = np.meshgrid(np.arange(nx), np.arange(ny))
    dx = float(np.median(np.diff(wx_, axis=1))) if nx > 1 else 1.0
    dy = float(np.median(np.diff(wy_, axis=0))) if ny > 1 else 1.0
    x0 = float(np.mean(wx_ - ii * dx))
    y0 = float(np.mean(wy_ - jj * dy))
    err = max(np.abs(wx_ - (x0 + ii * dx)).max(), np.abs(wy_ - (y0 + jj * dy)).max())
    proj = int(np.asarray(records.attrs.get("MAP_PROJ", 0)).ravel()[0])
    pname = MAP_PROJ_NAMES.get(proj, str(proj))
    if err > 0.05 * min(abs(dx), abs(dy)):
        raise GridMismatchError(
            path,
            f"XLAT/XLONG are not a regular grid in the {pname} projection the attributes "
            f"describe (off by up to {err:.0f} of a {abs(dx):.0f} spacing): wrong map attributes?",
        )
    lon_c, lat_c = grid.centre_lonlat
    sx, sy = to_wrf.transform(lon_c, lat_c)
    sx = np.asarray(sx)
    if records.crs.is_geographic:
        sx = np.where(sx < 0, sx + 360.0, sx)
    fc = (sx - x0) / dx
    fr = (np.asarray(sy) - y0) / dy
    eps = 1e-3
    inside = (fc >= -eps) & (fc <= nx - 1 + eps) & (fr >= -eps) & (fr <= ny - 1 + eps)
    if not inside.all():
        raise DomainCoverageError(
            path,
            f"the WRF domain ({pname}, {nx} x {ny} cells, lat {records.xlat.min():.1f}.."
            f"{records.xlat.max():.1f}, lon {records.xlong.min():.1f}..{records.xlong.max():.1f}) "
            f"does not cover the service grid (lat {lat_c.min():.1f}..{lat_c.max():.1f}, "
            f"lon {lon_c.min():.1f}..{lon_c.max():.1f}): {int((~inside).sum())} of "
            f"{inside.size} service cells fall outside",
        )
    fc = np.clip(fc, 0, nx - 1)
    fr = np.clip(fr, 0, ny - 1)
    rc, cc = np.rint(fr), np.rint(fc)
    if np.abs(fr - rc).max() < eps and np.abs(fc - cc).max() < eps:
        z = np.zeros(fr.shape, np.float32)
        return GridMapping(rc.astype(np.intp), cc.astype(np.intp), z, z, exact=True)
    r = np.minimum(np.floor(fr), ny - 2).astype(np.intp)
    c = np.minimum(np.floor(fc), nx - 2).astype(np.intp)
    return GridMapping(r, c, (fr - r).astype(np.float32), (fc - c).astype(np.float32), exact=False)


def wrf_hours(date: dt.date) -> list[dt.datetime]:
    """The 25 UTC record times the WRF reader needs for KST day ``date``."""
    hours = forecast_hours(date)
    return [hours[0] - dt.timedelta(hours=1), *hours]


def read_wrf(paths: Sequence[str | Path], date: dt.date, grid: Grid) -> SourceFields:
    """Read the six weather features for KST day ``date`` on the service grid.

    Parameters
    ----------
    paths
        wrfout files holding the hourly records UTC ``D-1 14:00 .. D 14:00``.
    date
        The target day D (KST).
    grid
        The service grid.

    Returns
    -------
    SourceFields
        ``(24, nrows, ncols)`` fields ``temperature, precipitation, humidity,
        wind_direction, wind_speed, pressure`` and provenance.

    Raises
    ------
    InputFileError
        A subclass naming the file and the problem. The domain is checked before the dates,
        so a file for the wrong region says so even when its dates are also wrong.
    """
    if not paths:
        raise MissingInputError("wrf", "no wrfout files given")
    header_only = read_wrf_records(paths[:1], [])
    map_to_grid(header_only, grid)
    needed = wrf_hours(date)
    records = read_wrf_records(paths, needed)
    mapping = map_to_grid(records, grid)
    derived = {k: mapping.apply(v) for k, v in derive_weather(records).items()}
    speed, direction = wind_speed_direction(derived.pop("u"), derived.pop("v"))
    derived[WIND_SPEED.name] = speed
    derived[WIND_DIRECTION.name] = direction
    fields = {f.name: derived[f.name] for f in WRF_FEATURES}
    hours = needed[1:]
    for f in WRF_FEATURES:
        validate_values(fields[f.name], f, records.path, hours)
    files = [
        file_record(path, "wrf", init) for path, init in zip(paths, records.init_times, strict=True)
    ]
    return SourceFields(
        to_dataset(fields, hours, {f.name: f for f in WRF_FEATURES}, "wrf"), tuple(files)
    )


__all__ = [
    "FileRecord",
    "GridMapping",
    "WrfRecords",
    "derive_weather",
    "earth_relative_wind",
    "hourly_precipitation",
    "map_to_grid",
    "read_wrf",
    "read_wrf_records",
    "relative_humidity",
    "wind_speed_direction",
    "wrf_hours",
]
