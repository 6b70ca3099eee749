"""WRF reader: ``wrfout`` files -> the six weather features on the service grid for KST day D.

Steps, as WRF's own post-processing does them (FORMATS.md): pick the 25 hourly records UTC
D-1 14:00 .. D 14:00 (the first only to de-accumulate rain), derive temperature, relative
humidity, earth-relative wind and hourly precipitation on the WRF grid, then map them onto
the service grid: an exact window where the cells align, bilinear in projected coordinates
otherwise. Wind speed and direction are computed after mapping, from the mapped u/v, so that
direction (a circular quantity) is never averaged.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import netCDF4
import numpy as np
import numpy.typing as npt
from pyproj import CRS, Transformer

from service.errors import (
    ConflictingInputError,
    DomainCoverageError,
    GridMismatchError,
    ImplausibleValueError,
    MissingInputError,
    TimeCoverageError,
    UnitError,
)
from service.features import (
    HUMIDITY,
    MIXING_RATIO,
    PRECIPITATION,
    PRESSURE,
    TEMPERATURE,
    WIND_DIRECTION,
    WIND_SPEED,
    WRF_FEATURES,
)
from service.formats.netcdf import (
    check_complete,
    check_variable,
    open_dataset,
    read_steps,
    read_variable,
)
from service.formats.wrfout import (
    FIELD_DIMENSIONS,
    MAP_PROJ_NAMES,
    check_layout,
    cone_factor,
    global_attr,
    parse_wrf_time,
    read_times,
    wrf_crs,
)
from service.grid import Grid
from service.ingest.common import (
    FileRecord,
    SourceFields,
    Where,
    check_missing,
    check_plausible,
    file_record,
    forecast_hours,
    on_service_grid,
    to_dataset,
)

F32 = npt.NDArray[np.float32]
REQUIRED = ("T2", "Q2", "PSFC", "U10", "V10", "RAINC", "RAINNC")
OPTIONAL = ("SINALPHA", "COSALPHA", "I_RAINC", "I_RAINNC")

#: Units each variable may declare, as ``(factor, offset)`` to WRF's own unit (K, Pa, kg/kg,
#: m/s, mm). Keys are lower case without spaces. A variable with no units attribute is taken
#: to be in WRF's own unit; the plausibility checks catch it if it is not.
_UNITS: dict[str, dict[str, tuple[float, float]]] = {
    "T2": {
        **dict.fromkeys(("k", "kelvin", "degk"), (1.0, 0.0)),
        **dict.fromkeys(("degc", "c", "°c", "celsius", "degreesc", "deg_c"), (1.0, 273.15)),
    },
    "PSFC": {
        "pa": (1.0, 0.0),
        **dict.fromkeys(("hpa", "mb", "mbar", "millibar"), (100.0, 0.0)),
        "kpa": (1000.0, 0.0),
    },
    "Q2": {
        **dict.fromkeys(("kgkg-1", "kg/kg", "kgkg**-1", "kgkg^-1", "1"), (1.0, 0.0)),
        **dict.fromkeys(("gkg-1", "g/kg", "gkg**-1", "gkg^-1"), (1e-3, 0.0)),
    },
    "U10": dict.fromkeys(("ms-1", "m/s", "ms**-1", "ms^-1"), (1.0, 0.0)),
    "V10": dict.fromkeys(("ms-1", "m/s", "ms**-1", "ms^-1"), (1.0, 0.0)),
    "RAINC": {
        **dict.fromkeys(("mm", "kgm-2", "kg/m2", "kgm**-2"), (1.0, 0.0)),
        "cm": (10.0, 0.0),
        "m": (1000.0, 0.0),
    },
}
_UNITS["RAINNC"] = _UNITS["RAINC"]
_CANONICAL = {
    "T2": "K",
    "PSFC": "Pa",
    "Q2": "kg kg-1",
    "U10": "m s-1",
    "V10": "m s-1",
    "RAINC": "mm",
    "RAINNC": "mm",
}


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


@dataclass(frozen=True)
class Window:
    """A block of a WRF grid: rows ``r0:r1`` (south_north), columns ``c0:c1`` (west_east)."""

    r0: int
    r1: int
    c0: int
    c1: int

    @property
    def index(self) -> tuple[slice, slice]:
        return slice(self.r0, self.r1), slice(self.c0, self.c1)

    @property
    def shape(self) -> tuple[int, int]:
        return self.r1 - self.r0, self.c1 - self.c0


def read_wrf_records(
    paths: Sequence[str | Path],
    times: Sequence[dt.datetime] | None = None,
    *,
    window: Window | None = None,
) -> WrfRecords:
    """Read the surface variables of some (or all) records of one or more wrfout files.

    Each file's dimensions are checked before anything is read; then only the records asked
    for, inside ``window``, are read. Values are checked per file in the file's own terms
    (NaN, infinity, units, plausibility of T2, PSFC, Q2 and the wind speed).

    Parameters
    ----------
    paths
        wrfout files of one domain. Where two hold the same time their values must agree
        (identical copies pass); otherwise :class:`ConflictingInputError` names both.
    times
        UTC times to read, in order; ``None`` reads every record of every file.
    window
        The block of the WRF grid to read (the service grid's surroundings); ``None``
        reads the whole grid.

    Raises
    ------
    InputFileError
        A subclass naming the file and the problem.
    """
    if not paths:
        raise MissingInputError("wrf", "no wrfout files given")
    files = [Path(p) for p in paths]
    holders: dict[dt.datetime, list[tuple[int, int]]] = {}
    spans = []
    init_times: list[dt.datetime | None] = []
    with contextlib.ExitStack() as stack:
        handles: list[netCDF4.Dataset] = []
        for fi, path in enumerate(files):
            ds = open_dataset(path)
            stack.callback(ds.close)
            sizes = check_layout(ds, path)
            check_complete(ds, path)
            ftimes = read_times(ds, path)
            if not ftimes:
                raise TimeCoverageError(path, "the file holds no records (dimension Time is 0)")
            repeated = [t for t, n in Counter(ftimes).items() if n > 1]
            if repeated:
                raise TimeCoverageError(path, f"time {repeated[0]:%Y-%m-%d_%H:%M:%S} appears twice")
            _check_increasing(ftimes, path)
            shape = (sizes["south_north"], sizes["west_east"])
            if fi == 0:
                crs = wrf_crs(ds, path)
                attrs = {k: ds.getncattr(k) for k in ds.ncattrs()}
                if "BUCKET_MM" in attrs:
                    global_attr(ds, path, "BUCKET_MM")
                grid_shape = shape
                box = window or Window(0, shape[0], 0, shape[1])
                xlat, xlong = _coordinates(ds, path, box, ftimes[0])
            elif shape != grid_shape:
                raise GridMismatchError(
                    path,
                    f"the grid is {shape[1]} x {shape[0]} cells, but {files[0].name}'s is "
                    f"{grid_shape[1]} x {grid_shape[0]}: files of different domains?",
                )
            else:
                _check_same_grid(ds, path, box, ftimes[0], xlat, xlong, files[0])
            spans.append(
                f"{path.name}: {ftimes[0]:%Y-%m-%d %H:%M}..{ftimes[-1]:%Y-%m-%d %H:%M} UTC"
            )
            for k, t in enumerate(ftimes):
                holders.setdefault(t, []).append((fi, k))
            init_times.append(_start_time(ds, path))
            handles.append(ds)
        label = (
            str(files[0]) if len(files) == 1 else f"{len(files)} wrfout files ({files[0].parent})"
        )
        wanted = list(times) if times is not None else sorted(holders)
        missing = [t for t in wanted if t not in holders]
        if missing and len(missing) == len(wanted):
            raise TimeCoverageError(
                label,
                f"wrong dates: needed {wanted[0]:%Y-%m-%d %H:%M}..{wanted[-1]:%Y-%m-%d %H:%M} "
                "UTC, the files hold " + "; ".join(spans),
            )
        if missing:
            shown = ", ".join(f"{t:%Y-%m-%d %H:%M}" for t in missing[:6])
            raise TimeCoverageError(
                label,
                f"{len(missing)} of the {len(wanted)} hourly records needed are missing: "
                f"{shown} UTC" + (" ..." if len(missing) > 6 else ""),
            )
        out = _read_variables(files, handles, holders, wanted, box) if wanted else {}
    return WrfRecords(label, wanted, attrs, xlat, xlong, crs, out, init_times)


def _check_increasing(times: list[dt.datetime], path: Path) -> None:
    """Raise :class:`TimeCoverageError` unless ``Times`` increases from record to record.

    Rain is differenced between consecutive records, so records out of order (two swapped,
    say) would give wrong hourly rain even though every hour is present. The step is not
    checked here (real files may be 3-hourly); the day's reader asks for each hour it needs.
    """
    for k in range(1, len(times)):
        if times[k] <= times[k - 1]:
            raise TimeCoverageError(
                path,
                f"records out of order: Times[{k}] = {times[k]:%Y-%m-%d_%H:%M:%S} comes after "
                f"Times[{k - 1}] = {times[k - 1]:%Y-%m-%d_%H:%M:%S}; times must increase",
            )


def _coordinates(
    ds: netCDF4.Dataset, path: Path, box: Window, when: dt.datetime
) -> tuple[F32, F32]:
    """XLAT and XLONG of the first record inside ``box``, checked for NaN and range.

    ``(Time, south_north, west_east)`` as WRF writes them, or ``(south_north, west_east)``
    as some post-processors leave them.
    """
    where = Where(FIELD_DIMENSIONS, [0], [when], box.r0, box.c0)
    out = []
    for name, lo_limit, hi_limit in (("XLAT", -90.0, 90.0), ("XLONG", -180.0, 360.0)):
        present = ds.variables.get(name)
        if present is not None and tuple(present.dimensions) == FIELD_DIMENSIONS[1:]:
            check_variable(ds, path, name, FIELD_DIMENSIONS[1:])
            value = read_variable(ds, path, name, box.index)[None]
        else:
            check_variable(ds, path, name, FIELD_DIMENSIONS)
            value = read_steps(ds, path, name, [0], box.index)
        check_missing(value, path, name, where)
        lo, hi = float(value.min()), float(value.max())
        if lo < lo_limit or hi > hi_limit:
            raise ImplausibleValueError(
                path,
                f"variable {name!r} ranges {lo:.4g}..{hi:.4g}, outside {lo_limit:g}..{hi_limit:g}"
                " degrees: these are not coordinates",
            )
        out.append(value[0].astype(np.float32))
    return out[0], out[1]


def _check_same_grid(
    ds: netCDF4.Dataset,
    path: Path,
    box: Window,
    when: dt.datetime,
    xlat: F32,
    xlong: F32,
    first: Path,
) -> None:
    """A later file must lie on the first file's grid (compared inside the window)."""
    lat, lon = _coordinates(ds, path, box, when)
    off = max(
        float(np.abs(lat - xlat).max()),
        float(np.abs((lon - xlong + 180.0) % 360.0 - 180.0).max()),
    )
    if off > 1e-3:
        raise GridMismatchError(
            path,
            f"XLAT/XLONG differ from {first.name}'s by up to {off:.3g} degrees: "
            "files of different domains?",
        )


def _units_of(ds: netCDF4.Dataset, path: Path, name: str) -> tuple[str, float, float]:
    """The declared units of a variable and the ``(factor, offset)`` to WRF's own unit."""
    var = ds.variables[name]
    units = var.getncattr("units") if "units" in var.ncattrs() else ""
    units = units.decode("ascii", "replace") if isinstance(units, bytes) else str(units)
    table = _UNITS.get(name)
    key = units.strip().lower().replace(" ", "")
    if table is None or not key:
        return units, 1.0, 0.0
    if key not in table:
        raise UnitError(
            path, f"variable {name!r} has units {units.strip()!r}; expected {_CANONICAL[name]!r}"
        )
    factor, offset = table[key]
    return units, factor, offset


def _read_variables(
    paths: list[Path],
    handles: list[netCDF4.Dataset],
    holders: dict[dt.datetime, list[tuple[int, int]]],
    wanted: list[dt.datetime],
    box: Window,
) -> dict[str, F32]:
    """Read the wanted records file by file, checked; records two files share must agree."""
    ny, nx = box.shape
    contributing = sorted({f for t in wanted for f, _ in holders[t]})
    optional = [n for n in OPTIONAL if all(n in handles[fi].variables for fi in contributing)]
    out = {n: np.empty((len(wanted), ny, nx), np.float32) for n in (*REQUIRED, *optional)}
    owner: list[int | None] = [None] * len(wanted)
    for fi in contributing:
        ds, path = handles[fi], paths[fi]
        picks = [(k, r) for k, t in enumerate(wanted) for f, r in holders[t] if f == fi]
        recs = [r for _, r in picks]
        where = Where(FIELD_DIMENSIONS, recs, [wanted[k] for k, _ in picks], box.r0, box.c0)
        block: dict[str, F32] = {}
        units: dict[str, str] = {}
        for name in out:
            check_variable(ds, path, name, FIELD_DIMENSIONS)
            raw = read_steps(ds, path, name, recs, box.index)
            check_missing(raw, path, name, where)
            units[name], factor, offset = _units_of(ds, path, name)
            block[name] = raw.astype(np.float32) * np.float32(factor) + np.float32(offset)
        _check_weather(block, units, path, where)
        for name, values in block.items():
            for j, (k, _) in enumerate(picks):
                first = owner[k]
                if first is None:
                    out[name][k] = values[j]
                elif not np.allclose(out[name][k], values[j], rtol=1e-5, atol=0.0):
                    diff = float(np.abs(out[name][k].astype(np.float64) - values[j]).max())
                    raise ConflictingInputError(
                        paths[first],
                        f"holds {wanted[k]:%Y-%m-%d %H:%M} UTC like {path} but with different "
                        f"values: {name} differs by up to {diff:.4g} {_CANONICAL.get(name, '')}"
                        "; which file is right is unknown, remove or fix one",
                    )
        for k, _ in picks:
            owner[k] = fi if owner[k] is None else owner[k]
    return out


def _check_weather(block: dict[str, F32], units: dict[str, str], path: Path, where: Where) -> None:
    """Plausibility of one file's T2, PSFC, Q2 and wind speed, in the features' units."""
    celsius = block["T2"] - np.float32(273.15)
    check_plausible(celsius, TEMPERATURE, path, "T2", where, units=units["T2"])
    check_plausible(block["PSFC"], PRESSURE, path, "PSFC", where, units=units["PSFC"])
    check_plausible(block["Q2"], MIXING_RATIO, path, "Q2", where, units=units["Q2"])
    speed = np.hypot(block["U10"], block["V10"])
    wind = _DERIVED_FROM[WIND_SPEED.name]
    check_plausible(speed, WIND_SPEED, path, wind, where, units=units["U10"])


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

    def window(self, shape: tuple[int, int]) -> Window:
        """The block of a ``shape`` WRF grid that holds every cell this mapping uses.

        One cell of margin on each side keeps the block's own regular-grid check and
        bilinear neighbours inside it.
        """
        ny, nx = shape
        return Window(
            max(int(self.rows.min()) - 1, 0),
            min(int(self.rows.max()) + 3, ny),
            max(int(self.cols.min()) - 1, 0),
            min(int(self.cols.max()) + 3, nx),
        )

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
    full = map_to_grid(header_only, grid)
    needed = wrf_hours(date)
    records = read_wrf_records(paths, needed, window=full.window(header_only.xlat.shape))
    mapping = map_to_grid(records, grid)
    derived = {k: mapping.apply(v) for k, v in derive_weather(records).items()}
    speed, direction = wind_speed_direction(derived.pop("u"), derived.pop("v"))
    derived[WIND_SPEED.name] = speed
    derived[WIND_DIRECTION.name] = direction
    fields = {f.name: derived[f.name] for f in WRF_FEATURES}
    hours = needed[1:]
    where = on_service_grid(hours)
    for f in WRF_FEATURES:
        check_missing(fields[f.name], records.path, _DERIVED_FROM[f.name], where)
        check_plausible(fields[f.name], f, records.path, _DERIVED_FROM[f.name], where)
    files = [
        file_record(path, "wrf", init) for path, init in zip(paths, records.init_times, strict=True)
    ]
    return SourceFields(
        to_dataset(fields, hours, {f.name: f for f in WRF_FEATURES}, "wrf"), tuple(files)
    )


#: How each feature is derived, for messages about the derived field.
_DERIVED_FROM = {
    TEMPERATURE.name: "temperature from T2",
    PRECIPITATION.name: "precipitation from hourly RAINC + RAINNC",
    HUMIDITY.name: "relative humidity from T2, Q2 and PSFC",
    WIND_DIRECTION.name: "wind direction from U10 and V10",
    WIND_SPEED.name: "wind speed from U10 and V10",
    PRESSURE.name: "pressure from PSFC",
}


__all__ = [
    "FileRecord",
    "GridMapping",
    "Window",
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
