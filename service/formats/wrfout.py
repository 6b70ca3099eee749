"""The WRF ``wrfout`` convention: Times, map projection attributes, and a writer.

Facts are from FORMATS.md and the real samples in ``../shared/data/wrf``: ``Times`` is char
``(Time, DateStrLen=19)`` in UTC; 2-D fields are float32 ``(Time, south_north, west_east)``;
``MAP_PROJ`` 1 Lambert, 2 polar stereographic, 3 Mercator, 6 lat-lon; the sphere has radius
6,370,000 m.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import netCDF4
import numpy as np
import numpy.typing as npt
from pyproj import CRS

from service.errors import (
    DimensionError,
    GridMismatchError,
    MissingVariableError,
    TimeCoverageError,
)
from service.formats.netcdf import atomic_path, check_dimensions, check_variable, read_variable

EARTH_RADIUS_M = 6_370_000.0
TIME_FORMAT = "%Y-%m-%d_%H:%M:%S"
MAP_PROJ_NAMES = {1: "Lambert conformal", 2: "polar stereographic", 3: "Mercator", 6: "lat-lon"}

#: 2-D fields are ``(Time, south_north, west_east)``.
FIELD_DIMENSIONS = ("Time", "south_north", "west_east")

#: The longest each dimension of a real file gets, checked before anything is read.
LIMITS: dict[str, tuple[int, str]] = {
    "Time": (24 * 366, "a leap year of hourly records"),
    "south_north": (4000, "a 3 km grid over all of East Asia"),
    "west_east": (4000, "a 3 km grid over all of East Asia"),
}
#: The most cells a grid may have: the reader holds a few full-grid coordinate arrays.
MAX_CELLS = 4_000_000


def check_layout(ds: netCDF4.Dataset, path: str | Path) -> dict[str, int]:
    """Check a wrfout file's dimensions before anything is read; return their lengths.

    Raises
    ------
    MissingVariableError
        ``Time``, ``DateStrLen``, ``south_north`` or ``west_east`` is absent.
    DimensionError
        A dimension longer than any real file's, a grid of more than :data:`MAX_CELLS`
        cells, or ``DateStrLen`` other than 19.
    """
    sizes = check_dimensions(ds, path, LIMITS)
    absent = [d for d in ("Time", "DateStrLen", "south_north", "west_east") if d not in sizes]
    if absent:
        raise MissingVariableError(
            path, f"dimension(s) {', '.join(absent)} missing (not a wrfout file?)"
        )
    if sizes["DateStrLen"] != 19:
        raise DimensionError(
            path, f"dimension 'DateStrLen' is {sizes['DateStrLen']}, expected 19 (WRF times)"
        )
    cells = sizes["south_north"] * sizes["west_east"]
    if cells > MAX_CELLS:
        raise DimensionError(
            path,
            f"the grid has {sizes['west_east']:,} x {sizes['south_north']:,} = {cells:,} cells, "
            f"more than the {MAX_CELLS:,} the reader accepts",
        )
    return sizes


def parse_wrf_time(text: str) -> dt.datetime:
    """Parse a WRF time string (``2024-01-08_15:00:00``) as an aware UTC datetime."""
    return dt.datetime.strptime(text.strip(), TIME_FORMAT).replace(tzinfo=dt.UTC)


def read_times(ds: netCDF4.Dataset, path: str | Path) -> list[dt.datetime]:
    """Decode ``Times`` to aware UTC datetimes (call :func:`check_layout` first).

    Raises
    ------
    MissingVariableError
        No ``Times`` variable.
    TimeCoverageError
        A time string that cannot be parsed.
    """
    if "Times" not in ds.variables:
        raise MissingVariableError(path, "variable 'Times' is missing (not a wrfout file?)")
    var = check_variable(ds, path, "Times", ("Time", "DateStrLen"), numeric=False)
    if var.dtype is str or var.dtype.kind != "S":
        raise TimeCoverageError(path, f"Times holds {var.dtype}, expected characters")
    var.set_auto_chartostring(False)
    raw: Any = read_variable(ds, path, "Times")
    strings = netCDF4.chartostring(raw)
    times = []
    for k, s in enumerate(np.atleast_1d(strings)):
        try:
            times.append(parse_wrf_time(str(s)))
        except ValueError:
            raise TimeCoverageError(path, f"Times[{k}] = {str(s)!r} is not a WRF time") from None
    return times


def global_attr(ds: netCDF4.Dataset, path: str | Path, name: str) -> float:
    """A numeric global attribute, or :class:`MissingVariableError`."""
    if name not in ds.ncattrs():
        raise MissingVariableError(path, f"global attribute {name!r} is missing")
    value = np.asarray(ds.getncattr(name)).ravel()
    if value.size == 0 or value.dtype.kind not in "fiu" or not np.isfinite(value[0]):
        raise MissingVariableError(
            path, f"global attribute {name!r} is not a number: {value.tolist()}"
        )
    return float(value[0])


def wrf_crs(ds: netCDF4.Dataset, path: str | Path) -> CRS:
    """The coordinate reference system described by a wrfout file's map attributes.

    Raises
    ------
    GridMismatchError
        A ``MAP_PROJ`` the service cannot map (rotated lat-lon, unknown codes).
    """
    proj = int(global_attr(ds, path, "MAP_PROJ"))
    lon0 = global_attr(ds, path, "STAND_LON")
    lat1 = global_attr(ds, path, "TRUELAT1")
    r = EARTH_RADIUS_M
    if proj == 1:
        lat2 = global_attr(ds, path, "TRUELAT2")
        lat0 = global_attr(ds, path, "MOAD_CEN_LAT")
        return CRS.from_proj4(
            f"+proj=lcc +lat_1={lat1:.10g} +lat_2={lat2:.10g} +lat_0={lat0:.10g} "
            f"+lon_0={lon0:.10g} +R={r:.10g} +units=m +no_defs"
        )
    if proj == 2:
        pole = 90 if lat1 >= 0 else -90
        return CRS.from_proj4(
            f"+proj=stere +lat_0={pole} +lat_ts={lat1:.10g} +lon_0={lon0:.10g} +R={r:.10g} "
            "+units=m +no_defs"
        )
    if proj == 3:
        return CRS.from_proj4(
            f"+proj=merc +lat_ts={lat1:.10g} +lon_0={lon0:.10g} +R={r:.10g} +units=m +no_defs"
        )
    if proj == 6:
        return CRS.from_proj4(f"+proj=longlat +R={r:.10g} +no_defs")
    raise GridMismatchError(path, f"MAP_PROJ={proj} is not supported (1, 2, 3 or 6 are)")


def cone_factor(lat1: float, lat2: float) -> float:
    """The Lambert cone constant WRF uses to rotate grid-relative winds."""
    p1, p2 = np.radians(abs(lat1)), np.radians(abs(lat2))
    if abs(lat1 - lat2) < 1e-6:
        return float(np.sin(p1))
    return float(
        (np.log(np.cos(p1)) - np.log(np.cos(p2)))
        / (np.log(np.tan(np.pi / 4 - p1 / 2)) - np.log(np.tan(np.pi / 4 - p2 / 2)))
    )


def write_wrfout(
    path: str | Path,
    times: Sequence[dt.datetime],
    fields: Mapping[str, npt.NDArray[np.floating]],
    attrs: Mapping[str, object],
    *,
    units: Mapping[str, str] | None = None,
) -> Path:
    """Write a surface-only ``wrfout`` file (netCDF-3 64-bit offset, like io_form 2), atomically.

    Parameters
    ----------
    path
        Target file.
    times
        UTC times of the records.
    fields
        Variables ``(Time, south_north, west_east)``: XLAT, XLONG, T2, Q2, PSFC, U10, V10,
        RAINC, RAINNC, SINALPHA, COSALPHA, ... in the order to write.
    attrs
        Global attributes (MAP_PROJ, TRUELAT1, ..., SIMULATION_START_DATE); ints are written as
        int32 and floats as float32, as WRF does.
    units
        Units per variable; WRF's own are used for the common names.
    """
    default_units = {
        "XLAT": "degree_north",
        "XLONG": "degree_east",
        "T2": "K",
        "Q2": "kg kg-1",
        "PSFC": "Pa",
        "U10": "m s-1",
        "V10": "m s-1",
        "RAINC": "mm",
        "RAINNC": "mm",
        "SINALPHA": "",
        "COSALPHA": "",
        "I_RAINC": "",
        "I_RAINNC": "",
        "XTIME": "",
    }
    descriptions = {
        "XLAT": "LATITUDE, SOUTH IS NEGATIVE",
        "XLONG": "LONGITUDE, WEST IS NEGATIVE",
        "T2": "TEMP at 2 M",
        "Q2": "QV at 2 M",
        "PSFC": "SFC PRESSURE",
        "U10": "U at 10 M",
        "V10": "V at 10 M",
        "RAINC": "ACCUMULATED TOTAL CUMULUS PRECIPITATION",
        "RAINNC": "ACCUMULATED TOTAL GRID SCALE PRECIPITATION",
        "SINALPHA": "Local sine of map rotation",
        "COSALPHA": "Local cosine of map rotation",
        "I_RAINC": "BUCKET FOR RAINC",
        "I_RAINNC": "BUCKET FOR RAINNC",
    }
    units = {**default_units, **(units or {})}
    first = np.asarray(next(iter(fields.values())))
    ny, nx = first.shape[-2:]
    with atomic_path(path) as tmp:
        ds = netCDF4.Dataset(tmp, "w", format="NETCDF3_64BIT_OFFSET")
        try:
            ds.createDimension("Time", None)
            ds.createDimension("DateStrLen", 19)
            ds.createDimension("west_east", nx)
            ds.createDimension("south_north", ny)
            for key, value in attrs.items():
                if isinstance(value, bool | int | np.integer):
                    ds.setncattr(key, np.int32(value))
                elif isinstance(value, float | np.floating):
                    ds.setncattr(key, np.float32(value))
                else:
                    ds.setncattr(key, str(value))
            tv = ds.createVariable("Times", "S1", ("Time", "DateStrLen"))
            tv[:] = netCDF4.stringtochar(
                np.array([t.astimezone(dt.UTC).strftime(TIME_FORMAT) for t in times], "S19")
            )
            for name, data in fields.items():
                arr = np.asarray(data, dtype=np.float32)
                if arr.ndim == 2:
                    arr = np.broadcast_to(arr, (len(times), ny, nx))
                v = ds.createVariable(name, "f4", ("Time", "south_north", "west_east"))
                v.setncattr("FieldType", np.int32(104))
                v.setncattr("MemoryOrder", "XY ")
                v.setncattr("description", descriptions.get(name, name))
                v.setncattr("units", units.get(name, ""))
                v.setncattr("stagger", "")
                v.setncattr(
                    "coordinates", "XLONG XLAT" if name in ("XLAT", "XLONG") else "XLONG XLAT XTIME"
                )
                v[:] = arr
        finally:
            ds.close()
    return Path(path)
