"""The Models-3 I/O API netCDF convention (CMAQ output and the analysis): header, TFLAG, writer.

Facts are from FORMATS.md: dimensions ``TSTEP, DATE-TIME, LAY, VAR, ROW, COL``; ``TFLAG``
``[YYYYDDD, HHMMSS]`` in UTC; the grid in global attributes (``GDTYP`` 2 is Lambert); fixed
width padded strings; ``BADVAL3 = -9.999E36`` for missing data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import netCDF4
import numpy as np
import numpy.typing as npt

from service.errors import MissingVariableError, TimeCoverageError
from service.formats.netcdf import atomic_path

BADVAL3 = -9.999e36
LAMBERT = 2
UTC = dt.UTC

_HEADER_INTS = ("GDTYP", "NCOLS", "NROWS", "NLAYS", "NVARS", "SDATE", "STIME", "TSTEP")
_HEADER_FLOATS = ("P_ALP", "P_BET", "P_GAM", "XCENT", "YCENT", "XORIG", "YORIG", "XCELL", "YCELL")


@dataclass(frozen=True)
class IoapiGrid:
    """The grid part of an I/O API header (Lambert, GDTYP 2)."""

    gdnam: str
    p_alp: float
    p_bet: float
    p_gam: float
    xcent: float
    ycent: float
    xorig: float
    yorig: float
    xcell: float
    ycell: float
    ncols: int
    nrows: int


@dataclass(frozen=True)
class IoapiHeader:
    """The grid and time description of an I/O API file (its global attributes)."""

    gdtyp: int
    grid: IoapiGrid
    nlays: int
    sdate: int
    stime: int
    tstep: int
    var_list: tuple[str, ...]


def _attr_str(ds: netCDF4.Dataset, name: str) -> str:
    value = ds.__dict__.get(name, "")
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return str(value).strip()


def read_header(ds: netCDF4.Dataset, path: str | Path) -> IoapiHeader:
    """Parse the I/O API global attributes, or raise :class:`MissingVariableError`."""
    attrs = ds.__dict__
    missing = [n for n in (*_HEADER_INTS, *_HEADER_FLOATS) if n not in attrs]
    if missing:
        raise MissingVariableError(
            path, f"not an I/O API file: global attribute(s) {', '.join(missing)} missing"
        )
    if "TFLAG" not in ds.variables:
        raise MissingVariableError(path, "not an I/O API file: variable 'TFLAG' is missing")
    raw_list = _attr_str(ds, "VAR-LIST")
    names = tuple(raw_list[i : i + 16].strip() for i in range(0, len(raw_list), 16))

    def _i(n: str) -> int:
        return int(np.asarray(attrs[n]).ravel()[0])

    def _f(n: str) -> float:
        return float(np.asarray(attrs[n]).ravel()[0])

    grid = IoapiGrid(
        gdnam=_attr_str(ds, "GDNAM"),
        p_alp=_f("P_ALP"),
        p_bet=_f("P_BET"),
        p_gam=_f("P_GAM"),
        xcent=_f("XCENT"),
        ycent=_f("YCENT"),
        xorig=_f("XORIG"),
        yorig=_f("YORIG"),
        xcell=_f("XCELL"),
        ycell=_f("YCELL"),
        ncols=_i("NCOLS"),
        nrows=_i("NROWS"),
    )
    return IoapiHeader(
        gdtyp=_i("GDTYP"),
        grid=grid,
        nlays=_i("NLAYS"),
        sdate=_i("SDATE"),
        stime=_i("STIME"),
        tstep=_i("TSTEP"),
        var_list=tuple(n for n in names if n),
    )


def decode_tflag(date: int, time: int) -> dt.datetime:
    """Decode one ``(YYYYDDD, HHMMSS)`` pair to an aware UTC datetime.

    >>> decode_tflag(2024366, 230000)
    datetime.datetime(2024, 12, 31, 23, 0, tzinfo=datetime.timezone.utc)
    """
    year, doy = divmod(int(date), 1000)
    hh, rest = divmod(int(time), 10000)
    mm, ss = divmod(rest, 100)
    return dt.datetime(year, 1, 1, tzinfo=UTC) + dt.timedelta(
        days=doy - 1, hours=hh, minutes=mm, seconds=ss
    )


def encode_tflag(when: dt.datetime) -> tuple[int, int]:
    """Encode an aware datetime as ``(YYYYDDD, HHMMSS)`` in UTC.

    >>> encode_tflag(dt.datetime(2025, 1, 1, 15, tzinfo=dt.UTC))
    (2025001, 150000)
    """
    u = when.astimezone(UTC)
    return u.year * 1000 + u.timetuple().tm_yday, u.hour * 10000 + u.minute * 100 + u.second


def read_times(ds: netCDF4.Dataset, path: str | Path) -> list[dt.datetime]:
    """The UTC time of every step, from ``TFLAG`` of the first variable.

    Raises
    ------
    TimeCoverageError
        If ``TFLAG`` holds values that are not valid dates (a corrupted or zero-filled file).
    """
    tflag = np.asarray(ds.variables["TFLAG"][:, 0, :])
    times = []
    for step, (d, t) in enumerate(tflag):
        year, doy = divmod(int(d), 1000)
        if not (1 <= doy <= 366 and 1900 < year < 2200 and 0 <= int(t) < 240000):
            raise TimeCoverageError(path, f"TFLAG of step {step} is not a valid date: {d}, {t}")
        times.append(decode_tflag(int(d), int(t)))
    return times


def _padded(text: str, width: int) -> str:
    return text[:width].ljust(width)


@dataclass(frozen=True)
class IoapiVariable:
    """A variable to write: ``data`` is ``(TSTEP, ROW, COL)`` or ``(TSTEP, LAY, ROW, COL)``."""

    data: npt.NDArray[np.floating]
    units: str
    description: str = ""


def write_ioapi(
    path: str | Path,
    variables: Mapping[str, IoapiVariable],
    times: Sequence[dt.datetime],
    grid: IoapiGrid,
    *,
    filedesc: str = "",
    history: str = "",
    upnam: str = "PM25TWIN",
    created: dt.datetime | None = None,
) -> Path:
    """Write a gridded, hourly, Lambert I/O API file (netCDF-3 classic), atomically.

    Parameters
    ----------
    path
        Target file; written under a temporary name and renamed when complete.
    variables
        Name -> data, units and description, in file order.
    times
        Consecutive hourly UTC times of the steps.
    grid
        Projection and grid description.
    filedesc, history, upnam
        Free-text header fields, padded as the I/O API library does.
    created
        Creation time for ``CDATE/CTIME/WDATE/WTIME``; fixed values keep files reproducible.
    """
    names = list(variables)
    first = np.asarray(next(iter(variables.values())).data)
    nlays = 1 if first.ndim == 3 else first.shape[1]
    nsteps = len(times)
    for i in range(1, nsteps):
        if times[i] - times[i - 1] != dt.timedelta(hours=1):
            raise ValueError("write_ioapi writes hourly files only")
    created = created or dt.datetime(2000, 1, 1, tzinfo=UTC)
    cdate, ctime = encode_tflag(created)
    sdate, stime = encode_tflag(times[0])
    with atomic_path(path) as tmp:
        ds = netCDF4.Dataset(tmp, "w", format="NETCDF3_CLASSIC")
        try:
            ds.createDimension("TSTEP", None)
            ds.createDimension("DATE-TIME", 2)
            ds.createDimension("LAY", nlays)
            ds.createDimension("VAR", len(names))
            ds.createDimension("ROW", grid.nrows)
            ds.createDimension("COL", grid.ncols)
            i32, f64 = np.int32, np.float64
            ds.setncattr("IOAPI_VERSION", _padded("ioapi-3.2: pm25-forecast writer", 80))
            ds.setncattr("EXEC_ID", _padded(upnam, 80))
            for name, value in (
                ("FTYPE", 1),
                ("CDATE", cdate),
                ("CTIME", ctime),
                ("WDATE", cdate),
                ("WTIME", ctime),
                ("SDATE", sdate),
                ("STIME", stime),
                ("TSTEP", 10000),
                ("NTHIK", 1),
                ("NCOLS", grid.ncols),
                ("NROWS", grid.nrows),
                ("NLAYS", nlays),
                ("NVARS", len(names)),
                ("GDTYP", LAMBERT),
            ):
                ds.setncattr(name, i32(value))
            for name, fvalue in (
                ("P_ALP", grid.p_alp),
                ("P_BET", grid.p_bet),
                ("P_GAM", grid.p_gam),
                ("XCENT", grid.xcent),
                ("YCENT", grid.ycent),
                ("XORIG", grid.xorig),
                ("YORIG", grid.yorig),
                ("XCELL", grid.xcell),
                ("YCELL", grid.ycell),
            ):
                ds.setncattr(name, f64(fvalue))
            ds.setncattr("VGTYP", i32(7))
            ds.setncattr("VGTOP", np.float32(5000.0))
            ds.setncattr("VGLVLS", np.array([1.0, 0.9975][: nlays + 1], dtype=np.float32))
            ds.setncattr("GDNAM", _padded(grid.gdnam, 16))
            ds.setncattr("UPNAM", _padded(upnam, 16))
            ds.setncattr("VAR-LIST", "".join(_padded(n, 16) for n in names))
            ds.setncattr("FILEDESC", _padded(filedesc, 80))
            ds.setncattr("HISTORY", _padded(history, 80))

            tflag = ds.createVariable("TFLAG", "i4", ("TSTEP", "VAR", "DATE-TIME"))
            tflag.setncattr("units", "<YYYYDDD,HHMMSS>")
            tflag.setncattr("long_name", _padded("TFLAG", 16))
            tflag.setncattr(
                "var_desc", _padded("Timestep-valid flags:  (1) YYYYDDD or (2) HHMMSS", 80)
            )
            flags = np.array([encode_tflag(t) for t in times], dtype=np.int32)
            tflag[:] = np.broadcast_to(flags[:, None, :], (nsteps, len(names), 2))
            for name, var in variables.items():
                data = np.asarray(var.data, dtype=np.float32)
                if data.ndim == 3:
                    data = data[:, None]
                v = ds.createVariable(name, "f4", ("TSTEP", "LAY", "ROW", "COL"))
                v.setncattr("long_name", _padded(name, 16))
                v.setncattr("units", _padded(var.units, 16))
                v.setncattr("var_desc", _padded(var.description or name, 80))
                v[:] = data
        finally:
            ds.close()
    return Path(path)
